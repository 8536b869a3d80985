//! APIService health (Argo CD semantics): Available=True is Healthy.

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

pub fn assess(a: &Value) -> Assessment {
    match condition(a, "Available") {
        Some(c) if c["status"] == "True" => Assessment::new(Health::Healthy, c["message"].as_str().unwrap_or_default()),
        Some(c) => Assessment::new(
            Health::Progressing,
            c["message"].as_str().unwrap_or("waiting for the API service to be available"),
        ),
        None => Assessment::new(Health::Progressing, "Waiting to be processed"),
    }
}
