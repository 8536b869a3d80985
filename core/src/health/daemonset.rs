//! DaemonSet health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, generation_pending, int};
use crate::status::Health;

pub fn assess(d: &Value) -> Assessment {
    if generation_pending(d) {
        return Assessment::new(
            Health::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    if d["spec"]["updateStrategy"]["type"] == "OnDelete" {
        let s = &d["status"];
        return Assessment::new(
            Health::Healthy,
            format!(
                "daemon set {} out of {} new pods have been updated",
                int(&s["updatedNumberScheduled"]),
                int(&s["desiredNumberScheduled"])
            ),
        );
    }
    let s = &d["status"];
    let desired = int(&s["desiredNumberScheduled"]);
    let updated = int(&s["updatedNumberScheduled"]);
    if updated < desired {
        return Assessment::new(
            Health::Progressing,
            format!(
                "Waiting for daemon set rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    let available = int(&s["numberAvailable"]);
    if available < desired {
        return Assessment::new(
            Health::Progressing,
            format!("Waiting for daemon set rollout to finish: {available} of {desired} updated pods are available..."),
        );
    }
    Assessment::new(Health::Healthy, "")
}
