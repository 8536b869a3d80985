//! Application specs (the domain type, not the protobuf one) and their validation.

use serde::{Deserialize, Serialize};

/// Where manifests come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Source {
    pub repo_url: String,
    /// Branch, tag or commit; empty means the remote's HEAD.
    pub target_revision: String,
    /// Directory in the repository ("" or "." for the root).
    pub path: String,
    pub recurse: bool,
}

/// Where they go: one cluster by name, or every cluster whose labels match a selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Destination {
    pub cluster: String,
    /// A Kubernetes label selector over cluster labels (`env=prod,region in (eu,us)`); set
    /// instead of `cluster`.
    #[serde(default)]
    pub selector: String,
    pub namespace: String,
}

impl Destination {
    /// Whether this destination takes the cluster `name` with `labels` (its labels plus facts).
    pub fn targets(&self, name: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        if !self.cluster.is_empty() {
            return self.cluster == name;
        }
        // Validated at creation; an unparsable selector matches nothing.
        crate::selector::Selector::parse(&self.selector).is_ok_and(|s| s.matches(labels))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncPolicy {
    pub automated: bool,
    pub prune: bool,
    pub self_heal: bool,
    pub create_namespace: bool,
    pub allow_empty: bool,
    /// How a failed sync is retried (Argo CD's `syncPolicy.retry`).
    #[serde(default)]
    pub retry: Retry,
    /// Sync option `ApplyOutOfSyncOnly=true`: a sync applies only objects that differ.
    #[serde(default)]
    pub apply_out_of_sync_only: bool,
    /// Sync option `PruneLast=true`: prune after everything else is applied and healthy.
    #[serde(default)]
    pub prune_last: bool,
    /// Sync option `PrunePropagationPolicy=…` (foreground by default).
    #[serde(default)]
    pub prune_propagation: Propagation,
}

/// How deleting an object treats its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Propagation {
    #[default]
    Foreground,
    Background,
    Orphan,
}

/// Whether a repository URL is fetched over ssh: `ssh://…` (or `git+ssh://…`), or the scp-like
/// `user@host:path`.
pub fn is_ssh_url(url: &str) -> bool {
    if url.starts_with("ssh://") || url.starts_with("git+ssh://") {
        return true;
    }
    if url.contains("://") {
        return false;
    }
    // scp-like: `user@host:path`, the colon before any slash.
    match (url.find('@'), url.find(':')) {
        (Some(at), Some(colon)) => at < colon && url[..colon].find('/').is_none() && colon + 1 < url.len(),
        _ => false,
    }
}

impl Propagation {
    /// Parses Kubernetes' propagation policy names (case-insensitive); empty means the
    /// default, foreground.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "foreground" => Ok(Propagation::Foreground),
            "background" => Ok(Propagation::Background),
            "orphan" => Ok(Propagation::Orphan),
            other => Err(format!("propagation policy {other:?}: use foreground, background or orphan")),
        }
    }
}

impl SyncPolicy {
    /// Applies one Argo CD application-level sync option (`Key=value`).
    pub fn set_option(&mut self, option: &str) -> Result<(), SpecError> {
        let bad = |why: String| err("syncPolicy.syncOptions", why);
        let (k, v) = option.split_once('=').ok_or_else(|| bad(format!("{option:?} is not Key=value")))?;
        let flag = || match v {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(bad(format!("{k}={other}: expected true or false"))),
        };
        match k {
            "CreateNamespace" => self.create_namespace = flag()?,
            "ApplyOutOfSyncOnly" => self.apply_out_of_sync_only = flag()?,
            "PruneLast" => self.prune_last = flag()?,
            "PrunePropagationPolicy" => {
                if v.is_empty() {
                    return Err(bad("PrunePropagationPolicy=: use foreground, background or orphan".into()));
                }
                self.prune_propagation =
                    Propagation::parse(v).map_err(|why| bad(format!("PrunePropagationPolicy: {why}")))?;
            }
            // Accepted as in Argo CD; Bosun always applies server-side.
            "ServerSideApply" | "Validate" | "RespectIgnoreDifferences" | "SkipDryRunOnMissingResource" => {
                flag()?;
            }
            other => return Err(bad(format!("unknown sync option {other:?}"))),
        }
        Ok(())
    }
}

/// Retry of failed syncs with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Attempts after the first failure (0: never retry).
    pub limit: u32,
    /// First delay.
    pub duration_secs: u64,
    pub factor: u32,
    /// Longest delay.
    pub max_duration_secs: u64,
}

impl Default for Retry {
    /// Argo CD's backoff (5 s × 2, at most 3 min) with five attempts, so that transient API
    /// errors heal without anyone asking.
    fn default() -> Self {
        Self { limit: 5, duration_secs: 5, factor: 2, max_duration_secs: 180 }
    }
}

impl Retry {
    /// The delay before retry number `attempt` (1-based), or `None` when attempts are spent.
    pub fn delay(&self, attempt: u32) -> Option<std::time::Duration> {
        if attempt == 0 || attempt > self.limit {
            return None;
        }
        let factor = u64::from(self.factor.max(1));
        let secs =
            (0..attempt - 1).fold(self.duration_secs, |d, _| d.saturating_mul(factor).min(self.max_duration_secs));
        Some(std::time::Duration::from_secs(secs.min(self.max_duration_secs)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AppSpec {
    pub source: Source,
    pub destination: Destination,
    pub sync_policy: SyncPolicy,
    /// Differences not counted as drift (Argo CD's `ignoreDifferences`).
    #[serde(default)]
    pub ignore_differences: Vec<IgnoreDifference>,
    /// Applications that must be Synced and Healthy on a cluster before this one is applied
    /// there (Flux's `dependsOn`).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Progressive rollout across the targeted clusters (absent: all at once).
    #[serde(default)]
    pub rollout: Option<crate::rollout::Strategy>,
    /// Completed syncs kept per cluster (Argo CD's `revisionHistoryLimit`; absent: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<u32>,
}

/// Fields of matching objects that are not compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IgnoreDifference {
    /// API group ("" for the core group).
    pub group: String,
    pub kind: String,
    /// Only this object (empty: every object of the kind).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    /// RFC 6901 pointers, e.g. `/spec/replicas`.
    #[serde(default)]
    pub json_pointers: Vec<String>,
    /// Fields owned by these field managers (e.g. an HPA's `kube-controller-manager`).
    #[serde(default)]
    pub managed_fields_managers: Vec<String>,
    /// jq expressions selecting ignored values, e.g.
    /// `.spec.template.spec.initContainers[] | select(.name == "istio-init")`.
    #[serde(default)]
    pub jq_path_expressions: Vec<String>,
}

impl IgnoreDifference {
    pub fn matches(&self, r: &crate::ObjectRef) -> bool {
        self.group == r.group
            && self.kind == r.kind
            && (self.name.is_empty() || self.name == r.name)
            && (self.namespace.is_empty() || self.namespace == r.namespace)
    }
}

/// An invalid field of an Application, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid application {field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError { field, message: message.into() }
}

/// Whether `s` is a DNS subdomain (RFC 1123), as Kubernetes object names are: at most 253
/// characters, dot-separated DNS labels (`example.guestbook`).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `s` is a DNS-1123 label: what cluster names and namespaces must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Normalises a repository path: "" for the root; refuses absolute paths and `..`.
pub fn normalize_path(path: &str) -> Result<String, SpecError> {
    if path.starts_with('/') {
        return Err(err("source.path", format!("{path:?} is absolute; give a path relative to the repository root")));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(err("source.path", format!("{path:?} leaves the repository; remove the '..'"))),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl AppSpec {
    /// Checks an Application named `name`; returns the spec with its path normalised.
    pub fn validate(mut self, name: &str) -> Result<Self, SpecError> {
        if !is_dns_subdomain(name) {
            return Err(err(
                "name",
                format!(
                    "{name:?} must be a Kubernetes object name (a DNS subdomain): lowercase letters, digits, '-' and '.', at most 253"
                ),
            ));
        }
        let url = self.source.repo_url.trim();
        if url.is_empty() {
            return Err(err("source.repoURL", "required"));
        }
        let known = ["file://", "git://", "http://", "https://"].iter().any(|s| url.starts_with(s)) || is_ssh_url(url);
        if !known {
            return Err(err(
                "source.repoURL",
                format!("{url:?}: use file://, git://, http(s):// or ssh:// (or user@host:path)"),
            ));
        }
        self.source.repo_url = url.to_string();
        self.source.path = normalize_path(&self.source.path)?;
        if self.source.target_revision.contains("..") || self.source.target_revision.starts_with('-') {
            return Err(err(
                "source.targetRevision",
                format!("{:?} is not a branch, tag or commit", self.source.target_revision),
            ));
        }
        match (self.destination.cluster.is_empty(), self.destination.selector.trim().is_empty()) {
            (false, false) => {
                return Err(err("destination", "give a cluster name or a selector, not both"));
            }
            (true, true) => return Err(err("destination.cluster", "give a cluster name or a label selector")),
            (false, true) if !is_dns_label(&self.destination.cluster) => {
                return Err(err("destination.cluster", format!("{:?} must name a cluster", self.destination.cluster)));
            }
            (true, false) => {
                let s = crate::selector::Selector::parse(&self.destination.selector)
                    .map_err(|e| err("destination.selector", e.why))?;
                if s.is_empty() {
                    return Err(err(
                        "destination.selector",
                        "an empty selector would target every cluster; say so with a label every cluster has",
                    ));
                }
                self.destination.selector = s.to_string();
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.depends_on {
            if !is_dns_subdomain(d) || d == name {
                return Err(err("dependsOn", format!("{d:?} must name another Application")));
            }
            if !seen.insert(d) {
                return Err(err("dependsOn", format!("{d:?} is listed twice")));
            }
        }
        for d in &self.ignore_differences {
            if d.kind.is_empty() {
                return Err(err("ignoreDifferences.kind", "required"));
            }
            if let Some(p) = d.json_pointers.iter().find(|p| !p.starts_with('/')) {
                return Err(err(
                    "ignoreDifferences.jsonPointers",
                    format!("{p:?} is not a JSON pointer (it must start with '/')"),
                ));
            }
            for e in &d.jq_path_expressions {
                crate::jq::check(e).map_err(|m| err("ignoreDifferences.jqPathExpressions", m))?;
            }
        }
        if !self.destination.namespace.is_empty() && !is_dns_label(&self.destination.namespace) {
            return Err(err(
                "destination.namespace",
                format!("{:?} is not a valid namespace name", self.destination.namespace),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, path: &str, cluster: &str) -> AppSpec {
        AppSpec {
            source: Source { repo_url: url.into(), path: path.into(), ..Default::default() },
            destination: Destination { cluster: cluster.into(), namespace: "default".into(), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn application_sync_options() {
        let mut p = SyncPolicy::default();
        for o in [
            "CreateNamespace=true",
            "ApplyOutOfSyncOnly=true",
            "PruneLast=true",
            "PrunePropagationPolicy=background",
            "ServerSideApply=true",
        ] {
            p.set_option(o).unwrap();
        }
        assert!(p.create_namespace && p.apply_out_of_sync_only && p.prune_last);
        assert_eq!(p.prune_propagation, Propagation::Background);
        for bad in ["Prune", "PruneLast=yes", "PrunePropagationPolicy=sideways", "Unknown=true"] {
            assert!(p.set_option(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_backoff_table() {
        let r = Retry { limit: 4, duration_secs: 5, factor: 2, max_duration_secs: 30 };
        let delays: Vec<Option<u64>> = (0..=5).map(|a| r.delay(a).map(|d| d.as_secs())).collect();
        assert_eq!(delays, [None, Some(5), Some(10), Some(20), Some(30), None]);
        assert_eq!(Retry { limit: 0, ..r }.delay(1), None);
    }

    #[test]
    fn validation_table() {
        assert_eq!(spec("file:///r", "./k8s//backend/", "c1").validate("app").unwrap().source.path, "k8s/backend");
        assert!(spec("git://h/r", "", "c1").validate("app").is_ok());
        assert!(spec("git@github.com:o/r.git", "", "c1").validate("app").is_ok());
        for (s, name, field) in [
            (spec("file:///r", "", "c1"), "App", "name"),
            (spec("", "", "c1"), "a", "source.repoURL"),
            (spec("ftp://x", "", "c1"), "a", "source.repoURL"),
            (spec("file:///r", "../etc", "c1"), "a", "source.path"),
            (spec("file:///r", "/etc", "c1"), "a", "source.path"),
            (spec("file:///r", "", ""), "a", "destination.cluster"),
            (
                AppSpec {
                    destination: Destination {
                        cluster: "c1".into(),
                        selector: "env=prod".into(),
                        ..Default::default()
                    },
                    ..spec("file:///r", "", "c1")
                },
                "a",
                "destination",
            ),
            (
                AppSpec {
                    destination: Destination { selector: "env in prod".into(), ..Default::default() },
                    ..spec("file:///r", "", "")
                },
                "a",
                "destination.selector",
            ),
            (AppSpec { depends_on: vec!["a".into()], ..spec("file:///r", "", "c1") }, "a", "dependsOn"),
            (AppSpec { depends_on: vec!["b".into(), "b".into()], ..spec("file:///r", "", "c1") }, "a", "dependsOn"),
        ] {
            assert_eq!(s.validate(name).unwrap_err().field, field);
        }
    }
}
