//! Diff + plan of one large Application: what the agent's pass over it costs — `sync::decide`
//! over 5,000 objects (5 kinds, 20 namespaces, 5 sync waves), every one in sync with a live
//! copy carrying server noise (defaults, canonical quantities, and `managedFields` listing every
//! field the agent's apply owns, as the API server records it), as the cache holds them. Three passes per run: the first over a new `sync::Bundle` (its plan worked out,
//! every object compared), the next with nothing changed (a resync), and one after watch
//! events replaced 1 % of the live objects. Floor: the least any diff and plan must do — one
//! pass over the desired and live objects that reads each identity and pairs them in a hash
//! map.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::report::{Report, ms};

pub fn run(json_out: bool, objects: usize, runs: usize) {
    let kinds = ["ConfigMap", "Service", "Deployment", "Secret", "ServiceAccount"];
    let desired: Vec<Value> = (0..objects)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let mut o = json!({"apiVersion": if kind == "Deployment" { "apps/v1" } else { "v1" }, "kind": kind,
                "metadata": {"name": format!("obj-{i}"), "namespace": format!("ns-{}", i % 20), "labels": {"app": "big", "i": i.to_string()},
                             "annotations": {"argocd.argoproj.io/sync-wave": ((i % 5) as i64 - 2).to_string()}}});
            match kind {
                "Deployment" => {
                    o["spec"] = json!({"replicas": 2, "selector": {"matchLabels": {"app": "big"}}, "template": {
                        "metadata": {"labels": {"app": "big"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                            "env": [{"name": "I", "value": i.to_string()}],
                            "ports": [{"containerPort": 8080}],
                            "resources": {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": 0.5}}}]}}})
                }
                "Service" => o["spec"] = json!({"selector": {"app": "big"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
                "ConfigMap" => o["data"] = json!({"index": i.to_string(), "settings.yaml": "a: 1\nb: 2\n"}),
                "Secret" => o["stringData"] = json!({"token": format!("t-{i}")}),
                _ => {}
            }
            bosun_core::tracking::mark(&mut o, "big");
            o
        })
        .collect();
    let live: Vec<Value> = desired
        .iter()
        .map(|d| {
            let mut l = d.clone();
            l["metadata"]["uid"] = json!("u");
            l["metadata"]["resourceVersion"] = json!("1");
            // The fields the agent's apply owns, as kube-sim records them (a real server's shape).
            // (A Secret's stringData is stored, and owned, as data.)
            let mut applied = d.clone();
            if let Some(string_data) = applied.as_object_mut().and_then(|m| m.remove("stringData")) {
                applied["data"] = string_data;
            }
            let kind = d["kind"].as_str().unwrap_or_default();
            let fields = kube_sim::resources::BUILTIN.iter().find(|t| t.kind == kind).map(|t| {
                kube_sim::fieldset::to_fields_v1(&kube_sim::fieldset::leaves(t, &applied).into_keys().collect())
            });
            l["metadata"]["managedFields"] = json!([{"manager": "bosun-agent", "operation": "Apply",
                "apiVersion": d["apiVersion"], "time": "2026-12-02T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields}]);
            match d["kind"].as_str() {
                Some("Deployment") => {
                    let c = &mut l["spec"]["template"]["spec"]["containers"][0];
                    c["imagePullPolicy"] = json!("IfNotPresent");
                    c["ports"][0]["protocol"] = json!("TCP");
                    c["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}});
                    l["spec"]["strategy"] = json!({"type": "RollingUpdate"});
                    l["status"] = json!({"replicas": 2});
                }
                Some("Service") => {
                    l["spec"]["ports"][0]["protocol"] = json!("TCP");
                    l["spec"]["clusterIP"] = json!("10.0.0.9");
                    l["spec"]["type"] = json!("ClusterIP");
                }
                Some("Secret") => {
                    let token = d["stringData"]["token"].as_str().unwrap_or_default();
                    use base64::Engine;
                    l.as_object_mut().map(|m| m.remove("stringData"));
                    l["data"] = json!({"token": base64::engine::general_purpose::STANDARD.encode(token)});
                    l["type"] = json!("Opaque");
                }
                _ => {}
            }
            l
        })
        .collect();
    struct Cache(std::collections::HashMap<bosun_core::ObjectRef, Arc<Value>>);
    impl bosun_core::sync::Live for Cache {
        fn get(&self, r: &bosun_core::ObjectRef) -> Option<Arc<Value>> {
            self.0.get(r).cloned()
        }
        fn labeled(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> Vec<Arc<Value>> {
            Vec::new()
        }
    }
    let mut cache =
        Cache(live.iter().filter_map(|l| Some((bosun_core::ObjectRef::of(l)?, Arc::new(l.clone())))).collect());
    // The live objects a watch event replaces between two passes: 1 in 100.
    let changing: Vec<bosun_core::ObjectRef> = cache.0.keys().step_by(100).cloned().collect();
    let digest = "d".repeat(64);
    let target = bosun_core::sync::Target {
        app: "big",
        namespace: "default",
        uid: "u",
        digest: &digest,
        request: 0,
        request_prune: false,
        policy: bosun_core::SyncPolicy { automated: true, self_heal: true, prune: true, ..Default::default() },
        ignore: &[],
    };
    // Synced at this bundle: the pass has nothing to do, which it must find out.
    let memory = bosun_core::sync::Memory {
        app_uid: "u".into(),
        // Sorted, as the agent keeps it.
        inventory: {
            let mut v: Vec<_> = desired.iter().filter_map(bosun_core::ObjectRef::of).collect();
            v.sort();
            v
        },
        synced: Some(bosun_core::sync::Synced { digest: digest.clone(), request: 0, at: 1 }),
        last_policy: target.policy,
        ..Default::default()
    };
    let check = |d: &bosun_core::sync::Decision| {
        if !d.actions.is_empty() || d.report.sync != bosun_core::SyncStatus::Synced {
            let drifted: Vec<&str> =
                d.report.resources.iter().filter(|r| !r.diff.is_empty()).map(|r| r.diff.as_str()).take(3).collect();
            panic!("a synced Application plans nothing: {} actions, {drifted:?}", d.actions.len());
        }
    };
    let (mut first, mut again, mut changed, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // A new bundle: its plan is worked out and every object compared.
        let objects = desired.clone();
        let t = Instant::now();
        let bundle = bosun_core::sync::Bundle::new(objects);
        let d = bundle.decide(&target, &cache, &memory, "bosun-agent", 1);
        first.push(t.elapsed());
        check(&d);
        // The next pass (a resync): nothing changed.
        let t = Instant::now();
        let d = bundle.decide(&target, &cache, &memory, "bosun-agent", 1);
        again.push(t.elapsed());
        check(&d);
        // A pass after watch events replaced 1 % of the live objects.
        for r in &changing {
            let fresh = Arc::new(Value::clone(&cache.0[r]));
            cache.0.insert(r.clone(), fresh);
        }
        let t = Instant::now();
        let d = bundle.decide(&target, &cache, &memory, "bosun-agent", 1);
        changed.push(t.elapsed());
        check(&d);
        let t = Instant::now();
        let mut pairs: std::collections::HashMap<bosun_core::ObjectRef, (&Value, Option<&Value>)> =
            desired.iter().filter_map(|d| Some((bosun_core::ObjectRef::of(d)?, (d, None)))).collect();
        for l in &live {
            if let Some(slot) = bosun_core::ObjectRef::of(l).and_then(|r| pairs.get_mut(&r)) {
                slot.1 = Some(l);
            }
        }
        floor.push(t.elapsed());
        std::hint::black_box(pairs);
    }
    let mut report = Report::new(&format!("diff + plan of {objects} objects"), "≤ 50 ms").param("runs", runs);
    let bosun = report.row("bosun, a new bundle (plan, compare all)", &first);
    let resync = report.row("bosun, next pass, nothing changed", &again);
    let events = report.row("bosun, next pass, 1 % of live changed", &changed);
    let floor = report.row("identity pass (floor)", &floor);
    let ratio = |r: &crate::report::Summary| ms(r.p50) / ms(floor.p50).max(1e-3);
    report.figure("ratio p50, new bundle", ratio(&bosun), "x");
    report.figure("ratio p50, next pass", ratio(&resync), "x");
    report.figure("ratio p50, 1 % changed", ratio(&events), "x");
    report.print(json_out);
}
