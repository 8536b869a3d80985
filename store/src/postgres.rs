//! The PostgreSQL store, for several control-plane replicas on one database.
//!
//! - Commits first take the next revision by updating the one `bosun_meta` row, which locks
//!   it, so they run one at a time; the lock is held until the commit is visible, so a
//!   reader that sees revision `r` has every revision before it: the feed has no gaps. While
//!   the lock is held a commit makes at most two more round trips (its preconditions, then
//!   all its writes in one statement), each on a statement prepared once per connection.
//! - Each commit sends `NOTIFY bosun_feed` (queued with that first statement, delivered only
//!   if the transaction commits); one listening connection per process turns that
//!   into a wake-up for readers, who then read `bosun_feed` by revision. A lost notification
//!   (or listener reconnect) only delays a reader by its look-anyway timeout.
//! - The schema is created by embedded, versioned migrations applied at start under an
//!   advisory lock (replicas starting together apply each once); a database whose schema is
//!   newer than this binary knows is refused.
//! - TLS to the database with rustls when the URL asks for it (`sslmode=require`), verifying
//!   against the system roots or a CA file (RDS publishes one). The URL's password is never
//!   logged or put in an error.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls};
use tracing::{debug, warn};

use crate::embedded::holds;
use crate::feed::publish;
use crate::{Change, Record, Revision, Snapshot, Store, StoreError, Txn, Write};

/// Schema migrations, applied in order; each runs once per database.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE bosun_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL,
    compacted bigint NOT NULL
);
INSERT INTO bosun_meta (id, revision, compacted) VALUES (1, 0, 0);
CREATE TABLE bosun_records (
    key text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL,
    version bigint NOT NULL
);
CREATE TABLE bosun_feed (
    revision bigint NOT NULL,
    seq integer NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea,
    PRIMARY KEY (revision, seq)
);
"#,
)];

/// Any number the other users of the database do not take for their advisory locks.
const MIGRATION_LOCK: i64 = 0x626f_7375_6e00_0001;
const CHANNEL: &str = "bosun_feed";

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/db?sslmode=require` (or the key=value form).
    pub url: String,
    /// CA certificates (PEM) to verify the server with, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ca_file: None, pool_size: 8 }
    }
}

/// The PostgreSQL store.
pub struct Postgres {
    pool: Pool,
    last: tokio::sync::watch::Sender<Revision>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    // A database error's own text (with its detail) says more than "db error".
    let text = match e.as_db_error() {
        Some(db) => {
            format!("{}: {}{}", db.severity(), db.message(), db.detail().map(|d| format!(" ({d})")).unwrap_or_default())
        }
        None => e.to_string(),
    };
    StoreError::Unavailable(format!("the store (postgresql) is unavailable: {text}"))
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => StoreError::Unavailable(format!("the store (postgresql) is unavailable: connection pool: {other}")),
    }
}

/// A TLS connector that can be cloned into every connection, or none.
#[derive(Clone)]
enum Tls {
    None,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

fn tls_for(config: &tokio_postgres::Config, ca_file: Option<&PathBuf>) -> Result<Tls, StoreError> {
    if config.get_ssl_mode() == SslMode::Disable {
        return Ok(Tls::None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Invalid(format!("reading the database CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "the database CA file {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| StoreError::Invalid(format!("a certificate in {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

impl Postgres {
    /// Connects, applies the migrations this binary carries, and starts listening for commits.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = options.url.parse().map_err(|_| {
            StoreError::Invalid("the database URL cannot be parsed (expected postgres://user@host:port/db)".into())
        })?;
        let tls = tls_for(&config, options.ca_file.as_ref())?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Tls::None => Manager::from_config(config.clone(), NoTls, manager_config),
            Tls::Rustls(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .build()
            .map_err(|e| StoreError::Invalid(format!("postgresql connection pool: {e}")))?;
        migrate(&pool).await?;
        let revision = {
            let client = pool.get().await.map_err(pool_error)?;
            client.query_one("SELECT revision FROM bosun_meta WHERE id = 1", &[]).await.map_err(pg)?.get::<_, i64>(0)
        };
        let last = tokio::sync::watch::channel(revision as Revision).0;
        let listener = tokio::spawn(listen(config, tls, last.clone()));
        Ok(Self { pool, last, listener })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Applies every migration newer than the database's schema, once, under an advisory lock.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS bosun_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg)?;
    let current: i32 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM bosun_schema", &[]).await.map_err(pg)?.get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Invalid(format!(
            "the database schema is at version {current}, newer than this control plane knows ({known}); run a control plane at least as new as the one that upgraded it"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute("INSERT INTO bosun_schema (version) VALUES ($1)", &[version]).await.map_err(pg)?;
        debug!(version, "database schema migrated");
    }
    tx.commit().await.map_err(pg)
}

/// Keeps one connection listening for commits and publishes the newest revision it hears
/// of; reconnects after a failure.
async fn listen(config: tokio_postgres::Config, tls: Tls, last: tokio::sync::watch::Sender<Revision>) {
    loop {
        let result = match &tls {
            Tls::None => listen_once(&config, NoTls, &last).await,
            Tls::Rustls(t) => listen_once(&config, t.clone(), &last).await,
        };
        if let Err(e) = result {
            warn!(error = %e, "the store's change listener lost its connection; reconnecting in 1s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    last: &tokio::sync::watch::Sender<Revision>,
) -> Result<(), StoreError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await.map_err(pg)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().parse::<Revision>().ok());
                }
                Ok(_) => {}
                Err(e) => return Err(pg(e)),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(pg)?;
    // Commits made before LISTEN took effect are not notified: read where the feed is now.
    let now: i64 = client.query_one("SELECT revision FROM bosun_meta WHERE id = 1", &[]).await.map_err(pg)?.get(0);
    publish(last, now as Revision);
    while let Some(revision) = rx.recv().await {
        if let Some(r) = revision {
            publish(last, r);
        }
    }
    pump.await.map_err(|e| StoreError::Unavailable(e.to_string()))?
}

/// A read-only transaction that sees one snapshot (every read in it at the same revision).
async fn snapshot(client: &mut deadpool_postgres::Object) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await.map_err(pg)
}

fn to_i64(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

impl Store for Postgres {
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let client = self.client().await?;
        let row =
            client.query_opt("SELECT value, version FROM bosun_records WHERE key = $1", &[&key]).await.map_err(pg)?;
        Ok(row.map(|r| Record { key: key.to_string(), value: r.get(0), version: r.get::<_, i64>(1) as Revision }))
    }

    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let revision: i64 = tx.query_one("SELECT revision FROM bosun_meta WHERE id = 1", &[]).await.map_err(pg)?.get(0);
        // Keys are printable ASCII and compared bytewise (COLLATE "C"): the prefix's range
        // ends before the prefix followed by the byte after '~'.
        let rows = tx
            .query(
                "SELECT key, value, version FROM bosun_records WHERE key >= $1 AND key < $2 ORDER BY key",
                &[&prefix, &format!("{prefix}\u{7f}")],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let records = rows
            .into_iter()
            .map(|r| Record { key: r.get(0), value: r.get(1), version: r.get::<_, i64>(2) as Revision })
            .collect();
        Ok(Snapshot { records, revision: revision as Revision })
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<(String, Revision)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, version FROM bosun_records WHERE key >= $1 AND key < $2 ORDER BY key",
                &[&prefix, &format!("{prefix}\u{7f}")],
            )
            .await
            .map_err(pg)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get::<_, i64>(1) as Revision)).collect())
    }

    async fn commit(&self, txn: Txn) -> Result<Revision, StoreError> {
        txn.validate()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Every commit takes the next revision on the counter's row, which it then holds until
        // it ends: commits are ordered by it, so the statements in between are few (checks,
        // then all writes in one) and prepared once per connection. The notification is sent
        // when the transaction commits and dropped if it rolls back.
        let next = tx
            .prepare_cached(
                "UPDATE bosun_meta SET revision = revision + 1 WHERE id = 1 \
                 RETURNING revision, pg_notify($1, revision::text)",
            )
            .await
            .map_err(pg)?;
        let revision: i64 = tx.query_one(&next, &[&CHANNEL]).await.map_err(pg)?.get(0);
        if !txn.checks.is_empty() {
            let keys: Vec<&str> = txn.checks.iter().map(|(k, _)| k.as_str()).collect();
            let versions =
                tx.prepare_cached("SELECT key, version FROM bosun_records WHERE key = ANY($1)").await.map_err(pg)?;
            let rows = tx.query(&versions, &[&keys]).await.map_err(pg)?;
            for (key, expected) in &txn.checks {
                let found = rows.iter().find(|r| r.get::<_, &str>(0) == key).map(|r| r.get::<_, i64>(1) as Revision);
                if !holds(*expected, found) {
                    // Dropping the transaction rolls it back, the revision taken included.
                    return Err(StoreError::Conflict { key: key.clone(), expected: *expected, found });
                }
            }
        }
        let (mut put_keys, mut put_values, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        let (mut feed_keys, mut feed_values) = (Vec::new(), Vec::new());
        for w in &txn.writes {
            match w {
                Write::Put { key, value } => {
                    put_keys.push(key.as_str());
                    put_values.push(value.as_slice());
                    feed_values.push(Some(value.as_slice()));
                }
                Write::Delete { key } => {
                    deleted.push(key.as_str());
                    feed_values.push(None);
                }
            }
            feed_keys.push(w.key());
        }
        // One statement: the parts of a statement with data-modifying WITH clauses run on one
        // snapshot, which is safe here because a transaction writes each key once (validated).
        let write = tx
            .prepare_cached(
                "WITH put AS (INSERT INTO bosun_records (key, value, version) \
                   SELECT k, v, $1 FROM unnest($2::text[], $3::bytea[]) AS t(k, v) \
                   ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version), \
                 gone AS (DELETE FROM bosun_records WHERE key = ANY($4::text[])) \
                 INSERT INTO bosun_feed (revision, seq, key, value) \
                 SELECT $1, (t.n - 1)::integer, t.k, t.v FROM unnest($5::text[], $6::bytea[]) WITH ORDINALITY AS t(k, v, n)",
            )
            .await
            .map_err(pg)?;
        tx.execute(&write, &[&revision, &put_keys, &put_values, &deleted, &feed_keys, &feed_values])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        publish(&self.last, revision as Revision);
        Ok(revision as Revision)
    }

    async fn changes(&self, after: Revision, max_commits: u64) -> Result<Vec<Change>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let oldest: i64 = tx.query_one("SELECT compacted FROM bosun_meta WHERE id = 1", &[]).await.map_err(pg)?.get(0);
        if to_i64(after) < oldest {
            return Err(StoreError::Compacted { requested: after, oldest: oldest as Revision });
        }
        let read = tx
            .prepare_cached(
                "SELECT revision, key, value FROM bosun_feed WHERE revision > $1 AND revision <= $2 ORDER BY revision, seq",
            )
            .await
            .map_err(pg)?;
        let rows = tx.query(&read, &[&to_i64(after), &to_i64(after.saturating_add(max_commits))]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| Change { revision: r.get::<_, i64>(0) as Revision, key: r.get(1), value: r.get(2) })
            .collect())
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let client = self.client().await?;
        let r: i64 = client.query_one("SELECT revision FROM bosun_meta WHERE id = 1", &[]).await.map_err(pg)?.get(0);
        publish(&self.last, r as Revision);
        Ok(r as Revision)
    }

    async fn wait_after(&self, after: Revision, timeout: Duration) {
        let mut rx = self.last.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| *r > after)).await;
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let row = tx
            .query_one("SELECT revision, compacted FROM bosun_meta WHERE id = 1 FOR UPDATE", &[])
            .await
            .map_err(pg)?;
        let (last, old): (i64, i64) = (row.get(0), row.get(1));
        let through = to_i64(through).min(last);
        if through <= old {
            return Ok(());
        }
        tx.execute("DELETE FROM bosun_feed WHERE revision <= $1", &[&through]).await.map_err(pg)?;
        tx.execute("UPDATE bosun_meta SET compacted = $1 WHERE id = 1", &[&through]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
