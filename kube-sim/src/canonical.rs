//! What the API server does to an object's shape on the way to storage, for built-in kinds:
//! resource quantities in canonical form (`cpu: 1` → `"1"`, `0.5` → `"500m"`, `1024Mi` →
//! `"1Gi"`), and omitempty fields dropped (an empty list, map or string in a struct field is
//! not stored; empty objects and map entries are, as Go's `omitempty` leaves them).

use bosun_core::quantity::Quantity;
use bosun_core::schema::Shape;
use serde_json::{Value, json};

/// Rewrites `v`, whose shape (from the schema) is `shape`.
pub fn canonicalize(v: &mut Value, shape: Option<Shape>) {
    match v {
        Value::Object(m) => {
            let is_struct = matches!(shape, Some(Shape::Object(_)));
            for (k, child) in m.iter_mut() {
                let child_shape = shape.and_then(|s| s.child(k));
                canonical_value(child, child_shape);
            }
            if is_struct {
                m.retain(|k, child| {
                    let field = shape.and_then(|s| s.child(k));
                    !omitted(child, field) || matches!(k.as_str(), "name" | "namespace")
                });
            }
        }
        Value::Array(items) => {
            let item = shape.and_then(Shape::item);
            for i in items {
                canonical_value(i, item);
            }
        }
        _ => {}
    }
}

fn canonical_value(v: &mut Value, shape: Option<Shape>) {
    if shape == Some(Shape::Quantity) {
        if let Some(q) = Quantity::from_json(v) {
            *v = json!(q.canonical());
        }
        return;
    }
    canonicalize(v, shape);
}

/// Whether an omitempty struct field with this value is left out: empty lists, maps and
/// strings are; an empty object (a struct) is kept, as Go's encoder keeps it.
fn omitted(v: &Value, field: Option<Shape>) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty() && matches!(field, Some(Shape::Map(_))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_empty_fields_as_the_server_stores_them() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {}, "annotations": {"a": ""}},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "a", "image": "x:1", "env": [], "args": [], "workingDir": "",
                    "resources": {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": 0.5, "memory": "1e3"}},
                    "securityContext": {}}]}}}});
        let shape = bosun_core::schema::of_object(&d);
        canonicalize(&mut d, shape);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(c["resources"]["requests"], json!({"cpu": "500m", "memory": "1e3"}));
        for gone in ["env", "args", "workingDir"] {
            assert!(c.get(gone).is_none(), "{gone} kept");
        }
        assert_eq!(c["securityContext"], json!({}), "an empty struct is kept");
        assert!(d["metadata"].get("labels").is_none(), "an empty map is dropped");
        assert_eq!(d["metadata"]["annotations"], json!({"a": ""}), "map entries with empty values stay");
        // A ClusterRole with no rules.
        let mut r = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []});
        let shape = bosun_core::schema::of_object(&r);
        canonicalize(&mut r, shape);
        assert!(r.get("rules").is_none());
    }
}
