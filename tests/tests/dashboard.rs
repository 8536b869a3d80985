//! The web dashboard in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) against a control plane, an agent and a kube-sim cluster.
//!
//! One journey, as a platform engineer would take it: sign in; the Application tile reaches
//! Synced/Healthy; a commit and a refresh turn it Progressing then Healthy with no reload; a
//! hand edit (self-heal off) shows OutOfSync and the diff names the field; Sync from the page
//! heals it; a readonly session has no Sync button and a forged POST with its cookie is
//! refused (403) and audited; the browser logs no console error. Screenshots of each page go
//! to `$CARGO_TARGET_TMPDIR/ui-screenshots` (or `BOSUN_UI_SCREENSHOTS`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube_sim::{ControllerConfig, SimCluster, SimConfig};
use serde_json::{Value, json};

/// chromedriver on a free port and a headless Chromium session through it.
struct Browser {
    client: Client,
    driver: Killed,
    port: u16,
}

impl Browser {
    async fn start(profile: &Path) -> Self {
        let driver_bin = ["chromedriver", "/usr/bin/chromedriver"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()))
            .expect("chromedriver is not installed: run scripts/test-tools.sh (Debian's chromium and chromium-driver)");
        let port = free_port();
        let driver = Killed(
            Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        eventually("chromedriver to listen", WAIT, || async {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        })
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // The control plane's certificate chains to its own CA, which Chromium does not know.
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Self { client, driver, port }
    }

    /// The text of the elements `css` selects (empty when none).
    async fn text_of(&self, css: &str) -> String {
        let mut out = String::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            out.push_str(&e.text().await.unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Clicks the element `css` selects, finding it again when the page re-rendered in between
    /// (the live view refreshes on every change, which makes a found element stale).
    async fn click(&self, css: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.click().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if std::time::Instant::now() >= deadline => panic!("clicking {css}: {e}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the text of `<main>` satisfies `pred`.
    async fn wait_text(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_text_of("main", what, pred).await
    }

    /// Waits until the text of what `css` selects satisfies `pred`.
    async fn wait_text_of(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let t = self.text_of(css).await;
            if pred(&t) {
                return t;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; the page says:\n{t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, base: &str, token: &str) {
        self.client.goto(&format!("{base}/login")).await.unwrap();
        self.client.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
        self.client.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
        self.wait_text("the Application list after sign-in", |t| t.contains("Applications")).await;
    }

    /// Messages the browser logged at level SEVERE (console errors, failed loads, CSP
    /// violations), through chromedriver's log endpoint.
    async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().expect("a session id");
        let out = Command::new("curl")
            .args(["-s", "-X", "POST", "-H", "content-type: application/json", "-d", r#"{"type":"browser"}"#])
            .arg(format!("http://127.0.0.1:{}/session/{session}/se/log", self.port))
            .output()
            .expect("curl runs");
        let v: Value = serde_json::from_slice(&out.stdout).expect("chromedriver answers the log request with JSON");
        v["value"]
            .as_array()
            .unwrap_or_else(|| panic!("chromedriver's browser log: {v}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: run scripts/test-tools.sh")
}

fn screenshots() -> PathBuf {
    std::env::var_os("BOSUN_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

fn ui_base(cp: &ControlPlane) -> String {
    let e: Value = serde_json::from_slice(&std::fs::read(cp.data_dir.join("endpoints.json")).unwrap()).unwrap();
    format!("https://{}", e["ui"].as_str().expect("endpoints.json names the dashboard"))
}

/// A Deployment that takes `rollout` to become available, and a ConfigMap.
fn manifests(image: &str, value: &str) -> String {
    format!("{}---\n{}", deployment("api", 2, image), configmap("settings", value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = GitRepo::new(root);
    repo.write("k8s/app.yaml", &manifests("nginx:1.25", "one"));
    let rev1 = repo.commit("initial");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    // Rollouts take long enough to see Progressing in the page.
    let sim = SimCluster::start(SimConfig {
        name: "kind-1".into(),
        controllers: ControllerConfig { rollout_delay: Duration::from_secs(3), ..ControllerConfig::default() },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let kubeconfig = root.join("kind-1.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(false)).unwrap();
    let cluster = Cluster { name: "kind-1".into(), sim, kubeconfig };
    let _agent = Agent::start(root, &cp, &cluster, &cp.add_cluster("kind-1"));
    // Automated, self-heal off: a hand edit stays until someone syncs.
    cp.create_app("backend", &repo.url, "k8s", "kind-1", &["--namespace", "default", "--auto-sync"]);
    let viewer: Value =
        serde_json::from_str(&cp.bosun_ok(&["credential", "create", "viewer", "--role", "readonly", "-o", "json"]))
            .unwrap();
    let viewer_token = viewer["token"].as_str().unwrap().to_string();
    cp.plant(&viewer_token);

    let base = ui_base(&cp);
    let b = Browser::start(&root.join("chromium-profile")).await;

    // Signed out, every page leads to the sign-in form.
    b.client.goto(&format!("{base}/apps/backend")).await.unwrap();
    assert!(b.client.current_url().await.unwrap().path().ends_with("/login"));
    b.screenshot("login").await;
    b.sign_in(&base, &cp.admin_token()).await;

    // The tile reaches Synced/Healthy (live, from the first render on).
    b.wait_text_of("li.tile", "backend Synced and Healthy", |t| {
        t.contains("backend") && t.contains("Synced") && t.contains("Healthy") && t.contains(&rev1[..7])
    })
    .await;
    b.client.execute("window.__sameDocument = 'yes'; return null;", vec![]).await.unwrap();
    b.screenshot("applications").await;

    // A commit and a refresh: Progressing, then Healthy at the new revision, without a reload.
    repo.write("k8s/app.yaml", &manifests("nginx:1.27", "one"));
    let rev2 = repo.commit("new image");
    cp.bosun_ok(&["app", "refresh", "backend"]);
    b.wait_text_of("li.tile", "backend Progressing after the commit", |t| t.contains("Progressing")).await;
    b.wait_text_of("li.tile", "backend Healthy at the new revision", |t| {
        t.contains(&rev2[..7]) && t.contains("Healthy") && !t.contains("Progressing")
    })
    .await;
    let same = b.client.execute("return window.__sameDocument || null;", vec![]).await.unwrap();
    assert_eq!(same, json!("yes"), "the page was updated in place, not reloaded");
    assert_ne!(rev1, rev2);

    // A hand edit with self-heal off: OutOfSync, and the diff names the field.
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    cms.patch(
        "settings",
        &PatchParams::apply("kubectl-edit").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"value": "edited by hand"}})),
    )
    .await
    .unwrap();
    b.client.goto(&format!("{base}/apps/backend")).await.unwrap();
    let page = b
        .wait_text_of("#diff-h, details.diff", "OutOfSync with a diff naming data.value", |t| t.contains("data.value"))
        .await;
    assert!(b.text_of("h1").await.contains("OutOfSync"));
    assert!(page.contains("ConfigMap") && page.contains("settings"), "{page}");
    b.screenshot("application-outofsync").await;

    // Sync from the page (the dialog lists what changes), then Synced again and healed.
    b.click("details.dialog summary.primary").await;
    let dialog = b.text_of("details.dialog[open] form").await;
    assert!(dialog.contains("settings"), "the sync dialog lists the object that changes: {dialog}");
    b.screenshot("sync-dialog").await;
    // A live refresh may re-render the page and close the dialog: open it again then.
    if b.client.find(Locator::Css("details.dialog[open]")).await.is_err() {
        b.click("details.dialog summary.primary").await;
    }
    b.click("details.dialog[open] button.primary").await;
    b.wait_text_of("h1", "backend Synced again after Sync", |t| t.contains("Synced") && !t.contains("OutOfSync")).await;
    eventually("the hand edit reverted by the sync", WAIT, || async {
        let cm = cms.get("settings").await.ok()?;
        (cm.data?.get("value")? == "one").then_some(())
    })
    .await;
    // The resource tree: the Deployment's ReplicaSet and its Pods under it.
    // (Kinds are drawn in capitals: compare without case.)
    let tree = b
        .wait_text_of("ul.tree", "the Deployment's ReplicaSet and Pods in the tree", |t| {
            let t = t.to_lowercase();
            t.contains("replicaset") && t.contains("pod") && !t.contains("progressing")
        })
        .await
        .to_lowercase();
    assert!(tree.find("deployment").unwrap() < tree.find("replicaset").unwrap(), "{tree}");
    b.screenshot("application").await;
    assert!(cp.logs().contains("action=\"SyncApplication\"") || cp.logs().contains("action=SyncApplication"));

    b.client.goto(&format!("{base}/fleet")).await.unwrap();
    b.wait_text("the fleet matrix", |t| t.contains("1 clusters × 1 Applications")).await;
    b.screenshot("fleet").await;
    b.client.goto(&format!("{base}/clusters")).await.unwrap();
    b.wait_text("the clusters page", |t| t.contains("kind-1") && t.contains("connected")).await;
    b.screenshot("clusters").await;

    // Sign out; sign in as readonly: no action buttons, and a forged POST is refused.
    b.client.find(Locator::Css("header form button")).await.unwrap().click().await.unwrap();
    b.wait_text("the sign-in page after sign-out", |t| t.contains("token")).await;
    b.sign_in(&base, &viewer_token).await;
    b.client.goto(&format!("{base}/apps/backend")).await.unwrap();
    b.wait_text("the Application page as readonly", |t| t.contains("Source and destination")).await;
    for sel in
        ["form[action$='/sync']", "form[action$='/refresh']", "form[action$='/delete']", "form[action*='/rollback/']"]
    {
        assert!(b.client.find_all(Locator::Css(sel)).await.unwrap().is_empty(), "readonly sees no {sel}");
    }
    let before = cp.logs().len();
    // The browser's own request carries the readonly session cookie and its CSRF token.
    let status = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch('/apps/backend/sync', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                   body: 'csrf=' + encodeURIComponent(csrf), redirect: 'manual'})
               .then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "a readonly session's POST is refused");
    // Without the CSRF token (a cross-site form would have none), refused as well.
    let status = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/apps/backend/refresh', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                   body: 'csrf=forged', redirect: 'manual'})
               .then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "a POST without the session's CSRF token is refused");
    eventually("both refusals audited", WAIT, || async {
        let log = cp.logs()[before..].to_string();
        let audited = |action: &str, outcome: &str| {
            log.lines()
                .any(|l| l.contains("audit") && l.contains(action) && l.contains(outcome) && l.contains("viewer"))
        };
        (audited("SyncApplication", "PermissionDenied") && audited("RefreshApplication", "CsrfRejected")).then_some(())
    })
    .await;
    b.screenshot("application-readonly").await;

    let errors = b.console_errors().await;
    // The two refused fetches above are expected failures (403); nothing else may be logged.
    let unexpected: Vec<&String> = errors.iter().filter(|e| !e.contains("403")).collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    let _ = b.client.close().await;
    drop(b.driver);
}
