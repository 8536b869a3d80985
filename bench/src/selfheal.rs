//! Self-heal: time from a hand edit (a server-side apply by another field manager, through
//! the kube API) to its revert by the agent; floor: a minimal healer (a plain `kube::Client`
//! watch that re-applies on any change), measured the same way.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use crate::report::{Report, ms};

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

pub async fn run(json_out: bool, edits: usize) -> anyhow::Result<()> {
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
    let floor = measure_edits(&floor_api, edits).await?;
    healer.abort();

    // Bosun: control plane, agent (resync far away: healing must come from watches), kube-sim.
    let sim = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await?;
    let kubeconfig = root.join("sim.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig(false))?;
    let repo = crate::fleet::Repo::init(root.join("repo"))?;
    repo.write("k8s/web.yaml", DEPLOYMENT)?;
    repo.commit("web")?;
    let data = root.join("cp");
    let endpoints = bosun_control_plane::spawn_local(&data, Duration::from_secs(180)).await?;
    let conn = bosun_cli::Connection::local(data.clone());
    let mut admin = bosun_cli::connect(&conn).await.map_err(|f| f.error)?;
    let token = bosun_cli::join_token(&mut admin, "bench", Duration::from_secs(600)).await.map_err(|f| f.error)?.token;
    let opts = crate::fleet::AgentOptions { resync: Duration::from_secs(600), ..Default::default() };
    let agent = crate::fleet::agent_config(&endpoints, &data, &root.join("agent"), &kubeconfig, &token, &opts)?;
    let _agent = crate::fleet::spawn_agent(agent);
    use bosun_cli::pb;
    let policy = bosun_core::SyncPolicy { automated: true, self_heal: true, ..Default::default() };
    let spec = pb::ApplicationSpec {
        source: Some(pb::Source { repo_url: repo.url(), path: "k8s".into(), ..Default::default() }),
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
    let samples = measure_edits(&api, edits).await?;
    let mut report = Report::new("self-heal: hand edit → reverted", "p99 ≤ 500 ms").param("edits", edits);
    let bosun = report.row("bosun", &samples);
    let floor = report.row("minimal healer", &floor);
    report.figure("ratio p50", ms(bosun.p50) / ms(floor.p50).max(1e-3), "x");
    report.print(json_out);
    Ok(())
}
