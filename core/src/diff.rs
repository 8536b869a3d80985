//! Drift: does the live object hold what the desired manifest says — and does it hold
//! something the manifest no longer says that the next apply would remove?
//!
//! As server-side apply sees it:
//! - Fields the manifest sets must be present with the same value. Server defaults, status,
//!   server metadata and fields owned by others are not drift. Values the API server drops or
//!   rewrites are not drift either: empty lists, maps and strings equal absent; resource
//!   quantities compare by value (`cpu: 1` = `"1"` = `1000m`, `1024Mi` = `1Gi`).
//! - List items are matched as the API server merges them, by the list's semantics in the
//!   built-in types' schema ([`crate::schema`]): associative lists by their keys (containers and
//!   env by `name`, volume mounts by `mountPath`, ports by `containerPort`/`port` and
//!   `protocol`…), sets by membership, atomic lists element by element. Custom resources have
//!   no schema here: lists of objects that all carry a `name` are matched by name, others by
//!   position.
//! - **Removals**: a field the live object's `managedFields` says the agent's field manager
//!   owns, but the manifest no longer has, is drift — the next apply removes it. Fields other
//!   managers own (a `kubectl label`, an autoscaler's replicas) are not.
//!
//! Secret `stringData` is compared as the base64 `data` the server stores. Secret values are
//! never shown in descriptions.

use base64::Engine;
use serde_json::{Value, json};

use crate::schema::{ListKind, Shape, same_item};

/// One difference: where, and the two values (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub path: String,
    pub desired: Option<Value>,
    pub live: Option<Value>,
}

impl Drift {
    /// Whether the manifest no longer has the field (a removal the next apply makes).
    pub fn removed(&self) -> bool {
        self.desired.is_none()
    }
}

/// How to compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Differences not counted (Argo CD's `ignoreDifferences`).
    pub ignore: &'a [crate::app::IgnoreDifference],
    /// The field manager whose fields the manifest owns: fields it owns in the live object that
    /// the manifest no longer has are drift. `None`: removals are not looked at.
    pub manager: Option<&'a str>,
}

/// Every difference between `desired` and `live` under `opts`.
pub fn drift(desired: &Value, live: &Value, opts: Options<'_>) -> Vec<Drift> {
    let applies = !opts.ignore.is_empty()
        && crate::ObjectRef::of(desired).is_some_and(|r| opts.ignore.iter().any(|i| i.matches(&r)));
    let (desired, live_cmp) = if applies {
        (
            std::borrow::Cow::Owned(strip_ignored(desired, live, opts.ignore)),
            std::borrow::Cow::Owned(strip_ignored(live, live, opts.ignore)),
        )
    } else {
        (std::borrow::Cow::Borrowed(desired), std::borrow::Cow::Borrowed(live))
    };
    let desired = normalize_desired(&desired, &live_cmp);
    let shape = crate::schema::of_object(&desired).or_else(|| crate::schema::of_object(&live_cmp));
    let mut out = Vec::new();
    compare(&desired, &live_cmp, shape, &mut String::new(), &mut out);
    if let Some(manager) = opts.manager {
        let ignored: Vec<String> = if applies { ignored_prefixes(&desired, opts.ignore) } else { Vec::new() };
        for entry in live["metadata"]["managedFields"].as_array().into_iter().flatten() {
            if entry["manager"].as_str() != Some(manager) || entry["operation"].as_str().is_some_and(|o| o != "Apply") {
                continue;
            }
            if entry["subresource"].as_str().is_some_and(|s| !s.is_empty()) {
                continue;
            }
            let mut removed = Vec::new();
            owned_but_not_desired(&entry["fieldsV1"], Some(&desired), live, shape, &mut String::new(), &mut removed);
            for d in removed {
                let duplicate = out.iter().any(|o| o.path == d.path);
                if !duplicate && !ignored.iter().any(|p| d.path == *p || d.path.starts_with(&format!("{p}."))) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Paths where `live` differs from `desired` (empty: in sync); removals not looked at.
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<String> {
    drift(desired, live, Options::default()).into_iter().map(|d| d.path).collect()
}

/// Like [`drifted_fields`], leaving out what the matching `ignore` rules name: JSON pointers,
/// jq paths, and fields owned (per the live object's `managedFields`) by the listed managers.
pub fn drifted_fields_ignoring(desired: &Value, live: &Value, ignore: &[crate::app::IgnoreDifference]) -> Vec<String> {
    drift(desired, live, Options { ignore, manager: None }).into_iter().map(|d| d.path).collect()
}

/// Whether syncing must write `desired`: it is missing, or differs beyond ignored fields.
pub fn needs_apply(desired: &Value, live: Option<&Value>, ignore: &[crate::app::IgnoreDifference]) -> bool {
    live.is_none_or(|l| !drifted_fields_ignoring(desired, l, ignore).is_empty())
}

/// A person-readable diff: one `path: live → desired` line per difference (`<absent>` for a
/// side that lacks it; removals say so). Secret values are never shown.
pub fn describe(desired: &Value, live: &Value) -> String {
    describe_drift(desired, live, &drift(desired, live, Options::default()))
}

/// Formats `drift` (as [`drift`] found it between these objects).
pub fn describe_drift(desired: &Value, live: &Value, drift: &[Drift]) -> String {
    let secret = desired["kind"] == "Secret" || live["kind"] == "Secret";
    let mut out = String::new();
    for d in drift {
        let show = |v: &Option<Value>| -> String {
            match v {
                None => "<absent>".into(),
                Some(_) if secret && (d.path.starts_with(".data") || d.path.starts_with(".stringData")) => {
                    "<redacted>".into()
                }
                Some(Value::Null) => "<absent>".into(),
                Some(v) => v.to_string(),
            }
        };
        let note = if d.removed() { " (removed from Git)" } else { "" };
        out.push_str(&format!("{}: {} → {}{note}\n", d.path, show(&d.live), show(&d.desired)));
    }
    out
}

/// `obj` without the fields the matching `ignore` rules name (manager-owned fields are read
/// from `live`'s `managedFields`). Applying the result leaves those fields to their owners.
pub fn strip_ignored(obj: &Value, live: &Value, ignore: &[crate::app::IgnoreDifference]) -> Value {
    let mut out = obj.clone();
    let Some(r) = crate::ObjectRef::of(obj).or_else(|| crate::ObjectRef::of(live)) else { return out };
    for rule in ignore.iter().filter(|i| i.matches(&r)) {
        for p in &rule.json_pointers {
            remove_pointer(&mut out, p);
        }
        for e in &rule.jq_path_expressions {
            crate::jq::remove_selected(&mut out, e);
        }
        for entry in live["metadata"]["managedFields"].as_array().into_iter().flatten() {
            if entry["manager"].as_str().is_some_and(|m| rule.managed_fields_managers.iter().any(|x| x == m)) {
                remove_fields_v1(&mut out, &entry["fieldsV1"]);
            }
        }
    }
    out
}

/// The JSON pointers of matching rules as drift paths (`/spec/replicas` → `.spec.replicas`).
fn ignored_prefixes(desired: &Value, ignore: &[crate::app::IgnoreDifference]) -> Vec<String> {
    let Some(r) = crate::ObjectRef::of(desired) else { return Vec::new() };
    ignore
        .iter()
        .filter(|i| i.matches(&r))
        .flat_map(|i| i.json_pointers.iter())
        .map(|p| p.split('/').skip(1).map(|s| format!(".{}", s.replace("~1", "/").replace("~0", "~"))).collect())
        .collect()
}

/// Removes the value at an RFC 6901 pointer, if present.
fn remove_pointer(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else { return };
    let last = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&last);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Removes from `v` every leaf named by a `fieldsV1` set (`f:` fields, `k:` list items by
/// key, `v:` set members).
fn remove_fields_v1(v: &mut Value, fields: &Value) {
    let Value::Object(set) = fields else { return };
    for (k, child) in set {
        let leaf = is_leaf(child);
        if let Some(name) = k.strip_prefix("f:") {
            if leaf {
                if let Some(m) = v.as_object_mut() {
                    m.remove(name);
                }
            } else if let Some(inner) = v.get_mut(name) {
                remove_fields_v1(inner, child);
            }
        } else if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key) else { continue };
            if let Value::Array(items) = v {
                let hit = |i: &Value| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv));
                if leaf {
                    items.retain(|i| !hit(i));
                } else if let Some(item) = items.iter_mut().find(|i| hit(i)) {
                    remove_fields_v1(item, child);
                }
            }
        } else if let Some(val) = k.strip_prefix("v:")
            && let (Value::Array(items), Ok(want)) = (&mut *v, serde_json::from_str::<Value>(val))
        {
            items.retain(|i| *i != want);
        }
    }
}

fn normalize_desired<'a>(desired: &'a Value, live: &Value) -> std::borrow::Cow<'a, Value> {
    let has_status = desired.get("status").is_some();
    let has_string_data = desired.get("stringData").is_some();
    let namespace_to_drop =
        live["metadata"].get("namespace").is_none() && desired["metadata"].get("namespace").is_some();
    if !(has_status || has_string_data || namespace_to_drop) {
        return std::borrow::Cow::Borrowed(desired);
    }
    let mut d = desired.clone();
    if let Some(m) = d.as_object_mut() {
        m.remove("status");
        if let Some(Value::Object(sd)) = m.remove("stringData") {
            let data = m.entry("data").or_insert_with(|| json!({}));
            for (k, v) in sd {
                data[k] = json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default()));
            }
        }
    }
    // Cluster-scoped objects have no namespace on the server.
    if namespace_to_drop && let Some(m) = d["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    std::borrow::Cow::Owned(d)
}

/// How a list without a schema is matched: by `name` when every desired item has one.
fn fallback_keys(d: &[Value]) -> Option<&'static [&'static str]> {
    (!d.is_empty() && d.iter().all(|i| i.get("name").is_some())).then_some(&["name"])
}

/// Appends `[value]` of an associative list item to `path`: its key values joined by `/`.
fn push_item_label(path: &mut String, keys: &[&str], item: &Value) {
    use std::fmt::Write;
    path.push('[');
    let values = keys.iter().filter_map(|k| item.get(*k).filter(|v| !v.is_null()));
    for (i, v) in values.enumerate() {
        if i > 0 {
            path.push('/');
        }
        match v.as_str() {
            Some(s) => path.push_str(s),
            None => {
                let _ = write!(path, "{v}");
            }
        }
    }
    path.push(']');
}

/// Walks `desired` against `live`; `path` is one buffer extended and truncated as the walk
/// goes, so an object in sync costs no allocation per field.
fn compare(desired: &Value, live: &Value, shape: Option<Shape>, path: &mut String, out: &mut Vec<Drift>) {
    use std::fmt::Write;
    let mark = path.len();
    let push = |path: &String, out: &mut Vec<Drift>, d: &Value, l: Option<&Value>| {
        out.push(Drift { path: path.clone(), desired: Some(d.clone()), live: l.cloned() });
    };
    match (desired, live) {
        (Value::Null, _) => {}
        (d, l) if shape == Some(Shape::Quantity) => {
            if d != l && crate::quantity::same(d, l) != Some(true) {
                push(path, out, d, Some(l));
            }
        }
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                path.push('.');
                path.push_str(k);
                let child = shape.and_then(|s| s.child(k));
                match l.get(k) {
                    Some(lv) => compare(dv, lv, child, path, out),
                    None if is_empty(dv) => {}
                    None => push(path, out, dv, None),
                }
                path.truncate(mark);
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            let (kind, item_shape) = match shape {
                Some(s @ Shape::List(kind, _)) => (Some(kind), s.item()),
                _ => (fallback_keys(d).map(ListKind::Map), None),
            };
            match kind {
                Some(ListKind::Map(keys)) => {
                    for di in d {
                        push_item_label(path, keys, di);
                        match l.iter().find(|li| same_item(keys, di, li)) {
                            Some(li) => compare(di, li, item_shape, path, out),
                            None => push(path, out, di, None),
                        }
                        path.truncate(mark);
                    }
                }
                Some(ListKind::Set) => {
                    for di in d.iter().filter(|di| !l.contains(di)) {
                        let _ = write!(path, "[{}]", di.as_str().map(str::to_string).unwrap_or_else(|| di.to_string()));
                        push(path, out, di, None);
                        path.truncate(mark);
                    }
                }
                Some(ListKind::Atomic) | None => {
                    for (i, di) in d.iter().enumerate() {
                        let _ = write!(path, "[{i}]");
                        match l.get(i) {
                            Some(li) => compare(di, li, item_shape, path, out),
                            None => push(path, out, di, None),
                        }
                        path.truncate(mark);
                    }
                    if l.len() > d.len() && !d.is_empty() {
                        let _ = write!(path, "[{}]", d.len());
                        out.push(Drift { path: path.clone(), desired: None, live: Some(l[d.len()].clone()) });
                        path.truncate(mark);
                    }
                }
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (d, l) if d == l => {}
        (d, l) if is_empty(d) && is_empty(l) => {}
        (d, l) => push(path, out, d, Some(l)),
    }
}

/// Fields of the `fieldsV1` set `owned` (one manager's) that `desired` does not have, but
/// `live` does: what applying `desired` would remove. Reports the outermost missing field.
fn owned_but_not_desired(
    owned: &Value,
    desired: Option<&Value>,
    live: &Value,
    shape: Option<Shape>,
    path: &mut String,
    out: &mut Vec<Drift>,
) {
    let Value::Object(set) = owned else { return };
    let mark = path.len();
    for (k, child) in set {
        if k == "." {
            continue;
        }
        if let Some(name) = k.strip_prefix("f:") {
            // Only what the live object holds: status and metadata kept by the server are not ours.
            if path.is_empty() && matches!(name, "status" | "apiVersion" | "kind") {
                continue;
            }
            let dv = desired.and_then(|d| d.get(name)).filter(|v| !v.is_null());
            if dv.is_some() && is_leaf(child) {
                // A field the manifest still sets, owned as a whole: nothing below it is removed.
                continue;
            }
            let Some(lv) = live.get(name).filter(|v| !v.is_null()) else { continue };
            path.push('.');
            path.push_str(name);
            match dv {
                None => out.push(Drift { path: path.clone(), desired: None, live: Some(lv.clone()) }),
                Some(dv) => owned_but_not_desired(child, Some(dv), lv, shape.and_then(|s| s.child(name)), path, out),
            }
            path.truncate(mark);
        } else if let Some(key) = k.strip_prefix("k:") {
            let Ok(want @ Value::Object(_)) = serde_json::from_str::<Value>(key) else { continue };
            let keys: Vec<&str> = want.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            let Some(li) = live.as_array().and_then(|l| l.iter().find(|i| same_item(&keys, &want, i))) else {
                continue;
            };
            push_item_label(path, &keys, &want);
            let item_shape = shape.and_then(Shape::item);
            match desired.and_then(Value::as_array).and_then(|d| d.iter().find(|i| same_item(&keys, &want, i))) {
                None => out.push(Drift { path: path.clone(), desired: None, live: Some(li.clone()) }),
                Some(di) => owned_but_not_desired(child, Some(di), li, item_shape, path, out),
            }
            path.truncate(mark);
        } else if let Some(val) = k.strip_prefix("v:") {
            let Ok(want) = serde_json::from_str::<Value>(val) else { continue };
            if !live.as_array().is_some_and(|l| l.contains(&want)) {
                continue;
            }
            if !desired.and_then(Value::as_array).is_some_and(|d| d.contains(&want)) {
                path.push_str(&format!("[{}]", want.as_str().map(str::to_string).unwrap_or_else(|| want.to_string())));
                out.push(Drift { path: path.clone(), desired: None, live: Some(want) });
                path.truncate(mark);
            }
        }
    }
}

/// Whether a `fieldsV1` entry names no field below it (`{}` or `{".": {}}`).
fn is_leaf(set: &Value) -> bool {
    set.as_object().is_none_or(|m| m.keys().all(|k| k == "."))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_redacts_secrets() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        let live =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "b2xk"}});
        let text = describe(&desired, &live);
        assert!(text.contains(".data.password: <redacted> → <redacted>"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("b2xk") && !text.contains("aHVudGVyMg"), "{text}");
        let d = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
        let l = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        assert_eq!(describe(&d, &l), ".data.a: \"1\" → \"2\"\n");
        assert_eq!(describe(&d, &d), "");
    }

    #[test]
    fn ignore_differences_by_pointer_and_manager() {
        use crate::app::IgnoreDifference;
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        let mut live = desired.clone();
        live["spec"]["replicas"] = json!(7);
        live["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        let rule = |pointers: &[&str], managers: &[&str]| IgnoreDifference {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: pointers.iter().map(|s| s.to_string()).collect(),
            managed_fields_managers: managers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(drifted_fields_ignoring(&desired, &live, &[]), [".spec.replicas"]);
        assert!(drifted_fields_ignoring(&desired, &live, &[rule(&["/spec/replicas"], &[])]).is_empty());
        assert!(drifted_fields_ignoring(&desired, &live, &[rule(&[], &["kube-controller-manager"])]).is_empty());
        assert_eq!(drifted_fields_ignoring(&desired, &live, &[rule(&[], &["someone-else"])]), [".spec.replicas"]);
        let other_kind = IgnoreDifference { kind: "StatefulSet".into(), ..rule(&["/spec/replicas"], &[]) };
        assert_eq!(drifted_fields_ignoring(&desired, &live, &[other_kind]), [".spec.replicas"]);
        // List items by key.
        let mut l2 = desired.clone();
        l2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        l2["metadata"]["managedFields"] = json!([{"manager": "injector", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {"f:image": {}}}}}}}}]);
        assert!(drifted_fields_ignoring(&desired, &l2, &[rule(&[], &["injector"])]).is_empty());
        // By jq path expression.
        let jq = IgnoreDifference {
            jq_path_expressions: vec![".spec.template.spec.containers[] | select(.name == \"a\") | .image".into()],
            ..rule(&[], &[])
        };
        assert!(drifted_fields_ignoring(&desired, &l2, &[jq]).is_empty());
        assert_eq!(drifted_fields_ignoring(&desired, &l2, &[]), [".spec.template.spec.containers[a].image"]);
    }

    #[test]
    fn removed_fields_are_drift_only_when_the_agent_owns_them() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "web"}}, "data": {"a": "1"}});
        let mut live = desired.clone();
        live["metadata"]["labels"]["team"] = json!("x");
        live["metadata"]["labels"]["owner"] = json!("ops");
        live["data"]["b"] = json!("2");
        live["metadata"]["managedFields"] = json!([
            {"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}, "f:team": {}}}}},
            {"manager": "kubectl-label", "operation": "Update", "fieldsV1": {"f:metadata": {"f:labels": {"f:owner": {}}}}}
        ]);
        let opts = Options { ignore: &[], manager: Some("bosun-agent") };
        let found: Vec<String> = drift(&desired, &live, opts).into_iter().map(|d| d.path).collect();
        assert_eq!(found, [".data.b", ".metadata.labels.team"]);
        // Without the manager, or for another manager, nothing was removed.
        assert!(drifted_fields(&desired, &live).is_empty());
        assert!(drift(&desired, &live, Options { ignore: &[], manager: Some("someone") }).is_empty());
        let text = describe_drift(&desired, &live, &drift(&desired, &live, opts));
        assert!(text.contains(".metadata.labels.team: \"x\" → <absent> (removed from Git)"), "{text}");
    }
}
