//! APIService health, as Argo CD judges it: the `Available` condition, True or not (then
//! Progressing), with its reason and message; without it, "Waiting to be processed".

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

pub fn assess(a: &Value) -> Assessment {
    match condition(a, "Available") {
        Some(c) => {
            let text =
                format!("{}: {}", c["reason"].as_str().unwrap_or_default(), c["message"].as_str().unwrap_or_default());
            let health = if c["status"] == "True" { Health::Healthy } else { Health::Progressing };
            Assessment::new(health, text)
        }
        None => Assessment::new(Health::Progressing, "Waiting to be processed"),
    }
}
