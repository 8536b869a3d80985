//! Backups and restores of a control plane: one JSON document holding every store record,
//! read in one consistent snapshot, with the CA and (unless left out) the CA key and the key
//! that seals Git credentials.
//!
//! A backup with secrets can impersonate the control plane (it can sign agent certificates)
//! and open the Git credentials: keep it like the CA key itself. `--without-secrets` leaves
//! both keys out; a restore then needs them from where they are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::datadir::{DataDir, STORE_FILE, write_file};
use crate::store::{Record, RedbStore, Store};

pub const FORMAT: &str = "bosun-backup";
pub const VERSION: u32 = 1;
/// Files of the data directory a backup carries: (name, secret).
pub const FILES: [(&str, bool); 3] = [("ca.pem", false), ("ca.key", true), ("secret.key", true)];

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    pub created_at: i64,
    pub installation_id: String,
    /// Data-directory files by name (see [`FILES`]).
    pub files: BTreeMap<String, String>,
    pub records: Vec<Record>,
}

impl Backup {
    /// A backup of `store` with the files at `sources` (name → path; secrets left out when
    /// `without_secrets`).
    pub fn take(
        store: &dyn Store,
        sources: &BTreeMap<String, PathBuf>,
        installation_id: &str,
        without_secrets: bool,
    ) -> anyhow::Result<Self> {
        let records = store.export().context("reading the store")?;
        let mut files = BTreeMap::new();
        for (name, secret) in FILES {
            if secret && without_secrets {
                continue;
            }
            if let Some(path) = sources.get(name) {
                files.insert(
                    name.to_string(),
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                );
            }
        }
        Ok(Self {
            format: FORMAT.into(),
            version: VERSION,
            created_at: crate::model::now(),
            installation_id: installation_id.to_string(),
            files,
            records,
        })
    }

    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let b: Self = serde_json::from_slice(bytes).context("not a Bosun backup (JSON)")?;
        if b.format != FORMAT {
            bail!("not a Bosun backup (format {:?})", b.format);
        }
        if b.version > VERSION {
            bail!("backup format version {} is newer than this build reads ({VERSION})", b.version);
        }
        Ok(b)
    }

    /// Restores into `dir`, which must not hold a store yet. Writes the files (keys 0600),
    /// the records, and the marker with the backup's installation id.
    pub fn restore(&self, dir: &Path) -> anyhow::Result<RestoreSummary> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let store_path = dir.join(STORE_FILE);
        if std::fs::metadata(&store_path).is_ok_and(|m| m.len() > 0) {
            bail!(
                "{} already holds a store; restore into an empty data directory (move this one away first)",
                dir.display()
            );
        }
        for (name, secret) in FILES {
            if let Some(content) = self.files.get(name) {
                write_file(&dir.join(name), content.as_bytes(), if secret { 0o600 } else { 0o644 })?;
            }
        }
        let store = RedbStore::open(&store_path)?;
        store.import(&self.records)?;
        drop(store);
        DataDir { root: dir.to_path_buf(), required: Vec::new() }.ensure_marker(Some(&self.installation_id))?;
        let count = |t: &str| self.records.iter().filter(|r| r.table == t).count();
        Ok(RestoreSummary {
            applications: count("apps"),
            clusters: count("clusters"),
            credentials: count("credentials"),
            missing_secrets: FILES
                .iter()
                .filter(|(n, s)| *s && !self.files.contains_key(*n))
                .map(|(n, _)| n.to_string())
                .collect(),
        })
    }
}

/// What a restore brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub applications: usize,
    pub clusters: usize,
    pub credentials: usize,
    /// Keys the backup did not carry (taken `--without-secrets`).
    pub missing_secrets: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Kind, StoreExt};

    #[test]
    fn a_backup_restores_every_record_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let store = RedbStore::open(&src.join(STORE_FILE)).unwrap();
        store.put(Kind::App, "web", &serde_json::json!({"name": "web"})).unwrap();
        store.put(Kind::Cluster, "c1", &serde_json::json!({"name": "c1"})).unwrap();
        store.put_bundle("d1", b"[]").unwrap();
        let mut sources = BTreeMap::new();
        for (name, _) in FILES {
            std::fs::write(src.join(name), format!("{name} content")).unwrap();
            sources.insert(name.to_string(), src.join(name));
        }
        let backup = Backup::take(&store, &sources, "inst-1", false).unwrap();
        let bytes = serde_json::to_vec(&backup).unwrap();
        let parsed = Backup::parse(&bytes).unwrap();
        assert_eq!(parsed, backup);

        let dst = tmp.path().join("dst");
        let summary = parsed.restore(&dst).unwrap();
        assert_eq!((summary.applications, summary.clusters), (1, 1));
        assert!(summary.missing_secrets.is_empty());
        let restored = RedbStore::open(&dst.join(STORE_FILE)).unwrap();
        assert_eq!(restored.export().unwrap(), store.export().unwrap());
        assert_eq!(std::fs::read_to_string(dst.join("ca.key")).unwrap(), "ca.key content");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dst.join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
        let marker = DataDir { root: dst.clone(), required: vec![] }.marker().unwrap().unwrap();
        assert_eq!(marker.installation_id, "inst-1");
        // Not over a store that holds data.
        drop(restored);
        assert!(parsed.restore(&dst).unwrap_err().to_string().contains("already holds a store"));

        let without = Backup::take(&store, &sources, "inst-1", true).unwrap();
        assert_eq!(without.files.keys().collect::<Vec<_>>(), ["ca.pem"]);
        let s = without.restore(&tmp.path().join("dst2")).unwrap();
        assert_eq!(s.missing_secrets, ["ca.key", "secret.key"]);
        assert!(Backup::parse(b"{\"format\":\"zip\"}").is_err());
    }
}
