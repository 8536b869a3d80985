//! PersistentVolumeClaim health.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(p: &Value) -> Assessment {
    match p["status"]["phase"].as_str() {
        Some("Bound") => Assessment::new(Health::Healthy, ""),
        Some("Lost") => Assessment::new(Health::Degraded, "claim lost its volume"),
        _ => Assessment::new(Health::Progressing, "waiting for the claim to be bound"),
    }
}
