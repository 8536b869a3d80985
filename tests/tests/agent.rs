//! The agent's sync engine end to end: Applications shaped like Argo CD's own examples
//! (`generateName` hooks, waves, delete policies) and Helm-annotated hooks run in Argo CD's
//! order without waiting for the periodic resync; an agent killed with kill -9 in the middle
//! of a hook or a wave runs each hook exactly once; one slow Application does not hold up
//! another; and the API server sees only the writes a sync needs.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The agents here resync every five minutes: every step below must be woken by the
/// cluster's own changes, not by the safety-net resync.
const RESYNC: &str = "300s";

fn job(meta: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  {meta}\n  annotations:\n{}spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: alpine:3.20\n        command: [\"sleep\", \"1\"]\n",
        annotations.concat()
    )
}

fn replicaset(name: &str, wave: Option<i32>) -> String {
    let annotations =
        wave.map(|w| format!("  annotations: {{argocd.argoproj.io/sync-wave: \"{w}\"}}\n")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\n{annotations}spec:\n  replicas: 2\n  selector:\n    matchLabels: {{tier: {name}}}\n  template:\n    metadata:\n      labels: {{tier: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.27\n"
    )
}

fn service(name: &str, tier: &str, wave: Option<i32>) -> String {
    let annotations =
        wave.map(|w| format!("  annotations: {{argocd.argoproj.io/sync-wave: \"{w}\"}}\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{annotations}spec:\n  selector: {{tier: {tier}}}\n  ports:\n  - protocol: TCP\n    port: 8080\n    targetPort: 8080\n"
    )
}

/// Waits for Synced and Healthy at `rev`; how long it took since `since`.
async fn synced_after(cp: &ControlPlane, app: &str, rev: &str, since: Instant) -> Duration {
    cp.wait_synced(app, rev).await;
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_example_shaped_apps_sync_in_argo_order_without_waiting_for_a_resync() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    // Shaped like argocd-example-apps/sync-waves: generateName hooks in Sync (wave 1) and
    // PostSync, ReplicaSets and Services in waves 0 and 1.
    let sync_waves = [
        job("generateName: upgrade-sql-schema-", &[("argocd.argoproj.io/hook", "PostSync")]),
        replicaset("backend", None),
        service("backend-svc", "backend", None),
        job(
            "generateName: maintenance-page-up-",
            &[("argocd.argoproj.io/hook", "Sync"), ("argocd.argoproj.io/sync-wave", "1")],
        ),
        replicaset("frontend", None),
        service("frontend", "frontend", Some(1)),
        job("generateName: maintenance-page-down-", &[("argocd.argoproj.io/hook", "PostSync")]),
    ];
    repo.write("sync-waves/manifests.yaml", &sync_waves.join("---\n"));
    // Shaped like argocd-example-apps/pre-post-sync: a Deployment and its Service between a
    // PreSync and a PostSync Job, both deleted once the sync succeeded.
    let succeeded = ("argocd.argoproj.io/hook-delete-policy", "HookSucceeded");
    repo.write("pre-post-sync/before.yaml", &job("name: before", &[("argocd.argoproj.io/hook", "PreSync"), succeeded]));
    repo.write("pre-post-sync/ui.yaml", &deployment("guestbook-ui", 1, "gcr.io/heptio-images/ks-guestbook-demo:0.2"));
    repo.write("pre-post-sync/svc.yaml", &service("guestbook-ui", "guestbook-ui", None));
    repo.write("pre-post-sync/after.yaml", &job("name: after", &[("argocd.argoproj.io/hook", "PostSync"), succeeded]));
    let rev = repo.commit("argo cd examples");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let c1 = Cluster::start_default(root, "c1").await;
    let _agent = Agent::start_with_resync(root, &cp, &c1, &cp.add_cluster("c1"), RESYNC);
    let log = WriteLog::start(&c1);

    let create = |name: &str, path: &str| {
        cp.create_app(name, &repo.url, path, "c1", &["--auto-sync"]);
        Instant::now()
    };
    let t = create("sync-waves", "sync-waves");
    let waves_took = synced_after(&cp, "sync-waves", &rev, t).await;
    let t = create("pre-post-sync", "pre-post-sync");
    let pre_post_took = synced_after(&cp, "pre-post-sync", &rev, t).await;
    println!("sync-waves: {waves_took:?}, pre-post-sync: {pre_post_took:?} (agent resync {RESYNC})");
    assert!(waves_took < Duration::from_secs(10), "sync-waves took {waves_took:?}");
    assert!(pre_post_took < Duration::from_secs(10), "pre-post-sync took {pre_post_took:?}");

    // sync-waves, as gitops-engine orders tasks: phase, then wave, then kind, then name.
    let at = |verb: &str, kind: &str, name: &str| {
        log.position(verb, kind, name).unwrap_or_else(|| panic!("no {verb} {kind} {name} in {:#?}", log.entries()))
    };
    let wave0 = [at("create", "ReplicaSet", "backend"), at("create", "Service", "backend-svc")];
    let wave0 = [wave0[0], wave0[1], at("create", "ReplicaSet", "frontend")];
    let wave1 = [at("create", "Service", "frontend"), at("create", "Job", "maintenance-page-up-")];
    let post = [at("create", "Job", "upgrade-sql-schema-"), at("create", "Job", "maintenance-page-down-")];
    let entries = log.entries();
    assert!(wave0.iter().max() < wave1.iter().min(), "wave 0 before wave 1: {entries:#?}");
    assert!(wave1.iter().max() < post.iter().min(), "Sync phase before PostSync: {entries:#?}");
    for prefix in ["maintenance-page-up-", "upgrade-sql-schema-", "maintenance-page-down-"] {
        assert_eq!(log.of("Job", prefix).len(), 1, "one run of {prefix}: {entries:#?}");
    }
    // pre-post-sync: PreSync, the Deployment and Service, PostSync, then both hooks deleted.
    let order = [
        at("create", "Job", "before"),
        at("create", "Deployment", "guestbook-ui"),
        at("create", "Job", "after"),
        at("delete", "Job", "before"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "pre-post-sync order: {entries:#?}");
    assert!(log.position("delete", "Job", "after").is_some(), "HookSucceeded deletes the PostSync hook too");
    let status = cp.app_json("sync-waves");
    assert_eq!(status["status"]["health"], "Healthy", "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_annotated_hooks_run_in_helm_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let docs = [
        job("name: db-init", &[("helm.sh/hook", "pre-install,pre-upgrade"), ("helm.sh/hook-weight", "5")]),
        job("name: db-schema", &[("helm.sh/hook", "pre-install"), ("helm.sh/hook-weight", "-1")]),
        configmap("app-config", "1"),
        job(
            "name: announce",
            &[("helm.sh/hook", "post-install,post-upgrade"), ("helm.sh/hook-delete-policy", "hook-succeeded")],
        ),
    ];
    repo.write("chart/rendered.yaml", &docs.join("---\n"));
    let rev = repo.commit("helm hooks");
    let (cp, c1, _agent) = one_cluster(root, &repo, RESYNC).await;
    let log = WriteLog::start(&c1);
    cp.create_app("chart", &repo.url, "chart", "c1", &["--auto-sync"]);
    cp.wait_synced("chart", &rev).await;
    // Lower weights first; pre-install hooks before the chart's objects, post-install after;
    // hook-succeeded deletes `announce` once the sync succeeded.
    let wanted = [
        "create Job db-schema",
        "create Job db-init",
        "create ConfigMap app-config",
        "create Job announce",
        "delete Job announce",
    ];
    let seen: Vec<String> = log.entries().into_iter().filter(|e| wanted.contains(&e.as_str())).collect();
    assert_eq!(seen, wanted, "{:#?}", log.entries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_during_a_hook_or_a_wave_runs_each_hook_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let runs_for = ("kube-sim.bosun.dev/duration", "3s");
    let docs = [
        job("generateName: migrate-", &[("argocd.argoproj.io/hook", "PreSync"), runs_for]),
        with_wave(&configmap("first", "1"), "first", 0),
        job(
            "generateName: warm-cache-",
            &[("argocd.argoproj.io/hook", "Sync"), ("argocd.argoproj.io/sync-wave", "1"), runs_for],
        ),
        with_wave(&configmap("last", "1"), "last", 2),
        job("name: smoke", &[("argocd.argoproj.io/hook", "PostSync")]),
    ];
    repo.write("k8s/app.yaml", &docs.join("---\n"));
    let rev = repo.commit("hooks that take a while");
    let (cp, c1, mut agent) = one_cluster(root, &repo, RESYNC).await;
    let log = WriteLog::start(&c1);
    cp.create_app("shop", &repo.url, "k8s", "c1", &["--auto-sync"]);

    // kill -9 while the PreSync Job runs, and again while the wave-1 hook runs.
    for prefix in ["migrate-", "warm-cache-"] {
        eventually(&format!("the {prefix} hook running"), WAIT, || async {
            (!log.of("Job", prefix).is_empty()).then_some(())
        })
        .await;
        agent.kill();
        agent.restart();
    }
    cp.wait_synced("shop", &rev).await;
    let entries = log.entries();
    assert_eq!(log.of("Job", "migrate-").len(), 1, "{entries:#?}");
    assert_eq!(log.of("Job", "warm-cache-").len(), 1, "{entries:#?}");
    assert_eq!(log.of("Job", "smoke"), ["create smoke"], "{entries:#?}");
    let [warm, last] = [log.position("create", "Job", "warm-cache-"), log.position("create", "ConfigMap", "last")];
    assert!(warm < last, "wave 2 waited for the wave-1 hook across the restarts: {entries:#?}");
    assert_eq!(log.of("ConfigMap", "first"), ["create first"], "{entries:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_application_does_not_hold_up_another() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("slow/svc.yaml", &service("slow", "slow", None));
    repo.write("fast/cm.yaml", &configmap("fast", "1"));
    let rev = repo.commit("two apps");
    let (cp, c1, _agent) = one_cluster(root, &repo, RESYNC).await;
    // Every request on Services takes 15 s: the slow Application's watch and apply crawl.
    c1.sim.faults().set_resource_latency("services", Duration::from_secs(15));
    cp.create_app("slow", &repo.url, "slow", "c1", &["--auto-sync"]);
    eventually("the agent working on the slow Application", WAIT, || async {
        (c1.sim.requests().count_of("list", "services") > 0).then_some(())
    })
    .await;
    let t = Instant::now();
    cp.create_app("fast", &repo.url, "fast", "c1", &["--auto-sync"]);
    let took = synced_after(&cp, "fast", &rev, t).await;
    let slow = cp.app_json("slow");
    println!("fast synced in {took:?} while the slow one waits");
    assert_ne!(slow["status"]["sync"], "Synced", "the slow Application is still held up: {slow:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_changing_k_objects_costs_k_applies_and_no_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let write_all = |changed: usize, value: &str| {
        for i in 0..10 {
            let v = if i < changed { value } else { "0" };
            repo.write(&format!("k8s/cm-{i}.yaml"), &configmap(&format!("cm-{i}"), v));
        }
    };
    write_all(0, "0");
    let rev = repo.commit("ten ConfigMaps");
    // A short resync: the passes it triggers are part of what is counted.
    let (cp, c1, _agent) = one_cluster(root, &repo, "1s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;

    let requests = c1.sim.requests().clone();
    let mut costs = Vec::new();
    for (k, value) in [(1, "a"), (4, "b")] {
        requests.reset();
        write_all(k, value);
        let rev = repo.commit(&format!("change {k}"));
        cp.bosun_ok(&["app", "refresh", "web"]);
        cp.wait_synced("web", &rev).await;
        let seen = requests.snapshot();
        assert_eq!(requests.count("get"), 0, "no GETs: {seen:?}");
        assert_eq!(requests.count("list"), 0, "no re-lists: {seen:?}");
        assert_eq!(requests.count_of("patch", "configmaps"), k as u64, "one apply per changed object: {seen:?}");
        costs.push(requests.writes() - k as u64);
    }
    assert_eq!(costs[0], costs[1], "the rest of a sync costs the same whatever changed: {costs:?}");
    println!("writes per sync beyond the k applies: {}", costs[0]);
}
