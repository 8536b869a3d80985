//! The shapes of built-in Kubernetes objects, from their OpenAPI definitions: which fields are
//! resource quantities, maps, objects, and lists — with the list's semantics (atomic, a set,
//! or a map whose items are identified by key fields, as server-side apply merges them).
//!
//! The tables are generated from the k8s-openapi crate (`scripts/gen-k8s-schema.py`, checked
//! in CI). Kinds not in them (custom resources) have no schema: callers fall back to plain
//! JSON comparison.

#[rustfmt::skip]
mod generated;

/// A type of the generated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeId(pub(crate) u16);

/// One type: its non-scalar fields, sorted by name.
#[derive(Debug)]
pub struct TypeDef {
    /// The OpenAPI definition, e.g. `io.k8s.api.core.v1.Container`.
    pub name: &'static str,
    pub fields: &'static [(&'static str, Shape)],
}

/// What a field holds, when it is not a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A resource quantity (`500m`, `1Gi`), compared by value.
    Quantity,
    Object(TypeId),
    /// A map from strings to these values.
    Map(Elem),
    List(ListKind, Elem),
}

/// What a map or list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Scalar,
    Quantity,
    Object(TypeId),
}

/// How a list is merged and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole; order matters.
    Atomic,
    /// A set of scalars; order does not matter, each applier owns its members.
    Set,
    /// Items identified by these fields (`x-kubernetes-list-map-keys`).
    Map(&'static [&'static str]),
}

impl TypeId {
    pub fn def(self) -> &'static TypeDef {
        &generated::TYPES[self.0 as usize]
    }

    /// The shape of field `name`; `None` for scalars and fields the schema does not know.
    pub fn field(self, name: &str) -> Option<Shape> {
        let fields = self.def().fields;
        fields.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| fields[i].1)
    }
}

impl Elem {
    /// The shape of one element (`None` for scalars).
    pub fn shape(self) -> Option<Shape> {
        match self {
            Elem::Scalar => None,
            Elem::Quantity => Some(Shape::Quantity),
            Elem::Object(t) => Some(Shape::Object(t)),
        }
    }
}

impl Shape {
    /// The shape below one step: a field of an object, or an entry of a map.
    pub fn child(self, name: &str) -> Option<Shape> {
        match self {
            Shape::Object(t) => t.field(name),
            Shape::Map(e) => e.shape(),
            _ => None,
        }
    }

    /// The shape of the items of a list.
    pub fn item(self) -> Option<Shape> {
        match self {
            Shape::List(_, e) => e.shape(),
            _ => None,
        }
    }
}

/// The type of a built-in kind at an API version (`apps/v1`, `Deployment`).
pub fn kind(api_version: &str, kind: &str) -> Option<TypeId> {
    let kinds = generated::KINDS;
    kinds.binary_search_by(|(av, k, _)| (*av, *k).cmp(&(api_version, kind))).ok().map(|i| kinds[i].2)
}

/// The shape of a whole object from its `apiVersion` and `kind`.
pub fn of_object(obj: &serde_json::Value) -> Option<Shape> {
    kind(obj["apiVersion"].as_str()?, obj["kind"].as_str()?).map(Shape::Object)
}

/// The value the API server gives a list-map key that an item leaves out.
pub fn key_default(key: &str) -> Option<&'static str> {
    match key {
        "protocol" => Some("TCP"),
        _ => None,
    }
}

/// Whether `item` is the one `keys` identify with the key values of `want` (a key that
/// either side leaves out takes its server default).
pub fn same_item(keys: &[&str], want: &serde_json::Value, item: &serde_json::Value) -> bool {
    keys.iter().all(|k| {
        let (a, b) = (want.get(*k).filter(|x| !x.is_null()), item.get(*k).filter(|x| !x.is_null()));
        match (a, b) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            // One side leaves the key out: equal when the other holds the server's default.
            (Some(v), None) | (None, Some(v)) => key_default(k).is_some_and(|d| v.as_str() == Some(d)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_carry_their_list_semantics_and_quantities() {
        let deploy = kind("apps/v1", "Deployment").unwrap();
        let pod_spec = Shape::Object(deploy)
            .child("spec")
            .and_then(|s| s.child("template"))
            .and_then(|s| s.child("spec"))
            .unwrap();
        let containers = pod_spec.child("containers").unwrap();
        assert_eq!(
            containers,
            Shape::List(
                ListKind::Map(&["name"]),
                match containers {
                    Shape::List(_, e) => e,
                    _ => unreachable!(),
                }
            )
        );
        let container = containers.item().unwrap();
        assert!(matches!(
            container.child("ports"),
            Some(Shape::List(ListKind::Map(&["containerPort", "protocol"]), _))
        ));
        assert!(matches!(container.child("volumeMounts"), Some(Shape::List(ListKind::Map(&["mountPath"]), _))));
        assert!(matches!(container.child("env"), Some(Shape::List(ListKind::Map(&["name"]), _))));
        assert!(matches!(container.child("args"), Some(Shape::List(ListKind::Atomic, Elem::Scalar))));
        let limits = container.child("resources").and_then(|r| r.child("limits")).unwrap();
        assert_eq!(limits, Shape::Map(Elem::Quantity));
        assert_eq!(limits.child("cpu"), Some(Shape::Quantity));
        assert!(matches!(pod_spec.child("tolerations"), Some(Shape::List(ListKind::Atomic, _))));
        assert!(matches!(pod_spec.child("volumes"), Some(Shape::List(ListKind::Map(&["name"]), _))));
        // Quantities elsewhere: PVC requests, HPA targets, quotas, limit ranges.
        let pvc = Shape::Object(kind("v1", "PersistentVolumeClaim").unwrap());
        assert_eq!(
            pvc.child("spec").and_then(|s| s.child("resources")).and_then(|r| r.child("requests")),
            Some(Shape::Map(Elem::Quantity))
        );
        let quota = Shape::Object(kind("v1", "ResourceQuota").unwrap());
        assert_eq!(quota.child("spec").and_then(|s| s.child("hard")), Some(Shape::Map(Elem::Quantity)));
        let svc = Shape::Object(kind("v1", "Service").unwrap());
        assert!(matches!(
            svc.child("spec").and_then(|s| s.child("ports")),
            Some(Shape::List(ListKind::Map(&["port", "protocol"]), _))
        ));
        assert!(kind("example.com/v1", "Widget").is_none());
        let meta = Shape::Object(deploy).child("metadata").unwrap();
        assert!(matches!(meta.child("finalizers"), Some(Shape::List(ListKind::Set, Elem::Scalar))));
        assert_eq!(meta.child("labels"), Some(Shape::Map(Elem::Scalar)));
    }

    #[test]
    fn list_items_match_on_their_keys_with_server_defaults() {
        use serde_json::json;
        let keys: &[&str] = &["containerPort", "protocol"];
        assert!(same_item(keys, &json!({"containerPort": 80}), &json!({"containerPort": 80, "protocol": "TCP"})));
        assert!(!same_item(
            keys,
            &json!({"containerPort": 53, "protocol": "UDP"}),
            &json!({"containerPort": 53, "protocol": "TCP"})
        ));
        assert!(!same_item(&["name"], &json!({"name": "a"}), &json!({"name": "b"})));
    }
}
