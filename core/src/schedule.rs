//! Scheduling: which Applications — and which bundle of each — every cluster gets.
//!
//! A cluster gets an Application when its destination (a name or a label selector) matches
//! the cluster, and the Application has rendered. It gets the current bundle (its own
//! variant when the Application renders per cluster, the history entry's while rolled back)
//! unless something holds it back, in which case it keeps what it already runs:
//! - a dependency (`dependsOn`) not yet Synced and Healthy at its own bundle on that cluster;
//! - a progressive rollout that has not admitted the cluster yet;
//! - a per-cluster variant that could not be rendered.
//!
//! Pure: a function of the fleet, the Applications and what clusters last reported. The
//! control plane builds a [`Fleet`] view over its records and asks.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::app::AppSpec;
use crate::assignment::Assignment;
use crate::rollout;
use crate::status::{Health, SyncStatus};

/// A cluster as scheduling sees it.
#[derive(Debug, Clone)]
pub struct Cluster<'a> {
    pub name: &'a str,
    /// Its admin labels (a rollout orders clusters by one of them).
    pub labels: &'a BTreeMap<String, String>,
    /// What destinations' selectors match: identity, admin labels and facts
    /// ([`crate::cluster::labels`]); borrowed from a cache, or computed.
    pub selector_labels: std::borrow::Cow<'a, BTreeMap<String, String>>,
    pub connected: bool,
    /// When its agent was last connected (Unix seconds).
    pub last_seen: i64,
}

/// The history entry an Application is rolled back to.
#[derive(Debug, Clone, Copy)]
pub struct Rollback<'a> {
    pub bundle_digest: &'a str,
    pub revision: &'a str,
}

/// An Application as scheduling sees it.
#[derive(Debug, Clone)]
pub struct Application<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub spec: &'a AppSpec,
    pub sync_request: u64,
    /// The latest sync request asks for pruning.
    pub sync_prune: bool,
    /// The current bundle (with per-cluster values: a digest of every variant); empty until
    /// it first renders.
    pub bundle_digest: &'a str,
    pub revision: &'a str,
    /// Whether it renders per cluster; then `variants` holds each cluster's bundle.
    pub templated: bool,
    pub variants: &'a BTreeMap<String, String>,
    pub rollback: Option<Rollback<'a>>,
    pub rollout: &'a rollout::State,
}

/// What a cluster last reported for an Application.
#[derive(Debug, Clone, Copy)]
pub struct Reported<'a> {
    pub bundle_digest: &'a str,
    pub revision: &'a str,
    pub sync: SyncStatus,
    pub health: Health,
}

/// The clusters each progressive rollout admits to its current bundle.
pub type Admissions = HashMap<String, HashSet<String>>;

/// What a cluster (second argument) last reported for an Application (first).
pub type ReportsFn<'a> = Box<dyn Fn(&str, &str) -> Option<Reported<'a>> + 'a>;

/// Everything scheduling reads.
pub struct Fleet<'a> {
    pub clusters: BTreeMap<&'a str, Cluster<'a>>,
    pub apps: BTreeMap<&'a str, Application<'a>>,
    /// What `cluster` last reported for `app`.
    pub reports: ReportsFn<'a>,
}

/// The bundle `app` puts on `cluster`: a rollback's, the cluster's variant, or the one bundle.
pub fn deployed_for<'a>(app: &Application<'a>, cluster: &str) -> &'a str {
    match app.rollback {
        Some(r) => r.bundle_digest,
        None => app.variants.get(cluster).map(String::as_str).unwrap_or(app.bundle_digest),
    }
}

/// The assignment of `app` on `cluster` at the bundle it deploys there.
pub fn assignment(app: &Application<'_>, cluster: &str) -> Assignment {
    let (bundle_digest, revision, sync_policy) = match app.rollback {
        // Rolled back: the old bundle, and no automated sync until someone asks for one.
        Some(r) => (
            r.bundle_digest,
            r.revision,
            crate::SyncPolicy { automated: false, self_heal: false, ..app.spec.sync_policy },
        ),
        None => (deployed_for(app, cluster), app.revision, app.spec.sync_policy),
    };
    Assignment {
        app: app.name.to_string(),
        app_uid: app.uid.to_string(),
        bundle_digest: bundle_digest.to_string(),
        revision: revision.to_string(),
        namespace: app.spec.destination.namespace.clone(),
        sync_policy,
        sync_request: app.sync_request,
        sync_prune: app.sync_prune,
        ignore_differences: app.spec.ignore_differences.clone(),
    }
}

impl<'a> Fleet<'a> {
    /// Whether `app`'s destination matches `cluster`.
    pub fn targets(&self, app: &Application<'_>, cluster: &Cluster<'_>) -> bool {
        app.spec.destination.targets(cluster.name, &cluster.selector_labels)
    }

    /// Why `app` may not be applied on `cluster` yet: its dependencies that are not Synced
    /// and Healthy there at the bundle they deploy there (a missing one counts as unmet).
    pub fn unmet_dependencies(&self, app: &Application<'_>, cluster: &str) -> Vec<String> {
        app.spec
            .depends_on
            .iter()
            .filter(|d| {
                let Some(dep) = self.apps.get(d.as_str()) else { return true };
                let deployed = deployed_for(dep, cluster);
                !(self.reports)(d, cluster).is_some_and(|s| {
                    s.sync == SyncStatus::Synced && s.health == Health::Healthy && s.bundle_digest == deployed
                })
            })
            .cloned()
            .collect()
    }

    /// The clusters `app` targets, in rollout order, with where each stands with its bundle.
    pub fn rollout_targets(&self, app: &Application<'_>, strategy: &rollout::Strategy) -> Vec<rollout::Target> {
        use rollout::{Progress, Target};
        let keyed: Vec<(String, String)> = self
            .clusters
            .values()
            .filter(|c| self.targets(app, c))
            .map(|c| (c.labels.get(&strategy.order_by).cloned().unwrap_or_default(), c.name.to_string()))
            .collect();
        rollout::order(keyed)
            .into_iter()
            .map(|name| {
                let cluster = self.clusters.get(name.as_str());
                let at = (self.reports)(app.name, &name).filter(|s| s.bundle_digest == deployed_for(app, &name));
                let progress = match at {
                    Some(s) if s.sync == SyncStatus::Synced && s.health == Health::Healthy => Progress::Done,
                    Some(s) if s.health == Health::Degraded => Progress::Degraded,
                    _ if !cluster.is_some_and(|c| c.connected) => {
                        Progress::Offline { since: cluster.map(|c| c.last_seen).unwrap_or_default() }
                    }
                    _ => Progress::Pending,
                };
                Target { name, progress }
            })
            .collect()
    }

    /// The clusters each progressive rollout admits to its current bundle, computed once for
    /// a batch of assignment computations (ordering targets is linear in the fleet).
    pub fn admissions(&self) -> Admissions {
        self.apps
            .values()
            .filter_map(|a| {
                let strategy = a.spec.rollout.as_ref()?;
                if a.rollback.is_some() {
                    return None; // a rollback goes everywhere at once
                }
                let admitted = if a.rollout.digest == a.bundle_digest {
                    self.rollout_targets(a, strategy).into_iter().take(a.rollout.admitted).map(|t| t.name).collect()
                } else {
                    Default::default() // not started yet: the next advance admits the first step
                };
                Some((a.name.to_string(), admitted))
            })
            .collect()
    }

    /// What `cluster` gets: every Application that targets it and has rendered, at the bundle
    /// it deploys there — or, while held back, at what the cluster already runs (nothing if
    /// it runs nothing yet).
    pub fn assignments(&self, admissions: &Admissions, cluster: &str) -> Vec<Assignment> {
        let Some(c) = self.clusters.get(cluster) else { return Vec::new() };
        self.apps
            .values()
            .filter(|a| self.targets(a, c) && !a.bundle_digest.is_empty())
            .filter_map(|a| {
                let assignment = assignment(a, cluster);
                let variant_missing = a.templated && !a.variants.contains_key(cluster) && a.rollback.is_none();
                let admitted = admissions.get(a.name).is_none_or(|set| set.contains(cluster));
                if !variant_missing && admitted && self.unmet_dependencies(a, cluster).is_empty() {
                    return Some(assignment);
                }
                let held = (self.reports)(a.name, cluster).filter(|s| !s.bundle_digest.is_empty())?;
                Some(Assignment {
                    bundle_digest: held.bundle_digest.to_string(),
                    revision: held.revision.to_string(),
                    ..assignment
                })
            })
            .collect()
    }
}

/// Refuses a dependency on a missing Application or one that would close a cycle;
/// `depends_on(app)` is what an existing Application depends on (`None`: no such Application).
pub fn check_dependencies<'d>(
    depends_on: impl Fn(&str) -> Option<&'d [String]>,
    name: &str,
    deps: &[String],
) -> Result<(), String> {
    if let Some(d) = deps.iter().find(|d| depends_on(d).is_none()) {
        return Err(format!("dependsOn: application {d:?} does not exist; create it first"));
    }
    // Depth-first from each dependency; reaching `name` again is a cycle.
    fn walk<'d>(
        depends_on: &impl Fn(&str) -> Option<&'d [String]>,
        at: &str,
        target: &str,
        path: &mut Vec<String>,
    ) -> bool {
        if at == target {
            return true;
        }
        if path.iter().any(|p| p == at) {
            return false;
        }
        path.push(at.to_string());
        for n in depends_on(at).unwrap_or_default() {
            if walk(depends_on, n, target, path) {
                return true;
            }
        }
        path.pop();
        false
    }
    for d in deps {
        let mut path = Vec::new();
        if walk(&depends_on, d, name, &mut path) {
            let cycle: Vec<&str> = std::iter::once(name).chain(path.iter().map(String::as_str)).chain([name]).collect();
            return Err(format!("dependsOn would form a cycle: {}", cycle.join(" → ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
