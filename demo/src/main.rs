//! `bosun-demo`: the whole product on one machine with nothing installed — the control plane
//! on its embedded store, a simulated cluster (kube-sim), an agent joined over mTLS, and a
//! local Git repository holding the seed's FastAPI backend. It shows the first sync, a commit
//! flowing to the cluster, a hand edit healed, and a deleted file pruned. `--keep` leaves it
//! all running afterwards so the web dashboard can be browsed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: fake-news-backend
  labels: {app: backend}
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: backend}
  template:
    metadata:
      labels: {app: backend}
    spec:
      containers:
      - name: api
        image: myrepo/ai-detector-backend:IMAGE
        ports:
        - containerPort: 8000
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: fake-news-backend
spec:
  selector: {app: backend}
  ports:
  - port: 80
    targetPort: 8000
";

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: backend-config
data:
  MODEL_NAME: bert-base-uncased
";

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=demo@bosun.local",
            "-c",
            "user.name=demo",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git (the demo's repository is a local Git repository)")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn write(repo: &Path, path: &str, content: &str) -> anyhow::Result<()> {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().expect("has parent"))?;
    Ok(std::fs::write(p, content)?)
}

fn commit(repo: &Path, message: &str) -> anyhow::Result<String> {
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", message])?;
    let rev = git(repo, &["rev-parse", "HEAD"])?;
    println!("$ git commit -m {message:?}   # {}", &rev[..12]);
    Ok(rev)
}

async fn bosun(data_dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    println!("$ bosun {}", args.join(" "));
    let mut argv = vec!["bosun", "--data-dir", data_dir.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let cli = bosun_cli::Cli::try_parse_from(argv)?;
    bosun_cli::run(cli).await.map_err(|f| f.error)
}

/// The demo's options.
#[derive(Parser)]
#[command(about = "Bosun end to end on one machine: Git, control plane, agent and a simulated cluster")]
struct Args {
    /// Keep everything running after the story (until Ctrl-C) to browse the dashboard.
    #[arg(long)]
    keep: bool,
}

fn step(title: &str) {
    println!("\n== {title}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    bosun_control_plane::install_crypto();
    // Quiet by default so the story reads; RUST_LOG=info shows the structured logs too.
    bosun_process::init_logging("text", None, "warn");
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let data_dir = root.join("control-plane");
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo)?;

    step("a Git repository with the backend (k8s/backend), as in the seed chapter");
    git(&repo, &["init", "-q"])?;
    write(&repo, "k8s/backend/deployment.yaml", &DEPLOYMENT.replace("REPLICAS", "2").replace("IMAGE", "v1.0"))?;
    write(&repo, "k8s/backend/service.yaml", SERVICE)?;
    write(&repo, "k8s/backend/config.yaml", CONFIG)?;
    commit(&repo, "backend v1.0")?;

    step("a simulated cluster (kube-sim), the control plane and an agent");
    let sim =
        kube_sim::SimCluster::start(kube_sim::SimConfig { name: "kind-demo".into(), ..Default::default() }).await?;
    let kubeconfig = root.join("kind-demo.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(false))?;
    println!("kube-sim cluster kind-demo at {}", sim.url());
    let endpoints = bosun_control_plane::spawn_local(&data_dir, Duration::from_secs(2)).await?;
    println!(
        "control plane: admin {} · agents {} · join {} · dashboard https://{} (data in {})",
        endpoints.admin,
        endpoints.agent,
        endpoints.join,
        endpoints.ui,
        data_dir.display()
    );
    let conn = bosun_cli::Connection::local(data_dir.clone());
    let mut admin = bosun_cli::connect(&conn).await.map_err(|f| f.error)?;
    println!("$ bosun cluster add kind-demo");
    let token =
        bosun_cli::join_token(&mut admin, "kind-demo", Duration::from_secs(600)).await.map_err(|f| f.error)?.token;
    println!("cluster \"kind-demo\" registered; single-use join token issued");
    let agent_cfg = bosun_agent::Config::try_parse_from([
        "bosun-agent",
        "--control-plane",
        &format!("https://{}", endpoints.agent),
        "--join-url",
        &format!("https://{}", endpoints.join),
        "--join-token",
        &token,
        "--ca-file",
        data_dir.join("ca.pem").to_str().expect("utf-8"),
        "--state-dir",
        root.join("agent").to_str().expect("utf-8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--resync-interval",
        "1s",
    ])?;
    tokio::spawn(bosun_agent::run(agent_cfg));
    let repo_url = format!("file://{}", repo.display());
    let kube = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), "fake-news-app");
    let configmaps: Api<ConfigMap> = Api::namespaced(kube, "fake-news-app");

    step("register the backend Application: automated, prune, selfHeal");
    bosun(
        &data_dir,
        &[
            "app",
            "create",
            "fake-news-backend",
            "--repo",
            &repo_url,
            "--path",
            "k8s/backend",
            "--cluster",
            "kind-demo",
            "--namespace",
            "fake-news-app",
            "--create-namespace",
            "--auto-sync",
            "--prune",
            "--self-heal",
        ],
    )
    .await?;
    bosun(&data_dir, &["app", "wait", "fake-news-backend", "--timeout", "60s"]).await?;
    bosun(&data_dir, &["app", "get", "fake-news-backend"]).await?;

    step("a commit: image v2.0 and 4 replicas");
    write(&repo, "k8s/backend/deployment.yaml", &DEPLOYMENT.replace("REPLICAS", "4").replace("IMAGE", "v2.0"))?;
    let rev = commit(&repo, "backend v2.0, 4 replicas")?;
    wait_for_revision(&data_dir, &rev).await?;
    bosun(&data_dir, &["app", "wait", "fake-news-backend", "--timeout", "60s"]).await?;
    let d = deployments.get("fake-news-backend").await?;
    let image = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    println!("cluster: replicas {} image {image}", d.spec.replicas.unwrap_or_default());

    step("someone scales the Deployment by hand to 10; selfHeal puts Git's 4 back");
    deployments
        .patch("fake-news-backend", &PatchParams::apply("kubectl-edit").force(), &Patch::Apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fake-news-backend"}, "spec": {"replicas": 10}})))
        .await?;
    println!("cluster: replicas 10 (hand edit)");
    let healed = poll(Duration::from_secs(30), || async {
        deployments.get("fake-news-backend").await.ok().and_then(|d| d.spec.replicas).filter(|r| *r == 4)
    })
    .await;
    println!("cluster: replicas {} (healed)", healed.context("the hand edit was not healed")?);

    step("a file deleted from Git is pruned");
    std::fs::remove_file(repo.join("k8s/backend/config.yaml"))?;
    let rev = commit(&repo, "drop backend-config")?;
    wait_for_revision(&data_dir, &rev).await?;
    let gone = poll(Duration::from_secs(30), || async {
        configmaps.get_opt("backend-config").await.ok().and_then(|c| c.is_none().then_some(()))
    })
    .await;
    gone.context("backend-config was not pruned")?;
    println!("cluster: configmap/backend-config deleted");
    bosun(&data_dir, &["app", "get", "fake-news-backend"]).await?;
    println!("\ndemo finished: Git → control plane → agent (mTLS) → cluster, and back");
    if args.keep {
        println!(
            "\ndashboard: https://{} (the certificate is the demo's own CA: {})\n\
             sign in with the admin token in {}\nCtrl-C stops the demo",
            endpoints.ui,
            data_dir.join("ca.pem").display(),
            data_dir.join("admin-token").display()
        );
        tokio::signal::ctrl_c().await?;
    }
    // Exit now: tearing the simulated cluster down under a running agent would only log noise.
    drop(tmp);
    std::process::exit(0)
}

async fn poll<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Waits until the control plane has picked up `rev` (it polls Git every 2 s in the demo).
async fn wait_for_revision(data_dir: &Path, rev: &str) -> anyhow::Result<()> {
    let conn = bosun_cli::Connection::local(data_dir.to_path_buf());
    let admin = bosun_cli::connect(&conn).await.map_err(|f| f.error)?;
    let seen = poll(Duration::from_secs(30), || {
        let mut admin = admin.clone();
        async move {
            let app = admin
                .get_application(bosun_cli::pb::GetApplicationRequest { name: "fake-news-backend".into() })
                .await
                .ok()?
                .into_inner();
            let clusters = app.status?.clusters;
            clusters.first().filter(|c| c.revision == rev).map(|_| ())
        }
    })
    .await;
    seen.with_context(|| format!("revision {rev} did not reach the cluster"))
}
