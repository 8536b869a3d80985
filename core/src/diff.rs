//! Drift comparison: does the live object hold everything the desired manifest says?
//!
//! Server-side apply leaves fields owned by others and server defaults in place, so a live
//! object matches when every field of the desired object is present with the same value.
//! Lists of objects with a `name` are matched by name; other lists element by element.
//! Secret `stringData` is compared as the base64 `data` the server stores it as.

use base64::Engine;
use serde_json::{Value, json};

/// Paths where the live object differs from the desired one (empty: in sync).
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<String> {
    let desired = normalize_desired(desired, live);
    let mut out = Vec::new();
    compare(&desired, live, String::new(), &mut out);
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

fn normalize_desired(desired: &Value, live: &Value) -> Value {
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
    if live["metadata"].get("namespace").is_none()
        && let Some(m) = d["metadata"].as_object_mut()
    {
        m.remove("namespace");
    }
    d
}

fn compare(desired: &Value, live: &Value, path: String, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let p = format!("{path}.{k}");
                match l.get(k) {
                    Some(lv) => compare(dv, lv, p, out),
                    None if is_empty(dv) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            let named = d.iter().all(|i| i.get("name").is_some());
            for (i, di) in d.iter().enumerate() {
                let li = if named { l.iter().find(|x| x.get("name") == di.get("name")) } else { l.get(i) };
                let p = if named {
                    format!("{path}[{}]", di["name"].as_str().unwrap_or_default())
                } else {
                    format!("{path}[{i}]")
                };
                match li {
                    Some(li) => compare(di, li, p, out),
                    None => out.push(p),
                }
            }
            if !named && l.len() > d.len() && !d.is_empty() {
                out.push(format!("{path}[{}]", d.len()));
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (d, l) if d == l => {}
        (Value::Null, _) => {}
        _ => out.push(path),
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
