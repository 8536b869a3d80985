//! The object store of one simulated cluster: bookkeeping (uid, resourceVersion, generation,
//! finalizers), server-side apply, patches, deletion with garbage collection, and the event
//! history that watches replay.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::defaults::{self, Allocator};
use crate::error::{ApiError, ApiResult};
use crate::fieldset::{self, Managed};
use crate::resources::{self, Registry, ResKey, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub res: ResKey,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The previous state (for MODIFIED), so selector-filtered watches can tell an object
    /// that left their selection.
    pub old: Option<Arc<Value>>,
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub force: bool,
}

/// Options of a delete request.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Foreground`, `Background` or `Orphan`.
    pub propagation: Option<String>,
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// A page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

type ObjKey = (String, String);

/// The events a watch replays, and the receiver of the events after them.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Highest resourceVersion no longer in `history`: watches from before it get 410.
    compacted_rv: u64,
    alloc: Allocator,
}

/// The store of one simulated cluster.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

pub(crate) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn name_of(obj: &Value) -> &str {
    meta(obj)["name"].as_str().unwrap_or_default()
}

fn ns_of(obj: &Value) -> &str {
    meta(obj)["namespace"].as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Random suffix as `generateName` and the controllers use it.
pub(crate) fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes().iter().take(n).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn valid_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_name(rt: &ResourceType, name: &str) -> bool {
    if rt.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments: anything but "/", "%", "." and "..".
        return !name.is_empty() && !name.contains(['/', '%']) && name != "." && name != "..";
    }
    valid_dns_subdomain(name)
}

/// Strips what a client may not set: server-managed metadata.
fn strip_server_fields(obj: &mut Value) {
    let m = meta_mut(obj);
    for f in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(f);
    }
}

/// Whether two JSON objects have the same keys and values, the `ignored` keys aside.
/// Compares in place; nothing is cloned.
fn eq_except(a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>, ignored: &[&str]) -> bool {
    let kept = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !ignored.contains(&k.as_str())).count();
    kept(a) == kept(b) && a.iter().filter(|(k, _)| !ignored.contains(&k.as_str())).all(|(k, v)| b.get(k) == Some(v))
}

/// Whether two versions of an object are equal but for what every write changes on its own
/// (`resourceVersion`, the times of `managedFields` entries): such a write is a no-op.
fn same_but_times(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    eq_except(a, b, &["metadata"])
        && match (a.get("metadata").and_then(Value::as_object), b.get("metadata").and_then(Value::as_object)) {
            (Some(am), Some(bm)) => {
                eq_except(am, bm, &["resourceVersion", "managedFields"])
                    && same_managed_fields(am.get("managedFields"), bm.get("managedFields"))
            }
            _ => a.get("metadata") == b.get("metadata"),
        }
}

fn same_managed_fields(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a.and_then(Value::as_array), b.and_then(Value::as_array)) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x.as_object(), y.as_object()) {
                    (Some(x), Some(y)) => eq_except(x, y, &["time"]),
                    _ => x == y,
                })
        }
        _ => a == b,
    }
}

/// Whether two versions differ outside `metadata` and `status` (a new generation).
fn spec_changed(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => !eq_except(a, b, &["metadata", "status"]),
        _ => a != b,
    }
}

/// Kind-specific checks a real API server makes (a small subset, documented in README).
fn validate(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let name = name_of(obj);
    let mut causes = Vec::new();
    if !valid_name(rt, name) {
        causes.push((
            "metadata.name".to_string(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    if let Some(labels) = meta(obj)["labels"].as_object() {
        for (k, v) in labels {
            if !v.is_string() {
                causes.push((format!("metadata.labels[{k}]"), "Invalid value: label values must be strings".into()));
            }
        }
    }
    let workload = matches!(rt.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet");
    if workload && rt.builtin {
        let spec = &obj["spec"];
        let selector = LabelSelector::from_object(&spec["selector"]);
        if spec["selector"].is_null() || selector.is_empty() {
            causes.push(("spec.selector".into(), "Required value".into()));
        } else if !selector.matches(&spec["template"]["metadata"]["labels"]) {
            causes.push((
                "spec.template.metadata.labels".into(),
                "Invalid value: `selector` does not match template `labels`".into(),
            ));
        }
    }
    let pod_spec = match rt.kind.as_str() {
        "Pod" => Some(&obj["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(&obj["spec"]["template"]["spec"]),
        _ => None,
    };
    if let (Some(ps), true) = (pod_spec, rt.builtin) {
        let path = if rt.kind == "Pod" { "spec.containers" } else { "spec.template.spec.containers" };
        match ps["containers"].as_array() {
            Some(cs) if !cs.is_empty() => {
                for (i, c) in cs.iter().enumerate() {
                    if c["name"].as_str().is_none_or(str::is_empty) {
                        causes.push((format!("{path}[{i}].name"), "Required value".into()));
                    }
                    if c["image"].as_str().is_none_or(str::is_empty) {
                        causes.push((format!("{path}[{i}].image"), "Required value".into()));
                    }
                }
            }
            _ => causes.push((path.into(), "Required value".into())),
        }
    }
    if rt.kind == "ConfigMap" {
        for field in ["data"] {
            if let Some(m) = obj[field].as_object() {
                for (k, v) in m {
                    if !v.is_string() {
                        causes.push((format!("{field}[{k}]"), "Invalid value: must be a string".into()));
                    }
                }
            }
        }
    }
    if rt.kind == "Service" && rt.builtin {
        for (i, p) in obj["spec"]["ports"].as_array().into_iter().flatten().enumerate() {
            if !p["port"].is_u64() {
                causes.push((format!("spec.ports[{i}].port"), "Required value".into()));
            }
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(&rt.kind, name, causes)) }
}

/// Fields a real server refuses to change once set.
fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    if !rt.builtin {
        return Ok(());
    }
    let fields: &[&str] = match rt.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => &["selector"],
        "Job" => &["selector", "template"],
        _ => &[],
    };
    for f in fields {
        if old["spec"][f] != new["spec"][f] {
            return Err(ApiError::invalid(
                &rt.kind,
                name_of(new),
                vec![(format!("spec.{f}"), "Invalid value: field is immutable".into())],
            ));
        }
    }
    if rt.kind == "Service" {
        let (o, n) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
        if o.is_string() && n.is_string() && o != n && n != "" {
            return Err(ApiError::invalid(
                "Service",
                name_of(new),
                vec![("spec.clusterIPs[0]".into(), "Invalid value: field is immutable".into())],
            ));
        }
    }
    if (rt.kind == "Secret" || rt.kind == "ConfigMap")
        && old["immutable"] == json!(true)
        && (old["data"] != new["data"] || old["binaryData"] != new["binaryData"])
    {
        return Err(ApiError::invalid(
            &rt.kind,
            name_of(new),
            vec![("data".into(), "Forbidden: field is immutable when `immutable` is set".into())],
        ));
    }
    Ok(())
}

/// Kind-specific normalisation on every write (Secret `stringData` folds into `data`).
fn normalize(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    if let Some(shape) = rt.shape() {
        crate::canonical::canonicalize(obj, Some(shape));
    }
    if rt.kind == "Secret" && rt.builtin {
        if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
            if !obj["data"].is_object() {
                obj["data"] = json!({});
            }
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
            }
        }
        if let Some(m) = obj["data"].as_object() {
            for (k, v) in m {
                let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                if !ok {
                    return Err(ApiError::bad_request(format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
                    )));
                }
            }
        }
    }
    Ok(())
}

impl Store {
    /// A store keeping `history_cap` events for resuming watches, fanning events out through
    /// a buffer of `watch_buffer` (a watch that falls further behind gets 410 and re-lists).
    pub fn new(history_cap: usize, watch_buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(watch_buffer.max(16));
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                registry: Registry::default(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap: history_cap.max(16),
                compacted_rv: 0,
                alloc: Allocator::default(),
            }),
            tx,
        }
    }

    /// Resolves a REST resource (group, version, plural).
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.inner.lock().registry.lookup(group, version, plural).cloned()
    }

    /// Resolves a kind (apiVersion, kind).
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.inner.lock().registry.by_kind(api_version, kind).cloned()
    }

    pub fn registry(&self) -> Registry {
        self.inner.lock().registry.clone()
    }

    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    pub fn object_count(&self) -> usize {
        self.inner.lock().objects.values().map(BTreeMap::len).sum()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// The events after `rv` and a receiver for later ones, or 410 if `rv` was compacted.
    pub fn watch_from(&self, rv: u64) -> ApiResult<WatchStart> {
        let inner = self.inner.lock();
        if rv < inner.compacted_rv {
            return Err(ApiError::gone(format!("too old resource version: {rv} ({})", inner.compacted_rv + 1)));
        }
        let rx = self.tx.subscribe();
        let start = inner.history.partition_point(|e| e.rv <= rv);
        Ok((inner.history.iter().skip(start).cloned().collect(), rx))
    }

    /// Drops the whole event history: watches resuming from any earlier version get 410.
    pub fn compact(&self) {
        let mut inner = self.inner.lock();
        inner.history.clear();
        inner.compacted_rv = inner.rv;
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Arc<Value>> {
        let inner = self.inner.lock();
        inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects of `rt` (all namespaces when `ns` is `None`), in key order.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<ListPage> {
        let inner = self.inner.lock();
        let start: Option<ObjKey> = match continue_token {
            Some(t) if !t.is_empty() => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
                let rv = raw["rv"].as_u64().unwrap_or_default();
                if rv < inner.compacted_rv {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                Some((raw["ns"].as_str().unwrap_or_default().into(), raw["name"].as_str().unwrap_or_default().into()))
            }
            _ => None,
        };
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        if let Some(map) = inner.objects.get(&rt.key()) {
            let iter = map.iter().filter(|((ons, _), _)| ns.is_none_or(|n| n == ons));
            let iter = iter.filter(|(k, _)| start.as_ref().is_none_or(|s| *k > s));
            let mut matching = iter.filter(|(_, o)| labels.matches(&o["metadata"]["labels"]) && fields.matches(o));
            for (_, o) in matching.by_ref() {
                items.push(o.clone());
                if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                    break;
                }
            }
            let rest = matching.count();
            if rest > 0 {
                let last = items.last().map(|o| (ns_of(o).to_string(), name_of(o).to_string())).unwrap_or_default();
                let token = json!({"rv": inner.rv, "ns": last.0, "name": last.1});
                continue_token = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string()));
                remaining = Some(rest);
            }
        }
        Ok(ListPage { items, resource_version: inner.rv, continue_token, remaining })
    }

    /// POST: creates an object.
    pub fn create(&self, rt: &ResourceType, ns: Option<&str>, body: Value, opts: &WriteOpts) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        let mut obj = inner.admit_new(rt, ns, body)?;
        let mut managed = Managed::default();
        let empty = json!({"apiVersion": rt.api_version()});
        managed.update(rt, &empty, &obj, &opts.manager, None, &now());
        managed.write_into(&mut obj);
        inner.insert_new(rt, obj, opts.dry_run, &self.tx)
    }

    /// PUT: replaces an object (optimistic concurrency on `metadata.resourceVersion`).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        check_body_identity(rt, ns, name, &body)?;
        let old = inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        check_precondition(rt, name, &old, &body)?;
        inner.write_update(rt, &old, body, None, sub, opts, &self.tx)
    }

    /// PATCH with a JSON, merge or strategic-merge patch.
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        opts: &WriteOpts,
        apply_patch: impl FnOnce(&ResourceType, &Value) -> ApiResult<Value>,
    ) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        let old = inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let new = apply_patch(rt, &old)?;
        check_precondition(rt, name, &old, &new)?;
        check_body_identity(rt, ns, name, &new)?;
        inner.write_update(rt, &old, new, None, sub, opts, &self.tx)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply.
    pub fn apply(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        mut applied: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        if opts.manager.is_empty() {
            return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml requests must supply fieldManager"));
        }
        if applied["apiVersion"].as_str().is_none_or(str::is_empty)
            || applied["kind"].as_str().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request("apiVersion and kind must be set in an applied configuration"));
        }
        check_body_identity(rt, ns, name, &applied)?;
        if rt.namespaced {
            meta_mut(&mut applied).remove("namespace");
        }
        strip_server_fields(&mut applied);
        meta_mut(&mut applied).remove("managedFields");
        if sub != Some("status") && rt.has_status {
            applied.as_object_mut().map(|m| m.remove("status"));
        }
        let mut inner = self.inner.lock();
        let now = now();
        match inner.get(rt, ns, name) {
            None => {
                let mut seed = applied.clone();
                meta_mut(&mut seed).insert("name".into(), json!(name));
                let mut obj = inner.admit_new(rt, ns, seed)?;
                let mut managed = Managed::default();
                // `obj` already holds the applied content as admitted (defaults, normalisation);
                // applying onto an empty object only records what the manager owns.
                let identity = json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"]});
                managed
                    .apply(rt, &identity, &applied, &opts.manager, opts.force, &now)
                    .map_err(|c| conflict_error(rt, name, &c))?;
                managed.write_into(&mut obj);
                inner.insert_new(rt, obj, opts.dry_run, &self.tx)
            }
            Some(old) => {
                let mut managed = Managed::of(&old);
                let merged = managed
                    .apply(rt, &old, &applied, &opts.manager, opts.force, &now)
                    .map_err(|c| conflict_error(rt, name, &c))?;
                inner.write_update(rt, &old, merged, Some(managed), sub, opts, &self.tx)
            }
        }
    }

    /// DELETE: removes an object now, or marks it for deletion while finalizers remain.
    pub fn delete(&self, rt: &ResourceType, ns: Option<&str>, name: &str, opts: &DeleteOpts) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        let old = inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(uid) = &opts.precondition_uid
            && old["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && old["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if opts.dry_run {
            return Ok(old);
        }
        inner.delete_object(rt, &old, opts.propagation.as_deref(), &self.tx)
    }

    /// One pass of the garbage collector (ownerReferences). Returns whether it did work.
    pub fn collect_garbage(&self) -> bool {
        self.inner.lock().collect_garbage(&self.tx)
    }

    /// One step of terminating namespace `name`. Returns whether the namespace is gone.
    pub fn terminate_namespace(&self, name: &str) -> bool {
        self.inner.lock().terminate_namespace(name, &self.tx)
    }

    /// Writes `status` of an object on behalf of a controller (manager `kube-controller-manager`).
    pub fn set_status(&self, rt: &ResourceType, ns: Option<&str>, name: &str, status: Value) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        let old = inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if old.get("status") == Some(&status) {
            // A controller writing what is already there: no write, no event.
            return Ok(old);
        }
        let mut new = (*old).clone();
        new["status"] = status;
        let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
        inner.write_update(rt, &old, new, None, Some("status"), &opts, &self.tx)
    }

    /// Changes an object as a controller would (a closure over the current state).
    pub fn modify(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> ApiResult<Arc<Value>> {
        let mut inner = self.inner.lock();
        let old = inner.get(rt, ns, name).ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let mut new = (*old).clone();
        f(&mut new);
        let opts = WriteOpts { manager: manager.into(), ..Default::default() };
        inner.write_update(rt, &old, new, None, None, &opts, &self.tx)
    }

    /// All objects of a resource (for controllers).
    pub fn all(&self, rt: &ResourceType) -> Vec<Arc<Value>> {
        let inner = self.inner.lock();
        inner.objects.get(&rt.key()).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

/// Optimistic concurrency: a write naming a resourceVersion must name the current one.
fn check_precondition(rt: &ResourceType, name: &str, old: &Value, body: &Value) -> ApiResult<()> {
    match body["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
        Some(rv) if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() => Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )),
        _ => Ok(()),
    }
}

fn check_body_identity(rt: &ResourceType, ns: Option<&str>, name: &str, body: &Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON or YAML object"));
    }
    if let Some(n) = body["metadata"]["name"].as_str()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced
        && let (Some(bns), Some(ns)) = (body["metadata"]["namespace"].as_str(), ns)
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    check_type_meta(rt, body)
}

fn check_type_meta(rt: &ResourceType, body: &Value) -> ApiResult<()> {
    if let Some(k) = body["kind"].as_str()
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({k}) does not match the resource ({}; kind {})",
            rt.plural, rt.kind
        )));
    }
    if let Some(av) = body["apiVersion"].as_str()
        && av != rt.api_version()
        && !(rt.group == av.split('/').next().unwrap_or_default() && av.contains('/'))
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    Ok(())
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[fieldset::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\" using {}: {}", c.manager, c.api_version, fieldset::display(&c.path)))
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": fieldset::display(&c.path)}))
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!("Apply failed with {} conflicts: {}", lines.len(), lines.join("\n"))
    };
    ApiError::new(409, "Conflict", message)
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}))
}

impl Inner {
    fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let key = (if rt.namespaced { ns.unwrap_or_default().to_string() } else { String::new() }, name.to_string());
        self.objects.get(&rt.key())?.get(&key).cloned()
    }

    /// Validates and completes a new object: identity, namespace, defaults. Not yet stored.
    fn admit_new(&mut self, rt: &ResourceType, ns: Option<&str>, mut obj: Value) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON or YAML object"));
        }
        check_type_meta(rt, &obj)?;
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        strip_server_fields(&mut obj);
        meta_mut(&mut obj).remove("managedFields");
        if rt.namespaced {
            let ns = ns
                .map(str::to_string)
                .or_else(|| obj["metadata"]["namespace"].as_str().map(str::to_string))
                .ok_or_else(|| ApiError::bad_request("the namespace of the object must be set"))?;
            if obj["metadata"]["namespace"].as_str().is_some_and(|b| b != ns) {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns_rt = resources::BUILTIN.iter().find(|r| r.kind == "Namespace").expect("Namespace is built in");
            match self.get(ns_rt, None, &ns) {
                None => return Err(ApiError::not_found("", "namespaces", &ns)),
                Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rt.plural,
                        name_of(&obj)
                    )));
                }
                Some(_) => {}
            }
            meta_mut(&mut obj).insert("namespace".into(), json!(ns));
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => {
                    let name = format!("{prefix}{}", random_suffix(5));
                    meta_mut(&mut obj).insert("name".into(), json!(name));
                }
                None => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        vec![("metadata.name".into(), "Required value: name or generateName is required".into())],
                    ));
                }
            }
        }
        if rt.has_status {
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        match rt.kind.as_str() {
            "Namespace" => obj["status"] = json!({"phase": "Active"}),
            "Pod" if rt.builtin => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
            _ => {}
        }
        normalize(rt, &mut obj)?;
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        if rt.has_status && rt.kind != "Namespace" {
            m.insert("generation".into(), json!(1));
        }
        if rt.builtin {
            defaults::apply(&rt.kind, &mut obj, &mut self.alloc);
        }
        validate(rt, &obj)?;
        if self.get(rt, ns, name_of(&obj)).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, name_of(&obj)));
        }
        Ok(obj)
    }

    fn insert_new(
        &mut self,
        rt: &ResourceType,
        mut obj: Value,
        dry_run: bool,
        tx: &broadcast::Sender<Arc<Event>>,
    ) -> ApiResult<Arc<Value>> {
        if dry_run {
            return Ok(Arc::new(obj));
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let obj = Arc::new(obj);
        let key = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        self.objects.entry(rt.key()).or_default().insert(key, obj.clone());
        self.after_write(rt, &obj, false);
        self.emit(rt.key(), EventType::Added, obj.clone(), None, tx);
        Ok(obj)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_update(
        &mut self,
        rt: &ResourceType,
        old: &Arc<Value>,
        mut new: Value,
        managed: Option<Managed>,
        sub: Option<&str>,
        opts: &WriteOpts,
        tx: &broadcast::Sender<Arc<Event>>,
    ) -> ApiResult<Arc<Value>> {
        if !new.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON or YAML object"));
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        if sub == Some("status") {
            let status = new["status"].take();
            new = (**old).clone();
            new["status"] = status;
        } else {
            if rt.has_status {
                new["status"] = old["status"].clone();
                if old.get("status").is_none() {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
            // Server-managed metadata cannot be changed by clients.
            let om = old["metadata"].as_object().cloned().unwrap_or_default();
            let nm = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
            ] {
                match om.get(f) {
                    Some(v) => nm.insert(f.into(), v.clone()),
                    None => nm.remove(f),
                };
            }
            normalize(rt, &mut new)?;
            if rt.builtin {
                defaults::apply(&rt.kind, &mut new, &mut self.alloc);
            }
            validate(rt, &new)?;
            check_immutable(rt, old, &new)?;
            if !old["metadata"]["deletionTimestamp"].is_null() {
                // New finalizers may not be added to an object being deleted.
                let had: Vec<Value> = old["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
                if new["metadata"]["finalizers"].as_array().into_iter().flatten().any(|f| !had.contains(f)) {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: no new finalizers can be added if the object is being deleted",
                        rt.plural,
                        name_of(&new)
                    )));
                }
            }
        }
        let mut managed = match managed {
            Some(m) => m,
            None => {
                let mut m = Managed::of(old);
                m.update(rt, old, &new, &opts.manager, sub, &now());
                m
            }
        };
        if sub == Some("status") {
            managed.0.retain(|e| !e.fields.is_empty());
        }
        managed.write_into(&mut new);
        if same_but_times(&new, old) {
            return Ok(old.clone());
        }
        if rt.has_status && sub != Some("status") && spec_changed(&new, old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        let finalizing = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        self.rv += 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let new = Arc::new(new);
        let key = (ns_of(&new).to_string(), name_of(&new).to_string());
        if finalizing {
            self.objects.entry(rt.key()).or_default().remove(&key);
            self.after_write(rt, &new, true);
            self.emit(rt.key(), EventType::Deleted, new.clone(), None, tx);
        } else {
            self.objects.entry(rt.key()).or_default().insert(key, new.clone());
            self.after_write(rt, &new, false);
            self.emit(rt.key(), EventType::Modified, new.clone(), Some(old.clone()), tx);
        }
        Ok(new)
    }

    fn delete_object(
        &mut self,
        rt: &ResourceType,
        old: &Arc<Value>,
        propagation: Option<&str>,
        tx: &broadcast::Sender<Arc<Event>>,
    ) -> ApiResult<Arc<Value>> {
        let key = (ns_of(old).to_string(), name_of(old).to_string());
        let mut new = (**old).clone();
        let mut finalizers: Vec<Value> = new["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        let is_namespace = rt.kind == "Namespace" && rt.group.is_empty();
        match propagation {
            Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
                finalizers.push(json!("foregroundDeletion"))
            }
            Some("Orphan") => {
                let uid = old["metadata"]["uid"].clone();
                self.orphan_dependents(&uid, tx);
            }
            _ => {}
        }
        if finalizers.is_empty() && !is_namespace {
            self.rv += 1;
            meta_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
            let new = Arc::new(new);
            self.objects.entry(rt.key()).or_default().remove(&key);
            self.after_write(rt, &new, true);
            self.emit(rt.key(), EventType::Deleted, new.clone(), None, tx);
            return Ok(new);
        }
        if !old["metadata"]["deletionTimestamp"].is_null()
            && old["metadata"]["finalizers"].as_array().map(Vec::len) == Some(finalizers.len())
        {
            return Ok(old.clone());
        }
        let m = meta_mut(&mut new);
        m.entry("deletionTimestamp").or_insert(json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if !finalizers.is_empty() {
            m.insert("finalizers".into(), Value::Array(finalizers));
        }
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        self.rv += 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let new = Arc::new(new);
        self.objects.entry(rt.key()).or_default().insert(key, new.clone());
        self.emit(rt.key(), EventType::Modified, new.clone(), Some(old.clone()), tx);
        Ok(new)
    }

    fn orphan_dependents(&mut self, owner_uid: &Value, tx: &broadcast::Sender<Arc<Event>>) {
        let dependents = self.dependents_of(owner_uid);
        for (key, dep) in dependents {
            let Some(rt) = self.registry.by_key(&key).cloned() else {
                continue;
            };
            let mut new = (*dep).clone();
            if let Some(refs) = new.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                refs.retain(|r| r["uid"] != *owner_uid);
                if refs.is_empty() {
                    meta_mut(&mut new).remove("ownerReferences");
                }
            }
            let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
            let _ = self.write_update(&rt, &dep, new, None, None, &opts, tx);
        }
    }

    fn dependents_of(&self, owner_uid: &Value) -> Vec<(ResKey, Arc<Value>)> {
        let mut out = Vec::new();
        for (k, m) in &self.objects {
            for o in m.values() {
                if o["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|r| r["uid"] == *owner_uid) {
                    out.push((k.clone(), o.clone()));
                }
            }
        }
        out
    }

    fn collect_garbage(&mut self, tx: &broadcast::Sender<Arc<Event>>) -> bool {
        let mut worked = false;
        // Dependents whose owners are all gone (background propagation).
        let mut orphans = Vec::new();
        let live_uids: std::collections::HashSet<String> = self
            .objects
            .values()
            .flat_map(|m| m.values())
            .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        let mut foreground_owners = Vec::new();
        for (k, m) in &self.objects {
            for o in m.values() {
                let refs = o["metadata"]["ownerReferences"].as_array();
                if let Some(refs) = refs.filter(|r| !r.is_empty()) {
                    let all_gone = refs.iter().all(|r| !r["uid"].as_str().is_some_and(|u| live_uids.contains(u)));
                    if all_gone && o["metadata"]["deletionTimestamp"].is_null() {
                        orphans.push((k.clone(), o.clone()));
                    }
                }
                let deleting = !o["metadata"]["deletionTimestamp"].is_null();
                if deleting
                    && o["metadata"]["finalizers"].as_array().is_some_and(|f| f.contains(&json!("foregroundDeletion")))
                {
                    foreground_owners.push((k.clone(), o.clone()));
                }
            }
        }
        for (k, o) in orphans {
            if let Some(rt) = self.registry.by_key(&k).cloned() {
                worked |= self.delete_object(&rt, &o, Some("Background"), tx).is_ok();
            }
        }
        for (k, owner) in foreground_owners {
            let deps = self.dependents_of(&owner["metadata"]["uid"]);
            if deps.is_empty() {
                if let Some(rt) = self.registry.by_key(&k).cloned() {
                    let mut new = (*owner).clone();
                    if let Some(f) = new.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                        f.retain(|x| x != "foregroundDeletion");
                    }
                    let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
                    worked |= self.write_update(&rt, &owner, new, None, None, &opts, tx).is_ok();
                }
            } else {
                for (dk, dep) in deps {
                    if dep["metadata"]["deletionTimestamp"].is_null()
                        && let Some(rt) = self.registry.by_key(&dk).cloned()
                    {
                        worked |= self.delete_object(&rt, &dep, Some("Foreground"), tx).is_ok();
                    }
                }
            }
        }
        worked
    }

    /// One step of the namespace controller for a terminating namespace: deletes what it
    /// holds, and the namespace itself once it is empty. Returns whether it is gone.
    fn terminate_namespace(&mut self, name: &str, tx: &broadcast::Sender<Arc<Event>>) -> bool {
        let ns_key = ResKey { group: String::new(), plural: "namespaces".into() };
        let Some(ns) = self.objects.get(&ns_key).and_then(|m| m.get(&(String::new(), name.to_string()))).cloned()
        else {
            return true;
        };
        if ns["metadata"]["deletionTimestamp"].is_null() {
            return false;
        }
        let mut contents = Vec::new();
        for (k, m) in &self.objects {
            for ((ons, _), o) in m.iter() {
                if ons == name && o["metadata"]["deletionTimestamp"].is_null() {
                    contents.push((k.clone(), o.clone()));
                }
            }
        }
        for (k, o) in contents {
            if let Some(rt) = self.registry.by_key(&k).cloned() {
                let _ = self.delete_object(&rt, &o, Some("Background"), tx);
            }
        }
        let remaining = self.objects.values().any(|m| m.keys().any(|(ons, _)| ons == name));
        if remaining {
            return false;
        }
        self.rv += 1;
        let mut gone = (*ns).clone();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects.entry(ns_key.clone()).or_default().remove(&(String::new(), name.to_string()));
        self.emit(ns_key, EventType::Deleted, Arc::new(gone), None, tx);
        true
    }

    /// Side effects of a stored write: CRDs change what the server serves.
    fn after_write(&mut self, rt: &ResourceType, obj: &Value, deleted: bool) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let crd_name = name_of(obj).to_string();
            let types = if deleted { vec![] } else { resources::from_crd(obj) };
            let old_keys: Vec<ResKey> = self
                .registry
                .all()
                .filter(|r| !r.builtin && format!("{}.{}", r.plural, r.group) == crd_name)
                .map(ResourceType::key)
                .collect();
            self.registry.set_crd(&crd_name, types);
            if deleted {
                // Deleting a CRD deletes its custom resources.
                for k in old_keys {
                    self.objects.remove(&k);
                }
            }
        }
    }

    fn emit(
        &mut self,
        res: ResKey,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
        tx: &broadcast::Sender<Arc<Event>>,
    ) {
        let event = Arc::new(Event { rv: self.rv, res, kind, object, old });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_cap {
            if let Some(e) = self.history.pop_front() {
                self.compacted_rv = e.rv;
            }
        }
        let _ = tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_op_writes_are_recognised_without_cloning() {
        let a = json!({"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "1",
            "managedFields": [{"manager": "m", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {}}}]},
            "data": {"k": "v"}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("2");
        b["metadata"]["managedFields"][0]["time"] = json!("2026-01-02T00:00:00Z");
        assert!(same_but_times(&a, &b));
        let mut c = b.clone();
        c["data"]["k"] = json!("w");
        assert!(!same_but_times(&a, &c));
        let mut d = b.clone();
        d["metadata"]["labels"] = json!({"l": "1"});
        assert!(!same_but_times(&a, &d));
        let mut e = b.clone();
        e["metadata"]["managedFields"][0]["manager"] = json!("other");
        assert!(!same_but_times(&a, &e));
    }

    #[test]
    fn generation_follows_spec_changes_only() {
        let a = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {"ready": 0}});
        let mut b = a.clone();
        b["status"]["ready"] = json!(1);
        b["metadata"]["labels"] = json!({"l": "1"});
        assert!(!spec_changed(&a, &b));
        b["spec"]["replicas"] = json!(2);
        assert!(spec_changed(&a, &b));
        let mut c = a.clone();
        c["data"] = json!({});
        assert!(spec_changed(&a, &c));
    }
}
