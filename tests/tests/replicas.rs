//! Three control-plane replicas on one PostgreSQL, agents spread across them: writes through
//! one are seen on the others, the lease holder and a replica with agents connected are
//! killed with SIGKILL, polling resumes on another and every agent reports again through the
//! survivors, a revocation through one is refused at the others, and no acknowledged write
//! is lost.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CLUSTERS: usize = 10;

fn synced_everywhere(v: &Value, revision: &str) -> bool {
    let clusters = v["status"]["clusters"].as_array().cloned().unwrap_or_default();
    clusters.len() == CLUSTERS
        && clusters.iter().all(|c| c["sync"] == "Synced" && c["health"] == "Healthy" && c["revision"] == revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_survive_losing_two() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pg = tokio::task::spawn_blocking(bosun_store::testing::TestPostgres::start).await.unwrap().unwrap();
    let shared = root.join("shared");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-control-plane"))
        .args(["generate-ca", "--out"])
        .arg(&shared)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(shared.join("secret.key"), "ab".repeat(32)).unwrap();
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(ControlPlane::start_replica(root, name, &pg.url(), &shared).await);
    }
    let (repo, rev) = web_repo(root).await;

    // Ten clusters registered through A; each agent prefers a different replica first.
    let mut clusters = Vec::new();
    let mut agents = Vec::new();
    for i in 0..CLUSTERS {
        let name = format!("c{i}");
        let token = replicas[0].add_cluster_labelled(&name, &["fleet=e2e"]);
        let cluster = Cluster::start(root, &name).await;
        let urls: Vec<String> =
            (0..3).map(|k| format!("https://127.0.0.1:{}", replicas[(i + k) % 3].ports.agent)).collect();
        agents.push(Agent::start_with_control_planes(root, &replicas[0], &cluster, &token, &urls));
        clusters.push(cluster);
    }

    // Created through A, watched on C.
    replicas[0].bosun_ok(&[
        "app",
        "create",
        "web",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--selector",
        "fleet=e2e",
        "--auto-sync",
    ]);
    eventually("web synced on every cluster, seen on C", WAIT * 2, || async {
        synced_everywhere(&replicas[2].app_json("web"), &rev).then_some(())
    })
    .await;

    // Acknowledged writes through every replica, counted.
    let mut syncs = 0;
    for i in 0..9 {
        replicas[i % 3].bosun_ok(&["app", "sync", "web", "--async"]);
        syncs += 1;
    }
    for i in 0..6 {
        let name = format!("extra-{i}");
        replicas[i % 3].bosun_ok(&[
            "app",
            "create",
            &name,
            "--repo",
            &repo.url,
            "--path",
            "k8s",
            "--cluster",
            "c0",
            "--namespace",
            &name,
        ]);
    }

    // Kill the lease holder with SIGKILL: another replica polls within 10 s.
    let holder = eventually("a lease holder", WAIT, || async {
        replicas.iter().position(|r| r.logs().contains("holding the singleton lease"))
    })
    .await;
    replicas[holder].kill();
    let killed_at = Instant::now();
    let rev2 = {
        repo.write("k8s/cm.yaml", &configmap("web", "2"));
        repo.commit("two")
    };
    let alive: Vec<usize> = (0..3).filter(|i| *i != holder).collect();
    eventually("the new revision polled by a surviving replica", WAIT, || async {
        (replicas[alive[0]].app_json("web")["status"]["revision"] == rev2).then_some(())
    })
    .await;
    let failover = killed_at.elapsed();
    println!("lease holder killed -> new revision polled: {failover:?}");
    assert!(failover < Duration::from_secs(10) + Duration::from_secs(2), "polling resumed in {failover:?}");

    // Kill a second replica, one with agents connected: every agent reports through the last.
    let last = alive[1];
    replicas[alive[0]].kill();
    let survivor = &replicas[last];
    eventually("every cluster synced at the new revision through the last replica", WAIT * 3, || async {
        synced_everywhere(&survivor.app_json("web"), &rev2).then_some(())
    })
    .await;

    // Nothing acknowledged was lost.
    let v = survivor.app_json("web");
    let requests = v["status"]["syncRequest"].as_u64().unwrap_or_default();
    assert_eq!(requests, syncs, "every acknowledged sync request: {v}");
    let list: Value = serde_json::from_str(&survivor.bosun_ok(&["app", "list", "-o", "json"])).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(7), "every Application created: {list}");

    // A replica started again is a full member: a revocation through it is refused by the
    // survivor's agent stream.
    let restarted = (0..3).find(|i| *i != last).unwrap();
    replicas[restarted].restart().await;
    replicas[restarted].bosun_ok(&["cluster", "revoke", "c3"]);
    let survivor = &replicas[last];
    eventually("c3 refused on the survivor", WAIT, || async {
        (survivor.bosun_ok(&["cluster", "get", "c3", "-o", "json"]).contains("\"joined\": false")
            && agents[3].logs().contains("revoked"))
        .then_some(())
    })
    .await;
    drop(clusters);
}
