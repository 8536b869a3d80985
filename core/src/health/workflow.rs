//! Argo Workflows' Workflow health, as Argo CD judges it: Pending, Running or no phase yet are
//! Progressing, Succeeded is Healthy, Failed and Error are Degraded.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(w: &Value) -> Assessment {
    let message = w["status"]["message"].as_str().unwrap_or_default();
    let health = match w["status"]["phase"].as_str().unwrap_or_default() {
        "" | "Pending" | "Running" => Health::Progressing,
        "Succeeded" => Health::Healthy,
        "Failed" | "Error" => Health::Degraded,
        _ => Health::Unknown,
    };
    Assessment::new(health, message)
}
