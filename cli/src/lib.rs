//! bosun-cli: the `bosun` command. kubectl/argocd-like verbs over the admin API, tables by
//! default, `-o json|yaml`, progress while waiting, and exit codes scripts can use:
//! 0 success, 1 error (or, for diffs, "they differ"), 2 usage, 3 not found, 4 timed out,
//! 5 not authenticated, 6 partly done (an import that skipped documents).

pub mod config;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
pub use bosun_proto::v1 as pb;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[derive(Debug, Parser)]
#[command(name = "bosun", version, about = "Bosun: GitOps for fleets of Kubernetes clusters")]
pub struct Cli {
    #[command(flatten)]
    pub conn: Connection,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    /// The table with more columns (source, destination, policy; cluster facts).
    Wide,
    Json,
    Yaml,
    /// Only the names, one per line (for scripts, as `kubectl get -o name`).
    Name,
}

impl Output {
    /// Table or wide: printed by the caller as text for people.
    pub fn is_table(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Admin API address (default: from --data-dir's endpoints.json, else https://127.0.0.1:7443).
    #[arg(long, global = true, env = "BOSUN_SERVER")]
    pub server: Option<String>,
    /// Admin token (default: --data-dir's admin-token, unless --cert is given).
    #[arg(long, global = true, env = "BOSUN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate from `bosun credential create --cert-out` (instead of a token).
    #[arg(long, global = true, env = "BOSUN_CERT_FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert.
    #[arg(long, global = true, env = "BOSUN_KEY_FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA certificate(s) of the control plane (default: --data-dir's ca-bundle.pem, else ca.pem).
    #[arg(long, global = true, env = "BOSUN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The control plane's data directory, when on the same machine (default: the current
    /// context from `bosun login`, else ./bosun-data).
    #[arg(long, global = true, env = "BOSUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A context saved by `bosun login` (default: the current one).
    #[arg(long, global = true, env = "BOSUN_CONTEXT")]
    pub context: Option<String>,
}

impl Connection {
    /// A control plane on this machine: address, admin token and CA from its data directory.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            server: None,
            token: None,
            cert: None,
            key: None,
            ca_file: None,
            data_dir: Some(data_dir.into()),
            context: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Applications.
    #[command(subcommand)]
    App(AppCmd),
    /// Clusters.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Admin credentials (tokens and client certificates) and their roles.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Git repository credentials, kept by the control plane only.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Who the control plane takes you for, and your role.
    Whoami,
    /// Check a credential against a control plane and save it as a context (made current):
    /// `bosun login https://bosun.example.com:7443 --ca-file ca.pem` reads the token from
    /// --token/BOSUN_TOKEN or standard input, or uses --cert/--key.
    Login {
        /// The admin API's address.
        server: String,
        /// The context's name (default: the server's host and port).
        #[arg(long)]
        name: Option<String>,
    },
    /// Forget the token of a context (default: the current one); its address and CA stay.
    Logout { name: Option<String> },
    /// List contexts, or make one current: `bosun context NAME`.
    Context { name: Option<String> },
    /// Print the version of this client.
    Version,
    /// Print a shell completion script: `source <(bosun completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Assess the health of one object from a YAML/JSON file (offline).
    Health {
        /// The object (a live object as `kubectl get -o yaml` prints it).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// The normalised diff between a manifest and a live object (offline), as the agent judges
    /// it: server defaults and rewrites are not drift, list items match by their keys, and a
    /// field the live object's managedFields give to the agent's field manager but the manifest
    /// no longer has is drift. Secret values are redacted. Exit code 1 when they differ.
    Diff {
        #[arg(long)]
        desired: PathBuf,
        #[arg(long)]
        live: PathBuf,
        /// The agent's field manager (removals owned by it are drift).
        #[arg(long, default_value = "bosun-agent")]
        field_manager: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Create an Application.
    Create(Box<AppSpecArgs>),
    /// Resume a halted rollout (skipping the clusters that halted it) or abort it.
    Rollout {
        #[arg(value_parser = ["resume", "abort"])]
        action: String,
        name: String,
    },
    /// Create Applications from Argo CD (argoproj.io/v1alpha1) or Bosun (bosun.dev/v1)
    /// Application manifests; every field Bosun cannot honour is reported.
    Import {
        /// YAML or JSON file (several documents allowed); `-` for standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Cluster for manifests that target the cluster Argo CD runs in (or override theirs).
        #[arg(long, conflicts_with = "selector")]
        cluster: Option<String>,
        /// Or a label selector over clusters.
        #[arg(long)]
        selector: Option<String>,
        /// Import nothing when any document cannot be imported or has a field that would not be
        /// honoured (without it, those documents are skipped and the exit code is 6).
        #[arg(long)]
        strict: bool,
    },
    /// List Applications.
    List {
        /// Keep printing what changes, until interrupted (as `kubectl get --watch`).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show one Application with its per-cluster status.
    Get {
        name: String,
        /// Keep printing the Application each time it changes, until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Ask the Application's clusters to sync now, and wait until every one of them has synced
    /// (exit code 1 when a sync fails, 4 on timeout), as `argocd app sync` does.
    Sync {
        name: String,
        /// Return once the request is recorded, without waiting.
        #[arg(long = "async")]
        no_wait: bool,
        /// Give up waiting after this long (exit code 4).
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Prune what Git no longer has in this sync, even if the sync policy does not prune.
        #[arg(long)]
        prune: bool,
    },
    /// Change some settings of an Application; the others stay (`argocd app set`).
    Set(Box<AppSetArgs>),
    /// Put settings of an Application back to their defaults (`argocd app unset`).
    Unset(AppUnsetArgs),
    /// Change an Application with a patch of its manifest (as `bosun app edit` shows it): a JSON
    /// merge patch (RFC 7386, default) or a JSON patch (RFC 6902).
    Patch {
        name: String,
        /// The patch, JSON or YAML, e.g. `{"spec":{"source":{"targetRevision":"v2"}}}`.
        #[arg(long)]
        patch: String,
        #[arg(long = "type", default_value = "merge", value_parser = ["merge", "json"])]
        patch_type: String,
    },
    /// Edit an Application's manifest in $VISUAL or $EDITOR (default vi), as `kubectl edit`;
    /// saved unchanged, nothing happens. A concurrent change is refused, not overwritten.
    Edit { name: String },
    /// Fetch Git now and re-render.
    Refresh { name: String },
    /// Delete an Application and, as with `argocd app delete`, its objects from its clusters
    /// (whatever its prune policy); `--cascade=false` leaves them in place. Asks first unless
    /// `--yes`.
    Delete {
        name: String,
        /// Delete the Application's objects too; `--cascade=false` orphans them.
        #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        cascade: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// The last syncs of an Application, newest first.
    History { name: String },
    /// Deploy the revision of a history entry again; automated sync pauses until `bosun app sync`.
    Rollback { name: String, id: u64 },
    /// What differs between Git and the cluster, object by object (Secret values redacted).
    /// Exit code 1 when something differs, as `argocd app diff` and diff(1).
    Diff {
        name: String,
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Wait until the Application is synced and/or healthy.
    Wait {
        name: String,
        #[arg(long)]
        synced: bool,
        #[arg(long)]
        healthy: bool,
        /// Give up after this long (exit code 4).
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// `bosun app set`: only what is given changes.
#[derive(Debug, Args)]
pub struct AppSetArgs {
    pub name: String,
    #[arg(long)]
    pub repo: Option<String>,
    #[arg(long)]
    pub path: Option<String>,
    /// Branch, tag or commit (empty: HEAD).
    #[arg(long)]
    pub revision: Option<String>,
    /// Destination cluster (replaces a selector).
    #[arg(long, conflicts_with = "selector")]
    pub cluster: Option<String>,
    /// Destination label selector (replaces a cluster name).
    #[arg(long)]
    pub selector: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
    /// `automated` or `none` (manual sync).
    #[arg(long, value_parser = ["automated", "none"])]
    pub sync_policy: Option<String>,
    /// Delete objects removed from Git (`--auto-prune=false` to stop).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub auto_prune: Option<bool>,
    /// Revert changes made on the cluster.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub self_heal: Option<bool>,
    /// Allow a render with no objects.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub allow_empty: Option<bool>,
    /// Include subdirectories.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub recurse: Option<bool>,
    /// Set a sync option, `Key=value` (repeatable).
    #[arg(long = "sync-option")]
    pub sync_options: Vec<String>,
    /// Add a dependency (repeatable or comma-separated).
    #[arg(long = "depends-on", value_delimiter = ',')]
    pub depends_on: Vec<String>,
    #[arg(long)]
    pub revision_history_limit: Option<u32>,
    /// Retries of a failed sync (0: none).
    #[arg(long)]
    pub sync_retry_limit: Option<u32>,
}

/// `bosun app unset`: each flag puts one setting back to its default.
#[derive(Debug, Args)]
pub struct AppUnsetArgs {
    pub name: String,
    /// A sync option to remove, by key (`PruneLast`; repeatable).
    #[arg(long = "sync-option")]
    pub sync_options: Vec<String>,
    /// A dependency to remove (repeatable or comma-separated).
    #[arg(long = "depends-on", value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// Every ignoreDifferences rule.
    #[arg(long)]
    pub ignore_differences: bool,
    /// Back to 10.
    #[arg(long)]
    pub revision_history_limit: bool,
    /// The rollout strategy (new revisions go to every cluster at once).
    #[arg(long)]
    pub rollout: bool,
}

#[derive(Debug, Args)]
pub struct AppSpecArgs {
    pub name: String,
    /// Update the Application when it exists already (its spec is replaced).
    #[arg(long)]
    pub upsert: bool,
    /// Accept a --cluster that is not registered yet (it gets the Application once it joins).
    #[arg(long)]
    pub allow_unknown_cluster: bool,
    /// Git repository URL (file://, git://, http(s)://, ssh://).
    #[arg(long)]
    pub repo: String,
    /// Directory of manifests in the repository.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Branch, tag or commit (default: HEAD).
    #[arg(long, default_value = "")]
    pub revision: String,
    /// Destination cluster name.
    #[arg(long, required_unless_present = "selector", conflicts_with = "selector", default_value = "")]
    pub cluster: String,
    /// Or every cluster whose labels match this selector (`env=prod,region in (eu,us)`);
    /// facts are labels too: `bosun.dev/name` (from the certificate), `fact.bosun.dev/kubernetesVersion`,
    /// `fact.bosun.dev/nodes` (reported by the agent).
    #[arg(long, default_value = "")]
    pub selector: String,
    /// Applications that must be Synced and Healthy on a cluster first (repeatable or comma-separated).
    #[arg(long = "depends-on", value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// Completed syncs kept per cluster for `app history` and `app rollback` (Argo CD's
    /// revisionHistoryLimit; default 10).
    #[arg(long)]
    pub revision_history_limit: Option<u32>,
    /// Roll a new revision out in steps: a count of clusters (2) or a percentage (25%).
    #[arg(long)]
    pub rollout_step: Option<String>,
    /// Clusters of the current step that may still be in progress when the next starts.
    #[arg(long, default_value_t = 0, requires = "rollout_step")]
    pub rollout_max_unavailable: u32,
    /// Pause between steps.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, requires = "rollout_step")]
    pub rollout_pause: Duration,
    /// Cluster label whose value orders the steps (then the name).
    #[arg(long, default_value = "", requires = "rollout_step")]
    pub rollout_order_by: String,
    /// How long an offline cluster may hold a step before it is skipped.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, requires = "rollout_step")]
    pub rollout_offline_timeout: Duration,
    /// Namespace for namespaced objects without one.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Sync automatically when Git changes.
    #[arg(long)]
    pub auto_sync: bool,
    /// Delete objects removed from Git.
    #[arg(long)]
    pub prune: bool,
    /// Revert changes made on the cluster.
    #[arg(long)]
    pub self_heal: bool,
    /// Create the destination namespace.
    #[arg(long)]
    pub create_namespace: bool,
    /// Include subdirectories.
    #[arg(long)]
    pub recurse: bool,
    /// Allow a render with no objects (which would prune everything).
    #[arg(long)]
    pub allow_empty: bool,
    /// Retries of a failed sync (0: none).
    #[arg(long, default_value_t = 5)]
    pub sync_retry_limit: u32,
    /// First retry delay, doubled per attempt.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub sync_retry_backoff: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub sync_retry_max: Duration,
    /// An Argo CD sync option: CreateNamespace, ApplyOutOfSyncOnly, PruneLast,
    /// PrunePropagationPolicy=foreground|background|orphan (repeatable, `Key=value`).
    #[arg(long = "sync-option")]
    pub sync_options: Vec<String>,
    /// Do not compare a field: `KIND[.GROUP][/NAME]=/json/pointer` or `=.jq | path`, e.g.
    /// `Deployment.apps=/spec/replicas` (repeatable).
    #[arg(long = "ignore-difference", value_parser = parse_ignore)]
    pub ignore_differences: Vec<pb::IgnoreDifference>,
    /// Do not compare fields owned by a field manager: `KIND[.GROUP][/NAME]=MANAGER` (repeatable).
    #[arg(long = "ignore-manager", value_parser = parse_ignore)]
    pub ignore_managers: Vec<pb::IgnoreDifference>,
}

/// Parses `KIND[.GROUP][/NAME]=VALUE` into a rule whose value is a JSON pointer (starting with
/// '/'), a jq path expression (starting with '.') or a field manager name.
fn parse_ignore(s: &str) -> Result<pb::IgnoreDifference, String> {
    let (selector, value) = s.split_once('=').ok_or("expected KIND[.GROUP][/NAME]=VALUE")?;
    let (kind_group, name) = selector.split_once('/').unwrap_or((selector, ""));
    let (kind, group) = kind_group.split_once('.').unwrap_or((kind_group, ""));
    if kind.is_empty() || value.is_empty() {
        return Err("expected KIND[.GROUP][/NAME]=VALUE".into());
    }
    let mut rule =
        pb::IgnoreDifference { group: group.into(), kind: kind.into(), name: name.into(), ..Default::default() };
    if value.starts_with('/') {
        rule.json_pointers.push(value.into());
    } else if value.starts_with('.') {
        rule.jq_path_expressions.push(value.into());
    } else {
        rule.managed_fields_managers.push(value.into());
    }
    Ok(rule)
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Register a cluster and print its single-use join token.
    Add {
        name: String,
        /// Token lifetime.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// A label of the cluster, KEY=VALUE (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
    },
    /// Set labels (KEY=VALUE) or remove them (KEY-), like `kubectl label`.
    Label {
        name: String,
        #[arg(required = true)]
        changes: Vec<String>,
    },
    List {
        /// Keep printing what changes, until interrupted (as `kubectl get --watch`).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    Get {
        /// Keep printing the cluster each time it changes, until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
        name: String,
    },
    /// Delete a cluster; its agent's certificate is refused from then on.
    Delete { name: String },
    /// Revoke a cluster's certificates and close its streams; its Applications stay.
    /// `bosun cluster add NAME` gives a token to join again.
    Revoke { name: String },
    /// Registration tokens: one token for many spokes (Terraform, Helm values), reusable
    /// until it expires; each agent names its cluster (`--cluster-name`) and gets its own
    /// identity.
    #[command(subcommand)]
    RegistrationToken(RegistrationTokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCmd {
    /// Create one and print it (once; only its hash is stored).
    Create {
        name: String,
        /// Lifetime (at most 30 days); agents that registered keep their identities after.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// A label every cluster registered with it starts with, KEY=VALUE (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
    },
    /// Registration tokens, with when they expire and the clusters they registered.
    List,
    /// Delete one: no agent can register with it any more.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Create a credential (re-creating a name replaces it). Prints a bearer token once, or
    /// with --cert-out writes NAME.pem, NAME.key (generated here; never sent) and ca.pem.
    Create {
        name: String,
        /// admin or readonly.
        #[arg(long, default_value = "readonly")]
        role: String,
        /// Issue a client certificate into this directory instead of a token.
        #[arg(long)]
        cert_out: Option<PathBuf>,
        /// Lifetime (default: tokens never expire; certificates use the server's default).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    List,
    /// Delete a credential; its token or certificate is refused from then on.
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Store credentials for a repository URL or URL prefix. https: a username, and a password
    /// or token read from stdin (or BOSUN_REPO_PASSWORD), never from the command line. ssh
    /// (`ssh://…` or `git@host:org/`): a deploy key file and the host keys to accept.
    Add {
        url: String,
        /// https: the username (for tokens, often `x-access-token` or `oauth2`).
        #[arg(long, default_value = "")]
        username: String,
        /// ssh: the private deploy key (OpenSSH format).
        #[arg(long, requires = "known_hosts")]
        ssh_key_file: Option<PathBuf>,
        /// ssh: known_hosts lines for the server (`ssh-keyscan HOST > FILE`, then check the
        /// fingerprints); hosts not listed are refused.
        #[arg(long)]
        known_hosts: Option<PathBuf>,
    },
    List,
    Delete {
        url: String,
    },
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self { code: 1, error }
    }
}

fn from_status(s: tonic::Status) -> Failure {
    let code = match s.code() {
        tonic::Code::NotFound => 3,
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => 5,
        _ => 1,
    };
    Failure { code, error: anyhow!("{}", s.message()) }
}

struct Resolved {
    server: String,
    /// A bearer token, unless a client certificate is used.
    token: Option<String>,
    identity: Option<(String, String)>,
    ca: String,
}

fn resolve(c: &Connection) -> anyhow::Result<Resolved> {
    // An address or a data directory given says where to go; otherwise a context does, when
    // one is saved, and else ./bosun-data.
    let wanted = c.context.is_some() || (c.server.is_none() && c.data_dir.is_none());
    if let Some(path) = config::path().filter(|_| wanted) {
        let cfg = config::Config::load(&path)?;
        match cfg.context(c.context.as_deref()) {
            Some(ctx) => return resolve_context(c, ctx),
            None if c.context.is_some() => anyhow::bail!(
                "no context {} in {} (bosun context lists them; bosun login adds one)",
                c.context.as_deref().unwrap_or_default(),
                path.display()
            ),
            None => {}
        }
    }
    let data_dir = c.data_dir.clone().unwrap_or_else(|| PathBuf::from("bosun-data"));
    let server = match &c.server {
        Some(s) => s.clone(),
        None => match std::fs::read(data_dir.join("endpoints.json")) {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b)?;
                format!("https://{}", v["admin"].as_str().unwrap_or("127.0.0.1:7443"))
            }
            Err(_) => "https://127.0.0.1:7443".into(),
        },
    };
    let identity = read_identity(c.cert.as_deref(), c.key.as_deref())?;
    let token = match (&c.token, &identity) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(_)) => None,
        (None, None) => {
            Some(std::fs::read_to_string(data_dir.join("admin-token")).map(|t| t.trim().to_string()).with_context(
                || {
                    format!(
                        "no --token or --cert given, no context saved by `bosun login`, and no admin token in {} (set BOSUN_TOKEN or --data-dir)",
                        data_dir.display()
                    )
                },
            )?)
        }
    };
    let ca_path = c.ca_file.clone().unwrap_or_else(|| {
        let bundle = data_dir.join("ca-bundle.pem");
        if bundle.exists() { bundle } else { data_dir.join("ca.pem") }
    });
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading the control plane CA {} (set --ca-file)", ca_path.display()))?;
    Ok(Resolved { server, token, identity, ca })
}

/// A saved context, with whatever the command line or environment gives taking precedence.
fn resolve_context(c: &Connection, ctx: &config::Context) -> anyhow::Result<Resolved> {
    let identity = match read_identity(c.cert.as_deref(), c.key.as_deref())? {
        Some(i) => Some(i),
        None if c.token.is_none() => read_identity(ctx.cert.as_deref(), ctx.key.as_deref())?,
        None => None,
    };
    let token = match (&c.token, &identity) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(ctx.token.clone().ok_or_else(|| {
            anyhow!("context {} has no credential (logged out): bosun login {} again", ctx.name, ctx.server)
        })?),
    };
    let ca = match &c.ca_file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading the control plane CA {}", p.display()))?
        }
        None => ctx.ca.clone(),
    };
    Ok(Resolved { server: c.server.clone().unwrap_or_else(|| ctx.server.clone()), token, identity, ca })
}

fn read_identity(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Option<(String, String)>> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => Some((
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
        )),
        _ => None,
    })
}

/// `bosun login`: checks the credential with WhoAmI, then saves the context and makes it
/// current.
async fn login(conn: &Connection, out: Output, server: String, name: Option<String>) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal};
    let server = if server.contains("://") { server } else { format!("https://{server}") };
    let ca_file = conn.ca_file.clone().ok_or_else(|| Failure {
        code: 2,
        error: anyhow!("--ca-file is required: the control plane's CA (bosun-data/ca-bundle.pem on its machine)"),
    })?;
    let ca = std::fs::read_to_string(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let token = match (&conn.token, &conn.cert) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(_)) => None,
        (None, None) => {
            if std::io::stdin().is_terminal() {
                eprint!("Token: ");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the token from standard input")?;
            let t = line.trim().to_string();
            if t.is_empty() {
                return Err(Failure { code: 2, error: anyhow!("no token: pass --token, set BOSUN_TOKEN, or type it") });
            }
            Some(t)
        }
    };
    let absolute = |p: &Option<PathBuf>| p.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let ctx = config::Context {
        name: name.unwrap_or_else(|| config::name_of(&server)),
        server: server.clone(),
        ca,
        token,
        cert: absolute(&conn.cert),
        key: absolute(&conn.key),
    };
    let check = Connection {
        server: Some(server.clone()),
        token: ctx.token.clone(),
        cert: ctx.cert.clone(),
        key: ctx.key.clone(),
        ca_file: Some(ca_file),
        data_dir: None,
        context: None,
    };
    let who = connect(&check).await?.who_am_i(pb::WhoAmIRequest {}).await.map_err(from_status)?.into_inner();
    let path = config::required_path()?;
    let mut cfg = config::Config::load(&path)?;
    let name = ctx.name.clone();
    cfg.upsert(ctx);
    cfg.save(&path)?;
    if out.is_table() {
        println!("logged in to {server} as {} (role {}); context {name} is current", who.name, who.role);
        Ok(())
    } else {
        Ok(print_value(out, &json!({"context": name, "server": server, "name": who.name, "role": who.role}))?)
    }
}

/// The admin API client the CLI uses.
pub type Admin =
    pb::admin_service_client::AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

/// Adds the bearer token (when one is used) to every call.
#[derive(Clone)]
pub struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// An authenticated admin API client from the connection settings.
pub async fn connect(c: &Connection) -> Result<Admin, Failure> {
    let r = resolve(c)?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&r.ca));
    if let Some((cert, key)) = &r.identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(r.server.clone())
        .map_err(|e| anyhow!("bad --server {}: {e}", r.server))?
        .tls_config(tls)
        .map_err(|e| anyhow!("{e}"))?
        .connect()
        .await
        .map_err(|e| anyhow!("connecting to {}: {e}", r.server))?;
    let header = match &r.token {
        Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| anyhow!("the admin token has invalid characters"))?),
        None => None,
    };
    Ok(pb::admin_service_client::AdminServiceClient::with_interceptor(channel, Auth(header)))
}

fn sync_name(v: i32) -> String {
    bosun_proto::convert::sync_from_pb(v).to_string()
}

fn health_name(v: i32) -> String {
    bosun_proto::convert::health_from_pb(v).to_string()
}

/// The JSON form of an Application (also the YAML form), with enum names spelled out.
pub fn app_json(a: &pb::Application) -> Value {
    let spec = a.spec.clone().unwrap_or_default();
    let src = spec.source.unwrap_or_default();
    let dst = spec.destination.unwrap_or_default();
    let p = spec.sync_policy.unwrap_or_default();
    let st = a.status.clone().unwrap_or_default();
    json!({
        "name": a.name,
        "generation": a.generation,
        "spec": {
            "source": {"repoURL": src.repo_url, "targetRevision": src.target_revision, "path": src.path, "recurse": src.recurse},
            "destination": {"cluster": dst.cluster, "selector": dst.selector, "namespace": dst.namespace},
            "dependsOn": spec.depends_on,
            "revisionHistoryLimit": spec.revision_history_limit.unwrap_or(10),
            "syncPolicy": {"automated": p.automated, "prune": p.prune, "selfHeal": p.self_heal, "createNamespace": p.create_namespace, "allowEmpty": p.allow_empty},
            "ignoreDifferences": spec.ignore_differences.iter().map(|d| json!({"group": d.group, "kind": d.kind, "name": d.name,
                "jsonPointers": d.json_pointers, "managedFieldsManagers": d.managed_fields_managers, "jqPathExpressions": d.jq_path_expressions})).collect::<Vec<_>>(),
        },
        "status": {
            "parent": st.parent,
            "children": st.children,
            "warnings": st.warnings,
            "rollout": st.rollout,
            "sync": sync_name(st.sync_status),
            "health": health_name(st.health),
            "revision": st.revision,
            "bundleDigest": st.bundle_digest,
            "error": st.error,
            "refreshedAt": rfc3339(st.refreshed_at),
            "syncRequest": st.sync_request,
            "rolledBackTo": st.rolled_back_to,
            "rollbackRevision": st.rollback_revision,
            "clusters": st.clusters.iter().map(|c| json!({
                "cluster": c.cluster, "connected": c.connected, "sync": sync_name(c.sync_status), "health": health_name(c.health),
                "revision": c.revision, "bundleDigest": c.bundle_digest, "message": c.message, "syncedAt": rfc3339(c.synced_at),
                "observedSyncRequest": c.observed_sync_request, "operation": c.operation,
                "resources": c.resources.iter().map(|r| json!({"group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name,
                    "sync": sync_name(r.sync_status), "health": health_name(r.health), "message": r.message, "hook": r.hook})).collect::<Vec<_>>(),
                "children": c.children.iter().map(|r| json!({"group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name,
                    "health": health_name(r.health), "message": r.message, "parentKind": r.parent_kind, "parentName": r.parent_name})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }
    })
}

pub fn cluster_json(c: &pb::Cluster) -> Value {
    json!({"name": c.name, "joined": c.joined, "connected": c.connected, "lastSeen": rfc3339(c.last_seen), "agentVersion": c.agent_version,
           "certificateExpires": rfc3339(c.certificate_expires), "revokedAt": rfc3339(c.revoked_at),
           "labels": c.labels.iter().collect::<std::collections::BTreeMap<_, _>>(), "facts": c.facts.iter().collect::<std::collections::BTreeMap<_, _>>()})
}

fn print_value(out: Output, v: &Value) -> anyhow::Result<()> {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(v)?),
        Output::Name => {
            let items = match v {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            for item in items {
                // Repositories are named by their URL.
                let name = item.get("name").or_else(|| item.get("url")).and_then(Value::as_str);
                println!(
                    "{}",
                    name.ok_or_else(|| anyhow!("-o name: what this command prints has no name; use -o json"))?
                );
            }
        }
        Output::Table | Output::Wide => unreachable!("tables are printed by the caller"),
    }
    Ok(())
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let widths = column_widths(headers, &rows);
    table_line(&widths, headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        table_line(&widths, r);
    }
}

/// Each column as wide as its widest cell or header.
fn column_widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    widths
}

fn table_line(widths: &[usize], cells: Vec<String>) {
    let s: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
    println!("{}", s.join("   ").trim_end());
}

/// What `--watch` follows: every Application or one, every cluster or one.
enum Watched {
    Apps(Option<String>),
    Clusters(Option<String>),
}

enum WatchedItem {
    App(Box<pb::Application>),
    Cluster(Box<pb::Cluster>),
}

impl WatchedItem {
    fn name(&self) -> &str {
        match self {
            WatchedItem::App(a) => &a.name,
            WatchedItem::Cluster(c) => &c.name,
        }
    }

    fn json(&self) -> Value {
        match self {
            WatchedItem::App(a) => app_json(a),
            WatchedItem::Cluster(c) => cluster_json(c),
        }
    }

    /// What counts as a change: everything but the times that move on their own (the last
    /// refresh of an Application, when a cluster was last seen).
    fn key(&self) -> Value {
        let mut v = self.json();
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            status.remove("refreshedAt");
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("lastSeen");
        }
        v
    }

    fn row(&self, wide: bool) -> Vec<String> {
        match self {
            WatchedItem::App(a) => app_row(a, wide),
            WatchedItem::Cluster(c) => cluster_row(c, wide),
        }
    }
}

async fn fetch_watched(c: &mut Admin, what: &Watched) -> Result<Vec<WatchedItem>, Failure> {
    Ok(match what {
        Watched::Apps(None) => c
            .list_applications(pb::ListApplicationsRequest {})
            .await
            .map_err(from_status)?
            .into_inner()
            .applications
            .into_iter()
            .map(|a| WatchedItem::App(Box::new(a)))
            .collect(),
        Watched::Apps(Some(name)) => {
            let a = c.get_application(pb::GetApplicationRequest { name: name.clone() }).await.map_err(from_status)?;
            vec![WatchedItem::App(Box::new(a.into_inner()))]
        }
        Watched::Clusters(None) => c
            .list_clusters(pb::ListClustersRequest {})
            .await
            .map_err(from_status)?
            .into_inner()
            .clusters
            .into_iter()
            .map(|c| WatchedItem::Cluster(Box::new(c)))
            .collect(),
        Watched::Clusters(Some(name)) => {
            let cl = c.get_cluster(pb::GetClusterRequest { name: name.clone() }).await.map_err(from_status)?;
            vec![WatchedItem::Cluster(Box::new(cl.into_inner()))]
        }
    })
}

/// `--watch`, as `kubectl get --watch`: prints what is there, then whatever changes until
/// interrupted — a table's header once and then the rows that changed, or the changed objects
/// in JSON, YAML or by name (one Application's detail view is printed whole each time).
/// Status reports are noticed at once through `WatchStatus`; changes without a report (a
/// spec, a connection, labels) within two seconds. A watched object that is deleted ends the
/// watch with NotFound's exit code.
async fn watch(c: &mut Admin, out: Output, what: Watched) -> Result<(), Failure> {
    let application = match &what {
        Watched::Apps(Some(name)) => name.clone(),
        _ => String::new(),
    };
    let mut seen: std::collections::BTreeMap<String, Value> = Default::default();
    let mut widths: Option<Vec<usize>> = None;
    let mut stream: Option<tonic::Streaming<pb::StatusEvent>> = None;
    loop {
        if stream.is_none() {
            let req = pb::WatchStatusRequest { application: application.clone() };
            stream = c.clone().watch_status(req).await.ok().map(|r| r.into_inner());
        }
        let items = fetch_watched(c, &what).await?;
        let keys: Vec<Value> = items.iter().map(WatchedItem::key).collect();
        let changed: Vec<&WatchedItem> =
            items.iter().zip(&keys).filter(|(i, k)| seen.get(i.name()) != Some(*k)).map(|(i, _)| i).collect();
        let wide = out == Output::Wide;
        match (&what, out) {
            (Watched::Apps(Some(_)), Output::Table | Output::Wide) => {
                for item in &changed {
                    if let WatchedItem::App(a) = item {
                        if !seen.is_empty() {
                            println!();
                        }
                        print_app(out, a).map_err(|e| Failure { code: 1, error: e })?;
                    }
                }
            }
            (_, Output::Table | Output::Wide) => {
                let headers = match what {
                    Watched::Apps(_) => app_columns(out),
                    Watched::Clusters(_) => cluster_columns(out),
                };
                let rows: Vec<Vec<String>> = changed.iter().map(|i| i.row(wide)).collect();
                let w = widths.get_or_insert_with(|| {
                    let w = column_widths(headers, &rows);
                    table_line(&w, headers.iter().map(|h| h.to_string()).collect());
                    w
                });
                for r in rows {
                    table_line(w, r);
                }
            }
            _ => {
                for item in &changed {
                    print_value(out, &item.json()).map_err(|e| Failure { code: 1, error: e })?;
                }
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        seen = items.iter().map(|i| i.name().to_string()).zip(keys).collect();
        // Wait for a status report or the next look, whichever comes first; a burst of
        // reports is taken as one change.
        let Some(s) = stream.as_mut() else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        };
        tokio::select! {
            m = s.message() => {
                if !matches!(m, Ok(Some(_))) {
                    // The stream ended: look again after the usual interval, then reopen it
                    // (never in a tight loop against a server that keeps closing it).
                    stream = None;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
                let settle = tokio::time::sleep(Duration::from_millis(100));
                tokio::pin!(settle);
                loop {
                    tokio::select! {
                        m = s.message() => if !matches!(m, Ok(Some(_))) { stream = None; break; },
                        _ = &mut settle => break,
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// One Application's row: NAME CLUSTER SYNC HEALTH REVISION ERROR, and with `wide` also
/// NAMESPACE, SYNC POLICY, REPO, PATH and TARGET before ERROR (as `argocd app list` shows them).
fn app_row(a: &pb::Application, wide: bool) -> Vec<String> {
    let v = app_json(a);
    let (spec, s) = (&v["spec"], &v["status"]);
    let text = |x: &Value| x.as_str().unwrap_or_default().to_string();
    let destination = match spec["destination"]["selector"].as_str().filter(|s| !s.is_empty()) {
        Some(sel) => format!("selector:{sel}"),
        None => text(&spec["destination"]["cluster"]),
    };
    let mut row = vec![a.name.clone(), destination, text(&s["sync"]), text(&s["health"]), short(&text(&s["revision"]))];
    if wide {
        let p = &spec["syncPolicy"];
        let policy = match (p["automated"] == true, p["prune"] == true, p["selfHeal"] == true) {
            (false, ..) => "Manual".to_string(),
            (true, prune, heal) => ["Auto", if prune { "Prune" } else { "" }, if heal { "SelfHeal" } else { "" }]
                .iter()
                .filter(|x| !x.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("-"),
        };
        let target = spec["source"]["targetRevision"].as_str().filter(|t| !t.is_empty()).unwrap_or("HEAD");
        row.extend([
            text(&spec["destination"]["namespace"]),
            policy,
            text(&spec["source"]["repoURL"]),
            text(&spec["source"]["path"]),
            target.to_string(),
        ]);
    }
    row.push(text(&s["error"]));
    row
}

const APP_COLUMNS: &[&str] = &["NAME", "CLUSTER", "SYNC", "HEALTH", "REVISION", "ERROR"];
const APP_COLUMNS_WIDE: &[&str] =
    &["NAME", "CLUSTER", "SYNC", "HEALTH", "REVISION", "NAMESPACE", "SYNC POLICY", "REPO", "PATH", "TARGET", "ERROR"];

fn app_columns(out: Output) -> &'static [&'static str] {
    if out == Output::Wide { APP_COLUMNS_WIDE } else { APP_COLUMNS }
}

fn print_apps(out: Output, apps: &[pb::Application]) -> anyhow::Result<()> {
    if out.is_table() {
        table(app_columns(out), apps.iter().map(|a| app_row(a, out == Output::Wide)).collect());
        return Ok(());
    }
    print_value(out, &Value::Array(apps.iter().map(app_json).collect()))
}

fn print_app(out: Output, a: &pb::Application) -> anyhow::Result<()> {
    if !out.is_table() {
        return print_value(out, &app_json(a));
    }
    let v = app_json(a);
    let src = &v["spec"]["source"];
    println!("Name:        {}", a.name);
    println!("Repository:  {}", src["repoURL"].as_str().unwrap_or_default());
    println!("Path:        {}", src["path"].as_str().unwrap_or_default());
    println!("Target:      {}", src["targetRevision"].as_str().filter(|s| !s.is_empty()).unwrap_or("HEAD"));
    let label = bosun_core::tracking::label_value(&a.name);
    if label != a.name {
        // The name is longer than a label value: objects carry this shortened form.
        println!("Tracking:    {}={label}", bosun_core::tracking::APP_LABEL);
    }
    if let Some(sel) = v["spec"]["destination"]["selector"].as_str().filter(|s| !s.is_empty()) {
        println!("Selector:    {sel}");
    }
    let list = |x: &Value| -> String {
        x.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
    };
    if !list(&v["spec"]["dependsOn"]).is_empty() {
        println!("Depends on:  {}", list(&v["spec"]["dependsOn"]));
    }
    if let Some(p) = v["status"]["parent"].as_str().filter(|s| !s.is_empty()) {
        println!("Parent:      {p}");
    }
    if !list(&v["status"]["children"]).is_empty() {
        println!("Children:    {}", list(&v["status"]["children"]));
    }
    if let Some(r) = v["status"]["rollout"].as_str().filter(|s| !s.is_empty()) {
        println!("Rollout:     {r}");
    }
    for w in v["status"]["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        println!("Warning:     {w}");
    }
    println!("Revision:    {}", v["status"]["revision"].as_str().unwrap_or_default());
    println!("Sync:        {}", v["status"]["sync"].as_str().unwrap_or_default());
    println!("Health:      {}", v["status"]["health"].as_str().unwrap_or_default());
    if let Some(e) = v["status"]["error"].as_str().filter(|e| !e.is_empty()) {
        println!("Error:       {e}");
    }
    if let Some(r) = v["status"]["rollbackRevision"].as_str().filter(|r| !r.is_empty()) {
        let id = &v["status"]["rolledBackTo"];
        println!("Rolled back: to history {id} ({}); automated sync paused until `bosun app sync`", short(r));
    }
    for c in v["status"]["clusters"].as_array().into_iter().flatten() {
        println!();
        println!(
            "Cluster {} ({}): {} / {}",
            c["cluster"].as_str().unwrap_or_default(),
            if c["connected"] == true { "connected" } else { "disconnected" },
            c["sync"].as_str().unwrap_or_default(),
            c["health"].as_str().unwrap_or_default()
        );
        if let Some(m) = c["message"].as_str().filter(|m| !m.is_empty()) {
            println!("  {m}");
        }
        let rows = c["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let kind = r["kind"].as_str().unwrap_or_default();
                let hook = if r["hook"] == true { " (hook)" } else { "" };
                vec![
                    format!("  {kind}{hook}"),
                    r["namespace"].as_str().unwrap_or_default().into(),
                    r["name"].as_str().unwrap_or_default().into(),
                    r["sync"].as_str().unwrap_or_default().into(),
                    r["health"].as_str().unwrap_or_default().into(),
                    r["message"].as_str().unwrap_or_default().into(),
                ]
            })
            .collect();
        table(&["  KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH", "MESSAGE"], rows);
    }
    Ok(())
}

fn print_history(out: Output, entries: &[pb::HistoryEntry]) -> anyhow::Result<()> {
    let json: Vec<Value> = entries
        .iter()
        .map(|e| json!({"id": e.id, "cluster": e.cluster, "revision": e.revision, "bundleDigest": e.bundle_digest, "syncedAt": rfc3339(e.synced_at),
                        "sync": sync_name(e.sync_status), "health": health_name(e.health), "initiatedBy": e.initiated_by}))
        .collect();
    if !out.is_table() {
        return print_value(out, &Value::Array(json));
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.cluster.clone(),
                short(&e.revision),
                age(e.synced_at),
                sync_name(e.sync_status),
                health_name(e.health),
                e.initiated_by.clone(),
            ]
        })
        .collect();
    table(&["ID", "CLUSTER", "REVISION", "SYNCED", "SYNC", "HEALTH", "INITIATED BY"], rows);
    Ok(())
}

/// Prints what differs; whether anything does.
fn print_diff(out: Output, app: &pb::Application, only: Option<&str>) -> anyhow::Result<bool> {
    let clusters = app.status.as_ref().map(|s| s.clusters.clone()).unwrap_or_default();
    let mut items = Vec::new();
    for c in clusters.iter().filter(|c| only.is_none_or(|o| o == c.cluster)) {
        for r in c.resources.iter().filter(|r| r.sync_status != pb::SyncStatus::Synced as i32) {
            let object = format!(
                "{}{}/{}{}",
                r.kind,
                if r.group.is_empty() { String::new() } else { format!(".{}", r.group) },
                if r.namespace.is_empty() { String::new() } else { format!("{}/", r.namespace) },
                r.name
            );
            let text = if r.diff.is_empty() { format!("{}\n", r.message) } else { r.diff.clone() };
            items.push((c.cluster.clone(), object, text));
        }
    }
    if !out.is_table() {
        let v: Vec<Value> = items.iter().map(|(c, o, d)| json!({"cluster": c, "object": o, "diff": d})).collect();
        print_value(out, &json!({"modified": !items.is_empty(), "objects": v}))?;
        return Ok(!items.is_empty());
    }
    for (c, o, d) in &items {
        println!("=== {o} on {c}");
        print!("{d}");
    }
    Ok(!items.is_empty())
}

/// Asks on the terminal; refuses (exit code 2) when there is no terminal to ask on.
fn confirm(question: &str) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure { code: 2, error: anyhow!("{question} Not asked without a terminal: pass --yes") });
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure { code: 1, error: anyhow!("not confirmed; nothing was deleted") })
    }
}

/// Waits until every cluster of `name` has acted on sync request `request` and is Synced and
/// Healthy; a sync that failed for good on a cluster ends the wait (exit code 1).
async fn wait_synced_at(
    c: &mut Admin,
    out: Output,
    name: &str,
    request: u64,
    timeout: Duration,
) -> Result<(), Failure> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let app =
            c.get_application(pb::GetApplicationRequest { name: name.into() }).await.map_err(from_status)?.into_inner();
        let clusters = app.status.as_ref().map(|s| s.clusters.clone()).unwrap_or_default();
        let synced = |c: &pb::ClusterAppStatus| c.sync_status == pb::SyncStatus::Synced as i32;
        let healthy = |c: &pb::ClusterAppStatus| c.health == pb::HealthStatus::Healthy as i32;
        let observed = |c: &pb::ClusterAppStatus| c.observed_sync_request >= request;
        let done = clusters.iter().filter(|c| observed(c) && synced(c) && healthy(c)).count();
        let line = format!("{name}: {done}/{} clusters synced and healthy", clusters.len());
        if line != last {
            eprintln!("{:>5.1}s  {line}", start.elapsed().as_secs_f64());
            last = line;
        }
        if let Some(failed) = clusters.iter().find(|c| observed(c) && c.message.contains("sync failed")) {
            return Err(Failure { code: 1, error: anyhow!("sync failed on {}: {}", failed.cluster, failed.message) });
        }
        if !clusters.is_empty() && done == clusters.len() {
            return print_app(out, &app).map_err(|e| Failure { code: 1, error: e });
        }
        if start.elapsed() >= timeout {
            return Err(Failure {
                code: 4,
                error: anyhow!(
                    "timed out after {} waiting for {name} to sync ({done} of {} clusters synced and healthy); `bosun app get {name}` shows where it stands",
                    humantime::format_duration(timeout),
                    clusters.len()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One cluster's row: NAME STATUS LAST SEEN KUBERNETES AGENT LABELS, and with `wide` also
/// NODES and CERTIFICATE (when the agent's certificate expires) before LABELS.
fn cluster_row(c: &pb::Cluster, wide: bool) -> Vec<String> {
    let status = if c.connected {
        "Connected"
    } else if c.joined {
        "Disconnected"
    } else {
        "Awaiting join"
    };
    let mut row = vec![
        c.name.clone(),
        status.into(),
        if c.connected { "now".into() } else { age(c.last_seen) },
        c.facts.get("kubernetesVersion").cloned().unwrap_or_default(),
        c.agent_version.clone(),
    ];
    if wide {
        row.extend([c.facts.get("nodes").cloned().unwrap_or_default(), age(c.certificate_expires)]);
    }
    let mut labels: Vec<_> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    row.push(labels.join(","));
    row
}

fn cluster_columns(out: Output) -> &'static [&'static str] {
    if out == Output::Wide {
        &["NAME", "STATUS", "LAST SEEN", "KUBERNETES", "AGENT", "NODES", "CERTIFICATE", "LABELS"]
    } else {
        &["NAME", "STATUS", "LAST SEEN", "KUBERNETES", "AGENT", "LABELS"]
    }
}

fn print_clusters(out: Output, cs: &[pb::Cluster]) -> anyhow::Result<()> {
    if !out.is_table() {
        return print_value(out, &Value::Array(cs.iter().map(cluster_json).collect()));
    }
    table(cluster_columns(out), cs.iter().map(|c| cluster_row(c, out == Output::Wide)).collect());
    Ok(())
}

/// A Unix time (seconds) as RFC 3339, as kubectl prints timestamps; `null` for 0 (never).
fn rfc3339(secs: i64) -> Value {
    if secs <= 0 {
        return Value::Null;
    }
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs as u64);
    Value::String(humantime::format_rfc3339_seconds(t).to_string())
}

/// A Unix time as kubectl's AGE column shows it: `45s`, `12m`, `3h`, `9d` ago, or `in 5m` for
/// a time to come; `-` for 0 (never).
fn age(secs: i64) -> String {
    if secs <= 0 {
        return "-".into();
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (delta, future) = if secs > now { (secs - now, true) } else { (now - secs, false) };
    let text = match delta {
        d if d < 120 => format!("{d}s"),
        d if d < 7200 => format!("{}m", d / 60),
        d if d < 172_800 => format!("{}h", d / 3600),
        d => format!("{}d", d / 86_400),
    };
    if future { format!("in {text}") } else { text }
}

/// Reads one object from a YAML or JSON file.
fn read_object(path: &std::path::Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.display().to_string();
    let mut objs = bosun_core::manifest::parse_file(&name, &bytes)?;
    if objs.len() != 1 {
        anyhow::bail!("{name}: expected exactly one object, found {}", objs.len());
    }
    Ok(objs.remove(0))
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let out = cli.output;
    match cli.command {
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "bosun", &mut std::io::stdout());
            Ok(())
        }
        Command::Version => {
            if out.is_table() {
                println!("bosun {}", env!("CARGO_PKG_VERSION"));
            } else {
                print_value(out, &json!({"client": env!("CARGO_PKG_VERSION")}))?;
            }
            Ok(())
        }
        Command::Health { file } => {
            let obj = read_object(&file)?;
            let a = bosun_core::health::assess(&obj);
            let v = json!({"status": a.as_ref().map(|a| a.health.to_string()), "message": a.as_ref().map(|a| a.message.clone()).unwrap_or_default()});
            if out.is_table() {
                match a {
                    Some(a) if a.message.is_empty() => println!("{}", a.health),
                    Some(a) => println!("{}: {}", a.health, a.message),
                    None => println!("no health check for this kind (counts as healthy)"),
                }
            } else {
                print_value(out, &v)?;
            }
            Ok(())
        }
        Command::Diff { desired, live, field_manager } => {
            let (d, l) = (read_object(&desired)?, read_object(&live)?);
            let opts = bosun_core::diff::Options { ignore: &[], manager: Some(&field_manager) };
            let drift = bosun_core::diff::drift(&d, &l, opts);
            let text = bosun_core::diff::describe_drift(&d, &l, &drift);
            if out.is_table() {
                print!("{text}");
            } else {
                print_value(out, &json!({"modified": !text.is_empty(), "diff": text}))?;
            }
            // Like diff(1): exit code 1 when they differ, with nothing more to say.
            if text.is_empty() { Ok(()) } else { Err(Failure { code: 1, error: anyhow!("") }) }
        }
        Command::App(cmd) => {
            let mut c = connect(&cli.conn).await?;
            match cmd {
                AppCmd::Create(a) => {
                    let mut ignore = a.ignore_differences;
                    ignore.extend(a.ignore_managers);
                    let mut policy = bosun_core::SyncPolicy {
                        automated: a.auto_sync,
                        prune: a.prune,
                        self_heal: a.self_heal,
                        create_namespace: a.create_namespace,
                        allow_empty: a.allow_empty,
                        retry: bosun_core::app::Retry {
                            limit: a.sync_retry_limit,
                            duration_secs: a.sync_retry_backoff.as_secs(),
                            factor: 2,
                            max_duration_secs: a.sync_retry_max.as_secs(),
                        },
                        ..Default::default()
                    };
                    for o in &a.sync_options {
                        policy.set_option(o).map_err(usage)?;
                    }
                    let spec = pb::ApplicationSpec {
                        ignore_differences: ignore,
                        source: Some(pb::Source {
                            repo_url: a.repo,
                            target_revision: a.revision,
                            path: a.path,
                            recurse: a.recurse,
                        }),
                        destination: Some(pb::Destination {
                            cluster: a.cluster,
                            namespace: a.namespace,
                            selector: a.selector,
                        }),
                        sync_policy: Some(policy.into()),
                        depends_on: a.depends_on,
                        revision_history_limit: a.revision_history_limit,
                        rollout: a.rollout_step.clone().map(|step| pb::RolloutStrategy {
                            step,
                            max_unavailable: a.rollout_max_unavailable,
                            pause_seconds: a.rollout_pause.as_secs(),
                            order_by_label: a.rollout_order_by.clone(),
                            offline_timeout_seconds: a.rollout_offline_timeout.as_secs(),
                        }),
                    };
                    let cluster = spec.destination.as_ref().map(|d| d.cluster.clone()).unwrap_or_default();
                    if !cluster.is_empty() && !a.allow_unknown_cluster {
                        match c.get_cluster(pb::GetClusterRequest { name: cluster.clone() }).await {
                            Ok(_) => {}
                            Err(s) if s.code() == tonic::Code::NotFound => {
                                return Err(Failure {
                                    code: 2,
                                    error: anyhow!(
                                        "cluster {cluster:?} is not registered: register it with `bosun cluster add {cluster}`, or pass --allow-unknown-cluster to create the Application anyway"
                                    ),
                                });
                            }
                            Err(s) => return Err(from_status(s)),
                        }
                    }
                    let created = c
                        .create_application(pb::CreateApplicationRequest {
                            name: a.name.clone(),
                            spec: Some(spec.clone()),
                        })
                        .await;
                    let app = match created {
                        Ok(app) => app.into_inner(),
                        Err(s) if a.upsert && s.code() == tonic::Code::AlreadyExists => c
                            .update_application(pb::UpdateApplicationRequest {
                                name: a.name,
                                spec: Some(spec),
                                generation: 0,
                            })
                            .await
                            .map_err(from_status)?
                            .into_inner(),
                        Err(s) => return Err(from_status(s)),
                    };
                    print_app(out, &app)?;
                }
                AppCmd::List { watch: true } => watch(&mut c, out, Watched::Apps(None)).await?,
                AppCmd::Get { name, watch: true } => watch(&mut c, out, Watched::Apps(Some(name))).await?,
                AppCmd::List { watch: false } => print_apps(
                    out,
                    &c.list_applications(pb::ListApplicationsRequest {})
                        .await
                        .map_err(from_status)?
                        .into_inner()
                        .applications,
                )?,
                AppCmd::Get { name, watch: false } => print_app(
                    out,
                    &c.get_application(pb::GetApplicationRequest { name }).await.map_err(from_status)?.into_inner(),
                )?,
                AppCmd::Sync { name, no_wait, timeout, prune } => {
                    let app = c
                        .sync_application(pb::SyncApplicationRequest { name: name.clone(), prune })
                        .await
                        .map_err(from_status)?
                        .into_inner();
                    if no_wait {
                        print_app(out, &app)?;
                    } else {
                        let request = app.status.as_ref().map(|s| s.sync_request).unwrap_or_default();
                        wait_synced_at(&mut c, out, &name, request, timeout).await?;
                    }
                }
                AppCmd::Set(a) => {
                    let name = a.name.clone();
                    print_app(out, &modify(&mut c, &name, |spec| set(spec, &a)).await?)?
                }
                AppCmd::Unset(a) => {
                    let name = a.name.clone();
                    print_app(out, &modify(&mut c, &name, |spec| unset(spec, &a)).await?)?
                }
                AppCmd::Patch { name, patch, patch_type } => {
                    let patch: Value = serde_saphyr::from_str(&patch)
                        .map_err(|e| Failure { code: 2, error: anyhow!("--patch is not JSON or YAML: {e}") })?;
                    let app = modify(&mut c, &name, |spec| {
                        let mut m = bosun_core::argo::manifest(&name, &spec);
                        apply_patch(&mut m, &patch, &patch_type)?;
                        from_manifest(&name, &m)
                    })
                    .await?;
                    print_app(out, &app)?
                }
                AppCmd::Edit { name } => edit(&mut c, out, &name).await?,
                AppCmd::Refresh { name } => print_app(
                    out,
                    &c.refresh_application(pb::RefreshApplicationRequest { name })
                        .await
                        .map_err(from_status)?
                        .into_inner(),
                )?,
                AppCmd::Delete { name, cascade, yes } => {
                    if !yes {
                        confirm(&if cascade {
                            format!("Delete application {name:?} and its objects on every cluster it targets?")
                        } else {
                            format!("Delete application {name:?}, leaving its objects in place (orphaned)?")
                        })?;
                    }
                    c.delete_application(pb::DeleteApplicationRequest { name: name.clone(), cascade: Some(cascade) })
                        .await
                        .map_err(from_status)?;
                    if out.is_table() {
                        if cascade {
                            println!("application {name:?} deleted; its clusters delete its objects");
                        } else {
                            println!("application {name:?} deleted; its objects stay where they are");
                        }
                    }
                }
                AppCmd::History { name } => {
                    let h = c
                        .get_application_history(pb::GetApplicationHistoryRequest { name })
                        .await
                        .map_err(from_status)?
                        .into_inner();
                    print_history(out, &h.entries)?;
                }
                AppCmd::Rollback { name, id } => {
                    let req = pb::RollbackApplicationRequest { name, id };
                    print_app(out, &c.rollback_application(req).await.map_err(from_status)?.into_inner())?;
                }
                AppCmd::Diff { name, cluster } => {
                    let app =
                        c.get_application(pb::GetApplicationRequest { name }).await.map_err(from_status)?.into_inner();
                    if print_diff(out, &app, cluster.as_deref())? {
                        // Like diff(1): exit code 1 when something differs, nothing more to say.
                        return Err(Failure { code: 1, error: anyhow!("") });
                    }
                }
                AppCmd::Rollout { action, name } => {
                    let req = pb::RolloutApplicationRequest { name, action };
                    print_app(out, &c.rollout_application(req).await.map_err(from_status)?.into_inner())?;
                }
                AppCmd::Import { file, cluster, selector, strict } => {
                    import(&mut c, out, &file, cluster, selector, strict).await?
                }
                AppCmd::Wait { name, synced, healthy, timeout } => {
                    wait(&mut c, out, &name, synced, healthy, timeout).await?
                }
            }
            Ok(())
        }
        Command::Cluster(cmd) => {
            let mut c = connect(&cli.conn).await?;
            match cmd {
                ClusterCmd::Add { name, ttl, labels } => {
                    let (labels, _) = parse_labels(&labels, false)?;
                    let req = pb::CreateJoinTokenRequest {
                        cluster: name.clone(),
                        ttl_seconds: ttl.as_secs() as i64,
                        labels: labels.into_iter().collect(),
                    };
                    let r = c.create_join_token(req).await.map_err(from_status)?.into_inner();
                    if out.is_table() {
                        println!(
                            "cluster {:?} registered; single-use join token (expires in {}):",
                            r.cluster,
                            humantime::format_duration(ttl)
                        );
                        println!("{}", r.token);
                        println!(
                            "\nstart its agent with:\n  bosun-agent --join-token {} --ca-file ca.pem --kubeconfig KUBECONFIG",
                            r.token
                        );
                    } else {
                        print_value(
                            out,
                            &json!({"cluster": r.cluster, "token": r.token, "expiresAt": rfc3339(r.expires_at)}),
                        )?;
                    }
                }
                ClusterCmd::List { watch: true } => watch(&mut c, out, Watched::Clusters(None)).await?,
                ClusterCmd::Get { name, watch: true } => watch(&mut c, out, Watched::Clusters(Some(name))).await?,
                ClusterCmd::List { watch: false } => print_clusters(
                    out,
                    &c.list_clusters(pb::ListClustersRequest {}).await.map_err(from_status)?.into_inner().clusters,
                )?,
                ClusterCmd::Get { name, watch: false } => {
                    let cl = c.get_cluster(pb::GetClusterRequest { name }).await.map_err(from_status)?.into_inner();
                    if out.is_table() { print_clusters(out, &[cl])? } else { print_value(out, &cluster_json(&cl))? }
                }
                ClusterCmd::Delete { name } => {
                    c.delete_cluster(pb::DeleteClusterRequest { name: name.clone() }).await.map_err(from_status)?;
                    if out.is_table() {
                        println!("cluster {name:?} deleted");
                    }
                }
                ClusterCmd::Label { name, changes } => {
                    let (set, remove) = parse_labels(&changes, true)?;
                    let req =
                        pb::SetClusterLabelsRequest { name: name.clone(), set: set.into_iter().collect(), remove };
                    let cl = c.set_cluster_labels(req).await.map_err(from_status)?.into_inner();
                    if out.is_table() { print_clusters(out, &[cl])? } else { print_value(out, &cluster_json(&cl))? }
                }
                ClusterCmd::RegistrationToken(cmd) => registration_token(&mut c, out, cmd).await?,
                ClusterCmd::Revoke { name } => {
                    let cl =
                        c.revoke_cluster(pb::RevokeClusterRequest { name: name.clone() }).await.map_err(from_status)?;
                    if out.is_table() {
                        println!("cluster {name:?} revoked; `bosun cluster add {name}` gives a token to join again");
                    } else {
                        print_value(out, &cluster_json(&cl.into_inner()))?
                    }
                }
            }
            Ok(())
        }
        Command::Credential(cmd) => {
            let mut c = connect(&cli.conn).await?;
            credential(&mut c, out, cmd).await
        }
        Command::Repo(cmd) => {
            let mut c = connect(&cli.conn).await?;
            repo(&mut c, out, cmd).await
        }
        Command::Login { server, name } => login(&cli.conn, out, server, name).await,
        Command::Logout { name } => {
            let path = config::required_path()?;
            let mut cfg = config::Config::load(&path)?;
            let name = name.unwrap_or_else(|| cfg.current_context.clone());
            let ctx = cfg
                .contexts
                .iter_mut()
                .find(|c| c.name == name)
                .ok_or_else(|| Failure { code: 3, error: anyhow!("no context {name:?} in {}", path.display()) })?;
            ctx.token = None;
            cfg.save(&path)?;
            eprintln!("logged out of {name}; its token is forgotten (revoke it with bosun credential delete)");
            Ok(())
        }
        Command::Context { name } => {
            let path = config::required_path()?;
            let mut cfg = config::Config::load(&path)?;
            if let Some(name) = name {
                if cfg.context(Some(&name)).is_none() {
                    return Err(Failure { code: 3, error: anyhow!("no context {name:?} in {}", path.display()) });
                }
                cfg.current_context = name.clone();
                cfg.save(&path)?;
                eprintln!("switched to context {name}");
                return Ok(());
            }
            let rows: Vec<Value> = cfg
                .contexts
                .iter()
                .map(|c| {
                    let credential = if c.cert.is_some() { "certificate" } else if c.token.is_some() { "token" } else { "none" };
                    json!({"name": c.name, "server": c.server, "current": c.name == cfg.current_context, "credential": credential})
                })
                .collect();
            if out.is_table() {
                let cells = rows
                    .iter()
                    .map(|r| {
                        let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                        vec![
                            if r["current"] == true { "*".into() } else { String::new() },
                            text("name"),
                            text("server"),
                            text("credential"),
                        ]
                    })
                    .collect();
                table(&["CURRENT", "NAME", "SERVER", "CREDENTIAL"], cells);
                Ok(())
            } else {
                Ok(print_value(out, &Value::Array(rows))?)
            }
        }
        Command::Whoami => {
            let mut c = connect(&cli.conn).await?;
            let w = c.who_am_i(pb::WhoAmIRequest {}).await.map_err(from_status)?.into_inner();
            match out {
                Output::Table | Output::Wide => println!("{} (role {}, {})", w.name, w.role, w.kind),
                _ => print_value(out, &json!({"name": w.name, "role": w.role, "kind": w.kind}))?,
            }
            Ok(())
        }
    }
}

async fn credential(c: &mut Admin, out: Output, cmd: CredentialCmd) -> Result<(), Failure> {
    match cmd {
        CredentialCmd::Create { name, role, cert_out, ttl } => {
            let ttl_seconds = ttl.map(|t| t.as_secs() as i64).unwrap_or(0);
            let key = match &cert_out {
                Some(_) => Some(rcgen::KeyPair::generate().map_err(|e| anyhow!("generating a key: {e}"))?),
                None => None,
            };
            let csr_pem = match &key {
                Some(k) => {
                    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| anyhow!("{e}"))?;
                    p.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
                    p.serialize_request(k).and_then(|r| r.pem()).map_err(|e| anyhow!("building the CSR: {e}"))?
                }
                None => String::new(),
            };
            let req = pb::CreateCredentialRequest { name: name.clone(), role, csr_pem, ttl_seconds };
            let r = c.create_credential(req).await.map_err(from_status)?.into_inner();
            let cred = r.credential.unwrap_or_default();
            match (cert_out, key) {
                (Some(dir), Some(key)) => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    let key_path = dir.join(format!("{name}.key"));
                    write_private(&key_path, &key.serialize_pem())?;
                    std::fs::write(dir.join(format!("{name}.pem")), &r.certificate_pem)
                        .context("writing the certificate")?;
                    std::fs::write(dir.join("ca.pem"), &r.ca_pem).context("writing ca.pem")?;
                    if out.is_table() {
                        let d = dir.display();
                        println!(
                            "credential {name:?} (role {}) issued: {d}/{name}.pem, {d}/{name}.key, {d}/ca.pem",
                            cred.role
                        );
                        println!("use: bosun --cert {d}/{name}.pem --key {d}/{name}.key --ca-file {d}/ca.pem ...");
                    }
                }
                _ => {
                    if out.is_table() {
                        println!("credential {name:?} (role {}) created; its token, shown only now:", cred.role);
                        println!("{}", r.token);
                    } else {
                        print_value(out, &json!({"name": cred.name, "role": cred.role, "token": r.token}))?;
                    }
                }
            }
        }
        CredentialCmd::List => {
            let list = c.list_credentials(pb::ListCredentialsRequest {}).await.map_err(from_status)?.into_inner();
            let rows: Vec<Value> = list
                .credentials
                .iter()
                .map(|x| json!({"name": x.name, "role": x.role, "kind": x.kind, "createdAt": rfc3339(x.created_at), "expiresAt": rfc3339(x.expires_at)}))
                .collect();
            match out {
                Output::Table | Output::Wide => {
                    println!("{:<24} {:<10} {:<12} EXPIRES", "NAME", "ROLE", "KIND");
                    for x in &list.credentials {
                        let exp = if x.expires_at == 0 { "never".to_string() } else { age(x.expires_at) };
                        println!("{:<24} {:<10} {:<12} {exp}", x.name, x.role, x.kind);
                    }
                }
                _ => print_value(out, &Value::Array(rows))?,
            }
        }
        CredentialCmd::Delete { name } => {
            c.delete_credential(pb::DeleteCredentialRequest { name: name.clone() }).await.map_err(from_status)?;
            if out.is_table() {
                println!("credential {name:?} deleted");
            }
        }
    }
    Ok(())
}

async fn registration_token(c: &mut Admin, out: Output, cmd: RegistrationTokenCmd) -> Result<(), Failure> {
    match cmd {
        RegistrationTokenCmd::Create { name, ttl, labels } => {
            let (labels, _) = parse_labels(&labels, false)?;
            let req = pb::CreateRegistrationTokenRequest {
                name: name.clone(),
                ttl_seconds: ttl.as_secs() as i64,
                labels: labels.into_iter().collect(),
            };
            let r = c.create_registration_token(req).await.map_err(from_status)?.into_inner();
            if out.is_table() {
                println!("registration token {:?} (reusable, expires in {}):", r.name, humantime::format_duration(ttl));
                println!("{}", r.token);
                println!(
                    "\nstart each spoke's agent with its own name:\n  bosun-agent --join-token {} --cluster-name NAME --ca-file ca.pem",
                    r.token
                );
            } else {
                print_value(out, &json!({"name": r.name, "token": r.token, "expiresAt": rfc3339(r.expires_at)}))?;
            }
        }
        RegistrationTokenCmd::List => {
            let list = c
                .list_registration_tokens(pb::ListRegistrationTokensRequest {})
                .await
                .map_err(from_status)?
                .into_inner();
            match out {
                Output::Table | Output::Wide => {
                    println!("{:<24} {:<10} {:<10} CLUSTERS", "NAME", "EXPIRES", "AGE");
                    for t in &list.tokens {
                        let expired = std::time::UNIX_EPOCH + Duration::from_secs(t.expires_at.max(0) as u64)
                            <= std::time::SystemTime::now();
                        let expires = if expired { "expired".to_string() } else { age(t.expires_at) };
                        println!("{:<24} {:<10} {:<10} {}", t.name, expires, age(t.created_at), t.clusters.join(","));
                    }
                }
                _ => {
                    let rows: Vec<Value> = list
                        .tokens
                        .iter()
                        .map(|t| {
                            json!({"name": t.name, "createdAt": rfc3339(t.created_at), "expiresAt": rfc3339(t.expires_at),
                                   "labels": t.labels, "clusters": t.clusters})
                        })
                        .collect();
                    print_value(out, &Value::Array(rows))?
                }
            }
        }
        RegistrationTokenCmd::Delete { name } => {
            c.delete_registration_token(pb::DeleteRegistrationTokenRequest { name: name.clone() })
                .await
                .map_err(from_status)?;
            if out.is_table() {
                println!("registration token {name:?} deleted; the clusters it registered stay");
            }
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

async fn repo(c: &mut Admin, out: Output, cmd: RepoCmd) -> Result<(), Failure> {
    match cmd {
        RepoCmd::Add { url, username, ssh_key_file, known_hosts } => {
            let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
            let (password, ssh_private_key) = match &ssh_key_file {
                Some(f) => (String::new(), read(f)?),
                None => {
                    let password = match std::env::var("BOSUN_REPO_PASSWORD") {
                        Ok(p) => p,
                        Err(_) => {
                            let mut p = String::new();
                            std::io::stdin().read_line(&mut p).context("reading the password from stdin")?;
                            p.trim_end_matches(['\n', '\r']).to_string()
                        }
                    };
                    (password, String::new())
                }
            };
            let known_hosts = known_hosts.as_ref().map(read).transpose()?.unwrap_or_default();
            let r = c
                .add_repository(pb::AddRepositoryRequest { url, username, password, ssh_private_key, known_hosts })
                .await
                .map_err(from_status)?
                .into_inner();
            if out.is_table() {
                if r.has_ssh_key {
                    println!("ssh key stored for {} (known hosts: {})", r.url, r.known_hosts.join(", "));
                } else {
                    println!("credentials stored for {} (user {:?})", r.url, r.username);
                }
            } else {
                print_value(out, &repo_json(&r))?;
            }
        }
        RepoCmd::List => {
            let list = c.list_repositories(pb::ListRepositoriesRequest {}).await.map_err(from_status)?.into_inner();
            match out {
                Output::Table | Output::Wide => {
                    println!("{:<60} {:<20} SECRET", "URL", "USERNAME");
                    for r in &list.repositories {
                        let secret = match (r.has_password, r.has_ssh_key) {
                            (_, true) => format!("ssh key (hosts: {})", r.known_hosts.join(",")),
                            (true, false) => "password".to_string(),
                            (false, false) => "-".to_string(),
                        };
                        println!("{:<60} {:<20} {}", r.url, r.username, secret);
                    }
                }
                _ => print_value(out, &Value::Array(list.repositories.iter().map(repo_json).collect()))?,
            }
        }
        RepoCmd::Delete { url } => {
            c.delete_repository(pb::DeleteRepositoryRequest { url: url.clone() }).await.map_err(from_status)?;
            if out.is_table() {
                println!("credentials for {url} deleted");
            }
        }
    }
    Ok(())
}

fn repo_json(r: &pb::Repository) -> Value {
    json!({"url": r.url, "username": r.username, "hasPassword": r.has_password, "hasSshKey": r.has_ssh_key, "knownHosts": r.known_hosts})
}

async fn import(
    c: &mut Admin,
    out: Output,
    file: &std::path::Path,
    cluster: Option<String>,
    selector: Option<String>,
    strict: bool,
) -> Result<(), Failure> {
    let text = if file == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let mut converted = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (i, doc) in docs.into_iter().filter(|d| !d.is_null()).enumerate() {
        let name =
            doc["metadata"]["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("document {}", i + 1));
        let mut c = match bosun_core::argo::convert(&doc) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: {name}: {e}");
                skipped.push(name);
                continue;
            }
        };
        match (&cluster, &selector) {
            (Some(name), _) => {
                (c.spec.destination.cluster, c.spec.destination.selector) = (name.clone(), String::new())
            }
            (_, Some(sel)) => (c.spec.destination.cluster, c.spec.destination.selector) = (String::new(), sel.clone()),
            (None, None) if c.inherits_destination => {
                eprintln!(
                    "skipped: {}: targets the cluster Argo CD runs in; say which cluster with --cluster NAME or --selector",
                    c.name
                );
                skipped.push(c.name);
                continue;
            }
            _ => {}
        }
        for w in &c.warnings {
            eprintln!("warning: {}: not honoured: {w}", c.name);
        }
        converted.push(c);
    }
    if strict && (!skipped.is_empty() || converted.iter().any(|c| !c.warnings.is_empty())) {
        return Err(Failure {
            code: 1,
            error: anyhow!(
                "--strict: nothing imported; some documents cannot be imported or have fields that would not be honoured (see above)"
            ),
        });
    }
    let mut failed = Vec::new();
    for app in converted {
        let spec = pb::ApplicationSpec::from(&app.spec);
        match c.create_application(pb::CreateApplicationRequest { name: app.name.clone(), spec: Some(spec) }).await {
            Ok(created) => print_app(out, &created.into_inner())?,
            Err(s) => {
                eprintln!("skipped: {}: {}", app.name, s.message());
                failed.push(app.name);
            }
        }
    }
    skipped.extend(failed);
    if skipped.is_empty() {
        Ok(())
    } else {
        Err(Failure { code: 6, error: anyhow!("imported all but {}", skipped.join(", ")) })
    }
}

/// `KEY=VALUE` to set, and (when `removals`) `KEY-` to remove.
fn parse_labels(
    args: &[String],
    removals: bool,
) -> Result<(std::collections::BTreeMap<String, String>, Vec<String>), Failure> {
    let usage = |a: &str| Failure {
        code: 2,
        error: anyhow!("{a:?}: give labels as KEY=VALUE{}", if removals { " or KEY-" } else { "" }),
    };
    let (mut set, mut remove) = (std::collections::BTreeMap::new(), Vec::new());
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                set.insert(k.to_string(), v.to_string());
            }
            None if removals && a.ends_with('-') && a.len() > 1 => remove.push(a.trim_end_matches('-').to_string()),
            _ => return Err(usage(a)),
        }
    }
    Ok((set, remove))
}

/// An Application's spec as the domain type.
fn spec_of(app: &pb::Application) -> Result<bosun_core::AppSpec, Failure> {
    bosun_core::AppSpec::try_from(app.spec.clone().unwrap_or_default())
        .map_err(|e| anyhow!("the control plane sent an Application this client cannot read: {e}").into())
}

/// Reads the Application, changes its spec with `change` and writes it back only while it is
/// still at the generation read; when someone else changed it in between, it is read and
/// changed again (a few times), so no concurrent change is overwritten.
async fn modify(
    c: &mut Admin,
    name: &str,
    mut change: impl FnMut(bosun_core::AppSpec) -> Result<bosun_core::AppSpec, Failure>,
) -> Result<pb::Application, Failure> {
    for _ in 0..5 {
        let app =
            c.get_application(pb::GetApplicationRequest { name: name.into() }).await.map_err(from_status)?.into_inner();
        let spec = change(spec_of(&app)?)?;
        let req =
            pb::UpdateApplicationRequest { name: name.into(), spec: Some((&spec).into()), generation: app.generation };
        match c.update_application(req).await {
            Ok(a) => return Ok(a.into_inner()),
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => return Err(from_status(s)),
        }
    }
    Err(anyhow!("application {name:?} kept changing while this update was retried; try again").into())
}

fn usage(error: impl std::fmt::Display) -> Failure {
    Failure { code: 2, error: anyhow!("{error}") }
}

/// The spec of an edited or patched manifest of `name`; fields that would not be honoured are
/// refused rather than dropped.
fn from_manifest(name: &str, m: &Value) -> Result<bosun_core::AppSpec, Failure> {
    let c = bosun_core::argo::convert(m).map_err(usage)?;
    if c.name != name {
        return Err(usage(format!("metadata.name cannot change (it is {name:?}); create a new Application instead")));
    }
    if c.inherits_destination {
        return Err(usage("spec.destination: give a cluster (name) or a label selector (selector)"));
    }
    if !c.warnings.is_empty() {
        return Err(usage(format!("not honoured, so not accepted: {}", c.warnings.join("; "))));
    }
    Ok(c.spec)
}

fn apply_patch(m: &mut Value, patch: &Value, patch_type: &str) -> Result<(), Failure> {
    if patch_type == "json" {
        let ops: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| usage(format!("--patch is not a JSON patch (a list of operations): {e}")))?;
        json_patch::patch(m, &ops).map_err(|e| usage(format!("the JSON patch does not apply: {e}")))
    } else {
        json_patch::merge(m, patch);
        Ok(())
    }
}

fn set(mut s: bosun_core::AppSpec, a: &AppSetArgs) -> Result<bosun_core::AppSpec, Failure> {
    let assign = |slot: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            slot.clone_from(v);
        }
    };
    assign(&mut s.source.repo_url, &a.repo);
    assign(&mut s.source.path, &a.path);
    assign(&mut s.source.target_revision, &a.revision);
    assign(&mut s.destination.namespace, &a.namespace);
    if let Some(cluster) = &a.cluster {
        (s.destination.cluster, s.destination.selector) = (cluster.clone(), String::new());
    }
    if let Some(selector) = &a.selector {
        (s.destination.cluster, s.destination.selector) = (String::new(), selector.clone());
    }
    let p = &mut s.sync_policy;
    if let Some(policy) = &a.sync_policy {
        p.automated = policy == "automated";
    }
    for (slot, v) in [
        (&mut p.prune, a.auto_prune),
        (&mut p.self_heal, a.self_heal),
        (&mut p.allow_empty, a.allow_empty),
        (&mut s.source.recurse, a.recurse),
    ] {
        if let Some(v) = v {
            *slot = v;
        }
    }
    for o in &a.sync_options {
        p.set_option(o).map_err(usage)?;
    }
    if let Some(limit) = a.sync_retry_limit {
        p.retry.limit = limit;
    }
    for d in &a.depends_on {
        if !s.depends_on.contains(d) {
            s.depends_on.push(d.clone());
        }
    }
    if let Some(limit) = a.revision_history_limit {
        s.revision_history_limit = Some(limit);
    }
    Ok(s)
}

fn unset(mut s: bosun_core::AppSpec, a: &AppUnsetArgs) -> Result<bosun_core::AppSpec, Failure> {
    for key in &a.sync_options {
        let default = match key.as_str() {
            "CreateNamespace" | "ApplyOutOfSyncOnly" | "PruneLast" => "false",
            "PrunePropagationPolicy" => "foreground",
            other => {
                return Err(usage(format!(
                    "sync option {other:?}: give the key of CreateNamespace, ApplyOutOfSyncOnly, PruneLast or PrunePropagationPolicy"
                )));
            }
        };
        s.sync_policy.set_option(&format!("{key}={default}")).map_err(usage)?;
    }
    s.depends_on.retain(|d| !a.depends_on.contains(d));
    if a.ignore_differences {
        s.ignore_differences.clear();
    }
    if a.revision_history_limit {
        s.revision_history_limit = None;
    }
    if a.rollout {
        s.rollout = None;
    }
    Ok(s)
}

/// `bosun app edit`: the manifest in an editor, written back at the generation read.
async fn edit(c: &mut Admin, out: Output, name: &str) -> Result<(), Failure> {
    let app =
        c.get_application(pb::GetApplicationRequest { name: name.into() }).await.map_err(from_status)?.into_inner();
    let yaml = serde_saphyr::to_string(&bosun_core::argo::manifest(name, &spec_of(&app)?))
        .map_err(|e| anyhow!("writing the manifest: {e}"))?;
    let header = "# Edit the Application below and save; quit without saving to change nothing.\n\
                  # Lines starting with '#' are ignored. bosun.dev/v1 fields: see `bosun app create --help`.\n";
    let text = format!("{header}{yaml}");
    let file = std::env::temp_dir().join(format!("bosun-edit-{name}-{}.yaml", std::process::id()));
    write_private(&file, &text)?;
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    // Through the shell, so that an editor given with arguments (`code --wait`) works.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("{editor} \"$1\""), "bosun-edit"])
        .arg(&file)
        .status()
        .with_context(|| format!("running the editor {editor:?}"))?;
    let kept = |why: String| Failure { code: 1, error: anyhow!("{why}; your edit is kept in {}", file.display()) };
    if !status.success() {
        return Err(kept(format!("the editor {editor:?} exited with {status}")));
    }
    let edited = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    if edited == text {
        let _ = std::fs::remove_file(&file);
        eprintln!("edit cancelled, no changes made");
        return Ok(());
    }
    let m: Value = serde_saphyr::from_str(&edited).map_err(|e| kept(format!("the edit is not YAML: {e}")))?;
    let spec = from_manifest(name, &m).map_err(|f| kept(format!("{:#}", f.error)))?;
    let req =
        pb::UpdateApplicationRequest { name: name.into(), spec: Some((&spec).into()), generation: app.generation };
    let updated = match c.update_application(req).await {
        Ok(a) => a.into_inner(),
        Err(s) if s.code() == tonic::Code::Aborted => {
            return Err(kept(format!("{name:?} was changed by someone else while you edited it; nothing was written")));
        }
        Err(s) => return Err(kept(s.message().to_string())),
    };
    let _ = std::fs::remove_file(&file);
    print_app(out, &updated)?;
    Ok(())
}

/// Registers `cluster` and returns its single-use join token.
pub async fn join_token(c: &mut Admin, cluster: &str, ttl: Duration) -> Result<pb::CreateJoinTokenResponse, Failure> {
    let req =
        pb::CreateJoinTokenRequest { cluster: cluster.into(), ttl_seconds: ttl.as_secs() as i64, ..Default::default() };
    Ok(c.create_join_token(req).await.map_err(from_status)?.into_inner())
}

async fn wait(
    c: &mut Admin,
    out: Output,
    name: &str,
    synced: bool,
    healthy: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let (synced, healthy) = if !synced && !healthy { (true, true) } else { (synced, healthy) };
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let app =
            c.get_application(pb::GetApplicationRequest { name: name.into() }).await.map_err(from_status)?.into_inner();
        let v = app_json(&app);
        let (s, h) =
            (v["status"]["sync"].as_str().unwrap_or_default(), v["status"]["health"].as_str().unwrap_or_default());
        let line = format!(
            "{name}: {s} / {h} at {}{}",
            short(v["status"]["revision"].as_str().unwrap_or_default()),
            v["status"]["error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
        if line != last {
            eprintln!("{:>5.1}s  {line}", start.elapsed().as_secs_f64());
            last = line;
        }
        if (!synced || s == "Synced") && (!healthy || h == "Healthy") {
            if !out.is_table() {
                print_value(out, &v)?;
            }
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Failure {
                code: 4,
                error: anyhow!(
                    "timed out after {} waiting for {name} to be{}{}",
                    humantime::format_duration(timeout),
                    if synced { " synced" } else { "" },
                    if healthy { " healthy" } else { "" }
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        // clap checks flags, conflicts and requirements of every subcommand here, not only
        // of the ones a test happens to run.
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn labels_parse_like_kubectl() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (set, remove) = parse_labels(&args(&["env=prod", "tier=", "canary-"]), true).unwrap();
        assert_eq!(set.get("env").map(String::as_str), Some("prod"));
        assert_eq!(set.get("tier").map(String::as_str), Some(""));
        assert_eq!(remove, ["canary"]);
        assert!(parse_labels(&args(&["canary-"]), false).is_err(), "no removals at registration");
        assert!(parse_labels(&args(&["=x"]), true).is_err());
        assert!(parse_labels(&args(&["-"]), true).is_err());
    }
}
