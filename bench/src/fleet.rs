//! The fleet harness: a control plane in its own process (so its memory and CPU can be read
//! from `/proc`), N simulated clusters (in this process, or in one of their own) and N agents
//! in this process (each agent with its own join token, key, certificate, mTLS connection,
//! state directory and kube client), and a Git repository served over `file://`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bosun_cli::{Admin, pb};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};

use crate::proc::Process;

/// Label every benchmark cluster carries; Applications select it.
pub const FLEET_SELECTOR: &str = "fleet=bench";

/// Kills the child process when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Aborts a task when dropped.
pub struct Task(pub tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Git repository the control plane reads over `file://`.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub fn init(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        crate::git(&dir, &["init", "-q"])?;
        Ok(Self { dir })
    }

    /// A repository with `n` Applications (`apps/app0`…, 5 objects each) in one commit:
    /// (repository, Application names, commit).
    pub fn with_apps(dir: PathBuf, n: usize) -> anyhow::Result<(Self, Vec<String>, String)> {
        let repo = Self::init(dir)?;
        let names: Vec<String> = (0..n).map(|i| format!("app{i}")).collect();
        for name in &names {
            repo.write(&format!("apps/{name}/app.yaml"), &app_manifests(name, 1))?;
        }
        let rev = repo.commit("apps")?;
        Ok((repo, names, rev))
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    pub fn write(&self, path: &str, content: &str) -> anyhow::Result<()> {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().context("file in a folder")?)?;
        std::fs::write(p, content)?;
        Ok(())
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        crate::git(&self.dir, &["add", "-A"])?;
        crate::git(&self.dir, &["commit", "-qm", message])?;
        let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&self.dir).output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

/// The five objects of a benchmark Application (`name`), at `version`.
pub fn app_manifests(name: &str, version: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-config}}\ndata: {{version: \"{version}\", greeting: hello}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-secret}}\ntype: Opaque\ndata: {{token: YmVuY2g=}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}, annotations: {{version: \"{version}\"}}}}\n    spec:\n      serviceAccountName: {name}\n      containers: [{{name: app, image: 'nginx:1.27', ports: [{{containerPort: 8080}}]}}]\n"
    )
}

/// The Application spec the benchmarks create: automated, prune, self-heal, every fleet cluster.
pub fn app_spec(repo: &Repo, path: &str) -> pb::ApplicationSpec {
    let policy = bosun_core::SyncPolicy { automated: true, prune: true, self_heal: true, ..Default::default() };
    pb::ApplicationSpec {
        source: Some(pb::Source { repo_url: repo.url(), path: path.into(), ..Default::default() }),
        destination: Some(pb::Destination {
            selector: FLEET_SELECTOR.into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        sync_policy: Some(policy.into()),
        ..Default::default()
    }
}

/// Runs the control plane in a child process: this binary re-executed with `control-plane`.
pub struct ControlPlane {
    pub data: PathBuf,
    pub endpoints: bosun_control_plane::Endpoints,
    pub process: Process,
    child: ChildGuard,
}

impl ControlPlane {
    /// One control plane on the embedded store (or on `BOSUN_DATABASE_URL` when it is set),
    /// Git polling off: the benchmarks refresh explicitly.
    pub async fn start(data: &Path) -> anyhow::Result<Self> {
        Self::spawn(data, &["--poll-interval".into(), "1h".into()], "warn").await
    }

    /// One of several replicas on the PostgreSQL server at `database_url`, sharing the CA and
    /// secret key kept in `shared` (the first replica creates them, and the admin token the
    /// others are given), polling Git every second.
    pub async fn start_replica(data: &Path, name: &str, database_url: &str, shared: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)?;
        if shared.join("admin-token").exists() {
            std::fs::copy(shared.join("admin-token"), data.join("admin-token"))?;
        }
        let path = |f: &str| shared.join(f).to_str().map(str::to_string).context("utf-8 path");
        let args = [
            "--database-url".into(),
            database_url.into(),
            "--ca-cert".into(),
            path("ca.pem")?,
            "--ca-key".into(),
            path("ca.key")?,
            "--secret-key-file".into(),
            path("secret.key")?,
            "--replica-name".into(),
            name.into(),
            "--poll-interval".into(),
            "1s".into(),
        ];
        // The lease holder says so at info.
        let cp = Self::spawn(data, &args, "warn,bosun_control_plane::model::singleton=info").await?;
        if !shared.join("admin-token").exists() {
            std::fs::copy(data.join("admin-token"), shared.join("admin-token"))?;
        }
        // Agents read the CA from the data directory (see `agent_args`).
        std::fs::copy(shared.join("ca.pem"), data.join("ca.pem"))?;
        Ok(cp)
    }

    async fn spawn(data: &Path, args: &[String], log: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let log_file = std::fs::File::create(data.with_extension("log"))?;
        let local = "127.0.0.1:0";
        let child = Command::new(exe)
            .arg("control-plane")
            .args(["--data-dir", data.to_str().context("utf-8 path")?])
            .args(["--admin-addr", local, "--agent-addr", local, "--join-addr", local, "--webhook-addr", local])
            .args(["--metrics-addr", local])
            .args(["--ui-addr", local])
            .args(args)
            .env("RUST_LOG", std::env::var("BENCH_CP_LOG").unwrap_or_else(|_| log.into()))
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the control plane")?;
        let pid = child.id();
        let child = ChildGuard(child);
        let file = data.join("endpoints.json");
        let deadline = Instant::now() + Duration::from_secs(60);
        let endpoints = loop {
            if let Ok(b) = std::fs::read(&file)
                && let Ok(e) = serde_json::from_slice(&b)
            {
                break e;
            }
            if Instant::now() > deadline {
                bail!("the control plane did not start in 60 s (see {})", data.with_extension("log").display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Self { data: data.to_path_buf(), endpoints, process: Process::new(pid), child })
    }

    /// Kills the process with SIGKILL: no graceful shutdown, no lease released.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    /// The control plane's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let conn = bosun_cli::Connection::local(self.data.clone());
        bosun_cli::connect(&conn).await.map_err(|f| f.error)
    }

    /// `bosun_status_reports_total` from `/metrics`.
    pub async fn status_reports(&self) -> anyhow::Result<u64> {
        let body = http_get(&self.endpoints.metrics, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix("bosun_status_reports_total "))
            .and_then(|v| v.trim().parse().ok())
            .context("bosun_status_reports_total missing from /metrics")
    }
}

/// A plain HTTP/1.1 GET (the control plane's metrics listener).
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Options of an in-process agent.
#[derive(Clone)]
pub struct AgentOptions {
    pub resync: Duration,
    /// The control planes' agent addresses, in the order the agent tries them (default: the
    /// one control plane the agents join).
    pub control_planes: Vec<String>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self { resync: Duration::from_secs(30), control_planes: Vec::new() }
    }
}

/// A simulated cluster of the fleet, wherever it runs.
pub struct ClusterRef {
    pub name: String,
    pub url: String,
    /// A kubeconfig for it (plain HTTP, no credentials).
    pub kubeconfig: String,
}

/// Simulated clusters and their agents.
pub struct Fleet {
    pub root: PathBuf,
    // Agents stop before their clusters do (fields drop in order).
    agents: Vec<Task>,
    pub clusters: Vec<ClusterRef>,
    sims: Vec<kube_sim::SimCluster>,
    /// Clusters run apart: their process (it ends when its stdin, held here, closes).
    apart: Option<(ChildGuard, Process)>,
}

impl Fleet {
    pub fn new(root: PathBuf) -> Self {
        Self { root, agents: Vec::new(), clusters: Vec::new(), sims: Vec::new(), apart: None }
    }

    /// Starts `n` simulated clusters (`c0000`…) in this process, without agents.
    pub async fn start_clusters(&mut self, n: usize) -> anyhow::Result<()> {
        let start = self.clusters.len();
        let sims: Vec<_> = futures::stream::iter(start..start + n)
            .map(|i| async move {
                kube_sim::SimCluster::start(kube_sim::SimConfig { name: cluster_name(i), ..Default::default() }).await
            })
            .buffered(64)
            .try_collect()
            .await?;
        for sim in &sims {
            self.clusters.push(ClusterRef {
                name: sim.name().to_string(),
                url: sim.url().to_string(),
                kubeconfig: sim.kubeconfig(false),
            });
        }
        self.sims.extend(sims);
        Ok(())
    }

    /// Starts `n` simulated clusters in a process of their own (this binary re-executed with
    /// `clusters`): a thousand clusters with their agents' watches open ~20,000 sockets, more
    /// than one process may hold here when both ends of each are in it. Only on an empty
    /// fleet.
    pub fn start_clusters_apart(&mut self, n: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.clusters.is_empty(), "clusters apart start an empty fleet");
        let (guard, process, stdout) =
            spawn_self(&["clusters", "--count", &n.to_string()]).context("starting the simulated clusters")?;
        use std::io::BufRead;
        for line in stdout.lines().take(n) {
            let line = line.context("reading the clusters' addresses")?;
            let mut parts = line.splitn(3, ' ');
            let (Some(name), Some(url), Some(kubeconfig)) = (parts.next(), parts.next(), parts.next()) else {
                bail!("unexpected line from the clusters process: {line:?}");
            };
            use base64::Engine;
            let kubeconfig = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(kubeconfig)?)?;
            self.clusters.push(ClusterRef { name: name.into(), url: url.into(), kubeconfig });
        }
        anyhow::ensure!(self.clusters.len() == n, "the clusters process started {} of {n}", self.clusters.len());
        self.apart = Some((guard, process));
        Ok(())
    }

    /// The processes running agents and simulated clusters (for their CPU time).
    pub fn processes(&self) -> Vec<Process> {
        let mut out = vec![Process::new(std::process::id())];
        out.extend(self.apart.as_ref().map(|(_, p)| *p));
        out
    }

    /// Registers every cluster without an agent and starts its agent (64 joins at a time).
    pub async fn start_agents(&mut self, cp: &ControlPlane, opts: &AgentOptions) -> anyhow::Result<()> {
        let mut admin = cp.admin().await?;
        let first = self.agents.len();
        let mut tokens = Vec::new();
        for c in &self.clusters[first..] {
            let req = pb::CreateJoinTokenRequest {
                cluster: c.name.clone(),
                ttl_seconds: 3600,
                labels: HashMap::from([("fleet".to_string(), "bench".to_string())]),
            };
            tokens.push(admin.create_join_token(req).await?.into_inner().token);
        }
        for (c, token) in self.clusters[first..].iter().zip(tokens) {
            let dir = self.root.join("agents").join(&c.name);
            std::fs::create_dir_all(&dir)?;
            let kubeconfig = dir.join("kubeconfig");
            std::fs::write(&kubeconfig, &c.kubeconfig)?;
            let cfg = agent_config(&cp.endpoints, &cp.data, &dir, &kubeconfig, &token, opts)?;
            self.agents.push(spawn_agent(cfg));
        }
        Ok(())
    }

    /// Stops the agents, then their clusters, quietly: an agent whose cluster vanished under
    /// it would log connection errors.
    pub async fn shutdown(mut self) {
        let agents = std::mem::take(&mut self.agents);
        for a in &agents {
            a.0.abort();
        }
        for mut a in agents {
            let _ = (&mut a.0).await;
        }
        // The agents' own tasks are cancelled as their owners drop; let that happen.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The `clusters` subcommand: starts `count` simulated clusters, prints one line per cluster
/// (`name url base64-kubeconfig`), and serves them until stdin closes (the benchmark that
/// started it ended or died).
pub async fn serve_clusters(count: usize) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
    let mut fleet = Fleet::new(PathBuf::new());
    fleet.start_clusters(count).await?;
    {
        use base64::Engine;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for c in &fleet.clusters {
            let kubeconfig = base64::engine::general_purpose::STANDARD.encode(&c.kubeconfig);
            writeln!(out, "{} {} {kubeconfig}", c.name, c.url)?;
        }
        out.flush()?;
    }
    until_stdin_closes().await;
    Ok(())
}

/// This benchmark binary re-executed with `args` in a process of its own, which ends when
/// its stdin closes ([`until_stdin_closes`]) or the guard kills it; and its stdout, to read
/// what it prints (addresses, once it serves).
pub fn spawn_self(
    args: &[&str],
) -> anyhow::Result<(ChildGuard, Process, std::io::BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let process = Process::new(child.id());
    Ok((ChildGuard(child), process, std::io::BufReader::new(stdout)))
}

/// Waits until stdin closes: how a process started by [`spawn_self`] learns to end.
pub async fn until_stdin_closes() {
    // Reading stdin blocks: on a thread of the blocking pool, while the runtime serves.
    let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())).await;
}

/// Runs an agent in this process until the returned task is dropped.
pub fn spawn_agent(cfg: bosun_agent::Config) -> Task {
    Task(tokio::spawn(async move {
        if let Err(e) = bosun_agent::serve(cfg).await {
            tracing::error!(error = %format!("{e:#}"), "agent stopped");
        }
    }))
}

pub fn cluster_name(i: usize) -> String {
    format!("c{i:04}")
}

/// The arguments of `bosun-agent` for a cluster, joining the control plane listening at
/// `endpoints` whose data directory is `cp_data` (for its CA).
pub fn agent_args(
    endpoints: &bosun_control_plane::Endpoints,
    cp_data: &Path,
    state: &Path,
    kubeconfig: &Path,
    token: &str,
    opts: &AgentOptions,
) -> anyhow::Result<Vec<String>> {
    let s = |p: &Path| p.to_str().map(str::to_string).context("utf-8 path");
    let control_planes = if opts.control_planes.is_empty() {
        format!("https://{}", endpoints.agent)
    } else {
        opts.control_planes.join(",")
    };
    Ok(vec![
        "--control-plane".into(),
        control_planes,
        "--join-url".into(),
        format!("https://{}", endpoints.join),
        "--join-token".into(),
        token.into(),
        "--ca-file".into(),
        s(&cp_data.join("ca.pem"))?,
        "--state-dir".into(),
        s(state)?,
        "--kubeconfig".into(),
        s(kubeconfig)?,
        "--resync-interval".into(),
        humantime::format_duration(opts.resync).to_string(),
    ])
}

/// [`agent_args`], parsed.
pub fn agent_config(
    endpoints: &bosun_control_plane::Endpoints,
    cp_data: &Path,
    state: &Path,
    kubeconfig: &Path,
    token: &str,
    opts: &AgentOptions,
) -> anyhow::Result<bosun_agent::Config> {
    let args = agent_args(endpoints, cp_data, state, kubeconfig, token, opts)?;
    Ok(bosun_agent::Config::try_parse_from(std::iter::once("bosun-agent".to_string()).chain(args))?)
}

/// Waits until `n` clusters show as connected.
pub async fn wait_connected(admin: &mut Admin, n: usize, timeout: Duration) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let connected = connected(admin).await?;
        if connected >= n {
            return Ok(t.elapsed());
        }
        if t.elapsed() > timeout {
            bail!("only {connected} of {n} agents connected after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many clusters the control plane says are connected now.
pub async fn connected(admin: &mut Admin) -> anyhow::Result<usize> {
    let clusters = admin.list_clusters(pb::ListClustersRequest {}).await?.into_inner().clusters;
    Ok(clusters.iter().filter(|c| c.connected).count())
}

/// A status watch opened before a change, so no report is missed.
pub struct StatusWatch {
    stream: tonic::Streaming<pb::StatusEvent>,
}

impl StatusWatch {
    pub async fn open(admin: &mut Admin, app: &str) -> anyhow::Result<Self> {
        let stream = admin.watch_status(pb::WatchStatusRequest { application: app.into() }).await?.into_inner();
        Ok(Self { stream })
    }

    /// Waits until every (Application, cluster) pair of `pairs` reported Synced + Healthy at
    /// `revision`; returns the time each took from `t0`.
    pub async fn until_synced(
        &mut self,
        pairs: &HashSet<(String, String)>,
        revision: &str,
        t0: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut done: BTreeMap<(String, String), Duration> = BTreeMap::new();
        let deadline = tokio::time::Instant::from_std(t0 + timeout);
        while done.len() < pairs.len() {
            let ev = match tokio::time::timeout_at(deadline, self.stream.message()).await {
                Ok(r) => r?.context("the status watch ended")?,
                Err(_) => {
                    bail!("{} of {} (application, cluster) pairs Synced after {timeout:?}", done.len(), pairs.len())
                }
            };
            let Some(s) = ev.status else { continue };
            let key = (ev.application, s.cluster.clone());
            if s.revision == revision
                && s.sync_status == pb::SyncStatus::Synced as i32
                && s.health == pb::HealthStatus::Healthy as i32
                && pairs.contains(&key)
            {
                done.entry(key).or_insert_with(|| t0.elapsed());
            }
        }
        Ok(done.into_values().collect())
    }
}

/// Every (app, cluster) pair of `apps` × the fleet's clusters.
pub fn pairs(apps: &[String], clusters: usize) -> HashSet<(String, String)> {
    apps.iter().flat_map(|a| (0..clusters).map(move |i| (a.clone(), cluster_name(i)))).collect()
}
