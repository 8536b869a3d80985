//! Sync planning: the order objects are applied in, and which objects to prune.

use serde_json::Value;

use crate::object::ObjectRef;

/// Install order by kind (Helm's and Argo CD's): namespaces and cluster-wide prerequisites
/// first, workloads after their configuration; unknown kinds and custom resources last.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// Position of a kind in the install order (unknown kinds after every known one).
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(KIND_ORDER.len())
}

/// Objects in apply order: by kind rank, then kind, namespace and name.
pub fn apply_order(objects: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = objects.iter().collect();
    out.sort_by_key(|o| {
        let r = ObjectRef::of(o);
        let kind = r.as_ref().map(|r| r.kind.clone()).unwrap_or_default();
        (kind_rank(&kind), r)
    });
    out
}

/// Objects applied before (the inventory) that the desired state no longer holds, in
/// reverse apply order (workloads before their namespace).
pub fn prune_candidates(inventory: &[ObjectRef], desired: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut out: Vec<ObjectRef> = inventory.iter().filter(|r| !desired.contains(r)).cloned().collect();
    out.sort_by_key(|r| std::cmp::Reverse((kind_rank(&r.kind), r.clone())));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})
    }

    #[test]
    fn order_table() {
        let objs = vec![
            obj("Widget", "w"),
            obj("Deployment", "b"),
            obj("Service", "s"),
            obj("Deployment", "a"),
            obj("CustomResourceDefinition", "widgets.example.com"),
            obj("ConfigMap", "c"),
            obj("Namespace", "n"),
        ];
        let order: Vec<String> = apply_order(&objs)
            .iter()
            .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            order,
            [
                "Namespace/n",
                "ConfigMap/c",
                "CustomResourceDefinition/widgets.example.com",
                "Service/s",
                "Deployment/a",
                "Deployment/b",
                "Widget/w"
            ]
        );
    }

    #[test]
    fn prune_is_inventory_minus_desired_in_reverse_order() {
        let r = |kind: &str, name: &str| ObjectRef {
            group: String::new(),
            kind: kind.into(),
            namespace: String::new(),
            name: name.into(),
        };
        let inventory = vec![r("Namespace", "n"), r("Deployment", "old"), r("ConfigMap", "keep")];
        let desired = vec![r("ConfigMap", "keep")];
        assert_eq!(prune_candidates(&inventory, &desired), vec![r("Deployment", "old"), r("Namespace", "n")]);
        assert!(prune_candidates(&desired, &desired).is_empty());
    }
}
