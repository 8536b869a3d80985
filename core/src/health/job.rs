//! Job health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

pub fn assess(j: &Value) -> Assessment {
    if let Some(c) = condition(j, "Failed").filter(|c| c["status"] == "True") {
        return Assessment::new(Health::Degraded, c["message"].as_str().unwrap_or("job failed"));
    }
    if condition(j, "Complete").is_some_and(|c| c["status"] == "True") {
        return Assessment::new(Health::Healthy, "job completed");
    }
    if j["spec"]["suspend"] == true {
        return Assessment::new(Health::Suspended, "job is suspended");
    }
    Assessment::new(Health::Progressing, "job is running")
}
