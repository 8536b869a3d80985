//! Sync planning: the order objects are applied in, and which objects to prune.

use serde_json::Value;

use crate::object::ObjectRef;
use crate::options::{self, HookType, OptionError};

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

static KIND_RANK: std::sync::LazyLock<std::collections::HashMap<&'static str, usize>> =
    std::sync::LazyLock::new(|| KIND_ORDER.iter().enumerate().map(|(i, k)| (*k, i)).collect());

/// Position of a kind in the install order (unknown kinds after every known one).
pub fn kind_rank(kind: &str) -> usize {
    KIND_RANK.get(kind).copied().unwrap_or(KIND_ORDER.len())
}

/// The sort key of apply order: kind rank, then identity.
fn order_key(o: &Value) -> (usize, Option<ObjectRef>) {
    let r = ObjectRef::of_manifest(o);
    (r.as_ref().map(|r| kind_rank(&r.kind)).unwrap_or(KIND_ORDER.len()), r)
}

/// Objects in apply order: by kind rank, then kind, namespace and name.
pub fn apply_order(objects: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = objects.iter().collect();
    out.sort_by_cached_key(|o| order_key(o));
    out
}

/// The phase a step of a sync belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    PreSync,
    Sync,
    PostSync,
}

/// Objects applied together: one wave of one phase, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<'a> {
    pub phase: Phase,
    pub wave: i64,
    /// Whether these objects are hooks (run once per sync, not tracked for prune).
    pub hooks: bool,
    pub objects: Vec<&'a Value>,
}

/// A sync plan: steps ordered by phase → wave → kind → name, plus the SyncFail hooks run
/// when a step fails. Objects with the `Skip` hook are left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan<'a> {
    pub steps: Vec<Step<'a>>,
    pub sync_fail: Vec<&'a Value>,
}

/// Plans a sync of `objects`; a malformed sync annotation fails the plan, naming its object.
pub fn plan(objects: &[Value]) -> Result<Plan<'_>, OptionError> {
    let mut keyed: Vec<(Phase, i64, bool, &Value)> = Vec::new();
    let mut sync_fail = Vec::new();
    for o in objects {
        let wave = options::wave(o)?;
        let hooks = options::hooks(o)?;
        options::options(o)?;
        options::hook_delete_policies(o)?;
        if hooks.is_empty() {
            keyed.push((Phase::Sync, wave, false, o));
        }
        for h in hooks {
            match h {
                HookType::PreSync => keyed.push((Phase::PreSync, wave, true, o)),
                HookType::Sync => keyed.push((Phase::Sync, wave, true, o)),
                HookType::PostSync => keyed.push((Phase::PostSync, wave, true, o)),
                HookType::SyncFail => sync_fail.push(o),
                HookType::Skip => {}
            }
        }
    }
    keyed.sort_by_key(|k| (k.0, k.1, k.2));
    let mut steps: Vec<Step<'_>> = Vec::new();
    for (phase, wave, hooks, o) in keyed {
        match steps.last_mut() {
            Some(s) if s.phase == phase && s.wave == wave && s.hooks == hooks => s.objects.push(o),
            _ => steps.push(Step { phase, wave, hooks, objects: vec![o] }),
        }
    }
    for s in &mut steps {
        s.objects.sort_by_cached_key(|o| order_key(o));
    }
    Ok(Plan { steps, sync_fail })
}

/// Objects applied before (the inventory) that the desired state no longer holds, in
/// reverse apply order (workloads before their namespace).
pub fn prune_candidates(inventory: &[ObjectRef], desired: &[ObjectRef]) -> Vec<ObjectRef> {
    let desired: std::collections::BTreeSet<&ObjectRef> = desired.iter().collect();
    let mut ranked: Vec<(usize, &ObjectRef)> =
        inventory.iter().filter(|r| !desired.contains(r)).map(|r| (kind_rank(&r.kind), r)).collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup();
    ranked.into_iter().map(|(_, r)| r.clone()).collect()
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

    fn annotated(kind: &str, name: &str, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "annotations": annotations}})
    }

    #[test]
    fn plan_orders_phase_then_wave_then_kind() {
        let objs = vec![
            annotated("Deployment", "api", json!({"argocd.argoproj.io/sync-wave": "1"})),
            annotated("ConfigMap", "cfg", json!({})),
            annotated("Job", "migrate", json!({"argocd.argoproj.io/hook": "PreSync"})),
            annotated("Job", "smoke", json!({"argocd.argoproj.io/hook": "PostSync"})),
            annotated("Namespace", "ns", json!({"argocd.argoproj.io/sync-wave": "-1"})),
            annotated("Service", "svc", json!({})),
            annotated("Job", "notify", json!({"argocd.argoproj.io/hook": "SyncFail"})),
            annotated("ConfigMap", "skipped", json!({"argocd.argoproj.io/hook": "Skip"})),
        ];
        let p = plan(&objs).unwrap();
        let steps: Vec<(Phase, i64, Vec<&str>)> = p
            .steps
            .iter()
            .map(|s| (s.phase, s.wave, s.objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect()))
            .collect();
        assert_eq!(
            steps,
            vec![
                (Phase::PreSync, 0, vec!["migrate"]),
                (Phase::Sync, -1, vec!["ns"]),
                (Phase::Sync, 0, vec!["cfg", "svc"]),
                (Phase::Sync, 1, vec!["api"]),
                (Phase::PostSync, 0, vec!["smoke"]),
            ]
        );
        assert_eq!(p.sync_fail.len(), 1);
        let bad = vec![annotated("ConfigMap", "x", json!({"argocd.argoproj.io/sync-wave": "first"}))];
        assert!(plan(&bad).unwrap_err().to_string().contains("ConfigMap/x"));
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
