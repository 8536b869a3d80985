//! Pod health, as Argo CD judges it: with `restartPolicy: Always`, a container waiting on an
//! error (`Err…`, `…Error`, `…BackOff`) is Degraded; Pending is Progressing; Succeeded is
//! Healthy; Failed is Degraded with the pod's or the failed container's message; a Running pod
//! that restarts always is Healthy when ready, Degraded when a container has terminated before,
//! else Progressing; a Running pod that runs to completion (`Never`, `OnFailure`: a hook, a
//! job's pod) is Progressing until it has Succeeded.

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

fn bad_waiting(reason: &str) -> bool {
    reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")
}

/// The failure of one container status: its termination message, `OOMKilled`, or its exit code.
fn fail_message(c: &Value) -> Option<String> {
    let t = c["state"]["terminated"].as_object()?;
    if let Some(m) = t.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
        return Some(m.to_string());
    }
    if t.get("reason").and_then(Value::as_str) == Some("OOMKilled") {
        return Some("OOMKilled".into());
    }
    match t.get("exitCode").and_then(Value::as_i64) {
        Some(code) if code != 0 => {
            Some(format!("container {:?} failed with exit code {code}", c["name"].as_str().unwrap_or_default()))
        }
        _ => None,
    }
}

pub fn assess(p: &Value) -> Assessment {
    let s = &p["status"];
    let message = s["message"].as_str().unwrap_or_default();
    let restart = p["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    let containers = || s["containerStatuses"].as_array().into_iter().flatten();
    if restart == "Always" {
        let waiting: Vec<&str> = containers()
            .filter(|c| c["state"]["waiting"]["reason"].as_str().is_some_and(bad_waiting))
            .map(|c| c["state"]["waiting"]["message"].as_str().unwrap_or_default())
            .collect();
        if !waiting.is_empty() {
            return Assessment::new(Health::Degraded, waiting.join(", "));
        }
    }
    match s["phase"].as_str() {
        Some("Pending") => Assessment::new(Health::Progressing, message),
        Some("Succeeded") => Assessment::new(Health::Healthy, message),
        Some("Failed") => {
            if !message.is_empty() {
                return Assessment::new(Health::Degraded, message);
            }
            let all = s["initContainerStatuses"].as_array().into_iter().flatten().chain(containers());
            let why = all.filter_map(fail_message).next().unwrap_or_default();
            Assessment::new(Health::Degraded, why)
        }
        Some("Running") => match restart {
            "Always" => {
                if condition(p, "Ready").is_some_and(|c| c["status"] == "True") {
                    Assessment::new(Health::Healthy, message)
                } else if containers().any(|c| c["lastState"]["terminated"].is_object()) {
                    Assessment::new(Health::Degraded, message)
                } else {
                    Assessment::new(Health::Progressing, message)
                }
            }
            _ => Assessment::new(Health::Progressing, message),
        },
        _ => Assessment::new(Health::Unknown, message),
    }
}
