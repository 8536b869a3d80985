//! The data directory: what it holds, the marker written when it is initialised, and the
//! checks that refuse to start on a damaged one instead of silently starting afresh.
//!
//! A fresh control plane creates its store, CA, secret key and first admin token, then writes
//! `bosun-data.json` (a random installation id and the schema version). From then on, a
//! store, CA or secret key that is missing or empty is a fatal error that names the file and
//! says how to recover — starting afresh would lock every agent out and drop every
//! Application without a word.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The marker file.
pub const MARKER_FILE: &str = "bosun-data.json";
/// The embedded store's file.
pub const STORE_FILE: &str = "bosun-store.redb";
/// The store file of schema 1 (one table per kind), converted at start (see [`crate::legacy`]).
pub const LEGACY_STORE_FILE: &str = "bosun.redb";
/// The schema version this build writes and reads: 2 is the transactional store with a change
/// feed; 1 (the per-kind tables) is converted at start.
pub const SCHEMA_VERSION: u32 = 2;

/// What the marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Random id of this installation (kept by backups and restores).
    pub installation_id: String,
    pub schema_version: u32,
    pub created_at: i64,
}

/// A data directory that must not be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "{file} is missing or empty, but {marker} says this data directory was initialised (installation {id}). \
Starting afresh would lock every agent out and lose every Application. Restore the data directory from a backup \
(`bosun-control-plane restore --from BACKUP --data-dir {dir}`), or, to really start over, move {dir} away."
    )]
    Missing { file: String, marker: String, id: String, dir: String },
    #[error(
        "{marker} is unreadable ({why}); it marks an initialised data directory. Restore it from a backup, or \
remove it only if {dir} really is a data directory of this version"
    )]
    BadMarker { marker: String, why: String, dir: String },
    #[error(
        "{marker} says schema version {found}; this build reads version {SCHEMA_VERSION}. Run a build that knows it, \
or restore a backup made by this version"
    )]
    Schema { marker: String, found: u32 },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Io { path: path.display().to_string(), why: e.to_string() }
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// The data directory and the files in it the control plane depends on.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
    /// Files that must exist once the directory is initialised (the store, and the CA and
    /// secret key unless they are given from elsewhere).
    pub required: Vec<PathBuf>,
}

impl DataDir {
    pub fn marker_path(&self) -> PathBuf {
        self.root.join(MARKER_FILE)
    }

    pub fn store_path(&self) -> PathBuf {
        self.root.join(STORE_FILE)
    }

    /// Reads the marker, if any.
    pub fn marker(&self) -> Result<Option<Marker>, DataDirError> {
        let path = self.marker_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| DataDirError::BadMarker {
                marker: path.display().to_string(),
                why: e.to_string(),
                dir: self.root.display().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Before anything is opened: an initialised directory must still hold every required
    /// file (non-empty) and a schema this build reads. Returns the marker when there is one.
    pub fn check(&self) -> Result<Option<Marker>, DataDirError> {
        let Some(marker) = self.marker()? else { return Ok(None) };
        if marker.schema_version > SCHEMA_VERSION {
            return Err(DataDirError::Schema {
                marker: self.marker_path().display().to_string(),
                found: marker.schema_version,
            });
        }
        for f in &self.required {
            if !non_empty(f) {
                return Err(DataDirError::Missing {
                    file: f.display().to_string(),
                    marker: self.marker_path().display().to_string(),
                    id: marker.installation_id.clone(),
                    dir: self.root.display().to_string(),
                });
            }
        }
        Ok(Some(marker))
    }

    /// After a successful start: writes the marker if there is none yet (a new directory, or
    /// one made by a version without markers).
    pub fn ensure_marker(&self, installation_id: Option<&str>) -> Result<Marker, DataDirError> {
        if let Some(m) = self.marker()? {
            return Ok(m);
        }
        let marker = Marker {
            installation_id: installation_id.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            schema_version: SCHEMA_VERSION,
            created_at: crate::model::now(),
        };
        write_file(
            &self.marker_path(),
            &serde_json::to_vec_pretty(&marker).map_err(|e| io(&self.marker_path(), e))?,
            0o644,
        )?;
        Ok(marker)
    }
}

/// Writes a file atomically ([`bosun_process::write_atomic`]); the error names the file.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
    bosun_process::write_atomic(path, bytes, mode).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initialised_directory_refuses_to_start_without_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir { root: tmp.path().into(), required: vec![tmp.path().join(STORE_FILE)] };
        // Fresh: nothing to check.
        assert!(dd.check().unwrap().is_none());
        std::fs::write(dd.store_path(), b"data").unwrap();
        let m = dd.ensure_marker(None).unwrap();
        assert_eq!(dd.check().unwrap(), Some(m.clone()));
        // Emptied, then deleted: both refused, naming the file and the way back.
        for damage in [|p: &Path| std::fs::write(p, b"").unwrap(), |p: &Path| std::fs::remove_file(p).unwrap()] {
            damage(&dd.store_path());
            let e = dd.check().unwrap_err().to_string();
            assert!(e.contains(STORE_FILE) && e.contains("restore") && e.contains(&m.installation_id), "{e}");
            std::fs::write(dd.store_path(), b"data").unwrap();
        }
        // A marker from the future.
        std::fs::write(dd.marker_path(), serde_json::to_vec(&Marker { schema_version: 99, ..m }).unwrap()).unwrap();
        assert!(matches!(dd.check(), Err(DataDirError::Schema { found: 99, .. })));
        std::fs::write(dd.marker_path(), b"{").unwrap();
        assert!(matches!(dd.check(), Err(DataDirError::BadMarker { .. })));
    }
}
