//! `kube-sim`: runs simulated Kubernetes API servers (a test double) from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kube_sim::{ControllerConfig, SimCluster, SimConfig};

#[derive(Parser)]
#[command(
    name = "kube-sim",
    version,
    about = "A simulated Kubernetes API server for tests, demos and benchmarks (a test double, not a cluster)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one or more simulated clusters until interrupted.
    Serve(ServeArgs),
    /// Start a simulated cluster and drive it with kubectl: a rollout, a failure, a deletion.
    Demo,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the first cluster; further clusters take the following ports (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    addr: SocketAddr,
    /// Number of simulated clusters to serve.
    #[arg(long, default_value_t = 1)]
    clusters: usize,
    /// Serve HTTPS with a generated CA; clients authenticate with a client certificate or bearer token.
    #[arg(long)]
    tls: bool,
    /// Bearer token accepted over HTTPS (repeatable; one is generated when none is given).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Write a kubeconfig per cluster to this directory (`<name>.kubeconfig`).
    #[arg(long)]
    kubeconfig_dir: Option<PathBuf>,
    /// Delay before simulated controllers report workloads ready, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    rollout_delay_ms: u64,
    /// Time after which a failing Deployment reports ProgressDeadlineExceeded, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    progress_deadline_ms: u64,
    /// Do not create ReplicaSets and Pods for Deployments (less memory per cluster).
    #[arg(long)]
    no_pods: bool,
    /// Number of simulated Nodes per cluster.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Cluster name prefix.
    #[arg(long, default_value = "kube-sim")]
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Demo => demo().await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut clusters = Vec::new();
    for i in 0..a.clusters.max(1) {
        let mut bind = a.addr;
        if bind.port() != 0 {
            bind.set_port(a.addr.port() + i as u16);
        }
        let name = if a.clusters > 1 { format!("{}-{i}", a.name) } else { a.name.clone() };
        let cfg = SimConfig {
            name: name.clone(),
            bind,
            tls: a.tls,
            tokens: a.tokens.clone(),
            controllers: ControllerConfig {
                rollout_delay: Duration::from_millis(a.rollout_delay_ms),
                progress_deadline: Duration::from_millis(a.progress_deadline_ms),
                simulate_pods: !a.no_pods,
                nodes: a.nodes,
            },
            ..SimConfig::default()
        };
        let c = SimCluster::start(cfg).await?;
        if let Some(dir) = &a.kubeconfig_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{name}.kubeconfig"));
            std::fs::write(&path, c.kubeconfig(false)).with_context(|| format!("writing {}", path.display()))?;
            println!("{name}: {} (kubeconfig {})", c.url(), path.display());
        } else {
            println!("{name}: {}", c.url());
        }
        clusters.push(c);
    }
    println!("kube-sim is a simulated API server for tests; press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

const DEMO_APP: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend
  namespace: demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: backend}
  template:
    metadata:
      labels: {app: backend}
    spec:
      containers:
      - name: api
        image: IMAGE
        ports:
        - containerPort: 8000
---
apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: demo
spec:
  type: LoadBalancer
  selector: {app: backend}
  ports:
  - port: 80
    targetPort: 8000
";

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .context("running kubectl (the demo drives kube-sim with kubectl; install it first)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "kubectl {} failed: {text}", args.join(" "));
    Ok(text)
}

async fn demo() -> anyhow::Result<()> {
    let cfg = SimConfig {
        controllers: ControllerConfig {
            rollout_delay: Duration::from_millis(800),
            progress_deadline: Duration::from_secs(3),
            ..ControllerConfig::default()
        },
        ..SimConfig::default()
    };
    let cluster = SimCluster::start(cfg).await?;
    let dir = std::env::temp_dir().join(format!("kube-sim-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig(false))?;
    let manifest = dir.join("app.yaml");
    let step = |title: &str| println!("\n== {title}");
    let show = |args: &[&str]| -> anyhow::Result<()> {
        println!("$ kubectl {}", args.join(" "));
        print!("{}", kubectl(&kubeconfig, args)?);
        Ok(())
    };
    println!("kube-sim (a simulated API server, not a cluster) is serving {}", cluster.url());

    step("server-side apply of a backend, then wait for the simulated rollout");
    std::fs::write(&manifest, DEMO_APP.replace("IMAGE", "ghcr.io/example/backend:1.0"))?;
    let file = manifest.to_string_lossy().into_owned();
    show(&["apply", "--server-side", "--validate=false", "-f", &file])?;
    show(&["rollout", "status", "-n", "demo", "deploy/backend", "--timeout=30s"])?;
    show(&[
        "wait",
        "-n",
        "demo",
        "--for=jsonpath={.status.loadBalancer.ingress[0].ip}",
        "svc/backend",
        "--timeout=30s",
    ])?;
    show(&["get", "deploy,rs,pods,svc", "-n", "demo"])?;

    step("a broken image (tag `fail`) never becomes ready: ProgressDeadlineExceeded");
    std::fs::write(&manifest, DEMO_APP.replace("IMAGE", "ghcr.io/example/backend:fail"))?;
    show(&["apply", "--server-side", "--validate=false", "-f", &file])?;
    show(&[
        "wait",
        "-n",
        "demo",
        "--for=jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}=ProgressDeadlineExceeded",
        "deploy/backend",
        "--timeout=30s",
    ])?;
    show(&["get", "pods", "-n", "demo"])?;

    step("deleting the namespace removes everything in it");
    show(&["delete", "namespace", "demo", "--wait=true", "--timeout=30s"])?;
    show(&["get", "namespaces"])?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("\ndemo finished");
    Ok(())
}
