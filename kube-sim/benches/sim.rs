//! kube-sim benchmark: memory per idle simulated cluster and watch event throughput, each
//! beside a floor measured in the same run (`cargo bench -p kube-sim --bench sim`).
//!
//! Environment: `SIM_BENCH_CLUSTERS` (default 1000), `SIM_BENCH_EVENTS` (default 2000),
//! `SIM_BENCH_WATCHERS` (default 10). `--json` prints one JSON object instead of a table.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use kube_sim::{ControllerConfig, SimCluster, SimConfig};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Memory of N idle clusters, and of the floor: N bare listeners with an idle accept task each.
async fn memory(n: usize) -> (f64, f64) {
    settle().await;
    let base = rss_kib();
    let mut floor = Vec::with_capacity(n);
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        floor.push(tokio::spawn(async move {
            loop {
                let _ = l.accept().await;
            }
        }));
    }
    settle().await;
    let floor_kib = rss_kib().saturating_sub(base) as f64 / n as f64;
    for t in floor {
        t.abort();
    }
    settle().await;
    let base = rss_kib();
    let mut clusters = Vec::with_capacity(n);
    for i in 0..n {
        let cfg = SimConfig {
            name: format!("c{i}"),
            controllers: ControllerConfig { simulate_pods: false, ..ControllerConfig::default() },
            history: 1000,
            ..SimConfig::default()
        };
        clusters.push(SimCluster::start(cfg).await.unwrap());
    }
    settle().await;
    let per_cluster = rss_kib().saturating_sub(base) as f64 / n as f64;
    drop(clusters);
    (per_cluster, floor_kib)
}

/// Watch events delivered per second to `watchers` HTTP watches while `events` ConfigMap
/// applies land over HTTP (4 writers), and the floor: the same applies with nobody watching.
/// Returns (events/s delivered, applies/s with watchers, applies/s floor, fraction delivered).
async fn watch_throughput(events: usize, watchers: usize) -> (f64, f64, f64, f64) {
    async fn write_all(c: &SimCluster, events: usize) -> f64 {
        let client = kube::Client::try_from(kube::Config::new(c.url().parse().unwrap())).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let t = Instant::now();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let api = api.clone();
                tokio::spawn(async move {
                    for i in (w..events).step_by(4) {
                        let name = format!("cm-{}", i % 50);
                        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
                        api.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(cm)).await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        events as f64 / t.elapsed().as_secs_f64()
    }
    let floor_cluster = SimCluster::start(SimConfig::default()).await.unwrap();
    let floor = write_all(&floor_cluster, events).await;

    let c = SimCluster::start(SimConfig::default()).await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(c.url().parse().unwrap())).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = c.store().resource_version().to_string();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut s = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while n < events {
                match tokio::time::timeout(Duration::from_secs(30), s.next()).await {
                    Ok(Some(Ok(WatchEvent::Added(_) | WatchEvent::Modified(_)))) => n += 1,
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            n
        }));
    }
    let t = Instant::now();
    let applies = write_all(&c, events).await;
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    (delivered as f64 / secs, applies, floor, delivered as f64 / (events * watchers) as f64)
}

#[tokio::main]
async fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let n = env("SIM_BENCH_CLUSTERS", 1000);
    let events = env("SIM_BENCH_EVENTS", 2000);
    let watchers = env("SIM_BENCH_WATCHERS", 10);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };

    let (per_cluster, floor) = memory(n).await;
    let (events_per_sec, applies_per_sec, applies_floor, completeness) = watch_throughput(events, watchers).await;
    if json_out {
        println!(
            "{}",
            json!({"cores": cores, "profile": profile, "clusters": n, "idle_cluster_kib": per_cluster, "idle_floor_kib": floor,
                   "watchers": watchers, "events": events, "watch_events_per_sec": events_per_sec,
                   "applies_per_sec_with_watchers": applies_per_sec, "applies_per_sec_floor": applies_floor, "delivered_fraction": completeness})
        );
    } else {
        println!("kube-sim benchmark ({cores} cores, {profile} build)");
        println!("{:<44} {:>14} {:>14} {:>8}", "measure", "value", "floor", "ratio");
        println!(
            "{:<44} {:>14.1} {:>14.1} {:>8.1}",
            format!("memory per idle cluster, KiB (N={n})"),
            per_cluster,
            floor,
            per_cluster / floor.max(0.1)
        );
        println!(
            "{:<44} {:>14.0} {:>14.0} {:>8.2}",
            format!("HTTP applies/s with {watchers} watchers"),
            applies_per_sec,
            applies_floor,
            applies_per_sec / applies_floor.max(1.0)
        );
        println!("{:<44} {:>14.0}", format!("watch events/s delivered ({watchers} watchers)"), events_per_sec);
        println!("delivered {:.1}% of expected watch events", completeness * 100.0);
        println!(
            "floors: memory = a bare TCP listener + idle accept task per cluster; applies = the same applies with no watcher"
        );
    }
}
