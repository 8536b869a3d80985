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
        let path = self.path("state.json");
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes)).await?
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn load(&self) -> anyhow::Result<DesiredState> {
        match std::fs::read(self.path("state.json")) {
            Ok(b) => Ok(serde_json::from_slice(&b)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DesiredState::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn has_bundle(&self, digest: &str) -> bool {
        self.bundle_path(digest).exists()
    }

    /// Verifies and stores a bundle (written off the async threads).
    pub async fn save_bundle(&self, digest: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let b = Bundle::from_bytes(digest, &bytes)?;
        let path = self.bundle_path(digest);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes)).await??;
        self.bundles.lock().insert(digest.to_string(), std::sync::Arc::new(b));
        Ok(())
    }

    /// A bundle by digest: from memory, else read from disk and verified once.
    pub fn load_bundle(&self, digest: &str) -> anyhow::Result<std::sync::Arc<Bundle>> {
        if let Some(b) = self.bundles.lock().get(digest) {
            return Ok(b.clone());
        }
        let bytes = std::fs::read(self.bundle_path(digest))?;
        let b = std::sync::Arc::new(Bundle::from_bytes(digest, &bytes)?);
        self.bundles.lock().insert(digest.to_string(), b.clone());
        Ok(b)
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

/// Writes a file atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes a secret file readable only by its owner.
pub fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
