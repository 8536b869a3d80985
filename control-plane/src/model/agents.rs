//! What each cluster is assigned, and the streams on this replica that announce it.
//!
//! Assignments are computed from the cache (see [`bosun_core::schedule`]), never stored: an
//! Application that targets a thousand clusters is one record. A stream learns that its
//! cluster's assignments changed through a fingerprint of them — the same on every replica,
//! so an agent that moves to another replica is sent a snapshot only when it lacks one.
//! Bundles the agent does not hold travel in the snapshot itself, up to [`INLINE_BYTES`]; it
//! fetches any other with `GetBundle`. Both read through one cache per replica, so a commit
//! sent to a thousand clusters reads its bundle from the store once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::cache::{State, Touched};
use super::{Assignment, ControlPlane, fleet, fleet_for};
use crate::error::{Error, Result};
use bosun_core::Removal;

/// The assignment streams open on this replica, by cluster: each sender holds the
/// fingerprint of what its cluster is assigned now.
#[derive(Default)]
pub(super) struct Streams {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
    bundles: BundleCache,
}

/// Most bundle bytes one snapshot carries; bundles beyond it are fetched with `GetBundle`.
pub const INLINE_BYTES: usize = 4 << 20;

/// Most bundle bytes kept in a replica's [`BundleCache`].
const CACHED_BYTES: usize = 64 << 20;

/// Bundles lately read from the store, by digest, oldest dropped first past [`CACHED_BYTES`].
/// A bundle is named by its digest and never changes, so a cached copy is never stale; one
/// asked for by many streams at once is read once.
#[derive(Default)]
struct BundleCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    cells: HashMap<String, Arc<tokio::sync::OnceCell<Arc<Vec<u8>>>>>,
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl BundleCache {
    async fn get(&self, digest: &str, store: &bosun_store::Backend) -> Result<Arc<Vec<u8>>> {
        use bosun_store::Store;
        let cell = self.inner.lock().cells.entry(digest.to_string()).or_default().clone();
        let read = cell
            .get_or_try_init(|| async {
                let bytes = store
                    .get(&super::records::bundle_key(digest))
                    .await?
                    .map(|r| Arc::new(r.value))
                    .ok_or_else(|| Error::NotFound(format!("bundle {digest} is not stored")))?;
                let mut inner = self.inner.lock();
                inner.order.push_back((digest.to_string(), bytes.len()));
                inner.bytes += bytes.len();
                while inner.bytes > CACHED_BYTES
                    && let Some((old, len)) = inner.order.pop_front()
                {
                    inner.bytes -= len;
                    inner.cells.remove(&old);
                }
                Ok::<_, Error>(bytes)
            })
            .await;
        match read {
            Ok(bytes) => Ok(bytes.clone()),
            Err(e) => {
                // Nothing is kept for a bundle that could not be read.
                let mut inner = self.inner.lock();
                if inner.cells.get(digest).is_some_and(|c| c.get().is_none()) {
                    inner.cells.remove(digest);
                }
                Err(e)
            }
        }
    }
}

/// What a cluster's agent is sent: its assignments, and the Applications deleted lately
/// (every cluster gets them all; an agent acts on those it holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub assignments: Vec<Assignment>,
    pub removals: Vec<Removal>,
}

fn removals(st: &State) -> Vec<Removal> {
    st.removed
        .values()
        .map(|r| Removal { app: r.value.app.clone(), app_uid: r.value.app_uid.clone(), cascade: r.value.cascade })
        .collect()
}

/// A non-zero number that changes whenever the assignments or removals do (agents start
/// from 0).
fn fingerprint(assignments: &[Assignment], removals: &[Removal]) -> u64 {
    let digest = Sha256::digest(serde_json::to_vec(&(assignments, removals)).unwrap_or_default());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) >> 1) | 1
}

fn assignments(st: &State, cluster: &str) -> Option<Vec<Assignment>> {
    st.clusters.get(cluster)?;
    let f = fleet_for(st, cluster);
    Some(f.assignments(&f.admissions(), cluster))
}

impl ControlPlane {
    /// A receiver of the fingerprint of `cluster`'s assignments; it changes when they do,
    /// and closes when the cluster's identity changed (revoked, deleted, certificates
    /// replaced): the stream then checks its certificate again.
    pub fn subscribe(&self, cluster: &str) -> watch::Receiver<u64> {
        let current = self.snapshot(cluster).map(|(f, _)| f).unwrap_or_default();
        self.agents.senders.lock().entry(cluster.to_string()).or_insert_with(|| watch::channel(current).0).subscribe()
    }

    /// The fingerprint and the assignments of `cluster` now (`None` once it is deleted).
    pub fn snapshot(&self, cluster: &str) -> Option<(u64, Snapshot)> {
        let st = self.state.read();
        let assignments = assignments(&st, cluster)?;
        let removals = removals(&st);
        Some((fingerprint(&assignments, &removals), Snapshot { assignments, removals }))
    }

    /// Tells the streams on this replica what changed: those of clusters whose identity
    /// changed end their wait (and check again); those whose assignments changed learn the
    /// new fingerprint. An Application's change concerns every cluster streaming here; a
    /// report, a label or presence change only its own cluster.
    pub(super) fn announce(&self, touched: &Touched) {
        let mut senders = self.agents.senders.lock();
        for c in &touched.identity {
            senders.remove(c);
        }
        senders.retain(|_, tx| tx.receiver_count() > 0);
        let concerned: Vec<String> = if touched.apps {
            senders.keys().cloned().collect()
        } else {
            touched.clusters.iter().filter(|c| senders.contains_key(*c)).cloned().collect()
        };
        if concerned.is_empty() {
            return;
        }
        let st = self.state.read();
        // Many clusters: one view of the fleet for all; a few: a small view each.
        let whole = (concerned.len() > 16).then(|| fleet(&st));
        let admissions = whole.as_ref().map(|f| f.admissions());
        let removed = removals(&st);
        for c in concerned {
            let a = match (&whole, &admissions) {
                (Some(f), Some(adm)) => f.assignments(adm, &c),
                _ => assignments(&st, &c).unwrap_or_default(),
            };
            let print = fingerprint(&a, &removed);
            if let Some(tx) = senders.get(&c) {
                tx.send_if_modified(|v| std::mem::replace(v, print) != print);
            }
        }
    }

    /// A bundle, if it is assigned to `cluster`.
    pub async fn bundle_for(&self, cluster: &str, digest: &str) -> Result<Vec<u8>> {
        let assigned =
            assignments(&self.state.read(), cluster).is_some_and(|a| a.iter().any(|a| a.bundle_digest == digest));
        if !assigned {
            return Err(Error::PermissionDenied(format!("bundle {digest} is not assigned to cluster {cluster:?}")));
        }
        Ok(self.agents.bundles.get(digest, &self.store).await?.as_ref().clone())
    }

    /// The bundles of `snapshot` to send along with it: those not in `held` (what the agent
    /// said it holds when it connected, then what it was last sent) while they fit in
    /// [`INLINE_BYTES`]; from the first that does not, and for one that cannot be read, the
    /// agent asks with `GetBundle`. An agent takes a snapshot only once it holds all its
    /// bundles (else it connects again, naming what it holds) and then deletes the others, so
    /// `held` becomes exactly the snapshot's bundles: an Application rolled back to an earlier
    /// bundle gets it sent again.
    pub async fn inline_bundles(&self, snapshot: &Snapshot, held: &mut HashSet<String>) -> Vec<(String, Arc<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut room = INLINE_BYTES;
        for a in &snapshot.assignments {
            if held.contains(&a.bundle_digest) || out.iter().any(|(d, _)| d == &a.bundle_digest) {
                continue;
            }
            match self.agents.bundles.get(&a.bundle_digest, &self.store).await {
                Ok(bytes) if bytes.len() <= room => {
                    room -= bytes.len();
                    out.push((a.bundle_digest.clone(), bytes));
                }
                // Full: the agent fetches the rest (reading them here would be for nothing).
                Ok(_) => break,
                Err(_) => {}
            }
        }
        *held = snapshot.assignments.iter().map(|a| a.bundle_digest.clone()).collect();
        out
    }
}
