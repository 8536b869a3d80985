//! The agent's Kubernetes shell: resolving kinds through discovery (cached), reading,
//! server-side applying and deleting objects. Only the agent talks to a Kubernetes API.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bosun_core::ObjectRef;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use parking_lot::Mutex;
use serde_json::Value;

use crate::watched::Watched;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot {verb} an object without apiVersion, kind and metadata.name (or generateName)")]
    NoIdentity { verb: &'static str },
    #[error("{object}: kind {kind} is not served by the cluster (is its CRD installed?)")]
    UnknownKind { object: String, kind: String },
    #[error("{object}: looking up kind {kind} in the cluster's API discovery failed: {source}")]
    Discovery { object: String, kind: String, source: kube::Error },
    #[error("{object}: {verb} failed: {source}")]
    Api { object: String, verb: &'static str, source: kube::Error },
}

/// (group, version, kind).
type KindKey = (String, String, String);

/// A cluster as the agent uses it.
pub struct ClusterApi {
    client: kube::Client,
    field_manager: String,
    kinds: Mutex<HashMap<KindKey, (ApiResource, bool)>>,
}

fn gvk_of(obj: &Value) -> GroupVersionKind {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let (g, v) = av.split_once('/').unwrap_or(("", av));
    GroupVersionKind::gvk(g, v, obj["kind"].as_str().unwrap_or_default())
}

/// A discovery failure: the kind (or its group/version) is not served — a 404 or a missing
/// kind — or something else went wrong on the way, whose cause is kept.
fn classify_discovery(object: String, kind: String, source: kube::Error) -> KubeError {
    use kube::error::DiscoveryError;
    match &source {
        kube::Error::Api(s) if s.code == 404 => KubeError::UnknownKind { object, kind },
        kube::Error::Discovery(
            DiscoveryError::MissingKind(_) | DiscoveryError::MissingApiGroup(_) | DiscoveryError::MissingResource(_),
        ) => KubeError::UnknownKind { object, kind },
        _ => KubeError::Discovery { object, kind, source },
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// Deletion started; finalizers or dependents (foreground) hold the object for now.
    Pending(Arc<Value>),
    Gone,
    /// The object is not the one seen (another uid, or changed since): it was left alone.
    Replaced,
}

fn identity(obj: &Value, verb: &'static str) -> Result<ObjectRef, KubeError> {
    ObjectRef::of_manifest(obj).ok_or(KubeError::NoIdentity { verb })
}

/// The body to send: without a namespace when the kind is cluster-scoped.
fn scoped(obj: &Value, namespaced: bool) -> Cow<'_, Value> {
    if namespaced || obj["metadata"].get("namespace").is_none() {
        return Cow::Borrowed(obj);
    }
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Cow::Owned(o)
}

/// What the server returned, as JSON with its type (`apiVersion`, `kind`).
fn typed(mut out: Watched, ar: &ApiResource) -> Arc<Value> {
    out.fill_type(ar);
    out.json
}

fn namespaced(caps: &ApiCapabilities) -> bool {
    matches!(caps.scope, Scope::Namespaced)
}

/// The API of a kind in one namespace, or across the cluster (`None`: every namespace, or a
/// cluster-scoped kind).
pub fn dynamic_api<K>(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

impl ClusterApi {
    pub fn new(client: kube::Client, field_manager: &str) -> Self {
        Self { client, field_manager: field_manager.to_string(), kinds: Mutex::new(HashMap::new()) }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The field manager the agent applies under.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The API resource of a manifest object and whether it is namespaced.
    pub async fn resolve(&self, obj: &Value) -> Result<(ApiResource, bool), KubeError> {
        let gvk = gvk_of(obj);
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        if let Some(hit) = self.kinds.lock().get(&key) {
            return Ok(hit.clone());
        }
        let object = ObjectRef::of(obj).map(|r| r.to_string()).unwrap_or_default();
        let kind = format!("{}/{}", obj["apiVersion"].as_str().unwrap_or_default(), gvk.kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| classify_discovery(object, kind, source))?;
        let out = (ar, namespaced(&caps));
        self.kinds.lock().insert(key, out.clone());
        Ok(out)
    }

    /// The API resource of a group/kind at its preferred version (for prune, where only the
    /// identity is known).
    pub async fn resolve_ref(&self, r: &ObjectRef) -> Result<(ApiResource, bool), KubeError> {
        if let Some(hit) =
            self.kinds.lock().iter().find(|((g, _, k), _)| *g == r.group && *k == r.kind).map(|(_, v)| v.clone())
        {
            return Ok(hit);
        }
        let kind = format!("{}/{}", r.group, r.kind);
        let unknown = || KubeError::UnknownKind { object: r.to_string(), kind: kind.clone() };
        let group = kube::discovery::group(&self.client, &r.group)
            .await
            .map_err(|source| classify_discovery(r.to_string(), kind.clone(), source))?;
        let (ar, caps) = group.recommended_kind(&r.kind).ok_or_else(unknown)?;
        Ok((ar, namespaced(&caps)))
    }

    fn api(&self, ar: &ApiResource, namespaced: bool, ns: &str) -> Api<Watched> {
        dynamic_api(&self.client, ar, namespaced.then_some(ns))
    }

    /// Server-side apply under the agent's field manager, taking over conflicting fields.
    /// The namespace of a cluster-scoped kind is dropped (it may have been defaulted before
    /// the kind was known). Returns the object as the server stored it.
    pub async fn apply(&self, obj: &Value) -> Result<Arc<Value>, KubeError> {
        let (ar, namespaced) = self.resolve(obj).await?;
        let r = identity(obj, "apply")?;
        let api = self.api(&ar, namespaced, &r.namespace);
        let pp = PatchParams::apply(&self.field_manager).force();
        let out = api.patch(&r.name, &pp, &Patch::Apply(&*scoped(obj, namespaced))).await.map_err(|source| {
            self.forget_if_not_served(obj, &source);
            KubeError::Api { object: r.to_string(), verb: "apply", source }
        })?;
        Ok(typed(out, &ar))
    }

    /// An apply answered 404 means the kind is no longer served at the version discovery
    /// found (a CustomResourceDefinition deleted or changed since): forget it, so the next
    /// pass asks discovery again instead of writing to a path that is gone.
    fn forget_if_not_served(&self, obj: &Value, e: &kube::Error) {
        if let kube::Error::Api(status) = e
            && status.code == 404
        {
            let gvk = gvk_of(obj);
            self.kinds.lock().remove(&(gvk.group, gvk.version, gvk.kind));
        }
    }

    /// Replaces the object (Replace=true): PUT at the live resourceVersion, or apply when it
    /// does not exist yet.
    pub async fn replace(&self, obj: &Value, live: Option<&Value>) -> Result<Arc<Value>, KubeError> {
        let Some(live) = live else { return self.apply(obj).await };
        let (ar, namespaced) = self.resolve(obj).await?;
        let r = identity(obj, "replace")?;
        let api = self.api(&ar, namespaced, &r.namespace);
        let mut body = scoped(obj, namespaced).into_owned();
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
        let body = Watched::from_json(body).map_err(|e| KubeError::Api {
            object: r.to_string(),
            verb: "replace",
            source: kube::Error::SerdeError(e),
        })?;
        let pp = kube::api::PostParams { field_manager: Some(self.field_manager.clone()), ..Default::default() };
        let out = api.replace(&r.name, &pp, &body).await.map_err(|source| KubeError::Api {
            object: r.to_string(),
            verb: "replace",
            source,
        })?;
        Ok(typed(out, &ar))
    }

    /// Creates an object (`POST`): hooks, whose name may be generated by the server.
    pub async fn create(&self, obj: &Value) -> Result<Arc<Value>, KubeError> {
        let (ar, namespaced) = self.resolve(obj).await?;
        let r = identity(obj, "create")?;
        let api = self.api(&ar, namespaced, &r.namespace);
        let body = Watched::from_json(scoped(obj, namespaced).into_owned()).map_err(|e| KubeError::Api {
            object: r.to_string(),
            verb: "create",
            source: kube::Error::SerdeError(e),
        })?;
        let pp = kube::api::PostParams { field_manager: Some(self.field_manager.clone()), ..Default::default() };
        let out = api.create(&pp, &body).await.map_err(|source| KubeError::Api {
            object: r.to_string(),
            verb: "create",
            source,
        })?;
        Ok(typed(out, &ar))
    }

    /// Deletes an object only if it is still the one seen: `uid` (and `resource_version`,
    /// when the object must also be unchanged) as preconditions, so an object deleted and
    /// created again by someone else in between is left alone.
    pub async fn delete(
        &self,
        r: &ObjectRef,
        uid: &str,
        resource_version: Option<&str>,
        propagation: bosun_core::app::Propagation,
    ) -> Result<Deleted, KubeError> {
        let (ar, namespaced) = self.resolve_ref(r).await?;
        let api = self.api(&ar, namespaced, &r.namespace);
        let policy = match propagation {
            bosun_core::app::Propagation::Foreground => PropagationPolicy::Foreground,
            bosun_core::app::Propagation::Background => PropagationPolicy::Background,
            bosun_core::app::Propagation::Orphan => PropagationPolicy::Orphan,
        };
        let preconditions = (!uid.is_empty()).then(|| kube::api::Preconditions {
            uid: Some(uid.to_string()),
            resource_version: resource_version.map(str::to_string),
        });
        let guarded = preconditions.is_some();
        let dp = DeleteParams { propagation_policy: Some(policy), preconditions, ..Default::default() };
        match api.delete(&r.name, &dp).await {
            // The object while its finalizers or dependents hold it, or a Status once it is gone.
            Ok(outcome) => Ok(match outcome.left() {
                Some(o) => Deleted::Pending(typed(o, &ar)),
                None => Deleted::Gone,
            }),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Gone),
            // A DELETE conflicts only when a precondition does not hold.
            Err(kube::Error::Api(s)) if s.code == 409 && guarded => Ok(Deleted::Replaced),
            Err(source) => Err(KubeError::Api { object: r.to_string(), verb: "delete", source }),
        }
    }

    /// Whether a kind is namespaced (for defaulting the namespace of manifests).
    pub async fn is_namespaced(&self, obj: &Value) -> Result<bool, KubeError> {
        Ok(self.resolve(obj).await?.1)
    }

    /// Forgets cached kinds (after a CRD is created, or a kind went missing).
    pub fn forget_kinds(&self) {
        self.kinds.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_failures_say_their_cause() {
        let status = |code: u16| kube::Error::Api(kube::core::Status::failure("x", "y").with_code(code).boxed());
        let unknown = classify_discovery("o".into(), "example.com/v1/Widget".into(), status(404));
        assert!(matches!(unknown, KubeError::UnknownKind { .. }));
        assert!(unknown.to_string().contains("CRD"));
        let missing = classify_discovery(
            "o".into(),
            "k".into(),
            kube::Error::Discovery(kube::error::DiscoveryError::MissingKind("Widget".into())),
        );
        assert!(matches!(missing, KubeError::UnknownKind { .. }));
        for other in [status(403), status(500)] {
            let e = classify_discovery("o".into(), "apps/v1/Deployment".into(), other);
            assert!(matches!(e, KubeError::Discovery { .. }), "{e}");
            assert!(!e.to_string().contains("CRD"), "{e}");
        }
    }

    fn crd(scope: &str) -> Value {
        serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": scope,
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        })
    }

    /// A CRD deleted and created again cluster-scoped: the write to the kind's old path is
    /// answered 404, and the next one goes where discovery now says, without a restart.
    #[tokio::test]
    async fn a_kind_served_elsewhere_after_its_crd_changed_is_found_again() {
        let sim = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await.unwrap();
        let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
        let api = ClusterApi::new(client.clone(), "bosun-agent");
        let widget = serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"}, "spec": {"size": 1}
        });
        api.apply(&crd("Namespaced")).await.unwrap();
        let applied = api.apply(&widget).await.unwrap();
        assert_eq!(applied["metadata"]["namespace"], "default");

        let crds = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        dynamic_api::<kube::api::DynamicObject>(&client, &crds, None)
            .delete("widgets.example.com", &Default::default())
            .await
            .unwrap();
        api.apply(&crd("Cluster")).await.unwrap();

        let first = api.apply(&widget).await.unwrap_err();
        assert!(matches!(&first, KubeError::Api { verb: "apply", .. }), "{first}");
        let again = api.apply(&widget).await.unwrap();
        assert!(again["metadata"].get("namespace").is_none_or(Value::is_null), "cluster-scoped now: {again}");
    }
}
