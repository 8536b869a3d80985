//! StatefulSet health, as Argo CD judges it: the spec must be observed, then every replica
//! ready (whatever the update strategy), then a partitioned rolling update must have updated
//! the replicas above the partition; `OnDelete` stops there; otherwise the update revision must
//! be current.

use serde_json::Value;

use super::{Assessment, int};
use crate::status::Health;

pub fn assess(s: &Value) -> Assessment {
    let st = &s["status"];
    let observed = int(&st["observedGeneration"]);
    if observed == 0 || int(&s["metadata"]["generation"]) > observed {
        return Assessment::new(Health::Progressing, "Waiting for statefulset spec update to be observed...");
    }
    let replicas = s["spec"]["replicas"].as_i64();
    let ready = int(&st["readyReplicas"]);
    if let Some(r) = replicas
        && ready < r
    {
        return Assessment::new(Health::Progressing, format!("Waiting for {} pods to be ready...", r - ready));
    }
    let strategy = &s["spec"]["updateStrategy"];
    let updated = int(&st["updatedReplicas"]);
    if strategy["type"] == "RollingUpdate" && strategy["rollingUpdate"].is_object() {
        if let (Some(r), Some(partition)) = (replicas, strategy["rollingUpdate"]["partition"].as_i64())
            && updated < r - partition
        {
            return Assessment::new(
                Health::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    r - partition
                ),
            );
        }
        return Assessment::new(
            Health::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy["type"] == "OnDelete" {
        return Assessment::new(Health::Healthy, format!("statefulset has {ready} ready pods"));
    }
    let (current, update) =
        (st["currentRevision"].as_str().unwrap_or_default(), st["updateRevision"].as_str().unwrap_or_default());
    if update != current {
        return Assessment::new(
            Health::Progressing,
            format!("waiting for statefulset rolling update to complete {updated} pods at revision {update}..."),
        );
    }
    Assessment::new(
        Health::Healthy,
        format!("statefulset rolling update complete {} pods at revision {current}...", int(&st["currentReplicas"])),
    )
}
