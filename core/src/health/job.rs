//! Job health, as Argo CD judges it, from the Job's conditions: Failed is Degraded (with its
//! message), Suspended (True) is Suspended, Complete is Healthy; without any of them the Job is
//! still running: Progressing.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(j: &Value) -> Assessment {
    let (mut failed, mut complete, mut suspended) = (false, false, false);
    let (mut fail_message, mut message) = ("", "");
    for c in j["status"]["conditions"].as_array().into_iter().flatten() {
        let text = c["message"].as_str().unwrap_or_default();
        match c["type"].as_str() {
            Some("Failed") => {
                failed = true;
                complete = true;
                fail_message = text;
            }
            Some("Complete") => {
                complete = true;
                message = text;
            }
            Some("Suspended") => {
                complete = true;
                message = text;
                suspended |= c["status"] == "True";
            }
            _ => {}
        }
    }
    match () {
        _ if !complete => Assessment::new(Health::Progressing, message),
        _ if failed => Assessment::new(Health::Degraded, fail_message),
        _ if suspended => Assessment::new(Health::Suspended, message),
        _ => Assessment::new(Health::Healthy, message),
    }
}
