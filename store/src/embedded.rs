//! The embedded store: one redb file. redb has one writer at a time, so a commit reads its
//! preconditions and writes the records, the feed entry and the revision in one write
//! transaction (fsynced before `commit` returns); readers see whole commits only.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Change, Expect, Record, Revision, Snapshot, Store, StoreError, Txn, Write};

/// key → 8-byte little-endian version, then the value.
const RECORDS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("records");
/// revision → the changes of that commit (see [`encode`]).
const FEED: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("feed");
/// `revision` (last commit) and `compacted` (the feed starts after it).
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// Memory redb may keep for pages it read or wrote (half of it at most for writes not yet
/// committed). The control plane reads its records from its own model, fed by the change
/// feed; what it asks the store for is the latest feed entries, bundles (cached above the
/// store) and the records a commit checks, so a small cache holds what is read again.
/// redb's default (1 GiB) would instead keep every page a fleet's status reports ever
/// touched: a few KiB per cluster.
pub const CACHE_BYTES: usize = 1 << 20;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("the store (redb) is unavailable: {e}"))
}

/// Opens (or creates) a redb file. A file the engine cannot read — truncated, partly
/// overwritten — is [`StoreError::Damaged`] naming the file and what to do (the engine may
/// panic on such input; that is caught here), never a crash loop without a hint.
pub fn open_database(path: &Path) -> Result<Database, StoreError> {
    let damaged = |why: String| {
        StoreError::Damaged(format!(
            "the store {} cannot be read ({why}); it is damaged. Stop the control plane and restore the data \
directory from a backup (`bosun-control-plane restore --from BACKUP`)",
            path.display()
        ))
    };
    let opened = std::panic::catch_unwind(|| -> Result<Database, String> {
        let mut db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path).map_err(|e| e.to_string())?;
        match db.check_integrity() {
            Ok(true) => Ok(db),
            Ok(false) => Err("its integrity check failed and it was repaired; check what it holds".into()),
            Err(e) => Err(e.to_string()),
        }
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(why)) if why.contains("already open") => Err(StoreError::Unavailable(format!(
            "the store {} is in use by another process (is a control plane running on this data directory?)",
            path.display()
        ))),
        Ok(Err(why)) => Err(damaged(why)),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the storage engine panicked".into());
            Err(damaged(why))
        }
    }
}

/// The embedded store.
pub struct Embedded {
    last: tokio::sync::watch::Sender<Revision>,
    /// Reads, run by [`READERS`] threads of the store's own. Past them, callers wait as
    /// tasks, not as threads: a thousand agents connecting at once would otherwise start
    /// hundreds of threads on the blocking pool, each keeping its stack's memory.
    readers: Pool,
    /// Write transactions, run one at a time (as redb runs them) by one thread, in the order
    /// they were asked for.
    writer: Pool,
}

/// Threads reading the embedded store.
const READERS: usize = 8;

/// Work for a store thread.
type Job = Box<dyn FnOnce(&Database) + Send>;

/// A fixed number of threads running jobs in the order they were queued, each holding the
/// database. Dropped, it lets them finish what was queued and waits for them, so the file is
/// closed (and can be opened again) once the store is gone.
struct Pool {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(db: &Arc<Database>, threads: usize, name: &str) -> Result<Self, StoreError> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut pool = Self { jobs: Some(jobs), threads: Vec::with_capacity(threads) };
        for _ in 0..threads {
            let (db, queue) = (db.clone(), queue.clone());
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    for job in queue {
                        // A job that panics loses its caller's answer (reported as an error
                        // there), not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&db)));
                    }
                })
                .map_err(|e| StoreError::Unavailable(format!("starting the store's {name} threads: {e}")))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Runs `f` on one of the pool's threads and waits for its answer as a task.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = tx.send(f(db));
        });
        let lost = || StoreError::Unavailable("the store's thread stopped before answering".into());
        self.jobs.as_ref().ok_or_else(lost)?.send(job).map_err(|_| lost())?;
        rx.await.map_err(|_| lost())?
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Embedded {
    /// Opens (or creates) the store in the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = open_database(path)?;
        let tx = db.begin_write().map_err(unavailable)?;
        let revision = {
            tx.open_table(RECORDS).map_err(unavailable)?;
            tx.open_table(FEED).map_err(unavailable)?;
            let meta = tx.open_table(META).map_err(unavailable)?;
            meta.get("revision").map_err(unavailable)?.map(|g| g.value()).unwrap_or(0)
        };
        tx.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        Ok(Self {
            last: tokio::sync::watch::channel(revision).0,
            readers: Pool::start(&db, READERS, "bosun-store-read")?,
            writer: Pool::start(&db, 1, "bosun-store-write")?,
        })
    }

    /// Runs a read on one of the store's [`READERS`] threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.run(f).await
    }

    /// Runs a write transaction on the store's writer thread, after those asked for before it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.run(f).await
    }
}

fn split_record(key: &str, raw: &[u8]) -> Result<Record, StoreError> {
    let (version, value) = raw.split_first_chunk::<8>().ok_or_else(|| {
        StoreError::Damaged(format!(
            "the store's record {key:?} is shorter than its version; restore the data directory from a backup"
        ))
    })?;
    Ok(Record { key: key.to_string(), value: value.to_vec(), version: u64::from_le_bytes(*version) })
}

impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = key.to_string();
        self.read(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(RECORDS).map_err(unavailable)?;
            t.get(key.as_str()).map_err(unavailable)?.map(|g| split_record(&key, g.value())).transpose()
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let revision = tx.open_table(META).map_err(unavailable)?.get("revision").map_err(unavailable)?;
            let revision = revision.map(|g| g.value()).unwrap_or(0);
            let t = tx.open_table(RECORDS).map_err(unavailable)?;
            let mut records = Vec::new();
            for row in t.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                records.push(split_record(k.value(), v.value())?);
            }
            Ok(Snapshot { records, revision })
        })
        .await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<(String, Revision)>, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(RECORDS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                let version = v.value().first_chunk::<8>().map(|b| u64::from_le_bytes(*b)).unwrap_or_default();
                out.push((k.value().to_string(), version));
            }
            Ok(out)
        })
        .await
    }

    async fn commit(&self, txn: Txn) -> Result<Revision, StoreError> {
        txn.validate()?;
        let revision = self
            .write(move |db| {
                let tx = db.begin_write().map_err(unavailable)?;
                let revision = {
                    let mut records = tx.open_table(RECORDS).map_err(unavailable)?;
                    for (key, expected) in &txn.checks {
                        let found = match records.get(key.as_str()).map_err(unavailable)? {
                            Some(g) => Some(split_record(key, g.value())?.version),
                            None => None,
                        };
                        if !holds(*expected, found) {
                            return Err(StoreError::Conflict { key: key.clone(), expected: *expected, found });
                        }
                    }
                    let mut meta = tx.open_table(META).map_err(unavailable)?;
                    let revision = meta.get("revision").map_err(unavailable)?.map(|g| g.value()).unwrap_or(0) + 1;
                    let mut changes = Vec::with_capacity(txn.writes.len());
                    for w in txn.writes {
                        match w {
                            Write::Put { key, value } => {
                                let mut raw = Vec::with_capacity(8 + value.len());
                                raw.extend_from_slice(&revision.to_le_bytes());
                                raw.extend_from_slice(&value);
                                records.insert(key.as_str(), raw.as_slice()).map_err(unavailable)?;
                                changes.push(Change { revision, key, value: Some(value) });
                            }
                            Write::Delete { key } => {
                                records.remove(key.as_str()).map_err(unavailable)?;
                                changes.push(Change { revision, key, value: None });
                            }
                        }
                    }
                    tx.open_table(FEED)
                        .map_err(unavailable)?
                        .insert(revision, encode(&changes).as_slice())
                        .map_err(unavailable)?;
                    meta.insert("revision", revision).map_err(unavailable)?;
                    revision
                };
                tx.commit().map_err(unavailable)?;
                Ok(revision)
            })
            .await?;
        crate::feed::publish(&self.last, revision);
        Ok(revision)
    }

    async fn changes(&self, after: Revision, max_commits: u64) -> Result<Vec<Change>, StoreError> {
        self.read(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let compacted = tx.open_table(META).map_err(unavailable)?.get("compacted").map_err(unavailable)?;
            let oldest = compacted.map(|g| g.value()).unwrap_or(0);
            if after < oldest {
                return Err(StoreError::Compacted { requested: after, oldest });
            }
            let feed = tx.open_table(FEED).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in feed.range(after + 1..=after.saturating_add(max_commits)).map_err(unavailable)? {
                let (rev, raw) = row.map_err(unavailable)?;
                out.extend(decode(rev.value(), raw.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(*self.last.borrow())
    }

    async fn wait_after(&self, after: Revision, timeout: Duration) {
        let mut rx = self.last.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| *r > after)).await;
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        self.write(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut meta = tx.open_table(META).map_err(unavailable)?;
                let last = meta.get("revision").map_err(unavailable)?.map(|g| g.value()).unwrap_or(0);
                let old = meta.get("compacted").map_err(unavailable)?.map(|g| g.value()).unwrap_or(0);
                let through = through.min(last);
                if through <= old {
                    return Ok(());
                }
                tx.open_table(FEED)
                    .map_err(unavailable)?
                    .retain_in(old + 1..=through, |_, _| false)
                    .map_err(unavailable)?;
                meta.insert("compacted", through).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }
}

/// Whether a record at `found` (None: absent) satisfies `expected`.
pub(crate) fn holds(expected: Expect, found: Option<Revision>) -> bool {
    match expected {
        Expect::Absent => found.is_none(),
        Expect::Present => found.is_some(),
        Expect::Version(v) => found == Some(v),
    }
}

/// A commit's changes as bytes: per change, key length (u32 LE), key, 0 (deleted) or 1 and the
/// value's length (u64 LE) and the value.
fn encode(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in changes {
        out.extend_from_slice(&(c.key.len() as u32).to_le_bytes());
        out.extend_from_slice(c.key.as_bytes());
        match &c.value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn decode(revision: Revision, mut raw: &[u8]) -> Result<Vec<Change>, StoreError> {
    let bad = || {
        StoreError::Damaged(format!(
            "the store's feed entry of revision {revision} cannot be read; restore the data directory from a backup"
        ))
    };
    let take = |n: usize, raw: &mut &[u8]| -> Result<Vec<u8>, StoreError> {
        if raw.len() < n {
            return Err(bad());
        }
        let (head, rest) = raw.split_at(n);
        *raw = rest;
        Ok(head.to_vec())
    };
    let mut out = Vec::new();
    while !raw.is_empty() {
        let len = u32::from_le_bytes(take(4, &mut raw)?.try_into().map_err(|_| bad())?) as usize;
        let key = String::from_utf8(take(len, &mut raw)?).map_err(|_| bad())?;
        let value = match take(1, &mut raw)?[0] {
            0 => None,
            1 => {
                let len = u64::from_le_bytes(take(8, &mut raw)?.try_into().map_err(|_| bad())?);
                Some(take(usize::try_from(len).map_err(|_| bad())?, &mut raw)?)
            }
            _ => return Err(bad()),
        };
        out.push(Change { revision, key, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_entry_reads_back_and_a_damaged_one_is_an_error() {
        let changes = vec![
            Change { revision: 7, key: "apps/web".into(), value: Some(b"{}".to_vec()) },
            Change { revision: 7, key: "apps/old".into(), value: None },
            Change { revision: 7, key: "apps/empty".into(), value: Some(Vec::new()) },
        ];
        let raw = encode(&changes);
        assert_eq!(decode(7, &raw).unwrap(), changes);
        // Cut anywhere, it reads as whole changes or is an error — never a half change.
        for cut in 1..raw.len() {
            match decode(7, &raw[..cut]) {
                Ok(read) => assert!(read.len() < changes.len() && changes.starts_with(&read), "cut at {cut}"),
                Err(e) => assert!(e.to_string().contains("revision 7"), "{e}"),
            }
        }
    }
}
