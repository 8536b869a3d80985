//! `bosun-bench`: measures what BRIEF.md §4 budgets, each figure beside a floor measured in
//! the same run on the same machine, so results read as ratios.
//!
//! - `self-heal`: time from a hand edit (through the kube API) to its revert by the agent,
//!   over N edits; floor: a minimal healer (a plain `kube::Client` watch that re-applies).
//! - `plan`: diff + plan of a 5,000-object Application; floor: hashing the same objects once
//!   (the bundle digest).
//!
//! `--json` prints one JSON object per benchmark instead of a table.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "bosun-bench", about = "Bosun benchmarks with same-run floors")]
struct Cli {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Hand edit → reverted, p50/p99 over N edits.
    SelfHeal {
        #[arg(long, default_value_t = 100)]
        edits: usize,
    },
    /// Diff + plan of an Application of N objects.
    Plan {
        #[arg(long, default_value_t = 5000)]
        objects: usize,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(json_out: bool, name: &str, unit: &str, samples: &mut [Duration], floor: &mut [Duration], budget: &str) {
    samples.sort();
    floor.sort();
    let (p50, p99, max) = (percentile(samples, 0.5), percentile(samples, 0.99), percentile(samples, 1.0));
    let (f50, f99) = (percentile(floor, 0.5), percentile(floor, 0.99));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let ratio = ms(p50) / ms(f50).max(1e-6);
    if json_out {
        println!(
            "{}",
            json!({"benchmark": name, "unit": unit, "n": samples.len(), "cores": cores, "profile": profile,
                   "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max), "floor_p50_ms": ms(f50), "floor_p99_ms": ms(f99),
                   "ratio_p50": ratio, "budget": budget})
        );
    } else {
        println!("{name} ({cores} cores, {profile} build, n={})", samples.len());
        println!("  {:<10} {:>10} {:>10} {:>10}", "", "p50 ms", "p99 ms", "max ms");
        println!("  {:<10} {:>10.2} {:>10.2} {:>10.2}", "bosun", ms(p50), ms(p99), ms(max));
        println!("  {:<10} {:>10.2} {:>10.2}", "floor", ms(f50), ms(f99));
        println!("  ratio p50: {ratio:.1}x · budget: {budget}");
    }
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(["-c", "user.email=bench@bosun.local", "-c", "user.name=bench", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default, labels: {app: web}}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: 'nginx:1.27'}]}\n";

/// Waits until the Deployment's replicas equal `want`, using a watch (no polling delay).
async fn until_replicas(api: &Api<Deployment>, want: i32, timeout: Duration) -> anyhow::Result<()> {
    let stream = watcher::watcher(api.clone(), watcher::Config::default().fields("metadata.name=web"));
    let mut stream = std::pin::pin!(stream);
    tokio::time::timeout(timeout, async {
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(d) | Event::InitApply(d)) = ev
                && d.spec.replicas == Some(want)
            {
                return Ok(());
            }
        }
        bail!("watch ended")
    })
    .await
    .context("timed out waiting for the revert")?
}

async fn measure_edits(api: &Api<Deployment>, edits: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(edits);
    for i in 0..edits {
        let edit = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 7 + (i % 3) as i32}});
        let t = Instant::now();
        api.patch("web", &PatchParams::apply("kubectl-edit").force(), &Patch::Apply(&edit)).await?;
        until_replicas(api, 2, Duration::from_secs(30)).await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

async fn self_heal(json_out: bool, edits: usize) -> anyhow::Result<()> {
    bosun_control_plane::install_crypto();
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();

    // Floor: a minimal healer — a kube watch that re-applies the desired object on any change.
    let floor_sim = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await?;
    let floor_client = kube::Client::try_from(kube::Config::new(floor_sim.url().parse()?))?;
    let floor_api: Api<Deployment> = Api::namespaced(floor_client.clone(), "default");
    let desired: Value = serde_json::from_str(&serde_json::to_string(
        &bosun_core::manifest::parse_file("d.yaml", DEPLOYMENT.as_bytes())?[0],
    )?)?;
    floor_api.patch("web", &PatchParams::apply("healer").force(), &Patch::Apply(&desired)).await?;
    let healer_api = floor_api.clone();
    let healer_desired = desired.clone();
    let healer = tokio::spawn(async move {
        let stream = watcher::watcher(healer_api.clone(), watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(d)) = ev
                && d.spec.replicas != Some(2)
            {
                let _ = healer_api
                    .patch("web", &PatchParams::apply("healer").force(), &Patch::Apply(&healer_desired))
                    .await;
            }
        }
    });
    let mut floor = measure_edits(&floor_api, edits).await?;
    healer.abort();

    // Bosun: control plane, agent (resync far away: healing must come from watches), kube-sim.
    let sim = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await?;
    let kubeconfig = root.join("sim.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(false))?;
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("k8s"))?;
    git(&repo, &["init", "-q"])?;
    std::fs::write(repo.join("k8s/web.yaml"), DEPLOYMENT)?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-qm", "web"])?;
    let data = root.join("cp");
    let endpoints = bosun_control_plane::spawn_local(&data, Duration::from_secs(180)).await?;
    let conn = bosun_cli::Connection {
        server: None,
        token: None,
        cert: None,
        key: None,
        ca_file: None,
        data_dir: data.clone(),
    };
    let mut admin = bosun_cli::connect(&conn).await.map_err(|f| f.error)?;
    let token = bosun_cli::join_token(&mut admin, "bench", Duration::from_secs(600)).await.map_err(|f| f.error)?.token;
    let agent = bosun_agent::Config::try_parse_from([
        "agent",
        "--control-plane",
        &format!("https://{}", endpoints.agent),
        "--join-url",
        &format!("https://{}", endpoints.join),
        "--join-token",
        &token,
        "--ca-file",
        data.join("ca.pem").to_str().unwrap(),
        "--state-dir",
        root.join("agent").to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--resync-interval",
        "10m",
    ])?;
    tokio::spawn(bosun_agent::run(agent));
    use bosun_cli::pb;
    let policy = bosun_core::SyncPolicy { automated: true, self_heal: true, ..Default::default() };
    let spec = pb::ApplicationSpec {
        source: Some(pb::Source {
            repo_url: format!("file://{}", repo.display()),
            path: "k8s".into(),
            ..Default::default()
        }),
        destination: Some(pb::Destination {
            cluster: "bench".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        sync_policy: Some(policy.into()),
        ..Default::default()
    };
    admin.create_application(pb::CreateApplicationRequest { name: "web".into(), spec: Some(spec) }).await?;
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    until_replicas(&api, 2, Duration::from_secs(30)).await.context("first sync")?;
    // Warm-up: the agent starts its watches after the first sync; measure the steady state.
    measure_edits(&api, 3).await?;
    let mut samples = measure_edits(&api, edits).await?;
    report(json_out, "self-heal: hand edit → reverted", "ms", &mut samples, &mut floor, "p99 ≤ 500 ms");
    Ok(())
}

fn plan_bench(json_out: bool, objects: usize, runs: usize) {
    let kinds = ["ConfigMap", "Service", "Deployment", "Secret", "ServiceAccount"];
    let desired: Vec<Value> = (0..objects)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let mut o = json!({"apiVersion": if kind == "Deployment" { "apps/v1" } else { "v1" }, "kind": kind,
                "metadata": {"name": format!("obj-{i}"), "namespace": format!("ns-{}", i % 20), "labels": {"app": "big", "i": i.to_string()},
                             "annotations": {"argocd.argoproj.io/sync-wave": ((i % 5) as i64 - 2).to_string()}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27", "env": [{"name": "I", "value": i.to_string()}]}]}}}});
            bosun_core::tracking::mark(&mut o, "big");
            o
        })
        .collect();
    let live: Vec<Value> = desired
        .iter()
        .map(|d| {
            let mut l = d.clone();
            l["metadata"]["uid"] = json!("u");
            l["metadata"]["resourceVersion"] = json!("1");
            l["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
            l["status"] = json!({"replicas": 2});
            l
        })
        .collect();
    let mut samples = Vec::new();
    let mut floor = Vec::new();
    let mut parts = [Duration::ZERO; 3];
    for _ in 0..runs {
        let t = Instant::now();
        let p = bosun_core::plan::plan(&desired).expect("valid annotations");
        let t_plan = t.elapsed();
        let to_apply =
            desired.iter().zip(&live).filter(|(d, l)| bosun_core::diff::needs_apply(d, Some(l), &[])).count();
        let t_diff = t.elapsed();
        let inventory: Vec<_> = desired.iter().filter_map(bosun_core::ObjectRef::of).collect();
        let prune = bosun_core::plan::prune_candidates(&inventory, &inventory);
        samples.push(t.elapsed());
        parts[0] += t_plan;
        parts[1] += t_diff - t_plan;
        parts[2] += t.elapsed() - t_diff;
        assert!(p.steps.len() == 5 && to_apply == 0 && prune.is_empty(), "a synced Application plans nothing");
        let t = Instant::now();
        let b = bosun_core::Bundle::new(desired.clone());
        floor.push(t.elapsed());
        std::hint::black_box(b);
    }
    if !json_out {
        let n = runs.max(1) as u32;
        println!(
            "mean split: plan {:.1} ms · diff {:.1} ms · prune set {:.1} ms",
            ms(parts[0] / n),
            ms(parts[1] / n),
            ms(parts[2] / n)
        );
    }
    report(
        json_out,
        &format!("diff + plan of {objects} objects"),
        "ms",
        &mut samples,
        &mut floor,
        "≤ 50 ms (floor: bundle digest of the same objects)",
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::SelfHeal { edits } => self_heal(cli.json, edits).await,
        Bench::Plan { objects, runs } => {
            plan_bench(cli.json, objects, runs);
            Ok(())
        }
    }
}
