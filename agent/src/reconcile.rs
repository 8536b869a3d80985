//! The reconcile loop: for every assigned Application, compare the bundle with the cluster,
//! apply what the sync policy allows (in install order), prune what left the bundle (only
//! objects carrying our tracking identity), assess health, and publish a status report.
//!
//! It runs from the desired state on disk, whether or not the control plane is reachable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_core::{Health, ObjectRef, SyncStatus, diff, health, options, plan, tracking};
use bosun_proto::convert::{health_to_pb, sync_to_pb};
use bosun_proto::v1 as pb;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, info, info_span, warn};

use crate::kube::ClusterApi;
use crate::state::{Applied, Assigned, DesiredState, FailedSync, Operation, StateDir};

/// State shared by the connection to the control plane and the reconcile loop.
pub struct Shared {
    pub dir: Arc<StateDir>,
    pub state: parking_lot::Mutex<DesiredState>,
    pub wake: Notify,
    /// Signalled when an assigned bundle is missing or damaged on disk: the link fetches it.
    pub need_bundles: Notify,
    pub reports: watch::Sender<BTreeMap<String, pb::AppStatusReport>>,
    /// Set while some Application is progressing: then a status change of a managed object
    /// (a Deployment becoming available) wakes the loop too, not only a spec change.
    pub progressing: std::sync::atomic::AtomicBool,
    /// The Applications the next pass must look at.
    pub dirty: parking_lot::Mutex<Dirty>,
}

impl Shared {
    /// Asks for a pass over every Application (new assignments, a resync).
    pub fn touch_all(&self) {
        self.dirty.lock().all = true;
        self.wake.notify_one();
    }

    /// Asks for a pass over the Application whose objects carry this `bosun.dev/app` label
    /// value (the name, or its shortened form for long names).
    pub fn touch_label(&self, label: &str) {
        let app = self
            .state
            .lock()
            .assignments
            .iter()
            .find(|a| a.app == label || tracking::label_value(&a.app) == label)
            .map(|a| a.app.clone());
        match app {
            Some(app) => self.touch(&app),
            // An Application no longer assigned (its objects are being pruned): look at all.
            None => self.touch_all(),
        }
    }

    /// Asks for a pass over one Application (one of its objects changed).
    pub fn touch(&self, app: &str) {
        self.dirty.lock().apps.insert(app.to_string());
        self.wake.notify_one();
    }

    /// Writes the desired state to the state directory.
    pub async fn persist(&self) -> anyhow::Result<()> {
        self.dir.persist(&self.state).await
    }
}

/// Which Applications a pass looks at: like a controller's work queue, an object change
/// costs a pass over its own Application, not over every Application of the cluster.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub all: bool,
    pub apps: std::collections::BTreeSet<String>,
}

impl Dirty {
    pub fn all() -> Self {
        Self { all: true, apps: Default::default() }
    }

    pub fn includes(&self, app: &str) -> bool {
        self.all || self.apps.contains(app)
    }
}

/// What a pass leaves to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Some Application is Progressing or Missing: look again when its objects change.
    pub progressing: bool,
    /// Some sync failed and waits for its retry time.
    pub retry_pending: bool,
}

impl Pass {
    /// Counts in one Application's report and bookkeeping.
    fn note(&mut self, report: &pb::AppStatusReport, applied: &Applied) {
        self.progressing |=
            report.health == pb::HealthStatus::Progressing as i32 || report.health == pb::HealthStatus::Missing as i32;
        self.retry_pending |= applied.failed.as_ref().is_some_and(|f| f.retry_at.is_some());
    }
}

/// First wait after a pass that left something progressing; it doubles up to
/// [`PROGRESS_POLL_MAX`]. Status changes of managed objects wake the loop before that, so
/// these polls are only a safety net and do not load the API server.
const PROGRESS_POLL_MIN: Duration = Duration::from_millis(500);
const PROGRESS_POLL_MAX: Duration = Duration::from_secs(8);
/// How often a pending retry's time is checked.
const RETRY_POLL: Duration = Duration::from_millis(500);

/// How long to wait after a pass (`poll` is the progress backoff, advanced here).
pub fn next_wait(pass: Pass, poll: &mut Duration, resync: Duration) -> Duration {
    let wait = if pass.progressing {
        let w = *poll;
        *poll = (*poll * 2).min(PROGRESS_POLL_MAX);
        w
    } else {
        *poll = PROGRESS_POLL_MIN;
        resync
    };
    let wait = if pass.retry_pending { wait.min(RETRY_POLL) } else { wait };
    wait.min(resync)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Runs reconcile passes forever: on wake-ups (new assignments) and on a timer (faster while
/// something is progressing).
pub async fn run(shared: Arc<Shared>, cluster: Arc<ClusterApi>, resync: Duration) {
    let watches = crate::selfheal::Watches::new(cluster.client().clone());
    let mut poll = PROGRESS_POLL_MIN;
    loop {
        let dirty = std::mem::take(&mut *shared.dirty.lock());
        let pass = reconcile_all(&shared, &cluster, &dirty).await;
        shared.progressing.store(pass.progressing, std::sync::atomic::Ordering::Relaxed);
        watches.ensure(&cluster.resources(), &shared);
        let wait = next_wait(pass, &mut poll, resync);
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => shared.dirty.lock().all = true,
        }
    }
}

/// One pass over the `dirty` Applications (the others keep their last report). Returns
/// what is left to look at soon.
pub async fn reconcile_all(shared: &Shared, cluster: &ClusterApi, dirty: &Dirty) -> Pass {
    let snapshot = shared.state.lock().clone();
    let mut reports = BTreeMap::new();
    let mut applied = snapshot.applied.clone();
    let mut pass = Pass::default();
    for a in &snapshot.assignments {
        // Not dirty: its last report stands.
        if !dirty.includes(&a.app)
            && let Some(was) = applied.get(&a.app)
            && let Some(report) = shared.reports.borrow().get(&a.app).cloned()
        {
            pass.note(&report, was);
            reports.insert(a.app.clone(), report);
            continue;
        }
        let span = info_span!("sync", app = %a.app, cluster = %snapshot.cluster, revision = %short(&a.revision));
        let prev = for_uid(applied.get(&a.app).cloned().unwrap_or_default(), &a.app_uid);
        let (next, report) = reconcile_app(shared, cluster, a, prev).instrument(span).await;
        // Progressing objects and pending retries are looked at again soon.
        pass.note(&report, &next);
        applied.insert(a.app.clone(), next);
        reports.insert(a.app.clone(), report);
    }
    // Applications no longer assigned: cascade-delete what we created when prune is on.
    let assigned: Vec<&str> = snapshot.assignments.iter().map(|a| a.app.as_str()).collect();
    for (app, was) in snapshot.applied.iter().filter(|(k, _)| !assigned.contains(&k.as_str())) {
        if was.last_policy.prune {
            let remaining =
                prune(cluster, app, &was.inventory, Removal::Cascade, was.last_policy.prune_propagation).await;
            if !remaining.is_empty() {
                applied.insert(app.clone(), Applied { inventory: remaining, ..was.clone() });
                continue;
            }
            info!(app = %app, "application removed from this cluster; its objects were deleted");
        }
        applied.remove(app);
    }
    // Persist (write + fsync) only when the bookkeeping changed, not on every pass.
    let changed = {
        let mut st = shared.state.lock();
        let changed = st.applied != applied;
        st.applied = applied;
        changed
    };
    if changed && let Err(e) = shared.persist().await {
        warn!(error = %format!("{e:#}"), "could not persist agent state");
    }
    shared.reports.send_if_modified(|current| {
        if *current == reports {
            false
        } else {
            *current = reports;
            true
        }
    });
    pass
}

/// The bookkeeping of an Application for `uid`: an Application deleted and created again
/// under the same name is a new one, whose sync requests count from zero (its objects, and so
/// the inventory, are the same name's and stay).
fn for_uid(prev: Applied, uid: &str) -> Applied {
    if prev.app_uid == uid {
        return prev;
    }
    if prev.app_uid.is_empty() {
        // Recorded before uids: adopt it.
        return Applied { app_uid: uid.to_string(), ..prev };
    }
    info!(uid, previous = %prev.app_uid, "the application was re-created; its operations start over");
    Applied { app_uid: uid.to_string(), inventory: prev.inventory, last_policy: prev.last_policy, ..Default::default() }
}

fn short(rev: &str) -> &str {
    &rev[..rev.len().min(12)]
}

/// Why objects are being deleted: pruning (Prune=false protects) or the Application going
/// away (Delete=false protects).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Prune,
    Cascade,
}

/// Whether a tracked object may go: prune honours `Prune=false`, cascade honours `Delete=false`.
fn removable(live: &Value, app: &str, why: Removal) -> bool {
    match why {
        Removal::Prune => tracking::prunable(live, app),
        Removal::Cascade => tracking::is_tracked_by(live, app) && options::options(live).is_ok_and(|o| o.delete),
    }
}

/// Deletes tracked objects of `app` among `candidates`; returns those that could not be removed.
async fn prune(
    cluster: &ClusterApi,
    app: &str,
    candidates: &[bosun_core::ObjectRef],
    why: Removal,
    propagation: bosun_core::app::Propagation,
) -> Vec<bosun_core::ObjectRef> {
    let mut left = Vec::new();
    for r in plan::prune_candidates(candidates, &[]) {
        match cluster.get_ref(&r).await {
            Ok(Some(live)) if tracking::is_tracked_by(&live, app) && !removable(&live, app, why) => {
                info!(app, object = %r, "not deleting: the object says Prune=false or Delete=false");
            }
            Ok(Some(live)) if tracking::is_tracked_by(&live, app) => match cluster.delete_with(&r, propagation).await {
                Ok(()) => info!(app, object = %r, "pruned"),
                Err(e) => {
                    warn!(app, object = %r, error = %e, "prune failed");
                    left.push(r);
                }
            },
            Ok(Some(_)) => warn!(app, object = %r, "not pruning an object without our tracking identity"),
            Ok(None) => {}
            Err(e) => {
                warn!(app, object = %r, error = %e, "could not read object to prune");
                left.push(r);
            }
        }
    }
    left
}

async fn reconcile_app(
    shared: &Shared,
    cluster: &ClusterApi,
    a: &Assigned,
    prev: Applied,
) -> (Applied, pb::AppStatusReport) {
    let mut report = pb::AppStatusReport {
        app: a.app.clone(),
        bundle_digest: a.bundle_digest.clone(),
        revision: a.revision.clone(),
        observed_sync_request: prev.observed_sync_request,
        synced_at: prev.synced_at,
        ..Default::default()
    };
    let bundle = match shared.dir.load_bundle(&a.bundle_digest) {
        Ok(b) => b,
        Err(e) => {
            shared.need_bundles.notify_one();
            report.sync_status = sync_to_pb(SyncStatus::Unknown);
            report.message = format!("bundle {} is not available yet ({e}); fetching it", short(&a.bundle_digest));
            return (Applied { last_policy: a.sync_policy, ..prev }, report);
        }
    };
    let policy = a.sync_policy;
    let new_request = a.sync_request > prev.observed_sync_request;
    let new_bundle = prev.synced_digest != a.bundle_digest;
    let wants_sync = new_request || (policy.automated && new_bundle);
    let default_ns = if a.namespace.is_empty() { "default" } else { a.namespace.as_str() };

    // Desired objects: namespace defaulted, tracking identity added.
    let mut desired: Vec<Value> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for obj in &bundle.objects {
        let mut o = obj.clone();
        match cluster.is_namespaced(&o).await {
            Ok(true) if o["metadata"]["namespace"].as_str().is_none_or(str::is_empty) => {
                o["metadata"]["namespace"] = json!(default_ns)
            }
            Ok(false) => {
                if let Some(m) = o["metadata"].as_object_mut() {
                    m.remove("namespace");
                }
            }
            Ok(true) => {}
            Err(e) => {
                // A CRD applied earlier in this pass may serve the kind; look again next time.
                cluster.forget_kinds();
                if !wants_sync {
                    errors.push(e.to_string());
                }
            }
        }
        tracking::mark(&mut o, &a.app);
        desired.push(o);
    }

    if (wants_sync || policy.self_heal) && policy.create_namespace && !a.namespace.is_empty() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": a.namespace}});
        if let Err(e) = cluster.apply(&ns).await {
            errors.push(e.to_string());
        }
    }

    let mut resources = Vec::new();
    let mut diffs: std::collections::HashMap<ObjectRef, String> = std::collections::HashMap::new();
    let mut all_applied = true;
    let planned = match plan::plan(&desired) {
        Ok(p) => p,
        Err(e) => {
            // A malformed sync annotation stops this Application only, before anything is applied.
            report.sync_status = sync_to_pb(SyncStatus::OutOfSync);
            report.message = e.to_string();
            return (Applied { last_policy: a.sync_policy, ..prev }, report);
        }
    };
    // The sync operation: hooks run once per (bundle, request); a failed one is not retried.
    let this_op = (a.bundle_digest.clone(), a.sync_request);
    let failed_before = prev.failed.clone().filter(|f| f.digest == this_op.0 && f.request == this_op.1);
    let failed_before = failed_before.as_ref();
    let retry_due = failed_before.is_some_and(|f| f.retry_at.is_some_and(|at| now_ms() >= at));
    if let Some(f) = failed_before.filter(|_| !retry_due) {
        match f.retry_at {
            Some(at) => errors.push(format!(
                "sync attempt {} failed ({}); retrying in {}s",
                f.attempts,
                f.message,
                ((at - now_ms()).max(0) + 999) / 1000
            )),
            None => errors.push(format!(
                "sync failed after {} attempt(s) ({}); commit a fix or run `bosun app sync`",
                f.attempts, f.message
            )),
        }
    }
    let wants_sync = wants_sync && (failed_before.is_none() || retry_due);
    // A retry starts the operation afresh (hooks run again) and carries the attempt count.
    let mut op = match prev.operation.clone().filter(|o| o.digest == this_op.0 && o.request == this_op.1 && !retry_due)
    {
        Some(op) => op,
        None => Operation {
            digest: this_op.0.clone(),
            request: this_op.1,
            prior_attempts: failed_before.map(|f| f.attempts).unwrap_or(0),
            ..Default::default()
        },
    };
    // Steps run in order; a step that is not healthy (or a failed hook) closes the gate for the
    // steps after it until a later pass.
    let mut gate_open = wants_sync;
    let mut blocked: Option<String> = None;
    let mut skipped = false;
    for step in &planned.steps {
        let mut step_healthy = true;
        for obj in &step.objects {
            let r = ObjectRef::of(obj).expect("bundle objects have identity");
            if step.hooks {
                let (health, message) = run_hook(cluster, obj, &r, wants_sync && gate_open, &mut op).await;
                if health == Health::Degraded && op.failure.is_none() && wants_sync {
                    op.failure = Some(format!("{:?} hook {r} failed: {message}", step.phase));
                }
                step_healthy &= health == Health::Healthy;
                // The sync is complete only once every hook of it has finished.
                if wants_sync && health != Health::Healthy {
                    all_applied = false;
                    skipped |= !gate_open;
                }
                if wants_sync {
                    // Hooks belong to a sync; outside one they are not part of the Application's state.
                    resources.push((r, SyncStatus::Synced, health, message));
                }
                continue;
            }
            let live = match cluster.get(obj).await {
                Ok(l) => l,
                Err(e) => {
                    errors.push(e.to_string());
                    all_applied = false;
                    step_healthy = false;
                    resources.push((r, SyncStatus::Unknown, Health::Unknown, e.to_string()));
                    continue;
                }
            };
            let opts = diff::Options { ignore: &a.ignore_differences, manager: Some(cluster.field_manager()) };
            let drift = live.as_ref().map(|l| diff::drift(obj, l, opts));
            // Missing, or drifted beyond ignored fields (what `diff::needs_apply` decides).
            let out_of_sync = drift.as_ref().is_none_or(|d| !d.is_empty());
            let heal = policy.automated && policy.self_heal && out_of_sync && op.failure.is_none();
            let mut live = live;
            let object_options = options::options(obj).unwrap_or_default();
            let only_out_of_sync = policy.apply_out_of_sync_only || object_options.apply_out_of_sync_only;
            let skip_in_sync = wants_sync && only_out_of_sync && !out_of_sync;
            if ((gate_open && op.failure.is_none()) || (heal && !wants_sync)) && !skip_in_sync {
                // Ignored differences stay with whoever owns them (an autoscaler, a webhook).
                let payload = match &live {
                    Some(l) if !a.ignore_differences.is_empty() => diff::strip_ignored(obj, l, &a.ignore_differences),
                    _ => (*obj).clone(),
                };
                let mut result = if object_options.replace {
                    cluster.replace(&payload, live.as_ref()).await
                } else {
                    cluster.apply(&payload).await
                };
                // Force=true: an update the server refuses (an immutable field) becomes delete + create.
                if object_options.force
                    && live.is_some()
                    && matches!(&result, Err(crate::kube::KubeError::Api { source: ::kube::Error::Api(s), .. }) if s.code == 422 || s.code == 409)
                {
                    info!(object = %r, "force: deleting and recreating");
                    result = match cluster.delete_with(&r, bosun_core::app::Propagation::Foreground).await {
                        Ok(()) => cluster.apply(&payload).await,
                        Err(e) => Err(e),
                    };
                }
                match result {
                    Ok(after) => {
                        if heal && !wants_sync {
                            let fields: Vec<String> = drift.unwrap_or_default().into_iter().map(|d| d.path).collect();
                            info!(object = %r, drift = ?fields, "drift reverted");
                        }
                        if r.kind == "CustomResourceDefinition" {
                            cluster.forget_kinds();
                        }
                        live = Some(after);
                    }
                    Err(e) => {
                        warn!(object = %r, error = %e, "apply failed");
                        errors.push(e.to_string());
                        all_applied = false;
                        if wants_sync && op.failure.is_none() {
                            op.failure = Some(e.to_string());
                        }
                    }
                }
            } else if wants_sync {
                all_applied = false;
                skipped = true;
            }
            let (sync, health, message) = match &live {
                None => (SyncStatus::OutOfSync, Health::Missing, "not created yet".to_string()),
                Some(l) => {
                    let d = diff::drift(obj, l, opts);
                    let sync = if d.is_empty() { SyncStatus::Synced } else { SyncStatus::OutOfSync };
                    let (h, m) =
                        health::assess(l).map(|x| (x.health, x.message)).unwrap_or((Health::Healthy, String::new()));
                    let msg = if d.is_empty() {
                        m
                    } else {
                        let paths: Vec<String> = d
                            .iter()
                            .map(
                                |x| if x.removed() { format!("{} (removed from Git)", x.path) } else { x.path.clone() },
                            )
                            .collect();
                        format!("drifted: {}", paths.join(", "))
                    };
                    if !d.is_empty() {
                        diffs.insert(r.clone(), diff::describe_drift(obj, l, &d));
                    }
                    (sync, h, msg)
                }
            };
            step_healthy &= health == Health::Healthy;
            resources.push((r, sync, health, message));
        }
        if step.hooks && step_healthy && gate_open {
            cleanup_hooks(cluster, &step.objects, &mut op, options::HookDeletePolicy::HookSucceeded).await;
        }
        if !step_healthy && gate_open {
            gate_open = false;
            blocked = Some(format!("waiting for wave {} of {:?} to become healthy", step.wave, step.phase));
        }
    }
    if let (Some(b), true) = (&blocked, skipped)
        && op.failure.is_none()
    {
        errors.push(b.clone());
    }
    if let Some(f) = op.failure.clone() {
        // A failed sync runs the SyncFail hooks, cleans up failed hooks, and is not retried.
        for obj in &planned.sync_fail {
            let r = ObjectRef::of(obj).expect("bundle objects have identity");
            let (health, message) = run_hook(cluster, obj, &r, true, &mut op).await;
            resources.push((r, SyncStatus::Synced, health, message));
        }
        let hooks: Vec<&Value> =
            planned.steps.iter().filter(|s| s.hooks).flat_map(|s| s.objects.iter().copied()).collect();
        cleanup_hooks(cluster, &hooks, &mut op, options::HookDeletePolicy::HookFailed).await;
        warn!(failure = %f, "sync failed");
        errors.push(format!("sync failed: {f}"));
        all_applied = false;
    }

    // Prune what left the bundle (inventory minus desired), only with prune on.
    // Hooks are not tracked for prune; they live and die with their sync.
    let desired_refs: Vec<ObjectRef> =
        desired.iter().filter(|o| options::hooks(o).is_ok_and(|h| h.is_empty())).filter_map(ObjectRef::of).collect();
    let mut leftovers = plan::prune_candidates(&prev.inventory, &desired_refs);
    let empty_guard = desired_refs.is_empty() && !policy.allow_empty;
    let mut pruned = 0;
    if policy.prune && (wants_sync || policy.self_heal) && !empty_guard && !leftovers.is_empty() {
        // PruneLast: those wait until everything else is applied and healthy.
        let everything_healthy = blocked.is_none() && op.failure.is_none();
        let mut now_: Vec<ObjectRef> = Vec::new();
        let mut later: Vec<ObjectRef> = Vec::new();
        for r in leftovers {
            let last = policy.prune_last
                || cluster
                    .get_ref(&r)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|l| options::options(&l).is_ok_and(|o| o.prune_last));
            if last && !everything_healthy { later.push(r) } else { now_.push(r) }
        }
        let before = now_.len();
        let mut remaining = prune(cluster, &a.app, &now_, Removal::Prune, policy.prune_propagation).await;
        pruned = before - remaining.len();
        if !later.is_empty() && wants_sync {
            all_applied = false;
        }
        remaining.extend(later);
        leftovers = remaining;
    }
    for r in &leftovers {
        // compare-options IgnoreExtraneous: a leftover that does not make the Application OutOfSync.
        let extraneous_ok = match cluster.get_ref(r).await {
            Ok(Some(l)) => options::options(&l).is_ok_and(|o| o.ignore_extraneous),
            _ => false,
        };
        if extraneous_ok {
            resources.push((r.clone(), SyncStatus::Synced, Health::Healthy, "extraneous (IgnoreExtraneous)".into()));
        } else {
            resources.push((r.clone(), SyncStatus::OutOfSync, Health::Healthy, "requires pruning".into()));
        }
    }

    let mut inventory = desired_refs;
    inventory.extend(leftovers.iter().cloned());
    let app_sync = if resources.iter().all(|(_, s, _, _)| *s == SyncStatus::Synced) && errors.is_empty() {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    };
    let app_health = Health::worst(resources.iter().map(|(_, _, h, _)| *h));
    let failed = op.failure.is_some();
    let mut next = Applied { inventory, last_policy: policy, operation: wants_sync.then_some(op), ..prev };
    if retry_due && wants_sync {
        // The retry has started; its operation carries the attempt count from here.
        next.failed = None;
    }
    if wants_sync && failed {
        let message = next.operation.as_ref().and_then(|o| o.failure.clone()).unwrap_or_default();
        let attempts = next.operation.as_ref().map(|o| o.prior_attempts).unwrap_or(0) + 1;
        let retry_at = policy.retry.delay(attempts).map(|d| now_ms() + d.as_millis() as i64);
        next.failed = Some(FailedSync { digest: this_op.0.clone(), request: this_op.1, message, attempts, retry_at });
        next.observed_sync_request = a.sync_request;
        next.operation = None;
    } else if wants_sync && all_applied {
        next.synced_digest = a.bundle_digest.clone();
        next.observed_sync_request = a.sync_request;
        next.synced_at = now();
        next.operation = None;
        next.failed = None;
        info!(objects = desired.len(), pruned, "synced");
    }
    report.sync_status = sync_to_pb(app_sync);
    report.health = health_to_pb(app_health);
    report.message = errors.join("; ");
    report.observed_sync_request = next.observed_sync_request;
    report.synced_at = next.synced_at;
    report.resources = resources
        .into_iter()
        .map(|(r, s, h, m)| pb::ResourceStatus {
            diff: diffs.remove(&r).unwrap_or_default(),
            group: r.group,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            sync_status: sync_to_pb(s),
            health: health_to_pb(h),
            message: m,
        })
        .collect();
    (next, report)
}

/// Runs (or follows) one hook of the current sync: deletes a previous instance first
/// (BeforeHookCreation), creates it once per sync, and returns its health.
async fn run_hook(
    cluster: &ClusterApi,
    obj: &Value,
    r: &ObjectRef,
    may_start: bool,
    op: &mut Operation,
) -> (Health, String) {
    let live = cluster.get(obj).await.ok().flatten();
    let started = op.started_hooks.contains(r);
    if !started {
        if !may_start {
            return (Health::Unknown, "hook: runs during a sync".into());
        }
        let policies = options::hook_delete_policies(obj).unwrap_or_default();
        if live.is_some() && policies.contains(&options::HookDeletePolicy::BeforeHookCreation) {
            if !op.recreating.contains(r) {
                if let Err(e) = cluster.delete(r).await {
                    return (Health::Degraded, format!("deleting the previous hook: {e}"));
                }
                op.recreating.push(r.clone());
            }
            return (Health::Progressing, "hook: waiting for the previous run to be deleted".into());
        }
        if let Err(e) = cluster.apply(obj).await {
            return (Health::Degraded, e.to_string());
        }
        info!(hook = %r, "hook created");
        op.recreating.retain(|x| x != r);
        op.started_hooks.push(r.clone());
        return (Health::Progressing, "hook: started".into());
    }
    if op.finished_hooks.contains(r) {
        return (Health::Healthy, "hook: finished".into());
    }
    match live {
        None => (Health::Missing, "hook: created but not found".into()),
        Some(l) => {
            health::assess(&l).map(|a| (a.health, a.message)).unwrap_or((Health::Healthy, "hook: applied".into()))
        }
    }
}

/// Deletes finished hooks whose delete policy is `policy`.
async fn cleanup_hooks(cluster: &ClusterApi, hooks: &[&Value], op: &mut Operation, policy: options::HookDeletePolicy) {
    for obj in hooks {
        let r = ObjectRef::of(obj).expect("bundle objects have identity");
        if !op.started_hooks.contains(&r) || op.finished_hooks.contains(&r) {
            continue;
        }
        if options::hook_delete_policies(obj).unwrap_or_default().contains(&policy) {
            match cluster.delete(&r).await {
                Ok(()) => info!(hook = %r, ?policy, "hook deleted"),
                Err(e) => warn!(hook = %r, error = %e, "could not delete hook"),
            }
        }
        op.finished_hooks.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_after_a_pass() {
        let resync = Duration::from_secs(30);
        let ms = Duration::from_millis;
        let idle = Pass::default();
        let progressing = Pass { progressing: true, retry_pending: false };
        let retry = Pass { progressing: false, retry_pending: true };
        // Progressing: 0.5 s, then doubling up to 8 s; settling resets the backoff.
        let mut poll = PROGRESS_POLL_MIN;
        let waits: Vec<Duration> = (0..6).map(|_| next_wait(progressing, &mut poll, resync)).collect();
        assert_eq!(waits, [ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000)]);
        assert_eq!(next_wait(idle, &mut poll, resync), resync);
        assert_eq!(next_wait(progressing, &mut poll, resync), ms(500));
        // A pending retry is checked every half second; nothing waits beyond the resync.
        assert_eq!(next_wait(retry, &mut poll, resync), ms(500));
        let mut poll = PROGRESS_POLL_MAX;
        assert_eq!(next_wait(progressing, &mut poll, Duration::from_secs(2)), Duration::from_secs(2));
    }
}
