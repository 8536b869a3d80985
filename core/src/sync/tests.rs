//! The sync state machine, transition by transition: a fake cluster answers the actions the
//! way a real one does (applies, creates with generated names, deletes), and each step checks
//! what `decide` asks for next.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::app::Retry;

/// A cluster as the cache shows it.
#[derive(Default, Clone)]
struct Cluster {
    objects: BTreeMap<ObjectRef, Value>,
    next_uid: u64,
    /// How a resource looks once applied: health-relevant status by kind.
    progressing: bool,
    created: Vec<String>,
}

impl Live for Cluster {
    fn get(&self, r: &ObjectRef) -> Option<Arc<Value>> {
        self.objects.get(r).cloned().map(Arc::new)
    }
    fn labeled(&self, group: &str, kind: &str, namespace: &str, label: &str, value: &str) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|(r, o)| {
                r.group == group
                    && r.kind == kind
                    && r.namespace == namespace
                    && o["metadata"]["labels"][label] == value
            })
            .map(|(_, o)| Arc::new(o.clone()))
            .collect()
    }
}

impl Cluster {
    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    /// Runs actions as a server would; returns their outcomes.
    fn act(&mut self, actions: &[Action]) -> Vec<Outcome> {
        actions
            .iter()
            .map(|a| match a {
                Action::Apply { object, .. } => {
                    let r = ObjectRef::of(object).unwrap();
                    let mut o = object.clone();
                    let uid = self.objects.get(&r).map(|l| l["metadata"]["uid"].clone()).unwrap_or_else(|| json!(self.uid()));
                    o["metadata"]["uid"] = uid;
                    // An apply leaves the status to its controller.
                    if let Some(status) = self.objects.get(&r).map(|l| l["status"].clone()).filter(|s| !s.is_null()) {
                        o["status"] = status;
                    }
                    if o["kind"] == "Deployment" {
                        o["metadata"]["generation"] = json!(1);
                        let n = o["spec"]["replicas"].as_i64().unwrap_or(1);
                        o["status"] = if self.progressing {
                            json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n, "availableReplicas": 0})
                        } else {
                            json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n, "availableReplicas": n})
                        };
                    }
                    self.objects.insert(r, o);
                    Outcome::Done
                }
                Action::Create { key, object } => {
                    let mut o = object.clone();
                    if o["metadata"]["name"].as_str().is_none_or(str::is_empty) {
                        let prefix = o["metadata"]["generateName"].as_str().unwrap().to_string();
                        o["metadata"]["name"] = json!(format!("{prefix}{}", self.next_uid + 100));
                    }
                    let uid = self.uid();
                    o["metadata"]["uid"] = json!(uid);
                    if o["kind"] == "Job" {
                        o["status"] = json!({"active": 1});
                    }
                    let r = ObjectRef::of(&o).unwrap();
                    if self.objects.contains_key(&r) {
                        return Outcome::Failed { message: format!("{r} already exists") };
                    }
                    self.created.push(r.name.clone());
                    let name = r.name.clone();
                    self.objects.insert(r, o);
                    Outcome::Created { key: key.clone(), name, uid }
                }
                Action::Delete { r, uid, .. } => {
                    if self.objects.get(r).is_some_and(|l| l["metadata"]["uid"] == uid.as_str()) {
                        self.objects.remove(r);
                    }
                    Outcome::Done
                }
            })
            .collect()
    }

    fn finish_jobs(&mut self, ok: bool) {
        for o in self.objects.values_mut() {
            if o["kind"] == "Job" && o["status"]["active"] == 1 {
                o["status"] = if ok {
                    json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                } else {
                    json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]})
                };
            }
        }
    }

    fn make_healthy(&mut self) {
        for o in self.objects.values_mut() {
            if o["kind"] == "Deployment" {
                let n = o["spec"]["replicas"].as_i64().unwrap_or(1);
                o["status"]["availableReplicas"] = json!(n);
            }
        }
    }
}

fn cm(name: &str, wave: i64) -> Value {
    let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns",
        "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}}, "data": {"v": "1"}});
    tracking::mark(&mut o, "web");
    o
}

fn deploy(name: &str, wave: i64) -> Value {
    let mut o = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ns",
        "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
    tracking::mark(&mut o, "web");
    o
}

fn job_hook(name: &str, phase: &str, policy: &str, generated: bool) -> Value {
    let mut meta = json!({"namespace": "ns", "annotations": {"argocd.argoproj.io/hook": phase}});
    if !policy.is_empty() {
        meta["annotations"]["argocd.argoproj.io/hook-delete-policy"] = json!(policy);
    }
    if generated {
        meta["generateName"] = json!(format!("{name}-"));
    } else {
        meta["name"] = json!(name);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}})
}

fn target(policy: SyncPolicy, digest: &'static str, request: u64) -> Target<'static> {
    Target { app: "web", namespace: "ns", uid: "u1", digest, request, request_prune: false, policy, ignore: &[] }
}

fn auto() -> SyncPolicy {
    SyncPolicy { automated: true, ..Default::default() }
}

/// Decides, persists, acts, records — once — as the agent does; returns the decision.
fn pass(t: &Target<'_>, objects: &[Value], cluster: &mut Cluster, mem: &mut Memory, now: i64) -> Decision {
    let d = decide(t, objects, cluster, mem, "bosun-agent", now);
    *mem = d.memory.clone();
    let outcomes = cluster.act(&d.actions);
    record(mem, &outcomes);
    d
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Apply { object, .. } => format!("apply {}", object["metadata"]["name"].as_str().unwrap()),
            Action::Create { key, .. } => format!("create {}", key.rsplit('/').next().unwrap()),
            Action::Delete { r, why, .. } => format!("delete {} ({why:?})", r.name),
        })
        .collect()
}

#[test]
fn a_plain_bundle_is_applied_then_synced() {
    let objects = vec![cm("a", 0), deploy("d", 0)];
    let t = target(auto(), "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let d = pass(&t, &objects, &mut c, &mut m, 1000);
    assert_eq!(kinds(&d.actions), ["apply a", "apply d"]);
    assert_eq!(d.report.sync, SyncStatus::OutOfSync);
    assert!(d.memory.operation.is_some(), "the operation is persisted before acting");
    let d = pass(&t, &objects, &mut c, &mut m, 2000);
    assert!(d.actions.is_empty());
    assert!(m.operation.is_none() && m.synced.as_ref().is_some_and(|s| s.digest == "d1"));
    assert_eq!((d.report.sync, d.report.health), (SyncStatus::Synced, Health::Healthy));
    // A resync with nothing changed decides nothing.
    let again = pass(&t, &objects, &mut c, &mut m, 3000);
    assert!(again.actions.is_empty() && again.memory == m);
}

#[test]
fn waves_wait_for_health_in_order() {
    let objects = vec![cm("first", -1), deploy("app", 0), cm("last", 1)];
    let t = target(auto(), "d1", 0);
    let mut c = Cluster { progressing: true, ..Default::default() };
    let mut m = Memory::default();
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 1).actions), ["apply first"]);
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 2).actions), ["apply app"]);
    let waiting = pass(&t, &objects, &mut c, &mut m, 3);
    assert!(waiting.actions.is_empty(), "wave 0 is progressing: wave 1 waits");
    assert!(
        waiting.report.operation.contains("waiting for Deployment.apps/ns/app to be healthy"),
        "{}",
        waiting.report.operation
    );
    c.make_healthy();
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 4).actions), ["apply last"]);
    let done = pass(&t, &objects, &mut c, &mut m, 5);
    assert!(done.actions.is_empty() && m.synced.is_some(), "{:?}", done.report);
}

#[test]
fn a_degraded_resource_fails_a_multi_step_sync_and_retries_by_policy() {
    let objects = vec![deploy("app", 0), cm("after", 1)];
    let policy = SyncPolicy { retry: Retry { limit: 1, duration_secs: 5, factor: 2, max_duration_secs: 60 }, ..auto() };
    let t = target(policy, "d1", 0);
    let mut c = Cluster { progressing: true, ..Default::default() };
    let mut m = Memory::default();
    pass(&t, &objects, &mut c, &mut m, 0);
    let r = ObjectRef::of(&objects[0]).unwrap();
    c.objects.get_mut(&r).unwrap()["status"]["conditions"] =
        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
    let d = pass(&t, &objects, &mut c, &mut m, 1000);
    assert!(m.operation.is_none());
    let f = m.failed.clone().unwrap();
    assert_eq!((f.attempts, f.retry_at_ms), (1, Some(6000)));
    assert_eq!(d.wake_at_ms, Some(6000));
    assert!(d.report.message.contains("Degraded"), "{}", d.report.message);
    // Before the retry time: nothing; at it: a new attempt with a new id.
    assert!(pass(&t, &objects, &mut c, &mut m, 3000).actions.is_empty());
    assert!(m.operation.is_none());
    // At it: attempt 2, which fails at once (the Deployment is still Degraded) and spends the
    // retries: the failure is final until a new bundle or a sync request.
    let d = pass(&t, &objects, &mut c, &mut m, 6000);
    let f = m.failed.clone().unwrap();
    assert_eq!((f.attempts, f.retry_at_ms), (2, None), "{:?}", d.report);
    assert!(
        d.report.message.contains("commit a fix") || d.report.message.contains("sync failed"),
        "{}",
        d.report.message
    );
    assert!(pass(&t, &objects, &mut c, &mut m, 99_000).actions.is_empty());
    let requested = target(policy, "d1", 1);
    // A sync request starts afresh (attempt 1 of the new request); with the Deployment
    // recovered it succeeds.
    c.objects.get_mut(&r).unwrap()["status"]["conditions"] = json!([]);
    c.make_healthy();
    pass(&requested, &objects, &mut c, &mut m, 100_000);
    assert_eq!(m.operation.as_ref().map(|o| (o.request, o.attempt)), Some((1, 1)), "a sync request starts afresh");
    pass(&requested, &objects, &mut c, &mut m, 100_001);
    assert!(m.failed.is_none() && m.synced.as_ref().is_some_and(|s| s.request == 1), "{m:?}");
}

#[test]
fn hooks_run_once_per_attempt_in_phase_order() {
    let objects = vec![
        job_hook("migrate", "PreSync", "HookSucceeded", true),
        deploy("app", 0),
        job_hook("smoke", "PostSync", "", false),
    ];
    let t = target(auto(), "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let d = pass(&t, &objects, &mut c, &mut m, 0);
    assert_eq!(kinds(&d.actions), ["create migrate-"]);
    assert_eq!(
        d.memory.operation.as_ref().unwrap().hooks[0].state,
        HookState::Creating,
        "recorded before it is created"
    );
    let hooks = &m.operation.as_ref().unwrap().hooks;
    assert_eq!(hooks[0].state, HookState::Running);
    assert!(hooks[0].name.starts_with("migrate-") && hooks[0].name.len() > "migrate-".len());
    // The job runs: nothing else happens; it completes: the Sync phase applies.
    assert!(pass(&t, &objects, &mut c, &mut m, 1).actions.is_empty());
    c.finish_jobs(true);
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 2).actions), ["apply app"]);
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 3).actions), ["create smoke"]);
    assert!(pass(&t, &objects, &mut c, &mut m, 4).actions.is_empty());
    c.finish_jobs(true);
    let d = pass(&t, &objects, &mut c, &mut m, 5);
    // Success: only the hook whose policy says HookSucceeded is deleted.
    assert_eq!(kinds(&d.actions).len(), 1);
    assert!(kinds(&d.actions)[0].starts_with("delete migrate-"), "{:?}", kinds(&d.actions));
    assert!(m.synced.is_some() && m.operation.is_none());
    assert_eq!(c.created.len(), 2, "each hook ran once: {:?}", c.created);
    // A resync runs nothing again.
    assert!(pass(&t, &objects, &mut c, &mut m, 6).actions.is_empty());
}

#[test]
fn a_restart_adopts_a_hook_created_before_it_and_creates_one_that_was_not() {
    let objects = vec![job_hook("migrate", "PreSync", "", true), cm("a", 0)];
    let t = target(auto(), "d1", 0);
    let mut c = Cluster::default();
    let m0 = Memory::default();
    // The decision is persisted, then the agent dies before creating the hook.
    let d = decide(&t, &objects, &c, &m0, "bosun-agent", 0);
    let persisted = d.memory.clone();
    let again = decide(&t, &objects, &c, &persisted, "bosun-agent", 1);
    assert_eq!(kinds(&again.actions), ["create migrate-"], "not created: create it");
    // This time it is created, and the agent dies before recording the outcome.
    let outcomes = c.act(&again.actions);
    assert!(matches!(outcomes[0], Outcome::Created { .. }));
    let after = decide(&t, &objects, &c, &again.memory, "bosun-agent", 2);
    assert!(after.actions.is_empty(), "found by its operation id: adopted, not created again");
    assert_eq!(after.memory.operation.as_ref().unwrap().hooks[0].state, HookState::Running);
    assert_eq!(c.created.len(), 1);
}

#[test]
fn before_hook_creation_deletes_the_previous_run_first() {
    let objects = vec![job_hook("migrate", "PreSync", "BeforeHookCreation", false), cm("a", 0)];
    let mut c = Cluster::default();
    let mut m = Memory::default();
    let t1 = target(auto(), "d1", 0);
    pass(&t1, &objects, &mut c, &mut m, 0);
    c.finish_jobs(true);
    while m.operation.is_some() {
        pass(&t1, &objects, &mut c, &mut m, 1);
    }
    // A new bundle: the old run (same name) is deleted before the new one is created.
    let t2 = target(auto(), "d2", 0);
    let d = pass(&t2, &objects, &mut c, &mut m, 10);
    assert_eq!(kinds(&d.actions), ["delete migrate (Hook)"]);
    assert_eq!(m.operation.as_ref().unwrap().hooks[0].state, HookState::Replacing);
    assert_eq!(kinds(&pass(&t2, &objects, &mut c, &mut m, 11).actions), ["create migrate"]);
}

#[test]
fn a_named_hook_without_before_hook_creation_is_applied_over_its_previous_run() {
    // As Argo CD does: the previous (finished) run is applied over and counts as this run.
    let objects = vec![job_hook("smoke", "PostSync", "HookFailed", false), cm("a", 0)];
    let mut c = Cluster::default();
    let mut m = Memory::default();
    let t1 = target(auto(), "d1", 0);
    pass(&t1, &objects, &mut c, &mut m, 0);
    pass(&t1, &objects, &mut c, &mut m, 1);
    c.finish_jobs(true);
    pass(&t1, &objects, &mut c, &mut m, 2);
    assert!(m.synced.is_some() && m.operation.is_none(), "{m:?}");
    let t2 = target(auto(), "d2", 0);
    let d = pass(&t2, &objects, &mut c, &mut m, 10);
    assert_eq!(kinds(&d.actions), ["apply smoke"]);
    let d = pass(&t2, &objects, &mut c, &mut m, 11);
    assert!(d.actions.is_empty(), "{:?}", kinds(&d.actions));
    assert!(m.synced.as_ref().is_some_and(|s| s.digest == "d2"), "{m:?}");
    assert_eq!(c.created, ["smoke"], "created once, by the first sync");
}

#[test]
fn a_manual_sync_is_retried_by_its_policy() {
    let objects = vec![job_hook("migrate", "PreSync", "", true), cm("a", 0)];
    let policy = SyncPolicy {
        retry: Retry { limit: 2, duration_secs: 1, factor: 2, max_duration_secs: 60 },
        ..Default::default()
    };
    let t = target(policy, "d1", 1);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    pass(&t, &objects, &mut c, &mut m, 0);
    c.finish_jobs(false);
    let d = pass(&t, &objects, &mut c, &mut m, 100);
    assert!(
        d.report.message.contains("attempt 1 failed") && d.report.message.contains("retrying in 1s"),
        "{}",
        d.report.message
    );
    assert_eq!(d.wake_at_ms, Some(1100));
    let d = pass(&t, &objects, &mut c, &mut m, 1100);
    assert_eq!(m.operation.as_ref().map(|o| o.attempt), Some(2), "{:?}", d.report);
    assert_eq!(kinds(&d.actions), ["create migrate-"], "a new attempt runs its hooks anew");
}

#[test]
fn a_failed_hook_runs_sync_fail_hooks_and_deletes_hook_failed_ones() {
    let objects =
        vec![job_hook("migrate", "PreSync", "HookFailed", false), job_hook("notify", "SyncFail", "", true), cm("a", 0)];
    let t = target(auto(), "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    pass(&t, &objects, &mut c, &mut m, 0);
    c.finish_jobs(false);
    let d = pass(&t, &objects, &mut c, &mut m, 1);
    assert_eq!(kinds(&d.actions), ["create notify-"], "the resources are never applied");
    c.finish_jobs(true);
    let d = pass(&t, &objects, &mut c, &mut m, 2);
    assert_eq!(kinds(&d.actions), ["delete migrate (Hook)"]);
    assert!(m.failed.as_ref().is_some_and(|f| f.message.contains("migrate")), "{:?}", m.failed);
    assert_eq!(d.report.sync, SyncStatus::OutOfSync);
}

#[test]
fn only_tracked_leftovers_are_pruned() {
    let t = target(SyncPolicy { prune: true, ..auto() }, "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let first = vec![cm("keep", 0), cm("old", 0), cm("protected", 0)];
    pass(&t, &first, &mut c, &mut m, 0);
    pass(&t, &first, &mut c, &mut m, 1);
    // Someone strips the tracking annotation of one; another says Prune=false.
    let stolen = ObjectRef::of(&cm("protected", 0)).unwrap();
    c.objects.get_mut(&stolen).unwrap()["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] =
        json!("Prune=false");
    let mut foreign = cm("foreign", 0);
    foreign["metadata"]["annotations"] = json!({});
    c.objects.insert(ObjectRef::of(&foreign).unwrap(), foreign);
    m.inventory.push(ObjectRef::of(&cm("foreign", 0)).unwrap());
    let t2 = target(SyncPolicy { prune: true, ..auto() }, "d2", 0);
    let d = pass(&t2, &[cm("keep", 0)], &mut c, &mut m, 2);
    assert_eq!(kinds(&d.actions), ["delete old (Prune)"]);
    let d = pass(&t2, &[cm("keep", 0)], &mut c, &mut m, 3);
    let leftovers: Vec<&str> =
        d.report.resources.iter().filter(|r| r.message == "requires pruning").map(|r| r.r.name.as_str()).collect();
    assert_eq!(leftovers, ["protected", "foreign"]);
    // An empty render never wipes the cluster without allowEmpty.
    let t3 = target(SyncPolicy { prune: true, ..auto() }, "d3", 0);
    assert!(!pass(&t3, &[], &mut c, &mut m, 4).actions.iter().any(|a| matches!(a, Action::Delete { .. })));
}

#[test]
fn a_sync_request_with_prune_prunes_that_sync_only() {
    // Automated without prune: a leftover only "requires pruning".
    let policy = auto();
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let both = vec![cm("keep", 0), cm("old", 0), cm("older", 0)];
    pass(&target(policy, "d1", 0), &both, &mut c, &mut m, 0);
    pass(&target(policy, "d1", 0), &both, &mut c, &mut m, 1);
    let d = pass(&target(policy, "d2", 0), &[cm("keep", 0), cm("older", 0)], &mut c, &mut m, 2);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::Delete { .. })), "the policy does not prune");
    pass(&target(policy, "d2", 0), &[cm("keep", 0), cm("older", 0)], &mut c, &mut m, 3);
    // Sync with Prune (Argo CD's dialog): that operation deletes the leftover.
    let with_prune = Target { request_prune: true, ..target(policy, "d2", 1) };
    let d = pass(&with_prune, &[cm("keep", 0), cm("older", 0)], &mut c, &mut m, 4);
    let d =
        if d.actions.is_empty() { pass(&with_prune, &[cm("keep", 0), cm("older", 0)], &mut c, &mut m, 5) } else { d };
    assert_eq!(kinds(&d.actions), ["delete old (Prune)"]);
    pass(&with_prune, &[cm("keep", 0), cm("older", 0)], &mut c, &mut m, 6);
    assert!(m.operation.is_none() && m.synced.as_ref().is_some_and(|s| s.request == 1));
    // The next automated sync (a new commit, the same request) does not prune.
    let later = Target { request_prune: true, ..target(policy, "d3", 1) };
    for now in 7..10 {
        let d = pass(&later, &[cm("keep", 0)], &mut c, &mut m, now);
        assert!(!d.actions.iter().any(|a| matches!(a, Action::Delete { .. })), "only the requested sync prunes");
    }
    assert!(m.synced.as_ref().is_some_and(|s| s.digest == "d3"));
}

#[test]
fn self_heal_applies_drift_backing_off_when_it_returns() {
    let objects = vec![cm("a", 0)];
    let t = target(SyncPolicy { self_heal: true, ..auto() }, "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    pass(&t, &objects, &mut c, &mut m, 0);
    pass(&t, &objects, &mut c, &mut m, 1);
    let r = ObjectRef::of(&objects[0]).unwrap();
    let drift = |c: &mut Cluster| c.objects.get_mut(&r).unwrap()["data"]["v"] = json!("hand-edited");
    drift(&mut c);
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 100).actions), ["apply a"], "healed at once");
    drift(&mut c);
    let d = pass(&t, &objects, &mut c, &mut m, 200);
    assert!(d.actions.is_empty(), "back again within a second: backing off");
    assert_eq!(d.wake_at_ms, Some(1100));
    assert_eq!(kinds(&pass(&t, &objects, &mut c, &mut m, 1100).actions), ["apply a"]);
    // Without selfHeal, drift is reported, not applied.
    let manual = target(auto(), "d1", 0);
    drift(&mut c);
    let d = pass(&manual, &objects, &mut c, &mut m, 5000);
    assert!(d.actions.is_empty() && d.report.sync == SyncStatus::OutOfSync);
}

#[test]
fn manual_applications_sync_only_when_asked_and_a_new_uid_starts_over() {
    let objects = vec![cm("a", 0)];
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let manual = target(SyncPolicy::default(), "d1", 0);
    assert!(pass(&manual, &objects, &mut c, &mut m, 0).actions.is_empty());
    let asked = target(SyncPolicy::default(), "d1", 3);
    assert_eq!(kinds(&pass(&asked, &objects, &mut c, &mut m, 1).actions), ["apply a"]);
    pass(&asked, &objects, &mut c, &mut m, 2);
    assert_eq!(m.observed_request, 3);
    // Deleted and created again while the agent was away: request 1 of the new uid is new.
    let recreated = Target { uid: "u2", ..target(SyncPolicy::default(), "d1", 1) };
    c.objects.values_mut().for_each(|o| o["data"]["v"] = json!("old"));
    assert_eq!(kinds(&pass(&recreated, &objects, &mut c, &mut m, 3).actions), ["apply a"]);
    assert_eq!(m.app_uid, "u2");
}

#[test]
fn helm_hooks_run_in_helm_order() {
    let helm = |name: &str, hook: &str, weight: i64| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ns", "annotations": {
            "helm.sh/hook": hook, "helm.sh/hook-weight": weight.to_string(), "helm.sh/hook-delete-policy": "hook-succeeded"}}})
    };
    let objects =
        vec![helm("b", "pre-upgrade", 5), helm("a", "pre-install", -5), cm("app", 0), helm("z", "post-install", 0)];
    let t = target(auto(), "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    let mut order = Vec::new();
    for i in 0..20 {
        let d = pass(&t, &objects, &mut c, &mut m, i);
        order.extend(kinds(&d.actions).into_iter().filter(|k| !k.starts_with("delete")));
        c.finish_jobs(true);
        if m.operation.is_none() && m.synced.is_some() {
            break;
        }
    }
    assert_eq!(order, ["create a", "create b", "apply app", "create z"]);
}

#[test]
fn cascade_deletes_only_what_it_created_and_may_delete() {
    let mut c = Cluster::default();
    let mut m = Memory::default();
    let t = target(SyncPolicy { prune: true, ..auto() }, "d1", 0);
    let mut keep = cm("keep", 0);
    keep["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Delete=false");
    let objects = vec![cm("a", 0), keep];
    pass(&t, &objects, &mut c, &mut m, 0);
    pass(&t, &objects, &mut c, &mut m, 1);
    let (actions, remaining) = cascade("web", &m, None, &c);
    assert_eq!(kinds(&actions), ["delete a (Cascade)"]);
    assert_eq!(remaining.len(), 1);
    assert!(cascade("other-app", &m, None, &c).0.is_empty(), "another Application's name deletes nothing");
}

#[test]
fn a_deletion_notice_about_this_application_decides_whether_its_objects_go() {
    use crate::Removal;
    let notice = |uid: &str, cascade: bool| Removal { app: "web".into(), app_uid: uid.into(), cascade };
    for (prune, notice, cascades, why) in [
        (false, None, false, "no notice (a selector stopped matching): the prune policy"),
        (true, None, true, "no notice, prune on"),
        (false, Some(notice("u1", true)), true, "deleted with cascade: objects go whatever prune says"),
        (true, Some(notice("u1", false)), false, "deleted with --cascade=false: orphaned"),
        (true, Some(notice("u0", false)), true, "a notice about an earlier Application of that name"),
        (false, Some(notice("", true)), false, "a notice without identity decides nothing"),
    ] {
        let m = Memory { app_uid: "u1".into(), last_policy: SyncPolicy { prune, ..auto() }, ..Default::default() };
        assert_eq!(removal_cascades(&m, notice.as_ref()), cascades, "{why}");
    }
    // Orphaned: nothing is deleted though prune is on.
    let mut c = Cluster::default();
    let mut m = Memory::default();
    let t = target(SyncPolicy { prune: true, ..auto() }, "d1", 0);
    pass(&t, &[cm("a", 0)], &mut c, &mut m, 0);
    pass(&t, &[cm("a", 0)], &mut c, &mut m, 1);
    let uid = m.app_uid.clone();
    assert!(cascade("web", &m, Some(&notice(&uid, false)), &c).0.is_empty());
    assert_eq!(kinds(&cascade("web", &m, Some(&notice(&uid, true)), &c).0), ["delete a (Cascade)"]);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn arb_objects() -> impl Strategy<Value = (Vec<Value>, Vec<(usize, bool, bool)>)> {
        (1usize..8, proptest::collection::vec((0usize..10, any::<bool>(), any::<bool>()), 0..10))
            .prop_map(|(n, live)| ((0..n).map(|i| cm(&format!("o{i}"), (i % 3) as i64 - 1)).collect(), live))
    }

    proptest! {
        /// The same inputs give the same decision, and nothing without the Application's
        /// tracking identity is ever deleted.
        #[test]
        fn decisions_are_deterministic_and_never_prune_what_is_not_ours((objects, extra) in arb_objects(), prune in any::<bool>(), heal in any::<bool>()) {
            let mut c = Cluster::default();
            let mut m = Memory::default();
            for (i, tracked, app_label) in &extra {
                let mut o = cm(&format!("x{i}"), 0);
                if !tracked {
                    o["metadata"]["annotations"] = json!({});
                }
                if !app_label {
                    o["metadata"]["labels"] = json!({});
                }
                let r = ObjectRef::of(&o).unwrap();
                o["metadata"]["uid"] = json!(format!("u{i}"));
                c.objects.insert(r.clone(), o);
                m.inventory.push(r);
            }
            let t = target(SyncPolicy { prune, self_heal: heal, ..auto() }, "d1", 0);
            let a = decide(&t, &objects, &c, &m, "bosun-agent", 42);
            let b = decide(&t, &objects, &c, &m, "bosun-agent", 42);
            prop_assert_eq!(&a, &b);
            for action in &a.actions {
                if let Action::Delete { r, why: DeleteWhy::Prune | DeleteWhy::Cascade, .. } = action {
                    let live = c.get(r).unwrap();
                    prop_assert!(tracking::prunable(&live, "web"), "pruned {} without our identity", r);
                }
            }
            let (cascade_actions, _) = cascade("web", &m, None, &c);
            for action in cascade_actions {
                if let Action::Delete { r, .. } = action {
                    prop_assert!(tracking::is_tracked_by(&c.get(&r).unwrap(), "web"));
                }
            }
        }
    }
}

#[test]
fn the_inventory_holds_the_bundle_and_the_leftovers_still_there() {
    let names = |m: &Memory| -> Vec<String> { m.inventory.iter().map(|r| r.name.clone()).collect() };
    // Prune off: a removed object stays a leftover for as long as it lives.
    let t = target(auto(), "d1", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    pass(&t, &[cm("a", 0), cm("b", 0)], &mut c, &mut m, 0);
    pass(&t, &[cm("a", 0), cm("b", 0)], &mut c, &mut m, 1);
    assert_eq!(names(&m), ["a", "b"]);
    let t2 = target(auto(), "d2", 0);
    pass(&t2, &[cm("a", 0), cm("c", 0)], &mut c, &mut m, 2);
    assert_eq!(names(&m), ["a", "b", "c"], "the new object in, the removed one a leftover");
    let at_rest = pass(&t2, &[cm("a", 0), cm("c", 0)], &mut c, &mut m, 3);
    assert_eq!(names(&at_rest.memory), ["a", "b", "c"], "a pass at rest keeps it");
    // The leftover is deleted by someone: it leaves the inventory.
    c.objects.remove(&ObjectRef::of(&cm("b", 0)).unwrap());
    pass(&t2, &[cm("a", 0), cm("c", 0)], &mut c, &mut m, 4);
    assert_eq!(names(&m), ["a", "c"]);
    // As many identities as before, not the same ones: c gone from the cluster, d new.
    c.objects.remove(&ObjectRef::of(&cm("c", 0)).unwrap());
    let t3 = target(auto(), "d3", 0);
    pass(&t3, &[cm("a", 0), cm("d", 0)], &mut c, &mut m, 5);
    assert_eq!(names(&m), ["a", "d"]);
}

/// The cluster as a watch cache shows it: an object's shared copy is replaced only when the
/// object changes, as the agent's reflector does.
struct Cached(BTreeMap<ObjectRef, Arc<Value>>);

impl Cached {
    fn follow(&mut self, cluster: &Cluster) {
        self.0.retain(|r, _| cluster.objects.contains_key(r));
        for (r, o) in &cluster.objects {
            if self.0.get(r).is_none_or(|kept| **kept != *o) {
                self.0.insert(r.clone(), Arc::new(o.clone()));
            }
        }
    }
}

impl Live for Cached {
    fn get(&self, r: &ObjectRef) -> Option<Arc<Value>> {
        self.0.get(r).cloned()
    }
    fn labeled(&self, group: &str, kind: &str, namespace: &str, label: &str, value: &str) -> Vec<Arc<Value>> {
        let of = |r: &ObjectRef, o: &Value| {
            r.group == group && r.kind == kind && r.namespace == namespace && o["metadata"]["labels"][label] == value
        };
        self.0.iter().filter(|(r, o)| of(r, o)).map(|(_, o)| o.clone()).collect()
    }
}

#[test]
fn a_kept_bundle_decides_as_a_fresh_one_through_a_sync_drift_and_heal() {
    let objects = vec![cm("a", 0), deploy("web", 1), cm("b", 1), job_hook("migrate", "PreSync", "", false)];
    let bundle = Bundle::new(objects.clone());
    let mut cluster = Cluster::default();
    let mut cache = Cached(BTreeMap::new());
    let mut mem = Memory::default();
    let policy = SyncPolicy { automated: true, self_heal: true, ..Default::default() };
    let t = target(policy, "d1", 0);
    let mut decided = Vec::new();
    for now in 0..12 {
        if now == 6 {
            // A hand edit: the kept comparison of "a" no longer holds.
            let r = ObjectRef::of(&objects[0]).unwrap();
            cluster.objects.get_mut(&r).unwrap()["data"]["v"] = json!("edited");
        }
        cache.follow(&cluster);
        let kept = bundle.decide(&t, &cache, &mem, "bosun-agent", now * 1000);
        let fresh = decide(&t, &objects, &cache, &mem, "bosun-agent", now * 1000);
        assert_eq!(kept, fresh, "pass {now}");
        decided.push(kinds(&kept.actions));
        mem = kept.memory.clone();
        let outcomes = cluster.act(&kept.actions);
        record(&mut mem, &outcomes);
        // Completes hooks and rollouts as their controllers would.
        for o in cluster.objects.values_mut() {
            if o["kind"] == "Job" {
                o["status"] = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
            }
        }
    }
    let heal = decided.iter().skip(6).flatten().any(|a| a == "apply a");
    assert!(heal, "the edit was healed through the kept bundle: {decided:?}");
    assert!(decided.iter().take(6).flatten().any(|a| a == "create migrate"), "{decided:?}");
}

#[test]
fn work_spread_over_cores_comes_back_whole_and_in_order() {
    // Sizes around the split: none, one thread, several threads with a short last share.
    for n in [0, 1, 255, 511, 512, 513, 1000, 2049] {
        let items: Vec<u64> = (0..n).map(|i| i * 7 + 3).collect();
        let spread = map_on_cores(&items, |k, x| (k, x * 2));
        let in_turn: Vec<(usize, u64)> = items.iter().enumerate().map(|(k, x)| (k, x * 2)).collect();
        assert_eq!(spread, in_turn, "{n} items");
    }
}

#[test]
fn a_large_bundle_compared_on_several_cores_reports_each_drift_in_install_order() {
    // Enough resources for the comparison to be split across threads (on more than one core).
    let objects: Vec<Value> = (0..1500).map(|i| cm(&format!("cm-{i:04}"), (i % 3) as i64)).collect();
    let mut live = objects.clone();
    let edited = [1usize, 2, 1200];
    for i in edited {
        live[i]["data"]["v"] = json!("edited by hand");
    }
    let cache = Cached(live.iter().map(|o| (ObjectRef::of(o).unwrap(), Arc::new(o.clone()))).collect());
    let mut inventory: Vec<ObjectRef> = objects.iter().map(|o| ObjectRef::of(o).unwrap()).collect();
    inventory.sort();
    let mem = Memory {
        app_uid: "u1".into(),
        inventory,
        synced: Some(Synced { digest: "d1".into(), request: 0, at: 1 }),
        ..Default::default()
    };
    let manual = SyncPolicy::default();
    let d = Bundle::new(objects.clone()).decide(&target(manual, "d1", 0), &cache, &mem, "bosun-agent", 5);
    assert!(d.actions.is_empty(), "a manual Application only reports");
    let drifted: Vec<(&str, &str)> = d
        .report
        .resources
        .iter()
        .filter(|r| r.sync == SyncStatus::OutOfSync)
        .map(|r| (r.r.name.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        drifted,
        [("cm-1200", "drifted: .data.v"), ("cm-0001", "drifted: .data.v"), ("cm-0002", "drifted: .data.v")],
        "waves 0, 1, 2 in turn; by name within a wave"
    );
    let order: Vec<&str> = d.report.resources.iter().map(|r| r.r.name.as_str()).collect();
    let mut expected: Vec<&str> = objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    expected.sort_by_key(|name| (name[3..].parse::<usize>().unwrap() % 3, name.to_string()));
    assert_eq!(order, expected);
    assert_eq!(d.report.sync, SyncStatus::OutOfSync);
}

#[test]
fn the_memory_is_made_durable_only_before_actions_an_older_copy_could_not_repeat() {
    let t = target(auto(), "d1", 0);
    let objects = vec![cm("a", 0), deploy("d", 0)];
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    // A first sync applies objects no durable inventory names: a rewound agent would lose them.
    let d = pass(&t, &objects, &mut c, &mut m, 1000);
    assert_eq!(kinds(&d.actions), ["apply a", "apply d"]);
    assert!(d.needs_durable_memory(&[]));
    let durable = d.memory.inventory.clone();
    assert!(!d.needs_durable_memory(&durable), "the same objects, once on disk, can be applied again");
    pass(&t, &objects, &mut c, &mut m, 2000);
    // A new version of the same objects: applies an older copy would simply repeat.
    let mut changed = objects.clone();
    changed[0]["data"]["v"] = json!("2");
    let d = pass(&target(auto(), "d2", 0), &changed, &mut c, &mut m, 3000);
    assert_eq!(kinds(&d.actions), ["apply a"]);
    assert!(!d.needs_durable_memory(&durable));
    // A hook run is created once: its operation is on disk first, whatever the inventory.
    let hooked = vec![job_hook("migrate", "PreSync", "", true), cm("a", 0), deploy("d", 0)];
    let d = pass(&target(auto(), "d3", 0), &hooked, &mut c, &mut m, 4000);
    assert_eq!(kinds(&d.actions), ["create migrate-"]);
    assert!(d.needs_durable_memory(&durable));
    // Pruning deletes under a uid precondition: repeating it is harmless.
    let prune = target(SyncPolicy { automated: true, prune: true, ..Default::default() }, "d4", 0);
    let (mut c, mut m) = (Cluster::default(), Memory::default());
    pass(&prune, &objects, &mut c, &mut m, 0);
    pass(&prune, &objects, &mut c, &mut m, 1);
    let d = pass(&target(prune.policy, "d5", 0), &objects[..1], &mut c, &mut m, 2);
    assert_eq!(kinds(&d.actions), ["delete d (Prune)"]);
    assert!(!d.needs_durable_memory(&durable));
}
