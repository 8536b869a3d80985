//! The agent's durable state: what it was last told to run, the bundles for it, and what it
//! has applied (the inventory prune works from). Written atomically to the state directory so
//! the agent keeps enforcing the last desired state across restarts and while the control
//! plane is away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bosun_core::{Bundle, ObjectRef, SyncPolicy};
use serde::{Deserialize, Serialize};

/// One assigned Application, as the agent keeps it.
pub type Assigned = bosun_core::Assignment;

/// Per-Application bookkeeping of what has been done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Applied {
    /// The Application's uid these counters belong to (a re-created Application starts over).
    #[serde(default)]
    pub app_uid: String,
    /// Objects applied for the Application and not pruned since.
    pub inventory: Vec<ObjectRef>,
    /// Bundle of the last completed sync.
    pub synced_digest: String,
    /// Last sync request acted on.
    pub observed_sync_request: u64,
    pub synced_at: i64,
    /// The policy the Application had when last assigned (decides cascade on removal).
    pub last_policy: SyncPolicy,
    /// The sync in progress (hooks created so far), if any.
    #[serde(default)]
    pub operation: Option<Operation>,
    /// The last failed sync: not retried automatically for the same bundle and request.
    #[serde(default)]
    pub failed: Option<FailedSync>,
}

/// A sync that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FailedSync {
    pub digest: String,
    pub request: u64,
    pub message: String,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Unix milliseconds of the next attempt; `None` once retries are spent.
    #[serde(default)]
    pub retry_at: Option<i64>,
}

/// A sync in progress, persisted so that hooks run once per sync across passes and restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Operation {
    pub digest: String,
    pub request: u64,
    /// Hooks created for this sync.
    pub started_hooks: Vec<ObjectRef>,
    /// Hooks being deleted before they are created again (BeforeHookCreation).
    pub recreating: Vec<ObjectRef>,
    /// Hooks already cleaned up after they finished.
    pub finished_hooks: Vec<ObjectRef>,
    /// Why the sync failed, once it has.
    pub failure: Option<String>,
    /// Failed attempts before this one (retries).
    #[serde(default)]
    pub prior_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DesiredState {
    pub cluster: String,
    pub generation: u64,
    pub assignments: Vec<Assigned>,
    pub applied: BTreeMap<String, Applied>,
}

/// The file holding [`DesiredState`].
pub const STATE_FILE: &str = "state.json";

pub struct StateDir {
    root: PathBuf,
    /// Serialises writes of `state.json`: whoever holds it serialises the current state and
    /// writes it, so a newer state is never overwritten by an older one.
    writes: tokio::sync::Mutex<()>,
    /// Bundles already read and verified, by digest (they never change).
    bundles: parking_lot::Mutex<std::collections::HashMap<String, std::sync::Arc<Bundle>>>,
}

impl StateDir {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("bundles"))?;
        Ok(Self { root: root.to_path_buf(), writes: Default::default(), bundles: Default::default() })
    }

    /// Persists the current `state` (serialised under the write lock, so the last writer
    /// writes the newest), off the async threads: the fsync must not stall every task of the
    /// runtime.
    pub async fn persist(&self, state: &parking_lot::Mutex<DesiredState>) -> anyhow::Result<()> {
        let _w = self.writes.lock().await;
        let bytes = serde_json::to_vec_pretty(&*state.lock())?;
        let path = self.path(STATE_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, 0o600)).await?
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The desired state as last persisted. A file that cannot be read or parsed (truncated,
    /// edited) is moved aside with a log line naming it, and the agent starts from an empty
    /// state: the control plane sends its assignments again when it connects (the agent asks
    /// from generation 0), and until then nothing is applied or pruned.
    pub fn load(&self) -> DesiredState {
        let path = self.path(STATE_FILE);
        let why = match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => return s,
                Err(e) => format!("not valid agent state: {e}"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DesiredState::default(),
            Err(e) => e.to_string(),
        };
        let aside = self.set_aside(STATE_FILE);
        tracing::error!(file = %path.display(), moved_to = %aside.map(|p| p.display().to_string()).unwrap_or_default(), reason = %why,
            "the agent state file is unusable; it was moved aside and the desired state will be fetched from the control plane again");
        DesiredState::default()
    }

    /// Renames a damaged file to `<name>.broken-<unix seconds>` so that it is kept for a
    /// post-mortem and never read again; returns where it went.
    pub fn set_aside(&self, name: &str) -> Option<PathBuf> {
        let from = self.path(name);
        let to = self.path(&format!("{name}.broken-{}", unix_now()));
        std::fs::rename(&from, &to).ok().map(|_| to)
    }

    /// Whether a verified copy of the bundle is at hand (in memory, or on disk and matching
    /// its digest). A damaged copy is removed, so that it is fetched again.
    pub fn has_bundle(&self, digest: &str) -> bool {
        self.load_bundle(digest).is_ok()
    }

    /// Verifies and stores a bundle (written off the async threads).
    pub async fn save_bundle(&self, digest: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let b = Bundle::from_bytes(digest, &bytes)?;
        let path = self.bundle_path(digest);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, 0o644)).await??;
        self.bundles.lock().insert(digest.to_string(), std::sync::Arc::new(b));
        Ok(())
    }

    /// A bundle by digest: from memory, else read from disk and verified against its digest.
    /// A copy that does not match (corrupted, truncated) is deleted so the link fetches it
    /// again.
    pub fn load_bundle(&self, digest: &str) -> anyhow::Result<std::sync::Arc<Bundle>> {
        if let Some(b) = self.bundles.lock().get(digest) {
            return Ok(b.clone());
        }
        let path = self.bundle_path(digest);
        let bytes = std::fs::read(&path)?;
        match Bundle::from_bytes(digest, &bytes) {
            Ok(b) => {
                let b = std::sync::Arc::new(b);
                self.bundles.lock().insert(digest.to_string(), b.clone());
                Ok(b)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                tracing::warn!(file = %path.display(), error = %e, "a cached bundle does not match its digest; deleted, it will be fetched again");
                Err(e.into())
            }
        }
    }

    /// Removes bundles no assignment refers to.
    pub fn gc_bundles(&self, keep: &[String]) {
        self.bundles.lock().retain(|d, _| keep.contains(d));
        if let Ok(dir) = std::fs::read_dir(self.root.join("bundles")) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().trim_end_matches(".json").to_string();
                if !keep.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn bundle_path(&self, digest: &str) -> PathBuf {
        let safe: String = digest.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        self.root.join("bundles").join(format!("{safe}.json"))
    }
}

/// Writes a file atomically and durably: a temporary file in the same directory (created
/// with `mode`), fsync, rename over `path`, fsync of the directory. A crash leaves the old
/// content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
