//! Conversions between `bosun-core` domain types and their protobuf forms, in one place for
//! every edge (control plane, agent, CLI).

use bosun_core::app::{IgnoreDifference, Propagation, Retry};
use bosun_core::{Assignment, Health, Removal, SyncPolicy, SyncStatus};

use crate::v1 as pb;

/// A protobuf message that does not make a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct ConvertError {
    pub field: &'static str,
    pub why: String,
}

impl From<SyncStatus> for pb::SyncStatus {
    fn from(s: SyncStatus) -> Self {
        match s {
            SyncStatus::Unknown => pb::SyncStatus::Unknown,
            SyncStatus::Synced => pb::SyncStatus::Synced,
            SyncStatus::OutOfSync => pb::SyncStatus::OutOfSync,
        }
    }
}

impl From<Health> for pb::HealthStatus {
    fn from(h: Health) -> Self {
        match h {
            Health::Healthy => pb::HealthStatus::Healthy,
            Health::Progressing => pb::HealthStatus::Progressing,
            Health::Degraded => pb::HealthStatus::Degraded,
            Health::Suspended => pb::HealthStatus::Suspended,
            Health::Missing => pb::HealthStatus::Missing,
            Health::Unknown => pb::HealthStatus::Unknown,
        }
    }
}

/// The wire value of a sync status.
pub fn sync_to_pb(s: SyncStatus) -> i32 {
    pb::SyncStatus::from(s) as i32
}

/// The wire value of a health.
pub fn health_to_pb(h: Health) -> i32 {
    pb::HealthStatus::from(h) as i32
}

/// A sync status from its wire value (unknown values read as `Unknown`).
pub fn sync_from_pb(v: i32) -> SyncStatus {
    match pb::SyncStatus::try_from(v) {
        Ok(pb::SyncStatus::Synced) => SyncStatus::Synced,
        Ok(pb::SyncStatus::OutOfSync) => SyncStatus::OutOfSync,
        _ => SyncStatus::Unknown,
    }
}

/// A health from its wire value (unknown values read as `Unknown`).
pub fn health_from_pb(v: i32) -> Health {
    match pb::HealthStatus::try_from(v) {
        Ok(pb::HealthStatus::Healthy) => Health::Healthy,
        Ok(pb::HealthStatus::Progressing) => Health::Progressing,
        Ok(pb::HealthStatus::Degraded) => Health::Degraded,
        Ok(pb::HealthStatus::Suspended) => Health::Suspended,
        Ok(pb::HealthStatus::Missing) => Health::Missing,
        _ => Health::Unknown,
    }
}

impl From<&bosun_core::AppSpec> for pb::ApplicationSpec {
    fn from(s: &bosun_core::AppSpec) -> Self {
        pb::ApplicationSpec {
            source: Some(pb::Source {
                repo_url: s.source.repo_url.clone(),
                target_revision: s.source.target_revision.clone(),
                path: s.source.path.clone(),
                recurse: s.source.recurse,
            }),
            destination: Some(pb::Destination {
                cluster: s.destination.cluster.clone(),
                namespace: s.destination.namespace.clone(),
                selector: s.destination.selector.clone(),
            }),
            sync_policy: Some(s.sync_policy.into()),
            ignore_differences: s.ignore_differences.iter().map(Into::into).collect(),
            depends_on: s.depends_on.clone(),
            revision_history_limit: s.revision_history_limit,
            rollout: s.rollout.as_ref().map(|r| pb::RolloutStrategy {
                step: r.step.to_string(),
                max_unavailable: r.max_unavailable,
                pause_seconds: r.pause_secs,
                order_by_label: r.order_by.clone(),
                offline_timeout_seconds: r.offline_timeout_secs,
            }),
        }
    }
}

impl TryFrom<pb::ApplicationSpec> for bosun_core::AppSpec {
    type Error = ConvertError;

    fn try_from(s: pb::ApplicationSpec) -> Result<Self, ConvertError> {
        let src = s.source.unwrap_or_default();
        let dst = s.destination.unwrap_or_default();
        Ok(bosun_core::AppSpec {
            source: bosun_core::app::Source {
                repo_url: src.repo_url,
                target_revision: src.target_revision,
                path: src.path,
                recurse: src.recurse,
            },
            destination: bosun_core::app::Destination {
                cluster: dst.cluster,
                selector: dst.selector,
                namespace: dst.namespace,
            },
            sync_policy: s.sync_policy.unwrap_or_default().try_into()?,
            ignore_differences: s.ignore_differences.into_iter().map(Into::into).collect(),
            depends_on: s.depends_on,
            revision_history_limit: s.revision_history_limit,
            rollout: match s.rollout {
                None => None,
                Some(r) => Some(bosun_core::rollout::Strategy {
                    step: bosun_core::rollout::StepSize::parse(&r.step).ok_or_else(|| ConvertError {
                        field: "rollout.step",
                        why: format!("{:?}: give a count (2) or a percentage (25%)", r.step),
                    })?,
                    max_unavailable: r.max_unavailable,
                    pause_secs: r.pause_seconds,
                    order_by: r.order_by_label,
                    offline_timeout_secs: if r.offline_timeout_seconds == 0 { 300 } else { r.offline_timeout_seconds },
                }),
            },
        })
    }
}

impl From<SyncPolicy> for pb::SyncPolicy {
    fn from(p: SyncPolicy) -> Self {
        let r = p.retry;
        pb::SyncPolicy {
            automated: p.automated,
            prune: p.prune,
            self_heal: p.self_heal,
            create_namespace: p.create_namespace,
            allow_empty: p.allow_empty,
            retry: Some(pb::RetryPolicy {
                limit: r.limit,
                backoff_seconds: r.duration_secs,
                backoff_factor: r.factor,
                backoff_max_seconds: r.max_duration_secs,
            }),
            apply_out_of_sync_only: p.apply_out_of_sync_only,
            prune_last: p.prune_last,
            prune_propagation: match p.prune_propagation {
                Propagation::Foreground => "foreground",
                Propagation::Background => "background",
                Propagation::Orphan => "orphan",
            }
            .into(),
        }
    }
}

impl TryFrom<pb::SyncPolicy> for SyncPolicy {
    type Error = ConvertError;

    fn try_from(p: pb::SyncPolicy) -> Result<Self, ConvertError> {
        let retry = p
            .retry
            .map(|r| Retry {
                limit: r.limit,
                duration_secs: r.backoff_seconds,
                factor: r.backoff_factor,
                max_duration_secs: r.backoff_max_seconds,
            })
            .unwrap_or_default();
        Ok(SyncPolicy {
            automated: p.automated,
            prune: p.prune,
            self_heal: p.self_heal,
            create_namespace: p.create_namespace,
            allow_empty: p.allow_empty,
            retry,
            apply_out_of_sync_only: p.apply_out_of_sync_only,
            prune_last: p.prune_last,
            prune_propagation: Propagation::parse(&p.prune_propagation)
                .map_err(|why| ConvertError { field: "syncPolicy.prunePropagation", why })?,
        })
    }
}

impl From<&IgnoreDifference> for pb::IgnoreDifference {
    fn from(d: &IgnoreDifference) -> Self {
        pb::IgnoreDifference {
            group: d.group.clone(),
            kind: d.kind.clone(),
            name: d.name.clone(),
            namespace: d.namespace.clone(),
            json_pointers: d.json_pointers.clone(),
            managed_fields_managers: d.managed_fields_managers.clone(),
            jq_path_expressions: d.jq_path_expressions.clone(),
        }
    }
}

impl From<pb::IgnoreDifference> for IgnoreDifference {
    fn from(d: pb::IgnoreDifference) -> Self {
        IgnoreDifference {
            group: d.group,
            kind: d.kind,
            name: d.name,
            namespace: d.namespace,
            json_pointers: d.json_pointers,
            managed_fields_managers: d.managed_fields_managers,
            jq_path_expressions: d.jq_path_expressions,
        }
    }
}

impl From<&Assignment> for pb::Assignment {
    fn from(a: &Assignment) -> Self {
        pb::Assignment {
            app: a.app.clone(),
            app_uid: a.app_uid.clone(),
            bundle_digest: a.bundle_digest.clone(),
            revision: a.revision.clone(),
            namespace: a.namespace.clone(),
            sync_policy: Some(a.sync_policy.into()),
            sync_request: a.sync_request,
            ignore_differences: a.ignore_differences.iter().map(Into::into).collect(),
            sync_prune: a.sync_prune,
        }
    }
}

impl From<&Removal> for pb::Removal {
    fn from(r: &Removal) -> Self {
        pb::Removal { app: r.app.clone(), app_uid: r.app_uid.clone(), cascade: r.cascade }
    }
}

impl From<pb::Removal> for Removal {
    fn from(r: pb::Removal) -> Self {
        Removal { app: r.app, app_uid: r.app_uid, cascade: r.cascade }
    }
}

impl TryFrom<pb::Assignment> for Assignment {
    type Error = ConvertError;

    fn try_from(a: pb::Assignment) -> Result<Self, ConvertError> {
        Ok(Assignment {
            app: a.app,
            app_uid: a.app_uid,
            bundle_digest: a.bundle_digest,
            revision: a.revision,
            namespace: a.namespace,
            sync_policy: a.sync_policy.unwrap_or_default().try_into()?,
            sync_request: a.sync_request,
            ignore_differences: a.ignore_differences.into_iter().map(Into::into).collect(),
            sync_prune: a.sync_prune,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [SyncStatus::Unknown, SyncStatus::Synced, SyncStatus::OutOfSync] {
            assert_eq!(sync_from_pb(sync_to_pb(s)), s);
        }
        for h in [
            Health::Healthy,
            Health::Progressing,
            Health::Degraded,
            Health::Suspended,
            Health::Missing,
            Health::Unknown,
        ] {
            assert_eq!(health_from_pb(health_to_pb(h)), h);
        }
        assert_eq!(sync_from_pb(99), SyncStatus::Unknown);
        let a = Assignment {
            app: "a".into(),
            app_uid: "u".into(),
            bundle_digest: "d".into(),
            revision: "r".into(),
            namespace: "n".into(),
            sync_policy: SyncPolicy { prune: true, ..Default::default() },
            sync_request: 3,
            sync_prune: true,
            ignore_differences: vec![IgnoreDifference {
                kind: "Deployment".into(),
                json_pointers: vec!["/spec/replicas".into()],
                ..Default::default()
            }],
        };
        assert_eq!(Assignment::try_from(pb::Assignment::from(&a)), Ok(a));
        let bad = pb::SyncPolicy { prune_propagation: "sideways".into(), ..Default::default() };
        let err = SyncPolicy::try_from(bad).unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
        assert_eq!(SyncPolicy::try_from(pb::SyncPolicy::default()).unwrap().prune_propagation, Propagation::Foreground);
    }
}
