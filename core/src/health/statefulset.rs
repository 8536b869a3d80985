//! StatefulSet health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, generation_pending, int};
use crate::status::Health;

pub fn assess(s: &Value) -> Assessment {
    if generation_pending(s) {
        return Assessment::new(Health::Progressing, "Waiting for statefulset spec update to be observed...");
    }
    if s["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Assessment::new(Health::Healthy, "statefulset has OnDelete update strategy; not tracking rollout");
    }
    let replicas = s["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &s["status"];
    let ready = int(&st["readyReplicas"]);
    if ready < replicas {
        return Assessment::new(Health::Progressing, format!("Waiting for {} pods to be ready...", replicas - ready));
    }
    let partition = int(&s["spec"]["updateStrategy"]["rollingUpdate"]["partition"]);
    if partition > 0 {
        let updated = int(&st["updatedReplicas"]);
        if updated < replicas - partition {
            return Assessment::new(
                Health::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
            );
        }
        return Assessment::new(
            Health::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if st["updateRevision"] != st["currentRevision"] {
        return Assessment::new(Health::Progressing, "waiting for statefulset rolling update to complete");
    }
    Assessment::new(
        Health::Healthy,
        format!(
            "statefulset rolling update complete {ready} pods at revision {}...",
            st["currentRevision"].as_str().unwrap_or_default()
        ),
    )
}
