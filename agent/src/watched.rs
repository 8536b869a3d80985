//! The objects the agent's reflectors hold and its writes return: each as the JSON the API
//! server delivered, shared with every pass that reads it, beside the few metadata fields the
//! reflector and the wake-ups key on.
//!
//! Passes judge objects as JSON (`bosun_core` diffs and health read `serde_json::Value`s). A
//! `DynamicObject` would keep the metadata typed and need converting back to JSON — every
//! field of `managedFields` included — whenever the object changed; a `Watched` is parsed
//! once, when the event arrives, and its JSON is handed out as it is.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, ObjectMeta};
use kube::core::DynamicResourceScope;
use kube::core::Resource;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An object as its watch delivered it.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Name, namespace, uid, resourceVersion, labels and owner references only: the rest is
    /// in `json`.
    pub metadata: ObjectMeta,
    /// The whole object, with `apiVersion` and `kind` (filled in by [`Watched::fill_type`]
    /// where a list left them out).
    pub json: Arc<Value>,
}

impl Watched {
    /// Sets `apiVersion` and `kind` when the server left them out (list items).
    pub fn fill_type(&mut self, ar: &ApiResource) {
        let missing = |v: &Value, field: &str| v[field].as_str().is_none_or(str::is_empty);
        let (version, kind) = (missing(&self.json, "apiVersion"), missing(&self.json, "kind"));
        if !(version || kind) {
            return;
        }
        if let Some(o) = self.json_mut().as_object_mut() {
            if version {
                o.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
            }
            if kind {
                o.insert("kind".into(), Value::String(ar.kind.clone()));
            }
        }
    }

    /// An object to send (a body to create or replace), read like a delivered one.
    pub fn from_json(json: Value) -> Result<Self, serde_json::Error> {
        Watched::deserialize(json)
    }

    /// The JSON, to change before the reflector stores it (no other holder yet).
    pub fn json_mut(&mut self) -> &mut Value {
        Arc::make_mut(&mut self.json)
    }
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Value::deserialize(d)?;
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Keys {
            name: Option<String>,
            namespace: Option<String>,
            uid: Option<String>,
            resource_version: Option<String>,
            labels: Option<BTreeMap<String, String>>,
            owner_references: Option<Vec<OwnerReference>>,
        }
        let keys = match json.get("metadata") {
            Some(m) => Keys::deserialize(m).map_err(serde::de::Error::custom)?,
            None => Keys::default(),
        };
        let metadata = ObjectMeta {
            name: keys.name,
            namespace: keys.namespace,
            uid: keys.uid,
            resource_version: keys.resource_version,
            labels: keys.labels,
            owner_references: keys.owner_references,
            ..Default::default()
        };
        Ok(Watched { metadata, json: Arc::new(json) })
    }
}

/// Sent as its JSON.
impl Serialize for Watched {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl Resource for Watched {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_item_keeps_its_json_whole_and_gets_its_type_filled_in() {
        let item = json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "42",
                "labels": {"app.kubernetes.io/instance": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}],
                "managedFields": [{"manager": "bosun", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
                "creationTimestamp": "2026-12-03T10:00:00Z"},
            "spec": {"replicas": 2},
        });
        let mut w: Watched = serde_json::from_value(item.clone()).unwrap();
        let m = &w.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref()),
            (Some("web"), Some("prod"), Some("u1"))
        );
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(m.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "web");
        assert_eq!(m.owner_references.as_ref().unwrap()[0].uid, "d1");
        assert!(m.managed_fields.is_none(), "only the keys are parsed");
        let ar = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("apps", "v1", "ReplicaSet"));
        w.fill_type(&ar);
        let mut expected = item;
        expected["apiVersion"] = json!("apps/v1");
        expected["kind"] = json!("ReplicaSet");
        assert_eq!(*w.json, expected, "the JSON as delivered, typed");
        // A watch event's object carries its type: left as it is, and not copied.
        let before = Arc::as_ptr(&w.json);
        w.fill_type(&ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Other")));
        assert_eq!((w.json["kind"].as_str(), Arc::as_ptr(&w.json)), (Some("ReplicaSet"), before));
        // Metadata of the wrong shape is an error, as a typed object's would be.
        assert!(serde_json::from_value::<Watched>(json!({"metadata": {"labels": {"a": 1}}})).is_err());
    }
}
