//! The sync of one Application on one cluster, decided without I/O.
//!
//! [`decide`] takes what is assigned (a bundle at a revision, a sync request, the policy), the
//! live objects as the agent's cache holds them, and what the agent remembers ([`Memory`]), and
//! returns the next [`Action`]s, the memory to persist *before* running them, and the report to
//! publish. The agent's loop is "wait for a wake-up, ask `decide`, persist, act, [`record`]".
//!
//! # The operation
//!
//! A sync is an [`Operation`], identified by the Application's uid, the sync request and the
//! bundle digest. It starts when the policy is automated and the bundle is new, or when a sync
//! was requested; it then walks the plan's steps — phase (PreSync, Sync, PostSync), then wave —
//! as gitops-engine's sync context does:
//!
//! - **A step runs** when the previous one is done: its hooks are created (a hook with a fixed
//!   name whose previous run still exists is deleted first when its delete policy says
//!   `BeforeHookCreation`), and its resources that differ from the live objects are applied.
//! - **A step is done** when its hooks have completed (Healthy: a Job complete, a Pod
//!   succeeded, a resource without a health check created) and — when the sync has several
//!   steps and this is not the last one — its resources are Healthy (or have no check).
//! - **A step fails** when a hook fails (Degraded), a resource of a multi-step sync is
//!   Degraded, or an action fails. The operation then runs the SyncFail hooks, deletes the
//!   hooks whose policy says `HookFailed`, and ends Failed; the retry policy may start it again
//!   later (a new attempt, hooks created anew).
//! - **After the last step** leftovers are pruned (objects applied before, no longer in the
//!   bundle, carrying the Application's tracking identity, not `Prune=false`) — those marked
//!   `PruneLast` once everything else is Healthy — then hooks with `HookSucceeded` are deleted
//!   and the operation ends Succeeded: the bundle is synced.
//!
//! An operation whose target changes (a new bundle or request) is abandoned for the new one.
//!
//! # Between operations
//!
//! With `selfHeal`, resources that drift are applied again (each one backing off if the drift
//! comes back at once), and leftovers are pruned when the policy prunes. Without it, drift is
//! only reported.
//!
//! # Crash safety
//!
//! The memory is persisted before the actions that depend on it. A hook about to be created is
//! recorded first (`Creating`), and every hook is created carrying the operation's id
//! ([`SYNC_ID_LABEL`]) and its key ([`HOOK_KEY_ANNOTATION`]): after a restart, a `Creating`
//! hook found in the cache is adopted, one not found is created — so a hook is never run twice
//! in one attempt, nor skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use crate::app::{IgnoreDifference, Propagation, SyncPolicy};
use crate::health;
use crate::object::ObjectRef;
use crate::options::{self, HookDeletePolicy, HookType};
use crate::status::{Health, SyncStatus};
use crate::tracking;

#[cfg(test)]
mod tests;

/// Label every hook run carries: the id of the operation that created it.
pub const SYNC_ID_LABEL: &str = "bosun.dev/sync-id";
/// Annotation every hook run carries: the hook's key in the bundle.
pub const HOOK_KEY_ANNOTATION: &str = "bosun.dev/hook";

/// What is assigned to the cluster for this Application.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub app: &'a str,
    /// The destination namespace (created first with CreateNamespace).
    pub namespace: &'a str,
    /// The Application's uid: operations of a deleted and re-created Application are apart.
    pub uid: &'a str,
    pub digest: &'a str,
    /// Bumped by each sync request.
    pub request: u64,
    /// The sync request asks for pruning: the operation it starts prunes even if the policy
    /// does not.
    pub request_prune: bool,
    pub policy: SyncPolicy,
    pub ignore: &'a [IgnoreDifference],
}

/// The live objects the agent's cache holds (shared, not copied, per pass; read from several
/// threads for a large bundle).
pub trait Live: Sync {
    /// The live object with this identity.
    fn get(&self, r: &ObjectRef) -> Option<Arc<Value>>;
    /// Objects of this group/kind/namespace carrying `label=value`.
    fn labeled(&self, group: &str, kind: &str, namespace: &str, label: &str, value: &str) -> Vec<Arc<Value>>;
}

/// What the agent remembers of one Application: persisted, and written before the actions
/// that depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
// Every field may be absent: files written by older agents load.
#[serde(default)]
pub struct Memory {
    /// The uid these counters belong to (a re-created Application starts over).
    pub app_uid: String,
    /// Resources applied for the Application and not pruned since (hooks are not here).
    pub inventory: Vec<ObjectRef>,
    /// The last completed sync.
    pub synced: Option<Synced>,
    /// The last sync request acted on.
    pub observed_request: u64,
    /// The sync in progress.
    pub operation: Option<Operation>,
    /// The last failed sync of the current target, and when to try again.
    pub failed: Option<Failed>,
    /// The policy last seen (decides what happens when the Application goes away).
    pub last_policy: SyncPolicy,
    /// Self-heal backoff per resource: (heals in a row, last heal in Unix ms).
    pub heals: BTreeMap<String, (u32, i64)>,
    /// Errors of the last actions (shown until the next actions succeed).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    pub digest: String,
    pub request: u64,
    /// Unix seconds.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub digest: String,
    pub request: u64,
    /// The failed operation was asked to prune (its retries are too).
    #[serde(default)]
    pub prune: bool,
    pub message: String,
    pub attempts: u32,
    /// Unix ms of the next attempt; `None` once the retries are spent.
    pub retry_at_ms: Option<i64>,
}

/// A sync in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub digest: String,
    pub request: u64,
    /// 1 for the first attempt, then one more per retry.
    pub attempt: u32,
    /// The value of [`SYNC_ID_LABEL`] on this attempt's hooks.
    pub id: String,
    /// Index of the current step of the plan.
    pub step: usize,
    /// Resources applied by this operation (each is applied once per operation).
    #[serde(default)]
    pub applied: BTreeSet<ObjectRef>,
    pub hooks: Vec<HookRun>,
    /// Why it failed, once it has: it is running its SyncFail hooks.
    pub failure: Option<String>,
    /// Whether the namespace has been created (CreateNamespace).
    #[serde(default)]
    pub namespace_done: bool,
    pub started_ms: i64,
    /// Prunes whatever the policy says: its sync request asked for it.
    #[serde(default)]
    pub prune: bool,
}

/// One hook of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    pub key: String,
    /// The object's name (generated names are known once created).
    pub name: String,
    pub uid: String,
    pub state: HookState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookState {
    /// Recorded before it is created; adopted from the cache after a restart if it exists.
    Creating,
    /// The previous run (same fixed name) is being deleted first (BeforeHookCreation).
    Replacing,
    Running,
    Succeeded,
    Failed(String),
}

/// Something to do to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply (or replace, with `Replace=true`; delete and create again when the
    /// update is refused, with `Force=true`).
    Apply { object: Value, replace: bool, force: bool },
    /// Create a hook run (`POST`; the name may be generated).
    Create { key: String, object: Value },
    /// Delete an object, only if it is still the one seen (`uid` precondition).
    Delete { r: ObjectRef, uid: String, propagation: Propagation, why: DeleteWhy },
}

/// Why an object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteWhy {
    Prune,
    /// The Application left this cluster.
    Cascade,
    /// A hook's delete policy.
    Hook,
}

/// What an action did (fed back through [`record`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created {
        key: String,
        name: String,
        uid: String,
    },
    /// An action failed; the message names the object.
    Failed {
        message: String,
    },
    Done,
}

/// One object's state, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    pub r: ObjectRef,
    pub sync: SyncStatus,
    pub health: Health,
    pub message: String,
    /// A readable diff (Secret values redacted) when the object drifted.
    pub diff: String,
    /// Whether this is a hook run.
    pub hook: bool,
}

/// The Application's state on this cluster, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub sync: SyncStatus,
    pub health: Health,
    pub message: String,
    pub resources: Vec<ResourceReport>,
    pub observed_request: u64,
    /// Unix seconds of the last completed sync.
    pub synced_at: i64,
    /// The operation in progress, in words (`PreSync wave 0: waiting for hook migrate`).
    pub operation: String,
    /// Objects the resources own (ReplicaSets, Pods), for the tree; filled in by the agent
    /// from its cache with [`crate::tree::children`], not by `decide`.
    pub children: Vec<crate::tree::Child>,
    /// Owned objects past [`crate::tree::MAX_CHILDREN`], not reported.
    pub children_left_out: usize,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// To persist before the actions run.
    pub memory: Memory,
    pub actions: Vec<Action>,
    pub report: Report,
    /// Look again at this time (Unix ms) even if nothing changes: a retry, a self-heal backoff.
    pub wake_at_ms: Option<i64>,
}

impl Decision {
    /// Whether the memory must be durable (on disk, fsynced) before these actions run, given
    /// the inventory the durable copy holds, sorted. A crash of the machine rewinds the memory to its
    /// durable copy, and every action but two is safe to repeat from there (applies are
    /// idempotent, deletes carry a uid precondition):
    /// - creating a hook run cannot be repeated: the operation that records it comes first;
    /// - an object applied for the first time must be in the inventory first, or a rewound
    ///   agent would never watch its kind again and never prune it.
    pub fn needs_durable_memory(&self, durable_inventory: &[ObjectRef]) -> bool {
        self.actions.iter().any(|a| match a {
            Action::Create { .. } => true,
            Action::Apply { object, .. } => {
                ObjectRef::of(object).is_none_or(|r| durable_inventory.binary_search(&r).is_err())
            }
            Action::Delete { .. } => false,
        })
    }
}

/// Feeds the outcomes of a decision's actions back into the memory.
pub fn record(memory: &mut Memory, outcomes: &[Outcome]) {
    memory.errors.clear();
    for o in outcomes {
        match o {
            Outcome::Created { key, name, uid } => {
                if let Some(op) = memory.operation.as_mut()
                    && let Some(h) = op.hooks.iter_mut().find(|h| &h.key == key)
                {
                    h.name = name.clone();
                    h.uid = uid.clone();
                    h.state = HookState::Running;
                }
            }
            Outcome::Failed { message } => {
                memory.errors.push(message.clone());
                if let Some(op) = memory.operation.as_mut()
                    && op.failure.is_none()
                {
                    op.failure = Some(message.clone());
                }
            }
            Outcome::Done => {}
        }
    }
}

/// The key of a hook in its bundle: `group/kind/namespace/name` (or the `generateName` prefix).
pub fn hook_key(obj: &Value) -> String {
    let r = ObjectRef::of_manifest(obj).unwrap_or(ObjectRef {
        group: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
    });
    format!("{}/{}/{}/{}", r.group, r.kind, r.namespace, r.name)
}

/// The id of one attempt of an operation (a label value).
fn operation_id(uid: &str, request: u64, digest: &str, attempt: u32) -> String {
    let h = sha2::Sha256::digest(format!("{uid}\n{request}\n{digest}\n{attempt}").as_bytes());
    format!("op-{}", &hex::encode(h)[..16])
}

/// Self-heal backoff: the first heal at once, then 1 s, 2 s, 4 s… up to a minute while the
/// drift keeps coming back.
fn heal_backoff_ms(heals: u32) -> i64 {
    if heals == 0 { 0 } else { (1000i64 << (heals - 1).min(6)).min(60_000) }
}

/// `f` over `items` (with their index), results in order. Many items are split across the
/// machine's cores (a pass over a large bundle); a thread that cannot be started leaves its
/// share to the caller's thread, so this never fails.
fn map_on_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    /// Below this many items per thread, starting one costs more than it saves.
    const MIN_PER_THREAD: usize = 256;
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    let run = |start: usize, part: &[T]| part.iter().enumerate().map(|(k, x)| f(start + k, x)).collect::<Vec<R>>();
    if threads == 1 {
        return run(0, items);
    }
    let chunk = items.len().div_ceil(threads);
    let run = &run;
    std::thread::scope(|scope| {
        let others: Vec<_> = (chunk..items.len())
            .step_by(chunk)
            .map(|start| {
                let part = &items[start..(start + chunk).min(items.len())];
                let thread = std::thread::Builder::new()
                    .name("bosun-compare".into())
                    .spawn_scoped(scope, move || run(start, part))
                    .ok();
                (start, part, thread)
            })
            .collect();
        let mut out = run(0, &items[..chunk]);
        for (start, part, thread) in others {
            match thread.map(|t| t.join()) {
                Some(Ok(results)) => out.extend(results),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => out.extend(run(start, part)),
            }
        }
        out
    })
}

/// One step of a pass: its phase and wave, its hooks, and where its resources are in the
/// compared list.
struct Step<'a> {
    phase: options::HookType,
    wave: i64,
    /// Where this step's resources are in the compared list (the plan's install order).
    compared: std::ops::Range<usize>,
    hooks: Vec<&'a Value>,
}

fn phase_name(p: HookType) -> &'static str {
    match p {
        HookType::PreSync => "PreSync",
        HookType::Sync => "Sync",
        HookType::PostSync => "PostSync",
        HookType::SyncFail => "SyncFail",
        HookType::Skip => "Skip",
    }
}

/// The steps of a bundle, worked out once per bundle: phase, then wave (resources belong to
/// the Sync phase), each step's resources in install order; SyncFail hooks apart. Objects are
/// named by their index in the bundle.
#[derive(Debug)]
struct Plan {
    steps: Vec<PlanStep>,
    sync_fail: Vec<usize>,
    /// Every resource, step after step in install order, with its index in the bundle.
    resources: Vec<(ObjectRef, usize)>,
    /// The same identities, sorted: the inventory of the bundle once it is synced.
    sorted: Vec<ObjectRef>,
}

#[derive(Debug)]
struct PlanStep {
    phase: HookType,
    wave: i64,
    /// The step's slice of [`Plan::resources`].
    resources: std::ops::Range<usize>,
    hooks: Vec<usize>,
}

impl Plan {
    fn of(objects: &[Value]) -> Result<Self, options::OptionError> {
        struct Building {
            /// Kind rank, identity, index: sorted, the install order.
            resources: Vec<(usize, ObjectRef, usize)>,
            hooks: Vec<usize>,
        }
        let mut keyed: BTreeMap<(HookType, i64), Building> = BTreeMap::new();
        let mut sync_fail = Vec::new();
        fn entry(keyed: &mut BTreeMap<(HookType, i64), Building>, phase: HookType, wave: i64) -> &mut Building {
            keyed.entry((phase, wave)).or_insert_with(|| Building { resources: vec![], hooks: vec![] })
        }
        // Each object's annotations and identity, read on every core for a large bundle.
        let read = map_on_cores(objects, |_, o| options::read(o).map(|a| (a, ObjectRef::of(o))));
        for (i, read) in read.into_iter().enumerate() {
            let (a, r) = read?;
            if a.is_hook {
                for h in a.hooks {
                    match h {
                        HookType::SyncFail => sync_fail.push(i),
                        HookType::Skip => {}
                        phase => entry(&mut keyed, phase, a.wave).hooks.push(i),
                    }
                }
            } else if !a.hooks.contains(&HookType::Skip)
                && let Some(r) = r
            {
                entry(&mut keyed, HookType::Sync, a.wave).resources.push((crate::plan::kind_rank(&r.kind), r, i));
            }
        }
        let mut plan = Plan { steps: Vec::new(), sync_fail, resources: Vec::new(), sorted: Vec::new() };
        for ((phase, wave), mut b) in keyed {
            // Install order: kind rank, then identity (unique within a step).
            b.resources.sort_unstable();
            b.hooks.sort_by_cached_key(|i| {
                let o = &objects[*i];
                (crate::plan::kind_rank(o["kind"].as_str().unwrap_or_default()), ObjectRef::of_manifest(o))
            });
            let start = plan.resources.len();
            plan.resources.extend(b.resources.into_iter().map(|(_, r, i)| (r, i)));
            plan.steps.push(PlanStep { phase, wave, resources: start..plan.resources.len(), hooks: b.hooks });
        }
        plan.sorted = plan.resources.iter().map(|(r, _)| r.clone()).collect();
        plan.sorted.sort_unstable();
        Ok(plan)
    }
}

/// A bundle as the agent keeps it between passes: its objects, their plan (worked out once),
/// and the comparisons of the last pass. A resource whose live object is the same cache entry
/// as last time is not compared again: its drift and health are the ones found then.
#[derive(Debug)]
pub struct Bundle {
    objects: Vec<Value>,
    plan: Result<Plan, options::OptionError>,
    memo: std::sync::Mutex<Memo>,
}

/// The comparisons of the last pass, and what they were made under.
#[derive(Debug, Default)]
struct Memo {
    manager: String,
    ignore: Vec<IgnoreDifference>,
    /// Per resource of the plan (same order): the live object compared, and what was found.
    seen: Vec<Option<Seen>>,
}

#[derive(Debug)]
struct Seen {
    live: Arc<Value>,
    drift: Vec<crate::diff::Drift>,
    health: Health,
    message: String,
}

impl Bundle {
    pub fn new(objects: Vec<Value>) -> Self {
        let plan = Plan::of(&objects);
        Self { objects, plan, memo: Default::default() }
    }

    /// The bundle's objects, as given.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// Decides the next actions (see [`decide`]). Pure as [`decide`] is: the comparisons kept
    /// from the last pass only save work, they never change the decision.
    pub fn decide(
        &self,
        target: &Target<'_>,
        live: &dyn Live,
        memory: &Memory,
        manager: &str,
        now_ms: i64,
    ) -> Decision {
        decide_bundle(target, self, live, memory, manager, now_ms)
    }
}

/// One resource compared with its live object.
struct Compared<'a> {
    desired: &'a Value,
    r: ObjectRef,
    live: Option<Arc<Value>>,
    drift: Vec<crate::diff::Drift>,
    health: Health,
    message: String,
}

impl Compared<'_> {
    fn in_sync(&self) -> bool {
        self.live.is_some() && self.drift.is_empty()
    }
}

/// Decides the next actions. Pure: the same inputs give the same decision. The agent keeps a
/// [`Bundle`] between passes instead, which saves working out the plan and comparing objects
/// that did not change.
pub fn decide(
    target: &Target<'_>,
    objects: &[Value],
    live: &dyn Live,
    memory: &Memory,
    manager: &str,
    now_ms: i64,
) -> Decision {
    decide_bundle(target, &Bundle::new(objects.to_vec()), live, memory, manager, now_ms)
}

fn decide_bundle(
    target: &Target<'_>,
    bundle: &Bundle,
    live: &dyn Live,
    memory: &Memory,
    manager: &str,
    now_ms: i64,
) -> Decision {
    let mut mem = memory.clone();
    if mem.app_uid != target.uid {
        if !mem.app_uid.is_empty() {
            // A new Application under the same name: its operations start over; the objects
            // (and so the inventory) are the name's and stay.
            mem = Memory { inventory: mem.inventory, last_policy: mem.last_policy, ..Memory::default() };
        }
        mem.app_uid = target.uid.to_string();
    }
    mem.last_policy = target.policy;
    let policy = target.policy;
    let mut actions = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut wake_at_ms = None;

    let objects = bundle.objects();
    let plan = match &bundle.plan {
        Ok(p) => p,
        Err(e) => {
            // A malformed sync annotation stops this Application only, before anything is applied.
            let report = Report {
                sync: SyncStatus::OutOfSync,
                health: Health::Unknown,
                message: e.to_string(),
                observed_request: mem.observed_request,
                synced_at: mem.synced.as_ref().map(|s| s.at).unwrap_or_default(),
                ..Default::default()
            };
            return Decision { memory: mem, actions, report, wake_at_ms };
        }
    };
    let steps: Vec<Step<'_>> = plan
        .steps
        .iter()
        .map(|s| Step {
            phase: s.phase,
            wave: s.wave,
            compared: s.resources.clone(),
            hooks: s.hooks.iter().map(|i| &objects[*i]).collect(),
        })
        .collect();
    let sync_fail: Vec<&Value> = plan.sync_fail.iter().map(|i| &objects[*i]).collect();
    let multi_step = steps.len() > 1 || steps.iter().any(|s| !s.hooks.is_empty());

    // Compare every resource with its live object (again only where the live object changed
    // since the last pass).
    let opts = crate::diff::Options { ignore: target.ignore, manager: Some(manager) };
    let mut memo = bundle.memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if memo.manager != manager || memo.ignore != target.ignore {
        *memo = Memo { manager: manager.to_string(), ignore: target.ignore.to_vec(), seen: Vec::new() };
    }
    memo.seen.resize_with(plan.resources.len(), || None);
    // Each resource's live object, compared again only when it is not the copy compared last
    // time. After a new bundle that is every one: the work is spread over the machine's cores.
    let before = &memo.seen;
    let looked = map_on_cores(&plan.resources, |k, (r, i)| {
        let l = live.get(r)?;
        if before[k].as_ref().is_some_and(|s| Arc::ptr_eq(&s.live, &l)) {
            return Some((l, None));
        }
        let drift = crate::diff::drift(&objects[*i], &l, opts);
        let (health, message) =
            health::assess(&l).map(|a| (a.health, a.message)).unwrap_or((Health::Healthy, String::new()));
        let seen = Seen { live: l.clone(), drift, health, message };
        Some((l, Some(seen)))
    });
    let mut compared: Vec<Compared<'_>> = Vec::with_capacity(plan.resources.len());
    for (((r, i), looked), seen) in plan.resources.iter().zip(looked).zip(memo.seen.iter_mut()) {
        let live_obj = match looked {
            Some((l, fresh)) => {
                if let Some(fresh) = fresh {
                    *seen = Some(fresh);
                }
                Some(l)
            }
            None => {
                *seen = None;
                None
            }
        };
        let (drift, health, message) = match seen.as_ref().filter(|_| live_obj.is_some()) {
            Some(s) => (s.drift.clone(), s.health, s.message.clone()),
            None => (Vec::new(), Health::Missing, "not created yet".to_string()),
        };
        compared.push(Compared { desired: &objects[*i], r: r.clone(), live: live_obj, drift, health, message });
    }
    drop(memo);

    // Leftovers: applied before, no longer in the bundle (deleted in reverse install order).
    // Usually the inventory is the bundle's identities exactly: nothing is gone.
    let gone: Vec<ObjectRef> = if mem.inventory == plan.sorted {
        Vec::new()
    } else {
        mem.inventory.iter().filter(|r| plan.sorted.binary_search(r).is_err()).cloned().collect()
    };
    let gone_count = gone.len();
    let leftovers: Vec<(ObjectRef, Arc<Value>)> = crate::plan::prune_candidates(&gone, &[])
        .into_iter()
        .filter_map(|r| {
            let l = live.get(&r)?;
            Some((r, l))
        })
        .collect();
    let empty_guard = compared.is_empty() && !policy.allow_empty;

    // --- the operation's lifecycle ---
    let this = (target.digest.to_string(), target.request);
    if let Some(op) = &mem.operation
        && (op.digest.as_str(), op.request) != (target.digest, target.request)
    {
        notes.push(format!("a newer target superseded the sync of {}", short(&op.digest)));
        mem.operation = None;
    }
    if mem.failed.as_ref().is_some_and(|f| (f.digest.as_str(), f.request) != (target.digest, target.request)) {
        mem.failed = None;
    }
    let requested = target.request > mem.observed_request;
    let new_bundle = mem.synced.as_ref().is_none_or(|s| s.digest != target.digest);
    // A failed attempt with retries left is part of the same sync (manual ones too).
    let retrying = mem.failed.as_ref().is_some_and(|f| f.retry_at_ms.is_some());
    let wants = requested || (policy.automated && new_bundle) || retrying;
    if mem.operation.is_none() && wants {
        let retry = match &mem.failed {
            None => Some(1),
            Some(f) => match f.retry_at_ms {
                Some(at) if now_ms >= at => Some(f.attempts + 1),
                _ => {
                    if let Some(at) = f.retry_at_ms {
                        wake_at_ms = Some(at);
                    }
                    notes.push(failure_note(f, now_ms));
                    None
                }
            },
        };
        if let Some(attempt) = retry {
            // A sync request's prune choice holds for its operation and that operation's
            // retries, never for the automated syncs after it.
            let prune = if requested { target.request_prune } else { mem.failed.as_ref().is_some_and(|f| f.prune) };
            mem.operation = Some(Operation {
                digest: this.0.clone(),
                request: this.1,
                attempt,
                id: operation_id(target.uid, this.1, &this.0, attempt),
                step: 0,
                applied: BTreeSet::new(),
                hooks: Vec::new(),
                failure: None,
                namespace_done: false,
                started_ms: now_ms,
                prune,
            });
            mem.observed_request = target.request;
        }
    } else if mem.operation.is_none()
        && let Some(f) = &mem.failed
    {
        notes.push(failure_note(f, now_ms));
    }

    let mut op_text = String::new();
    if let Some(mut op) = mem.operation.take() {
        let done = advance(
            &mut op,
            &steps,
            &sync_fail,
            &compared,
            &leftovers,
            empty_guard,
            multi_step,
            target,
            live,
            &mut actions,
            &mut notes,
            &mut op_text,
        );
        match done {
            Some(Ok(())) => {
                mem.synced = Some(Synced { digest: op.digest.clone(), request: op.request, at: now_ms / 1000 });
                mem.failed = None;
            }
            Some(Err(message)) => {
                let attempts = op.attempt;
                let retry_at_ms = policy.retry.delay(attempts).map(|d| now_ms + d.as_millis() as i64);
                if let Some(at) = retry_at_ms {
                    wake_at_ms = Some(at);
                }
                let failed = Failed {
                    digest: op.digest.clone(),
                    request: op.request,
                    prune: op.prune,
                    message,
                    attempts,
                    retry_at_ms,
                };
                notes.push(failure_note(&failed, now_ms));
                mem.failed = Some(failed);
            }
            None => mem.operation = Some(op),
        }
    } else if policy.automated && policy.self_heal && !blocked_by_failure(&mem) {
        // Self-heal between operations: apply what drifted (backing off when it comes back).
        for c in &compared {
            if c.in_sync() {
                // No string is built for an object in sync unless a heal count waits to be reset.
                if !mem.heals.is_empty() {
                    mem.heals.remove(&c.r.to_string());
                }
                continue;
            }
            let key = c.r.to_string();
            let (count, last) = mem.heals.get(&key).copied().unwrap_or((0, 0));
            let due = last + heal_backoff_ms(count);
            if now_ms >= due {
                actions.push(apply_action(c.desired, target.ignore, c.live.as_deref()));
                mem.heals.insert(key, (count + 1, now_ms));
            } else {
                wake_at_ms = Some(wake_at_ms.map_or(due, |w: i64| w.min(due)));
            }
        }
        if policy.prune && !empty_guard {
            prune_actions(target, &leftovers, &compared, true, &mut actions);
        }
    }
    // Inventory: what the bundle holds plus leftovers not pruned yet (rebuilt only when it
    // changed). It is unchanged when every remembered identity not in the bundle is still a
    // leftover, and nothing new came: no set is built for that.
    let same = gone_count == leftovers.len() && mem.inventory.len() == compared.len() + leftovers.len();
    if !same {
        let mut inventory: BTreeSet<ObjectRef> = compared.iter().map(|c| c.r.clone()).collect();
        inventory.extend(leftovers.iter().map(|(r, _)| r.clone()));
        mem.inventory = inventory.into_iter().collect();
    }

    // --- the report ---
    let mut resources: Vec<ResourceReport> = compared
        .into_iter()
        .map(|c| {
            let (sync, message, diff) = match &c.live {
                None => (SyncStatus::OutOfSync, c.message, String::new()),
                Some(_) if c.drift.is_empty() => (SyncStatus::Synced, c.message, String::new()),
                Some(live) => {
                    let paths: Vec<String> = c
                        .drift
                        .iter()
                        .map(|x| if x.removed() { format!("{} (removed from Git)", x.path) } else { x.path.clone() })
                        .collect();
                    (
                        SyncStatus::OutOfSync,
                        format!("drifted: {}", paths.join(", ")),
                        crate::diff::describe_drift(c.desired, live, &c.drift),
                    )
                }
            };
            ResourceReport { r: c.r, sync, health: c.health, message, diff, hook: false }
        })
        .collect();
    for (r, l) in &leftovers {
        let extraneous_ok = options::options(l).is_ok_and(|o| o.ignore_extraneous);
        let (sync, message) = if extraneous_ok {
            (SyncStatus::Synced, "extraneous (IgnoreExtraneous)".to_string())
        } else {
            (SyncStatus::OutOfSync, "requires pruning".to_string())
        };
        resources.push(ResourceReport {
            r: r.clone(),
            sync,
            health: Health::Healthy,
            message,
            diff: String::new(),
            hook: false,
        });
    }
    if let Some(op) = &mem.operation {
        for h in &op.hooks {
            let (health, message) = match &h.state {
                HookState::Succeeded => (Health::Healthy, "hook: finished".to_string()),
                HookState::Failed(m) => (Health::Degraded, format!("hook failed: {m}")),
                HookState::Running => (Health::Progressing, "hook: running".to_string()),
                HookState::Creating | HookState::Replacing => (Health::Progressing, "hook: starting".to_string()),
            };
            if let Some(r) = hook_ref(&h.key, &h.name) {
                resources.push(ResourceReport {
                    r,
                    sync: SyncStatus::Synced,
                    health,
                    message,
                    diff: String::new(),
                    hook: true,
                });
            }
        }
    }
    let errors: Vec<String> = mem.errors.clone();
    let all_synced = resources.iter().filter(|r| !r.hook).all(|r| r.sync == SyncStatus::Synced);
    // Sync status compares the cluster with the bundle, as Argo CD's does; an operation in
    // progress shows in the health (its hooks) and the operation text.
    let sync = if all_synced && errors.is_empty() { SyncStatus::Synced } else { SyncStatus::OutOfSync };
    let health = Health::worst(resources.iter().filter(|r| !r.hook || mem.operation.is_some()).map(|r| r.health));
    notes.extend(errors);
    if !op_text.is_empty() && mem.operation.is_some() {
        notes.insert(0, op_text.clone());
    }
    let report = Report {
        sync,
        health,
        message: notes.join("; "),
        resources,
        observed_request: mem.observed_request,
        synced_at: mem.synced.as_ref().map(|s| s.at).unwrap_or_default(),
        operation: if mem.operation.is_some() { op_text } else { String::new() },
        children: Vec::new(),
        children_left_out: 0,
    };
    Decision { memory: mem, actions, report, wake_at_ms }
}

/// A failed sync in words: when it is retried, or what to do.
fn failure_note(f: &Failed, now_ms: i64) -> String {
    match f.retry_at_ms {
        Some(at) => format!(
            "sync attempt {} failed ({}); retrying in {}s",
            f.attempts,
            f.message,
            ((at - now_ms).max(0) + 999) / 1000
        ),
        None if f.attempts > 1 => {
            format!("sync failed after {} attempts ({}); commit a fix or run `bosun app sync`", f.attempts, f.message)
        }
        None => format!("sync failed: {}; commit a fix or run `bosun app sync`", f.message),
    }
}

fn blocked_by_failure(mem: &Memory) -> bool {
    mem.failed.as_ref().is_some_and(|f| f.retry_at_ms.is_none())
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// The identity of a hook run from its key and (possibly generated) name.
fn hook_ref(key: &str, name: &str) -> Option<ObjectRef> {
    let mut parts = key.splitn(4, '/');
    let (group, kind, namespace, template) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(ObjectRef {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: if name.is_empty() { template.into() } else { name.into() },
    })
}

/// Apply a resource: the payload leaves ignored differences to their owners.
fn apply_action(desired: &Value, ignore: &[IgnoreDifference], live: Option<&Value>) -> Action {
    let o = options::options(desired).unwrap_or_default();
    let object = match live {
        Some(l) if !ignore.is_empty() => crate::diff::strip_ignored(desired, l, ignore),
        _ => desired.clone(),
    };
    Action::Apply { object, replace: o.replace, force: o.force }
}

/// Deletes leftovers that carry the Application's tracking identity and may be pruned (those
/// marked PruneLast only when `last_allowed`).
fn prune_actions(
    target: &Target<'_>,
    leftovers: &[(ObjectRef, Arc<Value>)],
    compared: &[Compared<'_>],
    last_allowed: bool,
    actions: &mut Vec<Action>,
) -> bool {
    let everything_healthy = compared.iter().all(|c| matches!(c.health, Health::Healthy | Health::Suspended));
    let mut waiting = false;
    for (r, l) in leftovers {
        if !tracking::prunable(l, target.app) {
            continue;
        }
        if l["metadata"]["deletionTimestamp"].is_string() {
            waiting = true; // being deleted
            continue;
        }
        let prune_last = target.policy.prune_last || options::options(l).is_ok_and(|o| o.prune_last);
        if prune_last && !(last_allowed && everything_healthy) {
            waiting = true;
            continue;
        }
        actions.push(Action::Delete {
            r: r.clone(),
            uid: l["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            propagation: target.policy.prune_propagation,
            why: DeleteWhy::Prune,
        });
    }
    waiting
}

/// A hook run as it is created: the bundle object with the operation's id and the hook's key,
/// and the Application's tracking label.
fn hook_object(hook: &Value, op: &Operation, target: &Target<'_>) -> Value {
    let mut o = hook.clone();
    let key = hook_key(hook);
    let meta = &mut o["metadata"];
    for field in ["labels", "annotations"] {
        if !meta[field].is_object() {
            meta[field] = json!({});
        }
    }
    meta["labels"][SYNC_ID_LABEL] = json!(op.id);
    meta["labels"][tracking::APP_LABEL] = json!(tracking::label_value(target.app));
    meta["annotations"][HOOK_KEY_ANNOTATION] = json!(key);
    o
}

/// Moves the operation forward as far as the cluster allows. `Some(Ok)` when it succeeded,
/// `Some(Err(why))` when it failed (after its SyncFail hooks), `None` while it runs.
#[allow(clippy::too_many_arguments)]
fn advance(
    op: &mut Operation,
    steps: &[Step<'_>],
    sync_fail: &[&Value],
    compared: &[Compared<'_>],
    leftovers: &[(ObjectRef, Arc<Value>)],
    empty_guard: bool,
    multi_step: bool,
    target: &Target<'_>,
    live: &dyn Live,
    actions: &mut Vec<Action>,
    notes: &mut Vec<String>,
    op_text: &mut String,
) -> Option<Result<(), String>> {
    // CreateNamespace: before anything else, once per operation.
    if target.policy.create_namespace && !op.namespace_done {
        if !target.namespace.is_empty() {
            actions.push(Action::Apply {
                object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target.namespace}}),
                replace: false,
                force: false,
            });
        }
        op.namespace_done = true;
    }
    if op.failure.is_none() {
        while let Some(step) = steps.get(op.step) {
            *op_text = format!("{} wave {}", phase_name(step.phase), step.wave);
            let last = op.step + 1 == steps.len();
            let mut waiting = Vec::new();
            // Hooks of this step.
            for h in &step.hooks {
                match run_hook(op, h, step.phase, target, live, actions) {
                    HookProgress::Done => {}
                    HookProgress::Waiting(why) => waiting.push(why),
                    HookProgress::Failed(why) => {
                        op.failure = Some(why);
                        break;
                    }
                }
            }
            if op.failure.is_some() {
                break;
            }
            // Resources of this step.
            for c in &compared[step.compared.clone()] {
                if !c.in_sync() && !op.applied.contains(&c.r) {
                    actions.push(apply_action(c.desired, target.ignore, c.live.as_deref()));
                    op.applied.insert(c.r.clone());
                    waiting.push(format!("applying {}", c.r));
                    continue;
                }
                if multi_step && !last {
                    match c.health {
                        Health::Healthy | Health::Suspended => {}
                        Health::Degraded => {
                            op.failure = Some(format!("{} is Degraded: {}", c.r, c.message));
                            break;
                        }
                        _ => waiting.push(format!("waiting for {} to be healthy", c.r)),
                    }
                } else if c.live.is_none() {
                    waiting.push(format!("waiting for {} to be created", c.r));
                }
            }
            if op.failure.is_some() {
                break;
            }
            if !waiting.is_empty() {
                *op_text = format!("{}: {}", op_text, waiting.join(", "));
                return None;
            }
            op.step += 1;
        }
    }
    if let Some(failure) = op.failure.clone() {
        // Failing: run the SyncFail hooks, then delete the hooks whose policy says HookFailed.
        *op_text = format!("sync failed ({failure}); running SyncFail hooks");
        let mut waiting = false;
        for h in sync_fail {
            match run_hook(op, h, HookType::SyncFail, target, live, actions) {
                HookProgress::Done | HookProgress::Failed(_) => {}
                HookProgress::Waiting(_) => waiting = true,
            }
        }
        if waiting {
            return None;
        }
        delete_hooks(op, steps, sync_fail, live, HookDeletePolicy::HookFailed, actions);
        return Some(Err(failure));
    }
    // Every step done: prune, then the hooks that go on success.
    *op_text = "pruning".into();
    let prune = target.policy.prune || op.prune;
    if prune && !empty_guard && prune_actions(target, leftovers, compared, true, actions) {
        notes.push("waiting to prune (PruneLast)".into());
        return None;
    }
    if prune && !empty_guard && actions.iter().any(|a| matches!(a, Action::Delete { why: DeleteWhy::Prune, .. })) {
        return None;
    }
    delete_hooks(op, steps, sync_fail, live, HookDeletePolicy::HookSucceeded, actions);
    Some(Ok(()))
}

enum HookProgress {
    Done,
    Waiting(String),
    Failed(String),
}

/// Runs (or follows) one hook of the operation.
fn run_hook(
    op: &mut Operation,
    hook: &Value,
    phase: HookType,
    target: &Target<'_>,
    live: &dyn Live,
    actions: &mut Vec<Action>,
) -> HookProgress {
    let key = hook_key(hook);
    let generated = ObjectRef::is_generated(hook);
    let template = ObjectRef::of_manifest(hook).expect("hooks have a name or generateName");
    // The run of this attempt, as the cache shows it.
    let ours = || {
        live.labeled(&template.group, &template.kind, &template.namespace, SYNC_ID_LABEL, &op.id)
            .into_iter()
            .find(|o| o["metadata"]["annotations"][HOOK_KEY_ANNOTATION].as_str() == Some(key.as_str()))
    };
    let idx = match op.hooks.iter().position(|h| h.key == key) {
        Some(i) => i,
        None => {
            op.hooks.push(HookRun {
                key: key.clone(),
                name: String::new(),
                uid: String::new(),
                state: HookState::Creating,
            });
            op.hooks.len() - 1
        }
    };
    let state = op.hooks[idx].state.clone();
    match state {
        HookState::Creating | HookState::Replacing => {
            if let Some(found) = ours() {
                // Created before a restart: adopt it.
                let h = &mut op.hooks[idx];
                h.name = found["metadata"]["name"].as_str().unwrap_or_default().to_string();
                h.uid = found["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                h.state = HookState::Running;
                return follow(&mut op.hooks[idx], phase, &found);
            }
            if !generated && let Some(old) = live.get(&template) {
                // A previous run under the same name.
                let policies = options::hook_delete_policies(hook).unwrap_or_default();
                if !policies.contains(&HookDeletePolicy::BeforeHookCreation) {
                    // As Argo CD does: applied over the previous run, which is then followed
                    // (a finished Job counts as finished). Adopted through its labels.
                    op.hooks[idx].state = HookState::Creating;
                    actions.push(Action::Apply { object: hook_object(hook, op, target), replace: false, force: false });
                    return HookProgress::Waiting(format!("applying hook {template} over its previous run"));
                }
                op.hooks[idx].state = HookState::Replacing;
                if !old["metadata"]["deletionTimestamp"].is_string() {
                    actions.push(Action::Delete {
                        r: template.clone(),
                        uid: old["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
                        propagation: Propagation::Foreground,
                        why: DeleteWhy::Hook,
                    });
                }
                return HookProgress::Waiting(format!("deleting the previous run of hook {template}"));
            }
            op.hooks[idx].state = HookState::Creating;
            actions.push(Action::Create { key: key.clone(), object: hook_object(hook, op, target) });
            HookProgress::Waiting(format!("starting hook {template}"))
        }
        HookState::Running => {
            let r = hook_ref(&key, &op.hooks[idx].name).expect("a key has four parts");
            match live.get(&r).filter(|l| l["metadata"]["uid"].as_str() == Some(op.hooks[idx].uid.as_str())) {
                Some(l) => follow(&mut op.hooks[idx], phase, &l),
                None => {
                    // Not seen yet (the cache follows the create), or deleted by someone.
                    HookProgress::Waiting(format!("waiting for hook {r}"))
                }
            }
        }
        HookState::Succeeded => HookProgress::Done,
        HookState::Failed(why) => HookProgress::Failed(why),
    }
}

/// A hook run's progress from its live object's health.
fn follow(run: &mut HookRun, phase: HookType, live: &Value) -> HookProgress {
    let r = ObjectRef::of(live).map(|r| r.to_string()).unwrap_or_default();
    match health::assess(live) {
        None => {
            run.state = HookState::Succeeded;
            HookProgress::Done
        }
        Some(a) => match a.health {
            Health::Healthy => {
                run.state = HookState::Succeeded;
                HookProgress::Done
            }
            Health::Degraded => {
                let why = format!("{} hook {r} failed: {}", phase_name(phase), a.message);
                run.state = HookState::Failed(why.clone());
                HookProgress::Failed(why)
            }
            _ => HookProgress::Waiting(format!("waiting for hook {r}")),
        },
    }
}

/// Deletes the finished hooks of the operation whose delete policies include `policy`.
fn delete_hooks(
    op: &Operation,
    steps: &[Step<'_>],
    sync_fail: &[&Value],
    live: &dyn Live,
    policy: HookDeletePolicy,
    actions: &mut Vec<Action>,
) {
    let all: Vec<&&Value> = steps.iter().flat_map(|s| s.hooks.iter()).chain(sync_fail.iter()).collect();
    for hook in all {
        let key = hook_key(hook);
        if !options::hook_delete_policies(hook).unwrap_or_default().contains(&policy) {
            continue;
        }
        let Some(run) = op.hooks.iter().find(|h| h.key == key && !h.uid.is_empty()) else { continue };
        let Some(r) = hook_ref(&key, &run.name) else { continue };
        if live.get(&r).is_some_and(|l| l["metadata"]["uid"].as_str() == Some(run.uid.as_str())) {
            actions.push(Action::Delete {
                r,
                uid: run.uid.clone(),
                propagation: Propagation::Foreground,
                why: DeleteWhy::Hook,
            });
        }
    }
}

/// Whether an Application that left this cluster takes its objects with it: as its deletion
/// says (`bosun app delete`, cascading unless `--cascade=false`) when the notice is about the
/// Application whose objects these are; otherwise — it stopped targeting this cluster, or was
/// deleted so long ago that the notice expired — as its last prune policy says.
pub fn removal_cascades(memory: &Memory, notice: Option<&crate::Removal>) -> bool {
    deciding_notice(memory, notice).map_or(memory.last_policy.prune, |n| n.cascade)
}

/// The deletion notice, when it is about the Application whose objects `memory` records
/// (then it decides their fate).
pub fn deciding_notice<'a>(memory: &Memory, notice: Option<&'a crate::Removal>) -> Option<&'a crate::Removal> {
    notice.filter(|n| !n.app_uid.is_empty() && n.app_uid == memory.app_uid)
}

/// What to do when an Application leaves this cluster: when it cascades (see
/// [`removal_cascades`]), delete what it created (its tracking identity, and not
/// `Delete=false`); else nothing, its objects stay. The objects still to delete.
pub fn cascade(
    app: &str,
    memory: &Memory,
    notice: Option<&crate::Removal>,
    live: &dyn Live,
) -> (Vec<Action>, Vec<ObjectRef>) {
    let mut actions = Vec::new();
    let mut remaining = Vec::new();
    if !removal_cascades(memory, notice) {
        return (actions, remaining);
    }
    for r in crate::plan::prune_candidates(&memory.inventory, &[]) {
        let Some(l) = live.get(&r) else { continue };
        if !tracking::is_tracked_by(&l, app) || !options::options(&l).is_ok_and(|o| o.delete) {
            continue;
        }
        remaining.push(r.clone());
        if l["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        actions.push(Action::Delete {
            r,
            uid: l["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            propagation: memory.last_policy.prune_propagation,
            why: DeleteWhy::Cascade,
        });
    }
    (actions, remaining)
}
