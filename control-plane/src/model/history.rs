//! History and rollback: completed syncs per Application and cluster (recorded with the
//! reports, see [`super::status`]), and deploying one of them again.

use tracing::info;

use super::ControlPlane;
use super::records::{AppRecord, HistoryEntry};
use crate::error::{Error, Result};

impl ControlPlane {
    /// The completed syncs of an Application on every cluster, newest first.
    pub fn history(&self, app: &str) -> Result<Vec<HistoryEntry>> {
        let st = self.state.read();
        if !st.apps.contains_key(app) {
            return Err(Error::AppNotFound(app.into()));
        }
        Ok(st.history_of(app))
    }

    /// Deploys the bundle of history entry `id` again, on every cluster the Application
    /// targets, and pauses automated sync until the next sync request.
    pub async fn rollback_app(&self, name: &str, id: u64) -> Result<AppRecord> {
        let entry = self.history(name)?.into_iter().find(|e| e.id == id).ok_or_else(|| {
            Error::NotFound(format!("application {name:?} has no history entry {id}; see `bosun app history {name}`"))
        })?;
        if !self.state.read().bundles.contains_key(&entry.bundle_digest) {
            return Err(Error::NotFound(format!("the bundle of history entry {id} is no longer stored")));
        }
        let rec = self
            .modify_app(name, |_, rec| {
                if rec.status.templated {
                    return Err(Error::InvalidRequest(format!(
                        "application {name:?} renders per-cluster variants; rolling them back is not supported yet — revert the commit in Git instead"
                    )));
                }
                rec.sync_request += 1;
                rec.sync_prune = false;
                rec.rollback = Some(entry.clone());
                Ok(true)
            })
            .await?;
        info!(app = name, history_id = id, revision = %entry.revision, "rolled back; automated sync paused");
        Ok(rec)
    }
}
