//! `store`: the control plane's model over each store — creating an Application that targets
//! N clusters, and recording agents' status reports — beside floors measured in the same run
//! on the same store: one plain commit of the same record, and plain batched commits of the
//! same status rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_control_plane::model::{ClusterAppStatus, ControlPlane, Settings};
use bosun_core::{AppSpec, Health, SyncStatus};
use bosun_store::{Backend, Embedded, Expect, Postgres, PostgresOptions, Store, Txn};

use crate::report::Report;

async fn model(store: Arc<Backend>, dir: &std::path::Path) -> anyhow::Result<Arc<ControlPlane>> {
    let pki = bosun_control_plane::pki::Pki::load_or_create(dir, None, &[], "bosun.bench")?;
    let secrets = bosun_control_plane::secrets::SecretBox::load_or_create(&dir.join("secret.key"))?;
    let git = Arc::new(bosun_control_plane::git::GitCache::new(dir.join("git")));
    let settings = Settings {
        cert_validity: Duration::from_secs(3600),
        admin_cert_validity: Duration::from_secs(3600),
        poll_interval: Duration::from_secs(3600),
        installation_id: "bench".into(),
        backup_sources: Default::default(),
        renderer: Default::default(),
        render_concurrency: 2,
        collect_interval: Duration::from_secs(3600),
        replica: "bench".into(),
        initial_admin_token: None,
    };
    Ok(ControlPlane::start(store, git, pki, secrets, settings).await?.0)
}

fn spec() -> AppSpec {
    let mut s = AppSpec::default();
    s.source.repo_url = "file:///nonexistent".into();
    s.source.path = "k8s".into();
    s.destination.selector = "fleet=bench".into();
    s.destination.namespace = "bench".into();
    s
}

/// One backend's figures.
async fn measure(
    name: &str,
    store: Arc<Backend>,
    clusters: usize,
    creates: usize,
    reports: usize,
    json: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = model(store.clone(), dir.path()).await?;
    let labels: std::collections::BTreeMap<String, String> = [("fleet".to_string(), "bench".to_string())].into();
    for i in 0..clusters {
        cp.create_join_token(&format!("c{i}"), Duration::from_secs(600), labels.clone()).await?;
    }
    // Creating (and deleting) an Application that targets every cluster.
    let (mut create, mut floor) = (Vec::new(), Vec::new());
    let record = serde_json::to_vec(&cp.create_app("warm-up", spec()).await?)?;
    for i in 0..creates {
        let started = Instant::now();
        cp.create_app(&format!("app-{i}"), spec()).await?;
        create.push(started.elapsed());
        let key = format!("floor/app-{i}");
        let started = Instant::now();
        store.commit(Txn::new().expect(&key, Expect::Absent).put(&key, record.clone())).await?;
        floor.push(started.elapsed());
    }
    // Status reports from every cluster at once, each acknowledged when durable.
    let rows: Vec<ClusterAppStatus> = (0..reports)
        .map(|i| ClusterAppStatus {
            app: "warm-up".into(),
            cluster: format!("c{}", i % clusters),
            bundle_digest: format!("{i:064x}"),
            revision: "0".repeat(40),
            sync_status: SyncStatus::OutOfSync,
            health: Health::Progressing,
            message: "applying".into(),
            ..Default::default()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in rows.chunks(reports.div_ceil(clusters.min(256))) {
        let (cp, chunk) = (cp.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for r in chunk {
                let cluster = r.cluster.clone();
                cp.report(&cluster, r).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let recorded = reports as f64 / started.elapsed().as_secs_f64();
    // Floor: the same rows, plain batched commits of 512.
    let started = Instant::now();
    for (n, chunk) in rows.chunks(512).enumerate() {
        let txn = chunk.iter().enumerate().fold(Txn::new(), |t, (i, r)| {
            t.put(format!("floor/status/{n}/{i}/{}", r.cluster), serde_json::to_vec(r).unwrap_or_default())
        });
        store.commit(txn).await?;
    }
    let floor_rate = reports as f64 / started.elapsed().as_secs_f64();
    let mut report = Report::new(
        &format!("store ({name})"),
        "Application create at 1,000 clusters <= 20 ms; reports/s as a share of plain batched inserts",
    )
    .param("clusters", clusters)
    .param("creates", creates)
    .param("reports", reports);
    let c = report.row("create", &create);
    let f = report.row("floor (commit)", &floor);
    report.figure("create_ratio", c.p50.as_secs_f64() / f.p50.as_secs_f64().max(1e-9), "x floor");
    report.figure("reports", recorded, "per s");
    report.figure("reports_floor", floor_rate, "per s");
    report.figure("reports_share", recorded / floor_rate, "of floor");
    report.print(json);
    Ok(())
}

pub async fn run(json: bool, clusters: usize, creates: usize, reports: usize, postgres: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let embedded = Arc::new(Backend::Embedded(Embedded::open(&dir.path().join("store.redb"))?));
    measure("embedded", embedded, clusters, creates, reports, json).await?;
    if postgres {
        let server = tokio::task::spawn_blocking(bosun_store::testing::TestPostgres::start)
            .await?
            .map_err(anyhow::Error::msg)?;
        let pg = Arc::new(Backend::Postgres(Postgres::connect(&PostgresOptions::new(server.url())).await?));
        measure("postgresql", pg, clusters, creates, reports, json).await?;
    }
    Ok(())
}
