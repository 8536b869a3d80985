//! The control plane's model: Applications, clusters, assignments and status, loaded from the
//! store at start; every mutation is persisted first, then applied in memory, then announced
//! to the agents it concerns. gRPC handlers are thin calls into this.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use bosun_core::Assignment;
use bosun_core::{AppSpec, Health, SyncPolicy, SyncStatus};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::git::{GitCache, redact_url};
use crate::pki::Pki;
use crate::render::{RenderKey, render};
use crate::store::{Kind, Store, StoreExt};

pub fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// An Application as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    pub spec: AppSpec,
    /// Bumped by each sync request; agents act on a value they have not seen.
    pub sync_request: u64,
    pub status: AppSourceStatus,
    /// Set while rolled back to a history entry: its bundle is deployed and automated sync
    /// is paused until the next sync request.
    #[serde(default)]
    pub rollback: Option<HistoryEntry>,
}

/// What the control plane knows of an Application's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AppSourceStatus {
    pub revision: String,
    pub bundle_digest: String,
    pub error: String,
    pub refreshed_at: i64,
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

/// Syncs kept per Application (Argo CD's default `revisionHistoryLimit`).
pub const HISTORY_LIMIT: usize = 10;

/// An Application with everything known about it, for the admin API.
#[derive(Debug, Clone)]
pub struct AppView {
    pub record: AppRecord,
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
}

/// Settings of the model.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cert_validity: Duration,
    pub poll_interval: Duration,
}

pub struct ControlPlane {
    store: Arc<dyn Store>,
    git: Arc<GitCache>,
    pub pki: Pki,
    settings: Settings,
    state: RwLock<State>,
    notify: Mutex<HashMap<String, watch::Sender<u64>>>,
    renders: Mutex<HashMap<RenderKey, String>>,
    refresh_lock: tokio::sync::Mutex<()>,
    admin_token_hash: String,
}

fn status_key(app: &str, cluster: &str) -> String {
    format!("{app}/{cluster}")
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

impl ControlPlane {
    /// Loads the model from the store. Creates the admin token on first start and returns it
    /// then (it is stored only hashed).
    pub fn load(
        store: Arc<dyn Store>,
        git: Arc<GitCache>,
        pki: Pki,
        settings: Settings,
    ) -> Result<(Self, Option<String>)> {
        let mut state = State::default();
        for a in store.list::<AppRecord>(Kind::App)? {
            state.apps.insert(a.name.clone(), a);
        }
        for c in store.list::<ClusterRecord>(Kind::Cluster)? {
            state.clusters.insert(c.name.clone(), c);
        }
        for s in store.list::<ClusterAppStatus>(Kind::Status)? {
            state.statuses.insert((s.app.clone(), s.cluster.clone()), s);
        }
        let (admin_token_hash, new_admin) = match store.get::<String>(Kind::Meta, "admin_token_sha256")? {
            Some(h) => (h, None),
            None => {
                let token = new_token("bat_");
                let h = hash_token(&token);
                store.put(Kind::Meta, "admin_token_sha256", &h)?;
                (h, Some(token))
            }
        };
        let cp = Self {
            store,
            git,
            pki,
            settings,
            state: RwLock::new(state),
            notify: Mutex::new(HashMap::new()),
            renders: Mutex::new(HashMap::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
            admin_token_hash,
        };
        Ok((cp, new_admin))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether `token` is the admin token (compares SHA-256 digests).
    pub fn is_admin_token(&self, token: &str) -> bool {
        let a = hash_token(token);
        a.len() == self.admin_token_hash.len()
            && a.bytes().zip(self.admin_token_hash.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    // ---- Applications ----

    pub fn create_app(&self, name: &str, spec: AppSpec) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        if self.state.read().apps.contains_key(name) {
            return Err(Error::AppExists(name.into()));
        }
        let rec =
            AppRecord { name: name.into(), spec, sync_request: 0, status: AppSourceStatus::default(), rollback: None };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        info!(app = name, cluster = %rec.spec.destination.cluster, repo = %redact_url(&rec.spec.source.repo_url), "application created");
        Ok(rec)
    }

    pub fn update_app(&self, name: &str, spec: AppSpec) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        let (rec, old_cluster) = {
            let st = self.state.read();
            let old = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
            let mut rec = old.clone();
            rec.spec = spec;
            (rec, old.spec.destination.cluster.clone())
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        self.reassign([old_cluster, rec.spec.destination.cluster.clone()])?;
        info!(app = name, "application updated");
        Ok(rec)
    }

    pub fn delete_app(&self, name: &str) -> Result<()> {
        let cluster = {
            let st = self.state.read();
            st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.spec.destination.cluster.clone()
        };
        self.store.delete(Kind::App, name)?;
        self.store.delete(Kind::Status, &status_key(name, &cluster))?;
        self.store.delete(Kind::History, name)?;
        {
            let mut st = self.state.write();
            st.apps.remove(name);
            st.statuses.retain(|(a, _), _| a != name);
        }
        self.reassign([cluster])?;
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
        self.reassign([rec.spec.destination.cluster.clone()])?;
        info!(app = name, sync_request = rec.sync_request, "sync requested");
        Ok(rec)
    }

    pub fn app(&self, name: &str) -> Result<AppView> {
        let st = self.state.read();
        let rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
        Ok(view(&st, rec))
    }

    pub fn apps(&self) -> Vec<AppView> {
        let st = self.state.read();
        st.apps.values().map(|a| view(&st, a)).collect()
    }

    /// Fetches (when `fetch`) and re-renders one Application; errors are recorded on the
    /// Application and also returned.
    pub async fn refresh_app(self: &Arc<Self>, name: &str, fetch: bool) -> Result<AppRecord> {
        let _serial = self.refresh_lock.lock().await;
        let spec = self.state.read().apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.spec.clone();
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.resolve_and_render(&spec, fetch))
            .await
            .map_err(|e| Error::InvalidRequest(format!("refresh task failed: {e}")))?;
        let rec = {
            let st = self.state.read();
            let mut rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.clone();
            match &outcome {
                Ok((revision, digest)) => {
                    rec.status = AppSourceStatus {
                        revision: revision.clone(),
                        bundle_digest: digest.clone(),
                        error: String::new(),
                        refreshed_at: now(),
                    };
                }
                Err(e) => rec.status.error = e.to_string(),
            }
            rec
        };
        self.store.put(Kind::App, name, &rec)?;
        self.state.write().apps.insert(name.into(), rec.clone());
        self.reassign([rec.spec.destination.cluster.clone()])?;
        match outcome {
            Ok((revision, _)) => {
                info!(app = name, revision = %revision, "application refreshed");
                Ok(rec)
            }
            Err(e) => {
                warn!(app = name, error = %e, "application refresh failed");
                Err(e)
            }
        }
    }

    fn resolve_and_render(&self, spec: &AppSpec, fetch: bool) -> Result<(String, String)> {
        let url = &spec.source.repo_url;
        if fetch {
            self.git.fetch(url)?;
        }
        let commit = self.git.resolve(url, &spec.source.target_revision)?;
        let key = RenderKey {
            repo_url: url.clone(),
            commit: commit.clone(),
            path: spec.source.path.clone(),
            recurse: spec.source.recurse,
        };
        if let Some(d) = self.renders.lock().get(&key) {
            return Ok((commit, d.clone()));
        }
        let bundle = render(&self.git, &key)?;
        if bundle.objects.is_empty() && !spec.sync_policy.allow_empty {
            return Err(Error::Render {
                path: key.path.clone(),
                revision: commit.chars().take(12).collect(),
                message:
                    "the path renders no objects; refusing to assign an empty bundle (set allowEmpty to permit it)"
                        .into(),
            });
        }
        self.store.put_bundle(&bundle.digest, &bundle.to_bytes())?;
        self.renders.lock().insert(key, bundle.digest.clone());
        Ok((commit, bundle.digest))
    }

    /// Refreshes every Application, fetching each repository once.
    pub async fn refresh_all(self: &Arc<Self>) {
        let apps: Vec<(String, String)> =
            self.state.read().apps.values().map(|a| (a.name.clone(), a.spec.source.repo_url.clone())).collect();
        let mut fetched: HashMap<String, Result<(), String>> = HashMap::new();
        for (name, url) in apps {
            if !fetched.contains_key(&url) {
                let git = self.git.clone();
                let u = url.clone();
                let r = tokio::task::spawn_blocking(move || git.fetch(&u))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(e) = &r {
                    warn!(repo = %redact_url(&url), error = %e, "fetch failed");
                }
                fetched.insert(url.clone(), r);
            }
            let _ = self.refresh_app(&name, false).await;
        }
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
    pub fn create_join_token(&self, cluster: &str, ttl: Duration) -> Result<(String, i64)> {
        if !bosun_core::app::is_dns_label(cluster) {
            return Err(Error::InvalidRequest(format!(
                "cluster name {cluster:?} must be a DNS label: lowercase letters, digits and '-'"
            )));
        }
        let token = new_token("bjt_");
        let expires_at = now() + ttl.as_secs() as i64;
        self.store.put(Kind::JoinToken, &hash_token(&token), &TokenRecord { cluster: cluster.into(), expires_at })?;
        let existing = self.state.read().clusters.get(cluster).cloned();
        if existing.is_none() {
            let rec = ClusterRecord { name: cluster.into(), ..Default::default() };
            self.store.put(Kind::Cluster, cluster, &rec)?;
            self.state.write().clusters.insert(cluster.into(), rec);
            self.reassign([cluster.to_string()])?;
        }
        info!(cluster, "join token created");
        Ok((token, expires_at))
    }

    /// Exchanges a join token and CSR for a client certificate.
    pub fn join(&self, token: &str, csr_pem: &str, agent_version: &str) -> Result<(String, String)> {
        let rec: TokenRecord = self.store.take(Kind::JoinToken, &hash_token(token))?.ok_or(Error::BadJoinToken)?;
        if rec.expires_at < now() {
            return Err(Error::BadJoinToken);
        }
        let mut cluster = self.state.read().clusters.get(&rec.cluster).cloned().ok_or(Error::BadJoinToken)?;
        let (cert, expires) = self.pki.sign_agent_csr(csr_pem, &rec.cluster, self.settings.cert_validity)?;
        cluster.joined = true;
        cluster.cert_expires = expires;
        cluster.agent_version = agent_version.into();
        self.store.put(Kind::Cluster, &cluster.name, &cluster)?;
        self.state.write().clusters.insert(cluster.name.clone(), cluster.clone());
        info!(cluster = %cluster.name, "agent joined");
        Ok((cluster.name, cert))
    }

    pub fn delete_cluster(&self, name: &str) -> Result<()> {
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

    /// A known, joined cluster (the check every agent RPC makes after mTLS).
    pub fn authorize_cluster(&self, name: &str) -> Result<()> {
        match self.state.read().clusters.get(name) {
            Some(c) if c.joined => Ok(()),
            _ => Err(Error::PermissionDenied(format!("cluster {name:?} is not registered (deleted or never joined)"))),
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
        Some((c.generation, assignments(&st, cluster)))
    }

    pub fn connected(&self, cluster: &str, up: bool, facts: Option<(BTreeMap<String, String>, String)>) {
        let mut st = self.state.write();
        let n = st.connections.entry(cluster.to_string()).or_insert(0);
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        let persist = if let Some(c) = st.clusters.get_mut(cluster) {
            c.last_seen = now();
            if let Some((facts, version)) = facts {
                c.facts = facts;
                c.agent_version = version;
            }
            Some(c.clone())
        } else {
            None
        };
        drop(st);
        if let Some(c) = persist
            && let Err(e) = self.store.put(Kind::Cluster, cluster, &c)
        {
            warn!(cluster, error = %e, "could not persist cluster facts");
        }
    }

    /// Records an agent's report for one of its own Applications.
    pub fn report(&self, cluster: &str, status: ClusterAppStatus) -> Result<()> {
        let assigned = {
            let st = self.state.read();
            st.apps.get(&status.app).is_some_and(|a| a.spec.destination.cluster == cluster)
        };
        if !assigned {
            warn!(cluster, app = %status.app, "ignoring status for an application not assigned to this cluster");
            return Ok(());
        }
        let status = ClusterAppStatus { cluster: cluster.into(), ..status };
        let (previous_sync, previous_request) = self
            .state
            .read()
            .statuses
            .get(&(status.app.clone(), cluster.to_string()))
            .map(|s| (s.synced_at, s.observed_sync_request))
            .unwrap_or((0, 0));
        if status.synced_at > previous_sync {
            self.record_sync(cluster, &status, previous_request)?;
        }
        self.store.put(Kind::Status, &status_key(&status.app, cluster), &status)?;
        let mut st = self.state.write();
        if let Some(c) = st.clusters.get_mut(cluster) {
            c.last_seen = now();
        }
        st.statuses.insert((status.app.clone(), cluster.into()), status);
        Ok(())
    }

    fn record_sync(&self, cluster: &str, status: &ClusterAppStatus, previous_request: u64) -> Result<()> {
        let mut entries: Vec<HistoryEntry> = self.store.get(Kind::History, &status.app)?.unwrap_or_default();
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
        let entry = self.history(name)?.into_iter().find(|e| e.id == id).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "application {name:?} has no history entry {id}; see `bosun app history {name}`"
            ))
        })?;
        if self.store.get_bundle(&entry.bundle_digest)?.is_none() {
            return Err(Error::InvalidRequest(format!("the bundle of history entry {id} is no longer stored")));
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
        self.reassign([rec.spec.destination.cluster.clone()])?;
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
        let assigned = assignments(&self.state.read(), cluster).iter().any(|a| a.bundle_digest == digest);
        if !assigned {
            return Err(Error::PermissionDenied(format!("bundle {digest} is not assigned to cluster {cluster:?}")));
        }
        self.store.get_bundle(digest)?.ok_or_else(|| Error::InvalidRequest(format!("bundle {digest} is not stored")))
    }

    /// Recomputes the assignments of `clusters`; bumps and announces the generation of
    /// each whose assignments changed.
    fn reassign(&self, clusters: impl IntoIterator<Item = String>) -> Result<()> {
        for name in clusters {
            let updated = {
                let st = self.state.read();
                let Some(c) = st.clusters.get(&name) else { continue };
                let digest =
                    hex::encode(Sha256::digest(serde_json::to_vec(&assignments(&st, &name)).unwrap_or_default()));
                if digest == c.assignment_digest {
                    continue;
                }
                ClusterRecord { generation: c.generation + 1, assignment_digest: digest, ..c.clone() }
            };
            self.store.put(Kind::Cluster, &name, &updated)?;
            let generation = updated.generation;
            self.state.write().clusters.insert(name.clone(), updated);
            if let Some(tx) = self.notify.lock().get(&name) {
                tx.send_replace(generation);
            }
        }
        Ok(())
    }
}

fn assignments(st: &State, cluster: &str) -> Vec<Assignment> {
    st.apps
        .values()
        .filter(|a| a.spec.destination.cluster == cluster && !a.status.bundle_digest.is_empty())
        .map(|a| match &a.rollback {
            // Rolled back: the old bundle, and no automated sync until someone asks for one.
            Some(r) => Assignment {
                app: a.name.clone(),
                bundle_digest: r.bundle_digest.clone(),
                revision: r.revision.clone(),
                namespace: a.spec.destination.namespace.clone(),
                sync_policy: SyncPolicy { automated: false, self_heal: false, ..a.spec.sync_policy },
                sync_request: a.sync_request,
                ignore_differences: a.spec.ignore_differences.clone(),
            },
            None => Assignment {
                app: a.name.clone(),
                bundle_digest: a.status.bundle_digest.clone(),
                revision: a.status.revision.clone(),
                namespace: a.spec.destination.namespace.clone(),
                sync_policy: a.spec.sync_policy,
                sync_request: a.sync_request,
                ignore_differences: a.spec.ignore_differences.clone(),
            },
        })
        .collect()
}

fn view(st: &State, rec: &AppRecord) -> AppView {
    let cluster = &rec.spec.destination.cluster;
    let connected = st.connections.get(cluster).copied().unwrap_or(0) > 0;
    let status = st.statuses.get(&(rec.name.clone(), cluster.clone())).cloned();
    let deployed = rec.rollback.as_ref().map(|r| r.bundle_digest.as_str()).unwrap_or(rec.status.bundle_digest.as_str());
    let (sync_status, health) = match &status {
        Some(s) if s.bundle_digest == deployed && !deployed.is_empty() => (s.sync_status, s.health),
        Some(s) => (SyncStatus::OutOfSync, s.health),
        None => (SyncStatus::Unknown, Health::Unknown),
    };
    let clusters = vec![(
        status.unwrap_or_else(|| ClusterAppStatus {
            app: rec.name.clone(),
            cluster: cluster.clone(),
            ..Default::default()
        }),
        connected,
    )];
    AppView { record: rec.clone(), clusters, sync_status, health }
}
