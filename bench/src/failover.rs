//! Failover: three control-plane replicas on one PostgreSQL server, N agents all connected to
//! replica A (each also knows C, then B), one Application on every cluster.
//!
//! - **baseline**: a commit refreshed through C, nothing failing → every cluster Synced at it.
//! - **lease holder killed**: B, started first so it holds the singleton lease, is killed with
//!   SIGKILL and a commit is made at once, with no refresh: the time until a surviving replica
//!   has polled it (the Application's revision as C serves it), and until every cluster is
//!   Synced at it. Bounded by the lease's expiry plus a renewal period (8 s).
//! - **replica with N agents killed**: A is killed with SIGKILL and a commit is refreshed
//!   through C at once: the time until every agent, moved to C, reports Synced at it.
//!
//! The baseline is the floor: the same commit-to-Synced path with nothing failing, same run.

use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_cli::{Admin, pb};

use crate::fleet::{AgentOptions, ControlPlane, Fleet, Repo, StatusWatch, app_manifests, app_spec, pairs};
use crate::report::{Report, ms};

const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn run(json_out: bool, n: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let pg = tokio::task::spawn_blocking(bosun_store::testing::TestPostgres::start)
        .await?
        .map_err(|e| anyhow::anyhow!("starting PostgreSQL (needs postgresql-15's binaries): {e}"))?;
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared)?;
    let repo = Repo::init(root.join("repo"))?;
    repo.write("apps/web/app.yaml", &app_manifests("web", 1))?;
    let rev1 = repo.commit("web v1")?;

    // B first, alone, until it holds the lease; then A and C.
    let mut b = ControlPlane::start_replica(&root.join("b"), "b", &pg.url(), &shared).await?;
    wait_for("replica b to hold the singleton lease", || b.log().contains("holding the singleton lease")).await?;
    let mut a = ControlPlane::start_replica(&root.join("a"), "a", &pg.url(), &shared).await?;
    let c = ControlPlane::start_replica(&root.join("c"), "c", &pg.url(), &shared).await?;

    let mut fleet = Fleet::new(root.to_path_buf());
    fleet.start_clusters_apart(n)?;
    let agent_url = |cp: &ControlPlane| format!("https://{}", cp.endpoints.agent);
    let opts = AgentOptions { control_planes: vec![agent_url(&a), agent_url(&c), agent_url(&b)], ..Default::default() };
    fleet.start_agents(&a, &opts).await?;
    let mut admin_c = c.admin().await?;
    crate::fleet::wait_connected(&mut admin_c, n, PHASE_TIMEOUT).await?;

    let apps = vec!["web".to_string()];
    let all = pairs(&apps, n);
    let mut watch = StatusWatch::open(&mut admin_c, "").await?;
    let mut admin_a = a.admin().await?;
    let t0 = Instant::now();
    let spec = app_spec(&repo, "apps/web");
    admin_a.create_application(pb::CreateApplicationRequest { name: "web".into(), spec: Some(spec) }).await?;
    watch.until_synced(&all, &rev1, t0, PHASE_TIMEOUT).await.context("first sync")?;

    // Baseline: a commit refreshed through C.
    repo.write("apps/web/app.yaml", &app_manifests("web", 2))?;
    let rev2 = repo.commit("web v2")?;
    let t0 = Instant::now();
    admin_c.refresh_application(pb::RefreshApplicationRequest { name: "web".into() }).await?;
    let baseline = watch.until_synced(&all, &rev2, t0, PHASE_TIMEOUT).await.context("baseline")?;

    // The lease holder killed; the next commit is only polled.
    b.kill();
    let t0 = Instant::now();
    repo.write("apps/web/app.yaml", &app_manifests("web", 3))?;
    let rev3 = repo.commit("web v3")?;
    let (polled, after_lease) = tokio::try_join!(
        revision_served(admin_c.clone(), &rev3, t0),
        watch.until_synced(&all, &rev3, t0, PHASE_TIMEOUT)
    )
    .context("after the lease holder was killed")?;
    let holder = [("a", &a), ("c", &c)]
        .into_iter()
        .find(|(_, cp)| cp.log().contains("holding the singleton lease"))
        .map_or("none seen", |(name, _)| name);

    // The replica every agent is connected to killed; the next commit refreshed through C.
    a.kill();
    let t0 = Instant::now();
    repo.write("apps/web/app.yaml", &app_manifests("web", 4))?;
    let rev4 = repo.commit("web v4")?;
    admin_c.refresh_application(pb::RefreshApplicationRequest { name: "web".into() }).await?;
    let after_agents =
        watch.until_synced(&all, &rev4, t0, PHASE_TIMEOUT).await.context("after replica a was killed")?;
    let connected = crate::fleet::connected(&mut admin_c).await?;

    let mut report = Report::new(
        &format!("failover: 3 replicas on PostgreSQL, {n} agents; replicas killed with SIGKILL"),
        "lease holder killed → polling resumed ≤ 10 s (issue 16); agents reporting again: printed",
    )
    .param("clusters", n)
    .param("poll_interval_s", 1)
    .param("lease_taken_over_by", holder);
    let base = report.row("baseline: commit refreshed → Synced, nothing failing (floor)", &baseline);
    let lease = report.row("lease holder killed → Synced at a commit made then (polled)", &after_lease);
    let moved = report.row(&format!("replica with {n} agents killed → Synced at a commit made then"), &after_agents);
    report.figure("lease holder killed → commit polled by another replica", polled.as_secs_f64(), "s");
    report.figure(&format!("replica with {n} agents killed → all {n} reporting again"), moved.max.as_secs_f64(), "s");
    report.figure("ratio all reporting again to baseline", ms(moved.max) / ms(base.max).max(1e-3), "x");
    report.figure("ratio lease failover (all Synced) to baseline", ms(lease.max) / ms(base.max).max(1e-3), "x");
    report.figure("clusters connected to the last replica at the end", connected as f64, "");
    report.print(json_out);
    fleet.shutdown().await;
    drop(pg);
    Ok(())
}

/// Waits (60 s at most) until `done` holds, checking every 50 ms.
async fn wait_for(what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The time from `t0` until the Application `web`, as this replica serves it, is at
/// `revision` (a replica's Git poll recorded it).
async fn revision_served(mut admin: Admin, revision: &str, t0: Instant) -> anyhow::Result<Duration> {
    loop {
        let app = admin.get_application(pb::GetApplicationRequest { name: "web".into() }).await?.into_inner();
        if app.status.as_ref().is_some_and(|s| s.revision == revision) {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(t0.elapsed() < PHASE_TIMEOUT, "revision {revision} not polled after {PHASE_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
