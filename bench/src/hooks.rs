//! Hooks and waves: one Application with a PreSync Job, three waves of Deployments and a
//! PostSync Job on one simulated cluster; each run is a commit (new image tags, so every
//! Deployment rolls out and every hook runs again) timed from the refresh to the control
//! plane recording Synced + Healthy at it.
//!
//! Floor, on its own simulated cluster: a minimal client driving the same steps with a plain
//! `kube::Client` — replace the PreSync Job and watch it complete, apply each wave and watch
//! its Deployments become healthy, then the PostSync Job — with no control plane, no status
//! reports and no state on disk.

use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_cli::pb;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::fleet::{AgentOptions, ControlPlane, Fleet, Repo, StatusWatch, app_spec, pairs, wait_connected};
use crate::report::{Report, ms};

const TIMEOUT: Duration = Duration::from_secs(120);

fn job(name: &str, hook: &str, run: u32) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {{argocd.argoproj.io/hook: {hook}}}\nspec:\n  backoffLimit: 0\n  template:\n    metadata: {{annotations: {{run: \"{run}\"}}}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: 'alpine:3.20'}}]\n"
    )
}

fn deployment(name: &str, wave: u32, run: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\n  annotations: {{argocd.argoproj.io/sync-wave: \"{wave}\"}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: main, image: 'nginx:1.{run}'}}]\n"
    )
}

/// The Application at run `run`: PreSync Job, waves 1–3 (db; api and worker; web), PostSync Job.
fn manifests(run: u32) -> String {
    [
        job("migrate", "PreSync", run),
        deployment("db", 1, run),
        deployment("api", 2, run),
        deployment("worker", 2, run),
        deployment("web", 3, run),
        job("smoke", "PostSync", run),
    ]
    .join("---\n")
}

/// The steps the floor drives: the objects of each, in order.
fn steps(run: u32) -> anyhow::Result<Vec<Vec<Value>>> {
    let objects = bosun_core::manifest::parse_file("app.yaml", manifests(run).as_bytes())?;
    let named = |names: &[&str]| -> Vec<Value> {
        names.iter().filter_map(|n| objects.iter().find(|o| o["metadata"]["name"] == *n).cloned()).collect()
    };
    Ok(vec![named(&["migrate"]), named(&["db"]), named(&["api", "worker"]), named(&["web"]), named(&["smoke"])])
}

fn api_of(client: &kube::Client, o: &Value) -> anyhow::Result<Api<DynamicObject>> {
    let (group, version) = match o["apiVersion"].as_str().unwrap_or_default().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), o["apiVersion"].as_str().unwrap_or_default().to_string()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, o["kind"].as_str().unwrap_or_default());
    Ok(Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk)))
}

/// One run of the floor: every step applied, then watched until healthy, in order. Hooks
/// are replaced as Argo CD's default delete policy (BeforeHookCreation) does.
async fn floor_run(client: &kube::Client, run: u32) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    for step in steps(run)? {
        let mut waits = Vec::new();
        for o in &step {
            let api = api_of(client, o)?;
            let name = o["metadata"]["name"].as_str().context("named object")?.to_string();
            // The write's answer carries the generation to wait for.
            let written = if o["kind"] == "Job" {
                let _ = api.delete(&name, &DeleteParams::foreground()).await;
                let gone =
                    kube::runtime::wait::await_condition(api.clone(), &name, kube::runtime::conditions::is_deleted(""));
                tokio::time::timeout(TIMEOUT, gone).await.context("old hook deleted")??;
                api.create(&Default::default(), &serde_json::from_value(o.clone())?).await?
            } else {
                api.patch(&name, &PatchParams::apply("floor").force(), &Patch::Apply(o)).await?
            };
            let generation = written.metadata.generation.unwrap_or(0);
            waits.push(async move { crate::floors::until_healthy(&api, &name, generation).await });
        }
        tokio::time::timeout(TIMEOUT, futures::future::try_join_all(waits)).await.context("step healthy")??;
    }
    Ok(t0.elapsed())
}

pub async fn run(json_out: bool, runs: u32) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();

    // Floor first, on its own cluster.
    let floor_sim = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await?;
    let floor_client = kube::Client::try_from(kube::Config::new(floor_sim.url().parse()?))?;
    floor_run(&floor_client, 0).await.context("floor warm-up")?;
    let mut floor = Vec::new();
    for run in 1..=runs {
        floor.push(floor_run(&floor_client, run).await.context("floor run")?);
    }
    drop(floor_sim);

    let repo = Repo::init(root.join("repo"))?;
    repo.write("apps/hooks/app.yaml", &manifests(0))?;
    let rev = repo.commit("run 0")?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut fleet = Fleet::new(root.to_path_buf());
    fleet.start_clusters(1).await?;
    // Resync far away: every step must be woken by the cluster's own changes.
    fleet.start_agents(&cp, &AgentOptions { resync: Duration::from_secs(600), ..Default::default() }).await?;
    let mut admin = cp.admin().await?;
    wait_connected(&mut admin, 1, TIMEOUT).await?;
    let all = pairs(&["hooks".to_string()], 1);
    let mut watch = StatusWatch::open(&mut admin, "").await?;
    let t0 = Instant::now();
    let spec = app_spec(&repo, "apps/hooks");
    admin.create_application(pb::CreateApplicationRequest { name: "hooks".into(), spec: Some(spec) }).await?;
    watch.until_synced(&all, &rev, t0, TIMEOUT).await.context("first sync")?;
    let mut bosun = Vec::new();
    for run in 1..=runs {
        repo.write("apps/hooks/app.yaml", &manifests(run))?;
        let rev = repo.commit(&format!("run {run}"))?;
        let t0 = Instant::now();
        admin.refresh_application(pb::RefreshApplicationRequest { name: "hooks".into() }).await?;
        let took = watch.until_synced(&all, &rev, t0, TIMEOUT).await.with_context(|| format!("run {run}"))?;
        bosun.extend(took);
    }
    fleet.shutdown().await;

    let mut report =
        Report::new("hooks and waves: commit → Synced+Healthy (PreSync, 3 waves, PostSync)", "≤ 1.5× the floor")
            .param("runs", runs);
    let b = report.row("bosun", &bosun);
    let f = report.row("minimal client", &floor);
    report.figure("ratio p50", ms(b.p50) / ms(f.p50).max(1e-3), "x");
    report.figure("ratio p99", ms(b.p99) / ms(f.p99).max(1e-3), "x");
    report.print(json_out);
    Ok(())
}
