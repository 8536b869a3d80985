//! Properties of planning, drift and prune selection.

use bosun_core::{diff, plan, tracking};
use proptest::prelude::*;
use serde_json::{Value, json};

const KINDS: &[&str] =
    &["Namespace", "ConfigMap", "Service", "Deployment", "Job", "Widget", "CustomResourceDefinition"];

fn arb_object() -> impl Strategy<Value = Value> {
    (0..KINDS.len(), "[a-z]{1,6}", proptest::option::of(-3i64..3), proptest::option::of(prop_oneof![Just("PreSync"), Just("PostSync"), Just("Sync")]))
        .prop_map(|(k, name, wave, hook)| {
            let mut annotations = serde_json::Map::new();
            if let Some(w) = wave {
                annotations.insert("argocd.argoproj.io/sync-wave".into(), json!(w.to_string()));
            }
            if let Some(h) = hook {
                annotations.insert("argocd.argoproj.io/hook".into(), json!(h));
            }
            json!({"apiVersion": "v1", "kind": KINDS[k], "metadata": {"name": name, "annotations": annotations}, "data": {"k": name}})
        })
}

fn names(p: &plan::Plan<'_>) -> Vec<(String, String)> {
    p.steps
        .iter()
        .flat_map(|s| {
            s.objects
                .iter()
                .map(move |o| (format!("{:?}{}", s.phase, s.wave), format!("{}/{}", o["kind"], o["metadata"]["name"])))
        })
        .collect()
}

/// Adds what a server adds: identity, bookkeeping, status, defaults, managed fields.
fn as_served(desired: &Value) -> Value {
    let mut live = desired.clone();
    live["metadata"]["uid"] = json!("0b0c");
    live["metadata"]["resourceVersion"] = json!("42");
    live["metadata"]["generation"] = json!(3);
    live["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    live["metadata"]["managedFields"] = json!([{"manager": "bosun-agent", "operation": "Apply"}]);
    live["status"] = json!({"observedGeneration": 3});
    live["spec"]["defaulted"] = json!("by the server");
    live
}

fn arb_spec() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-100i64..100).prop_map(|n| json!(n)),
        "[a-z]{0,5}".prop_map(Value::String)
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map("[a-z]{1,4}", inner.clone(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            prop::collection::vec(inner, 0..3).prop_map(Value::Array),
        ]
    })
}

proptest! {
    #[test]
    fn planning_is_deterministic_and_order_independent(objs in prop::collection::vec(arb_object(), 0..12)) {
        let mut dedup = objs.clone();
        dedup.sort_by_key(|o| (o["kind"].to_string(), o["metadata"]["name"].to_string()));
        dedup.dedup_by_key(|o| (o["kind"].to_string(), o["metadata"]["name"].to_string()));
        let mut reversed = dedup.clone();
        reversed.reverse();
        let a = plan::plan(&dedup).unwrap();
        let b = plan::plan(&reversed).unwrap();
        prop_assert_eq!(names(&a), names(&b));
        prop_assert_eq!(names(&a), names(&plan::plan(&dedup).unwrap()));
        // Phases never go backwards, nor waves within a phase.
        let keys: Vec<(plan::Phase, i64)> = a.steps.iter().map(|s| (s.phase, s.wave)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }

    #[test]
    fn syncing_a_synced_application_plans_nothing(spec in arb_spec(), name in "[a-z]{1,8}") {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": "x"}}, "spec": {"template": spec}});
        let live = as_served(&desired);
        prop_assert!(!diff::needs_apply(&desired, Some(&live), &[]), "{:?}", diff::drifted_fields(&desired, &live));
        prop_assert!(diff::needs_apply(&desired, None, &[]));
    }

    #[test]
    fn prune_never_selects_an_object_without_our_tracking_identity(
        name in "[a-z]{1,8}",
        annotation in proptest::option::of("[a-z:/]{0,30}"),
        label in proptest::option::of("[a-z]{1,8}"),
    ) {
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}});
        if let Some(a) = &annotation {
            live["metadata"]["annotations"] = json!({tracking::TRACKING_ANNOTATION: a});
        }
        if let Some(l) = &label {
            live["metadata"]["labels"] = json!({tracking::APP_LABEL: l});
        }
        let ours = format!("shop:/ConfigMap:ns/{name}");
        prop_assert_eq!(tracking::prunable(&live, "shop"), annotation.as_deref() == Some(ours.as_str()));
        let mut marked = live.clone();
        tracking::mark(&mut marked, "shop");
        prop_assert!(tracking::prunable(&marked, "shop"));
        prop_assert!(!tracking::prunable(&marked, "other"));
        marked["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] = json!("Prune=false");
        prop_assert!(!tracking::prunable(&marked, "shop"));
    }
}
