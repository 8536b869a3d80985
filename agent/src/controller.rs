//! The agent's controller: a work queue of Applications, each reconciled by one worker at a
//! time and up to `--concurrency` side by side. A pass over one Application is
//! "observe (the cache), decide (core's [`sync::decide`]), persist, act, record", repeated
//! while there is something to do; then it reports, and waits to be woken: by a change in
//! the cache to one of its objects, by new assignments, by a timer it asked for (a retry, a
//! self-heal backoff), or by the periodic resync, which is only a safety net.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_core::sync::{self, Memory, Target};
use bosun_core::{ObjectRef, tracking};
use bosun_proto::convert::{health_to_pb, sync_to_pb};
use bosun_proto::v1 as pb;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cache::{Cache, Change, Gvk, Kind, Scope, View};
use crate::kube::{ClusterApi, KubeError};
use crate::queue::Queue;
use crate::state::{Assigned, DesiredState, StateDir};

/// Most decide–act rounds in one pass; an Application with more to do is queued again.
const MAX_ROUNDS: usize = 32;
/// How soon a pass that could not persist or read what it needs looks again.
const RETRY_SOON: Duration = Duration::from_secs(5);

/// Bundles from this many objects up are planned and compared off the async workers
/// ([`off_the_workers`]): a new 5,000-object bundle's first pass takes tens of milliseconds.
const LARGE_BUNDLE: usize = 1000;

/// Runs `work` (pure computation over a large bundle) so that it does not hold up the other
/// tasks of this worker thread: on a multi-threaded runtime its tasks move to another worker
/// meanwhile; on a current-thread runtime (tests) it simply runs.
fn off_the_workers<R>(objects: usize, work: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if objects >= LARGE_BUNDLE && multi { tokio::task::block_in_place(work) } else { work() }
}

/// How long changes of owned objects (ReplicaSets, Pods) gather before the pass that reports
/// them: the tree trails the cluster by at most this much, and a rollout costs a few passes.
const OWNED_SETTLE: Duration = Duration::from_secs(1);

/// State shared by the link to the control plane and the controller.
pub struct Shared {
    pub dir: Arc<StateDir>,
    pub state: Mutex<DesiredState>,
    /// Signalled when an assigned bundle is missing or damaged on disk: the link fetches it.
    pub need_bundles: Notify,
    /// The latest report of each assigned Application (the link streams changes).
    /// (Shared: the link clones the map on every change, and tells a new report from the one
    /// it sent by pointer.)
    pub reports: watch::Sender<BTreeMap<String, Arc<pb::AppStatusReport>>>,
    queue: Arc<Queue>,
    /// What the agent remembers of each Application (as persisted).
    memory: Mutex<BTreeMap<String, Memory>>,
    /// What of each Application's memory is durable on disk (see [`Shared::remember`]).
    on_disk: Mutex<HashMap<String, OnDisk>>,
    /// Tracking label value → Application, for the cache's wake-ups.
    labels: Mutex<HashMap<String, String>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub readiness: Arc<crate::metrics::Readiness>,
}

impl Shared {
    pub fn new(
        dir: Arc<StateDir>,
        desired: DesiredState,
        memory: BTreeMap<String, Memory>,
        metrics: Arc<crate::metrics::Metrics>,
        readiness: Arc<crate::metrics::Readiness>,
    ) -> Arc<Self> {
        // What was read at start is on disk (the state directory fsyncs what it loads).
        let on_disk = memory.iter().map(|(app, m)| (app.clone(), OnDisk::durable(m)));
        let on_disk = Mutex::new(on_disk.collect());
        let shared = Arc::new(Self {
            dir,
            state: Mutex::new(desired),
            need_bundles: Notify::new(),
            reports: watch::channel(BTreeMap::new()).0,
            queue: Arc::new(Queue::default()),
            memory: Mutex::new(memory),
            on_disk,
            labels: Default::default(),
            metrics,
            readiness,
        });
        shared.refresh_labels();
        shared
    }

    /// Every Application the agent deals with: assigned ones, and those it still remembers
    /// (their objects are being deleted).
    fn apps(&self) -> Vec<String> {
        let mut apps: HashSet<String> = self.state.lock().assignments.iter().map(|a| a.app.clone()).collect();
        apps.extend(self.memory.lock().keys().cloned());
        let mut v: Vec<String> = apps.into_iter().collect();
        v.sort();
        v
    }

    fn refresh_labels(&self) {
        let labels = self.apps().into_iter().map(|a| (tracking::label_value(&a), a)).collect();
        *self.labels.lock() = labels;
    }

    /// New assignments were received: the Applications whose desired state changed
    /// (`None`: every one) are looked at.
    pub fn assignments_changed(&self, changed: Option<&BTreeSet<String>>) {
        self.refresh_labels();
        let assigned: HashSet<String> = self.state.lock().assignments.iter().map(|a| a.app.clone()).collect();
        self.reports.send_if_modified(|r| {
            let before = r.len();
            r.retain(|app, _| assigned.contains(app));
            r.len() != before
        });
        match changed {
            Some(apps) => self.touch(apps.iter().cloned()),
            None => self.touch_all(),
        }
    }

    /// Asks for a pass over each of `apps`.
    pub fn touch(&self, apps: impl IntoIterator<Item = String>) {
        for app in apps {
            self.queue.push(&app);
        }
    }

    /// Asks for a pass over every Application.
    pub fn touch_all(&self) {
        self.touch(self.apps());
    }

    /// Writes the desired state to the state directory.
    pub async fn persist(&self) -> anyhow::Result<()> {
        self.dir.persist(&self.state).await
    }

    fn on_change(&self, change: Change) {
        match change {
            Change::Object { label } => {
                // Objects of Applications this agent does not know are not its business.
                let app = self.labels.lock().get(&label).cloned();
                if let Some(app) = app {
                    self.queue.push(&app);
                }
            }
            Change::Owned { label } => {
                // Display only (the owner's own status drives the sync): one pass for all the
                // changes of a rollout's Pods within [`OWNED_SETTLE`].
                let app = self.labels.lock().get(&label).cloned();
                if let Some(app) = app {
                    self.queue.push_after(&app, OWNED_SETTLE);
                }
            }
            Change::Listed { users } => {
                for app in users {
                    self.queue.push(&app);
                }
            }
            Change::Relisting { kind } => {
                self.metrics.watch_restarts.get_or_create(&crate::metrics::KindLabel { kind }).inc();
            }
        }
    }

    fn publish(&self, app: &str, report: pb::AppStatusReport) {
        self.reports.send_if_modified(|all| {
            if all.get(app).is_some_and(|r| **r == report) {
                false
            } else {
                all.insert(app.to_string(), Arc::new(report));
                true
            }
        });
    }

    /// Persists what the agent remembers of `app` when it changed: `durable` (fsynced) when
    /// actions are about to depend on it (see [`Shared::needs_durable`]); otherwise only
    /// written, which an agent killed during the write or a crashed machine may lose (the
    /// next pass then decides again from the durable copy, which no later write overwrites:
    /// applies are repeated, hooks found again by their labels).
    async fn remember(&self, app: &str, memory: &Memory, durable: bool) -> anyhow::Result<()> {
        let same = self.memory.lock().get(app) == Some(memory);
        let newer = self.on_disk.lock().get(app).is_some_and(|d| d.newer);
        if same && !(durable && newer) {
            return Ok(());
        }
        self.dir.persist_memory(app, memory, durable).await?;
        self.memory.lock().insert(app.to_string(), memory.clone());
        let mut on_disk = self.on_disk.lock();
        let d = on_disk.entry(app.to_string()).or_default();
        if durable {
            *d = OnDisk::durable(memory);
        } else {
            d.newer = true;
        }
        Ok(())
    }

    /// Whether `decision`'s memory must be fsynced before its actions run, given what is
    /// durable of `app`'s (see [`sync::Decision::needs_durable_memory`]).
    fn needs_durable(&self, app: &str, decision: &sync::Decision) -> bool {
        let on_disk = self.on_disk.lock();
        decision.needs_durable_memory(on_disk.get(app).map(|d| d.inventory.as_slice()).unwrap_or_default())
    }

    /// Forgets `app`'s memory (its file was removed).
    fn forget(&self, app: &str) {
        self.memory.lock().remove(app);
        self.on_disk.lock().remove(app);
    }
}

/// What is durable of an Application's memory.
#[derive(Default)]
struct OnDisk {
    /// The inventory of the last fsynced copy, sorted.
    inventory: Vec<ObjectRef>,
    /// A newer copy was written since, without fsync.
    newer: bool,
}

impl OnDisk {
    /// `memory` was just made durable.
    fn durable(memory: &Memory) -> Self {
        let mut inventory = memory.inventory.clone();
        inventory.sort_unstable();
        Self { inventory, newer: false }
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub field_manager: String,
    pub resync: Duration,
    /// Applications reconciled side by side.
    pub concurrency: usize,
    /// Writes in flight per Application (within one install rank).
    pub writes: usize,
    /// The whole cluster, or the namespaces the agent may manage.
    pub scope: Scope,
}

struct Controller {
    shared: Arc<Shared>,
    cluster: Arc<ClusterApi>,
    cache: Arc<Cache>,
    settings: Settings,
    /// Each Application's bundle as last prepared, kept while its assignment is the same and
    /// preparing it found nothing to retry: a pass then neither reads the bundle again nor
    /// compares objects whose live copy did not change.
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

/// What the health and metrics endpoints read from the running controller.
struct Observed {
    shared: Arc<Shared>,
    cache: Arc<Cache>,
}

impl crate::metrics::Observed for Observed {
    fn unsynced(&self) -> Vec<String> {
        self.cache.unsynced()
    }

    fn applications(&self) -> BTreeMap<(String, String), i64> {
        let mut out = BTreeMap::new();
        for r in self.shared.reports.borrow().values() {
            let sync = bosun_proto::convert::sync_from_pb(r.sync_status);
            let health = bosun_proto::convert::health_from_pb(r.health);
            *out.entry((sync.to_string(), health.to_string())).or_default() += 1;
        }
        out
    }

    fn bundles(&self) -> i64 {
        self.shared.dir.bundle_count() as i64
    }

    fn has_desired(&self) -> bool {
        let st = self.shared.state.lock();
        st.generation > 0 || !st.assignments.is_empty()
    }
}

/// Runs the controller forever.
pub async fn run(
    shared: Arc<Shared>,
    cluster: Arc<ClusterApi>,
    settings: Settings,
    observed: Arc<std::sync::OnceLock<Arc<dyn crate::metrics::Observed>>>,
) {
    let weak = Arc::downgrade(&shared);
    let cache = Arc::new(Cache::new(
        cluster.client().clone(),
        settings.scope.clone(),
        Arc::new(move |c| {
            if let Some(s) = weak.upgrade() {
                s.on_change(c);
            }
        }),
    ));
    let _ = observed.set(Arc::new(Observed { shared: shared.clone(), cache: cache.clone() }));
    let ctl = Arc::new(Controller {
        shared: shared.clone(),
        cluster,
        cache,
        settings: settings.clone(),
        prepared: Mutex::new(HashMap::new()),
    });
    let resync = {
        let shared = shared.clone();
        bosun_process::AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(settings.resync);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The first tick is at once: every Application is looked at on start.
                tick.tick().await;
                debug!("resync: every application queued");
                shared.touch_all();
            }
        }))
    };
    let queue = shared.queue.clone();
    queue
        .run(settings.concurrency, move |app| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&app).await }
        })
        .await;
    drop(resync);
}

/// Counts one write: its verb, why (`reason` for applies; deletes and creates say their own),
/// the kind and whether it worked.
fn count_action(metrics: &crate::metrics::Metrics, reason: &str, action: &sync::Action, outcome: &sync::Outcome) {
    let ok = !matches!(outcome, sync::Outcome::Failed { .. });
    let kind_of = |o: &Value| o["kind"].as_str().unwrap_or_default().to_string();
    let (verb, why, kind) = match action {
        sync::Action::Apply { object, replace, .. } => {
            (if *replace { "replace" } else { "apply" }, reason, kind_of(object))
        }
        sync::Action::Create { object, .. } => ("create", "hook", kind_of(object)),
        sync::Action::Delete { r, why, .. } => {
            let why = match why {
                sync::DeleteWhy::Prune => "prune",
                sync::DeleteWhy::Cascade => "cascade",
                sync::DeleteWhy::Hook => "hook",
            };
            ("delete", why, r.kind.clone())
        }
    };
    metrics.action(verb, why, &kind, ok);
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn short(rev: &str) -> &str {
    &rev[..rev.len().min(12)]
}

/// The bundle's objects made ready for the cluster: namespaces defaulted (and dropped for
/// cluster-scoped kinds), the tracking identity added; and the kinds they need.
struct Prepared {
    /// What it was prepared for: the bundle and the destination namespace.
    digest: String,
    namespace: String,
    bundle: sync::Bundle,
    kinds: Vec<Kind>,
    versions: HashMap<(String, String), String>,
    errors: Vec<String>,
}

impl Controller {
    async fn reconcile(&self, app: &str) {
        let (assigned, cluster) = {
            let st = self.shared.state.lock();
            (st.assignments.iter().find(|a| a.app == app).cloned(), st.cluster.clone())
        };
        match assigned {
            Some(a) => {
                let span = info_span!("sync", app = %a.app, cluster = %cluster, revision = %short(&a.revision));
                let started = std::time::Instant::now();
                let result = self.sync(&a).instrument(span).await;
                self.shared.metrics.pass(result, started.elapsed().as_secs_f64());
            }
            None => {
                let span = info_span!("remove", app = %app, cluster = %cluster);
                self.remove(app).instrument(span).await
            }
        }
    }

    fn memory(&self, app: &str) -> Memory {
        self.shared.memory.lock().get(app).cloned().unwrap_or_default()
    }

    fn report(&self, a: &Assigned, memory: &Memory) -> pb::AppStatusReport {
        pb::AppStatusReport {
            app: a.app.clone(),
            bundle_digest: a.bundle_digest.clone(),
            revision: a.revision.clone(),
            observed_sync_request: memory.observed_request,
            synced_at: memory.synced.as_ref().map(|s| s.at).unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Reports that the pass could not start, and looks again soon.
    fn cannot_start(&self, a: &Assigned, memory: &Memory, message: String, again: Option<Duration>) {
        let mut report = self.report(a, memory);
        report.sync_status = sync_to_pb(bosun_core::SyncStatus::Unknown);
        report.message = message;
        self.shared.publish(&a.app, report);
        if let Some(d) = again {
            self.shared.queue.push_after(&a.app, d);
        }
    }

    /// One pass over an Application; says how it went (`in_sync`, `acted`, `waiting`, `error`).
    async fn sync(&self, a: &Assigned) -> &'static str {
        let mut memory = self.memory(&a.app);
        let kept = self.prepared.lock().get(&a.app).cloned();
        let prepared = match kept.filter(|p| p.digest == a.bundle_digest && p.namespace == a.namespace) {
            Some(p) => p,
            None => {
                let bundle = match self.shared.dir.load_bundle(&a.bundle_digest).await {
                    Ok(b) => b,
                    Err(e) => {
                        self.shared.need_bundles.notify_one();
                        let message =
                            format!("bundle {} is not available yet ({e:#}); fetching it", short(&a.bundle_digest));
                        // Woken when the bundle is fetched.
                        self.cannot_start(a, &memory, message, None);
                        return "waiting";
                    }
                };
                let p = Arc::new(self.prepare(a, &bundle.objects).await);
                // Errors may clear (a kind served later): such a bundle is prepared again.
                if p.errors.is_empty() {
                    self.prepared.lock().insert(a.app.clone(), p.clone());
                } else {
                    self.prepared.lock().remove(&a.app);
                }
                p
            }
        };
        // Kinds of leftovers of earlier syncs, to be judged and pruned.
        let mut kinds = prepared.kinds.clone();
        let mut seen: HashSet<Gvk> = kinds.iter().map(Kind::gvk).collect();
        let leftovers =
            memory.inventory.iter().filter(|r| !kinds.iter().any(|k| k.ar.group == r.group && k.ar.kind == r.kind));
        let leftovers: Vec<&ObjectRef> = leftovers.collect();
        self.kinds_of(leftovers.into_iter(), &mut seen, &mut kinds).await;
        if let Err(waiting) = self.cache.use_kinds(&a.app, &kinds) {
            // Woken when the lists complete.
            self.cannot_start(a, &memory, waiting, Some(RETRY_SOON * 6));
            return "waiting";
        }
        let target = Target {
            app: &a.app,
            namespace: &a.namespace,
            uid: &a.app_uid,
            digest: &a.bundle_digest,
            request: a.sync_request,
            request_prune: a.sync_prune,
            policy: a.sync_policy,
            ignore: &a.ignore_differences,
        };
        let view = View { cache: &self.cache, versions: &prepared.versions };
        let manager = self.settings.field_manager.as_str();
        for round in 0..MAX_ROUNDS {
            let d = off_the_workers(prepared.bundle.objects().len(), || {
                prepared.bundle.decide(&target, &view, &memory, manager, now_ms())
            });
            log_transition(&memory, &d.memory, prepared.bundle.objects());
            // What the actions depend on is on disk before they run.
            let durable = self.shared.needs_durable(&a.app, &d);
            if let Err(e) = self.shared.remember(&a.app, &d.memory, durable).await {
                warn!(error = %format!("{e:#}"), "could not persist the application's state; not acting");
                self.cannot_start(a, &memory, format!("cannot write the agent's state: {e:#}"), Some(RETRY_SOON));
                return "error";
            }
            memory = d.memory;
            if d.actions.is_empty() {
                let mut tree = d.report;
                (tree.children, tree.children_left_out) = off_the_workers(tree.resources.len(), || {
                    bosun_core::tree::children(&tree.resources, &view, self.cache.as_ref())
                });
                let mut report = to_pb(a, &tree);
                if !prepared.errors.is_empty() {
                    report.sync_status = sync_to_pb(bosun_core::SyncStatus::OutOfSync);
                    let mut parts = prepared.errors.clone();
                    if !report.message.is_empty() {
                        parts.push(report.message);
                    }
                    report.message = parts.join("; ");
                }
                self.shared.publish(&a.app, report);
                if let Some(at) = d.wake_at_ms {
                    self.shared.queue.push_after(&a.app, Duration::from_millis((at - now_ms()).max(0) as u64));
                }
                debug!(rounds = round, "reconciled");
                return if round == 0 { "in_sync" } else { "acted" };
            }
            // An apply outside an operation is self-heal.
            let reason = if memory.operation.is_some() { "sync" } else { "heal" };
            let count = |action: &sync::Action, outcome: &sync::Outcome| {
                count_action(&self.shared.metrics, reason, action, outcome)
            };
            let outcomes = crate::act::run(&self.cluster, &view, d.actions, self.settings.writes, &count).await;
            // Not persisted here: the next round's decision, which starts from these outcomes,
            // is persisted before anything that depends on them runs. A crash in between
            // loses nothing: applies are repeated, and hooks created just now are found again
            // by their labels.
            sync::record(&mut memory, &outcomes);
        }
        // Still busy: the rest in a moment, letting other Applications have a worker.
        self.shared.queue.push_after(&a.app, Duration::from_millis(200));
        "acted"
    }

    async fn prepare(&self, a: &Assigned, objects: &[Value]) -> Prepared {
        let default_ns = if a.namespace.is_empty() { "default" } else { a.namespace.as_str() };
        let mut prepared = Vec::new();
        let mut out = Prepared {
            digest: a.bundle_digest.clone(),
            namespace: a.namespace.clone(),
            bundle: sync::Bundle::new(Vec::new()),
            kinds: Vec::new(),
            versions: HashMap::new(),
            errors: Vec::new(),
        };
        let mut seen: HashSet<Gvk> = HashSet::new();
        // Kinds defined by CRDs of this bundle: not served until the CRD is applied.
        let defined: HashSet<(String, String)> = objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .map(|o| {
                let spec = &o["spec"];
                (
                    spec["group"].as_str().unwrap_or_default().to_string(),
                    spec["names"]["kind"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        for (i, obj) in objects.iter().enumerate() {
            if let Err(why) = bosun_core::manifest::check_rendered(obj) {
                out.errors.push(format!("object {} of the bundle was skipped: {why}", i + 1));
                continue;
            }
            let mut o = obj.clone();
            let empty_ns = o["metadata"]["namespace"].as_str().is_none_or(str::is_empty);
            match self.cluster.resolve(&o).await {
                Ok((ar, namespaced)) => {
                    let namespace =
                        if empty_ns { default_ns } else { o["metadata"]["namespace"].as_str().unwrap_or_default() };
                    if let Some(why) = self.settings.scope.refuses(namespaced, namespace) {
                        let what =
                            ObjectRef::of(&o).map(|r| r.to_string()).unwrap_or_else(|| format!("object {}", i + 1));
                        out.errors.push(format!("{what} was skipped: {why}"));
                        continue;
                    }
                    if !namespaced {
                        if let Some(m) = o["metadata"].as_object_mut() {
                            m.remove("namespace");
                        }
                    } else if empty_ns {
                        o["metadata"]["namespace"] = json!(default_ns);
                    }
                    let kind = Kind { ar, namespaced };
                    if seen.insert(kind.gvk()) {
                        out.versions.insert((kind.ar.group.clone(), kind.ar.kind.clone()), kind.ar.version.clone());
                        out.kinds.push(kind);
                    }
                }
                Err(e) => {
                    // Most custom kinds are namespaced: defaulted until the kind is known.
                    if empty_ns {
                        o["metadata"]["namespace"] = json!(default_ns);
                    }
                    let coming = matches!(&e, KubeError::UnknownKind { .. }) && {
                        let r = ObjectRef::of(&o);
                        r.is_some_and(|r| defined.contains(&(r.group, r.kind)))
                    };
                    if !coming {
                        out.errors.push(e.to_string());
                    }
                }
            }
            tracking::mark(&mut o, &a.app);
            prepared.push(o);
        }
        out.bundle = off_the_workers(prepared.len(), || sync::Bundle::new(prepared));
        out
    }

    /// Adds the kinds of `refs` not `seen` yet (those discovery does not serve are left out).
    async fn kinds_of<'r>(
        &self,
        refs: impl Iterator<Item = &'r ObjectRef>,
        seen: &mut HashSet<Gvk>,
        kinds: &mut Vec<Kind>,
    ) {
        for r in refs {
            if let Ok((ar, namespaced)) = self.cluster.resolve_ref(r).await
                && self.settings.scope.refuses(namespaced, &r.namespace).is_none()
            {
                let kind = Kind { ar, namespaced };
                if seen.insert(kind.gvk()) {
                    kinds.push(kind);
                }
            }
        }
    }

    /// An Application that left this cluster: with prune on, what it created is deleted
    /// (then it is forgotten); with prune off, its objects stay.
    async fn remove(&self, app: &str) {
        self.prepared.lock().remove(app);
        let Some(memory) = self.shared.memory.lock().get(app).cloned() else {
            self.cache.release(app);
            return;
        };
        // How it was deleted, if the control plane said (kept with the desired state).
        let notice = self.shared.state.lock().removals.iter().find(|r| r.app == app).cloned();
        let cascades = sync::removal_cascades(&memory, notice.as_ref());
        let mut kinds = Vec::new();
        if cascades {
            self.kinds_of(memory.inventory.iter(), &mut HashSet::new(), &mut kinds).await;
        }
        if let Err(waiting) = self.cache.use_kinds(app, &kinds) {
            info!(reason = %waiting, "waiting to delete the objects of a removed application");
            return self.shared.queue.push_after(app, RETRY_SOON * 6);
        }
        let versions = HashMap::new();
        let view = View { cache: &self.cache, versions: &versions };
        let (actions, _) = sync::cascade(app, &memory, notice.as_ref(), &view);
        if !actions.is_empty() {
            let count = |action: &sync::Action, outcome: &sync::Outcome| {
                count_action(&self.shared.metrics, "cascade", action, outcome)
            };
            let outcomes = crate::act::run(&self.cluster, &view, actions, self.settings.writes, &count).await;
            if outcomes.iter().any(|o| matches!(o, sync::Outcome::Failed { .. })) {
                self.shared.queue.push_after(app, RETRY_SOON);
            }
        }
        if !sync::cascade(app, &memory, notice.as_ref(), &view).1.is_empty() {
            // Woken as the deletions complete.
            return;
        }
        if let Err(e) = self.shared.dir.remove_memory(app).await {
            warn!(error = %format!("{e:#}"), "could not forget a removed application");
            return self.shared.queue.push_after(app, RETRY_SOON);
        }
        self.shared.forget(app);
        self.shared.refresh_labels();
        self.shared.queue.cancel_timer(app);
        self.cache.release(app);
        match (cascades, sync::deciding_notice(&memory, notice.as_ref())) {
            (true, _) => info!("application removed from this cluster; its objects were deleted"),
            (false, Some(_)) => {
                info!(
                    objects = memory.inventory.len(),
                    "application deleted without cascade; its objects were left in place"
                )
            }
            (false, None) => {
                info!("application removed from this cluster; its objects were left in place (prune is off)")
            }
        }
    }
}

/// Logs what changed in an Application's memory: a sync starting, ending, failing.
fn log_transition(before: &Memory, after: &Memory, objects: &[Value]) {
    match (&before.operation, &after.operation) {
        (None, Some(op)) => {
            info!(digest = %short(&op.digest), request = op.request, attempt = op.attempt, "sync started")
        }
        (Some(a), Some(b)) if a.step != b.step => info!(step = b.step, "sync step done"),
        _ => {}
    }
    if after.synced != before.synced
        && let Some(s) = &after.synced
    {
        info!(digest = %short(&s.digest), objects = objects.len(), "synced");
    }
    if after.failed != before.failed
        && let Some(f) = &after.failed
    {
        match f.retry_at_ms {
            Some(at) => {
                warn!(attempts = f.attempts, retry_in_ms = at - now_ms(), error = %f.message, "sync failed; it will be retried")
            }
            None => warn!(attempts = f.attempts, error = %f.message, "sync failed"),
        }
    }
}

/// The report in its wire form.
fn to_pb(a: &Assigned, r: &sync::Report) -> pb::AppStatusReport {
    pb::AppStatusReport {
        app: a.app.clone(),
        bundle_digest: a.bundle_digest.clone(),
        revision: a.revision.clone(),
        sync_status: sync_to_pb(r.sync),
        health: health_to_pb(r.health),
        message: r.message.clone(),
        resources: r
            .resources
            .iter()
            .map(|x| pb::ResourceStatus {
                group: x.r.group.clone(),
                kind: x.r.kind.clone(),
                namespace: x.r.namespace.clone(),
                name: x.r.name.clone(),
                sync_status: sync_to_pb(x.sync),
                health: health_to_pb(x.health),
                message: x.message.clone(),
                diff: x.diff.clone(),
                hook: x.hook,
                ..Default::default()
            })
            .collect(),
        children: r
            .children
            .iter()
            .map(|c| pb::ResourceStatus {
                group: c.r.group.clone(),
                kind: c.r.kind.clone(),
                namespace: c.r.namespace.clone(),
                name: c.r.name.clone(),
                health: health_to_pb(c.health),
                message: c.message.clone(),
                parent_kind: c.parent_kind.clone(),
                parent_name: c.parent_name.clone(),
                ..Default::default()
            })
            .collect(),
        children_left_out: r.children_left_out as u32,
        observed_sync_request: r.observed_request,
        synced_at: r.synced_at,
        operation: r.operation.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_core::sync::Live;

    fn live_none() -> impl Live {
        struct Empty;
        impl Live for Empty {
            fn get(&self, _: &ObjectRef) -> Option<Arc<Value>> {
                None
            }
            fn labeled(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> Vec<Arc<Value>> {
                Vec::new()
            }
        }
        Empty
    }

    #[test]
    fn reports_carry_the_assignment_and_the_decision() {
        let a = Assigned {
            app: "web".into(),
            bundle_digest: "d".repeat(64),
            revision: "r".repeat(40),
            ..Default::default()
        };
        let t = Target {
            app: "web",
            namespace: "",
            uid: "u",
            digest: &a.bundle_digest,
            request: 0,
            request_prune: false,
            policy: Default::default(),
            ignore: &[],
        };
        let objects =
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})];
        let d = sync::decide(&t, &objects, &live_none(), &Memory::default(), "bosun-agent", 0);
        let pb = to_pb(&a, &d.report);
        assert_eq!(pb.app, "web");
        assert_eq!(pb.resources.len(), 1);
        assert_eq!(pb.sync_status, sync_to_pb(bosun_core::SyncStatus::OutOfSync));
    }
}
