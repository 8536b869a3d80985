//! The agent's view of its cluster: one `kube::runtime` reflector per kind it manages,
//! shared by every Application on the cluster, holding the objects that carry Bosun's
//! tracking label (the resources it applied and the hooks it created).
//!
//! Reconcile passes read this cache, never the API server: the server sees one watch per
//! kind and the agent's writes. A kind's reflector starts when an Application first needs the
//! kind and stops when none does. Every change the watch reports wakes the Application whose
//! label the object carries (and only it); a completed (re-)list wakes the kind's users.
//!
//! The watch trails the agent's own writes by a moment, so what a write returned is kept in
//! an overlay until the watch has caught up with it: a pass right after an apply sees the
//! applied object, not the one before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bosun_core::ObjectRef;
use bosun_core::sync::Live;
use bosun_core::tracking::APP_LABEL;
use futures::StreamExt;
use kube::api::Api;
use kube::core::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::ObjectRef as KubeRef};
use parking_lot::Mutex;
use serde_json::Value;
use tracing::{debug, warn};

use bosun_process::AbortOnDrop;

use crate::watched::Watched;

/// A kind as the cache knows it: group, version, kind.
pub type Gvk = (String, String, String);

/// One reflector: a kind, and the namespace it watches (`""`: all namespaces, or a
/// cluster-scoped kind).
type Slot = (Gvk, String);

/// Where the agent may act: the whole cluster, or only some namespaces (a namespaced
/// install, whose ServiceAccount has Roles there and nothing cluster-wide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Cluster,
    Namespaces(Vec<String>),
}

impl Scope {
    /// The scope `--namespace` asks for: none given is the whole cluster.
    pub fn of(namespaces: &[String]) -> Self {
        let mut v: Vec<String> = namespaces.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        v.sort();
        v.dedup();
        if v.is_empty() { Scope::Cluster } else { Scope::Namespaces(v) }
    }

    /// Why an object of a kind (namespaced or not) in `namespace` is outside the scope, if
    /// it is.
    pub fn refuses(&self, namespaced: bool, namespace: &str) -> Option<String> {
        let Scope::Namespaces(allowed) = self else { return None };
        let list = allowed.join(", ");
        if !namespaced {
            Some(format!(
                "the agent manages only the namespaces {list} (--namespace) and cannot manage cluster-scoped kinds; apply it with a cluster-wide agent or from outside Bosun"
            ))
        } else if !allowed.iter().any(|a| a == namespace) {
            Some(format!(
                "namespace {namespace:?} is not one the agent manages ({list}, set by --namespace); add it there, with a Role for the agent"
            ))
        } else {
            None
        }
    }

    /// The namespaces a kind's watches cover: one watch across the cluster (`""`), or one
    /// per namespace of the scope.
    fn watched(&self, namespaced: bool) -> Vec<String> {
        match self {
            Scope::Namespaces(v) if namespaced => v.clone(),
            _ => vec![String::new()],
        }
    }
}

/// A resolved kind: its API resource and whether it is namespaced.
#[derive(Debug, Clone)]
pub struct Kind {
    pub ar: ApiResource,
    pub namespaced: bool,
}

impl Kind {
    pub fn gvk(&self) -> Gvk {
        (self.ar.group.clone(), self.ar.version.clone(), self.ar.kind.clone())
    }
}

/// What the cache tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An object carrying this tracking label value changed, appeared or went away.
    Object { label: String },
    /// An object owned by one of this Application's workloads (a ReplicaSet, a Pod) changed:
    /// only the tree is concerned, so the wake may wait and coalesce.
    Owned { label: String },
    /// The kind's list completed (the first time, or after a watch expired): its users
    /// can look again.
    Listed { users: Vec<String> },
    /// The kind's watch started listing again (it expired or failed).
    Relisting { kind: String },
}

type OnChange = Arc<dyn Fn(Change) + Send + Sync>;

struct KindCache {
    kind: Kind,
    /// The namespace watched; empty for all.
    namespace: String,
    store: Store<Watched>,
    state: Arc<KindState>,
    /// The watch; aborted when the kind is no longer used.
    _task: AbortOnDrop<()>,
}

/// What the watch task tells the readers of a kind's cache.
#[derive(Default)]
struct KindState {
    ready: AtomicBool,
    /// Bumped when a (re-)list starts; `listed` takes its value when that list completes.
    epoch: AtomicU64,
    listed: AtomicU64,
    /// The highest resourceVersion the watch has delivered.
    seen_rv: AtomicU64,
    /// Why the watch is failing, while it is.
    error: Mutex<Option<String>>,
}

/// What the agent wrote, until the watch shows it.
#[derive(Debug, Clone)]
enum Written {
    Object {
        object: Arc<Value>,
        rv: Option<u64>,
        rv_text: String,
        epoch: u64,
    },
    /// Deleted (gone at once): hidden while the cache still holds this uid.
    Gone {
        uid: String,
    },
}

pub struct Cache {
    client: kube::Client,
    scope: Scope,
    kinds: Arc<Mutex<HashMap<Slot, Arc<KindCache>>>>,
    /// ReplicaSets and Pods owned by something, while a managed kind can own them.
    owned: Mutex<Option<OwnedCache>>,
    users: Arc<Mutex<HashMap<String, HashSet<Gvk>>>>,
    overlay: Arc<Mutex<HashMap<ObjectRef, Written>>>,
    on_change: OnChange,
}

fn rv_of(o: &Value) -> (Option<u64>, String) {
    let text = o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    (text.parse().ok(), text)
}

fn uid_of(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The identity of a watched object of the kind `ar`.
fn ref_of(o: &Watched, ar: &ApiResource) -> ObjectRef {
    ObjectRef {
        group: ar.group.clone(),
        kind: ar.kind.clone(),
        namespace: o.metadata.namespace.clone().unwrap_or_default(),
        name: o.metadata.name.clone().unwrap_or_default(),
    }
}

impl Cache {
    pub fn new(client: kube::Client, scope: Scope, on_change: OnChange) -> Self {
        Self {
            client,
            scope,
            kinds: Default::default(),
            owned: Default::default(),
            users: Default::default(),
            overlay: Default::default(),
            on_change,
        }
    }

    /// Declares the kinds `app` needs (its resources, hooks and leftovers), starting the
    /// reflectors not running yet and stopping those no Application needs any more.
    /// `Ok` once every one of them has listed; else what is awaited, in words.
    pub fn use_kinds(&self, app: &str, kinds: &[Kind]) -> Result<(), String> {
        // One critical section (users, then kinds: the only order they are taken in), so a
        // kind another Application just started is never stopped in between.
        let mut users = self.users.lock();
        let needed: HashSet<Gvk> = kinds.iter().map(Kind::gvk).collect();
        // Most passes need what the last one did: then nothing can have become unused.
        let changed = users.get(app) != Some(&needed);
        if changed {
            users.insert(app.to_string(), needed);
        }
        let mut running = self.kinds.lock();
        let mut waiting = Vec::new();
        for k in kinds {
            for namespace in self.scope.watched(k.namespaced) {
                let kc =
                    running.entry((k.gvk(), namespace.clone())).or_insert_with(|| self.start(k.clone(), namespace));
                if !kc.state.ready.load(Ordering::Acquire) {
                    let what = kc.describe();
                    match kc.state.error.lock().as_ref() {
                        Some(e) => waiting.push(format!("watching {what} fails: {e}")),
                        None => waiting.push(format!("listing {what}")),
                    }
                }
            }
        }
        if changed {
            Self::stop_unused(&users, &mut running);
            drop(running);
            self.watch_owned(&users);
        }
        if waiting.is_empty() { Ok(()) } else { Err(format!("waiting for the cache: {}", waiting.join(", "))) }
    }

    /// `app` needs no kinds any more (it left the cluster and its objects are gone).
    pub fn release(&self, app: &str) {
        let mut users = self.users.lock();
        users.remove(app);
        Self::stop_unused(&users, &mut self.kinds.lock());
        self.watch_owned(&users);
    }

    /// Starts the watches of owned objects when some Application manages a kind that owns
    /// them, and stops them when none does.
    fn watch_owned(&self, users: &HashMap<String, HashSet<Gvk>>) {
        let wanted = users.values().flatten().any(|(g, _, k)| bosun_core::tree::owns_children(g, k));
        let mut owned = self.owned.lock();
        match (wanted, owned.is_some()) {
            (true, false) => {
                *owned = Some(OwnedCache::start(
                    &self.client,
                    &self.scope,
                    Arc::downgrade(&self.kinds),
                    self.on_change.clone(),
                ))
            }
            (false, true) => {
                debug!("no application manages a workload; the watches of ReplicaSets and Pods stop");
                *owned = None;
            }
            _ => {}
        }
    }

    fn stop_unused(users: &HashMap<String, HashSet<Gvk>>, running: &mut HashMap<Slot, Arc<KindCache>>) {
        let used: HashSet<&Gvk> = users.values().flatten().collect();
        running.retain(|(gvk, _), kc| {
            let keep = used.contains(gvk);
            if !keep {
                debug!(kind = %kc.kind.ar.kind, version = %kc.kind.ar.version, "no application uses this kind; its watch stops");
            }
            keep
        });
    }

    /// Kinds whose watch has not completed its first list (as `apiVersion/Kind`).
    pub fn unsynced(&self) -> Vec<String> {
        let kinds = self.kinds.lock();
        let mut v: Vec<String> =
            kinds.values().filter(|kc| !kc.state.ready.load(Ordering::Acquire)).map(|kc| kc.describe()).collect();
        v.sort();
        v
    }

    /// Kinds with a running reflector.
    pub fn running(&self) -> Vec<Gvk> {
        let mut v: Vec<Gvk> = self.kinds.lock().keys().map(|(gvk, _)| gvk.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    fn start(&self, kind: Kind, namespace: String) -> Arc<KindCache> {
        debug!(kind = %kind.ar.kind, version = %kind.ar.version, namespace = %namespace, "watching managed objects of a kind");
        let writer = reflector::store::Writer::new(kind.ar.clone());
        let store = writer.as_reader();
        let api = scoped_api(&self.client, &kind.ar, &namespace);
        let ar = kind.ar.clone();
        let stream = watcher::watcher(api, watcher::Config::default().labels(APP_LABEL))
            .default_backoff()
            .modify(move |o| o.fill_type(&ar));
        let stream = reflector::reflector(writer, stream);
        let state = Arc::new(KindState::default());
        let on_change = self.on_change.clone();
        let overlay = self.overlay.clone();
        let ar = kind.ar.clone();
        let watched = namespace.clone();
        let users = self.users_of_fn(kind.gvk());
        let st = state.clone();
        let reader = store.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => {
                        if st.epoch.fetch_add(1, Ordering::AcqRel) > 0 {
                            on_change(Change::Relisting { kind: ar.kind.clone() });
                        }
                    }
                    Ok(Event::InitApply(o)) => st.saw(&o),
                    Ok(Event::InitDone) => {
                        let listed = st.epoch.load(Ordering::Acquire);
                        st.listed.store(listed, Ordering::Release);
                        st.ready.store(true, Ordering::Release);
                        *st.error.lock() = None;
                        overlay.lock().retain(|r, w| {
                            // What was written before this list started is in it.
                            !(r.group == ar.group
                                && r.kind == ar.kind
                                && (watched.is_empty() || r.namespace == watched)
                                && matches!(w, Written::Object { epoch, .. } if *epoch < listed))
                        });
                        on_change(Change::Listed { users: users() });
                    }
                    Ok(Event::Apply(o)) | Ok(Event::Delete(o)) => {
                        st.saw(&o);
                        // The reflector has applied the event: is the object still there?
                        let present = reader.get(&KubeRef::from_obj_with(&o, ar.clone())).is_some();
                        let r = ref_of(&o, &ar);
                        let rv = o.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
                        let uid = o.metadata.uid.clone().unwrap_or_default();
                        let mut ov = overlay.lock();
                        let written = ov.get(&r);
                        // The very version the agent wrote: the pass that wrote it already
                        // judged it, so nobody is woken for it.
                        let echo = matches!(written, Some(Written::Object { rv_text, .. })
                            if present && o.metadata.resource_version.as_deref() == Some(rv_text.as_str()));
                        let caught_up = match written {
                            Some(Written::Object { rv: Some(w), .. }) => rv.is_some_and(|rv| rv >= *w),
                            Some(Written::Object { rv_text, .. }) => {
                                o.metadata.resource_version.as_deref() == Some(rv_text.as_str())
                            }
                            Some(Written::Gone { uid: gone }) => *gone != uid || !present,
                            None => false,
                        };
                        if caught_up {
                            ov.remove(&r);
                        }
                        drop(ov);
                        if !echo && let Some(label) = o.metadata.labels.as_ref().and_then(|l| l.get(APP_LABEL)) {
                            on_change(Change::Object { label: label.clone() });
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        let mut slot = st.error.lock();
                        if slot.as_deref() != Some(msg.as_str()) {
                            warn!(kind = %ar.kind, version = %ar.version, error = %msg, "watching managed objects failed; retrying");
                            *slot = Some(msg);
                        }
                    }
                }
            }
        });
        Arc::new(KindCache { kind, namespace, store, state, _task: AbortOnDrop(task) })
    }

    /// A function listing the Applications that use a kind, for the kind's watch task
    /// (which holds the users map weakly: it must not keep the cache alive).
    fn users_of_fn(&self, gvk: Gvk) -> impl Fn() -> Vec<String> + Send + 'static {
        let users = Arc::downgrade(&self.users);
        move || match users.upgrade() {
            Some(u) => u.lock().iter().filter(|(_, k)| k.contains(&gvk)).map(|(a, _)| a.clone()).collect(),
            None => Vec::new(),
        }
    }

    /// The reflector holding objects of a kind in `namespace` (at `version` when one runs
    /// at it, else at the first version running).
    fn kind_for(&self, group: &str, kind: &str, version: Option<&str>, namespace: &str) -> Option<Arc<KindCache>> {
        let kinds = self.kinds.lock();
        // The first slot (in slot order) at the wanted version, else the first slot of the kind;
        // looked up once per object per pass, so without building a list.
        type Best<'a> = Option<(&'a Slot, &'a Arc<KindCache>)>;
        let (mut at_version, mut first): (Best<'_>, Best<'_>) = (None, None);
        for (slot, kc) in kinds.iter() {
            let ((g, v, k), ns) = slot;
            if g != group || k != kind || !(ns.is_empty() || ns == namespace) {
                continue;
            }
            let earlier = |best: Best<'_>| best.is_none_or(|(b, _)| slot < b);
            if Some(v.as_str()) == version && earlier(at_version) {
                at_version = Some((slot, kc));
            }
            if earlier(first) {
                first = Some((slot, kc));
            }
        }
        at_version.or(first).map(|(_, kc)| kc.clone())
    }

    /// The live object, as the cache (and the agent's latest writes) show it.
    pub fn get(&self, r: &ObjectRef, version: Option<&str>) -> Option<Arc<Value>> {
        let kc = self.kind_for(&r.group, &r.kind, version, &r.namespace);
        let cached = kc.as_ref().and_then(|kc| kc.store.get(&key(r, &kc.kind)).map(|o| o.json.clone()));
        match self.overlay.lock().get(r) {
            None => cached,
            Some(Written::Object { object, rv, rv_text, epoch }) => {
                let authoritative = kc.as_ref().is_some_and(|kc| {
                    kc.state.listed.load(Ordering::Acquire) > *epoch
                        || rv.is_some_and(|rv| kc.state.seen_rv.load(Ordering::Acquire) >= rv)
                        || cached.as_ref().is_some_and(|c| rv_of(c).1 == *rv_text)
                });
                if authoritative { cached } else { Some(object.clone()) }
            }
            Some(Written::Gone { uid }) => cached.filter(|c| uid_of(c) != uid),
        }
    }

    /// Objects of a kind in a namespace carrying `label=value`.
    pub fn labeled(
        &self,
        group: &str,
        kind: &str,
        namespace: &str,
        label: &str,
        value: &str,
        version: Option<&str>,
    ) -> Vec<Arc<Value>> {
        let Some(kc) = self.kind_for(group, kind, version, namespace) else { return Vec::new() };
        let mut out: BTreeMap<ObjectRef, Arc<Value>> = BTreeMap::new();
        for o in kc.store.state() {
            let r = ref_of(&o, &kc.kind.ar);
            if r.namespace == namespace
                && o.metadata.labels.as_ref().and_then(|l| l.get(label)).is_some_and(|v| v == value)
                && let Some(v) = self.get(&r, version)
            {
                out.insert(r, v);
            }
        }
        for (r, w) in self.overlay.lock().iter() {
            if let Written::Object { object, .. } = w
                && r.group == group
                && r.kind == kind
                && r.namespace == namespace
                && object["metadata"]["labels"][label].as_str() == Some(value)
            {
                out.entry(r.clone()).or_insert_with(|| object.clone());
            }
        }
        out.into_values().collect()
    }

    /// Records what a write returned (an apply, a create, a delete that is pending).
    pub fn wrote(&self, object: Arc<Value>) {
        let Some(r) = ObjectRef::of(&object) else { return };
        let epoch = self
            .kind_for(&r.group, &r.kind, None, &r.namespace)
            .map(|kc| kc.state.epoch.load(Ordering::Acquire))
            .unwrap_or(0);
        let (rv, rv_text) = rv_of(&object);
        self.overlay.lock().insert(r, Written::Object { object, rv, rv_text, epoch });
    }

    /// Records that a delete removed the object at once.
    pub fn deleted(&self, r: &ObjectRef, uid: &str) {
        self.overlay.lock().insert(r.clone(), Written::Gone { uid: uid.to_string() });
    }
}

impl KindCache {
    /// `apiVersion/Kind`, with the namespace when the watch covers one.
    fn describe(&self) -> String {
        let what = format!("{}/{}", self.kind.ar.api_version, self.kind.ar.kind);
        if self.namespace.is_empty() { what } else { format!("{what} in {}", self.namespace) }
    }
}

impl KindState {
    fn saw(&self, o: &Watched) {
        if let Some(rv) = o.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            self.seen_rv.fetch_max(rv, Ordering::AcqRel);
        }
    }
}

/// Kinds the cache keeps when something owns them (for the resource tree): ReplicaSets and
/// Pods, stripped to what health and the tree need.
const OWNED_KINDS: [(&str, &str, &str); 2] = [("apps", "v1", "ReplicaSet"), ("", "v1", "Pod")];

/// Owned objects by the uid of their controller owner: shared with the reflectors' stores
/// (no copy).
type ByOwner = HashMap<String, Vec<Arc<Watched>>>;

/// Reflectors of owned objects, with an index by controller owner uid.
struct OwnedCache {
    stores: Vec<Store<Watched>>,
    /// Bumped on every event; the index is rebuilt when it lags.
    generation: Arc<AtomicU64>,
    /// (generation it was built at, owner uid → objects).
    index: Mutex<(u64, ByOwner)>,
    _tasks: Vec<AbortOnDrop<()>>,
}

/// The controller owner of an object: (kind, name, uid).
fn controller_of(meta: &kube::api::ObjectMeta) -> Option<(&str, &str, &str)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.uid.as_str()))
}

/// Keeps what the tree and health read: identity, owner, deletion, the few spec fields
/// health looks at, and status (and `apiVersion` and `kind`, filled in from `ar` where a list
/// left them out).
fn strip(o: &mut Watched, ar: &ApiResource) {
    o.metadata.labels = None;
    o.fill_type(ar);
    let json = o.json_mut();
    if let Some(m) = json.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|k, _| !matches!(k.as_str(), "managedFields" | "annotations" | "labels" | "finalizers"));
    }
    if let Some(spec) = json.get_mut("spec").and_then(Value::as_object_mut) {
        spec.retain(|k, _| matches!(k.as_str(), "replicas" | "restartPolicy"));
    }
}

impl OwnedCache {
    fn start(
        client: &kube::Client,
        scope: &Scope,
        kinds: std::sync::Weak<Mutex<HashMap<Slot, Arc<KindCache>>>>,
        on_change: OnChange,
    ) -> Self {
        debug!("watching ReplicaSets and Pods owned by managed workloads");
        let generation = Arc::new(AtomicU64::new(0));
        let mut stores = Vec::new();
        let mut tasks = Vec::new();
        // ReplicaSets by the namespace their watch covers ("" for all).
        let rs_stores: Arc<Mutex<HashMap<String, Store<Watched>>>> = Default::default();
        let watches =
            OWNED_KINDS.iter().flat_map(|k| scope.watched(true).into_iter().map(move |namespace| (*k, namespace)));
        for ((group, version, kind), watched) in watches {
            let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
            let plural = format!("{}s", kind.to_lowercase());
            let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
            let writer = reflector::store::Writer::new(ar.clone());
            let store = writer.as_reader();
            if kind == "ReplicaSet" {
                rs_stores.lock().insert(watched.clone(), store.clone());
            }
            let api = scoped_api(client, &ar, &watched);
            // Small list pages: the first list of a big cluster's Pods is never whole in memory.
            let stripped = ar.clone();
            let stream = watcher::watcher(api, watcher::Config::default().page_size(100))
                .default_backoff()
                .modify(move |o| strip(o, &stripped))
                // Only what has a controller owner can be in a tree.
                .filter(|e| {
                    std::future::ready(match e {
                        Ok(Event::Apply(o)) | Ok(Event::InitApply(o)) => controller_of(&o.metadata).is_some(),
                        _ => true,
                    })
                });
            let stream = reflector::reflector(writer, stream);
            let generation = generation.clone();
            let kinds = kinds.clone();
            let on_change = on_change.clone();
            let rs_stores = rs_stores.clone();
            let task = tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    let o = match event {
                        Ok(Event::Apply(o)) | Ok(Event::Delete(o)) => o,
                        Ok(Event::InitDone) => {
                            generation.fetch_add(1, Ordering::AcqRel);
                            continue;
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            debug!(kind, error = %e, "watching owned objects failed; retrying");
                            continue;
                        }
                    };
                    generation.fetch_add(1, Ordering::AcqRel);
                    // Wake the Application that manages the owner (a Pod's ReplicaSet's
                    // Deployment, or its Job, StatefulSet or DaemonSet).
                    let Some((mut owner_kind, mut owner_name, _)) = controller_of(&o.metadata) else { continue };
                    let namespace = o.metadata.namespace.clone().unwrap_or_default();
                    let rs_owner;
                    if owner_kind == "ReplicaSet" {
                        let stores = rs_stores.lock();
                        let rs = stores.get(&namespace).or_else(|| stores.get("")).and_then(|s| {
                            s.get(
                                &KubeRef::new_with(
                                    owner_name,
                                    ApiResource::from_gvk_with_plural(
                                        &kube::api::GroupVersionKind::gvk("apps", "v1", "ReplicaSet"),
                                        "replicasets",
                                    ),
                                )
                                .within(&namespace),
                            )
                        });
                        drop(stores);
                        let Some(rs) = rs else { continue };
                        let Some((k, n, _)) = controller_of(&rs.metadata) else { continue };
                        rs_owner = (k.to_string(), n.to_string());
                        (owner_kind, owner_name) = (rs_owner.0.as_str(), rs_owner.1.as_str());
                    }
                    let group = if owner_kind == "Job" { "batch" } else { "apps" };
                    let Some(kinds) = kinds.upgrade() else { return };
                    let label = {
                        let kinds = kinds.lock();
                        let of_owner = |(((g, _, k), ns), _): &(&Slot, &Arc<KindCache>)| {
                            g == group && k == owner_kind && (ns.is_empty() || *ns == namespace)
                        };
                        kinds.iter().filter(of_owner).find_map(|(_, kc)| {
                            let r = ObjectRef {
                                group: group.into(),
                                kind: owner_kind.into(),
                                namespace: namespace.clone(),
                                name: owner_name.into(),
                            };
                            let found = kc.store.get(&key(&r, &kc.kind))?;
                            found.metadata.labels.as_ref()?.get(APP_LABEL).cloned()
                        })
                    };
                    if let Some(label) = label {
                        on_change(Change::Owned { label });
                    }
                }
            });
            stores.push(store);
            tasks.push(AbortOnDrop(task));
        }
        Self { stores, generation, index: Mutex::new((u64::MAX, HashMap::new())), _tasks: tasks }
    }

    fn owned_by(&self, namespace: &str, uid: &str) -> Vec<Arc<Value>> {
        let now = self.generation.load(Ordering::Acquire);
        let mut index = self.index.lock();
        if index.0 != now {
            let mut by_owner = ByOwner::new();
            for store in &self.stores {
                for o in store.state() {
                    if let Some((_, _, owner)) = controller_of(&o.metadata) {
                        by_owner.entry(owner.to_string()).or_default().push(o.clone());
                    }
                }
            }
            *index = (now, by_owner);
        }
        index
            .1
            .get(uid)
            .map(|v| {
                v.iter()
                    .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
                    .map(|o| o.json.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl bosun_core::tree::Owned for Cache {
    fn owned_by(&self, namespace: &str, uid: &str) -> Vec<Arc<Value>> {
        self.owned.lock().as_ref().map(|o| o.owned_by(namespace, uid)).unwrap_or_default()
    }
}

/// The API a reflector watches: across the cluster (`watched` empty) or in one namespace.
fn scoped_api(client: &kube::Client, ar: &ApiResource, watched: &str) -> Api<Watched> {
    crate::kube::dynamic_api(client, ar, (!watched.is_empty()).then_some(watched))
}

fn key(r: &ObjectRef, kind: &Kind) -> KubeRef<Watched> {
    let k = KubeRef::new_with(&r.name, kind.ar.clone());
    if kind.namespaced { k.within(&r.namespace) } else { k }
}

/// The cache as one Application's pass sees it: objects looked up at the versions its
/// bundle uses.
pub struct View<'a> {
    pub cache: &'a Cache,
    /// (group, kind) → the version the bundle uses.
    pub versions: &'a HashMap<(String, String), String>,
}

impl View<'_> {
    fn version(&self, group: &str, kind: &str) -> Option<&str> {
        // A bundle uses a handful of kinds: a scan, with no key built per lookup.
        self.versions.iter().find(|((g, k), _)| g == group && k == kind).map(|(_, v)| v.as_str())
    }
}

impl Live for View<'_> {
    fn get(&self, r: &ObjectRef) -> Option<Arc<Value>> {
        self.cache.get(r, self.version(&r.group, &r.kind))
    }

    fn labeled(&self, group: &str, kind: &str, namespace: &str, label: &str, value: &str) -> Vec<Arc<Value>> {
        self.cache.labeled(group, kind, namespace, label, value, self.version(group, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_scope_refuses_what_its_roles_cannot_reach() {
        let scope = Scope::of(&["team-b".into(), " apps".into(), "apps".into(), String::new()]);
        assert_eq!(scope, Scope::Namespaces(vec!["apps".into(), "team-b".into()]));
        for (namespaced, namespace, refused) in
            [(true, "apps", false), (true, "team-b", false), (true, "default", true), (false, "", true)]
        {
            assert_eq!(scope.refuses(namespaced, namespace).is_some(), refused, "{namespaced} {namespace}");
        }
        assert!(scope.refuses(false, "").unwrap().contains("cluster-scoped"));
        assert!(scope.refuses(true, "default").unwrap().contains("\"default\""));
        assert_eq!(scope.watched(true), vec!["apps".to_string(), "team-b".to_string()]);
        assert_eq!(scope.watched(false), vec![String::new()], "cluster-scoped kinds are never watched per namespace");

        let cluster = Scope::of(&[]);
        assert_eq!(cluster, Scope::Cluster);
        assert!(cluster.refuses(false, "").is_none() && cluster.refuses(true, "anything").is_none());
        assert_eq!(cluster.watched(true), vec![String::new()]);
    }
}
