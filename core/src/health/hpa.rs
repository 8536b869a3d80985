//! HorizontalPodAutoscaler health (Argo CD semantics).

use serde_json::Value;

use super::{Assessment, condition};
use crate::status::Health;

const DEGRADED_REASONS: &[&str] = &[
    "FailedGetResourceMetric",
    "FailedGetExternalMetric",
    "FailedGetPodsMetric",
    "FailedGetObjectMetric",
    "FailedComputeMetricsReplicas",
    "InvalidSelector",
    "FailedGetScale",
    "FailedUpdateScale",
];

pub fn assess(h: &Value) -> Assessment {
    for t in ["AbleToScale", "ScalingActive"] {
        if let Some(c) = condition(h, t) {
            let reason = c["reason"].as_str().unwrap_or_default();
            if c["status"] == "False" && DEGRADED_REASONS.contains(&reason) {
                return Assessment::new(Health::Degraded, c["message"].as_str().unwrap_or(reason));
            }
        }
    }
    if h["status"]["conditions"].as_array().is_none_or(Vec::is_empty) {
        return Assessment::new(Health::Progressing, "Waiting to autoscale");
    }
    Assessment::new(Health::Healthy, "")
}
