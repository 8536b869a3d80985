//! Agents' status reports and those who watch them.
//!
//! Reports from every agent streaming to this replica go through one queue; a writer takes
//! what is waiting (up to [`BATCH`]) and records it in one transaction: the statuses, the
//! syncs they complete (history, with ids from the Application's counter, trimmed to its
//! `revisionHistoryLimit` per cluster). An agent's report is acknowledged once its batch is
//! durable. Watchers (`WatchStatus`) see every report recorded by any replica, from the feed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::SyncStatus;
use bosun_store::{Expect, Txn};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::cache::State;
use super::records::*;
use super::{ControlPlane, HISTORY_LIMIT};
use crate::error::{Error, Result};

/// Reports written per transaction at most.
const BATCH: usize = 512;

/// How long the writer goes on gathering reports once it sees several waiting. Each commit
/// costs an fsync and a turn of every replica's feed; in a burst (a commit reaching a fleet,
/// agents reconnecting) reports arrive about as fast as commits end, so without a moment's
/// wait most transactions carried two or three of them.
const LINGER: Duration = Duration::from_millis(5);

struct Pending {
    status: ClusterAppStatus,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// The reports waiting to be written on this replica.
pub(super) struct Queue {
    tx: mpsc::Sender<Pending>,
    rx: Mutex<Option<mpsc::Receiver<Pending>>>,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(16 * BATCH);
        Self { tx, rx: Mutex::new(Some(rx)) }
    }
}

/// Whether `status` completes a sync after `previous`: a later time, or (times are in
/// seconds: two syncs may end in the same one) the same time with a bundle the cluster was
/// not synced at before.
fn completes(previous: Option<&ClusterAppStatus>, status: &ClusterAppStatus) -> bool {
    let previous_sync = previous.map(|p| p.synced_at).unwrap_or(0);
    status.synced_at > previous_sync
        || (status.synced_at > 0
            && status.synced_at == previous_sync
            && status.sync_status == SyncStatus::Synced
            && previous.is_some_and(|p| p.bundle_digest != status.bundle_digest || p.sync_status != SyncStatus::Synced))
}

/// The transaction recording `batch` on top of the cache, or `None` when nothing in it is
/// for an Application assigned to its cluster.
fn build(st: &State, batch: &[&ClusterAppStatus]) -> Option<Txn> {
    // The newest report of each pair in the batch (borrowed: reports carry every resource).
    let mut statuses: BTreeMap<(String, String), &ClusterAppStatus> = BTreeMap::new();
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries: BTreeMap<(String, String), BTreeMap<u64, HistoryEntry>> = BTreeMap::new();
    let mut txn = Txn::new();
    for status in batch {
        let (app, cluster) = (status.app.clone(), status.cluster.clone());
        let Some(rec) = st.apps.get(&app) else { continue };
        let assigned = st
            .clusters
            .get(&cluster)
            .is_some_and(|c| rec.value.spec.destination.targets(&cluster, &c.value.selector_labels));
        if !assigned {
            warn!(cluster = %cluster, app = %app, "ignoring status for an application not assigned to this cluster");
            continue;
        }
        let key = (app.clone(), cluster.clone());
        let previous = statuses.get(&key).copied().or_else(|| st.statuses.get(&key).map(|s| &*s.value));
        if completes(previous, status) {
            let known = st
                .history
                .get(&key)
                .into_iter()
                .flat_map(|m| m.values())
                .chain(entries.get(&key).into_iter().flat_map(|m| m.values()));
            // The same completed sync reported again (a reconnect, a replica change) is
            // recorded once.
            let seen =
                known.into_iter().any(|e| e.synced_at == status.synced_at && e.bundle_digest == status.bundle_digest);
            if !seen {
                let next = counters.entry(app.clone()).or_insert_with(|| {
                    st.history_counters
                        .get(&app)
                        .map(|c| c.value.next)
                        .unwrap_or_else(|| st.history_of(&app).first().map(|e| e.id + 1).unwrap_or(1))
                });
                let id = *next;
                *next += 1;
                // A sync that consumed a new sync request was asked for by someone; others
                // are automated.
                let previous_request = previous.map(|p| p.observed_sync_request).unwrap_or(0);
                let initiated_by = if status.observed_sync_request > previous_request {
                    format!("sync request {}", status.observed_sync_request)
                } else {
                    "automated".to_string()
                };
                entries.entry(key.clone()).or_default().insert(
                    id,
                    HistoryEntry {
                        id,
                        cluster: cluster.clone(),
                        revision: status.revision.clone(),
                        bundle_digest: status.bundle_digest.clone(),
                        synced_at: status.synced_at,
                        sync_status: status.sync_status,
                        health: status.health,
                        initiated_by,
                    },
                );
            }
        }
        statuses.insert(key, status);
    }
    if statuses.is_empty() {
        return None;
    }
    let mut apps: Vec<&String> = statuses.keys().map(|(a, _)| a).collect();
    apps.dedup();
    for app in apps {
        // Deleted meanwhile (here or elsewhere): the batch is built again without it.
        txn = txn.expect(app_key(app), Expect::Present);
    }
    for (app, next) in &counters {
        let key = history_counter_key(app);
        let expect = st.version(&key).map_or(Expect::Absent, Expect::Version);
        txn = txn.expect(&key, expect).put(&key, encode(&HistoryCounter { next: *next }));
    }
    for ((app, cluster), new) in &entries {
        let limit =
            st.apps.get(app).and_then(|a| a.value.spec.revision_history_limit).map_or(HISTORY_LIMIT, |l| l as usize);
        let mut ids: Vec<u64> =
            st.history.get(&(app.clone(), cluster.clone())).into_iter().flat_map(|m| m.keys().copied()).collect();
        for (id, e) in new {
            txn = txn.put(history_key(app, cluster, *id), encode(e));
            ids.push(*id);
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        for old in ids.iter().skip(limit) {
            let key = history_key(app, cluster, *old);
            // Entries of this batch beyond the limit are not written at all.
            if new.contains_key(old) {
                txn.writes.retain(|w| w.key() != key);
            } else {
                txn = txn.delete(key);
            }
        }
    }
    for ((app, cluster), s) in statuses {
        txn = txn.put(status_key(&app, &cluster), encode(s));
    }
    Some(txn)
}

/// A batch to write: `first`, what is already waiting behind it, and — when something was
/// (a burst) — what arrives within `linger`, up to `max` in all. A lone report is returned at
/// once, so a quiet fleet's reports are not held back.
async fn gather<T>(rx: &mut mpsc::Receiver<T>, first: T, max: usize, linger: Duration) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    if batch.len() > 1 {
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                Ok(None) | Err(_) => break,
            }
        }
    }
    batch
}

impl ControlPlane {
    /// Records an agent's report for one of its own Applications; returns once it is durable.
    pub async fn report(&self, cluster: &str, status: ClusterAppStatus) -> Result<()> {
        let started = std::time::Instant::now();
        self.metrics.status_reports.inc();
        let (done, wait) = oneshot::channel();
        let status = ClusterAppStatus { cluster: cluster.into(), ..status };
        self.reports
            .tx
            .send(Pending { status, done })
            .await
            .map_err(|_| Error::Internal("the status writer stopped".into()))?;
        let r = wait.await.map_err(|_| Error::Internal("the status writer stopped".into()))?;
        self.metrics.report_duration.observe(started.elapsed().as_secs_f64());
        r.map_err(Error::Store)
    }

    /// The status writer: one transaction per batch of reports (see [`gather`]).
    pub(super) async fn write_reports(self: Arc<Self>) {
        let Some(mut rx) = self.reports.rx.lock().take() else { return };
        while let Some(first) = rx.recv().await {
            let batch = gather(&mut rx, first, BATCH, LINGER).await;
            let statuses: Vec<&ClusterAppStatus> = batch.iter().map(|p| &p.status).collect();
            let result = self.transact(|st| Ok((build(st, &statuses), ()))).await.map_err(|e| e.to_string());
            if let Err(e) = &result {
                warn!(reports = batch.len(), error = %e, "recording status reports failed");
            }
            for p in batch {
                let _ = p.done.send(result.clone());
            }
        }
    }

    /// The recorded statuses of `app` (every Application when empty) and a receiver of every
    /// report recorded after them, by any replica: both are taken under the cache's lock,
    /// which the feed's applier holds while it announces, so nothing falls between the two.
    pub fn watch_status(
        &self,
        app: &str,
    ) -> Result<(Vec<ClusterAppStatus>, tokio::sync::broadcast::Receiver<Arc<ClusterAppStatus>>)> {
        let st = self.state.read();
        if !app.is_empty() && !st.apps.contains_key(app) {
            return Err(Error::AppNotFound(app.into()));
        }
        let current = st
            .statuses
            .iter()
            .filter(|((a, _), _)| app.is_empty() || a == app)
            .map(|(_, s)| (*s.value).clone())
            .collect();
        Ok((current, self.status_events.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced(at: i64, digest: &str) -> ClusterAppStatus {
        ClusterAppStatus {
            app: "web".into(),
            cluster: "c1".into(),
            bundle_digest: digest.into(),
            sync_status: SyncStatus::Synced,
            synced_at: at,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_report_is_written_at_once_and_a_burst_is_gathered_for_one_commit() {
        let (tx, mut rx) = mpsc::channel(16);
        let linger = Duration::from_millis(5);

        // Nothing waits behind it: no wait at all (the clock is paused; it would move).
        let start = tokio::time::Instant::now();
        assert_eq!(gather(&mut rx, 1, 8, linger).await, vec![1]);
        assert_eq!(tokio::time::Instant::now(), start);

        // Two waiting, two more arriving within the linger, one after it.
        tx.send(2).await.unwrap();
        let late = tx.clone();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            late.send(3).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
            late.send(4).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.send(5).await.unwrap();
        });
        assert_eq!(gather(&mut rx, 1, 8, linger).await, vec![1, 2, 3, 4]);
        let first = rx.recv().await.unwrap();
        assert_eq!(gather(&mut rx, first, 8, linger).await, vec![5], "the late one starts the next batch");
        sender.await.unwrap();

        // Never more than `max`: the rest waits for the next batch.
        for i in 2..=6 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(gather(&mut rx, 1, 4, linger).await, vec![1, 2, 3, 4]);
        let first = rx.recv().await.unwrap();
        assert_eq!(gather(&mut rx, first, 4, linger).await, vec![5, 6]);

        // The senders gone: what is there is written.
        tx.send(2).await.unwrap();
        drop(tx);
        assert_eq!(gather(&mut rx, 1, 8, linger).await, vec![1, 2]);
    }

    #[test]
    fn a_sync_completes_at_a_later_time_or_with_another_bundle_in_the_same_second() {
        assert!(completes(None, &synced(5, "a")));
        assert!(!completes(None, &synced(0, "a")));
        assert!(completes(Some(&synced(5, "a")), &synced(6, "a")));
        assert!(!completes(Some(&synced(5, "a")), &synced(5, "a")), "the same report again");
        assert!(completes(Some(&synced(5, "a")), &synced(5, "b")), "two syncs in one second");
        let out_of_sync = ClusterAppStatus { sync_status: SyncStatus::OutOfSync, ..synced(5, "a") };
        assert!(completes(Some(&out_of_sync), &synced(5, "a")));
        assert!(!completes(Some(&synced(6, "a")), &synced(5, "b")), "an older report");
    }
}
