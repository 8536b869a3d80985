//! bosun-control-plane: tracks Git, renders bundles, stores Applications and clusters, and
//! serves three gRPC listeners — admin (TLS; bearer token or client certificate, with
//! roles), agent (mTLS only) and join (TLS, join tokens) — each with server reflection and
//! the gRPC health service — plus an HTTPS webhook endpoint for Git pushes, the dashboard,
//! and a plain-HTTP metrics and probes listener.
//!
//! Architecture invariant: the control plane never connects to a cluster; agents dial in.

pub mod api;
pub mod auth;
pub mod backup;
pub mod datadir;
pub mod error;
pub mod git;
pub mod heap;
pub mod https;
pub mod legacy;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod render;
pub mod secrets;
pub mod ui;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bosun_process::{AbortOnDrop, shutdown_signal};
use bosun_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tracing::info;

use crate::model::{ControlPlane, Settings};

/// Command-line configuration of `bosun-control-plane`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "bosun-control-plane",
    version,
    about = "Bosun control plane: tracks Git and serves Applications to cluster agents"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Directory for the embedded store, the CA, the admin token and the Git cache.
    #[arg(long, env = "BOSUN_DATA_DIR", default_value = "bosun-data")]
    pub data_dir: PathBuf,
    /// Keep the state in PostgreSQL instead of the embedded store (several replicas share
    /// one database): `postgres://user:password@host:5432/bosun?sslmode=require`. Every
    /// replica needs the same CA (--ca-cert/--ca-key) and secret key (--secret-key-file).
    #[arg(long, env = "BOSUN_DATABASE_URL", hide_env_values = true, conflicts_with = "database_url_file")]
    pub database_url: Option<String>,
    /// File holding the database URL (a mounted Secret), instead of --database-url.
    #[arg(long, env = "BOSUN_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the database server with, instead of the system's.
    #[arg(long, env = "BOSUN_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// This replica's name in leases and agents' presence (default: the host name).
    #[arg(long, env = "BOSUN_REPLICA_NAME")]
    pub replica_name: Option<String>,
    /// File holding the first admin credential's token, used when the store has no credential
    /// yet (replicas share it from a Secret). Without it a random token is written to
    /// <data-dir>/admin-token.
    #[arg(long, env = "BOSUN_INITIAL_ADMIN_TOKEN_FILE")]
    pub initial_admin_token_file: Option<PathBuf>,
    /// How often bundles nothing refers to any more are deleted.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub collect_interval: Duration,
    /// Admin API (people, CLI, grpcurl): TLS; a bearer token or a client certificate.
    #[arg(long, env = "BOSUN_ADMIN_ADDR", default_value = "127.0.0.1:7443")]
    pub admin_addr: SocketAddr,
    /// Agent API: mTLS only.
    #[arg(long, env = "BOSUN_AGENT_ADDR", default_value = "127.0.0.1:7444")]
    pub agent_addr: SocketAddr,
    /// Join endpoint: TLS; exchanges a join token for a client certificate.
    #[arg(long, env = "BOSUN_JOIN_ADDR", default_value = "127.0.0.1:7445")]
    pub join_addr: SocketAddr,
    /// Webhook endpoint, the one listener Git hosts reach: POST /api/webhook (GitHub, GitLab)
    /// over HTTPS with the server certificate, or the one given by --webhook-tls-cert.
    #[arg(long, env = "BOSUN_WEBHOOK_ADDR", default_value = "127.0.0.1:7446")]
    pub webhook_addr: SocketAddr,
    /// Certificate chain (PEM) the webhook endpoint presents instead of the control plane's
    /// own, e.g. a publicly trusted one so GitHub can verify it (with --webhook-tls-key).
    #[arg(long, env = "BOSUN_WEBHOOK_TLS_CERT", requires = "webhook_tls_key")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --webhook-tls-cert.
    #[arg(long, env = "BOSUN_WEBHOOK_TLS_KEY", requires = "webhook_tls_cert")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Serve webhooks over plain HTTP, for an ingress or load balancer that terminates TLS in
    /// front of the control plane (as `argocd-server --insecure`).
    #[arg(long, env = "BOSUN_WEBHOOK_INSECURE", conflicts_with = "webhook_tls_cert")]
    pub webhook_insecure: bool,
    /// Metrics and probes, plain HTTP and read-only: GET /metrics (Prometheus), GET /healthz
    /// and /readyz, and grpc.health.v1.Health over h2c (Kubernetes' gRPC probes).
    #[arg(long, env = "BOSUN_METRICS_ADDR", default_value = "127.0.0.1:7448")]
    pub metrics_addr: SocketAddr,
    /// Web dashboard: HTTPS with the control plane's server certificate; sign in with an
    /// admin or readonly token.
    #[arg(long, env = "BOSUN_UI_ADDR", default_value = "127.0.0.1:7447")]
    pub ui_addr: SocketAddr,
    /// How long a dashboard sign-in lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub ui_session_ttl: Duration,
    /// File holding the shared webhook secret (GitHub secret / GitLab token). Without it
    /// webhooks are refused.
    #[arg(long, env = "BOSUN_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// 32-byte key (hex or base64) that encrypts Git credentials at rest; keep it outside the
    /// data directory in production (a mounted Secret). Created in the data directory if absent.
    #[arg(long, env = "BOSUN_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// DNS names and IPs in the server certificate (repeatable).
    #[arg(long = "server-name", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
    pub server_names: Vec<String>,
    /// How often to poll Git (±10% jitter).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long one Git fetch may take; a host that does not answer fails that repository's
    /// refresh, never another's.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub git_timeout: Duration,
    /// Lifetime of agent client certificates; agents renew at two thirds of it.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub cert_validity: Duration,
    /// Default lifetime of admin client certificates (`bosun credential create --cert`).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub admin_cert_validity: Duration,
    /// SPIFFE trust domain of identities: spiffe://<domain>/cluster/<name>, .../user/<name>.
    #[arg(long, default_value = pki::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// An extra CA certificate (PEM) whose certificates are accepted and which agents are
    /// told to trust; for CA rotation (repeatable). See README "Rotating the CA".
    #[arg(long = "trusted-ca")]
    pub trusted_cas: Vec<PathBuf>,
    /// Use this CA certificate (PEM) instead of generating one (with --ca-key).
    #[arg(long, requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Hosts kustomizations may fetch remote bases from (repeatable). None by default: a
    /// render reads only the Application's repository and opens no connection.
    #[arg(long = "allow-remote-bases", value_name = "HOST", value_delimiter = ',')]
    pub allow_remote_bases: Vec<String>,
    /// The kustomize tool (`kustomize`, or `kubectl` for `kubectl kustomize`); default: the
    /// first of them on PATH.
    #[arg(long, env = "BOSUN_KUSTOMIZE")]
    pub kustomize: Option<PathBuf>,
    /// How long one render may run.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub render_timeout: Duration,
    /// Most memory one render process may allocate, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub render_memory_mib: u64,
    /// How many renders run at once.
    #[arg(long, default_value_t = 2)]
    pub render_concurrency: usize,
    /// Log format: text or json (one flat object per line: time, level, message and fields).
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// What to log: a level (`debug`) or directives (`info,bosun_agent=debug`); default:
    /// `RUST_LOG`, else `info`.
    #[arg(long, env = "BOSUN_LOG_LEVEL")]
    pub log_level: Option<String>,
}

impl Config {
    /// The configuration with values read from files (`--database-url-file`).
    pub fn resolved(mut self) -> anyhow::Result<Self> {
        if let Some(p) = self.database_url_file.take() {
            let url = std::fs::read_to_string(&p)
                .with_context(|| format!("reading the database URL from {}", p.display()))?;
            anyhow::ensure!(!url.trim().is_empty(), "the database URL file {} is empty", p.display());
            self.database_url = Some(url.trim().to_string());
        }
        Ok(self)
    }
}

/// Tasks of the control plane binary besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write a new CA (ca.pem, ca.key) into a directory, for --ca-cert/--ca-key or --trusted-ca.
    GenerateCa {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Bosun CA")]
        common_name: String,
    },
    /// Write a consistent backup of the data directory's control plane to a file (0600): the
    /// store, the CA and, unless --without-secrets, the CA key and the secret key. Works on a
    /// stopped control plane (reads --data-dir) and on a running one (asks it over the admin
    /// API, with the admin token and endpoints from --data-dir or --server/--token).
    Backup {
        /// Where to write the backup.
        #[arg(long)]
        out: PathBuf,
        /// Leave out the CA key and the secret key (a restore then needs them from elsewhere).
        #[arg(long)]
        without_secrets: bool,
        /// Admin API of a running control plane (default: from --data-dir's endpoints.json).
        #[arg(long, env = "BOSUN_SERVER")]
        server: Option<String>,
        /// Admin token (default: --data-dir's admin-token).
        #[arg(long, env = "BOSUN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// CA bundle to trust the admin API (default: --data-dir's ca-bundle.pem).
        #[arg(long, env = "BOSUN_CA_FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Restore a backup into --data-dir, which must not hold a store yet; then start the
    /// control plane on it.
    Restore {
        /// The backup file.
        #[arg(long = "from")]
        from: PathBuf,
    },
}

/// Runs a task other than serving.
pub async fn run_command(cfg: &Config, cmd: &Command) -> anyhow::Result<()> {
    install_crypto();
    let resolved = cfg.clone().resolved()?;
    let cfg = &resolved;
    match cmd {
        Command::GenerateCa { out, common_name } => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let (cert, key) = pki::generate_ca(common_name)?;
            for f in ["ca.pem", "ca.key"] {
                anyhow::ensure!(!out.join(f).exists(), "{} exists; refusing to overwrite a CA", out.join(f).display());
            }
            pki::write_secret(&out.join("ca.key"), &key)?;
            std::fs::write(out.join("ca.pem"), cert)?;
            println!("wrote {0}/ca.pem and {0}/ca.key", out.display());
            Ok(())
        }
        Command::Backup { out, without_secrets, server, token, ca_file } => {
            let bytes = match server {
                None => match backup_offline(cfg, *without_secrets).await? {
                    Some(b) => b,
                    None => backup_online(cfg, None, token.clone(), ca_file.clone(), *without_secrets).await?,
                },
                Some(s) => {
                    backup_online(cfg, Some(s.clone()), token.clone(), ca_file.clone(), *without_secrets).await?
                }
            };
            let parsed = backup::Backup::parse(&bytes)?;
            datadir::write_file(out, &bytes, 0o600)?;
            println!(
                "wrote {} ({} records{}): keep it as safe as the CA key",
                out.display(),
                parsed.records.len(),
                if *without_secrets {
                    ", without the CA key and secret key"
                } else {
                    ", with the CA key and secret key"
                }
            );
            Ok(())
        }
        Command::Restore { from } => {
            let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
            let backup = backup::Backup::parse(&bytes)?;
            let summary = match &cfg.database_url {
                None => backup.restore(&cfg.data_dir).await?,
                Some(_) => {
                    let store = open_store(cfg, &data_dir(cfg)).await?;
                    let summary = backup.restore_into(store.as_ref()).await?;
                    backup.write_files(&cfg.data_dir)?;
                    datadir::DataDir { root: cfg.data_dir.clone(), required: Vec::new() }
                        .ensure_marker(Some(&backup.installation_id))?;
                    summary
                }
            };
            println!(
                "restored {} Applications, {} clusters and {} credentials into {}",
                summary.applications,
                summary.clusters,
                summary.credentials,
                cfg.data_dir.display()
            );
            if !summary.missing_secrets.is_empty() {
                println!(
                    "the backup carried no {}: put them back (or pass --ca-cert/--ca-key, --secret-key-file) before starting",
                    summary.missing_secrets.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// The data directory as this configuration uses it.
fn data_dir(cfg: &Config) -> datadir::DataDir {
    let d = &cfg.data_dir;
    let mut required = Vec::new();
    if cfg.database_url.is_none() {
        required.push(d.join(datadir::STORE_FILE));
    }
    if cfg.ca_cert.is_none() {
        required.extend([d.join("ca.pem"), d.join("ca.key")]);
    }
    if cfg.secret_key_file.is_none() {
        required.push(d.join("secret.key"));
    }
    datadir::DataDir { root: d.clone(), required }
}

/// The files a backup carries, where this configuration keeps them.
fn backup_sources(cfg: &Config) -> std::collections::BTreeMap<String, PathBuf> {
    let d = &cfg.data_dir;
    let (ca_pem, ca_key) = cfg.ca_cert.clone().zip(cfg.ca_key.clone()).unwrap_or((d.join("ca.pem"), d.join("ca.key")));
    [
        ("ca.pem", ca_pem),
        ("ca.key", ca_key),
        ("secret.key", cfg.secret_key_file.clone().unwrap_or(d.join("secret.key"))),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p))
    .collect()
}

/// A backup read straight from a stopped control plane's data directory; `None` when a
/// running control plane holds the store.
async fn backup_offline(cfg: &Config, without_secrets: bool) -> anyhow::Result<Option<Vec<u8>>> {
    let dd = data_dir(cfg);
    legacy::migrate_data_dir(&cfg.data_dir).await?;
    let marker = dd.check()?.with_context(|| {
        format!("{} is not an initialised data directory (no {})", cfg.data_dir.display(), datadir::MARKER_FILE)
    })?;
    let store = match open_store(cfg, &dd).await {
        Ok(s) => s,
        Err(e) if e.to_string().contains("in use by another process") => return Ok(None),
        Err(e) => return Err(e),
    };
    let b =
        backup::Backup::take(store.as_ref(), &backup_sources(cfg), &marker.installation_id, without_secrets).await?;
    Ok(Some(serde_json::to_vec(&b)?))
}

/// The store this configuration names: PostgreSQL with --database-url, else the embedded one
/// in the data directory.
async fn open_store(cfg: &Config, dd: &datadir::DataDir) -> anyhow::Result<Arc<bosun_store::Backend>> {
    let backend = match &cfg.database_url {
        Some(url) => {
            let options = bosun_store::PostgresOptions {
                url: url.clone(),
                ca_file: cfg.database_ca_file.clone(),
                ..bosun_store::PostgresOptions::new(url.clone())
            };
            bosun_store::Backend::Postgres(
                bosun_store::Postgres::connect(&options)
                    .await
                    .context("connecting to the database (--database-url)")?,
            )
        }
        None => bosun_store::Backend::Embedded(bosun_store::Embedded::open(&dd.store_path())?),
    };
    Ok(Arc::new(backend))
}

/// A backup taken by a running control plane over its admin API.
async fn backup_online(
    cfg: &Config,
    server: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    without_secrets: bool,
) -> anyhow::Result<Vec<u8>> {
    use tonic::transport::{Channel, ClientTlsConfig};
    let server = match server {
        Some(s) => s,
        None => {
            let p = cfg.data_dir.join("endpoints.json");
            let e: Endpoints =
                serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)?;
            e.admin
        }
    };
    let token = match token {
        Some(t) => t,
        None => std::fs::read_to_string(cfg.data_dir.join("admin-token"))
            .context("reading the admin token (or pass --token)")?
            .trim()
            .to_string(),
    };
    let ca_path = ca_file.unwrap_or_else(|| cfg.data_dir.join("ca-bundle.pem"));
    let ca = std::fs::read_to_string(&ca_path).with_context(|| format!("reading {}", ca_path.display()))?;
    let url = if server.contains("://") { server } else { format!("https://{server}") };
    let channel = Channel::from_shared(url.clone())?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the admin API at {url}"))?;
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().context("the admin token")?;
    let mut client =
        pb::admin_service_client::AdminServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", auth.clone());
            Ok(r)
        });
    let mut stream = client
        .create_backup(pb::CreateBackupRequest { without_secrets })
        .await
        .map_err(|s| anyhow::anyhow!("backup refused: {}", s.message()))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|s| anyhow::anyhow!("backup failed: {}", s.message()))? {
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

/// Installs the process-wide rustls provider (ring) before any TLS is used.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the listeners ended up (ports may be chosen by the OS), written to
/// `<data-dir>/endpoints.json` for tools and tests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    pub admin: String,
    pub agent: String,
    pub join: String,
    /// The webhook endpoint (https unless --webhook-insecure).
    pub webhook: String,
    /// Metrics and probes (plain http).
    #[serde(default)]
    pub metrics: String,
    /// The dashboard (https).
    #[serde(default)]
    pub ui: String,
}

/// Reflection (v1 and v1alpha) advertising `service` — the one a listener serves — with the
/// health service; the descriptor set is shared, but a listener lists only what it serves.
fn reflection(
    service: &str,
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bosun_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Runs a control plane inside this process on free local ports (the demo and benchmarks do)
/// and returns its endpoints once it listens.
pub async fn spawn_local(data_dir: &std::path::Path, poll_interval: Duration) -> anyhow::Result<Endpoints> {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let cfg = Config {
        command: None,
        data_dir: data_dir.to_path_buf(),
        database_url: None,
        database_url_file: None,
        database_ca_file: None,
        replica_name: None,
        initial_admin_token_file: None,
        collect_interval: Duration::from_secs(600),
        admin_addr: local,
        agent_addr: local,
        join_addr: local,
        webhook_addr: local,
        webhook_tls_cert: None,
        webhook_tls_key: None,
        webhook_insecure: false,
        metrics_addr: local,
        ui_addr: local,
        ui_session_ttl: Duration::from_secs(8 * 3600),
        webhook_secret_file: None,
        secret_key_file: None,
        server_names: vec!["localhost".into(), "127.0.0.1".into()],
        poll_interval,
        git_timeout: Duration::from_secs(120),
        cert_validity: Duration::from_secs(86400),
        admin_cert_validity: Duration::from_secs(30 * 86400),
        trust_domain: pki::DEFAULT_TRUST_DOMAIN.into(),
        trusted_cas: Vec::new(),
        ca_cert: None,
        ca_key: None,
        allow_remote_bases: Vec::new(),
        kustomize: None,
        render_timeout: Duration::from_secs(120),
        render_memory_mib: 2048,
        render_concurrency: 2,
        log_format: "text".into(),
        log_level: None,
    };
    let endpoints_file = data_dir.join("endpoints.json");
    let _ = std::fs::remove_file(&endpoints_file);
    let server = tokio::spawn(run(cfg));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !endpoints_file.exists() {
        if server.is_finished() {
            return server.await?.and_then(|_| anyhow::bail!("the control plane stopped before listening"));
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the control plane did not start within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(serde_json::from_slice(&std::fs::read(&endpoints_file)?)?)
}

/// Runs the control plane until the process is stopped.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    install_crypto();
    let cfg = cfg.resolved()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    // A data directory that was initialised must still hold its store, CA and keys: starting
    // afresh over a lost store would lock every agent out without a word.
    let dd = data_dir(&cfg);
    legacy::migrate_data_dir(&cfg.data_dir).await?;
    dd.check()?;
    let store = open_store(&cfg, &dd).await?;
    let git = Arc::new(git::GitCache::new(cfg.data_dir.join("git")).with_fetch_timeout(cfg.git_timeout));
    let pki = pki::Pki::load_or_create(
        &cfg.data_dir,
        cfg.ca_cert.clone().zip(cfg.ca_key.clone()),
        &cfg.trusted_cas,
        &cfg.trust_domain,
    )?;
    let secrets = secrets::SecretBox::load_or_create(
        &cfg.secret_key_file.clone().unwrap_or_else(|| cfg.data_dir.join("secret.key")),
    )?;
    // The trust bundle for local tools (the CLI reads it by default): it changes with
    // --ca-cert/--trusted-ca during a CA rotation, unlike the generated ca.pem.
    std::fs::write(cfg.data_dir.join("ca-bundle.pem"), &pki.ca_pem)
        .with_context(|| format!("writing {}", cfg.data_dir.join("ca-bundle.pem").display()))?;
    let webhook_secret = match &cfg.webhook_secret_file {
        Some(p) => {
            let s =
                std::fs::read_to_string(p).with_context(|| format!("reading the webhook secret {}", p.display()))?;
            anyhow::ensure!(!s.trim().is_empty(), "the webhook secret file {} is empty", p.display());
            Some(secrets::Secret::new(s.trim()))
        }
        None => None,
    };
    // The marker is written once everything it vouches for exists.
    let settings = Settings {
        cert_validity: cfg.cert_validity,
        admin_cert_validity: cfg.admin_cert_validity,
        poll_interval: cfg.poll_interval,
        installation_id: String::new(),
        backup_sources: backup_sources(&cfg),
        renderer: render::Renderer {
            allowed_hosts: cfg
                .allow_remote_bases
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            tool: cfg.kustomize.clone(),
            timeout: cfg.render_timeout,
            max_memory: cfg.render_memory_mib.saturating_mul(1 << 20),
        },
        render_concurrency: cfg.render_concurrency,
        collect_interval: cfg.collect_interval,
        replica: cfg.replica_name.clone().unwrap_or_else(replica_name),
        initial_admin_token: match &cfg.initial_admin_token_file {
            None => None,
            Some(p) => {
                let t = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                anyhow::ensure!(
                    t.trim().len() >= 16,
                    "the initial admin token in {} is shorter than 16 characters",
                    p.display()
                );
                Some(secrets::Secret::new(t.trim()))
            }
        },
    };
    info!(sandbox = %render::sandbox::confinement(), remote_bases = ?cfg.allow_remote_bases, "kustomize renders are confined");
    let marker = dd.ensure_marker(None)?;
    let settings = Settings { installation_id: marker.installation_id.clone(), ..settings };
    let (cp, new_admin_token) = ControlPlane::start(store, git, pki, secrets, settings).await?;
    let token_file = cfg.data_dir.join("admin-token");
    if let Some(token) = new_admin_token {
        pki::write_secret(&token_file, &token).with_context(|| format!("writing {}", token_file.display()))?;
        info!(path = %token_file.display(), "admin token created");
    }
    let (server_cert, server_key) = cp.pki.server_certificate(&cfg.server_names)?;
    let identity = Identity::from_pem(&server_cert, &server_key);
    let ca = Certificate::from_pem(&cp.pki.ca_pem);

    let admin_listener = TcpListener::bind(cfg.admin_addr)
        .await
        .with_context(|| format!("binding the admin API to {}", cfg.admin_addr))?;
    let agent_listener = TcpListener::bind(cfg.agent_addr)
        .await
        .with_context(|| format!("binding the agent API to {}", cfg.agent_addr))?;
    let join_listener = TcpListener::bind(cfg.join_addr)
        .await
        .with_context(|| format!("binding the join endpoint to {}", cfg.join_addr))?;
    let webhook_listener = TcpListener::bind(cfg.webhook_addr)
        .await
        .with_context(|| format!("binding the webhook endpoint to {}", cfg.webhook_addr))?;
    let metrics_listener = TcpListener::bind(cfg.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics listener to {}", cfg.metrics_addr))?;
    let ui_listener =
        TcpListener::bind(cfg.ui_addr).await.with_context(|| format!("binding the dashboard to {}", cfg.ui_addr))?;
    let endpoints = Endpoints {
        admin: admin_listener.local_addr()?.to_string(),
        agent: agent_listener.local_addr()?.to_string(),
        join: join_listener.local_addr()?.to_string(),
        webhook: webhook_listener.local_addr()?.to_string(),
        metrics: metrics_listener.local_addr()?.to_string(),
        ui: ui_listener.local_addr()?.to_string(),
    };
    std::fs::write(cfg.data_dir.join("endpoints.json"), serde_json::to_vec_pretty(&endpoints)?)?;
    info!(admin = %endpoints.admin, agent = %endpoints.agent, join = %endpoints.join, webhook = %endpoints.webhook, metrics = %endpoints.metrics, ui = %endpoints.ui, trust_domain = %cp.pki.trust_domain, data_dir = %cfg.data_dir.display(), "control plane listening");

    let (health, health_svc) = tonic_health::server::health_reporter();
    set_health(&health, cp.readiness().await.is_ok()).await;

    let keepalive = |b: Server| {
        b.http2_keepalive_interval(Some(Duration::from_secs(15))).http2_keepalive_timeout(Some(Duration::from_secs(10)))
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let (r1, r1a) = reflection("bosun.v1.AdminService")?;
    // Client certificates are optional here (people may use tokens), but one presented must
    // chain to our CA bundle.
    let admin = keepalive(Server::builder().tls_config(
        ServerTlsConfig::new().identity(identity.clone()).client_ca_root(ca.clone()).client_auth_optional(true),
    )?)
    .add_service(pb::admin_service_server::AdminServiceServer::new(api::AdminApi(cp.clone())))
    .add_service(health_svc.clone())
    .add_service(r1)
    .add_service(r1a)
    .serve_with_incoming_shutdown(TcpListenerStream::new(admin_listener), stopped(stop_rx.clone()));

    let (r2, r2a) = reflection("bosun.v1.AgentService")?;
    let agent = keepalive(Server::builder().tls_config(
        ServerTlsConfig::new().identity(identity.clone()).client_ca_root(ca).client_auth_optional(false),
    )?)
    .add_service(
        pb::agent_service_server::AgentServiceServer::new(api::AgentApi(cp.clone()))
            .max_encoding_message_size(bosun_core::bundle::MAX_BUNDLE_BYTES + (1 << 20)),
    )
    .add_service(health_svc.clone())
    .add_service(r2)
    .add_service(r2a)
    .serve_with_incoming_shutdown(TcpListenerStream::new(agent_listener), stopped(stop_rx.clone()));

    let (r3, r3a) = reflection("bosun.v1.JoinService")?;
    let join = keepalive(Server::builder().tls_config(ServerTlsConfig::new().identity(identity))?)
        .add_service(pb::join_service_server::JoinServiceServer::new(api::JoinApi(cp.clone())))
        .add_service(health_svc.clone())
        .add_service(r3)
        .add_service(r3a)
        .serve_with_incoming_shutdown(TcpListenerStream::new(join_listener), stopped(stop_rx.clone()));

    if webhook_secret.is_none() {
        info!("no --webhook-secret-file: webhooks are refused; Git is polled");
    }
    // The metrics listener also serves grpc.health.v1.Health over h2c, for Kubernetes' gRPC
    // probes (which cannot speak TLS, as every gRPC listener here does).
    // Only that service's path: tonic's router would answer every other path too.
    let metrics_router =
        metrics::router(cp.clone()).route_service("/grpc.health.v1.Health/{*method}", health_svc.clone());
    let metrics_server = axum::serve(metrics_listener, metrics_router).with_graceful_shutdown(stopped(stop_rx.clone()));
    let hook_router = webhook::router(cp.clone(), webhook_secret);
    let hooks = async {
        if cfg.webhook_insecure {
            tracing::warn!("--webhook-insecure: webhooks arrive over plain HTTP; terminate TLS in front of it");
            return axum::serve(webhook_listener, hook_router)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .await
                .map_err(anyhow::Error::from);
        }
        let tls = match (&cfg.webhook_tls_cert, &cfg.webhook_tls_key) {
            (Some(cert), Some(key)) => {
                let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
                https::server_config(&read(cert)?, &read(key)?, None)
                    .with_context(|| format!("loading the webhook certificate {}", cert.display()))?
            }
            _ => https::server_config(&server_cert, &server_key, None)?,
        };
        https::serve(webhook_listener, hook_router, tls, "webhook", stopped(stop_rx.clone())).await
    };
    let dashboard = async {
        let tls = https::server_config(&server_cert, &server_key, Some(&cp.pki.ca_pem))?;
        https::serve(
            ui_listener,
            ui::router(cp.clone(), cfg.ui_session_ttl),
            tls,
            "dashboard",
            stopped(stop_rx.clone()),
        )
        .await
    };

    // gRPC health follows readiness (the store answers, the CA is valid).
    let monitor = {
        let (cp, health) = (cp.clone(), health.clone());
        AbortOnDrop(tokio::spawn(async move {
            let mut last: Option<bool> = None;
            loop {
                let ready = cp.readiness().await;
                if last != Some(ready.is_ok()) {
                    match &ready {
                        Ok(()) => info!("ready"),
                        Err(why) => tracing::warn!(reason = %why, "not ready"),
                    }
                    set_health(&health, ready.is_ok()).await;
                    last = Some(ready.is_ok());
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }))
    };
    cp.spawn_background();
    tokio::spawn(heap::trim_after_bursts(stopped(stop_rx.clone())));
    let servers = async {
        tokio::try_join!(
            async { hooks.await.context("webhook endpoint") },
            async { metrics_server.await.context("metrics listener") },
            async { admin.await.context("admin API") },
            async { agent.await.context("agent API") },
            async { join.await.context("join endpoint") },
            async { dashboard.await.context("dashboard") },
        )
        .map(|_| ())
    };
    tokio::pin!(servers);
    tokio::select! {
        r = &mut servers => return r.and_then(|_| anyhow::bail!("the listeners stopped unexpectedly")),
        _ = shutdown_signal() => {}
    }
    // Graceful stop: no new work, open streams end (agents reconnect, to another replica
    // when there is one), in-flight calls finish; every acknowledged write is already durable.
    info!("stopping: draining connections");
    drop(monitor);
    set_health(&health, false).await;
    cp.stop();
    cp.release_lease().await;
    stop_tx.send_replace(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, servers).await {
        Ok(r) => r?,
        Err(_) => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; exiting"),
    }
    info!("stopped");
    Ok(())
}

/// Sets every service's gRPC health (and the server's overall one).
async fn set_health(health: &tonic_health::server::HealthReporter, serving: bool) {
    use tonic_health::ServingStatus;
    let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
    for service in ["", "bosun.v1.AdminService", "bosun.v1.AgentService", "bosun.v1.JoinService"] {
        health.set_service_status(service, status).await;
    }
}

/// This host's name (a pod's name in Kubernetes), else a random one.
fn replica_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .map(|h| format!("{h}-{}", std::process::id()))
        .unwrap_or_else(|| format!("replica-{}", uuid::Uuid::new_v4()))
}

/// How long a graceful stop waits for connections to close (Kubernetes gives 30 s by default).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_consistent() {
        <super::Config as clap::CommandFactory>::command().debug_assert();
    }
}
