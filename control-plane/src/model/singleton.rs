//! Work one replica does for all, under a lease: Git polling, advancing rollouts, rendering
//! templated Applications again when their clusters change, and collecting bundles nothing
//! refers to any more (and join tokens past their expiry). The lease is a record with an
//! expiry, renewed by compare-and-set; when its holder dies another replica takes it within
//! [`LEASE_TTL`] + [`LEASE_RENEW`].
//!
//! Every replica also refreshes the presence of the agents it streams to.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_store::{Expect, Revision, Store, StoreError, Txn};
use parking_lot::Mutex;
use tracing::{info, warn};

use super::cache::{State, Touched};
use super::records::{Lease, REMOVED_KEPT, TOKENS, TokenRecord, bundle_key, encode, lease_key, removed_key};
use super::{ControlPlane, PRESENCE_EVERY, now_ms};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often its holder renews it (and others look whether it expired).
pub const LEASE_RENEW: Duration = Duration::from_secs(2);
const LEASE: &str = "singleton";
/// Feed entries kept behind the newest revision when compacting (a replica further behind
/// loads the model again).
const FEED_KEEP: Revision = 100_000;

/// What the singleton work is told by the feed, and whether this replica holds the lease.
#[derive(Default)]
pub(super) struct Signals {
    /// Templated Applications whose clusters changed: render again.
    pending_refresh: Mutex<BTreeSet<String>>,
    /// Rollouts may move.
    wake: tokio::sync::Notify,
    /// This replica just took the lease: poll now, not at the poll loop's next tick.
    acquired: tokio::sync::Notify,
    /// Until when this replica may act as the holder (its own clock, with a margin).
    leader_until: Mutex<Option<Instant>>,
}

impl Signals {
    /// Called by the feed's applier on every replica.
    pub(super) fn changed(&self, touched: &Touched, st: &State) {
        if !touched.relabelled.is_empty() {
            let templated = st
                .apps
                .values()
                .filter(|a| a.value.status.templated || a.value.spec.source.path.contains("{{"))
                .map(|a| a.value.name.clone());
            self.pending_refresh.lock().extend(templated);
        }
        let rollouts = st.apps.values().any(|a| a.value.spec.rollout.is_some());
        if rollouts && (touched.apps || !touched.statuses.is_empty() || !touched.clusters.is_empty()) {
            self.wake.notify_one();
        }
    }

    fn leader(&self) -> bool {
        self.leader_until.lock().is_some_and(|t| Instant::now() < t)
    }
}

impl ControlPlane {
    /// Whether this replica holds the lease for the singleton work now.
    pub fn is_leader(&self) -> bool {
        self.singleton.leader()
    }

    /// Starts the lease keeper, the singleton loops and the presence refresher; they end
    /// when the process stops (the lease is then released for the next replica).
    pub fn spawn_background(self: &Arc<Self>) {
        tokio::spawn(self.clone().keep_lease());
        tokio::spawn(self.clone().poll_forever());
        tokio::spawn(self.clone().tick_forever());
        tokio::spawn(self.clone().collect_forever());
        tokio::spawn(self.clone().refresh_presence());
    }

    async fn keep_lease(self: Arc<Self>) {
        loop {
            match self.try_lease().await {
                Ok(true) => {}
                Ok(false) => *self.singleton.leader_until.lock() = None,
                Err(e) => {
                    *self.singleton.leader_until.lock() = None;
                    warn!(error = %e, "the singleton lease could not be renewed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LEASE_RENEW) => {}
                _ = self.stopped() => return,
            }
        }
    }

    /// Takes or renews the lease if it is free, expired or ours.
    async fn try_lease(&self) -> std::result::Result<bool, StoreError> {
        let key = lease_key(LEASE);
        let me = &self.settings.replica;
        let now = now_ms();
        let expect = {
            let st = self.state.read();
            match st.leases.get(LEASE) {
                Some(l) if l.value.holder != *me && l.value.expires_at_ms > now => return Ok(false),
                Some(l) => Expect::Version(l.version),
                None => Expect::Absent,
            }
        };
        let started = Instant::now();
        let lease = Lease { holder: me.clone(), expires_at_ms: now + LEASE_TTL.as_millis() as i64 };
        match self.commit(Txn::new().expect(&key, expect).put(&key, encode(&lease))).await {
            Ok(_) => {
                let was = self.singleton.leader();
                *self.singleton.leader_until.lock() = Some(started + LEASE_TTL - Duration::from_secs(1));
                if !was {
                    info!(replica = %me, "holding the singleton lease: polling Git, advancing rollouts, collecting bundles");
                    self.singleton.acquired.notify_one();
                }
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up at a graceful stop, so that another replica takes over at once.
    pub async fn release_lease(&self) {
        let key = lease_key(LEASE);
        let version = {
            let st = self.state.read();
            st.leases.get(LEASE).filter(|l| l.value.holder == self.settings.replica).map(|l| l.version)
        };
        *self.singleton.leader_until.lock() = None;
        if let Some(v) = version {
            let _ = self.store.commit(Txn::new().expect(&key, Expect::Version(v)).delete(&key)).await;
        }
    }

    /// Polls Git every `poll_interval` (±10% jitter) while holding the lease. A replica that
    /// takes the lease over polls at once (woken by the lease keeper); one that held it, lost it for a moment (a renewal
    /// that came late) and took it back keeps its schedule instead of polling again early.
    async fn poll_forever(self: Arc<Self>) {
        let mut next: Option<Instant> = None;
        loop {
            if self.is_leader() && next.is_none_or(|t| Instant::now() >= t) {
                self.refresh_all().await;
                let jitter = 0.9 + rand::random::<f64>() * 0.2;
                let wait = Duration::from_secs_f64((self.settings.poll_interval.as_secs_f64() * jitter).max(0.05));
                next = Some(Instant::now() + wait);
            }
            let nap = next.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(nap.min(Duration::from_secs(1))) => {}
                _ = self.singleton.acquired.notified() => {}
                _ = self.stopped() => return,
            }
        }
    }

    /// Advances rollouts when reports or Applications change, and every second (pauses and
    /// offline timeouts end without an event); renders templated Applications whose clusters
    /// changed.
    async fn tick_forever(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.singleton.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.stopped() => return,
            }
            if !self.is_leader() {
                continue;
            }
            if self.state.read().apps.values().any(|a| a.value.spec.rollout.is_some())
                && let Err(e) = self.advance_rollouts().await
            {
                warn!(error = %e, "advancing rollouts failed");
            }
            let pending = std::mem::take(&mut *self.singleton.pending_refresh.lock());
            for app in pending {
                let _ = self.refresh_app(&app, false).await;
            }
        }
    }

    /// Collects unused bundles every `collect_interval` while holding the lease.
    async fn collect_forever(self: Arc<Self>) {
        let mut previous_pass: Option<Revision> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.collect_interval) => {}
                _ = self.stopped() => return,
            }
            if !self.is_leader() {
                previous_pass = None;
                continue;
            }
            match self.collect(previous_pass).await {
                Ok(revision) => previous_pass = Some(revision),
                Err(e) => warn!(error = %e, "collecting unused bundles failed"),
            }
        }
    }

    /// Deletes the bundles that no Application, rollback, history entry or cluster status
    /// refers to and that were already stored at the previous pass (a bundle just rendered is
    /// not referred to yet), deletion notices older than [`REMOVED_KEPT`], and join tokens
    /// past their expiry (single-use secrets nobody can list or use any more; a registration
    /// token stays until it is deleted, as `registration-token list` shows it); then compacts
    /// the feed. Returns the revision of this pass.
    pub async fn collect(&self, previous_pass: Option<Revision>) -> std::result::Result<Revision, StoreError> {
        let (unused, expired, revision) = {
            let st = self.state.read();
            let expired: Vec<(String, Revision)> = st
                .removed
                .iter()
                .filter(|(_, r)| r.value.at + REMOVED_KEPT < super::now())
                .map(|(app, r)| (removed_key(app), r.version))
                .collect();
            let mut used: HashSet<&str> = HashSet::new();
            for a in st.apps.values().map(|a| &a.value) {
                used.insert(&a.status.bundle_digest);
                used.extend(a.status.variants.values().map(String::as_str));
                used.extend(a.rollback.iter().map(|r| r.bundle_digest.as_str()));
            }
            used.extend(st.history.values().flat_map(|m| m.values()).map(|e| e.bundle_digest.as_str()));
            used.extend(st.statuses.values().map(|s| s.value.bundle_digest.as_str()));
            let unused: Vec<(String, Revision)> = match previous_pass {
                None => Vec::new(),
                Some(pass) => st
                    .bundles
                    .iter()
                    .filter(|(d, v)| **v <= pass && !used.contains(d.as_str()))
                    .map(|(d, v)| (bundle_key(d), *v))
                    .collect(),
            };
            (unused, expired, st.revision)
        };
        let notices = self.delete_unchanged(&expired).await?;
        if notices > 0 {
            info!(applications = notices, "deletion notices past their time collected");
        }
        // A bundle stored again meanwhile is kept: the next pass looks again.
        let collected = self.delete_unchanged(&unused).await?;
        if collected > 0 {
            info!(bundles = collected, "collected bundles nothing refers to");
        }
        self.collect_expired_join_tokens().await?;
        if revision > FEED_KEEP {
            self.store.compact(revision - FEED_KEEP).await?;
        }
        Ok(revision)
    }

    /// Deletes join tokens that expired (each only if unchanged since read: one used
    /// meanwhile is already gone).
    async fn collect_expired_join_tokens(&self) -> std::result::Result<(), StoreError> {
        let now = super::now();
        let expired: Vec<(String, Revision)> = self
            .store
            .list(TOKENS)
            .await?
            .records
            .into_iter()
            .filter(|r| {
                serde_json::from_slice::<TokenRecord>(&r.value)
                    .is_ok_and(|t| t.registration.is_empty() && t.expires_at < now)
            })
            .map(|r| (r.key, r.version))
            .collect();
        let collected = self.delete_unchanged(&expired).await?;
        if collected > 0 {
            info!(tokens = collected, "collected join tokens past their expiry");
        }
        Ok(())
    }

    /// Deletes each record still at the version read, 256 to a transaction; a chunk in which
    /// any record changed meanwhile is left whole for the next pass. Returns how many went.
    async fn delete_unchanged(&self, records: &[(String, Revision)]) -> std::result::Result<usize, StoreError> {
        let mut deleted = 0;
        for chunk in records.chunks(256) {
            let txn = chunk.iter().fold(Txn::new(), |t, (k, v)| t.expect(k, Expect::Version(*v)).delete(k));
            match self.commit(txn).await {
                Ok(_) => deleted += chunk.len(),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Vouches, every [`PRESENCE_EVERY`], for the agents streaming to this replica.
    async fn refresh_presence(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PRESENCE_EVERY) => {}
                _ = self.stopped() => return,
            }
            let here: Vec<String> =
                self.state.read().connections.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c.clone()).collect();
            if here.is_empty() {
                continue;
            }
            if let Err(e) = self.write_presence(&here, true).await {
                warn!(error = %e, "refreshing agents' presence failed");
            }
        }
    }
}
