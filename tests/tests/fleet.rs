//! Fleet targeting and ordering between real processes: an Application with a label selector
//! lands exactly on the matching clusters, follows relabelling both ways (pruning where it
//! no longer belongs) and reaches a newly joined matching cluster by itself; `dependsOn`
//! holds an Application until its dependency is Synced and Healthy on the same cluster, and a
//! dependency cycle is refused.

mod common;

use bosun_proto::v1 as pb;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

async fn has_configmap(cluster: &Cluster, name: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    api.get_opt(name).await.ok().flatten().is_some()
}

async fn configmap_data(cluster: &Cluster, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    api.get_opt(name).await.ok().flatten().and_then(|c| c.data)
}

fn app_clusters(cp: &ControlPlane, app: &str) -> Vec<String> {
    let v = cp.app_json(app);
    v["status"]["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_follow_labels_and_new_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, _) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    let join = |name: &str, labels: &[&str]| cp.add_cluster_labelled(name, labels);
    let (c1, c2) = (Cluster::start(root, "c1").await, Cluster::start(root, "c2").await);
    let _a1 = Agent::start(root, &cp, &c1, &join("c1", &["env=prod", "region=eu"]));
    let _a2 = Agent::start(root, &cp, &c2, &join("c2", &["env=staging", "region=eu"]));
    let out = cp.bosun_ok(&[
        "app",
        "create",
        "web",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--selector",
        "env=prod, region in (eu,us)",
        "--auto-sync",
        "--prune",
    ]);
    assert!(out.contains("web"), "{out}");
    assert_eq!(cp.app_json("web")["spec"]["destination"]["selector"], "env=prod,region in (eu,us)", "normalised");
    eventually("web on c1", WAIT, || async { has_configmap(&c1, "web").await.then_some(()) }).await;
    assert_eq!(app_clusters(&cp, "web"), ["c1"]);
    assert!(!has_configmap(&c2, "web").await, "c2 does not match");

    // Relabelling moves clusters in and out.
    cp.bosun_ok(&["cluster", "label", "c2", "env=prod"]);
    eventually("web on c2 after relabelling", WAIT, || async { has_configmap(&c2, "web").await.then_some(()) }).await;
    cp.bosun_ok(&["cluster", "label", "c1", "env-", "tier=db"]);
    eventually("web pruned from c1, which no longer matches", WAIT, || async {
        (!has_configmap(&c1, "web").await).then_some(())
    })
    .await;
    assert_eq!(app_clusters(&cp, "web"), ["c2"]);
    let c1_json: Value = serde_json::from_str(&cp.bosun_ok(&["cluster", "get", "c1", "-o", "json"])).unwrap();
    assert_eq!(c1_json["labels"], serde_json::json!({"region": "eu", "tier": "db"}));

    // A new matching cluster gets it with no other action.
    let c3 = Cluster::start(root, "c3").await;
    let _a3 = Agent::start(root, &cp, &c3, &join("c3", &["env=prod", "region=us"]));
    eventually("web on the newly joined c3", WAIT, || async { has_configmap(&c3, "web").await.then_some(()) }).await;
    eventually("web Synced on c2 and c3", WAIT, || async {
        let v = cp.app_json("web");
        (v["status"]["sync"] == "Synced" && app_clusters(&cp, "web") == ["c2", "c3"]).then_some(())
    })
    .await;

    // Facts are labels too; bad labels and selectors are refused.
    let o = cp.bosun(&["cluster", "label", "c3", "bosun.dev/name=x"]);
    assert_ne!(o.code, 0, "bosun.dev/ is reserved");
    let o = cp.bosun(&["app", "create", "bad", "--repo", &repo.url, "--selector", "env in prod"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("destination.selector"), "{}", o.stderr);
    cp.bosun_ok(&[
        "app",
        "create",
        "by-fact",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--selector",
        "bosun.dev/name in (c1,c3)",
    ]);
    assert_eq!(app_clusters(&cp, "by-fact"), ["c1", "c3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_waits_for_health_and_cycles_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("db/deploy.yaml", &deployment("db", 1, "nginx:fail"));
    repo.write("api/cm.yaml", &configmap("api", "1"));
    repo.commit("db broken");
    repo.ready().await;
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("db", &repo.url, "db", "c1", &["--auto-sync"]);
    cp.create_app("api", &repo.url, "api", "c1", &["--auto-sync", "--depends-on", "db"]);
    let message = eventually("api waits for db", WAIT, || async {
        let v = cp.app_json("api");
        let m = v["status"]["clusters"][0]["message"].as_str().unwrap_or_default().to_string();
        let db = cp.app_json("db");
        (db["status"]["health"] == "Degraded" && m.contains("waiting for db")).then_some(m)
    })
    .await;
    assert!(message.contains("Synced and Healthy"), "{message}");
    assert!(!has_configmap(&c1, "api").await, "api is not applied while db is Degraded");

    // Fixing db releases api.
    repo.write("db/deploy.yaml", &deployment("db", 1, "nginx:1.27"));
    let rev = repo.commit("db fixed");
    cp.wait_synced("db", &rev).await;
    eventually("api applied once db is healthy", WAIT, || async { has_configmap(&c1, "api").await.then_some(()) })
        .await;
    cp.wait_synced("api", &rev).await;

    // A cycle is refused, and so is a dependency on a missing Application.
    let o = cp.bosun(&["app", "create", "x", "--repo", &repo.url, "--cluster", "c1", "--depends-on", "nope"]);
    assert!(o.code != 0 && o.stderr.contains("does not exist"), "{}", o.stderr);
    let ca = std::fs::read_to_string(cp.data_dir.join("ca-bundle.pem")).unwrap();
    let channel = Channel::from_shared(format!("https://127.0.0.1:{}", cp.ports.admin))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", cp.admin_token()).parse().unwrap();
    let mut admin =
        pb::admin_service_client::AdminServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        });
    let mut db = admin.get_application(pb::GetApplicationRequest { name: "db".into() }).await.unwrap().into_inner();
    let mut spec = db.spec.take().unwrap();
    spec.depends_on = vec!["api".into()];
    let err = admin
        .update_application(pb::UpdateApplicationRequest { name: "db".into(), spec: Some(spec), generation: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("cycle: db → api → db"), "{}", err.message());
}

/// The seed chapter's layout, as users have it for Argo CD: a parent Application pointing at
/// `k8s/`, which holds three child Applications for `k8s/backend`, `k8s/frontend` and
/// `k8s/monitoring`, each automated with prune and self-heal.
fn argo_child(name: &str, repo: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: fake-news-detector\n  source:\n    repoURL: {repo}\n    targetRevision: HEAD\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: fake-news-app\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n    syncOptions:\n    - CreateNamespace=true\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_app_of_apps_creates_syncs_and_deletes_children() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    for (child, dir) in
        [("fake-news-backend", "backend"), ("fake-news-frontend", "frontend"), ("fake-news-monitoring", "monitoring")]
    {
        repo.write(&format!("k8s/{dir}-app.yaml"), &argo_child(child, &repo.url, &format!("k8s/{dir}")));
    }
    repo.write("k8s/backend/deployment.yaml", &deployment("backend", 2, "myrepo/ai-detector-backend:v1.0"));
    repo.write("k8s/frontend/deployment.yaml", &deployment("frontend", 1, "myrepo/frontend:v1.0"));
    repo.write("k8s/monitoring/prometheus.yaml", &configmap("prometheus", "scrape"));
    repo.write("extra/cm.yaml", &configmap("extra", "1"));
    let parent =
        argo_child("fake-news-detector", &repo.url, "k8s").replace("namespace: fake-news-app", "namespace: argocd");
    std::fs::write(root.join("parent.yaml"), &parent).unwrap();
    let rev = repo.commit("the seed layout");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;

    // Importing refuses silently dropping what it cannot honour: --strict fails on the project.
    let o =
        cp.bosun(&["app", "import", "-f", root.join("parent.yaml").to_str().unwrap(), "--cluster", "c1", "--strict"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not honoured: spec.project"), "{}", o.stderr);
    let o = cp.bosun(&["app", "import", "-f", root.join("parent.yaml").to_str().unwrap()]);
    assert_eq!(o.code, 6, "the in-cluster destination needs --cluster: {}", o.stderr);
    assert!(o.stderr.contains("skipped: fake-news-detector") && o.stderr.contains("--cluster"), "{}", o.stderr);
    // Several documents: one that cannot be imported (a Helm source) is skipped by name, the
    // others are imported; --strict imports nothing.
    let helm = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: charts}\nspec:\n  source: {repoURL: https://charts.example.com, chart: nginx, targetRevision: 1.0.0}\n  destination: {name: c1, namespace: web}\n";
    let plain = argo_child("example.guestbook", &repo.url, "extra")
        .replace("server: https://kubernetes.default.svc", "name: c1");
    std::fs::write(root.join("mixed.yaml"), format!("{helm}---\n{plain}")).unwrap();
    let mixed = root.join("mixed.yaml");
    let o = cp.bosun(&["app", "import", "-f", mixed.to_str().unwrap(), "--strict"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(cp.bosun(&["app", "get", "example.guestbook"]).code, 3, "--strict imported nothing");
    let o = cp.bosun(&["app", "import", "-f", mixed.to_str().unwrap()]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("skipped: charts: Helm sources are not supported"), "{}", o.stderr);
    assert_eq!(cp.app_json("example.guestbook")["name"], "example.guestbook", "a dotted name is an object name");
    cp.bosun_ok(&["app", "delete", "example.guestbook", "--yes"]);
    let o = cp.bosun(&["app", "import", "-f", root.join("parent.yaml").to_str().unwrap(), "--cluster", "c1"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: fake-news-detector: not honoured: spec.project"), "{}", o.stderr);

    let children = ["fake-news-backend", "fake-news-frontend", "fake-news-monitoring"];
    eventually("the parent declares three children", WAIT, || async {
        let v = cp.app_json("fake-news-detector");
        (v["status"]["children"] == serde_json::json!(children)).then_some(())
    })
    .await;
    for child in children {
        cp.wait_synced(child, &rev).await;
        let v = cp.app_json(child);
        assert_eq!(v["status"]["parent"], "fake-news-detector");
        assert_eq!(v["spec"]["destination"]["cluster"], "c1", "in-cluster means the parent's cluster");
        assert_eq!(v["spec"]["destination"]["namespace"], "fake-news-app");
        assert!(v["status"]["warnings"][0].as_str().unwrap().starts_with("spec.project"), "{v}");
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(c1.client().await, "fake-news-app");
    assert!(deployments.get_opt("backend").await.unwrap().is_some());
    let cms: Api<ConfigMap> = Api::namespaced(c1.client().await, "fake-news-app");
    assert!(cms.get_opt("prometheus").await.unwrap().is_some());

    // Removing a child manifest from Git deletes the child and, with prune, its objects.
    repo.remove("k8s/monitoring-app.yaml");
    repo.commit("drop monitoring");
    eventually("the monitoring child and its objects are gone", WAIT, || async {
        let gone = cp.bosun(&["app", "get", "fake-news-monitoring"]).code == 3;
        (gone && cms.get_opt("prometheus").await.ok()?.is_none()).then_some(())
    })
    .await;
    assert!(deployments.get_opt("backend").await.unwrap().is_some(), "the other children stay");

    // Deleting the parent deletes its children.
    cp.bosun_ok(&["app", "delete", "fake-news-detector", "--yes"]);
    assert_eq!(cp.bosun(&["app", "get", "fake-news-backend"]).code, 3);
}

/// A rollout in steps of 25% over four clusters ordered by a label halts when the first
/// cluster goes Degraded (the others keep the previous revision) and resumes, from the
/// start, when a fix is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_in_steps_halts_on_degraded_and_resumes_after_a_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 1, "nginx:1.27"));
    let rev1 = repo.commit("v1");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let mut clusters = Vec::new();
    let mut agents = Vec::new();
    // Names sort the other way round from the rollout order, to show the label decides.
    for (name, wave) in [("d1", "1"), ("c2", "2"), ("b3", "3"), ("a4", "4")] {
        let cluster = Cluster::start(root, name).await;
        let token = cp.add_cluster_labelled(name, &["fleet=yes", &format!("wave={wave}")]);
        agents.push(Agent::start(root, &cp, &cluster, &token));
        clusters.push(cluster);
    }
    cp.bosun_ok(&[
        "app",
        "create",
        "web",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--selector",
        "fleet=yes",
        "--auto-sync",
        "--rollout-step",
        "25%",
        "--rollout-order-by",
        "wave",
    ]);
    let revisions = |v: &Value| -> Vec<(String, String)> {
        v["status"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (c["cluster"].as_str().unwrap().to_string(), c["revision"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    };
    let all_at = |rev: String| {
        let cp = &cp;
        async move {
            eventually(&format!("all four clusters Synced and Healthy at {rev}"), WAIT, || async {
                let v = cp.app_json("web");
                let done = v["status"]["sync"] == "Synced"
                    && v["status"]["health"] == "Healthy"
                    && revisions(&v).iter().all(|(_, r)| *r == rev)
                    && revisions(&v).len() == 4;
                done.then_some(v)
            })
            .await
        }
    };
    let v = all_at(rev1.clone()).await;
    assert!(v["status"]["rollout"].as_str().unwrap().starts_with("complete: 4 of 4"), "{v}");

    // A broken image: the first step (d1, wave 1) goes Degraded and the rollout halts there.
    repo.write("k8s/web.yaml", &deployment("web", 1, "nginx:fail"));
    let rev2 = repo.commit("v2 broken");
    let halted = eventually("the rollout halts on d1", WAIT, || async {
        let v = cp.app_json("web");
        v["status"]["rollout"].as_str().unwrap().contains("halted: cluster d1 is Degraded").then_some(v)
    })
    .await;
    let by_cluster: std::collections::BTreeMap<String, String> = revisions(&halted).into_iter().collect();
    assert_eq!(by_cluster["d1"], rev2, "{halted}");
    for other in ["a4", "b3", "c2"] {
        assert_eq!(by_cluster[other], rev1, "{other} kept the previous revision: {halted}");
    }
    assert!(halted["status"]["rollout"].as_str().unwrap().contains("step 1/4"), "{halted}");

    // Resuming skips d1; the next step (c2) goes Degraded too and halts again; abort stops there.
    cp.bosun_ok(&["app", "rollout", "resume", "web"]);
    eventually("resumed past d1, halted on c2", WAIT, || async {
        let r = cp.app_json("web")["status"]["rollout"].as_str().unwrap().to_string();
        (r.contains("halted: cluster c2 is Degraded") && r.contains("skipped (offline or resumed past): d1"))
            .then_some(())
    })
    .await;
    let aborted = cp.app_json("web");
    let out = cp.bosun_ok(&["app", "rollout", "abort", "web", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["status"]["rollout"].as_str().unwrap().starts_with("aborted at 2 of 4"), "{v}");
    let by_cluster: std::collections::BTreeMap<String, String> = revisions(&aborted).into_iter().collect();
    assert_eq!((by_cluster["b3"].as_str(), by_cluster["a4"].as_str()), (rev1.as_str(), rev1.as_str()));

    // A fix in Git starts the rollout again and it completes.
    repo.write("k8s/web.yaml", &deployment("web", 1, "nginx:1.28"));
    let rev3 = repo.commit("v3 fixed");
    let v = all_at(rev3).await;
    assert!(v["status"]["rollout"].as_str().unwrap().starts_with("complete"), "{v}");
    drop((agents, clusters));
}

/// Per-cluster values: `{{cluster.labels.env}}` picks an overlay path per cluster, and
/// `{{cluster.name}}` in a manifest gives each cluster its own object; each distinct path is
/// rendered once however many clusters use it, and relabelling re-renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_cluster_values_in_paths_and_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("overlays/prod/cm.yaml", &configmap("settings", "prod-settings"));
    repo.write("overlays/staging/cm.yaml", &configmap("settings", "staging-settings"));
    repo.write(
        "hello/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  cluster: \"{{ cluster.name }}\"\n  region: \"{{cluster.labels.region}}\"\n",
    );
    repo.write(
        "named/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"{{cluster.labels.team}}\"\ndata:\n  owner: team\n",
    );
    repo.commit("overlays");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let mut clusters = std::collections::BTreeMap::new();
    let mut agents = Vec::new();
    for (name, env) in [("c1", "prod"), ("c2", "staging"), ("c3", "prod")] {
        let c = Cluster::start(root, name).await;
        let team = format!("team={name}-team");
        let token = cp.add_cluster_labelled(name, &["fleet=yes", &format!("env={env}"), "region=eu", &team]);
        agents.push(Agent::start(root, &cp, &c, &token));
        clusters.insert(name, c);
    }
    cp.bosun_ok(&[
        "app",
        "create",
        "settings",
        "--repo",
        &repo.url,
        "--path",
        "overlays/{{cluster.labels.env}}",
        "--selector",
        "fleet=yes",
        "--auto-sync",
        "--prune",
    ]);
    cp.bosun_ok(&[
        "app",
        "create",
        "hello",
        "--repo",
        &repo.url,
        "--path",
        "hello",
        "--selector",
        "fleet=yes",
        "--auto-sync",
    ]);
    for (name, env) in [("c1", "prod"), ("c2", "staging"), ("c3", "prod")] {
        let c = &clusters[name];
        eventually(&format!("{name} has the {env} settings and its own hello"), WAIT, || async {
            let s = configmap_data(c, "settings").await?;
            let h = configmap_data(c, "hello").await?;
            (s["value"] == format!("{env}-settings") && h["cluster"] == name && h["region"] == "eu").then_some(())
        })
        .await;
    }
    let digests = |app: &str| -> std::collections::BTreeSet<String> {
        cp.app_json(app)["status"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["bundleDigest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(digests("settings").len(), 2, "two distinct overlays");
    assert_eq!(digests("hello").len(), 3, "one variant per cluster name");
    let renders = || {
        let (_, metrics) = http("GET", cp.ports.metrics, "/metrics", &[], b"");
        metrics
            .lines()
            .find(|l| l.starts_with("bosun_renders_total{outcome=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(renders(), 3, "overlays/prod, overlays/staging and hello, each rendered once");

    // Relabelling re-renders: c2 becomes prod (from the render cache: no new render).
    cp.bosun_ok(&["cluster", "label", "c2", "env=prod"]);
    let c2 = &clusters["c2"];
    eventually("c2 switched to the prod overlay", WAIT, || async {
        (configmap_data(c2, "settings").await?["value"] == "prod-settings").then_some(())
    })
    .await;
    assert_eq!(renders(), 3, "the prod overlay was already rendered");
    // A cluster lacking a label the manifests use is reported on the Application.
    cp.bosun_ok(&["cluster", "label", "c3", "region-"]);
    eventually("the missing label is reported", WAIT, || async {
        let e = cp.app_json("hello")["status"]["error"].as_str().unwrap_or_default().to_string();
        (e.contains("cluster c3") && e.contains("no label \"region\"")).then_some(())
    })
    .await;

    // A label that names objects, set empty: an error on that Application and cluster (the
    // manifest never reaches the agent); the agent and the other Applications carry on.
    cp.bosun_ok(&["app", "create", "named", "--repo", &repo.url, "--path", "named", "--selector", "fleet=yes"]);
    cp.bosun_ok(&["app", "sync", "named", "--async"]);
    let c1 = &clusters["c1"];
    eventually("c1's team ConfigMap", WAIT, || async { configmap_data(c1, "c1-team").await.map(|_| ()) }).await;
    cp.bosun_ok(&["cluster", "label", "c1", "team="]);
    let error = eventually("the empty name reported", WAIT, || async {
        let e = cp.app_json("named")["status"]["error"].as_str().unwrap_or_default().to_string();
        e.contains("cluster c1").then_some(e)
    })
    .await;
    assert!(error.contains("ConfigMap") && error.contains("metadata.name"), "{error}");
    cp.bosun_ok(&["cluster", "label", "c1", "env=staging"]);
    eventually("c1's agent still at work: it follows the relabel", WAIT, || async {
        (configmap_data(c1, "settings").await?["value"] == "staging-settings").then_some(())
    })
    .await;
    drop(agents);
}
