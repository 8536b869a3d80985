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

use bosun_store::{Embedded, Store, Txn};

use crate::datadir::{DataDir, STORE_FILE, write_file};

pub const FORMAT: &str = "bosun-backup";
/// 2: records by key (the transactional store); 1: records by table (read and converted).
pub const VERSION: u32 = 2;
/// Files of the data directory a backup carries: (name, secret).
pub const FILES: [(&str, bool); 3] = [("ca.pem", false), ("ca.key", true), ("secret.key", true)];

/// One stored record in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Version 1 backups: the table the record was in (its key is then per table).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    pub key: String,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

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
    /// The store revision the records were read at.
    #[serde(default)]
    pub revision: u64,
}

impl Backup {
    /// A backup of `store` — every record, read at one revision — with the files at
    /// `sources` (name → path; secrets left out when `without_secrets`).
    pub async fn take<S: Store>(
        store: &S,
        sources: &BTreeMap<String, PathBuf>,
        installation_id: &str,
        without_secrets: bool,
    ) -> anyhow::Result<Self> {
        let snapshot = store.list("").await.context("reading the store")?;
        let records =
            snapshot.records.into_iter().map(|r| Record { table: String::new(), key: r.key, value: r.value }).collect();
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
            revision: snapshot.revision,
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

    /// The records by today's keys (a version-1 backup's converted).
    pub fn current_records(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut out = BTreeMap::new();
        for r in &self.records {
            if self.version < 2 {
                out.extend(crate::legacy::convert(&r.table, &r.key, &r.value)?);
            } else {
                out.insert(r.key.clone(), r.value.clone());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Restores into `dir`, which must not hold a store yet. Writes the files (keys 0600),
    /// the records (one transaction into a new embedded store), and the marker with the
    /// backup's installation id. To restore onto PostgreSQL, see [`Backup::restore_into`].
    pub async fn restore(&self, dir: &Path) -> anyhow::Result<RestoreSummary> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let store_path = dir.join(STORE_FILE);
        if std::fs::metadata(&store_path).is_ok_and(|m| m.len() > 0) {
            bail!(
                "{} already holds a store; restore into an empty data directory (move this one away first)",
                dir.display()
            );
        }
        self.write_files(dir)?;
        let store = Embedded::open(&store_path)?;
        let summary = self.restore_into(&store).await?;
        drop(store);
        DataDir { root: dir.to_path_buf(), required: Vec::new() }.ensure_marker(Some(&self.installation_id))?;
        Ok(summary)
    }

    /// Writes the data-directory files the backup carries into `dir`.
    pub fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, secret) in FILES {
            if let Some(content) = self.files.get(name) {
                write_file(&dir.join(name), content.as_bytes(), if secret { 0o600 } else { 0o644 })?;
            }
        }
        Ok(())
    }

    /// Writes the records into `store`, which must be empty, in one transaction.
    pub async fn restore_into<S: Store>(&self, store: &S) -> anyhow::Result<RestoreSummary> {
        if !store.keys("").await?.is_empty() {
            bail!("the target store already holds records; restore into an empty store");
        }
        let records = self.current_records()?;
        let count = |prefix: &str| {
            records.iter().filter(|(k, _)| k.starts_with(prefix) && k[prefix.len()..].find('/').is_none()).count()
        };
        let summary = RestoreSummary {
            applications: count(crate::model::records::APPS),
            clusters: count(crate::model::records::CLUSTERS),
            credentials: count(crate::model::records::CREDENTIALS),
            missing_secrets: FILES
                .iter()
                .filter(|(n, s)| *s && !self.files.contains_key(*n))
                .map(|(n, _)| n.to_string())
                .collect(),
        };
        if !records.is_empty() {
            store.commit(records.into_iter().fold(Txn::new(), |t, (k, v)| t.put(k, v))).await?;
        }
        Ok(summary)
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

    #[tokio::test]
    async fn a_backup_restores_every_record_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let store = Embedded::open(&src.join(STORE_FILE)).unwrap();
        store
            .commit(
                Txn::new()
                    .put("apps/web", serde_json::to_vec(&serde_json::json!({"name": "web"})).unwrap())
                    .put("clusters/c1", b"{}".to_vec())
                    .put("bundles/d1", b"[]".to_vec()),
            )
            .await
            .unwrap();
        let mut sources = BTreeMap::new();
        for (name, _) in FILES {
            std::fs::write(src.join(name), format!("{name} content")).unwrap();
            sources.insert(name.to_string(), src.join(name));
        }
        let backup = Backup::take(&store, &sources, "inst-1", false).await.unwrap();
        let bytes = serde_json::to_vec(&backup).unwrap();
        let parsed = Backup::parse(&bytes).unwrap();
        assert_eq!(parsed, backup);

        let dst = tmp.path().join("dst");
        let summary = parsed.restore(&dst).await.unwrap();
        assert_eq!((summary.applications, summary.clusters), (1, 1));
        assert!(summary.missing_secrets.is_empty());
        let restored = Embedded::open(&dst.join(STORE_FILE)).unwrap();
        async fn read(s: &Embedded) -> Vec<(String, Vec<u8>)> {
            s.list("").await.unwrap().records.into_iter().map(|r| (r.key, r.value)).collect()
        }
        assert_eq!(read(&restored).await, read(&store).await);
        assert_eq!(std::fs::read_to_string(dst.join("ca.key")).unwrap(), "ca.key content");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dst.join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
        let marker = DataDir { root: dst.clone(), required: vec![] }.marker().unwrap().unwrap();
        assert_eq!(marker.installation_id, "inst-1");
        // Not over a store that holds data.
        drop(restored);
        assert!(parsed.restore(&dst).await.unwrap_err().to_string().contains("already holds a store"));

        let without = Backup::take(&store, &sources, "inst-1", true).await.unwrap();
        assert_eq!(without.files.keys().collect::<Vec<_>>(), ["ca.pem"]);
        let s = without.restore(&tmp.path().join("dst2")).await.unwrap();
        assert_eq!(s.missing_secrets, ["ca.key", "secret.key"]);
        assert!(Backup::parse(b"{\"format\":\"zip\"}").is_err());
    }

    #[tokio::test]
    async fn a_version_1_backup_restores_into_todays_keys() {
        let v1 = serde_json::json!({
            "format": FORMAT, "version": 1, "created_at": 0, "installation_id": "old", "files": {},
            "records": [
                {"table": "credentials", "key": "admin", "value": "e30="},
                {"table": "join_tokens", "key": "abc", "value": "e30="},
                {"table": "meta", "key": "probe", "value": ""},
            ]
        });
        let b = Backup::parse(&serde_json::to_vec(&v1).unwrap()).unwrap();
        let keys: Vec<String> = b.current_records().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["credentials/admin", "tokens/abc"]);
    }
}
