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

fn app_clusters(cp: &ControlPlane, app: &str) -> Vec<String> {
    let v = cp.app_json(app);
    v["status"]["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_follow_labels_and_new_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/cm.yaml", &configmap("web", "1"));
    repo.commit("initial");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let join = |name: &str, labels: &[&str]| {
        let mut args = vec!["cluster", "add", name, "-o", "json"];
        for l in labels {
            args.extend(["--label", l]);
        }
        let v: Value = serde_json::from_str(&cp.bosun_ok(&args)).unwrap();
        let token = v["token"].as_str().unwrap().to_string();
        cp.plant(&token);
        token
    };
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
    cp.bosun_ok(&["app", "create", "db", "--repo", &repo.url, "--path", "db", "--cluster", "c1", "--auto-sync"]);
    cp.bosun_ok(&[
        "app",
        "create",
        "api",
        "--repo",
        &repo.url,
        "--path",
        "api",
        "--cluster",
        "c1",
        "--auto-sync",
        "--depends-on",
        "db",
    ]);
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
        .update_application(pb::UpdateApplicationRequest { name: "db".into(), spec: Some(spec) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("cycle: db → api → db"), "{}", err.message());
}
