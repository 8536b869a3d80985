//! HorizontalPodAutoscaler health, as Argo CD judges it. `autoscaling/v1` keeps its conditions
//! in the `autoscaling.alpha.kubernetes.io/conditions` annotation, later versions in
//! `status.conditions`. In order, the first condition that is a known failure (unable to get
//! or update the scale, to get resource metrics, an invalid selector) makes it Degraded; the
//! first `AbleToScale` or `ScalingLimited` condition that is True makes it Healthy; otherwise,
//! or without conditions, it is Progressing ("Waiting to Autoscale").

use serde_json::Value;

use super::Assessment;
use crate::status::Health;

const DEGRADED: &[(&str, &str)] = &[
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "InvalidSelector"),
];
const HEALTHY_TYPES: &[&str] = &["AbleToScale", "ScalingLimited"];

fn waiting() -> Assessment {
    Assessment::new(Health::Progressing, "Waiting to Autoscale")
}

pub fn assess(h: &Value) -> Assessment {
    let conditions: Vec<Value> = if h["apiVersion"] == "autoscaling/v1" {
        let Some(text) = h["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"].as_str() else {
            return waiting();
        };
        match serde_json::from_str::<Vec<Value>>(text) {
            Ok(c) => c,
            Err(e) => {
                return Assessment::new(Health::Unknown, format!("the conditions annotation is not valid JSON: {e}"));
            }
        }
    } else {
        h["status"]["conditions"].as_array().cloned().unwrap_or_default()
    };
    for c in &conditions {
        let (t, reason, message) = (
            c["type"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default(),
        );
        if DEGRADED.contains(&(t, reason)) {
            return Assessment::new(Health::Degraded, message);
        }
        if HEALTHY_TYPES.contains(&t) && c["status"] == "True" {
            return Assessment::new(Health::Healthy, message);
        }
    }
    waiting()
}
