//! Sync phases end to end: PreSync → waves → PostSync hooks in order (asserted from the
//! sequence of writes the cluster saw), delete policies, and SyncFail on a failed hook.

mod common;

use common::*;
use kube_sim::store::EventType;

fn job(name: &str, image: &str, annotations: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_waves_run_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write(
        "k8s/migrate.yaml",
        &job(
            "migrate",
            "migrate:1",
            "argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded, kube-sim.bosun.dev/duration: 3s",
        ),
    );
    repo.write("k8s/config.yaml", &with_wave(&configmap("config", "1"), "config", 0));
    repo.write("k8s/api.yaml", &with_wave(&deployment("api", 1, "nginx:1.27"), "api", 1));
    repo.write("k8s/smoke.yaml", &job("smoke", "smoke:1", "argocd.argoproj.io/hook: PostSync"));
    let rev = repo.commit("phases");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    let mut events = c1.sim.store().subscribe();
    cp.create_app("shop", &repo.url, "k8s", "c1", &["--auto-sync", "--prune"]);
    // While the PreSync hook runs, the control plane shows the operation and the hook run.
    let status = eventually("the running PreSync hook reported", WAIT, || async {
        let c = cp.app_json("shop")["status"]["clusters"][0].clone();
        let running = c["resources"].as_array()?.iter().any(|r| r["name"] == "migrate" && r["hook"] == true);
        (running && c["operation"].as_str().is_some_and(|o| !o.is_empty())).then_some(c)
    })
    .await;
    let operation = status["operation"].as_str().unwrap();
    assert!(operation.contains("PreSync") && operation.contains("migrate"), "{operation}");
    cp.wait_synced("shop", &rev).await;
    let done = cp.app_json("shop")["status"]["clusters"][0].clone();
    assert_eq!(done["operation"], "", "no operation once the sync completed: {done}");
    // The tree: the Deployment's ReplicaSet and its Pod, reported under their owners.
    eventually("the Deployment's ReplicaSet and Pod reported", WAIT, || async {
        let c = cp.app_json("shop")["status"]["clusters"][0].clone();
        let children = c["children"].as_array()?.clone();
        let rs = children.iter().find(|x| {
            x["kind"] == "ReplicaSet"
                && x["parentKind"] == "Deployment"
                && x["parentName"] == "api"
                && x["health"] == "Healthy"
        })?;
        let rs_name = rs["name"].as_str()?;
        children
            .iter()
            .any(|x| {
                x["kind"] == "Pod"
                    && x["parentKind"] == "ReplicaSet"
                    && x["parentName"] == rs_name
                    && x["health"] == "Healthy"
            })
            .then_some(())
    })
    .await;

    // The writes the cluster saw, in resourceVersion order.
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        let name = ev.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if ["migrate", "config", "api", "smoke"].contains(&name.as_str()) && ev.kind != EventType::Modified {
            seen.push(format!("{} {}", if ev.kind == EventType::Added { "create" } else { "delete" }, name));
        }
    }
    // As gitops-engine does, hooks with HookSucceeded are deleted once the whole sync succeeded.
    assert_eq!(seen, ["create migrate", "create config", "create api", "create smoke", "delete migrate"], "{seen:?}");
    // Hooks are not prune candidates: removing one from Git leaves its last run in place.
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(c1.client().await, "default");
    assert!(jobs.get_opt("migrate").await.unwrap().is_none(), "HookSucceeded deleted the PreSync hook");
    assert!(jobs.get_opt("smoke").await.unwrap().is_some(), "the default policy keeps a hook until its next run");
    repo.remove("k8s/smoke.yaml");
    let next = repo.commit("no more smoke test");
    cp.wait_synced("shop", &next).await;
    assert!(jobs.get_opt("smoke").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hook_fails_the_sync_and_runs_sync_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/migrate.yaml", &job("migrate", "migrate:fail", "argocd.argoproj.io/hook: PreSync"));
    repo.write("k8s/notify.yaml", &job("notify", "notify:1", "argocd.argoproj.io/hook: SyncFail"));
    repo.write("k8s/api.yaml", &deployment("api", 1, "nginx:1.27"));
    repo.commit("broken migration");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("shop", &repo.url, "k8s", "c1", &["--auto-sync"]);
    let message = eventually("sync failure reported", WAIT, || async {
        let v = cp.app_json("shop");
        let m = v["status"]["clusters"][0]["message"].as_str().unwrap_or_default().to_string();
        (m.contains("failed") && m.contains("migrate")).then_some(m)
    })
    .await;
    assert!(message.contains("PreSync"), "{message}");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(c1.client().await, "default");
    eventually("SyncFail hook created", WAIT, || async { jobs.get_opt("notify").await.unwrap().map(|_| ()) }).await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(c1.client().await, "default");
    assert!(deployments.get_opt("api").await.unwrap().is_none(), "nothing after a failed PreSync hook is applied");

    // A fix in Git starts a new sync, which succeeds.
    repo.write("k8s/migrate.yaml", &job("migrate", "migrate:2", "argocd.argoproj.io/hook: PreSync"));
    let fixed = repo.commit("fix migration");
    cp.wait_synced("shop", &fixed).await;
    assert!(deployments.get_opt("api").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_retried_with_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/migrate.yaml", &job("migrate", "migrate:flaky", "argocd.argoproj.io/hook: PreSync"));
    repo.write("k8s/api.yaml", &deployment("api", 1, "nginx:1.27"));
    let rev = repo.commit("flaky migration");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    c1.sim.faults().add_failing_image("migrate:flaky");
    cp.create_app(
        "shop",
        &repo.url,
        "k8s",
        "c1",
        &["--auto-sync", "--sync-retry-limit", "3", "--sync-retry-backoff", "1s"],
    );
    let message = eventually("first attempt failed", WAIT, || async {
        let m = cp.app_json("shop")["status"]["clusters"][0]["message"].as_str().unwrap_or_default().to_string();
        m.contains("attempt 1 failed").then_some(m)
    })
    .await;
    assert!(message.contains("retrying in"), "{message}");
    // The cause goes away (the image can be pulled now); the retry succeeds by itself.
    c1.sim.faults().clear();
    cp.wait_synced("shop", &rev).await;
    // One hook run per attempt, not one per reconcile pass.
    let runs = _agent.logs().matches("hook created").count();
    assert!((2..=4).contains(&runs), "the hook ran {runs} times");
}
