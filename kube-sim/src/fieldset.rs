//! Field sets and `managedFields` bookkeeping for server-side apply (structured-merge-diff lite).
//!
//! A field set is a set of paths into an object. Paths step through map fields (`f:name`),
//! items of associative lists by key (`k:{"name":"web"}`), items of set lists by value
//! (`v:"x"`). Atomic lists and scalars are leaves. The encoding to and from `fieldsV1` is the
//! one a real kube-apiserver uses.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use bosun_core::schema::Shape;

use crate::resources::{ListType, ResourceType, item_key, list_type};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Field(String),
    /// Compact JSON of the item's key fields, keys sorted.
    Key(String),
    /// Compact JSON of a set item.
    Value(String),
}

pub type Path = Vec<Step>;

/// Every owned path of an object, with the value found there (`Null` for list items,
/// which are owned as a whole as well as field by field).
pub type Leaves = BTreeMap<Path, Value>;

/// Top-level fields that are identity or server-managed and never owned.
fn skipped_top(path: &[Step]) -> bool {
    match path {
        [Step::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "status"),
        [Step::Field(m), Step::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Collects the owned paths of `obj` (its spec-like content; not status, not server metadata).
pub fn leaves(rt: &ResourceType, obj: &Value) -> Leaves {
    let mut out = Leaves::new();
    let mut path = Vec::new();
    if let Value::Object(m) = obj {
        collect_map(rt.shape(), m, &mut path, &mut out);
    }
    out
}

/// Collects the owned paths of the `status` of `obj` (for the status subresource).
pub fn status_leaves(rt: &ResourceType, obj: &Value) -> Leaves {
    let mut out = Leaves::new();
    let mut path = vec![Step::Field("status".into())];
    if let Some(Value::Object(m)) = obj.get("status") {
        collect_map(rt.shape().and_then(|s| s.child("status")), m, &mut path, &mut out);
    }
    out
}

fn collect_map(shape: Option<Shape>, m: &Map<String, Value>, path: &mut Path, out: &mut Leaves) {
    for (k, v) in m {
        path.push(Step::Field(k.clone()));
        if !skipped_top(path) {
            collect_field(shape.and_then(|s| s.child(k)), v, path, out);
        }
        path.pop();
    }
}

fn collect_field(shape: Option<Shape>, v: &Value, path: &mut Path, out: &mut Leaves) {
    match v {
        Value::Object(m) if !m.is_empty() => collect_map(shape, m, path, out),
        Value::Array(items) if !items.is_empty() => match list_type(shape, items) {
            ListType::Atomic => {
                out.insert(path.clone(), v.clone());
            }
            ListType::Set => {
                for item in items {
                    path.push(Step::Value(compact(item)));
                    out.insert(path.clone(), item.clone());
                    path.pop();
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    path.push(Step::Key(key_string(item, keys)));
                    out.insert(path.clone(), Value::Null);
                    if let Value::Object(m) = item {
                        collect_map(shape.and_then(Shape::item), m, path, out);
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone(), v.clone());
        }
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `{"containerPort":80,"protocol":"TCP"}` with keys sorted, as structured-merge-diff writes it.
pub fn key_string(item: &Value, keys: &[&str]) -> String {
    let key = item_key(item, keys);
    let sorted: BTreeMap<&String, &Value> = key.iter().collect();
    compact(&serde_json::to_value(sorted).unwrap_or_default())
}

fn key_matches(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    want.iter().all(|(k, v)| match item.get(k) {
        Some(x) => x == v,
        None => bosun_core::schema::key_default(k).is_some_and(|d| v == d),
    })
}

/// The value at `path` in `obj`.
pub fn get<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => cur.as_array()?.iter().find(|i| key_matches(i, k))?,
            Step::Value(v) => cur.as_array()?.iter().find(|i| compact(i) == *v)?,
        };
    }
    Some(cur)
}

/// Removes the field or list item at `path`, then any map or list emptied by it.
pub fn remove(obj: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_mut(obj, parent_path) else {
        return;
    };
    match (last, parent) {
        (Step::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Step::Key(k), Value::Array(items)) => items.retain(|i| !key_matches(i, k)),
        (Step::Value(v), Value::Array(items)) => items.retain(|i| compact(i) != *v),
        _ => return,
    }
    let emptied = get(obj, parent_path).is_some_and(|p| match p {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    });
    if emptied && parent_path.len() > 1 {
        remove(obj, parent_path);
    }
}

fn get_mut<'a>(obj: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get_mut(f)?,
            Step::Key(k) => cur.as_array_mut()?.iter_mut().find(|i| key_matches(i, k))?,
            Step::Value(v) => cur.as_array_mut()?.iter_mut().find(|i| compact(i) == *v)?,
        };
    }
    Some(cur)
}

/// Merges an applied configuration into a live object: maps field by field, associative
/// lists item by item (by key), sets by union, everything else replaced.
pub fn merge(rt: &ResourceType, live: &mut Value, applied: &Value) {
    merge_field(rt.shape(), live, applied);
}

fn merge_field(shape: Option<Shape>, live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                match l.get_mut(k) {
                    Some(lv) => merge_field(shape.and_then(|s| s.child(k)), lv, av),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(shape, a) {
            ListType::Map(keys) if !a.is_empty() && list_type(shape, l) == ListType::Map(keys) => {
                for item in a {
                    let key = key_string(item, keys);
                    match l.iter_mut().find(|i| key_matches(i, &key)) {
                        Some(li) => merge_field(shape.and_then(Shape::item), li, item),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            _ => *l = a.clone(),
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// Encodes a set of paths as `fieldsV1`.
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn step_string(s: &Step) -> String {
        match s {
            Step::Field(f) => format!("f:{f}"),
            Step::Key(k) => format!("k:{k}"),
            Step::Value(v) => format!("v:{v}"),
        }
    }
    fn emit(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), emit(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for p in paths {
        let mut n = &mut root;
        for s in p {
            n = n.children.entry(step_string(s)).or_default();
        }
        n.member = true;
    }
    emit(&root)
}

/// Decodes `fieldsV1` into a set of paths. Unknown prefixes are skipped.
pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Value::Object(m) = v else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            let step = if let Some(f) = k.strip_prefix("f:") {
                Step::Field(f.into())
            } else if let Some(key) = k.strip_prefix("k:") {
                Step::Key(key.into())
            } else if let Some(val) = k.strip_prefix("v:") {
                Step::Value(val.into())
            } else {
                continue;
            };
            path.push(step);
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// `.spec.template.spec.containers[name="web"].image`, as conflict messages print paths.
pub fn display(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let inner: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", inner.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: BTreeSet<Path>,
}

impl ManagedEntry {
    pub fn parse_all(obj: &Value) -> Vec<ManagedEntry> {
        obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(ManagedEntry {
                    manager: e["manager"].as_str()?.to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    subresource: e["subresource"].as_str().map(str::to_string),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
            })
            .collect()
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), self.manager.clone().into());
        m.insert("operation".into(), self.operation.clone().into());
        m.insert("apiVersion".into(), self.api_version.clone().into());
        m.insert("time".into(), self.time.clone().into());
        m.insert("fieldsType".into(), "FieldsV1".into());
        m.insert("fieldsV1".into(), to_fields_v1(&self.fields));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), s.clone().into());
        }
        Value::Object(m)
    }

    fn same_slot(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }
}

/// A field owned by another manager whose value the request would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

/// The managed fields of an object, changed by apply and update operations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Managed(pub Vec<ManagedEntry>);

impl Managed {
    pub fn of(obj: &Value) -> Self {
        Self(ManagedEntry::parse_all(obj))
    }

    pub fn write_into(&self, obj: &mut Value) {
        let entries: Vec<Value> = self.0.iter().filter(|e| !e.fields.is_empty()).map(ManagedEntry::to_value).collect();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if entries.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(entries));
            }
        }
    }

    /// Fields owned by anyone other than the `(manager, operation)` slot.
    fn owned_by_others(&self, manager: &str, operation: &str, sub: Option<&str>) -> BTreeSet<&Path> {
        self.0.iter().filter(|e| !e.same_slot(manager, operation, sub)).flat_map(|e| e.fields.iter()).collect()
    }

    /// Server-side apply. Returns the merged object or the conflicts that block it.
    ///
    /// Expected flow: conflicts are fields in the applied set owned by another manager with
    /// a different live value; `force` takes them over. Fields this manager applied before
    /// and no longer applies are removed unless another manager owns them.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        live: &Value,
        applied: &Value,
        manager: &str,
        force: bool,
        time: &str,
    ) -> Result<Value, Vec<Conflict>> {
        let applied_leaves = leaves(rt, applied);
        let new_set: BTreeSet<Path> = applied_leaves.keys().cloned().collect();
        let mut conflicts = Vec::new();
        for e in self.0.iter().filter(|e| !e.same_slot(manager, "Apply", None) && e.subresource.is_none()) {
            for p in e.fields.intersection(&new_set) {
                let is_item = matches!(p.last(), Some(Step::Key(_)));
                if !is_item && get(live, p) != applied_leaves.get(p) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        path: p.clone(),
                    });
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        for c in &conflicts {
            for e in self.0.iter_mut() {
                if e.manager == c.manager {
                    e.fields.remove(&c.path);
                }
            }
        }
        let previous =
            self.0.iter().find(|e| e.same_slot(manager, "Apply", None)).map(|e| e.fields.clone()).unwrap_or_default();
        let mut merged = live.clone();
        merge(rt, &mut merged, applied);
        let others = self.owned_by_others(manager, "Apply", None);
        let removed: Vec<&Path> = previous
            .difference(&new_set)
            .filter(|p| !others.contains(p) && !others.iter().any(|o| o.starts_with(p)))
            .collect();
        // Remove the outermost paths only: a removed list item takes its fields with it.
        let outermost: Vec<&Path> = removed
            .iter()
            .filter(|p| !removed.iter().any(|q| q.len() < p.len() && p.starts_with(q)))
            .copied()
            .collect();
        for p in outermost {
            remove(&mut merged, p);
        }
        // Removing items may empty a map or list the configuration applies explicitly
        // (`env: []`): merging again restores exactly what is applied.
        merge(rt, &mut merged, applied);
        self.set_slot(manager, "Apply", None, &api_version_of(applied), time, new_set);
        Ok(merged)
    }

    /// Records a non-apply write (create, update, patch) by `manager`: fields it changed
    /// become its own and leave other managers; fields it removed leave everyone.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        old: &Value,
        new: &Value,
        manager: &str,
        subresource: Option<&str>,
        time: &str,
    ) {
        let (old_l, new_l) = if subresource == Some("status") {
            (status_leaves(rt, old), status_leaves(rt, new))
        } else {
            (leaves(rt, old), leaves(rt, new))
        };
        let changed: BTreeSet<Path> =
            new_l.iter().filter(|(p, v)| old_l.get(*p) != Some(*v)).map(|(p, _)| p.clone()).collect();
        let removed: BTreeSet<Path> = old_l.keys().filter(|p| !new_l.contains_key(*p)).cloned().collect();
        if changed.is_empty() && removed.is_empty() {
            return;
        }
        for e in self.0.iter_mut() {
            e.fields.retain(|p| !removed.contains(p) && !changed.contains(p));
        }
        let mut mine = self
            .0
            .iter()
            .find(|e| e.same_slot(manager, "Update", subresource))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        mine.extend(changed);
        self.set_slot(manager, "Update", subresource, &api_version_of(new), time, mine);
    }

    fn set_slot(
        &mut self,
        manager: &str,
        op: &str,
        sub: Option<&str>,
        api_version: &str,
        time: &str,
        fields: BTreeSet<Path>,
    ) {
        match self.0.iter_mut().find(|e| e.same_slot(manager, op, sub)) {
            Some(e) => {
                e.fields = fields;
                e.time = time.to_string();
                e.api_version = api_version.to_string();
            }
            None => self.0.push(ManagedEntry {
                manager: manager.to_string(),
                operation: op.to_string(),
                api_version: api_version.to_string(),
                time: time.to_string(),
                subresource: sub.map(str::to_string),
                fields,
            }),
        }
        self.0.retain(|e| !e.fields.is_empty());
    }
}

fn api_version_of(obj: &Value) -> String {
    obj["apiVersion"].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::BUILTIN;
    use serde_json::json;

    fn deployment_rt() -> ResourceType {
        BUILTIN.iter().find(|r| r.kind == "Deployment").unwrap().clone()
    }

    fn deploy(replicas: i64, image: &str, with_env: bool) -> Value {
        let mut c = json!({"name": "web", "image": image, "ports": [{"containerPort": 80}]});
        if with_env {
            c["env"] = json!([{"name": "MODE", "value": "x"}]);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}}}})
    }

    #[test]
    fn fields_v1_round_trip() {
        let rt = deployment_rt();
        let set: BTreeSet<Path> = leaves(&rt, &deploy(2, "nginx", true)).into_keys().collect();
        let encoded = to_fields_v1(&set);
        assert!(encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["."].is_object());
        assert!(
            encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"]
                ["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]
                .is_object()
        );
        assert!(encoded.get("f:apiVersion").is_none() && encoded["f:metadata"].get("f:name").is_none());
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let rt = deployment_rt();
        let mut m = Managed::default();
        let live = m.apply(&rt, &json!({}), &deploy(2, "nginx", true), "bosun", false, "t").unwrap();
        assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"], "MODE");
        let live = m.apply(&rt, &live, &deploy(2, "nginx", false), "bosun", false, "t").unwrap();
        assert!(live["spec"]["template"]["spec"]["containers"][0].get("env").is_none(), "{live}");
    }

    #[test]
    fn conflict_with_other_manager_unless_forced() {
        let rt = deployment_rt();
        let mut m = Managed::default();
        let live = m.apply(&rt, &json!({}), &deploy(2, "nginx", false), "bosun", false, "t").unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(5);
        m.update(&rt, &live, &edited, "kubectl-edit", None, "t");
        let err = m.clone().apply(&rt, &edited, &deploy(2, "nginx", false), "bosun", false, "t").unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(display(&err[0].path), ".spec.replicas");
        assert_eq!(err[0].manager, "kubectl-edit");
        // Same value: shared ownership, no conflict.
        assert!(m.clone().apply(&rt, &edited, &deploy(5, "nginx", false), "bosun", false, "t").is_ok());
        let healed = m.apply(&rt, &edited, &deploy(2, "nginx", false), "bosun", true, "t").unwrap();
        assert_eq!(healed["spec"]["replicas"], 2);
        assert!(m.0.iter().all(|e| e.manager != "kubectl-edit"), "forced apply takes the field over");
    }

    #[test]
    fn fields_owned_by_others_survive_removal() {
        let rt = deployment_rt();
        let mut m = Managed::default();
        let live = m.apply(&rt, &json!({}), &deploy(2, "nginx", true), "a", false, "t").unwrap();
        let live = m.apply(&rt, &live, &deploy(2, "nginx", true), "b", false, "t").unwrap();
        let live = m.apply(&rt, &live, &deploy(2, "nginx", false), "a", false, "t").unwrap();
        assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "x");
    }
}
