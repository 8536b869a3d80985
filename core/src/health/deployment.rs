//! Deployment health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, condition, generation_pending, int};
use crate::status::Health;

pub fn assess(d: &Value) -> Assessment {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    if d["spec"]["paused"] == true {
        return Assessment::new(Health::Suspended, "Deployment is paused");
    }
    if generation_pending(d) {
        return Assessment::new(
            Health::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    if condition(d, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Assessment::new(Health::Degraded, format!("Deployment {name:?} exceeded its progress deadline"));
    }
    let s = &d["status"];
    let replicas = d["spec"]["replicas"].as_i64();
    let (updated, total, available) = (int(&s["updatedReplicas"]), int(&s["replicas"]), int(&s["availableReplicas"]));
    if let Some(replicas) = replicas
        && updated < replicas
    {
        return Assessment::new(
            Health::Progressing,
            format!("Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."),
        );
    }
    if total > updated {
        return Assessment::new(
            Health::Progressing,
            format!("Waiting for rollout to finish: {} old replicas are pending termination...", total - updated),
        );
    }
    if available < updated {
        return Assessment::new(
            Health::Progressing,
            format!("Waiting for rollout to finish: {available} of {updated} updated replicas are available..."),
        );
    }
    Assessment::new(Health::Healthy, "")
}
