//! Drift comparison: does the live object hold everything the desired manifest says?
//!
//! Server-side apply leaves fields owned by others and server defaults in place, so a live
//! object matches when every field of the desired object is present with the same value.
//! Lists of objects with a `name` are matched by name; other lists element by element.
//! Secret `stringData` is compared as the base64 `data` the server stores it as.

use base64::Engine;
use serde_json::{Value, json};

/// Like [`drifted_fields`], leaving out what the matching `ignore` rules name: JSON pointers,
/// and fields owned (per the live object's `managedFields`) by the listed managers.
pub fn drifted_fields_ignoring(desired: &Value, live: &Value, ignore: &[crate::app::IgnoreDifference]) -> Vec<String> {
    let applies = crate::ObjectRef::of(desired).is_some_and(|r| ignore.iter().any(|i| i.matches(&r)));
    if !applies {
        return drifted_fields(desired, live);
    }
    drifted_fields(&strip_ignored(desired, live, ignore), &strip_ignored(live, live, ignore))
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
        let leaf = child.as_object().is_none_or(|m| m.is_empty() || (m.len() == 1 && m.contains_key(".")));
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

/// Whether syncing must write `desired`: it is missing, or differs beyond ignored fields.
pub fn needs_apply(desired: &Value, live: Option<&Value>, ignore: &[crate::app::IgnoreDifference]) -> bool {
    live.is_none_or(|l| !drifted_fields_ignoring(desired, l, ignore).is_empty())
}

/// Paths where the live object differs from the desired one (empty: in sync).
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<String> {
    let desired = normalize_desired(desired, live);
    let mut out = Vec::new();
    compare(&desired, live, &mut String::new(), &mut out);
    out
}

/// A person-readable diff: one `path: live → desired` line per drifted field. Secret values
/// are never shown.
pub fn describe(desired: &Value, live: &Value) -> String {
    let secret = desired["kind"] == "Secret" || live["kind"] == "Secret";
    let normalized = normalize_desired(desired, live);
    let mut out = String::new();
    for path in drifted_fields(desired, live) {
        let at = |v: &Value| -> String {
            if secret && (path.starts_with(".data") || path.starts_with(".stringData")) {
                return "<redacted>".into();
            }
            let mut cur = v;
            for seg in path.trim_start_matches('.').split('.') {
                let (field, index) = match seg.split_once('[') {
                    Some((f, i)) => (f, Some(i.trim_end_matches(']'))),
                    None => (seg, None),
                };
                cur = &cur[field];
                if let Some(i) = index {
                    cur = match i.parse::<usize>() {
                        Ok(n) => &cur[n],
                        Err(_) => {
                            cur.as_array().and_then(|a| a.iter().find(|x| x["name"] == i)).unwrap_or(&Value::Null)
                        }
                    };
                }
            }
            if cur.is_null() { "<absent>".into() } else { cur.to_string() }
        };
        out.push_str(&format!("{path}: {} → {}\n", at(live), at(&normalized)));
    }
    out
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

/// Walks `desired` against `live`; `path` is one buffer extended and truncated as the walk
/// goes, so an object in sync costs no allocation per field.
fn compare(desired: &Value, live: &Value, path: &mut String, out: &mut Vec<String>) {
    use std::fmt::Write;
    let mark = path.len();
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                path.push('.');
                path.push_str(k);
                match l.get(k) {
                    Some(lv) => compare(dv, lv, path, out),
                    None if is_empty(dv) => {}
                    None => out.push(path.clone()),
                }
                path.truncate(mark);
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            let named = d.iter().all(|i| i.get("name").is_some());
            for (i, di) in d.iter().enumerate() {
                let li = if named { l.iter().find(|x| x.get("name") == di.get("name")) } else { l.get(i) };
                if named {
                    let _ = write!(path, "[{}]", di["name"].as_str().unwrap_or_default());
                } else {
                    let _ = write!(path, "[{i}]");
                }
                match li {
                    Some(li) => compare(di, li, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(mark);
            }
            if !named && l.len() > d.len() && !d.is_empty() {
                out.push(format!("{path}[{}]", d.len()));
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (d, l) if d == l => {}
        (Value::Null, _) => {}
        _ => out.push(path.clone()),
    }
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
    fn drift_table() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "x", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        live["status"] = json!({"replicas": 2});
        assert!(drifted_fields(&desired, &live).is_empty(), "server defaults are not drift");

        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(5);
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_eq!(drifted_fields(&desired, &edited), [".spec.replicas", ".spec.template.spec.containers[web].image"]);

        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}});
        let live_secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"}, "data": {"k": "dg=="}, "type": "Opaque"});
        assert!(drifted_fields(&secret, &live_secret).is_empty());

        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "ignored"}});
        assert!(
            drifted_fields(&ns, &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}))
                .is_empty()
        );
    }
}
