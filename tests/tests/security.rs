//! Identity and trust over real TLS between real processes: agent certificates (foreign CA,
//! expired, revoked, another cluster's), join tokens (reused, expired), admin roles through
//! the CLI and grpcurl, the audit log, Git credentials, webhooks, certificate rotation during
//! a sync and CA rotation — and no planted secret in any log.

mod common;

use std::time::{Duration, SystemTime};

use bosun_proto::v1 as pb;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RFC 3339 time the CLI printed, as Unix seconds.
fn unix(v: &Value) -> i64 {
    let text = v.as_str().unwrap_or_else(|| panic!("an RFC 3339 time, not {v}"));
    let t = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An agent API client with the given identity (PEM cert, PEM key).
async fn agent_client(
    cp: &ControlPlane,
    identity: Option<(&str, &str)>,
) -> Result<pb::agent_service_client::AgentServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&cp.ca())));
    if let Some((c, k)) = identity {
        tls = tls.identity(Identity::from_pem(c, k));
    }
    let ch = Channel::from_shared(format!("https://127.0.0.1:{}", cp.ports.agent))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(pb::agent_service_client::AgentServiceClient::new(ch))
}

/// Whether a call with this identity is refused (at the handshake or by the server).
async fn refused(cp: &ControlPlane, cert: &str, key: &str) -> String {
    match agent_client(cp, Some((cert, key))).await {
        Err(e) => format!("handshake: {e:?}"),
        Ok(mut c) => match c.get_bundle(pb::GetBundleRequest { digest: "0".repeat(64) }).await {
            Err(s) if s.code() != tonic::Code::NotFound => format!("{:?}: {}", s.code(), s.message()),
            other => panic!("a call with this certificate was served: {other:?}"),
        },
    }
}

/// A client certificate for `spiffe://bosun/cluster/<cluster>` signed by `issuer`.
fn forge(
    issuer: &Issuer<'_, KeyPair>,
    cluster: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cluster);
    p.subject_alt_names = vec![SanType::URI(format!("spiffe://bosun/cluster/{cluster}").try_into().unwrap())];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    (p.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_api_refuses_foreign_expired_and_revoked_certificates_and_stale_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let TwoClusters { repo, rev: _rev, cp, clusters: [_c1, _c2], agents: [a1, a2] } =
        two_clusters_two_apps(root, ["c1", "c2"]).await;
    let (cert1, key1) = agent_identity(&a1.state_dir);
    let (cert2, key2) = agent_identity(&a2.state_dir);

    // Cluster c1's stream carries c1's assignments only; no request field names a cluster.
    let mut client1 = agent_client(&cp, Some((&cert1, &key1))).await.unwrap();
    let mut stream = client1.watch_assignments(pb::WatchAssignmentsRequest::default()).await.unwrap().into_inner();
    let snap = stream.message().await.unwrap().unwrap();
    assert_eq!(snap.cluster, "c1");
    let apps: Vec<&str> = snap.assignments.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(apps, ["app-a"]);
    drop(stream);

    // A certificate naming c1 from another CA.
    let foreign_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Bosun CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let foreign = Issuer::new(ca, foreign_key);
    let now = SystemTime::now();
    let (fc, fk) = forge(&foreign, "c1", now - Duration::from_secs(60), now + Duration::from_secs(3600));
    let why = refused(&cp, &fc, &fk).await;
    println!("foreign CA refused: {why}");

    // A certificate from our own CA (as a thief of an old one would hold) that has expired.
    let ours = Issuer::from_ca_cert_pem(
        &read(&cp.data_dir.join("ca.pem")),
        KeyPair::from_pem(&read(&cp.data_dir.join("ca.key"))).unwrap(),
    )
    .unwrap();
    let (ec, ek) = forge(&ours, "c1", now - Duration::from_secs(7200), now - Duration::from_secs(3600));
    let why = refused(&cp, &ec, &ek).await;
    println!("expired refused: {why}");
    // One our CA signed but the control plane never issued (its serial is unknown).
    let (uc, uk) = forge(&ours, "c1", now - Duration::from_secs(60), now + Duration::from_secs(3600));
    let why = refused(&cp, &uc, &uk).await;
    assert!(why.contains("PermissionDenied") && why.contains("no longer valid"), "{why}");

    // A join token expires.
    let v: Value = serde_json::from_str(&cp.bosun_ok(&["cluster", "add", "c3", "--ttl", "1s", "-o", "json"])).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    cp.plant(&token);
    let expires = unix(&v["expiresAt"]);
    eventually("the join token's expiry passes", WAIT, || async { (unix_now() > expires).then_some(()) }).await;
    let err = cp.join_with(&token).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("expired"), "{}", err.message());

    // Revoking c2 closes its open stream and refuses its certificate from then on.
    let mut client2 = agent_client(&cp, Some((&cert2, &key2))).await.unwrap();
    let mut open = client2.watch_assignments(pb::WatchAssignmentsRequest::default()).await.unwrap().into_inner();
    open.message().await.unwrap().unwrap();
    cp.bosun_ok(&["cluster", "revoke", "c2"]);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match open.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the revoked cluster's stream is closed");
    let err = client2.get_bundle(pb::GetBundleRequest { digest: "0".repeat(64) }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("revoked"), "{}", err.message());
    let c2_json: Value = serde_json::from_str(&cp.bosun_ok(&["cluster", "get", "c2", "-o", "json"])).unwrap();
    assert!(unix(&c2_json["revokedAt"]) > 0, "{c2_json}");
    eventually("the revoked agent reports the refusal", WAIT, || async { a2.logs().contains("revoked").then_some(()) })
        .await;
    // c1 is unaffected.
    let rev2 = {
        repo.write("a/cm.yaml", &configmap("a", "2"));
        repo.commit("a2")
    };
    cp.wait_synced("app-a", &rev2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_roles_certificates_grpcurl_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, _) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    // c1 joins later: created for it ahead of time.
    cp.create_app("web", &repo.url, "k8s", "c1", &["--allow-unknown-cluster"]);

    // A readonly token reads and cannot change anything.
    let v: Value =
        serde_json::from_str(&cp.bosun_ok(&["credential", "create", "viewer", "--role", "readonly", "-o", "json"]))
            .unwrap();
    let viewer = v["token"].as_str().unwrap().to_string();
    cp.plant(&viewer);
    let as_viewer = |args: &[&str]| {
        let mut a = vec!["--token", viewer.as_str()];
        a.extend_from_slice(args);
        cp.bosun(&a)
    };
    assert_eq!(as_viewer(&["app", "list"]).code, 0);
    assert!(as_viewer(&["whoami"]).stdout.contains("viewer (role readonly, token)"));
    for args in [
        vec!["app", "sync", "web", "--async"],
        vec!["app", "create", "x", "--repo", &repo.url, "--path", "k8s", "--cluster", "c1", "--allow-unknown-cluster"],
        vec!["app", "delete", "web", "--yes"],
        vec!["app", "refresh", "web"],
        vec!["app", "rollback", "web", "1"],
        vec!["cluster", "add", "c9"],
        vec!["cluster", "revoke", "c9"],
        vec!["credential", "create", "me-too", "--role", "admin"],
        vec!["credential", "list"],
    ] {
        let o = as_viewer(&args);
        assert_eq!(o.code, 5, "readonly may not {args:?}: {} {}", o.stdout, o.stderr);
        assert!(o.stderr.contains("needs role admin"), "{args:?}: {}", o.stderr);
    }
    assert_eq!(cp.app_json("web")["name"], "web", "nothing was deleted");

    // A client certificate for automation: the key is made by the CLI and never sent.
    let certs = root.join("certs");
    cp.bosun_ok(&["credential", "create", "ci", "--role", "admin", "--cert-out", certs.to_str().unwrap()]);
    let (pem, key, ca) = (certs.join("ci.pem"), certs.join("ci.key"), certs.join("ca.pem"));
    let with_cert = |args: &[&str]| {
        let mut a = vec!["--cert", pem.to_str().unwrap(), "--key", key.to_str().unwrap()];
        a.extend_from_slice(args);
        cp.bosun(&a)
    };
    let who = with_cert(&["whoami"]);
    assert!(who.stdout.contains("ci (role admin, certificate)"), "{} {}", who.stdout, who.stderr);
    assert_eq!(with_cert(&["app", "sync", "web", "--async"]).code, 0);

    // grpcurl with -cacert -cert -key, and with a token header.
    let addr = format!("127.0.0.1:{}", cp.ports.admin);
    let grpcurl = |args: &[&str]| {
        let out = std::process::Command::new("grpcurl").args(args).output().expect("grpcurl on PATH");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = grpcurl(&[
        "-cacert",
        ca.to_str().unwrap(),
        "-cert",
        pem.to_str().unwrap(),
        "-key",
        key.to_str().unwrap(),
        &addr,
        "bosun.v1.AdminService/WhoAmI",
    ]);
    assert!(ok && out.contains("\"ci\"") && out.contains("admin"), "{out}");
    let header = format!("authorization: Bearer {viewer}");
    let (ok, out) = grpcurl(&[
        "-cacert",
        ca.to_str().unwrap(),
        "-H",
        &header,
        "-d",
        r#"{"name":"web"}"#,
        &addr,
        "bosun.v1.AdminService/SyncApplication",
    ]);
    assert!(!ok && out.contains("PermissionDenied"), "{out}");

    // An agent's certificate is not an admin credential.
    let token = cp.add_cluster("edge");
    let (edge_cert, edge_key) = cp.join_with(&token).await.unwrap();
    std::fs::write(root.join("edge.pem"), edge_cert).unwrap();
    std::fs::write(root.join("edge.key"), edge_key).unwrap();
    let o = cp.bosun(&[
        "--cert",
        root.join("edge.pem").to_str().unwrap(),
        "--key",
        root.join("edge.key").to_str().unwrap(),
        "app",
        "list",
    ]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(o.stderr.contains("agent's certificate cannot call the admin API"), "{}", o.stderr);

    // The dashboard takes the same certificate for sign-in, and not an agent's.
    let endpoints: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cp.data_dir.join("endpoints.json")).unwrap()).unwrap();
    let ui = endpoints["ui"].as_str().expect("endpoints.json names the dashboard").to_string();
    let curl = |cert: &std::path::Path, key: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-i", "--cacert", ca.to_str().unwrap(), "--cert", cert.to_str().unwrap()])
            .args(["--key", key.to_str().unwrap()])
            .args(args)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let origin = format!("origin: https://{ui}");
    let (login, cert_login) = (format!("https://{ui}/login"), format!("https://{ui}/login/certificate"));
    let page = curl(&pem, &key, &[&login]);
    assert!(page.contains("sign in as ci with your client certificate"), "{page}");
    let signed = curl(&pem, &key, &["-X", "POST", "-H", &origin, &cert_login]);
    assert!(signed.contains(" 303") && signed.contains("set-cookie: __host-"), "{signed}");
    let (edge_pem, edge_key) = (root.join("edge.pem"), root.join("edge.key"));
    assert!(!curl(&edge_pem, &edge_key, &[&login]).contains("sign in as"));
    let refused = curl(&edge_pem, &edge_key, &["-X", "POST", "-H", &origin, &cert_login]);
    assert!(refused.contains(" 401") && !refused.contains("set-cookie"), "{refused}");

    // Deleting credentials revokes them; the last admin cannot be deleted.
    cp.bosun_ok(&["credential", "delete", "viewer"]);
    let o = as_viewer(&["app", "list"]);
    assert_eq!(o.code, 5, "a deleted token is refused: {}", o.stderr);
    cp.bosun_ok(&["credential", "delete", "ci"]);
    let o = with_cert(&["app", "list"]);
    assert_eq!(o.code, 5, "a deleted certificate is refused: {}", o.stderr);
    let o = cp.bosun(&["credential", "delete", "admin"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("last admin"), "{}", o.stderr);
    let list = cp.bosun_ok(&["credential", "list", "-o", "json"]);
    assert!(list.contains("\"admin\"") && !list.contains("viewer") && !list.contains("bat_"), "{list}");

    // The audit log: one line per mutating call, with who, what and the outcome.
    let logs = cp.logs();
    let audit: Vec<&str> = logs.lines().filter(|l| l.contains("bosun::audit")).collect();
    let has = |who: &str, action: &str, outcome: &str| {
        audit.iter().any(|l| {
            l.contains(&format!("who={who}")) && l.contains(&format!("action=\"{action}\"")) && l.contains(outcome)
        })
    };
    assert!(has("admin", "CreateApplication", "outcome=\"ok\""), "{audit:#?}");
    assert!(has("viewer", "SyncApplication", "outcome=\"PermissionDenied\""), "{audit:#?}");
    assert!(has("viewer", "DeleteApplication", "outcome=\"PermissionDenied\""), "{audit:#?}");
    assert!(has("ci", "SyncApplication", "outcome=\"ok\""), "{audit:#?}");
    assert!(has("admin", "DeleteCredential", "outcome=\"ok\""), "{audit:#?}");
    assert!(!audit.iter().any(|l| l.contains("ListApplications")), "reads are not audited");
}

/// A webhook delivery as a Git host makes it: HTTPS, verifying the control plane's certificate.
fn http_post(cp: &ControlPlane, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let ca = std::fs::read_to_string(cp.ca()).unwrap();
    https(&ca, "POST", cp.ports.webhook, "/api/webhook", headers, body)
}

fn github_push(url: &str, files: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "repository": {"clone_url": url, "default_branch": "main"},
        "commits": [{"added": [], "modified": files, "removed": []}],
    }))
    .unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repository_and_webhooks_refresh_only_what_a_push_touches() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    const PASSWORD: &str = "git-pw-5b2e9d-never-logged";
    const HOOK_SECRET: &str = "hook-secret-77f3a1-never-logged";
    const SECRET_VALUE: &str = "c2VjcmV0LWRhdGEtOWQ0Yg=="; // in a Secret's data
    let repo = GitRepo::new(root);
    repo.write("k8s/backend/cm.yaml", &configmap("backend", "1"));
    repo.write(
        "k8s/backend/secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\ndata:\n  password: {SECRET_VALUE}\n"),
    );
    repo.write("k8s/frontend/cm.yaml", &configmap("frontend", "1"));
    let rev1 = repo.commit("initial");
    let hp = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/git_http_server.py");
    let _http = Killed(
        std::process::Command::new("python3")
            .args([script, &hp.to_string(), root.join("git").to_str().unwrap(), "bosun", PASSWORD])
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{hp}/cgi-bin/git/repo");
    std::fs::write(root.join("hook-secret"), HOOK_SECRET).unwrap();
    let cp = ControlPlane::start_with(
        root,
        &["--poll-interval", "1h", "--webhook-secret-file", root.join("hook-secret").to_str().unwrap()],
    )
    .await;
    for s in [PASSWORD, HOOK_SECRET, SECRET_VALUE] {
        cp.plant(s);
    }
    // Polling (every hour here) starts once the control plane holds the singleton lease; its
    // first poll must be over before the pushes below, which must be the only refreshes.
    eventually("the singleton lease", WAIT, || async {
        cp.logs().contains("holding the singleton lease").then_some(())
    })
    .await;
    let c1 = Cluster::start(root, "c1").await;
    let agent = Agent::start(root, &cp, &c1, &cp.add_cluster("c1"));

    // Without credentials the source fails with a clear error on that Application.
    eventually("git http server", WAIT, || async { std::net::TcpStream::connect(("127.0.0.1", hp)).ok().map(|_| ()) })
        .await;
    cp.create_app("backend", &url, "k8s/backend", "c1", &["--auto-sync"]);
    let err = cp.app_json("backend")["status"]["error"].as_str().unwrap_or_default().to_string();
    assert!(!err.is_empty(), "a private repository without credentials fails");

    // Stored credentials (password from the environment, not the command line).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-bosun"))
        .env("BOSUN_DATA_DIR", &cp.data_dir)
        .env("BOSUN_REPO_PASSWORD", PASSWORD)
        .args(["repo", "add", &format!("http://127.0.0.1:{hp}/"), "--username", "bosun"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = cp.bosun_ok(&["repo", "list", "-o", "json"]);
    assert!(listed.contains("\"hasPassword\": true") && !listed.contains(PASSWORD), "{listed}");
    let store = std::fs::read(cp.data_dir.join("bosun-store.redb")).unwrap();
    assert!(!store.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "the password is encrypted at rest");

    cp.bosun_ok(&["app", "refresh", "backend"]);
    cp.create_app("frontend", &url, "k8s/frontend", "c1", &["--auto-sync"]);
    cp.wait_synced("backend", &rev1).await;
    eventually("frontend synced", WAIT, || async {
        (cp.app_json("frontend")["status"]["sync"] == "Synced").then_some(())
    })
    .await;

    // A change to the backend only.
    repo.write("k8s/backend/cm.yaml", &configmap("backend", "2"));
    let rev2 = repo.commit("backend v2");
    let body = github_push(&format!("http://127.0.0.1:{hp}/cgi-bin/git/repo.git"), &["k8s/backend/cm.yaml"]);
    let push = |sig: String| vec![("X-GitHub-Event", "push".to_string()), ("X-Hub-Signature-256", sig)];

    // Git hosts reach the webhook endpoint only, and only over TLS: plain HTTP gets no answer,
    // and metrics are not served there (nor webhooks on the metrics listener).
    let (code, _) = http("POST", cp.ports.webhook, "/api/webhook", &push(sign(HOOK_SECRET, &body)), &body);
    assert_eq!(code, 0, "plain HTTP is not served on the webhook endpoint");
    let ca = std::fs::read_to_string(cp.ca()).unwrap();
    let (code, _) = https(&ca, "GET", cp.ports.webhook, "/metrics", &[], b"");
    assert_eq!(code, 404, "metrics are not on the listener Git hosts reach");
    let (code, _) = http("POST", cp.ports.metrics, "/api/webhook", &push(sign(HOOK_SECRET, &body)), &body);
    assert!(code == 404 || code == 405, "webhooks are not on the metrics listener: {code}");

    let (code, _) = http_post(&cp, &push(sign("wrong", &body)), &body);
    assert_eq!(code, 401, "a bad signature is refused");
    let (code, _) = http_post(&cp, &[("X-GitHub-Event", "push".into())], &body);
    assert_eq!(code, 401, "a missing signature is refused");
    let big = vec![b' '; 2 * 1024 * 1024];
    let mut big_push = push(sign(HOOK_SECRET, &big));
    big_push.push(("Expect", "100-continue".to_string()));
    let (code, _) = http_post(&cp, &big_push, &big);
    assert_eq!(code, 413, "payloads are capped, refused on their declared length before the body is sent");
    let other = github_push("https://github.com/someone/else.git", &["k8s/backend/cm.yaml"]);
    let (code, resp) = http_post(&cp, &push(sign(HOOK_SECRET, &other)), &other);
    assert!(code == 202 && resp.contains("ignored"), "{resp}");
    assert_eq!(cp.app_json("backend")["status"]["revision"], rev1, "nothing refreshed yet (polling is 1h)");

    let (code, resp) = http_post(&cp, &push(sign(HOOK_SECRET, &body)), &body);
    assert!(code == 202 && resp.contains("refreshing: backend") && !resp.contains("frontend"), "{resp}");
    cp.wait_synced("backend", &rev2).await;
    assert_eq!(cp.app_json("frontend")["status"]["revision"], rev1, "the frontend path was not touched");

    // GitLab's token header.
    repo.write("k8s/frontend/cm.yaml", &configmap("frontend", "2"));
    let rev3 = repo.commit("frontend v2");
    let gl = serde_json::to_vec(&json!({
        "object_kind": "push", "ref": "refs/heads/main", "total_commits_count": 1,
        "project": {"git_http_url": url, "default_branch": "main"},
        "commits": [{"added": [], "modified": ["k8s/frontend/cm.yaml"], "removed": []}],
    }))
    .unwrap();
    let (code, _) = http_post(&cp, &[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", "nope".into())], &gl);
    assert_eq!(code, 401);
    let (code, resp) =
        http_post(&cp, &[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", HOOK_SECRET.into())], &gl);
    assert!(code == 202 && resp.contains("frontend"), "{resp}");
    eventually("frontend at the new revision", WAIT, || async {
        let v = cp.app_json("frontend");
        (v["status"]["revision"] == rev3 && v["status"]["sync"] == "Synced").then_some(())
    })
    .await;

    // The Secret's value is redacted in what the API shows.
    let shown = cp.bosun_ok(&["app", "get", "backend", "-o", "json"]) + &cp.bosun_ok(&["app", "diff", "backend"]);
    assert!(!shown.contains(SECRET_VALUE), "Secret data never shown");
    // Prometheus metrics on their own listener.
    let (code, metrics) = http("GET", cp.ports.metrics, "/metrics", &[], b"");
    assert_eq!(code, 200, "{metrics}");
    for line in [
        "bosun_webhook_requests_total{outcome=\"unauthorized\"} 3",
        "bosun_webhook_requests_total{outcome=\"refreshing\"} 2",
        "bosun_webhook_requests_total{outcome=\"too_large\"} 1",
        "bosun_clusters{state=\"connected\"} 1",
        "bosun_applications{sync=\"Synced\",health=\"Healthy\"} 2",
        "bosun_cluster_connected{cluster=\"c1\"} 1",
        "bosun_certificates_issued_total{kind=\"join\"} 1",
        // Outcomes that never happened are exported at zero.
        "bosun_renders_total{outcome=\"cached_error\"} 0",
        "bosun_render_duration_seconds_count",
        "bosun_git_fetch_duration_seconds_count",
        "bosun_report_duration_seconds_count",
        "bosun_build_info{version=",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let info = metrics.lines().filter(|l| l.starts_with("bosun_app_info{")).collect::<Vec<_>>();
    assert_eq!(info.len(), 2, "one app_info series per Application: {info:?}");
    assert!(info.iter().all(|l| l.contains("sync=\"Synced\"") && l.ends_with(" 1")), "{info:?}");
    assert!(!metrics.contains(HOOK_SECRET) && !metrics.contains(PASSWORD));

    let agent_logs = agent.logs();
    assert_no_secrets(&agent_logs, &[PASSWORD.into(), HOOK_SECRET.into(), SECRET_VALUE.into()], "the agent's log");
}

/// A PreSync hook Job that runs for longer than several certificate lifetimes: the agent
/// renews (and reconnects) while the sync runs, and the sync completes as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_during_a_sync_without_interrupting_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev1) = web_repo(root).await;
    let cp = ControlPlane::start_with(root, &["--cert-validity", "6s"]).await;
    let c1 = Cluster::start(root, "c1").await;
    let agent = Agent::start(root, &cp, &c1, &cp.add_cluster("c1"));
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev1).await;

    let hook = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: default\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation\n    kube-sim.bosun.dev/duration: \"15s\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: m\n        image: busybox\n";
    repo.write("k8s/migrate.yaml", hook);
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("v2 with a long migration");
    let cluster_expiry = || -> i64 {
        let v: Value = serde_json::from_str(&cp.bosun_ok(&["cluster", "get", "c1", "-o", "json"])).unwrap();
        unix(&v["certificateExpires"])
    };
    let first = cluster_expiry();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(c1.client().await, "default");
    eventually("the sync starts: the hook runs", WAIT, || async { jobs.get_opt("migrate").await.ok().flatten() }).await;
    // At least two renewals happen while the hook runs.
    eventually("two renewals during the sync", WAIT, || async { (cluster_expiry() >= first + 6).then_some(()) }).await;
    let mid = cp.app_json("web");
    let c = &mid["status"]["clusters"][0];
    assert!(
        c["sync"] != "Synced" && c["message"].as_str().unwrap_or_default().contains("PreSync"),
        "the hook is still running: {mid}"
    );
    cp.wait_synced("web", &rev2).await;
    let logs = agent.logs();
    assert!(logs.matches("certificate renewed").count() >= 2, "renewed while syncing");
    assert!(!logs.contains("sync failed"), "the sync was not interrupted");
    let history = cp.bosun_ok(&["app", "history", "web", "-o", "json"]);
    let entries: Value = serde_json::from_str(&history).unwrap();
    let at_rev2 = entries.as_array().unwrap().iter().filter(|e| e["revision"] == rev2).count();
    assert_eq!(at_rev2, 1, "one sync, one hook run: {history}");
    // Long after the first certificates expired, the link still works.
    repo.write("k8s/cm.yaml", &configmap("web", "3"));
    repo.remove("k8s/migrate.yaml");
    let rev3 = repo.commit("v3");
    cp.wait_synced("web", &rev3).await;
}

/// CA rotation with an overlap: trust the new CA first, then sign with it while the old one
/// is still trusted, then drop the old one; the agent follows without a new join token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_with_an_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev1) = web_repo(root).await;
    let mut cp = ControlPlane::start_with(root, &["--cert-validity", "8s"]).await;
    let c1 = Cluster::start(root, "c1").await;
    let agent = Agent::start(root, &cp, &c1, &cp.add_cluster("c1"));
    cp.create_app("web", &repo.url, "k8s", "c1", &["--auto-sync"]);
    cp.wait_synced("web", &rev1).await;
    let old_ca = read(&cp.data_dir.join("ca.pem"));
    let new_dir = root.join("new-ca");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-control-plane"))
        .args(["generate-ca", "--out", new_dir.to_str().unwrap(), "--common-name", "Bosun CA 2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let new_ca = read(&new_dir.join("ca.pem"));
    let agent_trusts = |pem: &str| agent_ca(&agent.state_dir).contains(pem.trim());

    // 1. Trust the new CA; agents learn it at their next renewal.
    cp.args.extend(["--trusted-ca".into(), new_dir.join("ca.pem").display().to_string()]);
    cp.kill();
    cp.restart().await;
    eventually("the agent trusts the new CA", WAIT, || async { agent_trusts(&new_ca).then_some(()) }).await;

    // 2. Sign with the new CA, still accepting certificates of the old one.
    let old_copy = root.join("old-ca.pem");
    std::fs::write(&old_copy, &old_ca).unwrap();
    cp.args = vec![
        "--cert-validity".into(),
        "8s".into(),
        "--ca-cert".into(),
        new_dir.join("ca.pem").display().to_string(),
        "--ca-key".into(),
        new_dir.join("ca.key").display().to_string(),
        "--trusted-ca".into(),
        old_copy.display().to_string(),
    ];
    cp.kill();
    cp.restart().await;
    let issuer = || {
        let (pem, _) = agent_identity(&agent.state_dir);
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        der.parse_x509().unwrap().issuer().to_string()
    };
    eventually("the agent renewed under the new CA", WAIT, || async { issuer().contains("Bosun CA 2").then_some(()) })
        .await;
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("v2");
    cp.wait_synced("web", &rev2).await;

    // 3. Drop the old CA: the agent already holds a certificate from the new one.
    cp.args.truncate(6);
    cp.kill();
    cp.restart().await;
    repo.write("k8s/cm.yaml", &configmap("web", "3"));
    let rev3 = repo.commit("v3");
    cp.wait_synced("web", &rev3).await;
    eventually("the agent no longer trusts the old CA", WAIT, || async {
        (!agent_trusts(&old_ca) && agent_trusts(&new_ca)).then_some(())
    })
    .await;
}

/// A namespaced install: the cluster answers as it does to a ServiceAccount whose only
/// permission is a Role in `apps` (everything cluster-wide is Forbidden). The agent, told
/// `--namespace=apps`, watches only there: what Git puts in `apps` is applied and healed; a
/// ClusterRole and an object in another namespace fail their Application with errors naming
/// them, while that Application's objects in `apps` and the other Application are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_agent_manages_its_namespaces_and_names_what_it_cannot() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cm = |name: &str, ns: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  v: \"1\"\n")
    };
    let repo = GitRepo::new(root);
    repo.write("inside/cm.yaml", &cm("inside", "apps"));
    repo.write("mixed/cm.yaml", &cm("mixed", "apps"));
    repo.write("mixed/elsewhere.yaml", &cm("elsewhere", "other"));
    repo.write(
        "mixed/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: mixed-reader\nrules: []\n",
    );
    let rev = repo.commit("one namespace");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let c1 = Cluster::start(root, "c1").await;
    let client = c1.client().await;
    for ns in ["apps", "other"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        kube::Api::<Namespace>::all(client.clone()).create(&Default::default(), &ns).await.unwrap();
    }
    c1.sim.faults().set_namespaces_only(&["apps"]);
    let _agent = Agent::start_with_flags(root, &cp, &c1, &cp.add_cluster("c1"), &["--namespace=apps".into()]);
    for app in ["inside", "mixed"] {
        cp.create_app(app, &repo.url, app, "c1", &["--auto-sync", "--self-heal"]);
    }
    cp.wait_synced("inside", &rev).await;
    let message = eventually("mixed names what it cannot manage", WAIT, || async {
        let c = cp.app_json("mixed")["status"]["clusters"][0].clone();
        let m = c["message"].as_str().unwrap_or_default().to_string();
        (m.contains("mixed-reader") && m.contains("elsewhere")).then_some((c["sync"].clone(), m))
    })
    .await;
    assert_eq!(message.0, "OutOfSync", "{}", message.1);
    assert!(message.1.contains("cluster-scoped") && message.1.contains("\"other\""), "{}", message.1);
    assert!(message.1.contains("--namespace"), "says how to change it: {}", message.1);

    // The rest is applied, and healed through the namespaced watch.
    let apps: kube::Api<ConfigMap> = kube::Api::namespaced(client, "apps");
    eventually("mixed's ConfigMap in apps applied", WAIT, || async { apps.get_opt("mixed").await.unwrap() }).await;
    apps.delete("inside", &Default::default()).await.unwrap();
    eventually("inside healed", WAIT, || async { apps.get_opt("inside").await.unwrap() }).await;
    // Every watch it opened was allowed (a Forbidden one would be retried and logged).
    let logs = _agent.logs();
    assert!(!logs.contains("failed; retrying"), "the agent watched outside apps: {logs}");
}

/// One registration token for many spokes (Fleet's ClusterRegistrationToken): each agent
/// registers the name it is given, with the token's labels, and gets its own identity; the
/// token never takes over a cluster that has an agent, was added otherwise or was revoked,
/// and stops registering once deleted. Clusters it registered keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_registration_token_registers_many_spokes_each_with_its_own_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (repo, rev) = web_repo(root).await;
    let cp = ControlPlane::start(root).await;
    let created: Value = serde_json::from_str(&cp.bosun_ok(&[
        "cluster",
        "registration-token",
        "create",
        "spokes",
        "--ttl",
        "1h",
        "-l",
        "env=prod",
        "-o",
        "json",
    ]))
    .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("brt_"), "{created}");
    cp.plant(&token);
    let again = cp.bosun(&["cluster", "registration-token", "create", "spokes"]);
    assert_eq!(again.code, 1, "a name is taken once: {}", again.stderr);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);

    let mut clusters = Vec::new();
    let mut agents = Vec::new();
    for name in ["spoke-a", "spoke-b"] {
        let c = Cluster::start(root, name).await;
        agents.push(Agent::start_with_flags(root, &cp, &c, &token, &[format!("--cluster-name={name}")]));
        clusters.push(c);
    }
    // An Application selecting the token's label reaches both: each is registered, labelled
    // and connected under its own name.
    cp.bosun_ok(&[
        "app",
        "create",
        "web",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--selector",
        "env=prod",
        "--auto-sync",
    ]);
    eventually("both spokes synced", WAIT, || async {
        let v = cp.app_json("web");
        let synced = v["status"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["sync"] == "Synced" && c["revision"] == rev.as_str())
            .count();
        (synced == 2).then_some(())
    })
    .await;
    let (cert_a, _) = agent_identity(&agents[0].state_dir);
    let (cert_b, _) = agent_identity(&agents[1].state_dir);
    assert_ne!(cert_a, cert_b, "each spoke has its own certificate");
    let listed: Value =
        serde_json::from_str(&cp.bosun_ok(&["cluster", "registration-token", "list", "-o", "json"])).unwrap();
    assert_eq!(listed[0]["clusters"], json!(["spoke-a", "spoke-b"]), "{listed}");
    assert!(!listed.to_string().contains(&token), "the token is never shown again");

    // What the token may not do: register a second agent over spoke-a (it has a valid
    // certificate), a cluster added with a join token, or one without a name.
    cp.add_cluster("added");
    for (sim, flags, refusal) in [
        ("intruder-1", vec!["--cluster-name=spoke-a".to_string()], "valid certificate"),
        ("intruder-2", vec!["--cluster-name=added".to_string()], "not registered with registration token"),
        ("intruder-3", vec![], "--cluster-name"),
    ] {
        let c = Cluster::start(root, sim).await;
        let mut a = Agent::start_with_flags(root, &cp, &c, &token, &flags);
        assert_ne!(a.wait_exit(WAIT).await, 0, "{sim}: {}", a.logs());
        assert!(a.logs().contains(refusal), "{sim}: {}", a.logs());
    }
    // A revoked spoke stays revoked: its agent cannot register itself back.
    cp.bosun_ok(&["cluster", "revoke", "spoke-b"]);
    std::fs::remove_dir_all(&agents[1].state_dir).unwrap();
    agents[1].kill();
    agents[1].restart();
    assert_ne!(agents[1].wait_exit(WAIT).await, 0);
    assert!(agents[1].logs().contains("was revoked"), "{}", agents[1].logs());

    // Deleted: it registers nothing more; spoke-a keeps its identity and its Application.
    cp.bosun_ok(&["cluster", "registration-token", "delete", "spokes"]);
    let c = Cluster::start(root, "spoke-c").await;
    let mut late = Agent::start_with_flags(root, &cp, &c, &token, &["--cluster-name=spoke-c".into()]);
    assert_ne!(late.wait_exit(WAIT).await, 0);
    assert!(late.logs().contains("join token is invalid"), "{}", late.logs());
    repo.write("k8s/cm.yaml", &configmap("web", "2"));
    let rev2 = repo.commit("after the token is gone");
    eventually("spoke-a still syncs", WAIT, || async {
        let v = cp.app_json("web");
        v["status"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["cluster"] == "spoke-a" && c["sync"] == "Synced" && c["revision"] == rev2.as_str())
            .then_some(())
    })
    .await;
    drop(clusters);
}
