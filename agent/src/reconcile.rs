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
use crate::state::{Applied, Assigned, DesiredState, StateDir};

/// State shared by the connection to the control plane and the reconcile loop.
pub struct Shared {
    pub dir: StateDir,
    pub state: parking_lot::Mutex<DesiredState>,
    pub wake: Notify,
    pub reports: watch::Sender<BTreeMap<String, pb::AppStatusReport>>,
}

fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Runs reconcile passes forever: on wake-ups (new assignments) and on a timer (faster while
/// something is progressing).
pub async fn run(shared: Arc<Shared>, cluster: Arc<ClusterApi>, resync: Duration) {
    let watches = crate::selfheal::Watches::new(cluster.client().clone());
    loop {
        let progressing = reconcile_all(&shared, &cluster).await;
        watches.ensure(&cluster.resources(), &shared);
        let wait = if progressing { Duration::from_millis(500).min(resync) } else { resync };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over every Application. Returns whether any is still progressing.
pub async fn reconcile_all(shared: &Shared, cluster: &ClusterApi) -> bool {
    let snapshot = shared.state.lock().clone();
    let mut reports = BTreeMap::new();
    let mut applied = snapshot.applied.clone();
    let mut progressing = false;
    for a in &snapshot.assignments {
        let span = info_span!("sync", app = %a.app, cluster = %snapshot.cluster, revision = %short(&a.revision));
        let prev = applied.get(&a.app).cloned().unwrap_or_default();
        let (next, report) = reconcile_app(shared, cluster, a, prev).instrument(span).await;
        progressing |=
            report.health == pb::HealthStatus::Progressing as i32 || report.health == pb::HealthStatus::Missing as i32;
        applied.insert(a.app.clone(), next);
        reports.insert(a.app.clone(), report);
    }
    // Applications no longer assigned: cascade-delete what we created when prune is on.
    let assigned: Vec<&str> = snapshot.assignments.iter().map(|a| a.app.as_str()).collect();
    for (app, was) in snapshot.applied.iter().filter(|(k, _)| !assigned.contains(&k.as_str())) {
        if was.last_policy.prune {
            let remaining = prune(cluster, app, &was.inventory).await;
            if !remaining.is_empty() {
                applied.insert(app.clone(), Applied { inventory: remaining, ..was.clone() });
                continue;
            }
            info!(app = %app, "application removed from this cluster; its objects were deleted");
        }
        applied.remove(app);
    }
    {
        let mut st = shared.state.lock();
        // Assignments may have changed meanwhile; keep only bookkeeping of current ones.
        st.applied = applied;
        if let Err(e) = shared.dir.save(&st) {
            warn!(error = %e, "could not persist agent state");
        }
    }
    shared.reports.send_if_modified(|current| {
        if *current == reports {
            false
        } else {
            *current = reports;
            true
        }
    });
    progressing
}

fn short(rev: &str) -> &str {
    &rev[..rev.len().min(12)]
}

/// Deletes tracked objects of `app` among `candidates`; returns those that could not be removed.
async fn prune(cluster: &ClusterApi, app: &str, candidates: &[bosun_core::ObjectRef]) -> Vec<bosun_core::ObjectRef> {
    let mut left = Vec::new();
    for r in plan::prune_candidates(candidates, &[]) {
        match cluster.get_ref(&r).await {
            Ok(Some(live))
                if tracking::is_tracked_by(&live, app) && options::options(&live).is_ok_and(|o| !o.prune) =>
            {
                info!(app, object = %r, "not pruning: the object says Prune=false");
            }
            Ok(Some(live)) if tracking::is_tracked_by(&live, app) => match cluster.delete(&r).await {
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
            report.sync_status = sync_to_pb(SyncStatus::Unknown);
            report.message = format!("bundle {} is not available yet: {e}", short(&a.bundle_digest));
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
    // Waves wait for the previous wave to be healthy; later waves are applied on a later pass.
    let mut blocked: Option<String> = None;
    let mut skipped = false;
    for step in &planned.steps {
        let mut step_healthy = true;
        for obj in &step.objects {
            let r = ObjectRef::of(obj).expect("bundle objects have identity");
            if step.hooks {
                resources.push((
                    r,
                    SyncStatus::Unknown,
                    Health::Unknown,
                    "hook not run: this agent does not run sync hooks yet".into(),
                ));
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
            let drift = live.as_ref().map(|l| diff::drifted_fields(obj, l));
            let out_of_sync = drift.as_ref().is_none_or(|d| !d.is_empty());
            let heal = policy.automated && policy.self_heal && out_of_sync;
            let mut live = live;
            if (wants_sync || heal) && blocked.is_none() {
                match cluster.apply(obj).await {
                    Ok(after) => {
                        if heal && !wants_sync {
                            info!(object = %r, drift = ?drift.unwrap_or_default(), "drift reverted");
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
                    }
                }
            } else if wants_sync {
                all_applied = false;
                skipped = true;
            }
            let (sync, health, message) = match &live {
                None => (SyncStatus::OutOfSync, Health::Missing, "not created yet".to_string()),
                Some(l) => {
                    let d = diff::drifted_fields(obj, l);
                    let sync = if d.is_empty() { SyncStatus::Synced } else { SyncStatus::OutOfSync };
                    let (h, m) =
                        health::assess(l).map(|x| (x.health, x.message)).unwrap_or((Health::Healthy, String::new()));
                    let msg = if d.is_empty() { m } else { format!("drifted: {}", d.join(", ")) };
                    (sync, h, msg)
                }
            };
            step_healthy &= health == Health::Healthy;
            resources.push((r, sync, health, message));
        }
        if !step_healthy && blocked.is_none() && !step.hooks {
            blocked = Some(format!("waiting for wave {} to become healthy", step.wave));
        }
    }
    if let (Some(b), true) = (&blocked, skipped) {
        errors.push(b.clone());
    }

    // Prune what left the bundle (inventory minus desired), only with prune on.
    let desired_refs: Vec<ObjectRef> = desired.iter().filter_map(ObjectRef::of).collect();
    let mut leftovers = plan::prune_candidates(&prev.inventory, &desired_refs);
    let empty_guard = desired_refs.is_empty() && !policy.allow_empty;
    let mut pruned = 0;
    if policy.prune && (wants_sync || policy.self_heal) && !empty_guard && !leftovers.is_empty() {
        let before = leftovers.len();
        leftovers = prune(cluster, &a.app, &leftovers).await;
        pruned = before - leftovers.len();
    }
    for r in &leftovers {
        resources.push((r.clone(), SyncStatus::OutOfSync, Health::Healthy, "requires pruning".into()));
    }

    let mut inventory = desired_refs;
    inventory.extend(leftovers.iter().cloned());
    let app_sync = if resources.iter().all(|(_, s, _, _)| *s == SyncStatus::Synced) && errors.is_empty() {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    };
    let app_health = Health::worst(resources.iter().map(|(_, _, h, _)| *h));
    let mut next = Applied { inventory, last_policy: policy, ..prev };
    if wants_sync && all_applied {
        next.synced_digest = a.bundle_digest.clone();
        next.observed_sync_request = a.sync_request;
        next.synced_at = now();
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
