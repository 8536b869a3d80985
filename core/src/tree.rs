//! The objects a managed workload owns — a Deployment's ReplicaSets and their Pods, the Pods
//! of a StatefulSet, DaemonSet or (hook) Job — found by controller `ownerReferences`, each
//! with its health, for the resource tree Argo CD draws. Display only: nothing here decides a
//! sync or the Application's health (gitops-engine judges a Deployment by its own status too).

use std::sync::Arc;

use serde_json::Value;

use crate::ObjectRef;
use crate::health;
use crate::status::Health;
use crate::sync::{Live, ResourceReport};

/// At most this many owned objects are reported per Application and cluster; the report says
/// how many more there were.
pub const MAX_CHILDREN: usize = 200;

/// What the agent's cache knows of owned objects.
pub trait Owned {
    /// The objects in `namespace` whose controller owner has this uid.
    fn owned_by(&self, namespace: &str, uid: &str) -> Vec<Arc<Value>>;
}

/// One owned object under its owner (same namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub r: ObjectRef,
    pub parent_kind: String,
    pub parent_name: String,
    pub health: Health,
    pub message: String,
}

/// Kinds whose owned objects are looked for, and how deep (a Deployment's Pods are two
/// levels down, under their ReplicaSet).
fn depth(group: &str, kind: &str) -> usize {
    match (group, kind) {
        ("apps", "Deployment") => 2,
        ("apps", "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => 1,
        _ => 0,
    }
}

/// Whether objects of this kind can own what [`children`] reports.
pub fn owns_children(group: &str, kind: &str) -> bool {
    depth(group, kind) > 0
}

/// The owned objects of the reported resources (managed objects and hook runs), in the order
/// of the report, each owner's children sorted by kind and name; and how many were left out
/// past [`MAX_CHILDREN`].
pub fn children(resources: &[ResourceReport], live: &dyn Live, owned: &dyn Owned) -> (Vec<Child>, usize) {
    let mut out = Vec::new();
    let mut left_out = 0;
    for r in resources.iter().filter(|r| owns_children(&r.r.group, &r.r.kind)) {
        if let Some(obj) = live.get(&r.r) {
            walk(&obj, depth(&r.r.group, &r.r.kind), owned, &mut out, &mut left_out);
        }
    }
    (out, left_out)
}

fn walk(owner: &Value, levels: usize, owned: &dyn Owned, out: &mut Vec<Child>, left_out: &mut usize) {
    if levels == 0 {
        return;
    }
    let (Some(uid), Some(name), Some(kind)) =
        (owner["metadata"]["uid"].as_str(), owner["metadata"]["name"].as_str(), owner["kind"].as_str())
    else {
        return;
    };
    let namespace = owner["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut items: Vec<(ObjectRef, Arc<Value>)> =
        owned.owned_by(namespace, uid).into_iter().filter_map(|o| Some((ObjectRef::of(&o)?, o))).collect();
    items.sort_by(|a, b| (&a.0.kind, &a.0.name).cmp(&(&b.0.kind, &b.0.name)));
    for (r, o) in items {
        if out.len() >= MAX_CHILDREN {
            *left_out += 1;
            continue;
        }
        let a = health::assess(&o);
        out.push(Child {
            r,
            parent_kind: kind.to_string(),
            parent_name: name.to_string(),
            health: a.as_ref().map_or(Health::Healthy, |a| a.health),
            message: a.map(|a| a.message).unwrap_or_default(),
        });
        walk(&o, levels - 1, owned, out, left_out);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::status::SyncStatus;

    struct Cluster(Vec<Arc<Value>>);

    impl Live for Cluster {
        fn get(&self, r: &ObjectRef) -> Option<Arc<Value>> {
            self.0.iter().find(|o| ObjectRef::of(o).as_ref() == Some(r)).cloned()
        }
        fn labeled(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> Vec<Arc<Value>> {
            Vec::new()
        }
    }

    impl Owned for Cluster {
        fn owned_by(&self, namespace: &str, uid: &str) -> Vec<Arc<Value>> {
            self.0
                .iter()
                .filter(|o| {
                    o["metadata"]["namespace"] == namespace
                        && o["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid && r["controller"] == true))
                })
                .cloned()
                .collect()
        }
    }

    fn obj(
        api: &str,
        kind: &str,
        name: &str,
        uid: &str,
        owner: Option<(&str, &str, &str)>,
        status: Value,
    ) -> Arc<Value> {
        let mut o = json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "generation": 1}, "spec": {}, "status": status});
        if let Some((k, n, u)) = owner {
            o["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": k, "name": n, "uid": u, "controller": true}]);
        }
        Arc::new(o)
    }

    trait WithSpec {
        fn with_spec(self, spec: Value) -> Self;
    }

    impl WithSpec for Arc<Value> {
        fn with_spec(self, spec: Value) -> Self {
            let mut o = (*self).clone();
            o["spec"] = spec;
            Arc::new(o)
        }
    }

    fn reported(group: &str, kind: &str, name: &str) -> ResourceReport {
        ResourceReport {
            r: ObjectRef { group: group.into(), kind: kind.into(), namespace: "shop".into(), name: name.into() },
            sync: SyncStatus::Synced,
            health: Health::Healthy,
            message: String::new(),
            diff: String::new(),
            hook: false,
        }
    }

    fn running_pod(name: &str, uid: &str, owner: (&str, &str, &str), ready: bool) -> Arc<Value> {
        obj(
            "v1",
            "Pod",
            name,
            uid,
            Some(owner),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 0, "state": {"running": {}}}]}),
        )
    }

    #[test]
    fn a_deployment_owns_replica_sets_which_own_pods() {
        let cluster = Cluster(vec![
            obj("apps/v1", "Deployment", "api", "d1", None, json!({})),
            obj(
                "apps/v1",
                "ReplicaSet",
                "api-7d9",
                "rs1",
                Some(("Deployment", "api", "d1")),
                json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}),
            )
            .with_spec(json!({"replicas": 2})),
            running_pod("api-7d9-b", "p2", ("ReplicaSet", "api-7d9", "rs1"), false),
            running_pod("api-7d9-a", "p1", ("ReplicaSet", "api-7d9", "rs1"), true),
            // Someone else's Pod, and a Pod owned by a ReplicaSet Bosun does not manage.
            running_pod("other", "p3", ("ReplicaSet", "elsewhere", "rs9"), true),
            obj("v1", "ConfigMap", "config", "c1", None, json!(null)),
        ]);
        let resources = [
            reported("", "ConfigMap", "config"),
            reported("apps", "Deployment", "api"),
            reported("apps", "Deployment", "gone"),
        ];
        let (shown, left_out) = children(&resources, &cluster, &cluster);
        assert_eq!(left_out, 0);
        let tree: Vec<(&str, &str, &str, Health)> =
            shown.iter().map(|c| (c.parent_name.as_str(), c.r.kind.as_str(), c.r.name.as_str(), c.health)).collect();
        assert_eq!(
            tree,
            [
                ("api", "ReplicaSet", "api-7d9", Health::Healthy),
                ("api-7d9", "Pod", "api-7d9-a", Health::Healthy),
                ("api-7d9", "Pod", "api-7d9-b", Health::Progressing),
            ]
        );
        assert_eq!(shown[1].parent_kind, "ReplicaSet");
    }

    #[test]
    fn a_huge_workload_is_capped() {
        let mut objects = vec![obj("apps/v1", "StatefulSet", "db", "s1", None, json!({}))];
        for i in 0..MAX_CHILDREN + 7 {
            objects.push(running_pod(&format!("db-{i}"), &format!("p{i}"), ("StatefulSet", "db", "s1"), true));
        }
        let c = Cluster(objects);
        let (shown, left_out) = children(&[reported("apps", "StatefulSet", "db")], &c, &c);
        assert_eq!((shown.len(), left_out), (MAX_CHILDREN, 7));
    }

    #[test]
    fn only_workloads_are_owners() {
        let by_kind: HashMap<(&str, &str), bool> = [
            (("apps", "Deployment"), true),
            (("apps", "StatefulSet"), true),
            (("apps", "DaemonSet"), true),
            (("batch", "Job"), true),
            (("", "Service"), false),
            (("", "ConfigMap"), false),
            (("batch", "CronJob"), false),
        ]
        .into();
        for ((g, k), owns) in by_kind {
            assert_eq!(owns_children(g, k), owns, "{g}/{k}");
        }
    }
}
