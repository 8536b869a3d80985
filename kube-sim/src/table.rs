//! `meta.k8s.io/v1 Table` responses, which `kubectl get` asks for to print its columns.

use serde_json::{Value, json};

fn age(obj: &Value) -> String {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".into();
    };
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn columns(kind: &str) -> Vec<(&'static str, &'static str)> {
    let mut c = vec![("Name", "string")];
    c.extend(match kind {
        "Deployment" => vec![("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")],
        "ReplicaSet" => vec![("Desired", "integer"), ("Current", "integer"), ("Ready", "integer")],
        "StatefulSet" => vec![("Ready", "string")],
        "Pod" => vec![("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
        "Service" => {
            vec![("Type", "string"), ("Cluster-IP", "string"), ("External-IP", "string"), ("Port(s)", "string")]
        }
        "Namespace" => vec![("Status", "string")],
        "Job" => vec![("Status", "string"), ("Completions", "string")],
        "ConfigMap" | "Secret" => vec![("Data", "integer")],
        "PersistentVolumeClaim" => vec![("Status", "string"), ("Volume", "string")],
        "Node" => vec![("Status", "string")],
        _ => vec![],
    });
    c.push(("Age", "string"));
    c
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let s = &o["status"];
    let mut c = vec![o["metadata"]["name"].clone()];
    c.extend(match kind {
        "Deployment" => vec![
            json!(format!("{}/{}", i(&s["readyReplicas"]), i(&o["spec"]["replicas"]))),
            json!(i(&s["updatedReplicas"])),
            json!(i(&s["availableReplicas"])),
        ],
        "ReplicaSet" => vec![json!(i(&o["spec"]["replicas"])), json!(i(&s["replicas"])), json!(i(&s["readyReplicas"]))],
        "StatefulSet" => vec![json!(format!("{}/{}", i(&s["readyReplicas"]), i(&o["spec"]["replicas"])))],
        "Pod" => {
            let cs = s["containerStatuses"].as_array().cloned().unwrap_or_default();
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let total = o["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
            let waiting = cs.iter().find_map(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string));
            let phase = waiting.unwrap_or_else(|| s["phase"].as_str().unwrap_or("Pending").to_string());
            vec![json!(format!("{ready}/{total}")), json!(phase), json!("0")]
        }
        "Service" => {
            let ext = s["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .unwrap_or(if o["spec"]["type"] == "LoadBalancer" { "<pending>" } else { "<none>" })
                .to_string();
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p["nodePort"].as_i64() {
                    Some(np) => format!("{}:{}/{}", i(&p["port"]), np, p["protocol"].as_str().unwrap_or("TCP")),
                    None => format!("{}/{}", i(&p["port"]), p["protocol"].as_str().unwrap_or("TCP")),
                })
                .collect();
            vec![o["spec"]["type"].clone(), o["spec"]["clusterIP"].clone(), json!(ext), json!(ports.join(","))]
        }
        "Namespace" => vec![s["phase"].clone()],
        "Job" => {
            let done = s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed"));
            let status = match done.map(|c| c["type"].as_str().unwrap_or_default()) {
                Some("Complete") => "Complete",
                Some(_) => "Failed",
                None => "Running",
            };
            vec![
                json!(status),
                json!(format!("{}/{}", i(&s["succeeded"]), o["spec"]["completions"].as_i64().unwrap_or(1))),
            ]
        }
        "ConfigMap" | "Secret" => {
            let n = o["data"].as_object().map(|m| m.len()).unwrap_or(0)
                + o["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![json!(n)]
        }
        "PersistentVolumeClaim" => vec![s["phase"].clone(), o["spec"]["volumeName"].clone()],
        "Node" => vec![json!("Ready")],
        _ => vec![],
    });
    c.push(json!(age(o)));
    c
}

/// What `includeObject` asked for in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

fn row(kind: &str, o: &Value, include: Include) -> Value {
    let object = match include {
        Include::None => Value::Null,
        Include::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        }
        Include::Object => o.clone(),
    };
    json!({"cells": cells(kind, o), "object": object})
}

pub fn table(kind: &str, objs: &[&Value], resource_version: &str, include: Include) -> Value {
    let cols: Vec<Value> = columns(kind)
        .iter()
        .enumerate()
        .map(|(n, (name, ty))| json!({"name": name, "type": ty, "format": if n == 0 { "name" } else { "" }, "description": "", "priority": 0}))
        .collect();
    let rows: Vec<Value> = objs.iter().map(|o| row(kind, o, include)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version}, "columnDefinitions": cols, "rows": rows})
}
