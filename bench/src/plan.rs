//! Diff + plan of one large Application: 5,000 objects over 5 kinds, 20 namespaces and 5 sync
//! waves, every one in sync with a live copy carrying server noise (defaults, canonical
//! quantities, managedFields); floor: the least any diff and plan must do — one pass over the
//! desired and live objects that reads each identity and pairs them in a hash map.

use std::time::{Duration, Instant};

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
            l["metadata"]["managedFields"] = json!([{"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}, "f:i": {}}}}}]);
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
    let mut samples = Vec::new();
    let mut floor = Vec::new();
    let mut parts = [Duration::ZERO; 3];
    for _ in 0..runs {
        let t = Instant::now();
        let p = bosun_core::plan::plan(&desired).expect("valid annotations");
        let t_plan = t.elapsed();
        let opts = bosun_core::diff::Options { ignore: &[], manager: Some("bosun-agent") };
        let to_apply =
            desired.iter().zip(&live).filter(|(d, l)| !bosun_core::diff::drift(d, l, opts).is_empty()).count();
        let t_diff = t.elapsed();
        let inventory: Vec<_> = desired.iter().filter_map(bosun_core::ObjectRef::of).collect();
        let prune = bosun_core::plan::prune_candidates(&inventory, &inventory);
        samples.push(t.elapsed());
        parts[0] += t_plan;
        parts[1] += t_diff - t_plan;
        parts[2] += t.elapsed() - t_diff;
        if to_apply != 0 {
            let (d, l) =
                desired.iter().zip(&live).find(|(d, l)| !bosun_core::diff::drift(d, l, opts).is_empty()).unwrap();
            panic!("a synced Application plans nothing: {:?}", bosun_core::diff::drift(d, l, opts));
        }
        assert!(p.steps.len() == 5 && prune.is_empty(), "a synced Application plans nothing");
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
    let n = runs.max(1) as u32;
    let mut report = Report::new(&format!("diff + plan of {objects} objects"), "≤ 50 ms").param("runs", runs);
    let bosun = report.row("bosun", &samples);
    let floor = report.row("identity pass (floor)", &floor);
    report.figure("ratio p50", ms(bosun.p50) / ms(floor.p50).max(1e-3), "x");
    report.figure("mean plan", ms(parts[0] / n), "ms");
    report.figure("mean diff", ms(parts[1] / n), "ms");
    report.figure("mean prune set", ms(parts[2] / n), "ms");
    report.print(json_out);
}
