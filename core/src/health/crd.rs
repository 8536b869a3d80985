//! CustomResourceDefinition health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

pub fn assess(c: &Value) -> Assessment {
    if !c["metadata"]["deletionTimestamp"].is_null() {
        return Assessment::new(Health::Progressing, "CRD is terminating");
    }
    if let Some(n) = condition(c, "NamesAccepted").filter(|n| n["status"] == "False") {
        return Assessment::new(Health::Degraded, n["message"].as_str().unwrap_or("names not accepted"));
    }
    if let Some(v) = condition(c, "NonStructuralSchema").filter(|v| v["status"] == "True") {
        return Assessment::new(Health::Degraded, v["message"].as_str().unwrap_or("schema is not structural"));
    }
    match condition(c, "Established") {
        Some(e) if e["status"] == "True" => Assessment::new(Health::Healthy, ""),
        _ => Assessment::new(Health::Progressing, "Status conditions not found"),
    }
}
