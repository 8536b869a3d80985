//! Ingress health: Progressing until the controller publishes an address.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(i: &Value) -> Assessment {
    let has_address = i["status"]["loadBalancer"]["ingress"].as_array().is_some_and(|a| !a.is_empty());
    if has_address {
        Assessment::new(Health::Healthy, "")
    } else {
        Assessment::new(Health::Progressing, "waiting for the ingress address")
    }
}
