//! An assignment: one Application on one cluster, as the control plane decides it and the
//! agent keeps it.

use serde::{Deserialize, Serialize};

use crate::app::SyncPolicy;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Assignment {
    pub app: String,
    /// The Application's identity (a re-created Application gets a new one); operations are
    /// identified by (uid, sync request).
    #[serde(default)]
    pub app_uid: String,
    /// Content digest of the rendered bundle.
    pub bundle_digest: String,
    /// Commit the bundle was rendered from.
    pub revision: String,
    /// Namespace for namespaced objects without one.
    pub namespace: String,
    pub sync_policy: SyncPolicy,
    /// Bumped by each sync request; the agent acts on a value it has not seen.
    pub sync_request: u64,
    /// The latest sync request asks for pruning (that operation only).
    #[serde(default)]
    pub sync_prune: bool,
    /// Differences not counted as drift.
    #[serde(default)]
    pub ignore_differences: Vec<crate::app::IgnoreDifference>,
}
