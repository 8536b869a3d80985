//! PersistentVolumeClaim health, as Argo CD judges it: Bound is Healthy, Pending Progressing,
//! Lost Degraded, anything else Unknown.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(p: &Value) -> Assessment {
    match p["status"]["phase"].as_str() {
        Some("Bound") => Assessment::new(Health::Healthy, ""),
        Some("Pending") => Assessment::new(Health::Progressing, "waiting for the claim to be bound"),
        Some("Lost") => Assessment::new(Health::Degraded, "the claim lost its volume"),
        _ => Assessment::new(Health::Unknown, ""),
    }
}
