//! The control plane's record store: keyed byte records with versions, transactions over
//! several records (all or nothing) with compare-and-set preconditions, and a change feed in
//! which every commit has the next revision — gapless, so a reader that resumes after
//! revision `r` sees every later change exactly once, in order.
//!
//! Two implementations pass one conformance suite (`tests/conformance.rs`):
//! - [`Embedded`]: one redb file in the data directory; the default, no database to run;
//! - [`Postgres`]: for several control-plane replicas on one PostgreSQL. Commits take the
//!   revision counter's row lock, so revisions become visible in order; LISTEN/NOTIFY only
//!   wakes readers, who then read the feed by revision — a lost notification loses nothing.
//!
//! Keys are printable ASCII (`apps/web`, `clusters/c1`); values are opaque bytes (the model
//! encodes them). A record's `version` is the revision of the commit that last wrote it.

use std::future::Future;

mod backend;
mod embedded;
mod feed;
mod postgres;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::Backend;
pub use embedded::{Embedded, open_database};
pub use feed::watch;
pub use postgres::{Postgres, PostgresOptions};

/// The number of a commit. Revision 0 is the empty store; every commit adds one.
pub type Revision = u64;

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the commit that last wrote it.
    pub version: Revision,
}

/// Records under a prefix, read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub records: Vec<Record>,
    /// The revision the records are read at: follow the feed after it.
    pub revision: Revision,
}

/// What a transaction requires of a key before it writes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key holds no record.
    Absent,
    /// The key holds a record last written at this revision (optimistic concurrency).
    Version(Revision),
    /// The key holds a record, whatever its version.
    Present,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Write {
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// A transaction: preconditions, then writes, applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub checks: Vec<(String, Expect)>,
    pub writes: Vec<Write>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn expect(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.checks.push((key.into(), expect));
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.writes.push(Write::Put { key: key.into(), value: value.into() });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.writes.push(Write::Delete { key: key.into() });
        self
    }

    /// Refuses what no backend may store: bad keys, a key written twice, nothing to write.
    fn validate(&self) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return Err(StoreError::Invalid("a transaction must write something".into()));
        }
        for key in self.checks.iter().map(|(k, _)| k.as_str()).chain(self.writes.iter().map(Write::key)) {
            validate_key(key)?;
        }
        let mut keys: Vec<&str> = self.writes.iter().map(Write::key).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(StoreError::Invalid(format!("the transaction writes {:?} twice", w[0])));
        }
        Ok(())
    }
}

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 512;

fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::Invalid(format!(
            "key {key:?} is not 1..={MAX_KEY_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

/// One change in the feed: `value` is `None` for a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: Revision,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition did not hold; nothing was written. Read the record again and retry.
    #[error("conflict on {key:?}: expected {expected:?}, found {}", found.map_or("no record".to_string(), |v| format!("version {v}")))]
    Conflict { key: String, expected: Expect, found: Option<Revision> },
    /// The feed no longer holds changes that old: list again and follow from the snapshot.
    #[error(
        "the change feed starts after revision {oldest}; revision {requested} was compacted — read a snapshot again"
    )]
    Compacted { requested: Revision, oldest: Revision },
    /// The request cannot be stored as asked (bad key, empty transaction…).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The backend could not serve (I/O, connection, database error, in use elsewhere).
    #[error("{0}")]
    Unavailable(String),
    /// What the backend holds cannot be read back; the message says what to do.
    #[error("{0}")]
    Damaged(String),
}

/// The storage interface. Every committed transaction is durable when `commit` returns.
pub trait Store: Send + Sync + 'static {
    /// One record.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Every record whose key starts with `prefix`, in key order, at one revision.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// The keys (with versions) under `prefix`, in key order, without their values.
    fn keys(&self, prefix: &str) -> impl Future<Output = Result<Vec<(String, Revision)>, StoreError>> + Send;

    /// Checks every precondition and applies every write as one commit; returns its revision.
    /// A failed precondition is [`StoreError::Conflict`] and writes nothing.
    fn commit(&self, txn: Txn) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// The changes of commits `after + 1 ..= after + max_commits` that exist, in order.
    fn changes(
        &self,
        after: Revision,
        max_commits: u64,
    ) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// The revision of the last commit.
    fn revision(&self) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// Resolves once a commit after `after` exists, or after `timeout` (a reader then looks
    /// anyway: waking is a hint, the feed is the truth).
    fn wait_after(&self, after: Revision, timeout: std::time::Duration) -> impl Future<Output = ()> + Send;

    /// Drops the feed up to and including `through` (records stay); readers behind it get
    /// [`StoreError::Compacted`].
    fn compact(&self, through: Revision) -> impl Future<Output = Result<(), StoreError>> + Send;
}
