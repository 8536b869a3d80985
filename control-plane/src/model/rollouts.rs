//! Progressive rollouts: advancing them as clusters report (run by the lease holder), and
//! people's resume and abort. Each change is a compare-and-set on the Application read, so an
//! advance never overwrites an update, a sync request or a rollback made meanwhile.

use bosun_store::{Expect, Txn};
use tracing::{info, warn};

use super::records::{AppRecord, app_key, encode};
use super::{ControlPlane, fleet, now, scheduled};
use crate::error::{Error, Result};

impl ControlPlane {
    /// Moves every progressive rollout forward as far as its clusters allow. One transaction
    /// for all that moved, each pinned to the version it was computed from.
    pub async fn advance_rollouts(&self) -> Result<()> {
        let halted = self
            .transact(|st| {
                let f = fleet(st);
                let now = now();
                let mut txn = Txn::new();
                let mut halted = Vec::new();
                for a in st.apps.values() {
                    let rec = &a.value;
                    let Some(strategy) = rec.spec.rollout.as_ref() else { continue };
                    if rec.rollback.is_some() || rec.status.bundle_digest.is_empty() {
                        continue;
                    }
                    let mut state = rec.rollout.clone();
                    if state.digest != rec.status.bundle_digest {
                        state = bosun_core::rollout::State {
                            digest: rec.status.bundle_digest.clone(),
                            ..Default::default()
                        };
                    }
                    let targets = f.rollout_targets(&scheduled(rec), strategy);
                    let next = bosun_core::rollout::advance(strategy, &state, &targets, now);
                    if next == rec.rollout {
                        continue;
                    }
                    if next.halted != rec.rollout.halted && !next.halted.is_empty() {
                        halted.push((rec.name.clone(), next.halted.clone()));
                    }
                    let key = app_key(&rec.name);
                    let updated = AppRecord { rollout: next, ..rec.clone() };
                    txn = txn.expect(&key, Expect::Version(a.version)).put(&key, encode(&updated));
                }
                Ok(((!txn.writes.is_empty()).then_some(txn), halted))
            })
            .await?;
        for (app, reason) in halted {
            warn!(app = %app, reason = %reason, "rollout halted");
        }
        Ok(())
    }

    /// `resume` (skipping the clusters that halted it) or `abort` a rollout.
    pub async fn rollout_action(&self, name: &str, action: &str) -> Result<AppRecord> {
        if !matches!(action, "resume" | "abort") {
            return Err(Error::InvalidRequest(format!("rollout action {action:?}: use resume or abort")));
        }
        let rec = self
            .modify_app(name, |st, rec| {
                let strategy =
                    rec.spec.rollout.clone().ok_or_else(|| {
                        Error::InvalidRequest(format!("application {name:?} has no rollout strategy"))
                    })?;
                if action == "resume" {
                    let targets = fleet(st).rollout_targets(&scheduled(rec), &strategy);
                    rec.rollout = bosun_core::rollout::resume(&rec.rollout, &targets);
                } else {
                    rec.rollout.aborted = true;
                }
                Ok(true)
            })
            .await?;
        info!(app = name, action, "rollout action");
        self.advance_rollouts().await?;
        Ok(rec)
    }
}
