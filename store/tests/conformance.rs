//! One conformance suite for every store: each case below runs against the embedded store
//! (a redb file) and against a real PostgreSQL server started for the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_store::testing::TestPostgres;
use bosun_store::{Change, Embedded, Expect, Postgres, PostgresOptions, Store, StoreError, Txn, watch};
use futures::StreamExt;

/// Keeps a backend's resources (file or server) alive for the test.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Server(#[allow(dead_code)] TestPostgres),
}

fn embedded() -> (Arc<Embedded>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(&dir.path().join("bosun.redb")).unwrap();
    (Arc::new(s), Guard::Dir(dir))
}

async fn postgres() -> (Arc<Postgres>, Guard) {
    let server = tokio::task::spawn_blocking(TestPostgres::start).await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    let s = Postgres::connect(&PostgresOptions::new(server.url())).await.unwrap();
    (Arc::new(s), Guard::Server(server))
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (s, _guard) = super::embedded();
                super::$case(s).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (s, _guard) = super::postgres().await;
                super::$case(s).await;
            })*
        }
    };
}

conformance!(
    records_carry_the_revision_that_wrote_them,
    a_failed_precondition_writes_nothing,
    compare_and_set_by_version,
    the_feed_holds_every_commit_in_order_without_gaps,
    a_reader_resumes_after_the_last_revision_it_saw,
    a_compacted_feed_says_so,
    large_values_round_trip,
    concurrent_writers_lose_no_update,
    a_snapshot_and_the_feed_after_it_add_up,
    keys_list_versions_without_values,
    bad_requests_are_refused,
);

async fn records_carry_the_revision_that_wrote_them<S: Store>(s: Arc<S>) {
    assert_eq!(s.revision().await.unwrap(), 0);
    let r1 = s.commit(Txn::new().put("apps/web", b"v1".to_vec()).put("apps/api", b"a1".to_vec())).await.unwrap();
    assert_eq!(r1, 1);
    let r2 = s.commit(Txn::new().put("apps/web", b"v2".to_vec()).put("clusters/c1", b"c".to_vec())).await.unwrap();
    assert_eq!(r2, 2);
    let web = s.get("apps/web").await.unwrap().unwrap();
    assert_eq!((web.value.as_slice(), web.version), (&b"v2"[..], 2));
    assert_eq!(s.get("apps/api").await.unwrap().unwrap().version, 1);
    assert_eq!(s.get("apps/none").await.unwrap(), None);
    let apps = s.list("apps/").await.unwrap();
    assert_eq!(apps.revision, 2);
    let keys: Vec<&str> = apps.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["apps/api", "apps/web"], "key order, and nothing outside the prefix");
    s.commit(Txn::new().delete("apps/web")).await.unwrap();
    assert_eq!(s.get("apps/web").await.unwrap(), None);
    assert_eq!(s.list("apps/").await.unwrap().records.len(), 1);
    assert_eq!(s.list("").await.unwrap().records.len(), 2);
    assert_eq!(s.revision().await.unwrap(), 3);
}

async fn a_failed_precondition_writes_nothing<S: Store>(s: Arc<S>) {
    s.commit(Txn::new().put("a", b"1".to_vec())).await.unwrap();
    let err = s
        .commit(Txn::new().expect("b", Expect::Present).put("a", b"2".to_vec()).put("c", b"3".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Conflict { key, found: None, .. } if key == "b"), "{err}");
    assert_eq!(s.get("a").await.unwrap().unwrap().value, b"1");
    assert_eq!(s.get("c").await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), 1, "no revision for a refused commit");
    assert_eq!(s.changes(1, 10).await.unwrap(), []);
    // A later commit takes the next revision: no gap where the refused one was.
    assert_eq!(s.commit(Txn::new().put("c", b"3".to_vec())).await.unwrap(), 2);
}

async fn compare_and_set_by_version<S: Store>(s: Arc<S>) {
    let v1 = s.commit(Txn::new().expect("k", Expect::Absent).put("k", b"1".to_vec())).await.unwrap();
    let err = s.commit(Txn::new().expect("k", Expect::Absent).put("k", b"x".to_vec())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { found: Some(v), .. } if v == v1), "{err}");
    let v2 = s.commit(Txn::new().expect("k", Expect::Version(v1)).put("k", b"2".to_vec())).await.unwrap();
    // A writer holding the old version is refused and told the current one.
    let err = s.commit(Txn::new().expect("k", Expect::Version(v1)).put("k", b"stale".to_vec())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { found: Some(v), .. } if v == v2), "{err}");
    assert!(err.to_string().contains("\"k\""), "the message names the key: {err}");
    assert_eq!(s.get("k").await.unwrap().unwrap().value, b"2");
    s.commit(Txn::new().expect("k", Expect::Present).delete("k")).await.unwrap();
    let err = s.commit(Txn::new().expect("k", Expect::Version(v2)).put("k", b"3".to_vec())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { found: None, .. }), "{err}");
    // Checks on one key guard writes to others (a parent guarding a child).
    let parent = s.commit(Txn::new().put("parent", b"p".to_vec())).await.unwrap();
    s.commit(Txn::new().expect("parent", Expect::Version(parent)).put("child", b"c".to_vec())).await.unwrap();
    assert!(s.get("child").await.unwrap().is_some());
}

async fn the_feed_holds_every_commit_in_order_without_gaps<S: Store>(s: Arc<S>) {
    for i in 0..20u32 {
        let mut t = Txn::new().put(format!("k/{i}"), i.to_le_bytes().to_vec());
        if i % 5 == 4 {
            t = t.delete(format!("k/{}", i - 1));
        }
        s.commit(t).await.unwrap();
    }
    let all = s.changes(0, 1_000).await.unwrap();
    assert_eq!(all.len(), 24);
    let revisions: Vec<u64> = all.iter().map(|c| c.revision).collect();
    assert!(revisions.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1), "gapless, in order: {revisions:?}");
    assert_eq!((revisions[0], *revisions.last().unwrap()), (1, 20));
    let fifth: Vec<&Change> = all.iter().filter(|c| c.revision == 5).collect();
    assert_eq!(fifth.len(), 2, "one commit, one revision for both of its writes");
    assert_eq!((fifth[0].key.as_str(), fifth[0].value.is_some()), ("k/4", true));
    assert_eq!((fifth[1].key.as_str(), fifth[1].value.as_deref()), ("k/3", None));
    // Pages are whole commits.
    let page = s.changes(4, 1).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|c| c.revision == 5));
    assert_eq!(s.changes(20, 10).await.unwrap(), []);
}

async fn a_reader_resumes_after_the_last_revision_it_saw<S: Store>(s: Arc<S>) {
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..60u32 {
                s.commit(Txn::new().put(format!("w/{}", i % 7), i.to_le_bytes().to_vec())).await.unwrap();
            }
        })
    };
    // Read a while, stop, and pick up again from the last revision seen: every commit once.
    let mut seen = Vec::new();
    let mut stream = Box::pin(watch(s.clone(), 0));
    while seen.len() < 25 {
        seen.push(next(&mut stream).await.revision);
    }
    drop(stream);
    let mut stream = Box::pin(watch(s.clone(), *seen.last().unwrap()));
    while seen.len() < 60 {
        seen.push(next(&mut stream).await.revision);
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=60).collect::<Vec<u64>>());
}

async fn next<St: futures::Stream<Item = Result<Change, StoreError>> + Unpin>(s: &mut St) -> Change {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("a change within 20 s")
        .expect("the feed does not end")
        .expect("no feed error")
}

async fn a_compacted_feed_says_so<S: Store>(s: Arc<S>) {
    for i in 0..10u32 {
        s.commit(Txn::new().put("k", i.to_le_bytes().to_vec())).await.unwrap();
    }
    s.compact(6).await.unwrap();
    let err = s.changes(3, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { requested: 3, oldest: 6 }), "{err}");
    let mut stream = Box::pin(watch(s.clone(), 2));
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap();
    assert!(matches!(first, Err(StoreError::Compacted { .. })), "a reader behind the feed is told to list again");
    assert!(stream.next().await.is_none(), "and the stream ends");
    let rest: Vec<u64> = s.changes(6, 100).await.unwrap().iter().map(|c| c.revision).collect();
    assert_eq!(rest, [7, 8, 9, 10]);
    // Records are not touched by compaction; compacting backwards does nothing.
    assert_eq!(s.get("k").await.unwrap().unwrap().version, 10);
    s.compact(2).await.unwrap();
    assert!(s.changes(5, 1).await.is_err());
}

async fn large_values_round_trip<S: Store>(s: Arc<S>) {
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    s.commit(Txn::new().put("bundles/big", big.clone()).put("bundles/empty", Vec::new())).await.unwrap();
    assert_eq!(s.get("bundles/big").await.unwrap().unwrap().value, big);
    assert_eq!(s.get("bundles/empty").await.unwrap().unwrap().value, b"");
    let feed = s.changes(0, 1).await.unwrap();
    assert_eq!(feed[0].value.as_deref(), Some(big.as_slice()));
    assert_eq!(feed[1].value.as_deref(), Some(&b""[..]), "an empty value is not a deletion");
}

async fn concurrent_writers_lose_no_update<S: Store>(s: Arc<S>) {
    // Eight writers add to one counter with compare-and-set, retrying on conflict.
    s.commit(Txn::new().put("counter", 0u64.to_le_bytes().to_vec())).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..25 {
                    loop {
                        let r = s.get("counter").await.unwrap().unwrap();
                        let n = u64::from_le_bytes(r.value.as_slice().try_into().unwrap());
                        let t = Txn::new()
                            .expect("counter", Expect::Version(r.version))
                            .put("counter", (n + 1).to_le_bytes().to_vec())
                            .put(format!("log/{w}/{i}"), b"done".to_vec());
                        match s.commit(t).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let n = u64::from_le_bytes(s.get("counter").await.unwrap().unwrap().value.as_slice().try_into().unwrap());
    assert_eq!(n, 200, "every acknowledged increment is there ({conflicts} conflicts retried)");
    assert_eq!(s.list("log/").await.unwrap().records.len(), 200);
    assert_eq!(s.revision().await.unwrap(), 201);
}

async fn a_snapshot_and_the_feed_after_it_add_up<S: Store>(s: Arc<S>) {
    for i in 0..5u32 {
        s.commit(Txn::new().put(format!("apps/{i}"), b"x".to_vec())).await.unwrap();
    }
    let snap = s.list("apps/").await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            s.commit(Txn::new().delete("apps/0")).await.unwrap();
            s.commit(Txn::new().put("apps/9", b"y".to_vec())).await.unwrap();
        })
    };
    let mut keys: std::collections::BTreeSet<String> = snap.records.iter().map(|r| r.key.clone()).collect();
    let mut stream = Box::pin(watch(s.clone(), snap.revision));
    let deadline = Instant::now() + Duration::from_secs(20);
    while keys.contains("apps/0") || !keys.contains("apps/9") {
        assert!(Instant::now() < deadline, "the feed after the snapshot brings both changes");
        let c = next(&mut stream).await;
        assert!(c.revision > snap.revision);
        match c.value {
            Some(_) => keys.insert(c.key),
            None => keys.remove(&c.key),
        };
    }
    writer.await.unwrap();
    assert_eq!(keys.len(), 5);
}

async fn keys_list_versions_without_values<S: Store>(s: Arc<S>) {
    let r1 = s.commit(Txn::new().put("bundles/a", vec![1u8; 1 << 20]).put("bundles/b", b"b".to_vec())).await.unwrap();
    let r2 = s
        .commit(Txn::new().put("bundles/b", b"bb".to_vec()).put("bundlesx", b"not under the prefix".to_vec()))
        .await
        .unwrap();
    s.commit(Txn::new().put("apps/web", b"{}".to_vec())).await.unwrap();
    let keys = s.keys("bundles/").await.unwrap();
    assert_eq!(keys, vec![("bundles/a".to_string(), r1), ("bundles/b".to_string(), r2)]);
    assert!(s.keys("nothing/").await.unwrap().is_empty());
}

async fn bad_requests_are_refused<S: Store>(s: Arc<S>) {
    for (t, why) in [
        (Txn::new(), "write something"),
        (Txn::new().expect("a", Expect::Absent), "write something"),
        (Txn::new().put("", b"x".to_vec()), "printable"),
        (Txn::new().put("has space", b"x".to_vec()), "printable"),
        (Txn::new().put("é", b"x".to_vec()), "printable"),
        (Txn::new().put("k".repeat(600), b"x".to_vec()), "printable"),
        (Txn::new().put("a", b"1".to_vec()).delete("a"), "twice"),
    ] {
        let err = s.commit(t).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)) && err.to_string().contains(why), "{err}");
    }
    assert_eq!(s.revision().await.unwrap(), 0);
}

#[tokio::test]
async fn the_embedded_store_keeps_records_and_feed_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bosun.redb");
    {
        let s = Embedded::open(&path).unwrap();
        s.commit(Txn::new().put("a", b"1".to_vec())).await.unwrap();
        s.commit(Txn::new().put("b", b"2".to_vec())).await.unwrap();
    }
    let s = Embedded::open(&path).unwrap();
    assert_eq!(s.revision().await.unwrap(), 2);
    assert_eq!(s.changes(0, 10).await.unwrap().len(), 2);
    assert_eq!(s.commit(Txn::new().put("c", b"3".to_vec())).await.unwrap(), 3);
    // A second process (or a second open) is refused with a hint, not a crash.
    let err = Embedded::open(&path).err().expect("the file is in use");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn a_damaged_embedded_store_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bosun.redb");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = Embedded::open(&path).err().expect("a file of garbage is refused");
    assert!(matches!(err, StoreError::Damaged(_)) && err.to_string().contains("restore"), "{err}");
}

/// Two replicas on one database: each sees the other's commits through the feed, the
/// schema is migrated once, and a reader survives the database restarting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_database_follow_each_other_and_survive_a_restart() {
    let server = tokio::task::spawn_blocking(TestPostgres::start).await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    let options = PostgresOptions::new(server.url());
    let (a, b) = tokio::join!(Postgres::connect(&options), Postgres::connect(&options));
    let (a, b) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let mut on_b = Box::pin(watch(b.clone(), 0));
    a.commit(Txn::new().put("apps/web", b"1".to_vec())).await.unwrap();
    let c = next(&mut on_b).await;
    assert_eq!((c.revision, c.key.as_str()), (1, "apps/web"));
    // A conflict across replicas: b wrote last, a's stale write is refused.
    let v = b.commit(Txn::new().expect("apps/web", Expect::Version(1)).put("apps/web", b"2".to_vec())).await.unwrap();
    let err =
        a.commit(Txn::new().expect("apps/web", Expect::Version(1)).put("apps/web", b"3".to_vec())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { found: Some(f), .. } if f == v), "{err}");
    assert_eq!(next(&mut on_b).await.revision, 2);

    // The database goes away and comes back: commits fail meanwhile (nothing half-written),
    // then a reader resuming from its last revision misses nothing.
    server.kill().unwrap();
    assert!(matches!(a.commit(Txn::new().put("apps/down", b"x".to_vec())).await, Err(StoreError::Unavailable(_))));
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match a.commit(Txn::new().put("apps/api", b"1".to_vec())).await {
            Ok(r) => {
                assert_eq!(r, 3, "the refused commit took no revision");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "the store is usable again after a restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut resumed = Box::pin(watch(b.clone(), 2));
    let c = next(&mut resumed).await;
    assert_eq!((c.revision, c.key.as_str()), (3, "apps/api"));
    assert_eq!(b.get("apps/down").await.unwrap(), None);
}
