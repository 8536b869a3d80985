//! The control plane's model: Applications, clusters, assignments and status, loaded from the
//! store at start; every mutation is persisted first, then applied in memory, then announced
//! to the agents it concerns. gRPC handlers are thin calls into this.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use bosun_core::Assignment;
use bosun_core::schedule;
use bosun_core::{AppSpec, Health, SyncStatus};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{self, Access, Credential, CredentialKind, IssuedCert, Principal, Role};
use crate::error::{Error, Result};
use crate::git::{GitCache, redact_url};
use crate::pki::{Issued, PeerCert, Pki, Subject};
use crate::render::RenderKey;
use crate::secrets::{Secret, SecretBox};
use crate::store::{Kind, Store, StoreExt};
use bosun_core::argo::Converted;

pub fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// An Application as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    /// Identity of this Application (a new one when a deleted Application is created again
    /// under the same name); agents count sync requests per uid.
    #[serde(default)]
    pub uid: String,
    pub spec: AppSpec,
    /// Bumped by each sync request; agents act on a value they have not seen.
    pub sync_request: u64,
    pub status: AppSourceStatus,
    /// Set while rolled back to a history entry: its bundle is deployed and automated sync
    /// is paused until the next sync request.
    #[serde(default)]
    pub rollback: Option<HistoryEntry>,
    /// The Application whose path defines this one (app of apps); empty for top-level ones.
    #[serde(default)]
    pub parent: String,
    /// Fields of its manifest Bosun does not honour (Argo CD Applications from Git).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Progress of the rollout of the current bundle (with a rollout strategy).
    #[serde(default)]
    pub rollout: bosun_core::rollout::State,
}

/// What the control plane knows of an Application's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AppSourceStatus {
    pub revision: String,
    /// The bundle (or, with per-cluster values, a digest of all variants).
    pub bundle_digest: String,
    /// Per-cluster bundles when the path or manifests use per-cluster values.
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
    /// Whether the path or manifests use per-cluster values (re-rendered when clusters change).
    #[serde(default)]
    pub templated: bool,
    pub error: String,
    pub refreshed_at: i64,
    /// What the rendered manifests do that is accepted but probably a mistake.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A cluster as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClusterRecord {
    pub name: String,
    pub joined: bool,
    pub facts: BTreeMap<String, String>,
    pub agent_version: String,
    pub cert_expires: i64,
    pub last_seen: i64,
    /// Increases whenever this cluster's assignments change.
    pub generation: u64,
    /// Digest of the assignments announced at `generation`.
    pub assignment_digest: String,
    /// Labels that Application selectors match (with the facts, see `cluster_labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unexpired certificates issued to the cluster's agent; any other is refused.
    #[serde(default)]
    pub certificates: Vec<IssuedCert>,
    /// When the cluster was last revoked (Unix seconds; 0 = never).
    #[serde(default)]
    pub revoked_at: i64,
}

/// A join token as stored, keyed by the SHA-256 of the token (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub cluster: String,
    pub expires_at: i64,
}

/// Per-object state reported by an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceState {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub message: String,
    #[serde(default)]
    pub diff: String,
}

/// One Application on one cluster, as reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterAppStatus {
    pub app: String,
    pub cluster: String,
    pub bundle_digest: String,
    pub revision: String,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub message: String,
    pub resources: Vec<ResourceState>,
    pub observed_sync_request: u64,
    pub synced_at: i64,
}

/// One completed sync of an Application on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryEntry {
    pub id: u64,
    pub cluster: String,
    pub revision: String,
    pub bundle_digest: String,
    pub synced_at: i64,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub initiated_by: String,
}

/// Longest lifetime of an admin credential (token or certificate).
pub const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(3650 * 86400);
/// Longest lifetime of a join token.
pub const MAX_JOIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 86400);

/// Syncs kept per Application (Argo CD's default `revisionHistoryLimit`).
pub const HISTORY_LIMIT: usize = 10;

/// An Application with everything known about it, for the admin API.
#[derive(Debug, Clone)]
pub struct AppView {
    pub record: AppRecord,
    pub children: Vec<String>,
    pub rollout: String,
    pub clusters: Vec<(ClusterAppStatus, bool)>,
    pub sync_status: SyncStatus,
    pub health: Health,
}

/// A cluster with its connection state, for the admin API.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub record: ClusterRecord,
    pub connected: bool,
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppRecord>,
    clusters: BTreeMap<String, ClusterRecord>,
    statuses: BTreeMap<(String, String), ClusterAppStatus>,
    connections: HashMap<String, usize>,
    credentials: BTreeMap<String, Credential>,
    repos: BTreeMap<String, RepoRecord>,
}

/// Credentials of a repository (or URL prefix) as stored; the password only sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub url: String,
    pub username: String,
    pub password_sealed: String,
    /// ssh: the deploy key, sealed (the URL with an `ssh-key:` prefix as associated data).
    #[serde(default)]
    pub ssh_key_sealed: String,
    /// ssh: the accepted host keys (known_hosts lines; public).
    #[serde(default)]
    pub known_hosts: String,
}

impl RepoRecord {
    /// The hosts whose keys are pinned (hashed entries shown as such).
    pub fn known_host_names(&self) -> Vec<String> {
        self.known_hosts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .flat_map(|hosts| hosts.split(','))
            .map(|h| if h.starts_with("|1|") { "(hashed)".to_string() } else { h.to_string() })
            .collect()
    }
}

/// Checks known_hosts lines: `hosts keytype base64-key [comment]`, optionally preceded by a
/// marker (`@cert-authority`, `@revoked`).
fn check_known_hosts(text: &str) -> Result<()> {
    let mut any = false;
    for (i, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fields = if fields.first().is_some_and(|f| f.starts_with('@')) { &fields[1..] } else { &fields[..] };
        let ok = fields.len() >= 3
            && (fields[1].starts_with("ssh-") || fields[1].starts_with("ecdsa-") || fields[1].starts_with("sk-"))
            && fields[2].bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !ok {
            return Err(Error::InvalidRequest(format!(
                "known_hosts line {i} is not `HOST KEYTYPE BASE64KEY` (as `ssh-keyscan HOST` prints it)"
            )));
        }
        any = true;
    }
    if !any {
        return Err(Error::InvalidRequest(
            "an ssh repository needs the host keys to accept (--known-hosts FILE; `ssh-keyscan HOST` prints them — check their fingerprints)".into(),
        ));
    }
    Ok(())
}

/// Status reports an admin watcher may fall behind by before its stream is ended.
const STATUS_EVENT_BUFFER: usize = 16_384;

/// Settings of the model.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetime of agent certificates (agents renew at two thirds of it).
    pub cert_validity: Duration,
    /// Lifetime of admin client certificates.
    pub admin_cert_validity: Duration,
    pub poll_interval: Duration,
    /// This installation's id (from the data directory's marker; carried by backups).
    pub installation_id: String,
    /// Files a backup carries, by name (`ca.pem`, `ca.key`, `secret.key`).
    pub backup_sources: BTreeMap<String, std::path::PathBuf>,
    /// How renders run (sandbox, tool, allowed remote hosts).
    pub renderer: crate::render::Renderer,
    /// How many renders may run at once.
    pub render_concurrency: usize,
}

pub struct ControlPlane {
    store: Arc<dyn Store>,
    git: Arc<GitCache>,
    pub pki: Pki,
    pub metrics: crate::metrics::Metrics,
    secrets: SecretBox,
    settings: Settings,
    state: RwLock<State>,
    notify: Mutex<HashMap<String, watch::Sender<u64>>>,
    renders: Mutex<RenderCache>,
    /// Bounds how many renders run at once (`--render-concurrency`).
    render_slots: tokio::sync::Semaphore,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Serialises read-modify-write of cluster records (see `update_cluster`).
    cluster_writes: Mutex<()>,
    /// Serialises rollout state changes.
    rollout_writes: Mutex<()>,
    /// Serialises status reports (see `report`).
    report_writes: Mutex<()>,
    /// Applications to re-render because clusters they template over changed.
    pending_refresh: Mutex<std::collections::BTreeSet<String>>,
    /// Every status report, as recorded, for admin watchers (`WatchStatus`).
    status_events: tokio::sync::broadcast::Sender<Arc<ClusterAppStatus>>,
    /// Set when the process is stopping: open streams end so that the servers can drain.
    stopping: watch::Sender<bool>,
}

fn record_certificate(cluster: &mut ClusterRecord, issued: &Issued) {
    auth::prune_expired(&mut cluster.certificates, now());
    cluster.certificates.push(IssuedCert { serial: issued.serial.clone(), expires_at: issued.expires_at });
    cluster.cert_expires = issued.expires_at;
}

/// One path rendered at one commit.
#[derive(Debug, Clone)]
struct RenderedPath {
    digest: String,
    children: Vec<Converted>,
    /// What the manifests do that is accepted but probably a mistake.
    warnings: Vec<String>,
    /// No objects and no children (refused unless the Application allows empty renders).
    empty: bool,
}

/// Renders by (repository, commit, path), successes and failures. A path that failed at a
/// commit is not rendered again at that commit until its backoff has passed (1 min,
/// doubling to 30 min) or someone asks (create, update, refresh, webhook): the same commit
/// fails the same way, and re-running it on every poll costs CPU for nothing. A new commit
/// is a new key. The oldest entries go beyond [`RenderCache::CAPACITY`].
#[derive(Default)]
struct RenderCache {
    entries: HashMap<RenderKey, (u64, CachedRender)>,
    tick: u64,
}

enum CachedRender {
    Ok(RenderedPath),
    Failed { message: String, at: std::time::Instant, attempts: u32 },
}

impl RenderCache {
    const CAPACITY: usize = 4096;

    fn backoff(attempts: u32) -> Duration {
        Duration::from_secs(60u64.saturating_mul(1 << attempts.saturating_sub(1).min(5))).min(Duration::from_secs(1800))
    }

    /// A cached render: `Ok`, or a failure still within its backoff (`retry` ignores that).
    fn get(&mut self, key: &RenderKey, retry: bool) -> Option<std::result::Result<RenderedPath, String>> {
        self.tick += 1;
        let tick = self.tick;
        let (used, entry) = self.entries.get_mut(key)?;
        *used = tick;
        match entry {
            CachedRender::Ok(r) => Some(Ok(r.clone())),
            CachedRender::Failed { message, at, attempts } => {
                (!retry && at.elapsed() < Self::backoff(*attempts)).then(|| Err(message.clone()))
            }
        }
    }

    fn insert_ok(&mut self, key: RenderKey, r: RenderedPath) {
        self.insert(key, CachedRender::Ok(r));
    }

    fn insert_err(&mut self, key: RenderKey, message: String) {
        let attempts = match self.entries.get(&key) {
            Some((_, CachedRender::Failed { attempts, .. })) => attempts + 1,
            _ => 1,
        };
        self.insert(key, CachedRender::Failed { message, at: std::time::Instant::now(), attempts });
    }

    fn insert(&mut self, key: RenderKey, entry: CachedRender) {
        self.tick += 1;
        self.entries.insert(key, (self.tick, entry));
        if self.entries.len() > Self::CAPACITY {
            // Drop the least recently used eighth.
            let mut ticks: Vec<u64> = self.entries.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 8];
            self.entries.retain(|_, (t, _)| *t > cut);
        }
    }
}

/// A targeted cluster and its template values (`cluster.name`, `cluster.labels.*`).
type ClusterValues = (String, BTreeMap<String, String>);

/// What a refresh rendered.
#[derive(Debug, Default)]
struct Rendered {
    commit: String,
    digest: String,
    variants: BTreeMap<String, String>,
    templated: bool,
    children: Vec<Converted>,
    /// Clusters whose variant could not be rendered (they keep their last bundle).
    errors: Vec<String>,
    /// Warnings of the renders.
    warnings: Vec<String>,
}

fn combined_digest(variants: &BTreeMap<String, String>) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(variants).unwrap_or_default()))
}

/// An Application as scheduling sees it.
fn scheduled(a: &AppRecord) -> schedule::Application<'_> {
    schedule::Application {
        name: &a.name,
        uid: &a.uid,
        spec: &a.spec,
        sync_request: a.sync_request,
        bundle_digest: &a.status.bundle_digest,
        revision: &a.status.revision,
        templated: a.status.templated,
        variants: &a.status.variants,
        rollback: a
            .rollback
            .as_ref()
            .map(|r| schedule::Rollback { bundle_digest: &r.bundle_digest, revision: &r.revision }),
        rollout: &a.rollout,
    }
}

/// The scheduling view of the whole state (see [`bosun_core::schedule`]).
fn fleet(st: &State) -> schedule::Fleet<'_> {
    let clusters = st
        .clusters
        .values()
        .map(|c| {
            let view = schedule::Cluster {
                name: &c.name,
                labels: &c.labels,
                selector_labels: cluster_labels(c),
                connected: st.connections.get(&c.name).copied().unwrap_or(0) > 0,
                last_seen: c.last_seen,
            };
            (c.name.as_str(), view)
        })
        .collect();
    let apps = st.apps.values().map(|a| (a.name.as_str(), scheduled(a))).collect();
    let statuses = &st.statuses;
    schedule::Fleet {
        clusters,
        apps,
        reports: Box::new(move |app, cluster| {
            statuses.get(&(app.to_string(), cluster.to_string())).map(|s| schedule::Reported {
                bundle_digest: &s.bundle_digest,
                revision: &s.revision,
                sync: s.sync_status,
                health: s.health,
            })
        }),
    }
}

/// Refuses a dependency on a missing Application or one that would close a cycle.
fn check_dependencies(apps: &BTreeMap<String, AppRecord>, name: &str, deps: &[String]) -> Result<()> {
    schedule::check_dependencies(|n| apps.get(n).map(|a| a.spec.depends_on.as_slice()), name, deps)
        .map_err(Error::InvalidRequest)
}

/// The secret half of a new credential, returned once.
pub enum CredentialSecret {
    Token(String),
    Certificate(Issued),
}

fn status_key(app: &str, cluster: &str) -> String {
    format!("{app}/{cluster}")
}

pub use auth::hash_token;

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

impl ControlPlane {
    /// Loads the model from the store. Creates the first admin credential (a token named
    /// `admin`) on first start and returns the token then (it is stored only hashed).
    pub fn load(
        store: Arc<dyn Store>,
        git: Arc<GitCache>,
        pki: Pki,
        secrets: SecretBox,
        settings: Settings,
    ) -> Result<(Self, Option<String>)> {
        let mut state = State::default();
        for mut a in store.list::<AppRecord>(Kind::App)? {
            if a.uid.is_empty() {
                // Recorded before Applications had a uid.
                a.uid = new_uid();
                store.put(Kind::App, &a.name, &a)?;
            }
            state.apps.insert(a.name.clone(), a);
        }
        for c in store.list::<ClusterRecord>(Kind::Cluster)? {
            state.clusters.insert(c.name.clone(), c);
        }
        for s in store.list::<ClusterAppStatus>(Kind::Status)? {
            state.statuses.insert((s.app.clone(), s.cluster.clone()), s);
        }
        for r in store.list::<RepoRecord>(Kind::Repository)? {
            state.repos.insert(r.url.clone(), r);
        }
        for c in store.list::<Credential>(Kind::Credential)? {
            state.credentials.insert(c.name.clone(), c);
        }
        let mut new_admin = None;
        if state.credentials.is_empty() {
            let token = new_token("bat_");
            let cred = Credential {
                name: "admin".into(),
                role: Role::Admin,
                kind: CredentialKind::Token,
                token_sha256: hash_token(&token),
                certificates: Vec::new(),
                created_at: now(),
                expires_at: 0,
            };
            store.put(Kind::Credential, &cred.name, &cred)?;
            state.credentials.insert(cred.name.clone(), cred);
            new_admin = Some(token);
        }
        let render_slots = tokio::sync::Semaphore::new(settings.render_concurrency.max(1));
        let cp = Self {
            store,
            git,
            pki,
            metrics: Default::default(),
            secrets,
            settings,
            state: RwLock::new(state),
            notify: Mutex::new(HashMap::new()),
            renders: Mutex::new(RenderCache::default()),
            render_slots,
            refresh_lock: tokio::sync::Mutex::new(()),
            cluster_writes: Mutex::new(()),
            rollout_writes: Mutex::new(()),
            report_writes: Mutex::new(()),
            pending_refresh: Mutex::new(Default::default()),
            status_events: tokio::sync::broadcast::channel(STATUS_EVENT_BUFFER).0,
            stopping: watch::channel(false).0,
        };
        Ok((cp, new_admin))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn set_installation_id(&mut self, id: &str) {
        self.settings.installation_id = id.to_string();
    }

    /// A consistent backup (see [`crate::backup`]), serialised.
    pub fn backup(&self, without_secrets: bool) -> Result<Vec<u8>> {
        let b = crate::backup::Backup::take(
            self.store.as_ref(),
            &self.settings.backup_sources,
            &self.settings.installation_id,
            without_secrets,
        )
        .map_err(|e| Error::Internal(format!("taking a backup: {e:#}")))?;
        serde_json::to_vec(&b).map_err(|e| Error::Internal(format!("encoding a backup: {e}")))
    }

    /// Whether the control plane can serve: the store answers, the CA has not expired, and
    /// it is not stopping. The reason when it cannot.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        if *self.stopping.borrow() {
            return Err("shutting down".into());
        }
        self.store.probe().map_err(|e| format!("the store does not answer: {e}"))?;
        if self.pki.ca_not_after <= now() {
            return Err("the CA certificate has expired; rotate it (README: Rotating the CA)".into());
        }
        Ok(())
    }

    /// Tells open streams to end (graceful shutdown).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Becomes true when the process is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    // ---- admin credentials ----

    /// The caller behind a bearer token (digests compared in constant time).
    pub fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let digest = hash_token(token);
        let st = self.state.read();
        let found = st
            .credentials
            .values()
            .find(|c| c.kind == CredentialKind::Token && auth::digest_eq(&c.token_sha256, &digest));
        match found {
            Some(c) if c.expires_at == 0 || c.expires_at > now() => {
                Ok(Principal { name: c.name.clone(), role: c.role, via: CredentialKind::Token })
            }
            Some(c) => Err(Error::Unauthenticated(format!(
                "the token of credential {:?} has expired; create a new one with `bosun credential create`",
                c.name
            ))),
            None => Err(Error::Unauthenticated("invalid admin token".into())),
        }
    }

    /// The caller behind a verified client certificate on the admin API.
    pub fn authenticate_cert(&self, peer: &PeerCert) -> Result<Principal> {
        let Subject::User(name) = &peer.subject else {
            return Err(Error::PermissionDenied(
                "an agent's certificate cannot call the admin API; use an admin credential".into(),
            ));
        };
        if peer.not_after <= now() {
            return Err(Error::Unauthenticated(format!("the certificate of {name:?} has expired")));
        }
        let st = self.state.read();
        match st.credentials.get(name) {
            Some(c) if c.certificates.iter().any(|x| x.serial == peer.serial) => {
                Ok(Principal { name: c.name.clone(), role: c.role, via: CredentialKind::Certificate })
            }
            _ => Err(Error::Unauthenticated(format!("the certificate of {name:?} has been revoked or replaced"))),
        }
    }

    /// Authorises `who` for `access`.
    pub fn authorize_admin(&self, who: &Principal, access: Access) -> Result<()> {
        if who.role.allows(access) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("{who} may only read; this call changes state and needs role admin")))
        }
    }

    /// Creates a credential: a bearer token (returned once) or, given a CSR, a client
    /// certificate. Re-creating an existing name replaces it (and revokes the old secret).
    pub fn create_credential(
        &self,
        name: &str,
        role: Role,
        csr_pem: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(Credential, CredentialSecret)> {
        if !auth::valid_name(name) {
            return Err(Error::InvalidRequest(format!(
                "credential name {name:?} must be a DNS label: lowercase letters, digits and '-'"
            )));
        }
        if let Some(t) = ttl
            && t > MAX_CREDENTIAL_TTL
        {
            return Err(Error::InvalidRequest(format!(
                "ttl {}s is longer than the {} days a credential may live; give a shorter ttl",
                t.as_secs(),
                MAX_CREDENTIAL_TTL.as_secs() / 86400
            )));
        }
        let created_at = now();
        let (cred, secret) = match csr_pem {
            None => {
                let token = new_token("bat_");
                let expires_at = ttl.map(|t| created_at + t.as_secs() as i64).unwrap_or(0);
                let cred = Credential {
                    name: name.into(),
                    role,
                    kind: CredentialKind::Token,
                    token_sha256: hash_token(&token),
                    certificates: Vec::new(),
                    created_at,
                    expires_at,
                };
                (cred, CredentialSecret::Token(token))
            }
            Some(csr) => {
                let validity = ttl.unwrap_or(self.settings.admin_cert_validity);
                let issued = self.pki.sign_csr(csr, &Subject::User(name.into()), validity)?;
                self.metrics.certificate("admin");
                let cred = Credential {
                    name: name.into(),
                    role,
                    kind: CredentialKind::Certificate,
                    token_sha256: String::new(),
                    certificates: vec![IssuedCert { serial: issued.serial.clone(), expires_at: issued.expires_at }],
                    created_at,
                    expires_at: issued.expires_at,
                };
                (cred, CredentialSecret::Certificate(issued))
            }
        };
        self.store.put(Kind::Credential, name, &cred)?;
        self.state.write().credentials.insert(name.into(), cred.clone());
        Ok((cred, secret))
    }

    pub fn delete_credential(&self, name: &str) -> Result<()> {
        if !self.state.read().credentials.contains_key(name) {
            return Err(Error::NotFound(format!("no credential named {name:?}; see `bosun credential list`")));
        }
        let admins = self.state.read().credentials.values().filter(|c| c.role == Role::Admin).count();
        if admins == 1 && self.state.read().credentials.get(name).is_some_and(|c| c.role == Role::Admin) {
            return Err(Error::InvalidRequest(format!(
                "{name:?} is the last admin credential; create another admin first"
            )));
        }
        self.store.delete(Kind::Credential, name)?;
        self.state.write().credentials.remove(name);
        Ok(())
    }

    pub fn credentials(&self) -> Vec<Credential> {
        self.state.read().credentials.values().cloned().collect()
    }

    // ---- Applications ----

    pub fn create_app(&self, name: &str, spec: AppSpec) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        if self.state.read().apps.contains_key(name) {
            return Err(Error::AppExists(name.into()));
        }
        check_dependencies(&self.state.read().apps, name, &spec.depends_on)?;
        let rec = AppRecord {
            name: name.into(),
            uid: new_uid(),
            spec,
            sync_request: 0,
            status: AppSourceStatus::default(),
            rollback: None,
            parent: String::new(),
            warnings: Vec::new(),
            rollout: Default::default(),
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        info!(app = name, cluster = %rec.spec.destination.cluster, selector = %rec.spec.destination.selector, repo = %redact_url(&rec.spec.source.repo_url), "application created");
        Ok(rec)
    }

    pub fn update_app(&self, name: &str, spec: AppSpec) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        let rec = {
            let st = self.state.read();
            let old = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
            let mut rec = old.clone();
            rec.spec = spec;
            check_dependencies(&st.apps, name, &rec.spec.depends_on)?;
            rec
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        self.reassign_all()?;
        info!(app = name, "application updated");
        Ok(rec)
    }

    pub fn delete_app(&self, name: &str) -> Result<()> {
        let clusters: Vec<String> = {
            let st = self.state.read();
            if !st.apps.contains_key(name) {
                return Err(Error::AppNotFound(name.into()));
            }
            st.statuses.keys().filter(|(a, _)| a == name).map(|(_, c)| c.clone()).collect()
        };
        self.store.delete(Kind::App, name)?;
        for cluster in &clusters {
            self.store.delete(Kind::Status, &status_key(name, cluster))?;
        }
        self.store.delete(Kind::History, name)?;
        {
            let mut st = self.state.write();
            st.apps.remove(name);
            st.statuses.retain(|(a, _), _| a != name);
        }
        let children: Vec<String> =
            self.state.read().apps.values().filter(|a| a.parent == name).map(|a| a.name.clone()).collect();
        for c in children {
            self.delete_app(&c)?;
        }
        self.reassign_all()?;
        info!(app = name, "application deleted");
        Ok(())
    }

    /// Asks the Application's clusters to sync now (delivered durably with the assignment).
    /// A sync request ends a rollback: the latest revision is synced again.
    pub fn sync_app(&self, name: &str) -> Result<AppRecord> {
        let rec = {
            let st = self.state.read();
            let mut rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.clone();
            rec.sync_request += 1;
            rec.rollback = None;
            rec
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        self.reassign_all()?;
        info!(app = name, sync_request = rec.sync_request, "sync requested");
        Ok(rec)
    }

    /// The recorded statuses of `app` (every Application when empty) and a receiver of every
    /// report recorded after them: subscribing and reading happen under the report lock, so
    /// nothing falls between the two.
    pub fn watch_status(
        &self,
        app: &str,
    ) -> Result<(Vec<ClusterAppStatus>, tokio::sync::broadcast::Receiver<Arc<ClusterAppStatus>>)> {
        let _guard = self.report_writes.lock();
        let st = self.state.read();
        if !app.is_empty() && !st.apps.contains_key(app) {
            return Err(Error::AppNotFound(app.into()));
        }
        let current =
            st.statuses.iter().filter(|((a, _), _)| app.is_empty() || a == app).map(|(_, s)| s.clone()).collect();
        Ok((current, self.status_events.subscribe()))
    }

    pub fn app(&self, name: &str) -> Result<AppView> {
        let st = self.state.read();
        let rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
        Ok(view(&st, &fleet(&st), rec))
    }

    pub fn apps(&self) -> Vec<AppView> {
        let st = self.state.read();
        let f = fleet(&st);
        st.apps.values().map(|a| view(&st, &f, a)).collect()
    }

    /// Fetches (when `fetch`) and re-renders one Application; errors are recorded on the
    /// Application and also returned. A fetch means someone asked (a create, an update, a
    /// refresh, a webhook): then a render that failed at this commit is tried again at once;
    /// a poll leaves it to its backoff. The record is written only when what it says changed.
    pub async fn refresh_app(self: &Arc<Self>, name: &str, fetch: bool) -> Result<AppRecord> {
        let _serial = self.refresh_lock.lock().await;
        let (spec, clusters) = {
            let st = self.state.read();
            let spec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.spec.clone();
            let clusters: Vec<ClusterValues> = st
                .clusters
                .values()
                .filter(|c| spec.destination.targets(&c.name, &cluster_labels(c)))
                .map(|c| (c.name.clone(), bosun_core::template::cluster_values(&c.name, &cluster_labels(c))))
                .collect();
            (spec, clusters)
        };
        let this = self.clone();
        let slot = self.render_slots.acquire().await.map_err(|_| Error::Internal("render slots closed".into()))?;
        let outcome = tokio::task::spawn_blocking(move || this.resolve_and_render(&spec, fetch, &clusters))
            .await
            .map_err(|e| Error::Internal(format!("refresh task failed: {e}")))?;
        drop(slot);
        let (rec, changed, error_changed) = {
            let st = self.state.read();
            let old = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
            let mut rec = old.clone();
            match &outcome {
                Ok(r) => {
                    rec.status = AppSourceStatus {
                        revision: r.commit.clone(),
                        bundle_digest: r.digest.clone(),
                        error: r.errors.join("; "),
                        refreshed_at: now(),
                        variants: r.variants.clone(),
                        templated: r.templated,
                        warnings: r.warnings.clone(),
                    };
                }
                Err(e) => {
                    rec.status.error = e.to_string();
                    rec.status.refreshed_at = now();
                }
            }
            let same = |a: &AppSourceStatus, b: &AppSourceStatus| {
                AppSourceStatus { refreshed_at: 0, ..a.clone() } == AppSourceStatus { refreshed_at: 0, ..b.clone() }
            };
            let changed = !same(&rec.status, &old.status);
            let error_changed = rec.status.error != old.status.error;
            (rec, changed, error_changed)
        };
        if changed {
            self.store.put(Kind::App, name, &rec)?;
        }
        self.state.write().apps.insert(name.into(), rec.clone());
        if changed {
            self.reassign_all()?;
        }
        match outcome {
            Ok(Rendered { commit: revision, children, .. }) => {
                if changed {
                    info!(app = name, revision = %revision, "application refreshed");
                }
                self.advance_rollouts()?;
                let changed = self.reconcile_children(&rec, children)?;
                if !changed.is_empty() {
                    tokio::spawn(self.clone().refresh_children(changed));
                }
                Ok(rec)
            }
            Err(e) => {
                if error_changed {
                    warn!(app = name, error = %e, "application refresh failed");
                }
                Err(e)
            }
        }
    }

    /// Resolves the revision and renders: one bundle, or one per distinct variant when the
    /// path or the manifests use per-cluster values (`{{cluster.name}}`,
    /// `{{cluster.labels.KEY}}`) — the path is rendered once per distinct rendered path and
    /// the values substituted once per distinct combination the manifests use.
    fn resolve_and_render(
        &self,
        spec: &AppSpec,
        fetch: bool,
        clusters: &[(String, BTreeMap<String, String>)],
    ) -> Result<Rendered> {
        let url = &spec.source.repo_url;
        if fetch {
            let started = std::time::Instant::now();
            let fetched = self.repo_credentials(url).and_then(|c| self.git.fetch(url, c.as_ref()));
            self.metrics.git_fetch_duration.observe(started.elapsed().as_secs_f64());
            let outcome = if fetched.is_ok() { "ok" } else { "error" };
            self.metrics.git_fetches.get_or_create(&crate::metrics::Metrics::outcome(outcome)).inc();
            fetched?;
        }
        let commit = self.git.resolve(url, &spec.source.target_revision)?;
        let render_err = |path: &str, message: String| Error::Render {
            path: path.to_string(),
            revision: commit.chars().take(12).collect(),
            message,
        };
        if !spec.source.path.contains("{{") {
            let (digest, children, warnings) = self.render_path(spec, &commit, &spec.source.path, fetch)?;
            let mut out =
                Rendered { commit: commit.clone(), digest: digest.clone(), children, warnings, ..Default::default() };
            self.variants(&spec.source.path, &digest, clusters.iter().collect(), &mut out, &render_err)?;
            return Ok(out);
        }
        // A templated path: group clusters by the path they render.
        let mut by_path: BTreeMap<String, Vec<&ClusterValues>> = BTreeMap::new();
        let mut out = Rendered { commit: commit.clone(), templated: true, ..Default::default() };
        for c in clusters {
            match bosun_core::template::substitute(&spec.source.path, &c.1)
                .and_then(|p| bosun_core::app::normalize_path(&p).map_err(|e| e.to_string()))
            {
                Ok(p) => by_path.entry(p).or_default().push(c),
                Err(e) => out.errors.push(format!("cluster {}: path: {e}", c.0)),
            }
        }
        for (path, group) in by_path {
            match self.render_path(spec, &commit, &path, fetch) {
                Ok((digest, _, warnings)) => {
                    out.warnings.extend(warnings);
                    self.variants(&path, &digest, group, &mut out, &render_err)?
                }
                Err(e) => {
                    for c in group {
                        out.errors.push(format!("cluster {}: {e}", c.0));
                    }
                }
            }
        }
        if out.variants.is_empty() && !out.errors.is_empty() {
            return Err(render_err(&spec.source.path, out.errors.join("; ")));
        }
        out.digest = combined_digest(&out.variants);
        Ok(out)
    }

    /// Substitutes per-cluster values into the bundle `digest` when it uses any, storing one
    /// bundle per distinct combination; records each cluster's digest in `out.variants`.
    fn variants(
        &self,
        path: &str,
        digest: &str,
        clusters: Vec<&ClusterValues>,
        out: &mut Rendered,
        render_err: &dyn Fn(&str, String) -> Error,
    ) -> Result<()> {
        let bytes = self.store.get_bundle(digest)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let used = bosun_core::template::variables(&text);
        let templated_path = out.digest.is_empty();
        if used.is_empty() {
            if templated_path {
                for c in clusters {
                    out.variants.insert(c.0.clone(), digest.to_string());
                }
            }
            return Ok(());
        }
        out.templated = true;
        let mut by_values: BTreeMap<Vec<Option<String>>, String> = BTreeMap::new();
        for (name, values) in clusters {
            let key: Vec<Option<String>> = used.iter().map(|v| values.get(v).cloned()).collect();
            if let Some(d) = by_values.get(&key) {
                out.variants.insert(name.clone(), d.clone());
                continue;
            }
            let variant = bosun_core::template::substitute(&text, values)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).map_err(|e| e.to_string()))
                .and_then(|objects| {
                    // A value may have emptied a name or made a label invalid: refused here,
                    // for this Application and cluster, never sent to an agent.
                    for o in &objects {
                        bosun_core::manifest::check_rendered(o)?;
                    }
                    Ok(objects)
                });
            match variant {
                Ok(objects) => {
                    let b = bosun_core::Bundle::new(objects);
                    self.store.put_bundle(&b.digest, &b.to_bytes())?;
                    by_values.insert(key, b.digest.clone());
                    out.variants.insert(name.clone(), b.digest);
                }
                Err(e) => out.errors.push(format!("cluster {name}: {e}")),
            }
        }
        if !templated_path {
            // The manifests use values: the app's identity is the set of its variants.
            if out.variants.is_empty() && !out.errors.is_empty() {
                return Err(render_err(path, out.errors.join("; ")));
            }
            out.digest = combined_digest(&out.variants);
        }
        Ok(())
    }

    /// Renders one path at a commit (cached, failures too, see [`RenderCache`]): the bundle's
    /// digest and the Application manifests found there (app of apps), which are not part of
    /// the bundle. `retry` skips a cached failure's backoff.
    fn render_path(
        &self,
        spec: &AppSpec,
        commit: &str,
        path: &str,
        retry: bool,
    ) -> Result<(String, Vec<Converted>, Vec<String>)> {
        let key = RenderKey {
            repo_url: spec.source.repo_url.clone(),
            commit: commit.to_string(),
            path: path.to_string(),
            recurse: spec.source.recurse,
        };
        let empty_err = || Error::Render {
            path: key.path.clone(),
            revision: commit.chars().take(12).collect(),
            message: "the path renders no objects; refusing to assign an empty bundle (set allowEmpty to permit it)"
                .into(),
        };
        let cached = self.renders.lock().get(&key, retry);
        let rendered = match cached {
            Some(Ok(r)) => {
                self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("cached")).inc();
                r
            }
            Some(Err(message)) => {
                self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("cached_error")).inc();
                return Err(Error::Source(message));
            }
            None => match self.render_timed(&key, commit) {
                Ok(r) => {
                    self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("ok")).inc();
                    self.renders.lock().insert_ok(key.clone(), r.clone());
                    r
                }
                Err(e) => {
                    self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("error")).inc();
                    self.renders.lock().insert_err(key.clone(), e.to_string());
                    return Err(e);
                }
            },
        };
        if rendered.empty && !spec.sync_policy.allow_empty {
            return Err(empty_err());
        }
        Ok((rendered.digest, rendered.children, rendered.warnings))
    }

    /// [`Self::render_uncached`], its duration observed.
    fn render_timed(&self, key: &RenderKey, commit: &str) -> Result<RenderedPath> {
        let started = std::time::Instant::now();
        let r = self.render_uncached(key, commit);
        self.metrics.render_duration.observe(started.elapsed().as_secs_f64());
        r
    }

    fn render_uncached(&self, key: &RenderKey, commit: &str) -> Result<RenderedPath> {
        let output = self.settings.renderer.render(&self.git, key)?;
        let warnings = output.warnings;
        let (apps, objects): (Vec<_>, Vec<_>) =
            output.bundle.objects.into_iter().partition(bosun_core::argo::is_application);
        let mut children = Vec::new();
        for a in &apps {
            let name = a["metadata"]["name"].as_str().unwrap_or_default();
            children.push(bosun_core::argo::convert(a).map_err(|message| Error::Render {
                path: key.path.clone(),
                revision: commit.chars().take(12).collect(),
                message: format!("Application {name:?}: {message}"),
            })?);
        }
        let bundle = bosun_core::Bundle::new(objects);
        let bytes = bundle.to_bytes();
        if bytes.len() > bosun_core::bundle::MAX_BUNDLE_BYTES {
            return Err(Error::Render {
                path: key.path.clone(),
                revision: commit.chars().take(12).collect(),
                message: format!(
                    "the rendered bundle is {} bytes, more than the {} allowed; split the Application",
                    bytes.len(),
                    bosun_core::bundle::MAX_BUNDLE_BYTES
                ),
            });
        }
        self.store.put_bundle(&bundle.digest, &bytes)?;
        Ok(RenderedPath {
            empty: bundle.objects.is_empty() && children.is_empty(),
            digest: bundle.digest,
            children,
            warnings,
        })
    }

    /// Refreshes every Application, fetching each repository once.
    pub async fn refresh_all(self: &Arc<Self>) {
        use futures::StreamExt;
        let apps: Vec<(String, String)> =
            self.state.read().apps.values().map(|a| (a.name.clone(), a.spec.source.repo_url.clone())).collect();
        // Every repository is fetched side by side (a few at a time), so a host that hangs
        // until --git-timeout holds up only its own Applications' poll.
        let urls: std::collections::BTreeSet<String> = apps.iter().map(|(_, u)| u.clone()).collect();
        futures::stream::iter(urls)
            .map(|url| async move {
                let git = self.git.clone();
                let u = url.clone();
                let creds = self.repo_credentials(&url);
                let started = std::time::Instant::now();
                let r = tokio::task::spawn_blocking(move || git.fetch(&u, creds?.as_ref()))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                self.metrics.git_fetch_duration.observe(started.elapsed().as_secs_f64());
                let outcome = if r.is_ok() { "ok" } else { "error" };
                self.metrics.git_fetches.get_or_create(&crate::metrics::Metrics::outcome(outcome)).inc();
                if let Err(e) = &r {
                    warn!(repo = %redact_url(&url), error = %e, "fetch failed");
                }
            })
            .buffer_unordered(4)
            .collect::<()>()
            .await;
        for (name, _) in apps {
            let _ = self.refresh_app(&name, false).await;
        }
    }

    /// Makes the children of `parent` what its path declares: creates new ones, updates
    /// changed ones, deletes those no longer declared (which prunes their objects when their
    /// policy prunes). Returns the children to refresh.
    fn reconcile_children(&self, parent: &AppRecord, declared: Vec<Converted>) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let mut keep = std::collections::BTreeSet::new();
        let mut problems = Vec::new();
        for c in declared {
            let mut spec = c.spec;
            if c.inherits_destination {
                spec.destination.cluster = parent.spec.destination.cluster.clone();
                spec.destination.selector = parent.spec.destination.selector.clone();
            }
            let spec = match spec.validate(&c.name) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("child {:?}: {e}", c.name));
                    continue;
                }
            };
            keep.insert(c.name.clone());
            let existing = self.state.read().apps.get(&c.name).cloned();
            match existing {
                Some(e) if e.parent != parent.name => {
                    problems.push(format!(
                        "child {:?} is declared here but an Application of that name already exists{}",
                        c.name,
                        if e.parent.is_empty() { String::new() } else { format!(" as a child of {:?}", e.parent) }
                    ));
                }
                Some(e) if e.spec == spec && e.warnings == c.warnings => {}
                Some(mut e) => {
                    e.spec = spec;
                    e.warnings = c.warnings;
                    self.store.put(Kind::App, &e.name, &e)?;
                    self.state.write().apps.insert(e.name.clone(), e);
                    info!(app = %c.name, parent = %parent.name, "child application updated");
                    changed.push(c.name);
                }
                None => {
                    let rec = AppRecord {
                        name: c.name.clone(),
                        uid: new_uid(),
                        spec,
                        sync_request: 0,
                        status: AppSourceStatus::default(),
                        rollback: None,
                        parent: parent.name.clone(),
                        warnings: c.warnings,
                        rollout: Default::default(),
                    };
                    self.store.put(Kind::App, &rec.name, &rec)?;
                    self.state.write().apps.insert(rec.name.clone(), rec);
                    info!(app = %c.name, parent = %parent.name, "child application created");
                    changed.push(c.name);
                }
            }
        }
        let gone: Vec<String> = self
            .state
            .read()
            .apps
            .values()
            .filter(|a| a.parent == parent.name && !keep.contains(&a.name))
            .map(|a| a.name.clone())
            .collect();
        for g in gone {
            info!(app = %g, parent = %parent.name, "child application no longer declared; deleting it");
            self.delete_app(&g)?;
        }
        if !problems.is_empty() {
            let mut rec = self.state.read().apps.get(&parent.name).cloned().unwrap_or_else(|| parent.clone());
            rec.status.error = problems.join("; ");
            self.store.put(Kind::App, &rec.name, &rec)?;
            self.state.write().apps.insert(rec.name.clone(), rec);
        }
        self.reassign_all()?;
        Ok(changed)
    }

    /// Refreshes children after their parent (boxed: refreshing is recursive through it).
    fn refresh_children(self: Arc<Self>, names: Vec<String>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.refresh_apps(&names).await })
    }

    /// Refreshes the named Applications now, fetching each repository once (webhooks).
    pub async fn refresh_apps(self: &Arc<Self>, names: &[String]) {
        let mut fetched = std::collections::HashSet::new();
        for name in names {
            let Some(url) = self.state.read().apps.get(name).map(|a| a.spec.source.repo_url.clone()) else { continue };
            let fetch = fetched.insert(url);
            let _ = self.refresh_app(name, fetch).await;
        }
    }

    /// Applications whose source a push touches (see [`bosun_core::webhook::PushEvent::touches`]).
    pub fn apps_touched_by(&self, event: &bosun_core::webhook::PushEvent) -> Vec<String> {
        self.state.read().apps.values().filter(|a| event.touches(&a.spec.source)).map(|a| a.name.clone()).collect()
    }

    /// Sets the gauges that describe the model, for a scrape.
    pub fn refresh_gauges(&self) {
        use crate::metrics::{AppInfo, AppState, ClusterLabel, ClusterState};
        let st = self.state.read();
        let m = &self.metrics;
        m.applications.clear();
        for s in st.statuses.values() {
            m.applications
                .get_or_create(&AppState { sync: s.sync_status.to_string(), health: s.health.to_string() })
                .inc();
        }
        m.clusters.clear();
        m.cluster_connected.clear();
        for c in st.clusters.values() {
            let connected = st.connections.get(&c.name).copied().unwrap_or(0) > 0;
            let state = match (c.joined, connected, c.revoked_at > 0) {
                (_, true, _) => "connected",
                (true, false, _) => "joined",
                (false, _, true) => "revoked",
                (false, _, false) => "registered",
            };
            m.clusters.get_or_create(&ClusterState { state: state.into() }).inc();
            m.cluster_connected.get_or_create(&ClusterLabel { cluster: c.name.clone() }).set(i64::from(connected));
        }
        m.app_info.clear();
        let f = fleet(&st);
        for a in st.apps.values() {
            let v = view(&st, &f, a);
            let d = &a.spec.destination;
            let info = AppInfo {
                name: a.name.clone(),
                repo: redact_url(&a.spec.source.repo_url),
                path: a.spec.source.path.clone(),
                target_revision: a.spec.source.target_revision.clone(),
                destination: if d.cluster.is_empty() { format!("selector:{}", d.selector) } else { d.cluster.clone() },
                sync: v.sync_status.to_string(),
                health: v.health.to_string(),
                autosync: a.spec.sync_policy.automated.to_string(),
            };
            m.app_info.get_or_create(&info).set(1);
        }
    }

    // ---- repository credentials ----

    /// Stores credentials for a repository URL or URL prefix: a username and password or token
    /// (https), or a deploy key with the host keys to accept (ssh). Secrets are sealed with the
    /// secret key before they reach the store.
    pub fn add_repository(
        &self,
        url: &str,
        username: &str,
        password: &Secret,
        ssh_key: &Secret,
        known_hosts: &str,
    ) -> Result<RepoRecord> {
        let url = url.trim();
        let rec = if bosun_core::app::is_ssh_url(url) {
            if !password.is_empty() {
                return Err(Error::InvalidRequest("an ssh repository takes a deploy key, not a password".into()));
            }
            if ssh_key.is_empty() || !ssh_key.expose().contains("PRIVATE KEY-----") {
                return Err(Error::InvalidRequest(
                    "an ssh repository needs a private deploy key (--ssh-key-file, OpenSSH PEM)".into(),
                ));
            }
            check_known_hosts(known_hosts)?;
            RepoRecord {
                url: url.to_string(),
                username: username.to_string(),
                password_sealed: String::new(),
                ssh_key_sealed: self.secrets.seal(&format!("ssh-key:{url}"), ssh_key)?,
                known_hosts: known_hosts.trim().to_string(),
            }
        } else {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::InvalidRequest(format!(
                    "repository credentials are for https:// or ssh URLs (ssh://… or user@host:path); {:?} is neither",
                    redact_url(url)
                )));
            }
            if url.contains('@') {
                return Err(Error::InvalidRequest(
                    "put the username and password in their fields, not in the URL".into(),
                ));
            }
            if !ssh_key.is_empty() {
                return Err(Error::InvalidRequest("an ssh key is for ssh URLs (ssh://… or user@host:path)".into()));
            }
            RepoRecord {
                url: url.to_string(),
                username: username.to_string(),
                password_sealed: if password.is_empty() { String::new() } else { self.secrets.seal(url, password)? },
                ssh_key_sealed: String::new(),
                known_hosts: String::new(),
            }
        };
        self.store.put(Kind::Repository, url, &rec)?;
        self.state.write().repos.insert(url.to_string(), rec.clone());
        Ok(rec)
    }

    pub fn repositories(&self) -> Vec<RepoRecord> {
        self.state.read().repos.values().cloned().collect()
    }

    pub fn delete_repository(&self, url: &str) -> Result<()> {
        if self.state.write().repos.remove(url).is_none() {
            return Err(Error::NotFound(format!(
                "no credentials stored for {:?}; see `bosun repo list`",
                redact_url(url)
            )));
        }
        self.store.delete(Kind::Repository, url)?;
        Ok(())
    }

    /// The credentials of the longest stored URL prefix of `url`, decrypted.
    fn repo_credentials(&self, url: &str) -> Result<Option<crate::git::Account>> {
        let rec = {
            let st = self.state.read();
            st.repos.values().filter(|r| url.starts_with(&r.url)).max_by_key(|r| r.url.len()).cloned()
        };
        let Some(rec) = rec else { return Ok(None) };
        let password = if rec.password_sealed.is_empty() {
            Secret::default()
        } else {
            self.secrets.open(&rec.url, &rec.password_sealed)?
        };
        let ssh = if rec.ssh_key_sealed.is_empty() {
            None
        } else {
            Some(crate::git::SshAccount {
                private_key: self.secrets.open(&format!("ssh-key:{}", rec.url), &rec.ssh_key_sealed)?,
                known_hosts: rec.known_hosts.clone(),
            })
        };
        Ok(Some(crate::git::Account { username: rec.username, password, ssh }))
    }

    /// Advances rollouts every second (pauses and offline timeouts end without an event), and
    /// re-renders Applications with per-cluster values whose clusters changed.
    pub async fn tick_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.advance_rollouts() {
                warn!(error = %e, "advancing rollouts failed");
            }
            let pending = std::mem::take(&mut *self.pending_refresh.lock());
            for app in pending {
                let _ = self.refresh_app(&app, false).await;
            }
        }
    }

    /// Clusters or their labels changed: Applications with per-cluster values re-render.
    fn clusters_changed(&self) {
        let templated: Vec<String> = self
            .state
            .read()
            .apps
            .values()
            .filter(|a| a.status.templated || a.spec.source.path.contains("{{"))
            .map(|a| a.name.clone())
            .collect();
        self.pending_refresh.lock().extend(templated);
    }

    /// Polls Git every `poll_interval` (±10% jitter) until the process ends.
    pub async fn poll_forever(self: Arc<Self>) {
        loop {
            self.refresh_all().await;
            let base = self.settings.poll_interval.as_secs_f64();
            let jitter = 0.9 + rand::random::<f64>() * 0.2;
            tokio::time::sleep(Duration::from_secs_f64((base * jitter).max(0.05))).await;
        }
    }

    // ---- clusters ----

    /// Creates a single-use join token bound to `cluster` (and the cluster record if new).
    pub fn create_join_token(
        &self,
        cluster: &str,
        ttl: Duration,
        labels: BTreeMap<String, String>,
    ) -> Result<(String, i64)> {
        if !bosun_core::app::is_dns_label(cluster) {
            return Err(Error::InvalidRequest(format!(
                "cluster name {cluster:?} must be a DNS label: lowercase letters, digits and '-'"
            )));
        }
        check_labels(&labels)?;
        if ttl > MAX_JOIN_TOKEN_TTL || ttl.is_zero() {
            return Err(Error::InvalidRequest(format!(
                "join token ttl {}s: give between 1 s and {} days",
                ttl.as_secs(),
                MAX_JOIN_TOKEN_TTL.as_secs() / 86400
            )));
        }
        let token = new_token("bjt_");
        let expires_at = now() + ttl.as_secs() as i64;
        self.store.put(Kind::JoinToken, &hash_token(&token), &TokenRecord { cluster: cluster.into(), expires_at })?;
        let created = {
            let _w = self.cluster_writes.lock();
            let missing = !self.state.read().clusters.contains_key(cluster);
            if missing {
                let rec = ClusterRecord { name: cluster.into(), labels: labels.clone(), ..Default::default() };
                self.store.put(Kind::Cluster, cluster, &rec)?;
                self.state.write().clusters.insert(cluster.into(), rec);
            }
            missing
        };
        if !created && !labels.is_empty() {
            self.set_cluster_labels(cluster, labels, &[])?;
        }
        if created {
            self.reassign([cluster.to_string()])?;
            self.clusters_changed();
        }
        info!(cluster, "join token created");
        Ok((token, expires_at))
    }

    /// Exchanges a join token and CSR for a client certificate.
    pub fn join(&self, token: &str, csr_pem: &str, agent_version: &str) -> Result<(String, Issued)> {
        let rec: TokenRecord = self.store.take(Kind::JoinToken, &hash_token(token))?.ok_or(Error::BadJoinToken)?;
        if rec.expires_at < now() {
            return Err(Error::BadJoinToken);
        }
        let issued = self.pki.sign_csr(csr_pem, &Subject::Cluster(rec.cluster.clone()), self.settings.cert_validity)?;
        self.metrics.certificate("join");
        self.update_cluster(&rec.cluster, |c| {
            c.joined = true;
            c.agent_version = agent_version.into();
            record_certificate(c, &issued);
            true
        })?
        .ok_or(Error::BadJoinToken)?;
        info!(cluster = %rec.cluster, serial = %issued.serial, "agent joined");
        Ok((rec.cluster, issued))
    }

    /// Issues a new certificate to an agent that holds a valid one (called over mTLS before
    /// the old one expires). Both stay valid until the old one expires, so connections made
    /// with either keep working during the handover.
    pub fn renew(&self, cluster: &str, csr_pem: &str) -> Result<Issued> {
        let issued = self.pki.sign_csr(csr_pem, &Subject::Cluster(cluster.into()), self.settings.cert_validity)?;
        self.metrics.certificate("renewal");
        self.update_cluster(cluster, |c| {
            record_certificate(c, &issued);
            true
        })?
        .ok_or_else(|| Error::ClusterNotFound(cluster.into()))?;
        info!(cluster, serial = %issued.serial, expires_at = issued.expires_at, "agent certificate renewed");
        Ok(issued)
    }

    /// Read-modify-write of one cluster record, serialised with every other cluster write so
    /// that concurrent updates (a connection's last-seen time, a renewal) never overwrite
    /// each other. `f` returns whether it changed anything; changes are persisted first.
    fn update_cluster(&self, name: &str, f: impl FnOnce(&mut ClusterRecord) -> bool) -> Result<Option<ClusterRecord>> {
        let _w = self.cluster_writes.lock();
        let Some(mut rec) = self.state.read().clusters.get(name).cloned() else { return Ok(None) };
        if f(&mut rec) {
            self.store.put(Kind::Cluster, name, &rec)?;
            self.state.write().clusters.insert(name.into(), rec.clone());
        }
        Ok(Some(rec))
    }

    /// Adds or changes `set` and removes `remove` from the cluster's labels; Applications that
    /// target by selector follow (the cluster gains or loses them at once).
    pub fn set_cluster_labels(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<ClusterRecord> {
        check_labels(&set)?;
        let rec = self
            .update_cluster(name, |c| {
                let before = c.labels.clone();
                for k in remove {
                    c.labels.remove(k);
                }
                c.labels.extend(set);
                c.labels != before
            })?
            .ok_or_else(|| Error::ClusterNotFound(name.into()))?;
        self.reassign([name.to_string()])?;
        self.clusters_changed();
        info!(cluster = name, labels = ?rec.labels, "cluster labels set");
        Ok(rec)
    }

    /// Refuses every certificate issued to the cluster so far and closes its open streams.
    /// Its Applications and status stay; a new join token lets it join again.
    pub fn revoke_cluster(&self, name: &str) -> Result<()> {
        self.update_cluster(name, |rec| {
            rec.certificates.clear();
            rec.joined = false;
            rec.revoked_at = now();
            true
        })?
        .ok_or_else(|| Error::ClusterNotFound(name.into()))?;
        self.notify.lock().remove(name);
        warn!(cluster = name, "cluster revoked: its certificates are refused and its streams closed");
        Ok(())
    }

    pub fn delete_cluster(&self, name: &str) -> Result<()> {
        let _w = self.cluster_writes.lock();
        if !self.state.read().clusters.contains_key(name) {
            return Err(Error::ClusterNotFound(name.into()));
        }
        self.store.delete(Kind::Cluster, name)?;
        let statuses: Vec<(String, String)> =
            self.state.read().statuses.keys().filter(|(_, c)| c == name).cloned().collect();
        for (a, c) in &statuses {
            self.store.delete(Kind::Status, &status_key(a, c))?;
        }
        {
            let mut st = self.state.write();
            st.clusters.remove(name);
            st.statuses.retain(|(_, c), _| c != name);
        }
        // Dropping the sender ends the cluster's open streams.
        self.notify.lock().remove(name);
        info!(cluster = name, "cluster deleted; its certificate is no longer accepted");
        Ok(())
    }

    pub fn cluster(&self, name: &str) -> Result<ClusterView> {
        let st = self.state.read();
        let record = st.clusters.get(name).cloned().ok_or_else(|| Error::ClusterNotFound(name.into()))?;
        Ok(ClusterView { connected: st.connections.get(name).copied().unwrap_or(0) > 0, record })
    }

    pub fn clusters(&self) -> Vec<ClusterView> {
        let st = self.state.read();
        st.clusters
            .values()
            .map(|c| ClusterView {
                record: c.clone(),
                connected: st.connections.get(&c.name).copied().unwrap_or(0) > 0,
            })
            .collect()
    }

    /// The cluster a verified agent certificate speaks for: a joined cluster that issued
    /// exactly this certificate, which has not expired. Every agent RPC makes this check.
    pub fn authorize_agent(&self, peer: &PeerCert) -> Result<String> {
        let Subject::Cluster(name) = &peer.subject else {
            return Err(Error::PermissionDenied("a user certificate cannot call the agent API".into()));
        };
        if peer.not_after <= now() {
            return Err(Error::Unauthenticated(format!(
                "the certificate of cluster {name:?} has expired; the agent renews before expiry, else join again"
            )));
        }
        match self.state.read().clusters.get(name) {
            Some(c) if c.joined && c.certificates.iter().any(|x| x.serial == peer.serial) => Ok(name.clone()),
            Some(c) if c.joined => Err(Error::PermissionDenied(format!(
                "this certificate of cluster {name:?} is no longer valid (replaced or revoked)"
            ))),
            Some(_) => Err(Error::PermissionDenied(format!(
                "cluster {name:?} is revoked; join it again with a new token from `bosun cluster add {name}`"
            ))),
            None => {
                Err(Error::PermissionDenied(format!("cluster {name:?} is not registered (deleted or never joined)")))
            }
        }
    }

    // ---- agents ----

    pub fn subscribe(&self, cluster: &str) -> watch::Receiver<u64> {
        let generation = self.state.read().clusters.get(cluster).map(|c| c.generation).unwrap_or(0);
        self.notify.lock().entry(cluster.to_string()).or_insert_with(|| watch::channel(generation).0).subscribe()
    }

    /// The cluster's current generation and assignments (`None` once the cluster is deleted).
    pub fn snapshot(&self, cluster: &str) -> Option<(u64, Vec<Assignment>)> {
        let st = self.state.read();
        let c = st.clusters.get(cluster)?;
        let f = fleet(&st);
        Some((c.generation, f.assignments(&f.admissions(), cluster)))
    }

    pub fn connected(&self, cluster: &str, up: bool, facts: Option<(BTreeMap<String, String>, String)>) {
        {
            let mut st = self.state.write();
            let n = st.connections.entry(cluster.to_string()).or_insert(0);
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
        let facts = facts.map(|(reported, version)| {
            let (kept, refused) = bosun_core::cluster::accept_facts(reported);
            for r in refused {
                // An agent speaking outside its own facts: visible to whoever reads the audit log.
                warn!(target: "bosun::audit", who = %format!("cluster/{cluster}"), action = "ReportFacts", object = %r.name, outcome = "refused", reason = %r.why, "audit: fact refused");
            }
            (kept, version)
        });
        let mut facts_changed = false;
        let updated = self.update_cluster(cluster, |c| {
            c.last_seen = now();
            if let Some((facts, version)) = facts {
                facts_changed = c.facts != facts;
                c.facts = facts;
                c.agent_version = version;
            }
            true
        });
        if let Err(e) = updated {
            warn!(cluster, error = %e, "could not persist cluster facts");
        }
        if facts_changed {
            // Facts are labels to selectors and per-cluster values.
            if let Err(e) = self.reassign([cluster.to_string()]) {
                warn!(cluster, error = %e, "could not reassign after new facts");
            }
            self.clusters_changed();
        }
    }

    /// Records an agent's report for one of its own Applications.
    pub fn report(&self, cluster: &str, status: ClusterAppStatus) -> Result<()> {
        let started = std::time::Instant::now();
        let r = self.record_report(cluster, status);
        self.metrics.report_duration.observe(started.elapsed().as_secs_f64());
        r
    }

    fn record_report(&self, cluster: &str, status: ClusterAppStatus) -> Result<()> {
        self.metrics.status_reports.inc();
        let assigned = {
            let st = self.state.read();
            let labels = st.clusters.get(cluster).map(cluster_labels).unwrap_or_default();
            st.apps.get(&status.app).is_some_and(|a| a.spec.destination.targets(cluster, &labels))
        };
        if !assigned {
            warn!(cluster, app = %status.app, "ignoring status for an application not assigned to this cluster");
            return Ok(());
        }
        let status = ClusterAppStatus { cluster: cluster.into(), ..status };
        // One report at a time: reading the previous status, recording a completed sync and
        // storing the new one must not interleave (a duplicate report would record the same
        // sync twice).
        let guard = self.report_writes.lock();
        let previous = self.state.read().statuses.get(&(status.app.clone(), cluster.to_string())).cloned();
        let (previous_sync, previous_request) =
            previous.as_ref().map(|s| (s.synced_at, s.observed_sync_request)).unwrap_or((0, 0));
        // Another Application on this cluster may depend on this one's sync and health.
        let gating_changed = previous.as_ref().is_none_or(|p| {
            (p.sync_status, p.health, &p.bundle_digest) != (status.sync_status, status.health, &status.bundle_digest)
        });
        // A sync completed: a later time, or (times are in seconds: two syncs may end in the
        // same one) the same time with a bundle the cluster was not synced at before.
        let completed = status.synced_at > previous_sync
            || (status.synced_at > 0
                && status.synced_at == previous_sync
                && status.sync_status == SyncStatus::Synced
                && previous
                    .as_ref()
                    .is_some_and(|p| p.bundle_digest != status.bundle_digest || p.sync_status != SyncStatus::Synced));
        if completed {
            self.record_sync(cluster, &status, previous_request)?;
        }
        self.store.put(Kind::Status, &status_key(&status.app, cluster), &status)?;
        let mut st = self.state.write();
        if let Some(c) = st.clusters.get_mut(cluster) {
            c.last_seen = now();
        }
        st.statuses.insert((status.app.clone(), cluster.into()), status.clone());
        drop(st);
        // No receiver is fine: nobody is watching.
        let _ = self.status_events.send(Arc::new(status));
        drop(guard);
        if gating_changed {
            self.advance_rollouts()?;
            self.reassign([cluster.to_string()])?;
        }
        Ok(())
    }

    /// Moves every progressive rollout forward as far as its clusters allow (also called
    /// every second, for pauses and offline timeouts). Persists and announces changes.
    pub fn advance_rollouts(&self) -> Result<()> {
        let _w = self.rollout_writes.lock();
        let now = now();
        let updates: Vec<AppRecord> = {
            let st = self.state.read();
            let f = fleet(&st);
            st.apps
                .values()
                .filter_map(|a| {
                    let strategy = a.spec.rollout.as_ref()?;
                    if a.rollback.is_some() || a.status.bundle_digest.is_empty() {
                        return None;
                    }
                    let mut state = a.rollout.clone();
                    if state.digest != a.status.bundle_digest {
                        state =
                            bosun_core::rollout::State { digest: a.status.bundle_digest.clone(), ..Default::default() };
                    }
                    let targets = f.rollout_targets(&scheduled(a), strategy);
                    let next = bosun_core::rollout::advance(strategy, &state, &targets, now);
                    (next != a.rollout).then(|| AppRecord { rollout: next, ..a.clone() })
                })
                .collect()
        };
        if updates.is_empty() {
            return Ok(());
        }
        for rec in updates {
            if rec.rollout.halted
                != self.state.read().apps.get(&rec.name).map(|a| a.rollout.halted.clone()).unwrap_or_default()
                && !rec.rollout.halted.is_empty()
            {
                warn!(app = %rec.name, reason = %rec.rollout.halted, "rollout halted");
            }
            self.store.put(Kind::App, &rec.name, &rec)?;
            self.state.write().apps.insert(rec.name.clone(), rec);
        }
        self.reassign_all()
    }

    /// `resume` (skipping the clusters that halted it) or `abort` a rollout.
    pub fn rollout_action(&self, name: &str, action: &str) -> Result<AppRecord> {
        let rec = {
            let _w = self.rollout_writes.lock();
            let st = self.state.read();
            let a = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
            let strategy = a
                .spec
                .rollout
                .as_ref()
                .ok_or_else(|| Error::InvalidRequest(format!("application {name:?} has no rollout strategy")))?;
            let mut rec = a.clone();
            match action {
                "resume" => {
                    rec.rollout =
                        bosun_core::rollout::resume(&a.rollout, &fleet(&st).rollout_targets(&scheduled(a), strategy))
                }
                "abort" => rec.rollout.aborted = true,
                other => return Err(Error::InvalidRequest(format!("rollout action {other:?}: use resume or abort"))),
            }
            drop(st);
            self.store.put(Kind::App, name, &rec)?;
            self.state.write().apps.insert(name.into(), rec.clone());
            rec
        };
        info!(app = name, action, "rollout action");
        self.advance_rollouts()?;
        self.reassign_all()?;
        Ok(rec)
    }

    fn record_sync(&self, cluster: &str, status: &ClusterAppStatus, previous_request: u64) -> Result<()> {
        let mut entries: Vec<HistoryEntry> = self.store.get(Kind::History, &status.app)?.unwrap_or_default();
        // The same completed sync reported again (a reconnect, a restart between the history
        // write and the status write) is recorded once.
        if entries
            .iter()
            .any(|e| e.cluster == cluster && e.synced_at == status.synced_at && e.bundle_digest == status.bundle_digest)
        {
            return Ok(());
        }
        // A sync that consumed a new sync request was asked for by someone; others are automated.
        let initiated_by = if status.observed_sync_request > previous_request {
            format!("sync request {}", status.observed_sync_request)
        } else {
            "automated".to_string()
        };
        let id = entries.first().map(|e| e.id + 1).unwrap_or(1);
        entries.insert(
            0,
            HistoryEntry {
                id,
                cluster: cluster.into(),
                revision: status.revision.clone(),
                bundle_digest: status.bundle_digest.clone(),
                synced_at: status.synced_at,
                sync_status: status.sync_status,
                health: status.health,
                initiated_by,
            },
        );
        entries.truncate(HISTORY_LIMIT);
        self.store.put(Kind::History, &status.app, &entries)?;
        Ok(())
    }

    /// Deploys the revision of history entry `id` again and pauses automated sync.
    pub fn rollback_app(&self, name: &str, id: u64) -> Result<AppRecord> {
        if self.state.read().apps.get(name).is_some_and(|a| a.status.templated) {
            return Err(Error::InvalidRequest(format!(
                "application {name:?} renders per-cluster variants; rolling them back is not supported yet — revert the commit in Git instead"
            )));
        }
        let entry = self.history(name)?.into_iter().find(|e| e.id == id).ok_or_else(|| {
            Error::NotFound(format!("application {name:?} has no history entry {id}; see `bosun app history {name}`"))
        })?;
        if self.store.get_bundle(&entry.bundle_digest)?.is_none() {
            return Err(Error::NotFound(format!("the bundle of history entry {id} is no longer stored")));
        }
        let rec = {
            let st = self.state.read();
            let mut rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.clone();
            rec.sync_request += 1;
            rec.rollback = Some(entry);
            rec
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        self.reassign_all()?;
        info!(app = name, history_id = id, revision = %rec.rollback.as_ref().map(|e| e.revision.as_str()).unwrap_or_default(), "rolled back; automated sync paused");
        Ok(rec)
    }

    /// The last syncs of an Application, newest first.
    pub fn history(&self, app: &str) -> Result<Vec<HistoryEntry>> {
        if !self.state.read().apps.contains_key(app) {
            return Err(Error::AppNotFound(app.into()));
        }
        Ok(self.store.get(Kind::History, app)?.unwrap_or_default())
    }

    /// A bundle, if it is assigned to `cluster`.
    pub fn bundle_for(&self, cluster: &str, digest: &str) -> Result<Vec<u8>> {
        let assigned = {
            let st = self.state.read();
            let f = fleet(&st);
            f.assignments(&f.admissions(), cluster).iter().any(|a| a.bundle_digest == digest)
        };
        if !assigned {
            return Err(Error::PermissionDenied(format!("bundle {digest} is not assigned to cluster {cluster:?}")));
        }
        self.store.get_bundle(digest)?.ok_or_else(|| Error::NotFound(format!("bundle {digest} is not stored")))
    }

    /// Recomputes the assignments of every cluster (after an Application changed: selectors
    /// and dependencies may concern any of them).
    fn reassign_all(&self) -> Result<()> {
        let names: Vec<String> = self.state.read().clusters.keys().cloned().collect();
        self.reassign(names)
    }

    /// Recomputes the assignments of `clusters`; bumps and announces the generation of
    /// each whose assignments changed.
    fn reassign(&self, clusters: impl IntoIterator<Item = String>) -> Result<()> {
        let admissions = fleet(&self.state.read()).admissions();
        for name in clusters {
            let digest = {
                let st = self.state.read();
                hex::encode(Sha256::digest(
                    serde_json::to_vec(&fleet(&st).assignments(&admissions, &name)).unwrap_or_default(),
                ))
            };
            let mut changed = false;
            let Some(updated) = self.update_cluster(&name, |c| {
                changed = c.assignment_digest != digest;
                if changed {
                    c.generation += 1;
                    c.assignment_digest = digest;
                }
                changed
            })?
            else {
                continue;
            };
            if changed && let Some(tx) = self.notify.lock().get(&name) {
                tx.send_replace(updated.generation);
            }
        }
        Ok(())
    }
}

/// A cluster's labels as selectors see them (see [`bosun_core::cluster::labels`]): admin
/// labels, agent facts under `fact.bosun.dev/`, and `bosun.dev/name` from its certificate.
pub fn cluster_labels(c: &ClusterRecord) -> BTreeMap<String, String> {
    bosun_core::cluster::labels(&c.name, &c.labels, &c.facts)
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in labels {
        bosun_core::cluster::check_admin_label(k, v).map_err(Error::InvalidRequest)?;
    }
    Ok(())
}

fn view(st: &State, f: &schedule::Fleet<'_>, rec: &AppRecord) -> AppView {
    let app = scheduled(rec);
    let mut clusters = Vec::new();
    let (mut sync_status, mut health) = (SyncStatus::Synced, Health::Healthy);
    for (name, c) in &st.clusters {
        if !rec.spec.destination.targets(name, &cluster_labels(c)) {
            continue;
        }
        let connected = st.connections.get(name).copied().unwrap_or(0) > 0;
        let status = st.statuses.get(&(rec.name.clone(), name.clone())).cloned();
        let deployed = schedule::deployed_for(&app, name);
        let (s, h) = match &status {
            Some(s) if s.bundle_digest == deployed && !deployed.is_empty() => (s.sync_status, s.health),
            Some(s) => (SyncStatus::OutOfSync, s.health),
            None => (SyncStatus::Unknown, Health::Unknown),
        };
        sync_status = worst_sync(sync_status, s);
        health = Health::worst([health, h]);
        let mut status = status.unwrap_or_else(|| ClusterAppStatus {
            app: rec.name.clone(),
            cluster: name.clone(),
            ..Default::default()
        });
        let waiting = f.unmet_dependencies(&app, name);
        if !waiting.is_empty() {
            status.message = format!("waiting for {} to be Synced and Healthy on this cluster", waiting.join(", "));
        }
        clusters.push((status, connected));
    }
    if clusters.is_empty() {
        // A name of a cluster not registered yet, or a selector matching none.
        let cluster = rec.spec.destination.cluster.clone();
        if !cluster.is_empty() {
            clusters.push((ClusterAppStatus { app: rec.name.clone(), cluster, ..Default::default() }, false));
        }
        (sync_status, health) = (SyncStatus::Unknown, Health::Unknown);
    }
    let children = st.apps.values().filter(|a| a.parent == rec.name).map(|a| a.name.clone()).collect();
    let rollout = rec
        .spec
        .rollout
        .as_ref()
        .map(|s| bosun_core::rollout::describe(s, &rec.rollout, clusters.len()))
        .unwrap_or_default();
    AppView { record: rec.clone(), children, rollout, clusters, sync_status, health }
}

/// The less synced of two sync states: OutOfSync over Unknown over Synced.
fn worst_sync(a: SyncStatus, b: SyncStatus) -> SyncStatus {
    let rank = |s: SyncStatus| match s {
        SyncStatus::Synced => 0,
        SyncStatus::Unknown => 1,
        SyncStatus::OutOfSync => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}
