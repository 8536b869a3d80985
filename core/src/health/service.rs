//! Service health: a LoadBalancer is Progressing until it has an address.

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

pub fn assess(s: &Value) -> Assessment {
    if s["spec"]["type"] == "LoadBalancer" {
        let has_address = s["status"]["loadBalancer"]["ingress"].as_array().is_some_and(|i| !i.is_empty());
        if !has_address {
            return Assessment::new(Health::Progressing, "waiting for the load balancer address");
        }
    }
    Assessment::new(Health::Healthy, "")
}
