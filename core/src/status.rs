//! Sync and health statuses, with Argo CD's meanings and ordering.

use serde::{Deserialize, Serialize};

/// Whether live state matches the desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SyncStatus {
    #[default]
    Unknown,
    Synced,
    OutOfSync,
}

/// Health of an object or an Application, ordered from best to worst for aggregation as Argo
/// CD orders them (gitops-engine `health.IsWorse`): Healthy < Suspended < Progressing < Missing
/// < Degraded < Unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
pub enum Health {
    Healthy,
    Suspended,
    Progressing,
    Missing,
    Degraded,
    #[default]
    Unknown,
}

impl Health {
    /// The worst of several healths (`Healthy` for none), as Argo CD aggregates an
    /// Application from its resources.
    pub fn worst(items: impl IntoIterator<Item = Health>) -> Health {
        items.into_iter().max().unwrap_or(Health::Healthy)
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_health() {
        use Health::*;
        assert_eq!(Health::worst([Healthy, Progressing, Healthy]), Progressing);
        assert_eq!(Health::worst([Progressing, Degraded]), Degraded);
        assert_eq!(Health::worst([Healthy, Missing]), Missing);
        assert_eq!(Health::worst([Suspended, Healthy]), Suspended);
        assert_eq!(Health::worst([Degraded, Unknown]), Unknown);
        assert_eq!(Health::worst([Missing, Degraded]), Degraded);
        assert_eq!(Health::worst([]), Healthy);
    }
}
