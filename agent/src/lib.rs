//! bosun-agent: runs in (or next to) one cluster. It dials out to the control plane over
//! mTLS (joining once with a single-use token), receives its assignments and bundles, applies
//! them with server-side apply under its own field manager, prunes what it created and no
//! longer should, assesses health and reports status. It keeps enforcing the last desired
//! state while the control plane is away, across its own restarts too.
//!
//! Architecture invariant: the agent needs no Git credentials and accepts no inbound
//! connections but its read-only health and metrics port (`--http-addr`, off unless set).

pub mod act;
pub mod cache;
pub mod controller;
pub mod identity;
pub mod kube;
pub mod link;
pub mod metrics;
pub mod queue;
pub mod state;
pub mod watched;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bosun_process::{AbortOnDrop, shutdown_signal};
use tokio::sync::watch;
use tracing::info;

/// Command-line configuration of `bosun-agent`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "bosun-agent",
    version,
    about = "Bosun agent: applies this cluster's Applications from the control plane"
)]
pub struct Config {
    /// Agent API of the control plane (mTLS). Several replicas: repeat the flag or separate
    /// the URLs with commas; the agent moves to the next one when its connection fails (a DNS
    /// name with several addresses works too: each address is tried in turn).
    #[arg(long, env = "BOSUN_CONTROL_PLANE", value_delimiter = ',', num_args = 1.., default_value = "https://127.0.0.1:7444")]
    pub control_plane: Vec<String>,
    /// Join endpoint of the control plane (used once, with --join-token).
    #[arg(long, env = "BOSUN_JOIN_URL", default_value = "https://127.0.0.1:7445")]
    pub join_url: String,
    /// Join token: single-use from `bosun cluster add NAME`, or a registration token from
    /// `bosun cluster registration-token create` (reusable; give --cluster-name too). Only
    /// needed until the agent has joined.
    #[arg(long, env = "BOSUN_JOIN_TOKEN", default_value = "", hide_env_values = true)]
    pub join_token: String,
    /// File holding the join token (a mounted Secret); preferred over --join-token, which
    /// shows in the process list and environment.
    #[arg(long, env = "BOSUN_JOIN_TOKEN_FILE", conflicts_with = "join_token")]
    pub join_token_file: Option<PathBuf>,
    /// The name this cluster registers under, with a registration token (a DNS label); with
    /// a single-use join token, empty or the token's cluster.
    #[arg(long, env = "BOSUN_CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,
    /// File holding --cluster-name (a key of the mounted join Secret), read at each join; a
    /// missing file means no name.
    #[arg(long, env = "BOSUN_CLUSTER_NAME_FILE", conflicts_with = "cluster_name")]
    pub cluster_name_file: Option<PathBuf>,
    /// CA certificate of the control plane (PEM), to trust it when joining.
    #[arg(long, env = "BOSUN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Directory for credentials, the last desired state and bundles.
    #[arg(long, env = "BOSUN_STATE_DIR", default_value = "bosun-agent-state")]
    pub state_dir: PathBuf,
    /// Kubeconfig of the cluster to manage (default: in-cluster or $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Manage only these namespaces (repeat the flag or separate with commas): the namespaced
    /// install, whose ServiceAccount has Roles in them and nothing cluster-wide. The agent
    /// watches only there; an object elsewhere, or of a cluster-scoped kind, fails its
    /// Application with an error naming it. Default: the whole cluster.
    #[arg(long = "namespace", env = "BOSUN_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Field manager name for server-side apply.
    #[arg(long, default_value = "bosun-agent")]
    pub field_manager: String,
    /// How often every Application is looked at even if nothing woke it (a safety net: a
    /// change to a managed object, a finished hook or new assignments wake it at once).
    /// Looking costs no API requests: it reads the agent's cache.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Applications reconciled side by side (each one by one worker at a time; waves within
    /// an Application stay in order).
    #[arg(long, env = "BOSUN_CONCURRENCY", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Log format: text or json (one flat object per line: time, level, message and fields).
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// What to log: a level (`debug`) or directives (`info,bosun_agent=debug`); default:
    /// `RUST_LOG`, else `info`.
    #[arg(long, env = "BOSUN_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Where to serve /healthz, /readyz and /metrics (plain HTTP, read-only), e.g.
    /// `0.0.0.0:8080` in a Pod; not served unless set.
    #[arg(long, env = "BOSUN_AGENT_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,
}

async fn kube_client(path: Option<&PathBuf>) -> anyhow::Result<::kube::Client> {
    let cfg = match path {
        Some(p) => {
            let kc = ::kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading kubeconfig {}", p.display()))?;
            ::kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => ::kube::Config::infer().await?,
    };
    Ok(::kube::Client::try_from(cfg)?)
}

async fn facts(client: &::kube::Client) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    if let Ok(v) = client.apiserver_version().await {
        f.insert("kubernetesVersion".into(), v.git_version);
    }
    let nodes: ::kube::Api<k8s_openapi::api::core::v1::Node> = ::kube::Api::all(client.clone());
    if let Ok(list) = nodes.list_metadata(&Default::default()).await {
        f.insert("nodes".into(), list.items.len().to_string());
    }
    f
}

/// Runs the agent until SIGTERM or SIGINT, then stops its tasks (state is written before any
/// action that depends on it, so stopping at any point loses nothing) and returns.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    tokio::select! {
        r = serve(cfg) => r,
        _ = shutdown_signal() => {
            info!("stopping on signal");
            Ok(())
        }
    }
}

/// Runs the agent until one of its loops fails or the future is dropped; dropping it stops
/// every task it started. For embedding (many agents in one process, as the benchmarks do).
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    serve_with(cfg, None).await
}

/// [`serve`], telling `bound` where the health and metrics port listens (tests ask for port 0).
pub async fn serve_with(
    cfg: Config,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(metrics::Metrics::default());
    let readiness = Arc::new(metrics::Readiness::default());
    let observed: Arc<std::sync::OnceLock<Arc<dyn metrics::Observed>>> = Default::default();
    let _http = match cfg.http_addr {
        Some(addr) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(metrics::serve(addr, metrics.clone(), readiness.clone(), observed.clone(), tx));
            let at = rx.await.map_err(|_| anyhow::anyhow!("the health and metrics port did not start"))?;
            info!(addr = %at, "serving /healthz, /readyz and /metrics");
            if let Some(b) = bound {
                let _ = b.send(at);
            }
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let dir = Arc::new(
        state::StateDir::new(&cfg.state_dir)
            .with_context(|| format!("creating state directory {}", cfg.state_dir.display()))?,
    );
    let joiner = identity::Joiner {
        url: cfg.join_url.clone(),
        token: match (&cfg.join_token_file, cfg.join_token.is_empty()) {
            (Some(f), _) => identity::TokenSource::File(f.clone()),
            (None, false) => identity::TokenSource::Value(cfg.join_token.clone()),
            (None, true) => identity::TokenSource::None,
        },
        ca_file: cfg.ca_file.clone(),
        cluster_name: match &cfg.cluster_name_file {
            Some(f) => identity::ClusterName::File(f.clone()),
            None => identity::ClusterName::Value(cfg.cluster_name.clone()),
        },
    };
    let creds = joiner.startup(&dir).await?;
    let client = kube_client(cfg.kubeconfig.as_ref()).await?;
    let loaded = dir.load().await?;
    info!(cluster = %creds.cluster, applications = loaded.desired.assignments.len(), generation = loaded.desired.generation, "agent starting from its last desired state");
    readiness.joined.store(true, std::sync::atomic::Ordering::Release);
    let shared = controller::Shared::new(dir.clone(), loaded.desired, loaded.memory, metrics.clone(), readiness);
    let cluster = Arc::new(kube::ClusterApi::new(client.clone(), &cfg.field_manager));
    let settings = controller::Settings {
        field_manager: cfg.field_manager.clone(),
        resync: cfg.resync_interval,
        concurrency: cfg.concurrency.into(),
        writes: 8,
        scope: cache::Scope::of(&cfg.namespaces),
    };
    let mut reconciler = AbortOnDrop(tokio::spawn(controller::run(shared.clone(), cluster, settings, observed)));
    let facts = facts(&client).await;
    let endpoints = Arc::new(link::Endpoints::new(&cfg.control_plane)?);
    let identity = Arc::new(identity::IdentityManager {
        dir,
        joiner,
        endpoints: endpoints.clone(),
        creds: watch::channel(creds).0,
    });
    let mut renewer = AbortOnDrop(tokio::spawn(identity.clone().renew_forever()));
    // The certificate's expiry as a gauge, for alerts on renewals that keep failing.
    let _expiry = {
        let mut changes = identity.creds.subscribe();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                if let Ok((_, not_after)) = changes.borrow_and_update().validity() {
                    metrics.certificate_expiry.set(not_after);
                }
                if changes.changed().await.is_err() {
                    break;
                }
            }
        }))
    };
    let mut link = AbortOnDrop(tokio::spawn(link::run(shared, identity, endpoints, facts)));
    tokio::select! {
        r = &mut renewer.0 => r.context("certificate renewal")?.context("certificate renewal gave up")?,
        r = &mut reconciler.0 => r.context("controller")?,
        r = &mut link.0 => r.context("control plane link")?,
    }
    anyhow::bail!("an agent task ended unexpectedly")
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_consistent() {
        <super::Config as clap::CommandFactory>::command().debug_assert();
    }
}
