//! The agent's durable state, in its state directory:
//!
//! - `state.json`: what it was last told to run (cluster, generation, assignments), fsynced;
//! - `apps/<app>.json`: what it remembers of each Application ([`Memory`]: inventory, the sync
//!   operation in progress with its hooks, the last sync) — fsynced before actions that could
//!   not be repeated from an older copy (creating a hook run, applying an object the durable
//!   inventory lacks), only rewritten otherwise;
//! - `bundles/<digest>.json`: the bundles, verified against their digest when read (not
//!   fsynced: a lost or damaged copy is fetched again).
//!
//! `state.json` and the Application files are [`Record`]s: two slot files each (`<name>` and
//! `<name>.alt`) rewritten in place behind a checksummed header, so a write killed half-way
//! leaves an earlier version and a crash of the machine the last fsynced one, without a new
//! file per write (see [`bosun_process::record`]). Bundles are written whole and renamed into
//! place. Every file access runs on the blocking pool, so the agent keeps enforcing the last
//! desired state across restarts and while the control plane is away, and a slow disk never
//! stalls the async threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bosun_core::sync::{Memory, Synced};
use bosun_core::{Bundle, ObjectRef, SyncPolicy};
use bosun_process::record::{self, Record};
use serde::{Deserialize, Serialize};

/// One assigned Application, as the agent keeps it.
pub type Assigned = bosun_core::Assignment;

/// What the agent was last told to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DesiredState {
    pub cluster: String,
    pub generation: u64,
    pub assignments: Vec<Assigned>,
    /// Applications deleted lately and whether their objects go with them (kept with the
    /// assignments, so a restart in the middle of a removal still knows).
    #[serde(default)]
    pub removals: Vec<bosun_core::Removal>,
    /// Older versions kept the per-Application bookkeeping here; read once and moved to
    /// `apps/` (see [`StateDir::load`]).
    #[serde(default, skip_serializing)]
    applied: BTreeMap<String, LegacyApplied>,
}

impl DesiredState {
    pub fn new(
        cluster: String,
        generation: u64,
        assignments: Vec<Assigned>,
        removals: Vec<bosun_core::Removal>,
    ) -> Self {
        Self { cluster, generation, assignments, removals, applied: BTreeMap::new() }
    }

    /// The Applications whose desired state differs between `self` and `next`: assigned,
    /// unassigned, changed, or with another removal notice. `None` when every Application
    /// is concerned (the cluster's name changed).
    pub fn changed_apps(&self, next: &DesiredState) -> Option<BTreeSet<String>> {
        if self.cluster != next.cluster {
            return None;
        }
        // Each Application's assignment and removal notice.
        type Entry<'a> = (Option<&'a Assigned>, Option<&'a bosun_core::Removal>);
        fn by_app(s: &DesiredState) -> BTreeMap<&str, Entry<'_>> {
            let mut m: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
            for a in &s.assignments {
                m.entry(a.app.as_str()).or_default().0 = Some(a);
            }
            for r in &s.removals {
                m.entry(r.app.as_str()).or_default().1 = Some(r);
            }
            m
        }
        let (before, after) = (by_app(self), by_app(next));
        let apps = before.keys().chain(after.keys());
        Some(apps.filter(|app| before.get(*app) != after.get(*app)).map(|app| app.to_string()).collect())
    }
}

/// The per-Application bookkeeping of agents before 0.3, as far as it carries over: an
/// operation that was in flight starts again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
struct LegacyApplied {
    app_uid: String,
    inventory: Vec<ObjectRef>,
    synced_digest: String,
    observed_sync_request: u64,
    synced_at: i64,
    last_policy: SyncPolicy,
}

impl From<LegacyApplied> for Memory {
    fn from(a: LegacyApplied) -> Self {
        Memory {
            app_uid: a.app_uid,
            inventory: a.inventory,
            synced: (!a.synced_digest.is_empty()).then_some(Synced {
                digest: a.synced_digest,
                request: a.observed_sync_request,
                at: a.synced_at,
            }),
            observed_request: a.observed_sync_request,
            last_policy: a.last_policy,
            ..Default::default()
        }
    }
}

/// The file holding [`DesiredState`].
pub const STATE_FILE: &str = "state.json";
/// The directory of the per-Application [`Memory`] files.
pub const APPS_DIR: &str = "apps";

pub struct StateDir {
    root: PathBuf,
    /// Serialises writes of `state.json`: whoever holds it serialises the current state and
    /// writes it, so a newer state is never overwritten by an older one.
    writes: tokio::sync::Mutex<()>,
    /// `state.json`.
    state: Arc<Record>,
    /// Each Application's file, by Application (created when first read or written).
    memories: parking_lot::Mutex<HashMap<String, Arc<Record>>>,
    /// Bundles already read and verified, by digest (they never change).
    bundles: parking_lot::Mutex<HashMap<String, Arc<Bundle>>>,
}

/// What was on disk at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub desired: DesiredState,
    pub memory: BTreeMap<String, Memory>,
}

impl StateDir {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("bundles"))?;
        std::fs::create_dir_all(root.join(APPS_DIR))?;
        Ok(Self {
            root: root.to_path_buf(),
            writes: Default::default(),
            state: Arc::new(Record::new(&root.join(STATE_FILE), 0o600)),
            memories: Default::default(),
            bundles: Default::default(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Persists the current `state` (serialised under the write lock, so the last writer
    /// writes the newest).
    pub async fn persist(&self, state: &parking_lot::Mutex<DesiredState>) -> anyhow::Result<()> {
        let _w = self.writes.lock().await;
        let bytes = serde_json::to_vec_pretty(&*state.lock())?;
        let record = self.state.clone();
        blocking(move || Ok(record.write(&bytes, true)?)).await
    }

    /// Persists what the agent remembers of one Application; fsynced when `durable` (see
    /// [`bosun_process::record`] for what is kept otherwise).
    pub async fn persist_memory(&self, app: &str, memory: &Memory, durable: bool) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(memory)?;
        let record = self.memory_record(app);
        blocking(move || Ok(record.write(&bytes, durable)?)).await
    }

    /// Forgets an Application (it left the cluster and its objects are gone).
    pub async fn remove_memory(&self, app: &str) -> anyhow::Result<()> {
        let record = self.memory_record(app);
        blocking(move || Ok(record.remove()?)).await?;
        // Forgotten here too (an Application assigned again later reads its files afresh).
        self.memories.lock().remove(app);
        Ok(())
    }

    fn memory_record(&self, app: &str) -> Arc<Record> {
        let mut memories = self.memories.lock();
        memories.entry(app.to_string()).or_insert_with(|| Arc::new(Record::new(&self.memory_path(app), 0o600))).clone()
    }

    /// Everything as last persisted (read at start, on the blocking pool). A file that cannot
    /// be read or parsed (truncated, edited) is moved aside with a log line naming it: a
    /// damaged `state.json` means starting from nothing (the control plane sends the
    /// assignments again when the agent connects, asking from generation 0; until then
    /// nothing is applied or pruned); a damaged Application file means that Application
    /// starts over (its next sync runs its hooks again; leftovers of earlier syncs are no
    /// longer known, so they are not pruned).
    pub async fn load(self: &Arc<Self>) -> anyhow::Result<Loaded> {
        let dir = self.clone();
        blocking(move || Ok(dir.load_blocking())).await
    }

    fn load_blocking(&self) -> Loaded {
        let mut desired: DesiredState = read_or_set_aside(&self.state).unwrap_or_default();
        let mut memory = BTreeMap::new();
        let mut apps = BTreeSet::new();
        if let Ok(entries) = std::fs::read_dir(self.path(APPS_DIR)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(app) = record::primary_name(&name).strip_suffix(".json").and_then(app_of_file) {
                    apps.insert(app);
                }
            }
        }
        for app in apps {
            let record = self.memory_record(&app);
            if let Some(m) = read_or_set_aside::<Memory>(&record) {
                memory.insert(app, m);
            }
        }
        // Bookkeeping of an older version: moved to one file per Application, then dropped
        // from state.json.
        let legacy = std::mem::take(&mut desired.applied);
        let migrating = !legacy.is_empty();
        for (app, legacy) in legacy {
            let m = Memory::from(legacy);
            let record = self.memory_record(&app);
            match serde_json::to_vec(&m).map_err(anyhow::Error::from).and_then(|b| Ok(record.write(&b, true)?)) {
                Ok(()) => {
                    memory.entry(app).or_insert(m);
                }
                Err(e) => {
                    tracing::warn!(app, error = %format!("{e:#}"), "could not move an application's bookkeeping to its own file")
                }
            }
        }
        if migrating
            && let Err(e) = serde_json::to_vec_pretty(&desired)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(self.state.write(&b, true)?))
        {
            tracing::warn!(error = %format!("{e:#}"), "could not rewrite the agent state file");
        }
        Loaded { desired, memory }
    }

    /// Renames a damaged file of the state directory aside (see [`set_aside`]).
    pub fn set_aside(&self, name: &str) -> Option<PathBuf> {
        set_aside(&self.path(name))
    }

    /// Verifies and stores a bundle (written off the async threads). Not fsynced: a copy is
    /// checked against its digest whenever it is read from disk, and one lost or damaged by
    /// a crash of the machine is fetched again, so durability would only add latency.
    pub async fn save_bundle(&self, digest: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let digest_owned = digest.to_string();
        let path = self.bundle_path(digest);
        let b = blocking(move || {
            let b = Bundle::from_bytes(&digest_owned, &bytes)?;
            write_replace(&path, &bytes, 0o644)?;
            Ok(b)
        })
        .await?;
        self.bundles.lock().insert(digest.to_string(), Arc::new(b));
        Ok(())
    }

    /// A bundle by digest: from memory, else read from disk (on the blocking pool) and
    /// verified against its digest. A copy that does not match (corrupted, truncated) is
    /// deleted so that the link fetches it again.
    pub async fn load_bundle(&self, digest: &str) -> anyhow::Result<Arc<Bundle>> {
        if let Some(b) = self.bundles.lock().get(digest) {
            return Ok(b.clone());
        }
        let path = self.bundle_path(digest);
        let d = digest.to_string();
        let b = blocking(move || {
            let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            match Bundle::from_bytes(&d, &bytes) {
                Ok(b) => Ok(Arc::new(b)),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    tracing::warn!(file = %path.display(), error = %e, "a cached bundle does not match its digest; deleted, it will be fetched again");
                    Err(e.into())
                }
            }
        })
        .await?;
        self.bundles.lock().insert(digest.to_string(), b.clone());
        Ok(b)
    }

    /// Whether a verified copy of the bundle is at hand.
    pub async fn has_bundle(&self, digest: &str) -> bool {
        self.load_bundle(digest).await.is_ok()
    }

    /// Removes bundles no assignment refers to.
    pub async fn gc_bundles(&self, keep: Vec<String>) {
        self.bundles.lock().retain(|d, _| keep.contains(d));
        let dir = self.root.join("bundles");
        let _ = blocking(move || {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().trim_end_matches(".json").to_string();
                    if !keep.contains(&name) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Ok(())
        })
        .await;
    }

    /// The digests of the bundles kept here (read from disk on the blocking pool): the
    /// control plane does not send them again. One found damaged when read is fetched.
    pub async fn held_bundles(&self) -> Vec<String> {
        let mut held: BTreeSet<String> = self.bundles.lock().keys().cloned().collect();
        let dir = self.root.join("bundles");
        let on_disk = blocking(move || {
            let names = std::fs::read_dir(dir)?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect::<Vec<_>>();
            Ok(names)
        })
        .await
        .unwrap_or_default();
        held.extend(on_disk);
        held.into_iter().collect()
    }

    /// Bundles kept on disk.
    pub fn bundle_count(&self) -> usize {
        std::fs::read_dir(self.root.join("bundles")).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0)
    }

    fn bundle_path(&self, digest: &str) -> PathBuf {
        let safe: String = digest.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        self.root.join("bundles").join(format!("{safe}.json"))
    }

    fn memory_path(&self, app: &str) -> PathBuf {
        self.root.join(APPS_DIR).join(format!("{}.json", file_of_app(app)))
    }
}

/// The file name of an Application's memory: its name when it is a plain object name (they
/// are DNS subdomains), else `~` and its hex form, so any name maps to one safe file.
fn file_of_app(app: &str) -> String {
    if bosun_core::app::is_dns_subdomain(app) { app.to_string() } else { format!("~{}", hex::encode(app)) }
}

fn app_of_file(stem: &str) -> Option<String> {
    match stem.strip_prefix('~') {
        Some(h) => String::from_utf8(hex::decode(h).ok()?).ok(),
        None => Some(stem.to_string()),
    }
}

/// The newest usable version of a record of the state directory, made durable (the agent
/// counts what it starts from as on disk). When no version is usable, the damaged files are
/// renamed aside with a log line naming them. A damaged slot beside a usable one is what a
/// write killed half-way leaves (or damage to the newest copy, which then falls back to the
/// one before it); it is logged and overwritten by the next write.
fn read_or_set_aside<T: serde::de::DeserializeOwned>(record: &Record) -> Option<T> {
    let parse = |b: &[u8]| serde_json::from_slice(b).map_err(|e| format!("not valid agent state: {e}"));
    let read = match record.read(true, parse) {
        Ok(read) => read,
        Err(e) => {
            tracing::error!(file = %record.path().display(), error = %e, "the agent state file cannot be read; starting without it");
            return None;
        }
    };
    if read.value.is_some() {
        for (file, why) in &read.damaged {
            tracing::warn!(file = %file.display(), reason = %why,
                "a copy of an agent state file is unusable (a write cut short, or damage); the newest usable copy is used and this one will be overwritten");
        }
        return read.value;
    }
    for (file, why) in read.damaged {
        let aside = set_aside(&file);
        tracing::error!(file = %file.display(), moved_to = %aside.map(|p| p.display().to_string()).unwrap_or_default(), reason = %why,
            "the agent state file is unusable; it was moved aside and the state will be fetched from the control plane again");
    }
    None
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow::anyhow!("file task failed: {e}"))?
}

/// Renames a damaged file to `<name>.broken-<unix seconds>` so that it is kept for a
/// post-mortem and never read again; returns where it went.
pub fn set_aside(from: &Path) -> Option<PathBuf> {
    let name = from.file_name()?.to_string_lossy().into_owned();
    let to = from.with_file_name(format!("{name}.broken-{}", unix_now()));
    std::fs::rename(from, &to).ok().map(|_| to)
}

/// Writes a file atomically and durably ([`bosun_process::write_atomic`]); the error names
/// the file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    bosun_process::write_atomic(path, bytes, mode).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Writes a file atomically without fsync ([`bosun_process::write_replace`]); the error
/// names the file.
fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    bosun_process::write_replace(path, bytes, mode).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(app: &str, digest: &str) -> Assigned {
        Assigned { app: app.into(), bundle_digest: digest.into(), ..Default::default() }
    }

    #[test]
    fn only_applications_whose_desired_state_changed_are_named() {
        let state = |assignments, removals| DesiredState::new("east".into(), 1, assignments, removals);
        let gone = |app: &str, cascade: bool| bosun_core::Removal { app: app.into(), app_uid: "u".into(), cascade };
        let before =
            state(vec![assigned("web", "a"), assigned("api", "b"), assigned("db", "c")], vec![gone("old", true)]);
        let set = |names: &[&str]| Some(names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
        // The same content under another generation concerns nobody.
        let same = DesiredState { generation: 2, ..before.clone() };
        assert_eq!(before.changed_apps(&same), set(&[]));
        // One bundle changed, one Application left, one came; a removal notice changed.
        let after = state(
            vec![assigned("web", "a2"), assigned("db", "c"), assigned("new", "d")],
            vec![gone("old", false), gone("api", true)],
        );
        assert_eq!(before.changed_apps(&after), set(&["api", "new", "old", "web"]));
        assert_eq!(after.changed_apps(&before), set(&["api", "new", "old", "web"]));
        // Another cluster name: everything.
        assert_eq!(before.changed_apps(&DesiredState { cluster: "west".into(), ..before.clone() }), None);
    }

    #[test]
    fn any_application_name_maps_to_one_file() {
        for app in ["web", "example.guestbook", "Weird/Name", "~x", ""] {
            assert_eq!(app_of_file(&file_of_app(app)).as_deref(), Some(app), "{app}");
            assert!(!file_of_app(app).contains('/'));
        }
    }

    #[tokio::test]
    async fn memory_survives_and_legacy_bookkeeping_moves_to_its_own_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Arc::new(StateDir::new(tmp.path()).unwrap());
        // As agents before 0.3 wrote it.
        let legacy = serde_json::json!({"cluster": "c1", "generation": 3, "assignments": [], "applied": {"web": {
            "app_uid": "u1", "inventory": [{"group": "", "kind": "ConfigMap", "namespace": "default", "name": "web"}],
            "synced_digest": "abc", "observed_sync_request": 2, "synced_at": 7,
            "last_policy": serde_json::to_value(SyncPolicy::default()).unwrap(),
            "operation": null, "failed": null}}});
        std::fs::write(dir.path(STATE_FILE), legacy.to_string()).unwrap();
        let loaded = dir.load().await.unwrap();
        assert_eq!((loaded.desired.cluster.as_str(), loaded.desired.generation), ("c1", 3));
        let web = &loaded.memory["web"];
        assert_eq!((web.app_uid.as_str(), web.observed_request, web.inventory.len()), ("u1", 2, 1));
        assert_eq!(web.synced.as_ref().map(|s| s.digest.as_str()), Some("abc"));
        assert!(dir.path(APPS_DIR).join("web.json").exists());

        // A damaged Application file is set aside; the others load.
        dir.persist_memory("api", &Memory { app_uid: "u2".into(), ..Default::default() }, true).await.unwrap();
        std::fs::write(dir.path(APPS_DIR).join("web.json"), b"{trunc").unwrap();
        let again = dir.load().await.unwrap();
        assert!(!again.memory.contains_key("web"));
        assert_eq!(again.memory["api"].app_uid, "u2");
        let names: Vec<String> = std::fs::read_dir(dir.path(APPS_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("web.json.broken-")), "{names:?}");
        dir.remove_memory("api").await.unwrap();
        dir.remove_memory("api").await.unwrap();
        assert!(dir.load().await.unwrap().memory.is_empty());
    }

    #[tokio::test]
    async fn a_memory_write_cut_short_leaves_the_durable_copy_and_nothing_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let memory = |uid: &str| Memory { app_uid: uid.into(), ..Default::default() };
        let dir = Arc::new(StateDir::new(tmp.path()).unwrap());
        dir.persist_memory("web", &memory("durable"), true).await.unwrap();
        dir.persist_memory("web", &memory("later"), false).await.unwrap();
        // A new agent reads the newest copy.
        let again = Arc::new(StateDir::new(tmp.path()).unwrap());
        assert_eq!(again.load().await.unwrap().memory["web"].app_uid, "later");
        // A durable write, then one killed half-way: the durable copy is read (the torn write
        // went to the other slot, over the older copy).
        again.persist_memory("web", &memory("durable"), true).await.unwrap();
        let bytes = serde_json::to_vec(&memory("torn")).unwrap();
        again.memory_record("web").write_cut(&bytes, false, 40).unwrap();
        let third = Arc::new(StateDir::new(tmp.path()).unwrap());
        assert_eq!(third.load().await.unwrap().memory["web"].app_uid, "durable");
        let names: BTreeSet<String> = std::fs::read_dir(third.path(APPS_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, BTreeSet::from(["web.json".to_string(), "web.json.alt".to_string()]), "nothing set aside");
        // And the state file likewise.
        let state = parking_lot::Mutex::new(DesiredState::new("c1".into(), 7, vec![], vec![]));
        third.persist(&state).await.unwrap();
        third.state.write_cut(b"{\"cluster\": \"c1\", \"generation\": 8", true, 30).unwrap();
        let fourth = Arc::new(StateDir::new(tmp.path()).unwrap());
        assert_eq!(fourth.load().await.unwrap().desired.generation, 7);
    }
}
