//! Pod health (Argo CD semantics): image pull and crash loops are Degraded, not Progressing.

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

const BAD_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "RunContainerError",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
];

pub fn assess(p: &Value) -> Assessment {
    let s = &p["status"];
    let statuses = s["initContainerStatuses"].as_array().into_iter().chain(s["containerStatuses"].as_array()).flatten();
    for c in statuses {
        if let Some(reason) = c["state"]["waiting"]["reason"].as_str().filter(|r| BAD_WAITING.contains(r)) {
            let msg = c["state"]["waiting"]["message"].as_str().unwrap_or(reason);
            return Assessment::new(Health::Degraded, msg);
        }
    }
    match s["phase"].as_str() {
        Some("Succeeded") => Assessment::new(Health::Healthy, s["message"].as_str().unwrap_or_default()),
        Some("Failed") => Assessment::new(Health::Degraded, s["message"].as_str().unwrap_or("pod failed")),
        Some("Running") => {
            let ready = condition(p, "Ready").is_some_and(|c| c["status"] == "True");
            if ready || p["spec"]["restartPolicy"] != "Always" && p["spec"]["restartPolicy"].is_string() {
                Assessment::new(Health::Healthy, s["message"].as_str().unwrap_or_default())
            } else {
                Assessment::new(Health::Progressing, "pod is running but not ready")
            }
        }
        _ => Assessment::new(Health::Progressing, s["message"].as_str().unwrap_or("pod is pending")),
    }
}
