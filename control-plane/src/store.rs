//! The one narrow storage interface, and its embedded default (redb in the data directory).
//!
//! Everything the control plane must not lose goes through [`Store`]: Applications,
//! clusters, join tokens (hashed), per-cluster status, bundles and a few settings. Every
//! write is durable when the call returns. A PostgreSQL implementation for several replicas
//! implements the same trait (records are JSON documents keyed by name, so a table per
//! record kind with a `jsonb` column fits, and LISTEN/NOTIFY carries change notification).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A kind of record, stored as JSON documents keyed by a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    App,
    Cluster,
    JoinToken,
    Status,
    History,
    Meta,
    Credential,
    Repository,
}

impl Kind {
    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Kind::App => TableDefinition::new("apps"),
            Kind::Cluster => TableDefinition::new("clusters"),
            Kind::JoinToken => TableDefinition::new("join_tokens"),
            Kind::Status => TableDefinition::new("status"),
            Kind::History => TableDefinition::new("history"),
            Kind::Meta => TableDefinition::new("meta"),
            Kind::Credential => TableDefinition::new("credentials"),
            Kind::Repository => TableDefinition::new("repositories"),
        }
    }
}

const BUNDLES: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("bundles");

/// One record in a backup: its table, key and raw value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Record {
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

/// The storage interface. Implementations must make each write durable before returning.
pub trait Store: Send + Sync + 'static {
    fn put_raw(&self, kind: Kind, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn get_raw(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn delete(&self, kind: Kind, key: &str) -> Result<bool, StoreError>;
    /// Removes and returns a record atomically (single-use tokens).
    fn take_raw(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn list_raw(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn put_bundle(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError>;
    fn get_bundle(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record, read in one consistent snapshot (for backups).
    fn export(&self) -> Result<Vec<Record>, StoreError>;
    /// Writes `records` in one transaction (restoring a backup into an empty store).
    fn import(&self, records: &[Record]) -> Result<(), StoreError>;
    /// A cheap read that fails when the store cannot serve (readiness).
    fn probe(&self) -> Result<(), StoreError> {
        self.get_raw(Kind::Meta, "probe").map(|_| ())
    }
}

/// Typed helpers over any [`Store`].
pub trait StoreExt: Store {
    fn put<T: Serialize>(&self, kind: Kind, key: &str, value: &T) -> Result<(), StoreError> {
        self.put_raw(kind, key, &serde_json::to_vec(value).map_err(se)?)
    }
    fn get<T: DeserializeOwned>(&self, kind: Kind, key: &str) -> Result<Option<T>, StoreError> {
        self.get_raw(kind, key)?.map(|b| serde_json::from_slice(&b).map_err(se)).transpose()
    }
    fn take<T: DeserializeOwned>(&self, kind: Kind, key: &str) -> Result<Option<T>, StoreError> {
        self.take_raw(kind, key)?.map(|b| serde_json::from_slice(&b).map_err(se)).transpose()
    }
    fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, StoreError> {
        self.list_raw(kind)?.into_iter().map(|(_, b)| serde_json::from_slice(&b).map_err(se)).collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// The embedded store: one redb file in the data directory.
pub struct RedbStore {
    db: Database,
}

const ALL_KINDS: [Kind; 8] = [
    Kind::App,
    Kind::Cluster,
    Kind::JoinToken,
    Kind::Status,
    Kind::History,
    Kind::Meta,
    Kind::Credential,
    Kind::Repository,
];

fn tables() -> impl Iterator<Item = TableDefinition<'static, &'static str, &'static [u8]>> {
    ALL_KINDS.into_iter().map(Kind::table).chain([BUNDLES])
}

impl RedbStore {
    /// Opens (or creates) the store file. A file the storage engine cannot read — truncated,
    /// partly overwritten — is an error naming the file and what to do, never a crash loop
    /// without a hint (see [`bosun_store::open_database`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = bosun_store::open_database(path).map_err(se)?;
        let tx = db.begin_write().map_err(se)?;
        for t in tables() {
            tx.open_table(t).map_err(se)?;
        }
        tx.commit().map_err(se)?;
        Ok(Self { db })
    }

    fn write(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_write().map_err(se)?;
        let old = {
            let mut t = tx.open_table(table).map_err(se)?;
            match value {
                Some(v) => t.insert(key, v).map_err(se)?.map(|g| g.value().to_vec()),
                None => t.remove(key).map_err(se)?.map(|g| g.value().to_vec()),
            }
        };
        tx.commit().map_err(se)?;
        Ok(old)
    }

    fn read(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(se)?;
        let t = tx.open_table(table).map_err(se)?;
        Ok(t.get(key).map_err(se)?.map(|g| g.value().to_vec()))
    }
}

impl Store for RedbStore {
    fn put_raw(&self, kind: Kind, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(kind.table(), key, Some(value)).map(|_| ())
    }
    fn get_raw(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(kind.table(), key)
    }
    fn delete(&self, kind: Kind, key: &str) -> Result<bool, StoreError> {
        self.write(kind.table(), key, None).map(|o| o.is_some())
    }
    fn take_raw(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.write(kind.table(), key, None)
    }
    fn list_raw(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(se)?;
        let t = tx.open_table(kind.table()).map_err(se)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(se)? {
            let (k, v) = row.map_err(se)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
    fn put_bundle(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write(BUNDLES, digest, Some(bytes)).map(|_| ())
    }
    fn get_bundle(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(BUNDLES, digest)
    }
    fn export(&self) -> Result<Vec<Record>, StoreError> {
        let tx = self.db.begin_read().map_err(se)?;
        let mut out = Vec::new();
        for def in tables() {
            let t = tx.open_table(def).map_err(se)?;
            for row in t.iter().map_err(se)? {
                let (k, v) = row.map_err(se)?;
                out.push(Record {
                    table: def.name().to_string(),
                    key: k.value().to_string(),
                    value: v.value().to_vec(),
                });
            }
        }
        Ok(out)
    }
    fn import(&self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(se)?;
        for def in tables() {
            let mut t = tx.open_table(def).map_err(se)?;
            for r in records.iter().filter(|r| r.table == def.name()) {
                t.insert(r.key.as_str(), r.value.as_slice()).map_err(se)?;
            }
        }
        if let Some(r) = records.iter().find(|r| !tables().any(|d| d.name() == r.table)) {
            return Err(StoreError(format!("the backup holds a table this version does not know: {:?}", r.table)));
        }
        tx.commit().map_err(se)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_take_is_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bosun.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.put(Kind::App, "web", &serde_json::json!({"name": "web"})).unwrap();
            s.put(Kind::JoinToken, "h", &"c1").unwrap();
            s.put_bundle("d", b"[]").unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.list::<serde_json::Value>(Kind::App).unwrap().len(), 1);
        assert_eq!(s.take::<String>(Kind::JoinToken, "h").unwrap().as_deref(), Some("c1"));
        assert_eq!(s.take::<String>(Kind::JoinToken, "h").unwrap(), None);
        assert_eq!(s.get_bundle("d").unwrap().as_deref(), Some(&b"[]"[..]));
    }
}
