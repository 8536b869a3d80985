//! The API resource types the simulated server knows: built-in kinds plus CRD-defined ones.

use std::sync::{Arc, LazyLock};

use bosun_core::schema::{ListKind, Shape};
use serde_json::{Value, json};

/// How a list field merges under server-side apply and strategic merge patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Items identified by these keys (an "associative list", `x-kubernetes-list-map-keys`).
    Map(&'static [&'static str]),
    /// A set of scalars.
    Set,
}

/// One REST resource (a kind served at `/api[s]/{group}/{version}/{plural}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub has_status: bool,
    pub has_scale: bool,
    pub categories: Vec<String>,
    /// Built-in kinds know their list semantics; custom resources treat every list as atomic,
    /// as a real server does for CRD schemas without `x-kubernetes-list-type`.
    pub builtin: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The storage key: group and plural (all versions of a resource share one store).
    pub fn key(&self) -> ResKey {
        ResKey { group: self.group.clone(), plural: self.plural.clone() }
    }

    /// The `APIResource` entry for discovery.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut verbs = vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        verbs.sort();
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "storageVersionHash": format!("{:x}", fnv(self.key_string().as_bytes()) & 0xffff_ffff),
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        let mut out = vec![entry];
        if self.has_status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced, "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.has_scale {
            out.push(json!({"name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        out
    }

    fn key_string(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// The shape of this kind's objects, from the built-in types' schema (custom resources
    /// have none).
    pub fn shape(&self) -> Option<Shape> {
        if !self.builtin {
            return None;
        }
        bosun_core::schema::kind(&self.api_version(), &self.kind).map(Shape::Object)
    }
}

/// List semantics of a list whose shape (from the schema) is `shape` and whose items are
/// `items`: an associative list needs every item to carry its first key (else it is merged as
/// atomic, as the server would refuse it); a list the schema does not describe — every list of
/// a custom resource — is atomic, as a real server treats CRD lists without
/// `x-kubernetes-list-type`.
pub fn list_type(shape: Option<Shape>, items: &[Value]) -> ListType {
    match shape {
        Some(Shape::List(ListKind::Map(keys), _))
            if !keys.is_empty() && items.iter().all(|i| i.get(keys[0]).is_some()) =>
        {
            ListType::Map(keys)
        }
        Some(Shape::List(ListKind::Set, _)) => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Storage key of a resource: (group, plural).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

/// The key fields of a map-list item, with server defaults filled in (`protocol: TCP`).
pub fn item_key(item: &Value, keys: &[&str]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) => {
                out.insert((*k).to_string(), v.clone());
            }
            None => {
                if let Some(d) = bosun_core::schema::key_default(k) {
                    out.insert((*k).to_string(), Value::String(d.into()));
                }
            }
        }
    }
    out
}

pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[allow(clippy::too_many_arguments)]
fn rt(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    has_status: bool,
    has_scale: bool,
) -> ResourceType {
    let categories = match kind {
        "Pod"
        | "Service"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "CronJob"
        | "HorizontalPodAutoscaler"
        | "ReplicationController" => vec!["all".to_string()],
        _ => vec![],
    };
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        namespaced,
        has_status,
        has_scale,
        categories,
        builtin: true,
    }
}

/// The built-in kinds served by every simulated cluster.
pub static BUILTIN: LazyLock<Arc<Vec<ResourceType>>> = LazyLock::new(|| {
    Arc::new(vec![
        rt("", "v1", "Namespace", "namespaces", false, &["ns"], true, false),
        rt("", "v1", "ConfigMap", "configmaps", true, &["cm"], false, false),
        rt("", "v1", "Secret", "secrets", true, &[], false, false),
        rt("", "v1", "Service", "services", true, &["svc"], true, false),
        rt("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false, false),
        rt("", "v1", "Pod", "pods", true, &["po"], true, false),
        rt("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true, false),
        rt("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], true, false),
        rt("", "v1", "Endpoints", "endpoints", true, &["ep"], false, false),
        rt("", "v1", "Event", "events", true, &["ev"], false, false),
        rt("", "v1", "Node", "nodes", false, &["no"], true, false),
        rt("", "v1", "LimitRange", "limitranges", true, &["limits"], false, false),
        rt("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], true, false),
        rt("", "v1", "ReplicationController", "replicationcontrollers", true, &["rc"], true, true),
        rt("apps", "v1", "Deployment", "deployments", true, &["deploy"], true, true),
        rt("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true, true),
        rt("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true, false),
        rt("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true, true),
        rt("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], false, false),
        rt("batch", "v1", "Job", "jobs", true, &[], true, false),
        rt("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true, false),
        rt("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], true, false),
        rt("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], false, false),
        rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false, false),
        rt("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false, false),
        rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false, false),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false, false),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false, false),
        rt("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], true, false),
        rt("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], true, false),
        rt(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            false,
        ),
        rt("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[], true, false),
        rt("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false, false),
        rt("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false, false),
        rt("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], false, false),
        rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false, false),
    ])
});

/// Resource types from one CustomResourceDefinition object (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let (Some(kind), Some(plural)) = (names["kind"].as_str(), names["plural"].as_str()) else {
        return vec![];
    };
    let singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let categories: Vec<String> = names["categories"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            Some(ResourceType {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: singular.clone(),
                short_names: short_names.clone(),
                namespaced,
                has_status: v["subresources"].get("status").is_some(),
                has_scale: v["subresources"].get("scale").is_some(),
                categories: categories.clone(),
                builtin: false,
            })
        })
        .collect()
}

/// All resource types served by one cluster: the built-ins plus its CRDs.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    custom: Vec<ResourceType>,
}

impl Registry {
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        BUILTIN.iter().chain(self.custom.iter())
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.all().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn by_key(&self, key: &ResKey) -> Option<&ResourceType> {
        self.all().find(|r| r.group == key.group && r.plural == key.plural)
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.all().find(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// Replaces the types defined by the CRD named `crd_name` (`plural.group`).
    pub fn set_crd(&mut self, crd_name: &str, types: Vec<ResourceType>) {
        self.custom.retain(|r| format!("{}.{}", r.plural, r.group) != crd_name);
        self.custom.extend(types);
    }

    /// Group → versions (preferred first) for discovery.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all().filter(|r| !r.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a ResourceType> {
        self.all().filter(move |r| r.group == group && r.version == version)
    }
}
