//! One of the stores, chosen at start (`--database-url` or not): what the control plane
//! holds, so that nothing above it depends on which backend runs.

use std::time::Duration;

use crate::{Change, Embedded, Postgres, Record, Revision, Snapshot, Store, StoreError, Txn};

/// The embedded store or PostgreSQL.
pub enum Backend {
    Embedded(Embedded),
    Postgres(Postgres),
}

impl Backend {
    /// `embedded` or `postgresql`, for logs and readiness messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Postgres(_) => "postgresql",
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Backend::Embedded($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Store for Backend {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        each!(self, s => s.get(key).await)
    }
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        each!(self, s => s.list(prefix).await)
    }
    async fn keys(&self, prefix: &str) -> Result<Vec<(String, Revision)>, StoreError> {
        each!(self, s => s.keys(prefix).await)
    }
    async fn commit(&self, txn: Txn) -> Result<Revision, StoreError> {
        each!(self, s => s.commit(txn).await)
    }
    async fn changes(&self, after: Revision, max_commits: u64) -> Result<Vec<Change>, StoreError> {
        each!(self, s => s.changes(after, max_commits).await)
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        each!(self, s => s.revision().await)
    }
    async fn wait_after(&self, after: Revision, timeout: Duration) {
        each!(self, s => s.wait_after(after, timeout).await)
    }
    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        each!(self, s => s.compact(through).await)
    }
}
