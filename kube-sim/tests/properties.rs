//! Property tests: parsers of outside input never panic; field sets round-trip through
//! `fieldsV1`; server-side apply is idempotent and removes exactly what stops being applied.

use std::collections::BTreeSet;

use kube_sim::fieldset::{self, Managed};
use kube_sim::resources::{BUILTIN, ResourceType};
use kube_sim::selectors::{FieldSelector, LabelSelector};
use proptest::prelude::*;
use serde_json::{Value, json};

fn rt(kind: &str) -> ResourceType {
    BUILTIN.iter().find(|r| r.kind == kind).unwrap().clone()
}

/// Arbitrary JSON values of bounded depth.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A Deployment-shaped configuration: a subset of containers, env entries and labels.
fn arb_deployment() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_set("[a-c]", 1..3),
        prop::collection::btree_map("[x-z]", "[0-9]", 0..3),
        prop::collection::btree_map("[k-m]", "[a-b]", 0..3),
        1..5i32,
    )
        .prop_map(|(containers, env, labels, replicas)| {
            let cs: Vec<Value> = containers
                .iter()
                .map(|n| {
                    let env: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
                    json!({"name": n, "image": format!("{n}:1"), "env": env})
                })
                .collect();
            let mut labels: serde_json::Map<String, Value> = labels.into_iter().map(|(k, v)| (k, json!(v))).collect();
            labels.insert("app".into(), json!("web"));
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels},
                   "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": cs}}}})
        })
}

proptest! {
    #[test]
    fn selector_parsers_never_panic(s in ".{0,64}") {
        let _ = LabelSelector::parse(&s);
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn path_parser_never_panics(s in "(/[a-z0-9.]{0,8}){0,8}") {
        let _ = kube_sim::path::parse(&s);
    }

    #[test]
    fn fields_v1_decoder_never_panics(v in arb_json()) {
        let _ = fieldset::from_fields_v1(&v);
        let _ = Managed::of(&json!({"metadata": {"managedFields": [{"manager": "m", "fieldsV1": v}]}}));
    }

    #[test]
    fn field_sets_round_trip(v in arb_json()) {
        let obj = json!({"spec": v});
        let set: BTreeSet<_> = fieldset::leaves(&rt("ConfigMap"), &obj).into_keys().collect();
        prop_assert_eq!(fieldset::from_fields_v1(&fieldset::to_fields_v1(&set)), set);
    }

    #[test]
    fn apply_is_idempotent(cfg in arb_deployment()) {
        let rt = rt("Deployment");
        let mut m = Managed::default();
        let once = m.apply(&rt, &json!({}), &cfg, "bosun", false, "t").unwrap();
        let snapshot = m.clone();
        let twice = m.apply(&rt, &once, &cfg, "bosun", false, "t").unwrap();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(snapshot, m);
    }

    #[test]
    fn reapply_converges_to_the_new_configuration(a in arb_deployment(), b in arb_deployment()) {
        // With a single manager, applying `a` then `b` leaves exactly what applying `b` alone leaves.
        let rt = rt("Deployment");
        let mut m = Managed::default();
        let after_a = m.apply(&rt, &json!({}), &a, "bosun", false, "t").unwrap();
        let after_b = m.apply(&rt, &after_a, &b, "bosun", false, "t").unwrap();
        let fresh = Managed::default().apply(&rt, &json!({}), &b, "bosun", false, "t").unwrap();
        let set = |v: &Value| fieldset::leaves(&rt, v);
        prop_assert_eq!(set(&after_b), set(&fresh));
    }
}
