//! ReplicaSet health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, condition, generation_pending, int};
use crate::status::Health;

pub fn assess(r: &Value) -> Assessment {
    if generation_pending(r) {
        return Assessment::new(
            Health::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(c) = condition(r, "ReplicaFailure").filter(|c| c["status"] == "True") {
        return Assessment::new(Health::Degraded, c["message"].as_str().unwrap_or("replica failure"));
    }
    let available = int(&r["status"]["availableReplicas"]);
    if let Some(replicas) = r["spec"]["replicas"].as_i64()
        && available < replicas
    {
        return Assessment::new(
            Health::Progressing,
            format!("Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."),
        );
    }
    Assessment::new(Health::Healthy, "")
}
