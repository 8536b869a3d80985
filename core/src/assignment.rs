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

/// An Application deleted at the control plane, as every cluster learns it (Argo CD's
/// cascade): its objects are deleted with it (`cascade`), or left in place, orphaned. Kept
/// for a while after the deletion so that an agent that was away still learns it; an agent
/// that loses an Application without one (a selector stopped matching) follows the
/// Application's last prune policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Removal {
    pub app: String,
    /// The identity of the Application deleted (one of the same name created later is
    /// another).
    pub app_uid: String,
    pub cascade: bool,
}
