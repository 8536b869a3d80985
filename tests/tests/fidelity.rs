//! Argo CD fidelity against kube-sim, which stores objects as a real API server does
//! (canonical quantities, omitempty fields dropped, managedFields per field manager with the
//! schema's list keys): manifests the server rewrites stay in sync without a single write, and a
//! field removed from Git is drift — named, shown in the diff, and gone after a sync — while
//! fields another manager owns are left alone.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: nginx:1.27
        env: []
        resources:
          limits: {cpu: 1, memory: 1024Mi}
          requests: {cpu: 0.5, memory: 512Mi}
        volumeMounts:
        - {name: config, mountPath: /etc/app}
        - {name: config, mountPath: /etc/app-copy, subPath: app.conf}
      volumes:
      - name: config
        configMap: {name: web-config}
"#;

const ROLE: &str =
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: nothing-yet\nrules: []\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_the_server_rewrites_stay_in_sync_without_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", WEB);
    repo.write("k8s/role.yaml", ROLE);
    repo.write("k8s/config.yaml", &configmap("web-config", "1"));
    // A key written twice loads as Kubernetes loads it (the last value), with a warning.
    repo.write(
        "k8s/dup.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n  name: dup\ndata: {a: '1'}\n",
    );
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "1s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync", "--self-heal"]);
    cp.wait_synced("web", &rev).await;
    let warnings = cp.app_json("web")["status"]["warnings"].to_string();
    assert!(warnings.contains("k8s/dup.yaml") && warnings.contains("duplicate mapping key"), "{warnings}");
    let dup = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(c1.client().await, "default");
    assert!(dup.get_opt("dup").await.unwrap().is_some() && dup.get_opt("first").await.unwrap().is_none());
    // The server rewrote the quantities and dropped the empty fields.
    let live = Api::<Deployment>::namespaced(c1.client().await, "default").get("web").await.unwrap();
    let c = &live.spec.template.spec.unwrap().containers[0];
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("1", "1Gi"));
    assert_eq!(c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0, "500m");
    assert!(c.env.is_none(), "env: [] is not stored");

    // Three resyncs later: still Synced and Healthy, and not one request but watches: the
    // agent reads its cache (no GETs) and finds nothing to write.
    let requests = c1.sim.requests().clone();
    let (writes, gets) = (requests.writes(), requests.count("get"));
    let passes = || _agent.logs().lines().filter(|l| l.contains("app=web") && l.contains("reconciled")).count();
    let before = passes();
    eventually("three more passes of the agent", WAIT, || async { (passes() >= before + 3).then_some(()) }).await;
    assert_eq!(requests.count("get"), gets, "GETs during resyncs: {:?}", requests.snapshot());
    let v = cp.app_json("web");
    assert_eq!(
        (v["status"]["sync"].as_str(), v["status"]["health"].as_str()),
        (Some("Synced"), Some("Healthy")),
        "{v}"
    );
    assert_eq!(requests.writes(), writes, "writes after the first sync: {:?}", requests.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_removed_from_git_is_drift_until_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let manifest = |labels: &str, env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.27\n        env: [{env}]\n"
        )
    };
    repo.write(
        "k8s/web.yaml",
        &manifest("app: web, tier: api", "{name: KEEP, value: '1'}, {name: DEBUG, value: 'true'}"),
    );
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "1s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &[]);
    cp.bosun_ok(&["app", "sync", "web"]);
    cp.wait_synced("web", &rev).await;

    // Someone else labels the Deployment (another field manager): not drift.
    let api = Api::<Deployment>::namespaced(c1.client().await, "default");
    api.patch(
        "web",
        &PatchParams::apply("kubectl-label"),
        &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"owner": "ops"}}})),
    )
    .await
    .unwrap();

    // Git drops the tier label and the DEBUG variable: OutOfSync before any sync, naming both.
    repo.write("k8s/web.yaml", &manifest("app: web", "{name: KEEP, value: '1'}"));
    let rev2 = repo.commit("drop tier and DEBUG");
    cp.bosun_ok(&["app", "refresh", "web"]);
    let message = eventually("the removal seen as drift", WAIT, || async {
        let v = cp.app_json("web");
        let c = &v["status"]["clusters"][0];
        let msg = c["resources"][0]["message"].as_str().unwrap_or_default().to_string();
        (v["status"]["sync"] == "OutOfSync"
            && c["revision"] == rev2.as_str()
            && msg.contains("tier")
            && msg.contains("DEBUG"))
        .then_some(msg)
    })
    .await;
    assert!(!message.contains("owner"), "another manager's label is not drift: {message}");
    let diff = cp.bosun(&["app", "diff", "web"]);
    assert!(diff.stdout.contains(".metadata.labels.tier") && diff.stdout.contains("env[DEBUG]"), "{}", diff.stdout);
    assert!(diff.stdout.contains("removed from Git"), "{}", diff.stdout);
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.metadata.labels.as_ref().unwrap().get("tier").map(String::as_str),
        Some("api"),
        "manual: nothing applied yet"
    );

    // A sync removes both; the other manager's label stays.
    cp.bosun_ok(&["app", "sync", "web"]);
    cp.wait_synced("web", &rev2).await;
    let d = api.get("web").await.unwrap();
    let labels = d.metadata.labels.unwrap();
    assert!(!labels.contains_key("tier") && labels["owner"] == "ops", "{labels:?}");
    let env = d.spec.template.spec.unwrap().containers[0].env.clone().unwrap_or_default();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["KEEP"]);
}
