//! Health assessment with Argo CD's semantics (gitops-engine's `pkg/health`), one file per kind,
//! dispatched on group/kind. An object being deleted is Progressing ("Pending deletion"),
//! whatever its kind, unless a hook finalizer holds it. Kinds without a check are not assessed
//! (`None`) and count as healthy in an aggregate.

mod apiservice;
mod crd;
mod daemonset;
mod deployment;
mod hpa;
mod ingress;
mod job;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;
mod workflow;

use serde_json::Value;

use crate::object::group_of;
use crate::status::Health;

/// A health verdict with the reason a person would want to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub health: Health,
    pub message: String,
}

impl Assessment {
    pub(crate) fn new(health: Health, message: impl Into<String>) -> Self {
        Self { health, message: message.into() }
    }
}

/// The finalizer Argo CD puts on hooks it runs; an object it holds is judged as it is.
pub const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// Assesses a live object; `None` when Bosun has no check for its kind.
pub fn assess(obj: &Value) -> Option<Assessment> {
    let meta = &obj["metadata"];
    let deleting = meta["deletionTimestamp"].is_string();
    if deleting && !meta["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == HOOK_FINALIZER)) {
        return Some(Assessment::new(Health::Progressing, "Pending deletion"));
    }
    let group = group_of(obj["apiVersion"].as_str().unwrap_or_default());
    let kind = obj["kind"].as_str().unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => Some(deployment::assess(obj)),
        ("apps", "StatefulSet") => Some(statefulset::assess(obj)),
        ("apps", "DaemonSet") => Some(daemonset::assess(obj)),
        ("apps", "ReplicaSet") => Some(replicaset::assess(obj)),
        ("", "Pod") => Some(pod::assess(obj)),
        ("", "Service") => Some(service::assess(obj)),
        ("", "PersistentVolumeClaim") => Some(pvc::assess(obj)),
        ("batch", "Job") => Some(job::assess(obj)),
        ("networking.k8s.io" | "extensions", "Ingress") => Some(ingress::assess(obj)),
        ("argoproj.io", "Workflow") => Some(workflow::assess(obj)),
        ("autoscaling", "HorizontalPodAutoscaler") => Some(hpa::assess(obj)),
        ("apiregistration.k8s.io", "APIService") => Some(apiservice::assess(obj)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some(crd::assess(obj)),
        _ => None,
    }
}

/// The condition of `type` in `status.conditions`, if any.
pub(crate) fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == t)
}

pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `metadata.generation` has not been seen by the controller yet.
pub(crate) fn generation_pending(obj: &Value) -> bool {
    let observed = obj["status"]["observedGeneration"].as_i64().unwrap_or(0);
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    generation > 0 && observed < generation
}

#[cfg(test)]
mod tests;
