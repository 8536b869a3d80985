//! The control plane's model: Applications, clusters, assignments, status and history, over
//! the transactional store.
//!
//! Every replica keeps the model as a cache ([`cache::State`]) fed by the store's change feed.
//! A mutation is a store transaction whose preconditions (compare-and-set on the versions the
//! caller read) make concurrent writers retry instead of overwriting each other; the cache
//! changes only when the commit comes back on the feed, and the caller waits for that, so it
//! reads its own write. gRPC handlers are thin calls into this; the concerns live in:
//!
//! - [`credentials`]: admin credentials, authentication and roles; repository credentials;
//! - [`applications`]: create, update, delete, sync, views, app of apps;
//! - [`refresh`]: Git fetches, renders and their cache;
//! - [`clusters`]: join tokens, joining, certificates (PKI), labels, revocation;
//! - [`agents`]: what each cluster is assigned and the streams that announce it;
//! - [`status`]: agents' reports, batched into transactions, and status watchers;
//! - [`rollouts`] and [`history`]: progressive rollouts, completed syncs, rollback;
//! - [`singleton`]: the lease and the work one replica does for all (polling, rollouts,
//!   collection of unused bundles).

mod agents;
mod applications;
pub mod cache;
mod clusters;
mod credentials;
mod history;
pub mod records;
mod refresh;
mod rollouts;
mod singleton;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use bosun_core::Assignment;
use bosun_core::schedule;
use bosun_core::{Health, SyncStatus};
use bosun_store::{Backend, Revision, Store, StoreError, Txn};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{Credential, CredentialKind, Role};
use crate::error::{Error, Result};
use crate::git::GitCache;
use crate::pki::Pki;
use crate::secrets::SecretBox;
use cache::State;
pub use credentials::CredentialSecret;
pub use records::{
    AppRecord, AppSourceStatus, ClusterAppStatus, ClusterRecord, HistoryEntry, RepoRecord, ResourceState, TokenRecord,
};

pub fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Longest lifetime of an admin credential (token or certificate).
pub const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(3650 * 86400);
/// Longest lifetime of a join token.
pub const MAX_JOIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 86400);
/// Syncs kept per Application and cluster unless its `revisionHistoryLimit` says otherwise
/// (Argo CD's default).
pub const HISTORY_LIMIT: usize = 10;
/// A replica refreshes the presence of the agents it streams to this often…
const PRESENCE_EVERY: Duration = Duration::from_secs(15);
/// …and a presence older than this no longer counts as connected (its replica died).
pub const PRESENCE_STALE_SECS: i64 = 45;
/// Status reports an admin watcher may fall behind by before its stream is ended.
const STATUS_EVENT_BUFFER: usize = 16_384;
/// How long a writer waits for its commit to come back on the feed.
const FEED_WAIT: Duration = Duration::from_secs(15);
/// Compare-and-set attempts before a write gives up (each after the cache caught up and a
/// jittered pause).
const CAS_ATTEMPTS: usize = 64;

/// An Application with everything known about it, for the admin API.
#[derive(Debug, Clone)]
pub struct AppView {
    pub record: AppRecord,
    pub children: Vec<String>,
    pub rollout: String,
    /// Each targeted cluster's last report (or an empty one) and whether its agent is connected.
    pub clusters: Vec<(ClusterAppStatus, bool)>,
    /// Each cluster's sync status and health as judged against what it should run (a report
    /// about an older bundle is OutOfSync), in the order of `clusters`.
    pub verdicts: Vec<(SyncStatus, Health)>,
    pub sync_status: SyncStatus,
    pub health: Health,
}

/// A cluster with its connection state, for the admin API.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub record: ClusterRecord,
    pub connected: bool,
    pub last_seen: i64,
}

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
    /// How often unused bundles are collected (and the feed compacted).
    pub collect_interval: Duration,
    /// This replica's name in leases and presence records.
    pub replica: String,
    /// The first admin credential's token when none exists yet (several replicas share it
    /// from a Secret); `None`: a random one, returned by [`ControlPlane::start`].
    pub initial_admin_token: Option<crate::secrets::Secret>,
}

pub struct ControlPlane {
    store: Arc<Backend>,
    git: Arc<GitCache>,
    pub pki: Pki,
    pub metrics: crate::metrics::Metrics,
    secrets: SecretBox,
    settings: Settings,
    state: RwLock<State>,
    /// The revision the cache has applied (writers wait on it to read their own writes).
    applied: watch::Sender<Revision>,
    /// Whether the feed follower is keeping up (readiness).
    feed_error: Mutex<Option<String>>,
    agents: agents::Streams,
    renders: Mutex<refresh::RenderCache>,
    /// Bounds how many renders run at once (`--render-concurrency`).
    render_slots: tokio::sync::Semaphore,
    /// One refresh of an Application at a time on this replica (others are not held up).
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    reports: status::Queue,
    /// Every status report, as recorded by any replica, for admin watchers (`WatchStatus`).
    status_events: tokio::sync::broadcast::Sender<Arc<ClusterAppStatus>>,
    /// Wakes the singleton work (rollouts, templated renders) after changes it follows.
    singleton: singleton::Signals,
    /// Set when the process is stopping: open streams end so that the servers can drain.
    stopping: watch::Sender<bool>,
}

impl ControlPlane {
    /// Loads the model from the store and starts following its feed. Creates the first admin
    /// credential (a token named `admin`) on first start and returns the token then (it is
    /// stored only hashed).
    pub async fn start(
        store: Arc<Backend>,
        git: Arc<GitCache>,
        pki: Pki,
        secrets: SecretBox,
        settings: Settings,
    ) -> Result<(Arc<Self>, Option<String>)> {
        let render_slots = tokio::sync::Semaphore::new(settings.render_concurrency.max(1));
        let metrics = crate::metrics::Metrics::default();
        // The signing CA is fixed for the life of the process.
        metrics.ca_expiry.set(pki.ca_not_after);
        let cp = Arc::new(Self {
            store,
            git,
            pki,
            metrics,
            secrets,
            settings,
            state: RwLock::new(State::default()),
            applied: watch::channel(0).0,
            feed_error: Mutex::new(None),
            agents: Default::default(),
            renders: Mutex::new(Default::default()),
            render_slots,
            refreshing: Mutex::new(HashMap::new()),
            reports: Default::default(),
            status_events: tokio::sync::broadcast::channel(STATUS_EVENT_BUFFER).0,
            singleton: Default::default(),
            stopping: watch::channel(false).0,
        });
        cp.load().await?;
        tokio::spawn(cp.clone().follow());
        tokio::spawn(cp.clone().write_reports());
        let new_admin = cp.first_admin().await?;
        Ok((cp, new_admin))
    }

    /// Reads every cached prefix into a fresh cache (at start, and when the feed was
    /// compacted past this replica).
    async fn load(&self) -> Result<()> {
        let mut fresh = State::default();
        let mut from = Revision::MAX;
        for prefix in records::CACHED {
            if prefix == records::BUNDLES {
                fresh.load_bundles(self.store.keys(prefix).await?);
                continue;
            }
            let snap = self.store.list(prefix).await?;
            from = from.min(snap.revision);
            fresh.load(snap.records, snap.revision);
        }
        // Prefixes were read at (slightly) different revisions: replay the feed from the
        // oldest; what the cache already holds at a newer version is left alone.
        fresh.revision = from;
        loop {
            let page = self.store.changes(fresh.revision, 1024).await?;
            if page.is_empty() {
                break;
            }
            fresh.apply(&page);
        }
        let mut st = self.state.write();
        fresh.connections = std::mem::take(&mut st.connections);
        *st = fresh;
        self.applied.send_replace(st.revision);
        info!(
            revision = st.revision,
            applications = st.apps.len(),
            clusters = st.clusters.len(),
            store = self.store.name(),
            "model loaded"
        );
        Ok(())
    }

    /// Applies the feed to the cache as commits arrive, then tells whoever reacts.
    async fn follow(self: Arc<Self>) {
        loop {
            let after = self.state.read().revision;
            match self.store.changes(after, 256).await {
                Ok(page) if page.is_empty() => {
                    *self.feed_error.lock() = None;
                    tokio::select! {
                        _ = self.store.wait_after(after, Duration::from_secs(1)) => {}
                        _ = self.stopped() => return,
                    }
                }
                Ok(page) => {
                    *self.feed_error.lock() = None;
                    let touched = {
                        let mut st = self.state.write();
                        let touched = st.apply(&page);
                        for s in &touched.statuses {
                            // No receiver is fine: nobody is watching.
                            let _ = self.status_events.send(s.clone());
                        }
                        self.applied.send_replace(st.revision);
                        touched
                    };
                    if !touched.is_empty() {
                        self.react(&touched);
                    }
                }
                Err(StoreError::Compacted { .. }) => {
                    warn!("the store's feed was compacted past this replica; loading the model again");
                    if let Err(e) = self.load().await {
                        *self.feed_error.lock() = Some(e.to_string());
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    } else {
                        self.react(&cache::Touched { apps: true, credentials: true, ..Default::default() });
                    }
                }
                Err(e) => {
                    warn!(error = %e, "reading the store's feed failed; retrying in 1s");
                    *self.feed_error.lock() = Some(e.to_string());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// What follows a change, on every replica: agent streams learn their new assignments,
    /// streams of revoked clusters end, and singleton work wakes up.
    fn react(&self, touched: &cache::Touched) {
        self.announce(touched);
        self.singleton.changed(touched, &self.state.read());
    }

    async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Commits `txn` and waits until the cache holds it.
    async fn commit(&self, txn: Txn) -> std::result::Result<Revision, StoreError> {
        let revision = self.store.commit(txn).await?;
        self.caught_up(revision).await?;
        Ok(revision)
    }

    /// Waits until the cache has applied `revision`.
    async fn caught_up(&self, revision: Revision) -> std::result::Result<(), StoreError> {
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout(FEED_WAIT, rx.wait_for(|r| *r >= revision)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable(format!(
                "revision {revision} was committed but this replica's cache did not catch up within {}s; the store's feed is not being read",
                FEED_WAIT.as_secs()
            ))),
        }
    }

    /// Runs a read-modify-write: `build` reads the cache and returns the transaction (with its
    /// compare-and-set preconditions) and a result, or `None` when nothing is to be written.
    /// A conflict means someone else wrote first: wait for the cache to hold their write and
    /// build again.
    async fn transact<T>(&self, build: impl FnMut(&State) -> Result<(Option<Txn>, T)>) -> Result<T> {
        self.transact_or(build, |_| None).await
    }

    /// [`Self::transact`], where a conflict on some keys is final: `final_conflict(key)` says
    /// what to answer instead of building again (a record that is not cached, such as a
    /// single-use token someone else consumed).
    async fn transact_or<T>(
        &self,
        mut build: impl FnMut(&State) -> Result<(Option<Txn>, T)>,
        final_conflict: impl Fn(&str) -> Option<Error>,
    ) -> Result<T> {
        for attempt in 0..CAS_ATTEMPTS {
            let (txn, out) = build(&self.state.read())?;
            let Some(txn) = txn else { return Ok(out) };
            match self.commit(txn).await {
                Ok(_) => return Ok(out),
                Err(StoreError::Conflict { key, .. }) => {
                    if let Some(e) = final_conflict(&key) {
                        return Err(e);
                    }
                    let latest = self.store.revision().await?;
                    self.caught_up(latest).await?;
                    // Writers that keep colliding on one record spread out (full jitter,
                    // up to 128 ms), so that one of them gets through each round.
                    let ceiling = 1u64 << attempt.min(7);
                    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=ceiling))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!("gave up after {CAS_ATTEMPTS} conflicting writes; try again")))
    }

    async fn first_admin(&self) -> Result<Option<String>> {
        if !self.state.read().credentials.is_empty() {
            return Ok(None);
        }
        let given = self.settings.initial_admin_token.as_ref().map(|t| t.expose().to_string());
        let token = given.clone().unwrap_or_else(|| credentials::new_token("bat_"));
        let cred = Credential {
            name: "admin".into(),
            role: Role::Admin,
            kind: CredentialKind::Token,
            token_sha256: crate::auth::hash_token(&token),
            certificates: Vec::new(),
            created_at: now(),
            expires_at: 0,
        };
        let key = records::credential_key("admin");
        let txn = Txn::new().expect(&key, bosun_store::Expect::Absent).put(&key, records::encode(&cred));
        match self.commit(txn).await {
            // A given token is not handed out again (whoever gave it has it).
            Ok(_) => Ok(given.is_none().then_some(token)),
            // Another replica starting at the same time created it.
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A consistent backup (see [`crate::backup`]), serialised.
    pub async fn backup(&self, without_secrets: bool) -> Result<Vec<u8>> {
        let b = crate::backup::Backup::take(
            self.store.as_ref(),
            &self.settings.backup_sources,
            &self.settings.installation_id,
            without_secrets,
        )
        .await
        .map_err(|e| Error::Internal(format!("taking a backup: {e:#}")))?;
        serde_json::to_vec(&b).map_err(|e| Error::Internal(format!("encoding a backup: {e}")))
    }

    /// Whether the control plane can serve: the store answers and its feed is followed, the
    /// CA has not expired, and it is not stopping. The reason when it cannot.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        if *self.stopping.borrow() {
            return Err("shutting down".into());
        }
        self.store.revision().await.map_err(|e| format!("the store does not answer: {e}"))?;
        if let Some(e) = self.feed_error.lock().clone() {
            return Err(format!("the store's change feed cannot be read: {e}"));
        }
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

    /// The store revision this replica's cache has applied; changes with every commit that
    /// reaches it (live views follow this).
    pub fn changes(&self) -> watch::Receiver<Revision> {
        self.applied.subscribe()
    }

    /// The key that seals credentials and authenticates dashboard sessions (shared by
    /// every replica).
    pub fn secret_box(&self) -> &SecretBox {
        &self.secrets
    }

    /// Sets the gauges that describe the model, for a scrape.
    pub fn refresh_gauges(&self) {
        use crate::metrics::{AppInfo, AppState, ClusterLabel, ClusterState};
        let st = self.state.read();
        let m = &self.metrics;
        let now = now();
        m.applications.clear();
        for s in st.statuses.values() {
            m.applications
                .get_or_create(&AppState { sync: s.value.sync_status.to_string(), health: s.value.health.to_string() })
                .inc();
        }
        m.clusters.clear();
        m.cluster_connected.clear();
        for c in st.clusters.values() {
            let c = &c.value.record;
            let connected = st.connected(&c.name, now);
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
            let a = &a.value;
            let v = view(&st, &f, a);
            let d = &a.spec.destination;
            let info = AppInfo {
                name: a.name.clone(),
                repo: crate::git::redact_url(&a.spec.source.repo_url),
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
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e.to_string())
    }
}

/// A cluster's labels as selectors see them (see [`bosun_core::cluster::labels`]): admin
/// labels, agent facts under `fact.bosun.dev/`, and `bosun.dev/name` from its certificate.
pub fn cluster_labels(c: &ClusterRecord) -> BTreeMap<String, String> {
    bosun_core::cluster::labels(&c.name, &c.labels, &c.facts)
}

/// An Application as scheduling sees it.
fn scheduled(a: &AppRecord) -> schedule::Application<'_> {
    schedule::Application {
        name: &a.name,
        uid: &a.uid,
        spec: &a.spec,
        sync_request: a.sync_request,
        sync_prune: a.sync_prune,
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

/// The scheduling view of the whole cache (see [`bosun_core::schedule`]).
fn fleet(st: &State) -> schedule::Fleet<'_> {
    fleet_of(st, None)
}

/// The scheduling view for computing one cluster's assignments: only that cluster, unless a
/// rollout needs the others to order its steps. What a stream, a bundle request or a
/// report costs then grows with the Applications, not with the fleet.
fn fleet_for<'a>(st: &'a State, cluster: &str) -> schedule::Fleet<'a> {
    let rollouts = st.apps.values().any(|a| a.value.spec.rollout.is_some());
    fleet_of(st, (!rollouts).then_some(cluster))
}

fn fleet_of<'a>(st: &'a State, only: Option<&str>) -> schedule::Fleet<'a> {
    let now = now();
    let view = |c: &'a cache::Versioned<cache::ClusterEntry>| {
        let c = &c.value;
        let view = schedule::Cluster {
            name: &c.record.name,
            labels: &c.record.labels,
            selector_labels: std::borrow::Cow::Borrowed(&c.selector_labels),
            connected: st.connected(&c.record.name, now),
            last_seen: st.last_seen(&c.record.name),
        };
        (c.record.name.as_str(), view)
    };
    // One cluster is looked up, not found among all of them: a report costs the same
    // whatever the size of the fleet.
    let clusters = match only {
        Some(name) => st.clusters.get(name).map(view).into_iter().collect(),
        None => st.clusters.values().map(view).collect(),
    };
    let apps = st.apps.values().map(|a| (a.value.name.as_str(), scheduled(&a.value))).collect();
    let statuses = &st.statuses;
    schedule::Fleet {
        clusters,
        apps,
        reports: Box::new(move |app, cluster| {
            statuses.get(&(app.to_string(), cluster.to_string())).map(|s| schedule::Reported {
                bundle_digest: &s.value.bundle_digest,
                revision: &s.value.revision,
                sync: s.value.sync_status,
                health: s.value.health,
            })
        }),
    }
}

fn view(st: &State, f: &schedule::Fleet<'_>, rec: &AppRecord) -> AppView {
    let app = scheduled(rec);
    let now = now();
    let mut clusters = Vec::new();
    let mut verdicts = Vec::new();
    let (mut sync_status, mut health) = (SyncStatus::Synced, Health::Healthy);
    for (name, c) in &st.clusters {
        if !rec.spec.destination.targets(name, &c.value.selector_labels) {
            continue;
        }
        let connected = st.connected(name, now);
        let status = st.statuses.get(&(rec.name.clone(), name.clone())).map(|s| (*s.value).clone());
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
        verdicts.push((s, h));
    }
    if clusters.is_empty() {
        // A name of a cluster not registered yet, or a selector matching none.
        let cluster = rec.spec.destination.cluster.clone();
        if !cluster.is_empty() {
            clusters.push((ClusterAppStatus { app: rec.name.clone(), cluster, ..Default::default() }, false));
            verdicts.push((SyncStatus::Unknown, Health::Unknown));
        }
        (sync_status, health) = (SyncStatus::Unknown, Health::Unknown);
    }
    let children = st.apps.values().filter(|a| a.value.parent == rec.name).map(|a| a.value.name.clone()).collect();
    let rollout = rec
        .spec
        .rollout
        .as_ref()
        .map(|s| bosun_core::rollout::describe(s, &rec.rollout, clusters.len()))
        .unwrap_or_default();
    AppView { record: rec.clone(), children, rollout, clusters, verdicts, sync_status, health }
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
