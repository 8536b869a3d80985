//! Fan-out and scale, over the fleet harness.
//!
//! - **fan-out**: one Application (5 objects) on every one of N clusters; the time from the
//!   refresh of a new commit to each cluster reporting Synced + Healthy at it, as the control
//!   plane records the reports (`WatchStatus`, opened before the refresh). Floors in the same
//!   run: delivery and apply (see `floors`), whose objects are removed before Bosun's run.
//! - **scale**: N clusters with connected agents and no Applications; the time from creating
//!   10 Applications to all N × 10 pairs Synced + Healthy. Floor in the same run: the same
//!   objects installed on the same clusters by plain clients (see `floors::install`), then
//!   removed (`floors::remove`), so both start from empty clusters.

use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_cli::pb;

use crate::fleet::{
    AgentOptions, ControlPlane, Fleet, Repo, StatusWatch, app_manifests, app_spec, pairs, wait_connected,
};
use crate::proc::Process;
use crate::report::{Report, ms};

/// How long any one phase may take before the run is declared failed.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

fn objects(name: &str, version: u32) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(bosun_core::manifest::parse_file("app.yaml", app_manifests(name, version).as_bytes())?)
}

pub async fn fanout(json_out: bool, n: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let repo = Repo::init(root.join("repo"))?;
    repo.write("apps/web/app.yaml", &app_manifests("web", 1))?;
    let rev1 = repo.commit("web v1")?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut fleet = Fleet::new(root.to_path_buf());
    fleet.start_clusters(n).await?;

    // Floors first, while nothing else runs: the same payload size, the same clusters.
    let payload = serde_json::to_vec(&objects("web", 2)?)?.len();
    let delivery = crate::floors::delivery(n, payload).await.context("delivery floor")?;
    let urls: Vec<String> = fleet.clusters.iter().map(|c| c.url.clone()).collect();
    let (apply, floor_cpu) =
        crate::floors::apply(&urls, &objects("floor", 1)?, &objects("floor", 2)?, &fleet.processes())
            .await
            .context("apply floor")?;
    crate::floors::remove(&urls, &[objects("floor", 2)?], "floor", PHASE_TIMEOUT)
        .await
        .context("removing the floor")?;

    fleet.start_agents(&cp, &AgentOptions::default()).await?;
    let mut admin = cp.admin().await?;
    let joined = wait_connected(&mut admin, n, PHASE_TIMEOUT).await?;
    let apps = vec!["web".to_string()];
    let all = pairs(&apps, n);
    let mut watch = StatusWatch::open(&mut admin, "").await?;
    let t0 = Instant::now();
    admin
        .create_application(pb::CreateApplicationRequest {
            name: "web".into(),
            spec: Some(app_spec(&repo, "apps/web")),
        })
        .await?;
    let first = watch.until_synced(&all, &rev1, t0, PHASE_TIMEOUT).await.context("first sync")?;

    repo.write("apps/web/app.yaml", &app_manifests("web", 2))?;
    let rev2 = repo.commit("web v2")?;
    let me = Process::new(std::process::id());
    let (cpu_cp, cpu_me) = (cp.process.cpu()?, me.cpu()?);
    let profiler = crate::proc::Profiler::start(&[me, cp.process])?;
    let page = crate::ui::LivePage::open(&cp).await.context("opening a dashboard page")?;
    let t0 = Instant::now();
    admin.refresh_application(pb::RefreshApplicationRequest { name: "web".into() }).await?;
    let samples = watch.until_synced(&all, &rev2, t0, PHASE_TIMEOUT).await.context("new commit")?;
    let (page_events, page_most, page_secs) = page.stop();
    drop(profiler);
    let (cpu_cp, cpu_me) = (cp.process.cpu()? - cpu_cp, me.cpu()? - cpu_me);

    let mut report = Report::new(
        "fan-out: commit → every cluster Synced+Healthy (one Application, 5 objects)",
        "p99 ≤ 2 s and ≤ 3× (delivery + apply floor)",
    )
    .param("clusters", n)
    .param("payload_bytes", payload);
    let bosun = report.row("bosun", &samples);
    let d = report.row("delivery floor", &delivery);
    let a = report.row("apply floor", &apply);
    report.row("first sync", &first);
    report.figure("ratio p99 to floors", ms(bosun.p99) / (ms(d.p99) + ms(a.p99)).max(1e-3), "x");
    report.figure("ratio p50 to floors", ms(bosun.p50) / (ms(d.p50) + ms(a.p50)).max(1e-3), "x");
    report.figure("total", ms(bosun.max), "ms");
    report.figure("agents joined and connected in", joined.as_secs_f64(), "s");
    report.figure("control plane CPU during the fan-out", cpu_cp.as_secs_f64(), "s");
    report.figure("agents + simulated clusters CPU during the fan-out", cpu_me.as_secs_f64(), "s");
    // Both runs keep the two cores busy: their CPU ratio bounds the latency ratio.
    report.figure("apply floor CPU (clients + simulated clusters)", floor_cpu.as_secs_f64(), "s");
    report.figure(
        "ratio CPU to the apply floor's",
        (cpu_cp + cpu_me).as_secs_f64() / floor_cpu.as_secs_f64().max(1e-6),
        "x",
    );
    report.figure("dashboard page: live updates received", page_events as f64, "");
    report.figure("dashboard page: live updates per second", page_events as f64 / page_secs.max(1e-3), "/s");
    report.figure("dashboard page: most live updates in one second", page_most as f64, "");
    report.print(json_out);
    fleet.shutdown().await;
    Ok(())
}

pub async fn scale(json_out: bool, n: usize, apps: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let (repo, names, rev) = Repo::with_apps(root.join("repo"), apps)?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut fleet = Fleet::new(root.to_path_buf());
    let t = Instant::now();
    fleet.start_clusters_apart(n)?;
    let clusters_up = t.elapsed();
    // The floor first, while nothing else runs: the same Applications' objects (under other
    // names) installed by plain clients on the same clusters.
    let urls: Vec<String> = fleet.clusters.iter().map(|c| c.url.clone()).collect();
    let sets = names.iter().map(|name| objects(&format!("floor-{name}"), 1)).collect::<anyhow::Result<Vec<_>>>()?;
    let fleet_cpu = |fleet: &Fleet| crate::proc::cpu_of(&fleet.processes());
    let floor_cpu = fleet_cpu(&fleet)?;
    let floor = crate::floors::install(&urls, &sets).await.context("install floor")?;
    let floor_cpu = fleet_cpu(&fleet)? - floor_cpu;
    crate::floors::remove(&urls, &sets, "floor", PHASE_TIMEOUT).await.context("removing the floor")?;
    fleet.start_agents(&cp, &AgentOptions::default()).await?;
    let mut admin = cp.admin().await?;
    let joined = wait_connected(&mut admin, n, PHASE_TIMEOUT).await?;

    let all = pairs(&names, n);
    let mut watch = StatusWatch::open(&mut admin, "").await?;
    let (cpu_cp, cpu_me) = (cp.process.cpu()?, fleet_cpu(&fleet)?);
    let mut profiled = fleet.processes();
    profiled.push(cp.process);
    let profiler = crate::proc::Profiler::start(&profiled)?;
    let t0 = Instant::now();
    for name in &names {
        let spec = app_spec(&repo, &format!("apps/{name}"));
        admin.create_application(pb::CreateApplicationRequest { name: name.clone(), spec: Some(spec) }).await?;
    }
    let created = t0.elapsed();
    let samples = watch.until_synced(&all, &rev, t0, PHASE_TIMEOUT).await?;
    drop(profiler);
    let (cpu_cp, cpu_me) = (cp.process.cpu()? - cpu_cp, fleet_cpu(&fleet)? - cpu_me);

    let mut report = Report::new(
        &format!("scale: {n} clusters × {apps} Applications, created → all Synced+Healthy"),
        "all Synced ≤ 20 s (1,000 × 10, issue 16)",
    )
    .param("clusters", n)
    .param("applications", apps)
    .param("objects_per_application", 5);
    let s = report.row("pairs", &samples);
    let f = report.row("install floor", &floor);
    report.figure("all Synced+Healthy after", s.max.as_secs_f64(), "s");
    report.figure("floor: all installed and healthy after", f.max.as_secs_f64(), "s");
    report.figure("ratio all to floor", ms(s.max) / ms(f.max).max(1e-3), "x");
    report.figure("ratio p50 to floor", ms(s.p50) / ms(f.p50).max(1e-3), "x");
    report.figure("Applications created in", created.as_secs_f64(), "s");
    report.figure("simulated clusters started in", clusters_up.as_secs_f64(), "s");
    report.figure("agents joined and connected in", joined.as_secs_f64(), "s");
    report.figure("control plane CPU", cpu_cp.as_secs_f64(), "s");
    report.figure("agents + simulated clusters CPU", cpu_me.as_secs_f64(), "s");
    // Both runs keep the two cores busy: their CPU ratio bounds the time ratio.
    report.figure("install floor CPU (clients + simulated clusters)", floor_cpu.as_secs_f64(), "s");
    report.figure(
        "ratio CPU to the install floor's",
        (cpu_cp + cpu_me).as_secs_f64() / floor_cpu.as_secs_f64().max(1e-6),
        "x",
    );
    report.print(json_out);
    fleet.shutdown().await;
    Ok(())
}
