//! Trust and durability over real processes: identity only from the certificate (facts
//! cannot claim another cluster), hostile repositories refused per Application, damaged
//! control-plane and agent state refused or recovered with a message that says what to do,
//! backups that restore, re-created Applications and revoked agents handled, SIGTERM, streams
//! that end with their certificate, status codes that mean what they say, readiness.

mod common;

use std::time::{Duration, SystemTime};

use bosun_proto::v1 as pb;
use common::*;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn agent_client(
    cp: &ControlPlane,
    cert: &str,
    key: &str,
) -> pb::agent_service_client::AgentServiceClient<Channel> {
    let ca = std::fs::read_to_string(cp.ca()).unwrap();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).identity(Identity::from_pem(cert, key));
    let ch = Channel::from_shared(format!("https://127.0.0.1:{}", cp.ports.agent))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::agent_service_client::AgentServiceClient::new(ch)
}

fn secret_manifest(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  password: s3cr3t-{name}\n")
}

/// Reads a counter of the control plane's /metrics with these labels (0 when absent).
fn metric(cp: &ControlPlane, name: &str, labels: &str) -> f64 {
    let (_, text) = http("GET", cp.ports.metrics, "/metrics", &[], b"");
    text.lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{{labels}}}")) || (labels.is_empty() && l.starts_with(&format!("{name} ")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_facts_cannot_claim_another_clusters_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let TwoClusters { repo, cp, clusters, agents, .. } = two_clusters_two_apps(root, ["c1", "c2"]).await;
    repo.write("only-c2/secret.yaml", &secret_manifest("c2-only"));
    repo.commit("c2's secret");
    cp.bosun_ok(&[
        "app",
        "create",
        "c2-secret",
        "--repo",
        &repo.url,
        "--path",
        "only-c2",
        "--selector",
        "bosun.dev/name=c2",
        "--auto-sync",
    ]);
    // c1's agent (its own certificate) reports facts that try to be c2.
    let (cert, key) = agent_identity(&agents[0].state_dir);
    let mut client = agent_client(&cp, &cert, &key).await;
    let facts = [("name", "c2"), ("bosun.dev/name", "c2"), ("env", "prod")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut stream = client
        .watch_assignments(pb::WatchAssignmentsRequest {
            known_generation: 0,
            agent_version: "forged".into(),
            facts,
            held_bundles: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let snap = stream.message().await.unwrap().unwrap();
    assert_eq!(snap.cluster, "c1", "identity comes from the certificate");
    let apps: Vec<&str> = snap.assignments.iter().map(|a| a.app.as_str()).collect();
    assert!(!apps.contains(&"c2-secret"), "c1 received c2's Application: {apps:?}");
    // The fact that tried another namespace is refused and audited; the others are facts only.
    eventually("the refused fact in the audit log", WAIT, || async {
        cp.logs()
            .lines()
            .any(|l| {
                l.contains("bosun::audit")
                    && l.contains("ReportFacts")
                    && l.contains("refused")
                    && l.contains("bosun.dev/name")
            })
            .then_some(())
    })
    .await;
    let c1: Value = serde_json::from_str(&cp.bosun_ok(&["cluster", "get", "c1", "-o", "json"])).unwrap();
    assert_eq!(c1["facts"]["name"], "c2", "kept as a fact: {c1}");
    assert!(c1["facts"].get("bosun.dev/name").is_none(), "{c1}");
    let v = cp.app_json("c2-secret");
    let targets: Vec<&str> =
        v["status"]["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap()).collect();
    assert_eq!(targets, ["c2"]);
    // c2's own agent gets it; c1's cluster never holds the Secret.
    eventually("c2 synced its Secret", WAIT, || async {
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(clusters[1].client().await, "default");
        api.get_opt("c2-only").await.unwrap().map(|_| ())
    })
    .await;
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(clusters[0].client().await, "default");
    assert!(api.get_opt("c2-only").await.unwrap().is_none(), "c1 applied c2's Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_kustomization_fails_only_its_application_and_is_not_retried_every_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("good/cm.yaml", &configmap("good", "1"));
    // Climbs out of the checkout towards the control plane's data directory and Git cache.
    repo.write("evil/kustomization.yaml", "resources:\n- ../../../../control-plane\n- ../../../../control-plane/git\n");
    repo.write("remote/kustomization.yaml", "resources:\n- https://evil.example/acme//base?ref=main\n");
    let rev = repo.commit("initial");
    let (cp, _c1, _agent) = one_cluster(root, &repo, "2s").await;
    for (app, path) in [("good", "good"), ("evil", "evil"), ("remote", "remote")] {
        cp.bosun(&["app", "create", app, "--repo", &repo.url, "--path", path, "--cluster", "c1", "--auto-sync"]);
    }
    cp.wait_synced("good", &rev).await;
    for (app, why) in [("evil", "leads outside the repository"), ("remote", "remote base")] {
        let v = cp.app_json(app);
        let err = v["status"]["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(why), "{app}: {err}");
        assert!(!err.contains("/tmp/") && !err.contains(&root.display().to_string()), "no private paths: {err}");
    }
    // Polls go on (1 s here); the failed renders are not run again at the same commit.
    let errors = metric(&cp, "bosun_renders_total", "outcome=\"error\"");
    let fetches = metric(&cp, "bosun_git_fetches_total", "outcome=\"ok\"");
    eventually("three more polls", WAIT, || async {
        (metric(&cp, "bosun_git_fetches_total", "outcome=\"ok\"") >= fetches + 3.0).then_some(())
    })
    .await;
    assert_eq!(metric(&cp, "bosun_renders_total", "outcome=\"error\""), errors, "failed renders re-run on polls");
    // An explicit refresh tries again (and fails the same way).
    let o = cp.bosun(&["app", "refresh", "evil"]);
    assert_ne!(o.code, 0);
    assert!(metric(&cp, "bosun_renders_total", "outcome=\"error\"") > errors);
}

/// Peak resident memory (kB) and CPU time (clock ticks) of a process.
fn footprint(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    (hwm, fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_repository_keeps_the_control_plane_small() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    let big_value = "x".repeat(3 * 1024 * 1024);
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: d}}\ndata: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let mut paths = Vec::new();
    for i in 0..6 {
        repo.write(&format!("bomb{i}/cm.yaml"), &bomb);
        repo.write(&format!("deep{i}/cm.yaml"), &deep);
        repo.write(
            &format!("huge{i}/cm.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: h}}\ndata:\n  a: {big_value}\n  b: {big_value}\n"
            ),
        );
        repo.write(
            &format!("gen{i}/kustomization.yaml"),
            "configMapGenerator:\n- name: big\n  files:\n  - a.txt\n  - b.txt\n  - c.txt\n",
        );
        for f in ["a", "b", "c"] {
            repo.write(&format!("gen{i}/{f}.txt"), &big_value);
        }
        repo.write(&format!("escape{i}/kustomization.yaml"), "resources:\n- ../../../..\n");
        paths.extend([
            format!("bomb{i}"),
            format!("deep{i}"),
            format!("huge{i}"),
            format!("gen{i}"),
            format!("escape{i}"),
        ]);
    }
    repo.commit("hostile");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    for (i, p) in paths.iter().enumerate() {
        cp.bosun(&[
            "app",
            "create",
            &format!("h{i}"),
            "--repo",
            &repo.url,
            "--path",
            p,
            "--cluster",
            "c1",
            "--allow-unknown-cluster",
            "--auto-sync",
        ]);
    }
    let failing = (0..paths.len())
        .filter(|i| !cp.app_json(&format!("h{i}"))["status"]["error"].as_str().unwrap_or_default().is_empty())
        .count();
    assert!(failing >= 24, "{failing} of {} failed", paths.len());
    // Idle: polls go on, nothing is rendered again.
    let (_, cpu_before) = footprint(cp.pid());
    let fetches = metric(&cp, "bosun_git_fetches_total", "outcome=\"ok\"");
    eventually("five more polls", WAIT, || async {
        (metric(&cp, "bosun_git_fetches_total", "outcome=\"ok\"") >= fetches + 5.0).then_some(())
    })
    .await;
    let (hwm_kb, cpu_after) = footprint(cp.pid());
    println!(
        "hostile repository: {failing} failing Applications, peak RSS {} MiB, idle CPU {} ticks over five polls",
        hwm_kb / 1024,
        cpu_after - cpu_before
    );
    assert!(hwm_kb < 256 * 1024, "peak RSS {} MiB", hwm_kb / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_naming_the_file_and_a_backup_restores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let OneApp { repo, mut cp, c1: _c1, agent, .. } = one_app(root, &["--auto-sync"]).await;

    // An online backup, taken while the control plane runs.
    let backup = root.join("backup.json");
    let data_dir = cp.data_dir.clone();
    let subcommand = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_e2e-control-plane"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .output()
            .unwrap()
    };
    let out = subcommand(&["backup".as_ref(), "--out".as_ref(), backup.as_os_str()]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(cp.logs().contains("CreateBackup"), "the backup is audited");

    // SIGTERM: a graceful stop, exit 0.
    cp.signal(libc::SIGTERM);
    assert_eq!(cp.wait_exit(Duration::from_secs(25)).await, 0, "{}", cp.logs());
    let store = cp.data_dir.join("bosun-store.redb");
    let size = std::fs::metadata(&store).unwrap().len();

    // Emptied: refused, naming the file and the way back (no fresh start over it).
    std::fs::write(&store, b"").unwrap();
    let (code, log) = cp.start_refused().await;
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("bosun-store.redb") && log.contains("restore"), "{log}");
    assert!(!log.contains("admin token created"), "a new admin token over the old one: {log}");

    // Partly overwritten: refused with the file named, not a panic.
    let garbage: Vec<u8> = (0..size).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&store, &garbage).unwrap();
    let (code, log) = cp.start_refused().await;
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("bosun-store.redb"), "{log}");

    // Restore into a fresh data directory at the same place, then start: everything is back,
    // the old admin token works, and the agent reconnects with its certificate.
    let token = cp.admin_token();
    std::fs::rename(&cp.data_dir, root.join("damaged")).unwrap();
    let out = subcommand(&["restore".as_ref(), "--from".as_ref(), backup.as_os_str()]);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(cp.data_dir.join("admin-token"), &token).unwrap();
    cp.restart().await;
    assert_eq!(cp.admin_token(), token);
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("after restore");
    cp.wait_synced("web", &rev2).await;
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_agent_state_is_set_aside_and_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let OneApp { repo: _repo, rev, cp, c1, mut agent } = one_app(root, &["--auto-sync", "--self-heal"]).await;

    // Truncated state (both copies: one alone falls back to the other) and a corrupted
    // cached bundle.
    agent.kill();
    for copy in ["state.json", "state.json.alt"] {
        let state = agent.state_dir.join(copy);
        if let Ok(bytes) = std::fs::read(&state) {
            std::fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let bundles: Vec<_> = std::fs::read_dir(agent.state_dir.join("bundles")).unwrap().flatten().collect();
    assert!(!bundles.is_empty());
    for b in &bundles {
        std::fs::write(b.path(), b"[{\"tampered\": true}]").unwrap();
    }
    // A hand edit while the agent is down, to see it healed once it is back.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(c1.client().await, "default");
    api.delete("web", &Default::default()).await.unwrap();
    agent.restart();
    eventually("the ConfigMap restored by the recovered agent", WAIT, || async {
        api.get_opt("web").await.unwrap().map(|_| ())
    })
    .await;
    let logs = agent.logs();
    assert!(logs.contains("state file is unusable") && logs.contains("moved aside"), "{logs}");
    assert!(
        std::fs::read_dir(&agent.state_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("state.json.broken-"))
    );
    cp.wait_synced("web", &rev).await;

    // A garbage identity: set aside; the join token was used already, so the agent says so
    // and exits non-zero.
    agent.kill();
    std::fs::write(agent.state_dir.join("identity.json"), b"-----BEGIN GARBAGE-----").unwrap();
    agent.restart();
    let code = agent.wait_exit(WAIT).await;
    assert_ne!(code, 0, "{}", agent.logs());
    let logs = agent.logs();
    assert!(logs.contains("identity file is unusable") && logs.contains("join"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_application_is_synced_by_an_agent_that_was_away() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let OneApp { repo, rev, cp, c1, mut agent } = one_app(root, &[]).await;
    let create = ["app", "create", "web", "--repo", &repo.url, "--path", "k8s", "--cluster", "c1"];
    // Manual: synced by two requests, so the agent remembers request 2.
    for _ in 0..2 {
        cp.bosun_ok(&["app", "sync", "web"]);
    }
    cp.wait_synced("web", &rev).await;
    eventually("request 2 observed", WAIT, || async {
        (cp.app_json("web")["status"]["clusters"][0]["observedSyncRequest"] == 2).then_some(())
    })
    .await;
    agent.kill();
    cp.bosun_ok(&["app", "delete", "web", "--yes"]);
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("v2");
    cp.bosun_ok(&create);
    // The agent is away: the request is recorded, not waited for.
    cp.bosun_ok(&["app", "sync", "web", "--async"]);
    agent.restart();
    cp.wait_synced("web", &rev2).await;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(c1.client().await, "default");
    assert_eq!(api.get("web").await.unwrap().data.unwrap()["value"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_joins_again_with_the_new_token_in_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    let c1 = Cluster::start(root, "c1").await;
    let token_file = root.join("join-token");
    std::fs::write(&token_file, cp.add_cluster("c1")).unwrap();
    let mut agent = Agent::start_with_token_file(root, &cp, &c1, &token_file);
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;

    // Revoked, then a new token written where the agent reads it (a Secret updated in place):
    // the agent joins again without a restart.
    cp.bosun_ok(&["cluster", "revoke", "c1"]);
    std::fs::write(&token_file, cp.add_cluster("c1")).unwrap();
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("v2");
    cp.wait_synced("web", &rev2).await;
    assert!(agent.logs().contains("joined again"), "{}", agent.logs());

    // Revoked again; this time the agent restarts with the new token (as after a rollout).
    cp.bosun_ok(&["cluster", "revoke", "c1"]);
    agent.kill();
    std::fs::write(&token_file, cp.add_cluster("c1")).unwrap();
    agent.restart();
    repo.write("k8s/cm.yaml", &configmap("web", "3"));
    let rev3 = repo.commit("v3");
    cp.wait_synced("web", &rev3).await;

    // SIGTERM stops the agent gracefully.
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(WAIT).await, 0, "{}", agent.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_stream_ends_when_its_certificate_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start_with(tmp.path(), &["--cert-validity", "4s"]).await;
    let (cert, key) = cp.join_with(&cp.add_cluster("c9")).await.unwrap();
    let mut client = agent_client(&cp, &cert, &key).await;
    let mut stream = client.watch_assignments(pb::WatchAssignmentsRequest::default()).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    // Nothing changes; the stream still ends once the certificate has expired.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(s) => return Some(s),
            }
        }
    })
    .await
    .expect("the stream outlived its certificate");
    let status = ended.expect("closed with a status");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_right_codes_and_never_crash_the_control_plane() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, _) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    cp.create_app("web", &repo.url, "k8s", "c1", &["--allow-unknown-cluster"]);
    // Not found is exit code 3, for every kind of object.
    for args in [
        vec!["credential", "delete", "nobody"],
        vec!["repo", "delete", "https://example.invalid/x/"],
        vec!["app", "rollback", "web", "99"],
        vec!["app", "get", "nope"],
        vec!["cluster", "get", "nope"],
    ] {
        let o = cp.bosun(&args);
        assert_eq!(o.code, 3, "{args:?}: {}", o.stderr);
    }
    // Out-of-range and unknown values are invalid arguments, and the process lives on.
    let token = cp.admin_token();
    let grpcurl = |method: &str, body: &str| {
        let out = std::process::Command::new("grpcurl")
            .args(["-cacert", cp.ca().to_str().unwrap(), "-H", &format!("authorization: Bearer {token}"), "-d", body])
            .arg(format!("127.0.0.1:{}", cp.ports.admin))
            .arg(format!("bosun.v1.AdminService/{method}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
    };
    let out = grpcurl("CreateCredential", r#"{"name": "ci", "role": "admin", "ttlSeconds": "9223372036854775807"}"#);
    assert!(out.contains("InvalidArgument") && out.contains("ttl"), "{out}");
    let out = grpcurl("CreateJoinToken", r#"{"cluster": "c2", "ttlSeconds": "9223372036854775807"}"#);
    assert!(out.contains("InvalidArgument"), "{out}");
    let spec = format!(
        r#"{{"name": "p", "spec": {{"source": {{"repoUrl": "{}", "path": "k8s"}}, "destination": {{"cluster": "c1"}}, "syncPolicy": {{"prunePropagation": "sideways"}}}}}}"#,
        repo.url
    );
    let out = grpcurl("CreateApplication", &spec);
    assert!(out.contains("InvalidArgument") && out.contains("sideways"), "{out}");
    assert!(cp.bosun(&["app", "get", "p"]).code == 3, "nothing was created");
    cp.bosun_ok(&["whoami"]);
    assert!(!cp.logs().contains("panicked"), "{}", cp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reflects_the_ca() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("expired-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Old CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = (SystemTime::now() - Duration::from_secs(7200)).into();
    p.not_after = (SystemTime::now() - Duration::from_secs(60)).into();
    std::fs::write(dir.join("ca.pem"), p.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
    let cp = ControlPlane::start_with(
        tmp.path(),
        &["--ca-cert", dir.join("ca.pem").to_str().unwrap(), "--ca-key", dir.join("ca.key").to_str().unwrap()],
    )
    .await;
    let (code, body) = http("GET", cp.ports.metrics, "/readyz", &[], b"");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("CA certificate has expired"), "{body}");
    let (code, _) = http("GET", cp.ports.metrics, "/healthz", &[], b"");
    assert_eq!(code, 200, "alive, not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_certificate_expired_while_the_control_plane_was_down_joins_with_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let mut cp = ControlPlane::start_with(root, &["--cert-validity", "6s"]).await;
    let c1 = Cluster::start(root, "c1").await;
    let token_file = root.join("join-token");
    std::fs::write(&token_file, cp.add_cluster("c1")).unwrap();
    let agent = Agent::start_with_token_file(root, &cp, &c1, &token_file);
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;
    // An admin leaves a fresh token in the agent's Secret; then the control plane is down for
    // longer than the certificate lives.
    std::fs::write(&token_file, cp.add_cluster("c1")).unwrap();
    cp.kill();
    let expired = || {
        let (pem, _) = agent_identity(&agent.state_dir);
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let not_after = der.parse_x509().unwrap().validity().not_after.timestamp();
        not_after < SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
    };
    eventually("the agent's certificate expired", WAIT, || async { expired().then_some(()) }).await;
    cp.restart().await;
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("v2");
    cp.wait_synced("web", &rev2).await;
    assert!(!expired(), "a new certificate");
}

/// In a container without an init each binary is PID 1 of its PID namespace: SIGTERM (what
/// Kubernetes sends) must still stop it gracefully with exit code 0, and the kustomize and git
/// processes it ran must not be left behind as zombies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_stop_gracefully_on_sigterm_as_pid_1() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let mut cp = ControlPlane::start_as_pid1(root).await;
    assert_eq!(namespace_pids(cp.process_pid()).last(), Some(&1), "the control plane is PID 1 in its namespace");
    let c1 = Cluster::start(root, "c1").await;
    let mut agent = Agent::start_as_pid1(root, &cp, &c1, &cp.add_cluster("c1"));
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev).await;
    assert_eq!(namespace_pids(agent.process_pid()).last(), Some(&1), "the agent is PID 1 in its namespace");

    // The control plane fetched with git (file://, `git upload-pack`): nothing it started is
    // left as a zombie in its namespace.
    let cp_pid = cp.process_pid();
    let zombies: Vec<String> = std::fs::read_to_string(format!("/proc/{cp_pid}/task/{cp_pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|c| std::fs::read_to_string(format!("/proc/{c}/stat")).is_ok_and(|s| s.contains(") Z ")))
        .map(String::from)
        .collect();
    assert!(zombies.is_empty(), "zombie children of the control plane: {zombies:?}");

    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(WAIT).await, 0, "{}", agent.logs());
    cp.signal(libc::SIGTERM);
    assert_eq!(cp.wait_exit(WAIT).await, 0, "{}", cp.logs());
}
