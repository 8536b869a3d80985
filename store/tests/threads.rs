//! The embedded store under a crowd: callers beyond what it runs at once wait as tasks, not
//! as threads. (Alone in its test binary: it counts the threads of its process.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bosun_store::{Embedded, Store, Txn};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_thousand_callers_at_once_do_not_start_a_thread_each() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let before = threads();
    let store = Arc::new(Embedded::open(&dir.path().join("store.redb")).unwrap());
    let peak = Arc::new(AtomicUsize::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    rt.block_on(async {
        store.commit(Txn::new().put("k/0", b"v".to_vec())).await.unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let store = store.clone();
            calls.spawn(async move {
                if i % 5 == 0 {
                    store.commit(Txn::new().put(format!("k/{i}"), vec![1u8; 512])).await.map(|_| ())
                } else {
                    store.get("k/0").await.map(|r| assert!(r.is_some()))
                }
            });
        }
        while let Some(r) = calls.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(store.list("k/").await.unwrap().records.len(), 200);
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let started = peak.load(Ordering::Relaxed).saturating_sub(before);
    println!("{started} threads started (the sampler and the store's 9 included)");
    // Nothing beyond the store's own readers and writer, started with it (without them, on
    // the blocking pool, about 340 here; with permits on the blocking pool, 37–121 as calls
    // handed over faster than a finished thread was seen idle again).
    assert!(started <= 16, "{started} threads started for 1000 concurrent calls");
}
