//! Fault injection, switchable at run time: latency, error rates per verb, dropped and
//! expired watches, images that fail.

use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ApiError;

/// An injected error: requests of `verb` (any verb when `None`) fail with `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`; `None` for every verb.
    #[serde(default)]
    pub verb: Option<String>,
    /// 409, 429, 500, 503 or 504.
    pub code: u16,
    /// Fraction of matching requests that fail (deterministic sequence), 0.0–1.0.
    #[serde(default = "one")]
    pub rate: f64,
    /// Fail only this many requests, then the rule is spent.
    #[serde(default)]
    pub count: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// The fault settings of one simulated cluster (also its `/_sim/faults` document).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSettings {
    /// Added to every API request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added to the requests on one resource, in milliseconds, keyed by its plural
    /// (`configmaps`) or `group/plural` (`apps/deployments`): one slow kind.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resource_latency_ms: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Images whose workloads fail (in addition to the built-in trigger, see `image_fails`).
    #[serde(default)]
    pub failing_images: Vec<String>,
    /// Answer as for a client whose only permissions are Roles in these namespaces (a
    /// namespaced install): requests outside them (cluster-scoped resources, lists and
    /// watches across all namespaces, other namespaces) are Forbidden. Discovery stays open,
    /// as `system:discovery` grants it to every authenticated client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces_only: Option<Vec<String>>,
}

/// What open watch streams are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchSignal {
    #[default]
    None,
    /// Close every open watch without a word (a dropped connection).
    Drop(u64),
    /// Send every open watch `ERROR 410 Expired`, then close it.
    Expire(u64),
}

pub struct Faults {
    settings: Mutex<(FaultSettings, u64)>,
    watch_tx: watch::Sender<WatchSignal>,
}

impl Default for Faults {
    fn default() -> Self {
        Self { settings: Mutex::new((FaultSettings::default(), 0)), watch_tx: watch::channel(WatchSignal::None).0 }
    }
}

impl Faults {
    pub fn settings(&self) -> FaultSettings {
        self.settings.lock().0.clone()
    }

    pub fn set(&self, s: FaultSettings) {
        self.settings.lock().0 = s;
    }

    pub fn clear(&self) {
        self.set(FaultSettings::default());
    }

    pub fn set_latency(&self, latency: Duration) {
        self.settings.lock().0.latency_ms = latency.as_millis() as u64;
    }

    /// Slows down every request on one resource (`configmaps`, `apps/deployments`).
    pub fn set_resource_latency(&self, resource: &str, latency: Duration) {
        self.settings.lock().0.resource_latency_ms.insert(resource.to_string(), latency.as_millis() as u64);
    }

    pub fn add_error(&self, rule: ErrorRule) {
        self.settings.lock().0.errors.push(rule);
    }

    pub fn add_failing_image(&self, image: &str) {
        self.settings.lock().0.failing_images.push(image.to_string());
    }

    /// Restricts every client to these namespaces (see [`FaultSettings::namespaces_only`]).
    pub fn set_namespaces_only(&self, namespaces: &[&str]) {
        self.settings.lock().0.namespaces_only = Some(namespaces.iter().map(|n| n.to_string()).collect());
    }

    /// Refuses a request outside the namespaces clients are restricted to, with the API
    /// server's wording.
    pub fn check_scope(
        &self,
        verb: &str,
        group: &str,
        plural: &str,
        namespaced: bool,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        let s = self.settings.lock();
        let Some(allowed) = &s.0.namespaces_only else { return Ok(()) };
        let within = namespaced && namespace.is_some_and(|n| allowed.iter().any(|a| a == n));
        if within {
            return Ok(());
        }
        let resource = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        let scope = match namespace {
            Some(n) => format!("in the namespace \"{n}\""),
            None => "at the cluster scope".to_string(),
        };
        Err(ApiError::forbidden(format!(
            "{resource} is forbidden: User \"system:serviceaccount:kube-sim:client\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
        )))
    }

    pub fn image_fails(&self, image: &str) -> bool {
        image_fails(image) || self.settings.lock().0.failing_images.iter().any(|i| i == image)
    }

    pub fn drop_watches(&self) {
        let n = self.epoch();
        self.watch_tx.send_replace(WatchSignal::Drop(n));
    }

    pub fn expire_watches(&self) {
        let n = self.epoch();
        self.watch_tx.send_replace(WatchSignal::Expire(n));
    }

    fn epoch(&self) -> u64 {
        let mut s = self.settings.lock();
        s.1 += 1;
        s.1
    }

    pub fn watch_signal(&self) -> watch::Receiver<WatchSignal> {
        self.watch_tx.subscribe()
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.settings.lock().0.latency_ms)
    }

    /// The latency of a request on `group`/`plural`: the global one plus that resource's.
    pub fn latency_for(&self, group: &str, plural: &str) -> Duration {
        let s = self.settings.lock();
        let by_resource = if group.is_empty() {
            s.0.resource_latency_ms.get(plural)
        } else {
            s.0.resource_latency_ms.get(&format!("{group}/{plural}")).or_else(|| s.0.resource_latency_ms.get(plural))
        };
        Duration::from_millis(s.0.latency_ms + by_resource.copied().unwrap_or_default())
    }

    /// Decides whether a request of `verb` fails, advancing the deterministic sequence.
    pub fn check(&self, verb: &str) -> Result<(), ApiError> {
        let mut guard = self.settings.lock();
        let (settings, counter) = &mut *guard;
        let mut fail = None;
        for rule in settings.errors.iter_mut() {
            if rule.verb.as_deref().is_some_and(|v| v != verb) || rule.count == Some(0) {
                continue;
            }
            *counter += 1;
            // A low-discrepancy sequence: exactly `rate` of requests fail, spread evenly.
            let hit = ((*counter as f64) * rule.rate).floor() > (((*counter - 1) as f64) * rule.rate).floor();
            if hit {
                if let Some(c) = rule.count.as_mut() {
                    *c -= 1;
                }
                fail = Some(rule.code);
                break;
            }
        }
        settings.errors.retain(|r| r.count != Some(0));
        match fail {
            None => Ok(()),
            Some(code) => Err(injected(code)),
        }
    }
}

fn injected(code: u16) -> ApiError {
    match code {
        409 => ApiError::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected by kube-sim)",
        ),
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later (injected by kube-sim)",
        ),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected by kube-sim)",
        ),
        504 => ApiError::new(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted (injected by kube-sim)",
        ),
        c => ApiError::new(
            c,
            "InternalError",
            "an error on the server (\"injected by kube-sim\") has prevented the request from succeeding",
        ),
    }
}

/// The deterministic failure trigger: an image whose tag is `fail` or starts with `fail-`,
/// or whose registry host ends in `.invalid`, never becomes ready.
pub fn image_fails(image: &str) -> bool {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (image, ""),
    };
    let host_invalid = name.split('/').next().is_some_and(|h| name.contains('/') && h.ends_with(".invalid"));
    tag == "fail" || tag.starts_with("fail-") || host_invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_restriction_refuses_what_roles_would_not_grant() {
        let f = Faults::default();
        assert!(f.check_scope("list", "", "configmaps", true, None).is_ok(), "unrestricted by default");
        f.set_namespaces_only(&["apps"]);
        for (verb, group, plural, namespaced, ns, allowed) in [
            ("watch", "", "configmaps", true, Some("apps"), true),
            ("patch", "apps", "deployments", true, Some("apps"), true),
            ("watch", "", "configmaps", true, None, false),
            ("get", "", "configmaps", true, Some("other"), false),
            ("patch", "rbac.authorization.k8s.io", "clusterroles", false, None, false),
        ] {
            let got = f.check_scope(verb, group, plural, namespaced, ns);
            assert_eq!(got.is_ok(), allowed, "{verb} {group}/{plural} in {ns:?}");
            if let Err(e) = got {
                assert_eq!(e.code, 403);
                assert!(e.message.contains(plural) && e.message.contains(verb), "{}", e.message);
            }
        }
    }

    #[test]
    fn failure_trigger() {
        for (img, want) in [
            ("nginx:fail", true),
            ("nginx:fail-2", true),
            ("registry.invalid/app:1", true),
            ("nginx:1.27", false),
            ("failover:1", false),
            ("localhost:5000/app", false),
        ] {
            assert_eq!(image_fails(img), want, "{img}");
        }
    }

    #[test]
    fn latency_per_resource() {
        let f = Faults::default();
        f.set_latency(Duration::from_millis(5));
        f.set_resource_latency("apps/deployments", Duration::from_millis(100));
        f.set_resource_latency("configmaps", Duration::from_millis(50));
        assert_eq!(f.latency_for("apps", "deployments"), Duration::from_millis(105));
        assert_eq!(f.latency_for("", "configmaps"), Duration::from_millis(55));
        assert_eq!(f.latency_for("", "secrets"), Duration::from_millis(5));
        assert_eq!(f.latency_for("batch", "jobs"), Duration::from_millis(5));
    }

    #[test]
    fn error_rates_are_exact_and_counts_expire() {
        let f = Faults::default();
        f.add_error(ErrorRule { verb: Some("patch".into()), code: 500, rate: 0.25, count: None });
        let failures = (0..100).filter(|_| f.check("patch").is_err()).count();
        assert_eq!(failures, 25);
        assert!(f.check("get").is_ok());
        f.clear();
        f.add_error(ErrorRule { verb: None, code: 429, rate: 1.0, count: Some(2) });
        assert_eq!(f.check("get").unwrap_err().code, 429);
        assert!(f.check("list").is_err());
        assert!(f.check("list").is_ok());
    }
}
