//! End to end: a commit in Git reaches kube-sim clusters through the control plane and
//! agents over mTLS, and status comes back. Real processes, real sockets.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

async fn replicas(c: &Cluster, ns: &str, name: &str) -> Option<i32> {
    let api: Api<Deployment> = Api::namespaced(c.client().await, ns);
    api.get_opt(name).await.unwrap().and_then(|d| d.spec.replicas)
}

async fn has_cm(c: &Cluster, ns: &str, name: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, ns);
    api.get_opt(name).await.unwrap().is_some()
}

async fn foreign_cm(c: &Cluster, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(c.client().await, ns);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "not-ours", "labels": {"bosun.dev/app": "shop"}}, "data": {"x": "y"}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_reach_two_clusters_and_prune_follows_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 2, "nginx:1.27"));
    repo.write("k8s/settings.yaml", &configmap("settings", "v1"));
    let first = repo.commit("initial");
    repo.ready().await;

    let cp = ControlPlane::start(root).await;
    let east = Cluster::start(root, "east").await;
    let west = Cluster::start(root, "west").await;
    let _a1 = Agent::start(root, &cp, &east, &cp.add_cluster("east"));
    let _a2 = Agent::start(root, &cp, &west, &cp.add_cluster("west"));
    for (app, cluster, prune) in [("shop-east", "east", true), ("shop-west", "west", false)] {
        let mut args = vec![
            "app",
            "create",
            app,
            "--repo",
            &repo.url,
            "--path",
            "k8s",
            "--cluster",
            cluster,
            "--namespace",
            "shop",
            "--create-namespace",
            "--auto-sync",
        ];
        if prune {
            args.push("--prune");
        }
        cp.bosun_ok(&args);
    }
    cp.wait_synced("shop-east", &first).await;
    cp.wait_synced("shop-west", &first).await;
    assert_eq!(replicas(&east, "shop", "web").await, Some(2));
    assert_eq!(replicas(&west, "shop", "web").await, Some(2));
    // Objects Bosun did not create, even ones carrying our label, are never touched.
    foreign_cm(&east, "shop").await;
    foreign_cm(&west, "shop").await;

    // Both apps render the same (repo, commit, path): one bundle serves both clusters.
    let (e, w) = (cp.app_json("shop-east"), cp.app_json("shop-west"));
    assert_eq!(e["status"]["bundleDigest"], w["status"]["bundleDigest"]);

    // A new commit reaches both clusters (found by polling).
    repo.write("k8s/web.yaml", &deployment("web", 3, "nginx:1.27"));
    let second = repo.commit("scale to 3");
    cp.wait_synced("shop-east", &second).await;
    cp.wait_synced("shop-west", &second).await;
    assert_eq!(replicas(&east, "shop", "web").await, Some(3));
    assert_eq!(replicas(&west, "shop", "web").await, Some(3));

    // A deleted file is pruned where prune is on, and only there.
    repo.remove("k8s/settings.yaml");
    let third = repo.commit("drop settings");
    cp.wait_synced("shop-east", &third).await;
    eventually("settings pruned on east", WAIT, || async { (!has_cm(&east, "shop", "settings").await).then_some(()) })
        .await;
    eventually("west reports the leftover", WAIT, || async {
        let v = cp.app_json("shop-west");
        let c = &v["status"]["clusters"][0];
        (c["revision"] == third.as_str() && v["status"]["sync"] == "OutOfSync").then_some(c["resources"].clone())
    })
    .await;
    assert!(has_cm(&west, "shop", "settings").await, "prune off keeps the object");
    assert!(
        has_cm(&east, "shop", "not-ours").await && has_cm(&west, "shop", "not-ours").await,
        "foreign objects untouched"
    );

    // History: one entry per completed sync, newest first, with its revision.
    let history: serde_json::Value =
        serde_json::from_str(&cp.bosun_ok(&["app", "history", "shop-east", "-o", "json"])).unwrap();
    let revisions: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["revision"].as_str().unwrap()).collect();
    assert_eq!(revisions.first(), Some(&third.as_str()), "{history}");
    assert!(revisions.contains(&second.as_str()) && revisions.contains(&first.as_str()), "{history}");
    assert_eq!(history[0]["initiatedBy"], "automated");

    // The CLI's table and wait work as a person uses them.
    let table = cp.bosun_ok(&["app", "list"]);
    assert!(table.lines().next().unwrap().starts_with("NAME") && table.contains("shop-east"), "{table}");
    let wait = cp.bosun(&["app", "wait", "shop-east", "--synced", "--healthy", "--timeout", "10s"]);
    assert_eq!(wait.code, 0, "{}", wait.stderr);
    assert_eq!(cp.bosun(&["app", "get", "nope"]).code, 3, "not found exits 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart_and_agent_autonomy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 2, "nginx:1.27"));
    let rev = repo.commit("initial");
    let (mut cp, c1, mut agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync", "--prune", "--self-heal"]);
    cp.wait_synced("web", &rev).await;

    // The control plane dies: the cluster stays as it was, and self-heal still holds.
    cp.kill();
    let api: Api<Deployment> = Api::namespaced(c1.client().await, "default");
    api.patch("web", &PatchParams::apply("someone").force(), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 7}}))).await.unwrap();
    eventually("drift reverted without the control plane", WAIT, || async {
        (replicas(&c1, "default", "web").await == Some(2)).then_some(())
    })
    .await;

    // The agent restarts while the control plane is still down: it enforces from disk.
    agent.kill();
    api.patch("web", &PatchParams::apply("someone").force(), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 9}}))).await.unwrap();
    agent.restart();
    eventually("drift reverted by a restarted agent", WAIT, || async {
        (replicas(&c1, "default", "web").await == Some(2)).then_some(())
    })
    .await;

    // The control plane comes back: the agent reconnects by itself, nothing was lost, and
    // status matches the cluster.
    cp.restart().await;
    eventually("agent reconnected, status re-reported", WAIT, || async {
        let v = cp.app_json("web");
        let c = &v["status"]["clusters"][0];
        (c["connected"] == true
            && c["revision"] == rev.as_str()
            && v["status"]["sync"] == "Synced"
            && v["status"]["health"] == "Healthy")
            .then_some(())
    })
    .await;
    let clusters = cp.bosun_ok(&["cluster", "list", "-o", "json"]);
    assert!(clusters.contains("\"connected\": true"), "{clusters}");
    // A commit after the restart flows through.
    repo.write("k8s/web.yaml", &deployment("web", 4, "nginx:1.27"));
    let next = repo.commit("scale");
    cp.wait_synced("web", &next).await;
    assert_eq!(replicas(&c1, "default", "web").await, Some(4));
    assert!(agent.logs().contains("starting from its last desired state"));

    // The agent goes away (killed): its cluster is shown disconnected as soon as its
    // connection closes, not once its presence goes stale (45 s).
    agent.kill();
    eventually("cluster shown disconnected", std::time::Duration::from_secs(10), || async {
        let v = cp.app_json("web");
        (v["status"]["clusters"][0]["connected"] == false).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_given_several_control_plane_addresses_moves_past_one_that_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    let c1 = Cluster::start(root, "c1").await;
    // The first address has no control plane behind it (a replica that is down).
    let down = format!("https://127.0.0.1:{}", free_port());
    let up = format!("https://127.0.0.1:{}", cp.ports.agent);
    let agent = Agent::start_with_control_planes(root, &cp, &c1, &cp.add_cluster("c1"), &[down.clone(), up.clone()]);
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;
    assert!(has_cm(&c1, "default", "web").await);
    let logs = agent.logs();
    assert!(logs.contains(&format!("next={up}")), "the failed address was left for the next one: {logs}");
}

/// The agent's own port: alive at once, ready once connected and its watches listed, still
/// ready without the control plane (it serves what it holds), and metrics of what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reports_health_readiness_and_metrics_on_its_own_port() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let mut cp = ControlPlane::start(root).await;
    let c1 = Cluster::start(root, "c1").await;
    let port = free_port();
    let flags = ["--http-addr".to_string(), format!("127.0.0.1:{port}")];
    let _agent = Agent::start_with_flags(root, &cp, &c1, &cp.add_cluster("c1"), &flags);
    let get = |path: &'static str| async move {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| http("GET", port, path, &[], b""))
    };
    eventually("/healthz answers", WAIT, || async { get("/healthz").await.filter(|(c, _)| *c == 200).map(|_| ()) })
        .await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;
    eventually("/readyz is 200", WAIT, || async { get("/readyz").await.filter(|(c, _)| *c == 200).map(|_| ()) }).await;
    let metrics = eventually("metrics of the sync", WAIT, || async {
        let (_, m) = get("/metrics").await?;
        m.contains("bosun_agent_applications{sync=\"Synced\",health=\"Healthy\"} 1").then_some(m)
    })
    .await;
    for want in [
        "bosun_agent_actions_total{action=\"apply\",reason=\"sync\",kind=\"ConfigMap\",outcome=\"ok\"} 1",
        "bosun_agent_connected 1",
        "bosun_agent_passes_total{result=\"acted\"}",
        "bosun_agent_pass_duration_seconds_count",
        "bosun_agent_bundles_cached 1",
        "bosun_agent_build_info{version=",
    ] {
        assert!(metrics.contains(want), "{want} missing from:\n{metrics}");
    }
    // Without the control plane the agent still enforces what it holds: ready, not connected.
    cp.kill();
    eventually("connected 0", WAIT, || async {
        get("/metrics").await.filter(|(_, m)| m.contains("bosun_agent_connected 0")).map(|_| ())
    })
    .await;
    let (code, body) = get("/readyz").await.unwrap();
    assert_eq!(code, 200, "{body}");
}

/// The verbs Argo CD users reach for behave as there: an unknown cluster is refused unless
/// asked for, `--upsert` updates, delete asks first, and completion scripts print.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_behave_as_argo_cd_users_expect() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, _) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    let create = |name: &str, cluster: &str, extra: &[&str]| {
        let mut a = vec!["app", "create", name, "--repo", &repo.url, "--path", "k8s", "--cluster", cluster];
        a.extend_from_slice(extra);
        cp.bosun(&a)
    };
    let typo = create("web", "prod-eu", &[]);
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("not registered") && typo.stderr.contains("--allow-unknown-cluster"),
        "{}",
        typo.stderr
    );
    assert_eq!(cp.bosun(&["app", "get", "web"]).code, 3, "nothing was created");
    assert_eq!(create("web", "prod-eu", &["--allow-unknown-cluster"]).code, 0);
    assert_eq!(create("web", "prod-eu", &["--allow-unknown-cluster"]).code, 1, "exists already");
    let upsert = create("web", "prod-eu", &["--allow-unknown-cluster", "--upsert", "--namespace", "shop"]);
    assert_eq!(upsert.code, 0, "{}", upsert.stderr);
    assert_eq!(cp.app_json("web")["spec"]["destination"]["namespace"], "shop", "updated in place");

    // Without a terminal to ask on, delete refuses unless --yes.
    let asked = cp.bosun(&["app", "delete", "web"]);
    assert_eq!(asked.code, 2, "{}", asked.stderr);
    assert!(asked.stderr.contains("--yes"), "{}", asked.stderr);
    assert_eq!(cp.app_json("web")["name"], "web", "not deleted");
    cp.bosun_ok(&["app", "delete", "web", "--yes"]);
    assert_eq!(cp.bosun(&["app", "get", "web"]).code, 3);

    for shell in ["bash", "zsh", "fish"] {
        let script = cp.bosun_ok(&["completion", shell]);
        assert!(script.contains("bosun") && script.contains("rollback"), "{shell}: {script}");
    }
}

/// `app set`, `unset`, `patch` and `edit` change what they are asked to and nothing else;
/// an edit made while someone else changed the Application is refused, not written over theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_unset_patch_and_edit_change_an_application_without_losing_a_concurrent_change() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, _) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--allow-unknown-cluster"]);
    let app = || cp.app_json("web");
    assert_eq!(app()["generation"], 1);

    cp.bosun_ok(&[
        "app",
        "set",
        "web",
        "--revision",
        "v2",
        "--sync-policy",
        "automated",
        "--auto-prune",
        "--sync-option",
        "PruneLast=true",
    ]);
    let a = app();
    assert_eq!(a["spec"]["source"]["targetRevision"], "v2");
    assert_eq!(
        (a["spec"]["syncPolicy"]["automated"].as_bool(), a["spec"]["syncPolicy"]["prune"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(a["spec"]["syncPolicy"]["selfHeal"], false, "untouched");
    assert_eq!(a["spec"]["source"]["path"], "k8s", "untouched");
    assert_eq!(a["generation"], 2);
    cp.bosun_ok(&["app", "set", "web", "--revision", "v2"]);
    assert_eq!(app()["generation"], 2, "setting what is already there changes nothing");
    cp.bosun_ok(&["app", "set", "web", "--auto-prune=false"]);
    assert_eq!(app()["spec"]["syncPolicy"]["prune"], false);

    // Editors are shell scripts that get the file to edit as $1.
    let editor = |name: &str, body: &str| {
        let path = root.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    };

    // The manifest `edit` shows carries the sync option; unset takes it away.
    let show = editor("show.sh", &format!("cp \"$1\" {}", root.join("shown.yaml").display()));
    let shown = || {
        let o = cp.bosun_env(&["app", "edit", "web"], &[("EDITOR", show.to_str().unwrap())]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stderr.contains("no changes made"), "{}", o.stderr);
        std::fs::read_to_string(root.join("shown.yaml")).unwrap()
    };
    let m = shown();
    assert!(m.contains("apiVersion: bosun.dev/v1") && m.contains("PruneLast=true"), "{m}");
    cp.bosun_ok(&["app", "unset", "web", "--sync-option", "PruneLast"]);
    assert!(!shown().contains("PruneLast"), "unset");

    cp.bosun_ok(&["app", "patch", "web", "--patch", r#"{"spec":{"destination":{"namespace":"shop"}}}"#]);
    assert_eq!(app()["spec"]["destination"]["namespace"], "shop");
    cp.bosun_ok(&[
        "app",
        "patch",
        "web",
        "--type",
        "json",
        "--patch",
        r#"[{"op":"replace","path":"/spec/source/path","value":"deploy"}]"#,
    ]);
    assert_eq!(app()["spec"]["source"]["path"], "deploy");
    let unknown = cp.bosun(&["app", "patch", "web", "--patch", r#"{"spec":{"syncWindows":[]}}"#]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("spec.syncWindows"),
        "a field that would be dropped is refused: {}",
        unknown.stderr
    );
    let renamed = cp.bosun(&["app", "patch", "web", "--patch", r#"{"metadata":{"name":"other"}}"#]);
    assert_eq!(renamed.code, 2, "{}", renamed.stderr);

    // An edit saved.
    let sed = editor("sed.sh", "sed -i 's/namespace: shop/namespace: edited/' \"$1\"");
    let o = cp.bosun_env(&["app", "edit", "web"], &[("VISUAL", sed.to_str().unwrap())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(app()["spec"]["destination"]["namespace"], "edited");

    // Someone else changes the revision while the editor is open: the edit is refused and
    // kept, their change stays.
    let racing = editor(
        "race.sh",
        &format!(
            "{} app set web --revision v3 >/dev/null || exit 9\nsed -i 's/namespace: edited/namespace: lost/' \"$1\"",
            env!("CARGO_BIN_EXE_e2e-bosun")
        ),
    );
    let o = cp.bosun_env(&["app", "edit", "web"], &[("EDITOR", racing.to_str().unwrap())]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("changed by someone else") && o.stderr.contains("kept in"), "{}", o.stderr);
    let a = app();
    assert_eq!(a["spec"]["source"]["targetRevision"], "v3", "their change stays");
    assert_eq!(a["spec"]["destination"]["namespace"], "edited", "the stale edit is not written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_manifest_breaks_only_its_application() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("good/web.yaml", &deployment("web", 1, "nginx:1.27"));
    repo.write("bad/web.yaml", &deployment("api", 1, "nginx:1.27"));
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("good", &repo.url, "good", "c1", &["--auto-sync"]);
    cp.create_app("bad", &repo.url, "bad", "c1", &["--auto-sync"]);
    cp.wait_synced("good", &rev).await;
    cp.wait_synced("bad", &rev).await;

    repo.write("bad/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api\nspec: [broken\n");
    repo.write("good/extra.yaml", &configmap("extra", "1"));
    let next = repo.commit("break one app");
    let error = eventually("error on the broken app", WAIT, || async {
        let v = cp.app_json("bad");
        v["status"]["error"].as_str().filter(|e| !e.is_empty()).map(str::to_string)
    })
    .await;
    assert!(error.contains("bad/web.yaml") && error.contains("invalid YAML"), "{error}");
    cp.wait_synced("good", &next).await;
    // The broken app keeps its last good revision on the cluster.
    let bad = cp.app_json("bad");
    assert_eq!(bad["status"]["revision"], rev.as_str());
    assert_eq!(replicas(&c1, "default", "api").await, Some(1));
    let table = cp.bosun_ok(&["app", "get", "bad"]);
    assert!(table.contains("Error:") && table.contains("invalid YAML"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_api_refuses_unauthenticated_and_foreign_requests() {
    use bosun_proto::v1 as pb;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let _ = rustls::crypto::ring::default_provider().install_default();

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let TwoClusters { repo: _repo, rev: _rev, cp, clusters: [_ca, _cb], agents: [agent_a, _agent_b] } =
        two_clusters_two_apps(root, ["ca", "cb"]).await;
    let digest_b = cp.app_json("app-b")["status"]["bundleDigest"].as_str().unwrap().to_string();
    let ca_pem = std::fs::read_to_string(cp.ca()).unwrap();
    let url = format!("https://127.0.0.1:{}", cp.ports.agent);

    // No client certificate: the TLS handshake or the first call fails.
    let no_cert = async {
        let ch = Channel::from_shared(url.clone())
            .unwrap()
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem)))
            .unwrap()
            .connect()
            .await?;
        pb::agent_service_client::AgentServiceClient::new(ch)
            .get_bundle(pb::GetBundleRequest { digest: digest_b.clone() })
            .await
            .map(|_| ())
            .map_err(|e| e.into())
    };
    let r: Result<(), Box<dyn std::error::Error>> = no_cert.await;
    assert!(r.is_err(), "a connection without a client certificate is refused");

    // Cluster A's certificate cannot fetch cluster B's bundle.
    let (cert, key) = agent_identity(&agent_a.state_dir);
    let ch = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca_pem))
                .identity(Identity::from_pem(&cert, &key)),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::agent_service_client::AgentServiceClient::new(ch);
    let err = client.get_bundle(pb::GetBundleRequest { digest: digest_b.clone() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let own = cp.app_json("app-a")["status"]["bundleDigest"].as_str().unwrap().to_string();
    let served = client.get_bundle(pb::GetBundleRequest { digest: own.clone() }).await;
    let served = served.expect("its own bundle is served").into_inner().objects_json;

    // The assignment stream carries the bundles the agent does not hold, and only its own.
    let watch = |held: Vec<String>| {
        let mut client = client.clone();
        async move {
            let req = pb::WatchAssignmentsRequest { held_bundles: held, ..Default::default() };
            let mut stream = client.watch_assignments(req).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("a first snapshot")
        }
    };
    let snap = watch(Vec::new()).await;
    assert_eq!(snap.assignments.iter().map(|a| a.bundle_digest.as_str()).collect::<Vec<_>>(), [own.as_str()]);
    assert_eq!(snap.bundles.len(), 1, "the bundle travels with the snapshot");
    assert_eq!((&snap.bundles[0].digest, &snap.bundles[0].objects_json), (&own, &served));
    assert!(snap.bundles.iter().all(|b| b.digest != digest_b), "never another cluster's bundle");
    let snap = watch(vec![own.clone()]).await;
    assert_eq!(snap.assignments.len(), 1);
    assert!(snap.bundles.is_empty(), "a bundle the agent says it holds is not sent again");

    // A join token is single use.
    let token = cp.add_cluster("cc");
    let (_key, csr) = bosun_agent::identity::new_csr().unwrap();
    let join = Channel::from_shared(format!("https://127.0.0.1:{}", cp.ports.join))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut j = pb::join_service_client::JoinServiceClient::new(join);
    j.join(pb::JoinRequest {
        token: token.clone(),
        csr_pem: csr.clone(),
        agent_version: "test".into(),
        cluster: String::new(),
    })
    .await
    .unwrap();
    let again = j
        .join(pb::JoinRequest { token, csr_pem: csr, agent_version: "test".into(), cluster: String::new() })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unauthenticated);

    // A deleted cluster's certificate is refused from then on.
    cp.bosun_ok(&["cluster", "delete", "ca"]);
    let err = client.get_bundle(pb::GetBundleRequest { digest: digest_b }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_services_and_calls_the_admin_api() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cp = ControlPlane::start(root).await;
    cp.add_cluster("edge-1");
    let addr = format!("127.0.0.1:{}", cp.ports.admin);
    let ca = cp.ca().display().to_string();
    let grpcurl = |args: &[&str]| {
        let out =
            std::process::Command::new("grpcurl").args(args).output().expect("grpcurl on PATH (.ci/run installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, list) = grpcurl(&["-cacert", &ca, &addr, "list"]);
    assert!(ok, "{list}");
    for svc in ["bosun.v1.AdminService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"] {
        assert!(list.contains(svc), "{svc} missing from: {list}");
    }
    assert!(!list.contains("AgentService") && !list.contains("JoinService"), "a listener lists what it serves: {list}");
    let (ok, health) = grpcurl(&["-cacert", &ca, &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");
    let auth = format!("authorization: Bearer {}", cp.admin_token());
    let (ok, clusters) = grpcurl(&["-cacert", &ca, "-H", &auth, &addr, "bosun.v1.AdminService/ListClusters"]);
    assert!(ok && clusters.contains("edge-1"), "{clusters}");
    let (ok, denied) = grpcurl(&["-cacert", &ca, &addr, "bosun.v1.AdminService/ListClusters"]);
    assert!(!ok && denied.contains("Unauthenticated"), "the admin API requires the token: {denied}");
    // The agent and join listeners serve reflection and health too.
    let (ok, join) = grpcurl(&["-cacert", &ca, &format!("127.0.0.1:{}", cp.ports.join), "list"]);
    assert!(ok && join.contains("bosun.v1.JoinService") && !join.contains("AdminService"), "{join}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_applications_sync_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 1, "nginx:1.27"));
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &[]);
    // Without automated sync the agent reports what is missing and applies nothing.
    eventually("OutOfSync and Missing reported", WAIT, || async {
        let v = cp.app_json("web");
        (v["status"]["sync"] == "OutOfSync" && v["status"]["health"] == "Missing").then_some(())
    })
    .await;
    assert_eq!(replicas(&c1, "default", "web").await, None);
    // `-o wide` adds the source and the policy, `-o name` prints names only.
    let wide = cp.bosun_ok(&["app", "list", "-o", "wide"]);
    assert!(wide.contains("SYNC POLICY") && wide.contains("Manual") && wide.contains(&repo.url), "{wide}");
    assert!(!cp.bosun_ok(&["app", "list"]).contains(&repo.url), "the narrow table has no REPO column");
    assert_eq!(cp.bosun_ok(&["app", "list", "-o", "name"]), "web\n");
    assert_eq!(cp.bosun_ok(&["cluster", "list", "-o", "name"]), "c1\n");
    assert!(cp.bosun_ok(&["cluster", "list", "-o", "wide"]).contains("CERTIFICATE"));
    // Watches started now print the current state, then the change the sync makes.
    let list_watch = cp.bosun_running(&["app", "list", "--watch"]);
    let get_watch = cp.bosun_running(&["app", "get", "web", "-w", "-o", "json"]);
    eventually("the watch prints the table", WAIT, || async {
        let out = list_watch.output();
        (out.starts_with("NAME") && out.contains("OutOfSync")).then_some(())
    })
    .await;
    let timeout = cp.bosun(&["app", "wait", "web", "--synced", "--timeout", "1s"]);
    assert_eq!(timeout.code, 4, "wait times out with exit code 4: {}", timeout.stderr);

    // `app sync` waits until the cluster has synced (as `argocd app sync` does).
    let synced = cp.bosun_ok(&["app", "sync", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&synced).unwrap();
    assert_eq!(v["status"]["clusters"][0]["observedSyncRequest"], 1, "{v}");
    assert_eq!(v["status"]["clusters"][0]["sync"], "Synced", "{v}");
    assert_eq!(replicas(&c1, "default", "web").await, Some(1), "applied when the command returned");
    cp.wait_synced("web", &rev).await;
    // The list's header is printed once, then the row that changed; the single object is
    // printed again whole (one `generation` per printed Application).
    eventually("the watches print the change", WAIT, || async {
        let rows = list_watch.output();
        let synced_row =
            rows.lines().skip(1).any(|l| l.starts_with("web") && l.contains("Synced") && !l.contains("OutOfSync"));
        let objects = get_watch.output();
        (synced_row && rows.matches("NAME").count() == 1 && objects.matches("\"generation\"").count() >= 2)
            .then_some(())
    })
    .await;
    let history: serde_json::Value =
        serde_json::from_str(&cp.bosun_ok(&["app", "history", "web", "-o", "json"])).unwrap();
    assert_eq!(history[0]["initiatedBy"], "sync request 1", "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_heal_drift_without_waiting_for_a_resync() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("healed/web.yaml", &deployment("web", 2, "nginx:1.27"));
    repo.write("healed/settings.yaml", &configmap("settings", "v1"));
    repo.write("watched/api.yaml", &deployment("api", 1, "nginx:1.27"));
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "10m").await;
    // A resync far longer than the deadlines below: healing must come from watch events.
    cp.create_app("healed", &repo.url, "healed", "c1", &["--auto-sync", "--self-heal"]);
    cp.create_app("watched", &repo.url, "watched", "c1", &["--auto-sync"]);
    cp.wait_synced("healed", &rev).await;
    cp.wait_synced("watched", &rev).await;
    let deadline = std::time::Duration::from_secs(10);

    let deployments: Api<Deployment> = Api::namespaced(c1.client().await, "default");
    let scale = |n: i32| json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": n}});
    let mut edit = scale(9);
    edit["metadata"] = json!({"name": "web"});
    deployments.patch("web", &PatchParams::apply("kubectl-edit").force(), &Patch::Apply(&edit)).await.unwrap();
    eventually("hand edit reverted", deadline, || async {
        (replicas(&c1, "default", "web").await == Some(2)).then_some(())
    })
    .await;

    let cms: Api<ConfigMap> = Api::namespaced(c1.client().await, "default");
    cms.delete("settings", &Default::default()).await.unwrap();
    eventually("deleted object recreated", deadline, || async {
        has_cm(&c1, "default", "settings").await.then_some(())
    })
    .await;

    // Without selfHeal the drift stays, and the Application says what drifted.
    let mut edit = scale(5);
    edit["metadata"] = json!({"name": "api"});
    deployments.patch("api", &PatchParams::apply("kubectl-edit").force(), &Patch::Apply(&edit)).await.unwrap();
    let message = eventually("drift reported", deadline, || async {
        let v = cp.app_json("watched");
        let r = v["status"]["clusters"][0]["resources"].as_array()?.iter().find(|r| r["name"] == "api")?.clone();
        (v["status"]["sync"] == "OutOfSync").then(|| r["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(message.contains(".spec.replicas"), "{message}");
    assert_eq!(replicas(&c1, "default", "api").await, Some(5), "no self-heal, no revert");
    // `bosun app diff` shows the drift as the agent saw it (the control plane never reads the cluster).
    let out = cp.bosun(&["app", "diff", "watched", "-o", "json"]);
    assert_eq!(out.code, 1, "exit code 1: something differs");
    let diff: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(diff["modified"], true);
    assert_eq!(diff["objects"][0]["diff"], ".spec.replicas: 5 → 1\n", "{diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_waves_wait_for_the_previous_wave_to_be_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    // Wave 0: a database that never becomes ready; wave 1: the API that needs it.
    let db = deployment("db", 1, "postgres:fail")
        .replace("  name: db\n", "  name: db\n  annotations: {argocd.argoproj.io/sync-wave: \"0\"}\n");
    let api = deployment("api", 1, "nginx:1.27")
        .replace("  name: api\n", "  name: api\n  annotations: {argocd.argoproj.io/sync-wave: \"1\"}\n");
    repo.write("k8s/db.yaml", &db);
    repo.write("k8s/api.yaml", &api);
    repo.commit("waves");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("shop", &repo.url, "k8s", "c1", &["--auto-sync"]);
    // Wave 0 is waited for while it progresses; once it is Degraded the sync attempt fails,
    // as Argo CD's does (and is retried by the default policy), and wave 1 is not applied.
    eventually("wave 1 held back", WAIT, || async {
        let v = cp.app_json("shop");
        let m = v["status"]["clusters"][0]["message"].as_str().unwrap_or_default().to_string();
        (m.contains("wave 0") && m.contains("waiting for Deployment.apps/default/db to be healthy")).then_some(m)
    })
    .await;
    let message = eventually("the sync failed on wave 0", WAIT, || async {
        let v = cp.app_json("shop");
        let m = v["status"]["clusters"][0]["message"].as_str().unwrap_or_default().to_string();
        (v["status"]["health"] == "Degraded" && m.contains("failed (")).then_some(m)
    })
    .await;
    assert!(message.contains("Deployment.apps/default/db is Degraded"), "{message}");
    assert_eq!(replicas(&c1, "default", "db").await, Some(1));
    assert_eq!(replicas(&c1, "default", "api").await, None, "wave 1 waits for wave 0");

    // Fixing the database in Git lets the sync continue to wave 1.
    repo.write("k8s/db.yaml", &db.replace("postgres:fail", "postgres:16"));
    let fixed = repo.commit("fix db image");
    cp.wait_synced("shop", &fixed).await;
    assert_eq!(replicas(&c1, "default", "api").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_an_earlier_revision_and_pauses_automation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 1, "nginx:1.26"));
    let v1 = repo.commit("v1");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &v1).await;
    repo.write("k8s/web.yaml", &deployment("web", 3, "nginx:1.27"));
    let v2 = repo.commit("v2");
    cp.wait_synced("web", &v2).await;

    let history: serde_json::Value =
        serde_json::from_str(&cp.bosun_ok(&["app", "history", "web", "-o", "json"])).unwrap();
    let id = history.as_array().unwrap().iter().find(|e| e["revision"] == v1.as_str()).expect("v1 in history")["id"]
        .to_string();
    cp.bosun_ok(&["app", "rollback", "web", &id]);
    cp.wait_synced("web", &v1).await;
    assert_eq!(replicas(&c1, "default", "web").await, Some(1));
    let v = cp.app_json("web");
    assert_eq!(v["status"]["rollbackRevision"], v1.as_str());

    // While rolled back, new commits are tracked but not deployed.
    repo.write("k8s/web.yaml", &deployment("web", 5, "nginx:1.28"));
    let v3 = repo.commit("v3");
    eventually("v3 seen by the control plane", WAIT, || async {
        (cp.app_json("web")["status"]["revision"] == v3.as_str()).then_some(())
    })
    .await;
    assert_eq!(cp.app_json("web")["status"]["clusters"][0]["revision"], v1.as_str());
    assert_eq!(replicas(&c1, "default", "web").await, Some(1));
    assert_eq!(cp.bosun(&["app", "rollback", "web", "999"]).code, 3, "an unknown history entry is not found");

    // A sync request returns to the latest revision.
    cp.bosun_ok(&["app", "sync", "web"]);
    cp.wait_synced("web", &v3).await;
    assert_eq!(replicas(&c1, "default", "web").await, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_differences_are_neither_drift_nor_healed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/web.yaml", &deployment("web", 2, "nginx:1.27"));
    repo.write("k8s/api.yaml", &deployment("api", 2, "nginx:1.27"));
    let rev = repo.commit("initial");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    // An autoscaler owns web's replicas (by pointer) and anything "hpa-controller" writes on api.
    cp.create_app(
        "shop",
        &repo.url,
        "k8s",
        "c1",
        &[
            "--auto-sync",
            "--self-heal",
            "--ignore-difference",
            "Deployment.apps/web=/spec/replicas",
            "--ignore-manager",
            "Deployment.apps/api=hpa-controller",
        ],
    );
    cp.wait_synced("shop", &rev).await;
    let api: Api<Deployment> = Api::namespaced(c1.client().await, "default");
    for (name, manager) in [("web", "someone"), ("api", "hpa-controller")] {
        let patch =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {"replicas": 6}});
        api.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(&patch)).await.unwrap();
    }
    // A change the rules do not cover is still healed, which proves the agent looked.
    let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "labels": {"tier": "x"}}, "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:edited"}]}}}});
    api.patch("api", &PatchParams::apply("intruder").force(), &Patch::Apply(&patch)).await.unwrap();
    eventually("uncovered drift healed", WAIT, || async {
        let d = api.get("api").await.unwrap();
        (d.spec.template.spec.unwrap().containers[0].image.as_deref() == Some("nginx:1.27")).then_some(())
    })
    .await;
    assert_eq!(replicas(&c1, "default", "web").await, Some(6), "ignored by pointer: not healed");
    assert_eq!(replicas(&c1, "default", "api").await, Some(6), "ignored by manager: not healed");
    let v = cp.app_json("shop");
    assert_eq!(v["status"]["sync"], "Synced", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_object_sync_options() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let annotated = |cm: String, name: &str, opts: &str| {
        cm.replacen(
            &format!("  name: {name}\n"),
            &format!("  name: {name}\n  annotations: {{argocd.argoproj.io/sync-options: \"{opts}\"}}\n"),
            1,
        )
    };
    repo.write("k8s/keep.yaml", &annotated(configmap("keep", "1"), "keep", "Prune=false"));
    repo.write("k8s/stay.yaml", &annotated(configmap("stay", "1"), "stay", "Delete=false"));
    repo.write("k8s/replaced.yaml", &annotated(configmap("replaced", "1"), "replaced", "Replace=true"));
    let forced = annotated(deployment("forced", 1, "nginx:1.27"), "forced", "Force=true");
    repo.write("k8s/forced.yaml", &forced);
    let rev = repo.commit("options");
    let (cp, c1, _agent) = one_cluster(root, &repo, "2s").await;
    cp.create_app("shop", &repo.url, "k8s", "c1", &["--auto-sync", "--prune"]);
    cp.wait_synced("shop", &rev).await;

    // Prune=false survives removal from Git; Replace=true updates with PUT; Force=true recreates
    // a Deployment whose immutable selector changed.
    let cms: Api<ConfigMap> = Api::namespaced(c1.client().await, "default");
    let extraneous = json!({"metadata": {"annotations": {"argocd.argoproj.io/compare-options": "IgnoreExtraneous"}}});
    cms.patch("keep", &PatchParams::default(), &Patch::Merge(&extraneous)).await.unwrap();
    repo.remove("k8s/keep.yaml");
    repo.write("k8s/replaced.yaml", &annotated(configmap("replaced", "2"), "replaced", "Replace=true"));
    repo.write("k8s/forced.yaml", &forced.replace("{app: forced}", "{app: forced-v2}"));
    let next = repo.commit("change");
    cp.wait_synced("shop", &next).await;
    assert!(has_cm(&c1, "default", "keep").await, "Prune=false");
    // The leftover is marked IgnoreExtraneous on the cluster, so the Application is Synced.
    assert_eq!(cp.app_json("shop")["status"]["sync"], "Synced");
    let replaced = cms.get("replaced").await.unwrap();
    assert_eq!(replaced.data.unwrap()["value"], "2");
    let ops: Vec<String> =
        replaced.metadata.managed_fields.unwrap().iter().filter_map(|m| m.operation.clone()).collect();
    assert!(ops.contains(&"Update".to_string()), "Replace=true writes with PUT: {ops:?}");
    let deployments: Api<Deployment> = Api::namespaced(c1.client().await, "default");
    let d = deployments.get("forced").await.unwrap();
    assert_eq!(d.spec.selector.match_labels.unwrap()["app"], "forced-v2", "Force=true recreated it");

    // Deleting the Application deletes what it created, except Delete=false.
    cp.bosun_ok(&["app", "delete", "shop", "--yes"]);
    eventually("cascade delete", WAIT, || async { (!has_cm(&c1, "default", "replaced").await).then_some(()) }).await;
    assert!(has_cm(&c1, "default", "stay").await, "Delete=false");
    assert!(deployments.get_opt("forced").await.unwrap().is_none());
}

/// As `argocd app delete`: deleting an Application deletes its objects (prune off or on);
/// `--cascade=false` leaves them in place — also when the agent was away at the time, since
/// the notice waits for it with the assignments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascades_by_default_and_orphans_with_cascade_false_even_for_an_agent_away() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Prune off: the deletion still takes the ConfigMap with it.
    let OneApp { repo, cp, c1, mut agent, .. } = one_app(root, &["--auto-sync"]).await;
    assert!(has_cm(&c1, "default", "web").await);
    cp.bosun_ok(&["app", "delete", "web", "--yes"]);
    eventually("the objects of a deleted Application go", WAIT, || async {
        (!has_cm(&c1, "default", "web").await).then_some(())
    })
    .await;

    // Prune on, deleted with --cascade=false while its agent is down: the ConfigMap stays,
    // and the agent forgets the Application.
    cp.create_app("kept", &repo.url, "k8s", "c1", &["--auto-sync", "--prune", "--self-heal"]);
    eventually("kept applied", WAIT, || async { has_cm(&c1, "default", "web").await.then_some(()) }).await;
    agent.kill();
    let orphan = cp.bosun_ok(&["app", "delete", "kept", "--cascade=false", "--yes"]);
    assert!(orphan.contains("stay"), "{orphan}");
    assert_eq!(cp.bosun(&["app", "get", "kept"]).code, 3, "the Application is gone at once");
    agent.restart();
    eventually("the agent forgot the orphaned Application", WAIT, || async {
        agent.logs().contains("application deleted without cascade; its objects were left in place").then_some(())
    })
    .await;
    assert!(has_cm(&c1, "default", "web").await, "orphaned objects stay");
    assert!(!agent.state_dir.join("apps").join("kept.json").exists(), "and the agent keeps no record of them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_streams_the_current_state_then_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/cm.yaml", &configmap("settings", "one"));
    let rev1 = repo.commit("one");
    let (cp, _c1, _agent) = one_cluster(root, &repo, "30s").await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev1).await;

    // An outside client: grpcurl gets the recorded status first (the stream stays open).
    let addr = format!("127.0.0.1:{}", cp.ports.admin);
    let auth = format!("authorization: Bearer {}", cp.admin_token());
    let out = std::process::Command::new("grpcurl")
        .args(["-cacert", &cp.ca().display().to_string(), "-H", &auth, "-max-time", "3"])
        .args(["-d", r#"{"application": "web"}"#, &addr, "bosun.v1.AdminService/WatchStatus"])
        .output()
        .expect("grpcurl on PATH (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&rev1) && text.contains("SYNC_STATUS_SYNCED") && text.contains("\"c1\""), "{text}");

    // A watch opened before a commit sees the agent's reports of it, in order.
    let conn = bosun_cli::Connection::local(cp.data_dir.clone());
    let mut admin = bosun_cli::connect(&conn).await.map_err(|f| f.error).unwrap();
    let mut watch =
        admin.watch_status(bosun_cli::pb::WatchStatusRequest { application: "web".into() }).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!((first.application.as_str(), first.status.unwrap().revision), ("web", rev1.clone()));
    repo.write("k8s/cm.yaml", &configmap("settings", "two"));
    let rev2 = repo.commit("two");
    cp.bosun_ok(&["app", "refresh", "web"]);
    let synced = tokio::time::timeout(WAIT, async {
        while let Some(ev) = watch.message().await.unwrap() {
            let s = ev.status.unwrap();
            if s.revision == rev2 && s.sync_status == bosun_cli::pb::SyncStatus::Synced as i32 {
                return s;
            }
        }
        panic!("the watch ended")
    })
    .await
    .expect("the new commit's Synced report arrives on the watch");
    assert_eq!(synced.cluster, "c1");
    let unknown = admin.watch_status(bosun_cli::pb::WatchStatusRequest { application: "nope".into() }).await;
    assert_eq!(unknown.err().map(|s| s.code()), Some(tonic::Code::NotFound));
}

/// Argo CD's "Sync" with "Prune" ticked: an Application whose policy does not prune keeps what
/// Git dropped (OutOfSync, "requires pruning") until a sync asks to prune; that sync deletes it
/// and ends Synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_with_prune_deletes_what_git_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let OneApp { repo, cp, c1, agent: _agent, .. } = one_app(root, &[]).await;
    repo.write("k8s/extra.yaml", &configmap("extra", "1"));
    repo.commit("an extra ConfigMap");
    cp.bosun_ok(&["app", "sync", "web", "--timeout", "60s"]);
    assert!(has_cm(&c1, "default", "extra").await);

    repo.remove("k8s/extra.yaml");
    repo.commit("no more extra");
    cp.bosun_ok(&["app", "sync", "web", "--async"]);
    eventually("the leftover reported as requiring pruning", WAIT, || async {
        let c = cp.app_json("web")["status"]["clusters"][0].clone();
        c["resources"]
            .as_array()?
            .iter()
            .any(|r| r["name"] == "extra" && r["message"] == "requires pruning")
            .then_some(())
    })
    .await;
    assert!(has_cm(&c1, "default", "extra").await, "a sync without prune keeps it");

    cp.bosun_ok(&["app", "sync", "web", "--prune", "--timeout", "60s"]);
    assert!(!has_cm(&c1, "default", "extra").await, "the sync with prune deleted it");
    assert!(cp.logs().contains("prune=true"), "the request is logged with its choice");
}

/// `bosun login` saves a context (address, CA, credential) that later commands use without
/// any flag, as `argocd login` and kubeconfig contexts do; a bad token saves nothing; logout
/// forgets the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_context_that_later_commands_use() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cp = ControlPlane::start(root).await;
    let config = root.join("home/.config/bosun/config.yaml");
    let token = std::fs::read_to_string(cp.data_dir.join("admin-token")).unwrap().trim().to_string();
    cp.plant(&token);
    // Run from an empty directory with no data directory and no server: only the context.
    let cwd = root.join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let bosun = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-bosun"))
            .current_dir(&cwd)
            .env_remove("BOSUN_DATA_DIR")
            .env_remove("BOSUN_SERVER")
            .env_remove("BOSUN_TOKEN")
            .env_remove("BOSUN_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", root.join("home"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    };
    let server = format!("https://localhost:{}", cp.ports.admin);
    let ca = cp.ca();
    let ca = ca.to_str().unwrap();

    let (code, _, err) = bosun(&["app", "list"], "");
    assert_ne!(code, 0, "nothing to connect to yet");
    assert!(err.contains("bosun login"), "the error says what to do: {err}");
    let (code, _, err) = bosun(&["login", &server, "--ca-file", ca], "not-a-token\n");
    assert_eq!(code, 5, "a bad token is refused: {err}");
    assert!(!config.exists(), "and nothing is saved");

    let (code, out, err) = bosun(&["login", &server, "--ca-file", ca, "--name", "lab"], &format!("{token}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as admin") && out.contains("context lab"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600, "the token is private");
    let (code, out, err) = bosun(&["app", "list", "-o", "json"], "");
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    let (_, out, _) = bosun(&["context"], "");
    assert!(out.lines().any(|l| l.starts_with('*') && l.contains("lab") && l.contains(&server)), "{out}");
    let (code, _, err) = bosun(&["--context", "nope", "app", "list"], "");
    assert!(code != 0 && err.contains("no context nope"), "{err}");

    let (code, _, err) = bosun(&["logout"], "");
    assert_eq!(code, 0, "{err}");
    assert!(!std::fs::read_to_string(&config).unwrap().contains(&token), "logout forgets the token");
    let (code, _, err) = bosun(&["app", "list"], "");
    assert!(code != 0 && err.contains("logged out"), "{err}");
}

/// Bundles far larger than the gRPC codec's first buffer (512 bytes) and its yield threshold
/// (32 KiB) arrive whole, both inline in an assignment snapshot (about 1 MiB) and fetched
/// with `GetBundle` (about 5 MiB, past what a snapshot carries inline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bundles_arrive_whole_inline_and_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    // Values of 900 KiB stay under a ConfigMap's 1 MiB; distinct per object and position, so
    // a dropped or reordered chunk would show.
    let value =
        |tag: &str| (0..900 * 1024).map(|i| char::from(b'a' + ((i / 7 + tag.len()) % 26) as u8)).collect::<String>();
    repo.write("one/cm.yaml", &configmap("one-0", &value("one-0")));
    for i in 0..6 {
        repo.write(&format!("six/cm{i}.yaml"), &configmap(&format!("six-{i}"), &value(&format!("six-{i}x"))));
    }
    let rev = repo.commit("large bundles");
    repo.ready().await;

    let cp = ControlPlane::start(root).await;
    let east = Cluster::start(root, "east").await;
    let _agent = Agent::start(root, &cp, &east, &cp.add_cluster("east"));
    for app in ["one", "six"] {
        cp.create_app(app, &repo.url, app, "east", &["--namespace", "big", "--create-namespace", "--auto-sync"]);
    }
    cp.wait_synced("one", &rev).await;
    cp.wait_synced("six", &rev).await;
    let api: Api<ConfigMap> = Api::namespaced(east.client().await, "big");
    let mut names = vec![("one-0".to_string(), value("one-0"))];
    names.extend((0..6).map(|i| (format!("six-{i}"), value(&format!("six-{i}x")))));
    for (name, want) in names {
        let cm = api.get(&name).await.unwrap();
        let got = cm.data.unwrap_or_default().remove("value").unwrap_or_default();
        assert!(
            got == want,
            "ConfigMap {name}: {} bytes arrived, {} expected, or different bytes",
            got.len(),
            want.len()
        );
    }
}
