//! The model's in-memory cache of the store. It changes in one place only, [`State::apply`],
//! with changes read from the store's feed — the same path on every replica, for writes made
//! here and anywhere else. Readers take a consistent view under one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bosun_store::{Change, Record, Revision};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::records::*;
use crate::auth::Credential;

/// A cached record with the version (revision) that last wrote it.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Revision,
}

/// A cluster with the labels its selectors see (computed once per change, not per read).
#[derive(Debug, Clone)]
pub struct ClusterEntry {
    pub record: ClusterRecord,
    pub selector_labels: BTreeMap<String, String>,
}

/// Everything cached, at `revision`.
#[derive(Default)]
pub struct State {
    pub revision: Revision,
    pub apps: BTreeMap<String, Versioned<AppRecord>>,
    pub clusters: BTreeMap<String, Versioned<ClusterEntry>>,
    pub presence: BTreeMap<String, Versioned<Presence>>,
    pub statuses: BTreeMap<(String, String), Versioned<Arc<ClusterAppStatus>>>,
    pub history_counters: BTreeMap<String, Versioned<HistoryCounter>>,
    /// (app, cluster) → id → entry.
    pub history: BTreeMap<(String, String), HistoryEntries>,
    pub credentials: BTreeMap<String, Versioned<Credential>>,
    /// By URL.
    pub repos: BTreeMap<String, Versioned<RepoRecord>>,
    pub leases: BTreeMap<String, Versioned<Lease>>,
    /// Applications deleted lately, by name.
    pub removed: BTreeMap<String, Versioned<RemovedRecord>>,
    /// Stored bundles: digest → version (values are read from the store when needed).
    pub bundles: BTreeMap<String, Revision>,
    /// Versions of every cached key (the replay guard of [`State::apply`]), by key.
    versions: HashMap<String, Revision>,
    /// Agent streams open on this replica, by cluster (not stored).
    pub connections: HashMap<String, usize>,
}

/// The history of one (Application, cluster), by id, oldest first: a short list (at most its
/// `revisionHistoryLimit`, 10 by default) kept sorted. A B-tree map allocated a leaf of 11
/// slots for the first entry, about 1.4 KiB for each pair that synced once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HistoryEntries(Vec<(u64, HistoryEntry)>);

impl HistoryEntries {
    /// Adds the entry `id`, or replaces the one with that id.
    pub fn insert(&mut self, id: u64, entry: HistoryEntry) {
        match self.0.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => self.0[at].1 = entry,
            Err(at) => {
                // Most pairs hold one entry (one completed sync): give the first exactly one
                // slot. Later entries grow the list as usual: growing by one each time would
                // copy a long history (a large `revisionHistoryLimit`) on every insert.
                if self.0.is_empty() {
                    self.0.reserve_exact(1);
                }
                self.0.insert(at, (id, entry));
            }
        }
    }

    pub fn remove(&mut self, id: &u64) {
        if let Ok(at) = self.0.binary_search_by_key(id, |(i, _)| *i) {
            self.0.remove(at);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ids, ascending.
    pub fn keys(&self) -> impl Iterator<Item = &u64> {
        self.0.iter().map(|(id, _)| id)
    }

    /// Entries by ascending id.
    pub fn values(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.0.iter().map(|(_, e)| e)
    }
}

/// What a batch of changes touched, for those who react (agent streams, watchers, rollouts).
#[derive(Debug, Default)]
pub struct Touched {
    /// An Application changed: any cluster's assignments may have.
    pub apps: bool,
    /// Clusters whose record, presence or status changed.
    pub clusters: BTreeSet<String>,
    /// Clusters whose labels or facts changed (templated Applications render again).
    pub relabelled: BTreeSet<String>,
    /// Clusters deleted, revoked or whose certificates changed: open streams check again.
    pub identity: BTreeSet<String>,
    /// Credentials changed.
    pub credentials: bool,
    /// Reports recorded, in order.
    pub statuses: Vec<Arc<ClusterAppStatus>>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        !self.apps
            && self.clusters.is_empty()
            && self.identity.is_empty()
            && !self.credentials
            && self.statuses.is_empty()
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            // A record this build cannot read stays in the store untouched; only its own
            // object is affected (its Application or cluster is missing from views).
            warn!(key, error = %e, "a stored record cannot be read; leaving it out");
            None
        }
    }
}

impl State {
    /// Loads records read by `list` (their versions guard against older replays).
    pub fn load(&mut self, records: Vec<Record>, revision: Revision) {
        let mut touched = Touched::default();
        for r in records {
            self.apply_one(&r.key, Some(&r.value), r.version, &mut touched);
        }
        self.revision = self.revision.max(revision);
    }

    /// Loads bundle keys (values are not cached).
    pub fn load_bundles(&mut self, keys: Vec<(String, Revision)>) {
        for (k, v) in keys {
            if let Some(d) = k.strip_prefix(BUNDLES) {
                self.bundles.insert(d.to_string(), v);
                self.versions.insert(k, v);
            }
        }
    }

    /// Applies one page of the feed (whole commits, in order).
    pub fn apply(&mut self, changes: &[Change]) -> Touched {
        let mut touched = Touched::default();
        for c in changes {
            self.apply_one(&c.key, c.value.as_deref(), c.revision, &mut touched);
            self.revision = self.revision.max(c.revision);
        }
        touched
    }

    fn apply_one(&mut self, key: &str, value: Option<&[u8]>, version: Revision, t: &mut Touched) {
        // Replaying a change older than what is cached (the snapshot was read after it) is
        // a no-op: the cache never moves a record backwards.
        if self.versions.get(key).is_some_and(|v| *v >= version) {
            return;
        }
        match value {
            Some(_) => {
                self.versions.insert(key.to_string(), version);
            }
            None => {
                self.versions.remove(key);
            }
        }
        if let Some(name) = key.strip_prefix(APPS) {
            t.apps = true;
            match value.and_then(|v| decode::<AppRecord>(key, v)) {
                Some(a) => self.apps.insert(name.to_string(), Versioned { value: a, version }),
                None => self.apps.remove(name),
            };
        } else if let Some(name) = key.strip_prefix(CLUSTERS) {
            t.clusters.insert(name.to_string());
            let old = self.clusters.get(name).map(|c| c.value.clone());
            match value.and_then(|v| decode::<ClusterRecord>(key, v)) {
                Some(c) => {
                    let selector_labels = super::cluster_labels(&c);
                    if old.as_ref().is_none_or(|o| o.selector_labels != selector_labels) {
                        t.relabelled.insert(name.to_string());
                    }
                    if old.as_ref().is_none_or(|o| {
                        o.record.certificates != c.certificates
                            || o.record.joined != c.joined
                            || o.record.revoked_at != c.revoked_at
                    }) {
                        t.identity.insert(name.to_string());
                    }
                    self.clusters.insert(
                        name.to_string(),
                        Versioned { value: ClusterEntry { record: c, selector_labels }, version },
                    );
                }
                None => {
                    self.clusters.remove(name);
                    t.relabelled.insert(name.to_string());
                    t.identity.insert(name.to_string());
                }
            }
        } else if let Some(name) = key.strip_prefix(PRESENCE) {
            t.clusters.insert(name.to_string());
            match value.and_then(|v| decode::<Presence>(key, v)) {
                Some(p) => self.presence.insert(name.to_string(), Versioned { value: p, version }),
                None => self.presence.remove(name),
            };
        } else if let Some(rest) = key.strip_prefix(STATUS) {
            let Some((app, cluster)) = rest.split_once('/') else { return };
            let k = (app.to_string(), cluster.to_string());
            t.clusters.insert(cluster.to_string());
            match value.and_then(|v| decode::<ClusterAppStatus>(key, v)) {
                Some(mut s) => {
                    // Kept as long as the pair exists, one per Application and cluster:
                    // without the room decoding left for more resources.
                    s.resources.shrink_to_fit();
                    s.children.shrink_to_fit();
                    let s = Arc::new(s);
                    t.statuses.push(s.clone());
                    self.statuses.insert(k, Versioned { value: s, version });
                }
                None => {
                    self.statuses.remove(&k);
                }
            }
        } else if let Some(rest) = key.strip_prefix(HISTORY) {
            let mut parts = rest.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(app), None, None) => match value.and_then(|v| decode::<HistoryCounter>(key, v)) {
                    Some(c) => {
                        self.history_counters.insert(app.to_string(), Versioned { value: c, version });
                    }
                    None => {
                        self.history_counters.remove(app);
                    }
                },
                (Some(app), Some(cluster), Some(id)) => {
                    let Ok(id) = id.parse::<u64>() else { return };
                    let k = (app.to_string(), cluster.to_string());
                    match value.and_then(|v| decode::<HistoryEntry>(key, v)) {
                        Some(e) => {
                            self.history.entry(k).or_default().insert(id, e);
                        }
                        None => {
                            if let Some(m) = self.history.get_mut(&k) {
                                m.remove(&id);
                                if m.is_empty() {
                                    self.history.remove(&k);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        } else if let Some(name) = key.strip_prefix(CREDENTIALS) {
            t.credentials = true;
            match value.and_then(|v| decode::<Credential>(key, v)) {
                Some(c) => self.credentials.insert(name.to_string(), Versioned { value: c, version }),
                None => self.credentials.remove(name),
            };
        } else if key.starts_with(REPOS) {
            match value.and_then(|v| decode::<RepoRecord>(key, v)) {
                Some(r) => {
                    self.repos.insert(r.url.clone(), Versioned { value: r, version });
                }
                None => self.repos.retain(|url, _| repo_key(url) != key),
            }
        } else if let Some(name) = key.strip_prefix(LEASES) {
            match value.and_then(|v| decode::<Lease>(key, v)) {
                Some(l) => self.leases.insert(name.to_string(), Versioned { value: l, version }),
                None => self.leases.remove(name),
            };
        } else if let Some(name) = key.strip_prefix(REMOVED) {
            // Every cluster's snapshot carries the removals.
            t.apps = true;
            match value.and_then(|v| decode::<RemovedRecord>(key, v)) {
                Some(r) => self.removed.insert(name.to_string(), Versioned { value: r, version }),
                None => self.removed.remove(name),
            };
        } else if let Some(digest) = key.strip_prefix(BUNDLES) {
            match value {
                Some(_) => self.bundles.insert(digest.to_string(), version),
                None => self.bundles.remove(digest),
            };
        }
    }

    /// The version of a cached key (for compare-and-set), if cached.
    pub fn version(&self, key: &str) -> Option<Revision> {
        self.versions.get(key).copied()
    }

    /// Whether the cluster's agent has a stream open to some replica: this one, or another
    /// that vouched for it recently.
    pub fn connected(&self, cluster: &str, now: i64) -> bool {
        self.connections.get(cluster).copied().unwrap_or(0) > 0
            || self
                .presence
                .get(cluster)
                .is_some_and(|p| p.value.connected && now - p.value.last_seen <= super::PRESENCE_STALE_SECS)
    }

    pub fn last_seen(&self, cluster: &str) -> i64 {
        self.presence.get(cluster).map(|p| p.value.last_seen).unwrap_or_default()
    }

    /// Every history entry of `app`, newest first.
    pub fn history_of(&self, app: &str) -> Vec<HistoryEntry> {
        let mut out: Vec<HistoryEntry> = self
            .history
            .range((app.to_string(), String::new())..)
            .take_while(|((a, _), _)| a == app)
            .flat_map(|(_, m)| m.values().cloned())
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: Revision, key: &str, value: &[u8]) -> Change {
        Change { revision, key: key.into(), value: Some(value.to_vec()) }
    }

    #[test]
    fn history_entries_stay_ordered_by_id_and_replace_or_remove_by_id() {
        let entry = |id: u64, revision: &str| HistoryEntry { id, revision: revision.into(), ..Default::default() };
        let mut h = HistoryEntries::default();
        for id in [5, 1, 3] {
            h.insert(id, entry(id, "a"));
        }
        h.insert(3, entry(3, "b"));
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(h.values().map(|e| e.revision.as_str()).collect::<Vec<_>>(), ["a", "b", "a"]);
        h.remove(&4);
        h.remove(&1);
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), [3, 5]);
        h.remove(&3);
        h.remove(&5);
        assert!(h.is_empty());
    }

    #[test]
    fn replays_older_than_the_snapshot_change_nothing_and_unreadable_records_are_left_out() {
        let mut st = State::default();
        let cred =
            |name: &str| encode(&serde_json::json!({"name": name, "role": "admin", "kind": "token", "created_at": 1}));
        st.load(vec![Record { key: "credentials/a".into(), value: cred("a"), version: 5 }], 5);
        // The feed from before the snapshot: an older value and a delete of what was re-created.
        st.apply(&[
            put(3, "credentials/a", b"{\"broken\":"),
            Change { revision: 4, key: "credentials/a".into(), value: None },
        ]);
        assert!(st.credentials.contains_key("a"), "a replayed delete older than the record is ignored");
        let t = st.apply(&[put(6, "credentials/b", b"not json"), put(6, "apps/x", b"{}")]);
        assert!(t.credentials && t.apps);
        assert!(!st.credentials.contains_key("b") && !st.apps.contains_key("x"));
        assert_eq!(st.revision, 6);
        st.apply(&[
            put(7, "history/web/c1/000000000003", &encode(&HistoryEntry { id: 3, ..Default::default() })),
            put(7, "history/web/c2/000000000004", &encode(&HistoryEntry { id: 4, ..Default::default() })),
            put(7, "history/webx/c1/000000000009", &encode(&HistoryEntry { id: 9, ..Default::default() })),
        ]);
        assert_eq!(st.history_of("web").iter().map(|e| e.id).collect::<Vec<_>>(), [4, 3]);
    }
}
