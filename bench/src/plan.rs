//! Diff + plan of one large Application: 5,000 objects over 5 kinds, 20 namespaces and 5 sync
//! waves, every one in sync with a live copy carrying server noise; floor: hashing the same
//! objects once (the bundle digest).

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
                             "annotations": {"argocd.argoproj.io/sync-wave": ((i % 5) as i64 - 2).to_string()}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27", "env": [{"name": "I", "value": i.to_string()}]}]}}}});
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
            l["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
            l["status"] = json!({"replicas": 2});
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
        let to_apply =
            desired.iter().zip(&live).filter(|(d, l)| bosun_core::diff::needs_apply(d, Some(l), &[])).count();
        let t_diff = t.elapsed();
        let inventory: Vec<_> = desired.iter().filter_map(bosun_core::ObjectRef::of).collect();
        let prune = bosun_core::plan::prune_candidates(&inventory, &inventory);
        samples.push(t.elapsed());
        parts[0] += t_plan;
        parts[1] += t_diff - t_plan;
        parts[2] += t.elapsed() - t_diff;
        assert!(p.steps.len() == 5 && to_apply == 0 && prune.is_empty(), "a synced Application plans nothing");
        let t = Instant::now();
        let b = bosun_core::Bundle::new(desired.clone());
        floor.push(t.elapsed());
        std::hint::black_box(b);
    }
    let n = runs.max(1) as u32;
    let mut report = Report::new(&format!("diff + plan of {objects} objects"), "≤ 50 ms").param("runs", runs);
    let bosun = report.row("bosun", &samples);
    let floor = report.row("bundle digest", &floor);
    report.figure("ratio p50", ms(bosun.p50) / ms(floor.p50).max(1e-3), "x");
    report.figure("mean plan", ms(parts[0] / n), "ms");
    report.figure("mean diff", ms(parts[1] / n), "ms");
    report.figure("mean prune set", ms(parts[2] / n), "ms");
    report.print(json_out);
}
