//! Footprint and steady state, over the fleet harness: what Bosun costs when nothing changes.
//!
//! - **footprint**: the control plane's resident memory per connected agent (RSS with N agents
//!   connected — with nothing assigned, then with one Application synced on each — minus RSS
//!   with no agent, over N); one agent's resident memory with 10 Applications / 100 objects, the agent
//!   in its own process; idle CPU of both over a window.
//! - **steady-state**: status messages the control plane receives per agent per minute once
//!   everything is Synced and nothing changes (read from `bosun_status_reports_total`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_cli::pb;

use crate::fleet::{
    AgentOptions, ChildGuard, ControlPlane, Fleet, Repo, StatusWatch, agent_args, app_manifests, app_spec, pairs,
    wait_connected,
};
use crate::proc::Process;
use crate::report::Report;

const PHASE_TIMEOUT: Duration = Duration::from_secs(300);
const MIB: f64 = 1024.0 * 1024.0;

/// Waits until the control plane has received no status report for `quiet`.
async fn until_quiet(cp: &ControlPlane, quiet: Duration, timeout: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    let (mut last, mut since) = (cp.status_reports().await?, Instant::now());
    while since.elapsed() < quiet {
        anyhow::ensure!(t.elapsed() < timeout, "status reports kept arriving for {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = cp.status_reports().await?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(())
}

pub async fn footprint(json_out: bool, n: usize, window: Duration) -> anyhow::Result<()> {
    // The floor first, while nothing else runs: what a bare tonic server over mTLS keeps per
    // client holding the same two streams an agent holds.
    let (floor_watch, floor_both) = crate::floors::connection_memory(n).await.context("connection floor")?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let repo = Repo::init(root.join("repo"))?;
    repo.write("apps/web/app.yaml", &app_manifests("web", 1))?;
    let solo_apps: Vec<String> = (0..10).map(|i| format!("solo{i}")).collect();
    for name in &solo_apps {
        // Ten objects per Application: two sets of five.
        let text = format!("{}---\n{}", app_manifests(&format!("{name}-a"), 1), app_manifests(&format!("{name}-b"), 1));
        repo.write(&format!("solo/{name}/app.yaml"), &text)?;
    }
    let rev = repo.commit("apps")?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut admin = cp.admin().await?;
    until_quiet(&cp, Duration::from_secs(2), PHASE_TIMEOUT).await?;
    let cp_rss_empty = cp.process.rss()?;

    // The control plane with N agents connected (nothing assigned), then with "web" synced
    // on every cluster.
    let mut fleet = Fleet::new(root.to_path_buf());
    fleet.start_clusters(n).await?;
    fleet.start_agents(&cp, &AgentOptions::default()).await?;
    wait_connected(&mut admin, n, PHASE_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cp_rss_connected = cp.process.rss()?;
    let mut watch = StatusWatch::open(&mut admin, "").await?;
    admin
        .create_application(pb::CreateApplicationRequest {
            name: "web".into(),
            spec: Some(app_spec(&repo, "apps/web")),
        })
        .await?;
    watch.until_synced(&pairs(&["web".into()], n), &rev, Instant::now(), PHASE_TIMEOUT).await?;
    until_quiet(&cp, Duration::from_secs(3), PHASE_TIMEOUT).await?;
    let cp_rss = cp.process.rss()?;
    let cp_cpu = cp.process.cpu_share(window).await?;
    let per_agent = |rss: u64| rss.saturating_sub(cp_rss_empty) as f64 / n.max(1) as f64 / 1024.0;

    // One agent in its own process, 10 Applications / 100 objects.
    let paths: Vec<(String, String)> = solo_apps.iter().map(|n| (n.clone(), format!("solo/{n}"))).collect();
    let solo = SoloAgent::start(&cp, root, &AgentOptions::default(), &[]).await?;
    solo.sync(&mut admin, &repo, &paths, &rev).await.context("solo agent sync")?;
    until_quiet(&cp, Duration::from_secs(3), PHASE_TIMEOUT).await?;
    let agent = solo.process;
    let agent_cpu = agent.cpu_share(window).await?;
    let (agent_rss, agent_anonymous) = (agent.rss()?, agent.anonymous()?);

    let mut report = Report::new(
        "footprint",
        "control plane ≤ 64 KiB per connected agent; agent ≤ 25 MiB with 10 Applications / 100 objects",
    )
    .param("clusters", n)
    .param("idle_window_s", window.as_secs())
    .param("agent_program", agent_program_name());
    report.figure("control plane memory per connected agent, one Application synced", per_agent(cp_rss), "KiB");
    report.figure("control plane memory per connected agent, nothing assigned", per_agent(cp_rss_connected), "KiB");
    report.figure(
        "floor: bare tonic mTLS server, memory per client with its assignment stream open",
        floor_watch / 1024.0,
        "KiB",
    );
    report.figure("floor: the same, with its report stream open too", floor_both / 1024.0, "KiB");
    // An agent opens both streams as it connects, whether or not it has anything to report.
    report.figure(
        "ratio per agent to the floor (both streams), nothing assigned",
        per_agent(cp_rss_connected) * 1024.0 / floor_both.max(1.0),
        "x",
    );
    report.figure(
        "ratio per agent to the floor (both streams), one Application synced",
        per_agent(cp_rss) * 1024.0 / floor_both.max(1.0),
        "x",
    );
    report.figure("control plane RSS, no agent", cp_rss_empty as f64 / MIB, "MiB");
    report.figure("control plane RSS, all agents connected", cp_rss as f64 / MIB, "MiB");
    report.figure("control plane idle CPU", cp_cpu * 100.0, "% of a core");
    report.figure("agent RSS (10 Applications, 100 objects)", agent_rss as f64 / MIB, "MiB");
    report.figure("agent anonymous memory (its heap and stacks)", agent_anonymous as f64 / MIB, "MiB");
    report.figure("agent idle CPU", agent_cpu * 100.0, "% of a core");
    report.print(json_out);
    fleet.shutdown().await;
    Ok(())
}

pub async fn steady_state(json_out: bool, n: usize, apps: usize, window: Duration) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let (repo, names, rev) = Repo::with_apps(root.join("repo"), apps)?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut admin = cp.admin().await?;
    let mut fleet = Fleet::new(root.to_path_buf());
    fleet.start_clusters(n).await?;
    let opts = AgentOptions::default();
    fleet.start_agents(&cp, &opts).await?;
    wait_connected(&mut admin, n, PHASE_TIMEOUT).await?;
    let mut watch = StatusWatch::open(&mut admin, "").await?;
    for name in &names {
        let spec = app_spec(&repo, &format!("apps/{name}"));
        admin.create_application(pb::CreateApplicationRequest { name: name.clone(), spec: Some(spec) }).await?;
    }
    watch.until_synced(&pairs(&names, n), &rev, Instant::now(), PHASE_TIMEOUT).await?;
    until_quiet(&cp, Duration::from_secs(3), PHASE_TIMEOUT).await?;
    let before = cp.status_reports().await?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let messages = cp.status_reports().await? - before;
    let minutes = t.elapsed().as_secs_f64() / 60.0;

    let mut report = Report::new("steady state: status messages when nothing changes", "0 per agent per minute")
        .param("clusters", n)
        .param("applications", apps)
        .param("window_s", window.as_secs())
        .param("agent_resync_s", opts.resync.as_secs());
    report.figure("status messages in the window", messages as f64, "messages");
    report.figure("per agent per minute", messages as f64 / n.max(1) as f64 / minutes, "messages");
    report.figure("agent resync passes in the window", window.as_secs_f64() / opts.resync.as_secs_f64(), "passes");
    report.print(json_out);
    fleet.shutdown().await;
    Ok(())
}

/// One agent in its own process with `apps` Applications of `objects` objects each, all
/// Synced: the CPU one periodic resync costs, and its wall time (from the agent's own log:
/// the resync tick to the last Application's pass after it).
pub async fn resync(
    json_out: bool,
    apps: usize,
    objects: usize,
    interval: Duration,
    resyncs: u32,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let repo = Repo::init(root.join("repo"))?;
    let names: Vec<String> = (0..apps).map(|i| format!("app{i:03}")).collect();
    for name in &names {
        // Sets of five objects (ConfigMap, Secret, ServiceAccount, Service, Deployment).
        let sets: Vec<String> = (0..objects.div_ceil(5)).map(|j| app_manifests(&format!("{name}-{j}"), 1)).collect();
        repo.write(&format!("many/{name}/app.yaml"), &sets.join("---\n"))?;
    }
    let rev = repo.commit("apps")?;
    let cp = ControlPlane::start(&root.join("cp")).await?;
    let mut admin = cp.admin().await?;
    let opts = AgentOptions { resync: interval, ..Default::default() };
    let solo = SoloAgent::start(&cp, root, &opts, &["--log-format", "json"]).await?;
    let paths: Vec<(String, String)> = names.iter().map(|n| (n.clone(), format!("many/{n}"))).collect();
    let t0 = Instant::now();
    solo.sync(&mut admin, &repo, &paths, &rev).await.context("first sync")?;
    let first_sync = t0.elapsed();
    until_quiet(&cp, Duration::from_secs(3), PHASE_TIMEOUT).await?;
    let (agent, log) = (solo.process, solo.log.clone());

    // Whole resync periods: the CPU of the window over the resyncs in it.
    let since = std::time::SystemTime::now();
    let (cpu0, rss) = (agent.cpu()?, agent.rss()?);
    tokio::time::sleep(interval * resyncs).await;
    let cpu = (agent.cpu()? - cpu0) / resyncs;
    let passes = resync_passes(&std::fs::read_to_string(&log)?, since);
    anyhow::ensure!(!passes.is_empty(), "no resync seen in the agent's log ({})", log.display());

    let mut report = Report::new(&format!("one agent, {apps} Applications × {objects} objects: periodic resync"), "—")
        .param("applications", apps)
        .param("objects_per_application", objects)
        .param("resync_interval_s", interval.as_secs())
        .param("agent_program", agent_program_name());
    report.row("resync wall time (tick → last pass)", &passes);
    report.figure("CPU per resync", cpu.as_secs_f64() * 1000.0, "ms");
    report.figure("CPU per Application pass", cpu.as_secs_f64() * 1000.0 / apps.max(1) as f64, "ms");
    report.figure("first sync of all Applications", first_sync.as_secs_f64(), "s");
    report.figure("agent RSS", rss as f64 / MIB, "MiB");
    report.print(json_out);
    Ok(())
}

/// From the agent's JSON log: for each resync tick after `since`, the time from the tick to
/// the last `reconciled` line before the next tick.
fn resync_passes(log: &str, since: std::time::SystemTime) -> Vec<Duration> {
    let mut ticks: Vec<(std::time::SystemTime, Option<std::time::SystemTime>)> = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(at) = v["timestamp"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else { continue };
        match v["message"].as_str() {
            Some(m) if m.starts_with("resync") && at >= since => ticks.push((at, None)),
            Some("reconciled") => {
                if let Some((_, last)) = ticks.last_mut() {
                    *last = Some(at);
                }
            }
            _ => {}
        }
    }
    ticks.into_iter().filter_map(|(t, last)| last?.duration_since(t).ok()).collect()
}

/// The program the solo agent runs, and the arguments before the agent's own. The real
/// `bosun-agent` when it was built beside this binary (`cargo build --release -p bosun-agent -p
/// bosun-bench`), so that its resident memory is the agent's: this binary re-executed with
/// `agent` maps the code of the whole workspace (control plane, kube-sim), and the kernel maps
/// pages of it that the other processes of the run brought into the page cache.
fn agent_program() -> anyhow::Result<(std::path::PathBuf, Vec<&'static str>)> {
    let bench = std::env::current_exe()?;
    let agent = bench.with_file_name("bosun-agent");
    Ok(if agent.is_file() { (agent, vec![]) } else { (bench, vec!["agent"]) })
}

/// Which program [`agent_program`] runs, for the report.
fn agent_program_name() -> String {
    match agent_program() {
        Ok((_, prefix)) if prefix.is_empty() => "bosun-agent".into(),
        _ => "bosun-bench agent (bosun-agent not built beside it)".into(),
    }
}

/// One more cluster, `solo`, with its agent in its own process (so its memory and CPU are its
/// own); the agent's debug log of its controller goes to `log`.
struct SoloAgent {
    process: Process,
    log: std::path::PathBuf,
    _child: ChildGuard,
    _sim: kube_sim::SimCluster,
}

impl SoloAgent {
    async fn start(
        cp: &ControlPlane,
        root: &std::path::Path,
        opts: &AgentOptions,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut admin = cp.admin().await?;
        let sim =
            kube_sim::SimCluster::start(kube_sim::SimConfig { name: "solo".into(), ..Default::default() }).await?;
        let dir = root.join("solo");
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, sim.kubeconfig(false))?;
        let token =
            bosun_cli::join_token(&mut admin, "solo", Duration::from_secs(600)).await.map_err(|f| f.error)?.token;
        let mut args = agent_args(&cp.endpoints, &cp.data, &dir.join("state"), &kubeconfig, &token, opts)?;
        args.extend(extra.iter().map(|a| a.to_string()));
        let log = dir.join("agent.log");
        let (program, prefix) = agent_program()?;
        let child = Command::new(program)
            .args(prefix)
            .args(args)
            .env("RUST_LOG", "warn,bosun_agent::controller=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.join("agent.err"))?)
            .spawn()
            .context("starting the agent")?;
        Ok(Self { process: Process::new(child.id()), log, _child: ChildGuard(child), _sim: sim })
    }

    /// Creates one Application per (name, path) on `solo` and waits until all are Synced at `rev`.
    async fn sync(
        &self,
        admin: &mut bosun_cli::Admin,
        repo: &Repo,
        apps: &[(String, String)],
        rev: &str,
    ) -> anyhow::Result<()> {
        let mut watch = StatusWatch::open(admin, "").await?;
        let t0 = Instant::now();
        for (name, path) in apps {
            let mut spec = app_spec(repo, path);
            spec.destination =
                Some(pb::Destination { cluster: "solo".into(), namespace: "default".into(), ..Default::default() });
            admin.create_application(pb::CreateApplicationRequest { name: name.clone(), spec: Some(spec) }).await?;
        }
        let all = apps.iter().map(|(a, _)| (a.clone(), "solo".to_string())).collect();
        watch.until_synced(&all, rev, t0, PHASE_TIMEOUT).await?;
        Ok(())
    }
}
