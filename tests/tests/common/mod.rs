//! The end-to-end harness: real Git served by `git daemon`, the control plane and agents as
//! real processes, kube-sim clusters in this process, the CLI and grpcurl as outside clients.
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube_sim::store::EventType;
use kube_sim::{ControllerConfig, SimCluster, SimConfig};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(30);

/// Ports handed to servers the tests start are taken below Linux's ephemeral range
/// (32768–60999): a port chosen there can be taken by any outgoing connection while a
/// server is down for a restart, and the restart then fails with "address in use".
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port no listener holds, outside the ephemeral range, never handed out twice by this
/// process (different test binaries start at different places in the range).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORTS.end - PORTS.start);
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

/// `n` distinct free ports.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

/// The last `n` lines of a log, to show why a process stopped.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process killed (and reaped) when dropped, even when the test fails: a leftover would
/// hold its ports.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a signal to a running child process — or, when it runs a program as PID 1 of a new
/// PID namespace (`unshare --pid --fork`), to that program.
fn signal(child: &Option<Child>, sig: i32, pid1: bool) {
    let mut pid = child.as_ref().expect("running").id() as i32;
    if pid1 {
        pid = namespaced_child(pid).expect("unshare forked its PID 1");
    }
    // SAFETY: sends a signal to our own child process (or its only child).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The command line that runs `program` as PID 1 of a new PID namespace (as in a container
/// without an init), or as itself.
fn maybe_pid1(program: &str, pid1: bool) -> Command {
    if pid1 {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child", program]);
        c
    } else {
        Command::new(program)
    }
}

/// The host PID of the process `unshare` (at `pid`) forked.
pub fn namespaced_child(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// The PIDs of a process (host PID) in each PID namespace it belongs to, outermost first.
pub fn namespace_pids(pid: i32) -> Vec<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Waits for a running child process (`what`, in the timeout message) to exit; its exit code
/// (-1 when killed by a signal). The child is gone afterwards.
async fn wait_exit(child: &mut Option<Child>, what: &str, timeout: Duration) -> i32 {
    let running = child.as_mut().expect("running");
    let status = eventually(&format!("{what} to exit"), timeout, || {
        let s = running.try_wait().unwrap();
        async move { s }
    })
    .await;
    *child = None;
    status.code().unwrap_or(-1)
}

/// SIGKILL, then reaps the child, if it runs.
fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Runs git in `dir` with a test identity; fails the test when git fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=e2e@bosun.test",
            "-c",
            "user.name=e2e",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is installed");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A Git repository served over git:// by `git daemon`.
pub struct GitRepo {
    pub dir: PathBuf,
    pub url: String,
    daemon: Child,
}

impl GitRepo {
    pub fn new(root: &Path) -> Self {
        let base = root.join("git");
        let dir = base.join("repo");
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q"]);
        let port = free_port();
        let daemon = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--informative-errors"])
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        Self { dir, url: format!("git://127.0.0.1:{port}/repo"), daemon }
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.join(path)).unwrap();
    }

    pub fn commit(&self, message: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "--allow-empty", "-m", message]);
        let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&self.dir).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Waits until git daemon serves the repository.
    pub async fn ready(&self) {
        eventually("git daemon", WAIT, || async {
            let ok = Command::new("git")
                .args(["ls-remote", &self.url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            ok.then_some(())
        })
        .await;
    }
}

impl Drop for GitRepo {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A new, empty database on the server `BOSUN_E2E_DATABASE_URL` names (its URL), or `None`
/// when the variable is unset (the embedded store).
pub fn fresh_database() -> Option<String> {
    let base = std::env::var("BOSUN_E2E_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!("e2e_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let out = Command::new("psql")
        .args([base.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql on PATH (postgresql-client)");
    assert!(out.status.success(), "creating {name}: {}", String::from_utf8_lossy(&out.stderr));
    let (server, _) = base.rsplit_once('/').expect("a URL ending in /DATABASE");
    Some(format!("{server}/{name}"))
}

/// A `bosun` command left running (see [`ControlPlane::bosun_running`]).
pub struct Running {
    child: Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fixed ports, so a restarted control plane comes back where agents expect it.
#[derive(Clone, Copy)]
pub struct Ports {
    pub admin: u16,
    pub agent: u16,
    pub join: u16,
    /// The webhook endpoint (HTTPS with the control plane's server certificate).
    pub webhook: u16,
    /// Metrics and probes (plain HTTP).
    pub metrics: u16,
}

/// The control plane as a real process.
pub struct ControlPlane {
    pub data_dir: PathBuf,
    pub ports: Ports,
    pub log: PathBuf,
    /// Extra command-line arguments (e.g. `--cert-validity 6s`); `--poll-interval` defaults to 1s.
    pub args: Vec<String>,
    /// Secrets this control plane handed out (admin and join tokens); its log must not hold them.
    planted: std::sync::Mutex<Vec<String>>,
    child: Option<Child>,
    starts: usize,
    /// Runs as PID 1 of its own PID namespace.
    pid1: bool,
}

impl ControlPlane {
    /// Started as PID 1 of a new PID namespace, as in a container without an init.
    pub async fn start_as_pid1(root: &Path) -> Self {
        let mut cp = Self::unstarted(root.join("control-plane"), root.join("control-plane.log"), Vec::new(), true);
        cp.spawn(true).await;
        cp
    }

    /// A control plane on free ports, not started yet.
    fn unstarted(data_dir: PathBuf, log: PathBuf, args: Vec<String>, pid1: bool) -> Self {
        let [admin, agent, join, webhook, metrics] = free_ports();
        Self {
            data_dir,
            ports: Ports { admin, agent, join, webhook, metrics },
            log,
            args,
            planted: Default::default(),
            child: None,
            starts: 0,
            pid1,
        }
    }

    /// The host PID of the control plane itself (inside its namespace when it is PID 1 there).
    pub fn process_pid(&self) -> i32 {
        let pid = self.pid() as i32;
        if self.pid1 { namespaced_child(pid).expect("unshare forked") } else { pid }
    }

    pub async fn start(root: &Path) -> Self {
        Self::start_with(root, &[]).await
    }

    /// Starts with extra arguments. With `BOSUN_E2E_DATABASE_URL` set (a PostgreSQL server's
    /// `postgres` database, as CI's PostgreSQL stage sets it), each control plane gets a fresh
    /// database of its own on that server instead of the embedded store.
    pub async fn start_with(root: &Path, args: &[&str]) -> Self {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if let Some(url) = fresh_database() {
            args.extend(["--database-url".to_string(), url]);
        }
        let mut cp = Self::unstarted(root.join("control-plane"), root.join("control-plane.log"), args, false);
        cp.spawn(true).await;
        let token = cp.admin_token();
        cp.plant(&token);
        cp
    }

    /// One replica of several on one database (`--database-url`), with the shared CA and
    /// secret key in `shared` (`ca.pem`, `ca.key`, `secret.key`). The first replica started
    /// creates the admin token; the others are given it (as a Secret would).
    pub async fn start_replica(root: &Path, name: &str, database_url: &str, shared: &Path) -> Self {
        let data_dir = root.join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        if shared.join("admin-token").exists() {
            std::fs::copy(shared.join("admin-token"), data_dir.join("admin-token")).unwrap();
        }
        let args = [
            "--database-url",
            database_url,
            "--ca-cert",
            &shared.join("ca.pem").display().to_string(),
            "--ca-key",
            &shared.join("ca.key").display().to_string(),
            "--secret-key-file",
            &shared.join("secret.key").display().to_string(),
            "--replica-name",
            name,
        ]
        .map(str::to_string)
        .to_vec();
        let mut cp = Self::unstarted(data_dir, root.join(format!("{name}.log")), args, false);
        cp.spawn(true).await;
        if !shared.join("admin-token").exists() {
            std::fs::copy(cp.data_dir.join("admin-token"), shared.join("admin-token")).unwrap();
        }
        let token = cp.admin_token();
        cp.plant(&token);
        cp
    }

    /// Remembers a secret that must never appear in this control plane's log.
    pub fn plant(&self, secret: &str) {
        self.planted.lock().unwrap().push(secret.to_string());
    }

    /// Starts (again) on the same data directory and ports.
    pub async fn restart(&mut self) {
        self.spawn(false).await;
    }

    /// The control plane's command line on this data directory and these ports, its output
    /// appended to its log.
    fn command(&self) -> Command {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let _ = std::fs::remove_file(self.data_dir.join("endpoints.json"));
        let mut c = maybe_pid1(env!("CARGO_BIN_EXE_e2e-control-plane"), self.pid1);
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--admin-addr", &format!("127.0.0.1:{}", self.ports.admin)])
            .args(["--agent-addr", &format!("127.0.0.1:{}", self.ports.agent)])
            .args(["--join-addr", &format!("127.0.0.1:{}", self.ports.join)])
            .args(["--webhook-addr", &format!("127.0.0.1:{}", self.ports.webhook)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.ports.metrics)])
            .args(["--ui-addr", "127.0.0.1:0"])
            .args(if self.args.iter().any(|a| a == "--poll-interval") { vec![] } else { vec!["--poll-interval", "1s"] })
            .args(&self.args)
            .env("RUST_LOG", "info,bosun=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c
    }

    /// Starts the process; on a first start (`new_ports_allowed`) a process that exits before
    /// listening is started again on other ports.
    async fn spawn(&mut self, new_ports_allowed: bool) {
        self.starts += 1;
        let child = self.command().spawn().expect("control plane starts");
        self.child = Some(child);
        let endpoints = self.data_dir.join("endpoints.json");
        let deadline = std::time::Instant::now() + WAIT;
        let started = loop {
            if endpoints.exists() {
                break true;
            }
            // Exited before listening: on a first start, most likely a port taken between
            // choosing it and binding it (another test's listener); choose again.
            if self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some() {
                break false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for control plane endpoints"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !started {
            assert!(
                new_ports_allowed && self.starts < 4,
                "the control plane exited at start; the end of {}:\n{}",
                self.log.display(),
                tail(&self.logs(), 40)
            );
            let [admin, agent, join, webhook, metrics] = free_ports();
            self.ports = Ports { admin, agent, join, webhook, metrics };
            Box::pin(self.spawn(true)).await;
        }
    }

    /// Starts again on the same data directory and ports, expecting the process to refuse to
    /// start: returns its exit code and log when it exits before listening.
    pub async fn start_refused(&mut self) -> (i32, String) {
        let before = self.logs().len();
        let mut child = Some(self.command().spawn().unwrap());
        let code = wait_exit(&mut child, "the control plane", WAIT).await;
        assert!(!self.data_dir.join("endpoints.json").exists(), "it listened");
        (code, self.logs()[before..].to_string())
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig, self.pid1);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> i32 {
        wait_exit(&mut self.child, "the control plane", timeout).await
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// The CA bundle agents and tools trust (the generated CA, or the one given to it).
    pub fn ca(&self) -> PathBuf {
        let generated = self.data_dir.join("ca.pem");
        if generated.exists() { generated } else { self.data_dir.join("ca-bundle.pem") }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token")).unwrap().trim().to_string()
    }

    /// Runs the `bosun` CLI against this control plane.
    pub fn bosun(&self, args: &[&str]) -> CliOut {
        self.bosun_env(args, &[])
    }

    /// [`Self::bosun`] with extra environment variables (an editor for `app edit`).
    pub fn bosun_env(&self, args: &[&str], env: &[(&str, &str)]) -> CliOut {
        let out = Command::new(env!("CARGO_BIN_EXE_e2e-bosun"))
            .env("BOSUN_DATA_DIR", &self.data_dir)
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("bosun runs");
        CliOut {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Starts a long-running `bosun` command (`--watch`); what it prints so far is in
    /// [`Running::output`], and it is killed when dropped.
    pub fn bosun_running(&self, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-bosun"))
            .env("BOSUN_DATA_DIR", &self.data_dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("bosun runs");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, output }
    }

    pub fn bosun_ok(&self, args: &[&str]) -> String {
        let o = self.bosun(args);
        assert_eq!(o.code, 0, "bosun {args:?} failed ({}): {}", o.code, o.stderr);
        o.stdout
    }

    /// `bosun app create NAME --repo URL --path PATH --cluster CLUSTER` and further `flags`,
    /// which must succeed; its output.
    pub fn create_app(&self, name: &str, repo: &str, path: &str, cluster: &str, flags: &[&str]) -> String {
        let mut args = vec!["app", "create", name, "--repo", repo, "--path", path, "--cluster", cluster];
        args.extend_from_slice(flags);
        self.bosun_ok(&args)
    }

    pub fn app_json(&self, name: &str) -> Value {
        serde_json::from_str(&self.bosun_ok(&["app", "get", name, "-o", "json"])).unwrap()
    }

    /// Registers a cluster and returns its join token.
    pub fn add_cluster(&self, name: &str) -> String {
        let v: Value = serde_json::from_str(&self.bosun_ok(&["cluster", "add", name, "-o", "json"])).unwrap();
        let token = v["token"].as_str().unwrap().to_string();
        self.plant(&token);
        token
    }

    /// Registers a cluster with labels (`KEY=VALUE`) and returns its join token.
    pub fn add_cluster_labelled(&self, name: &str, labels: &[&str]) -> String {
        let mut args = vec!["cluster", "add", name, "-o", "json"];
        for l in labels {
            args.extend(["--label", l]);
        }
        let v: Value = serde_json::from_str(&self.bosun_ok(&args)).unwrap();
        let token = v["token"].as_str().unwrap().to_string();
        self.plant(&token);
        token
    }

    /// Exchanges a join token for a certificate as an agent would: (certificate PEM, key PEM),
    /// or the refusal.
    pub async fn join_with(&self, token: &str) -> Result<(String, String), tonic::Status> {
        let (key, csr) = bosun_agent::identity::new_csr().unwrap();
        let ca = std::fs::read_to_string(self.ca()).unwrap();
        let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", self.ports.join))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let resp = bosun_proto::v1::join_service_client::JoinServiceClient::new(channel)
            .join(bosun_proto::v1::JoinRequest {
                token: token.into(),
                csr_pem: csr,
                agent_version: "test".into(),
                cluster: String::new(),
            })
            .await?
            .into_inner();
        Ok((resp.certificate_pem, key.serialize_pem()))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `bosun app wait` says the Application is synced and healthy at `revision`.
    pub async fn wait_synced(&self, app: &str, revision: &str) {
        eventually(&format!("{app} synced and healthy at {revision}"), WAIT, || async {
            let v = self.app_json(app);
            let s = &v["status"];
            let c = &s["clusters"][0];
            (s["sync"] == "Synced" && s["health"] == "Healthy" && c["revision"] == revision).then_some(())
        })
        .await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            assert_no_secrets(&self.logs(), &self.planted.lock().unwrap(), "the control plane's log");
        }
    }
}

/// The certificate and key (PEM) an agent keeps in its state directory.
pub fn agent_identity(state_dir: &Path) -> (String, String) {
    let path = state_dir.join("identity.json");
    let v: Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap();
    (v["cert_pem"].as_str().unwrap().to_string(), v["key_pem"].as_str().unwrap().to_string())
}

/// The CA bundle an agent trusts (PEM).
pub fn agent_ca(state_dir: &Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(state_dir.join("identity.json")).unwrap()).unwrap();
    v["ca_pem"].as_str().unwrap().to_string()
}

/// Fails when any planted secret (or a PEM private key) appears in `text`.
pub fn assert_no_secrets(text: &str, secrets: &[String], what: &str) {
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(!text.contains(s.as_str()), "{what} contains a planted secret ({}…)", &s[..4]);
    }
    assert!(!text.contains("PRIVATE KEY-----"), "{what} contains a private key");
}

pub struct CliOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A simulated cluster with its kubeconfig on disk.
pub struct Cluster {
    pub name: String,
    pub sim: SimCluster,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub async fn start(root: &Path, name: &str) -> Self {
        let cfg = SimConfig {
            name: name.into(),
            controllers: ControllerConfig {
                rollout_delay: Duration::from_millis(150),
                progress_deadline: Duration::from_secs(2),
                ..ControllerConfig::default()
            },
            ..SimConfig::default()
        };
        let sim = SimCluster::start(cfg).await.unwrap();
        let kubeconfig = root.join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, sim.kubeconfig(false)).unwrap();
        Self { name: name.into(), sim, kubeconfig }
    }

    /// A cluster with kube-sim's default controller timings (rollout delay, Job run time).
    pub async fn start_default(root: &Path, name: &str) -> Self {
        let sim = SimCluster::start(SimConfig { name: name.into(), ..SimConfig::default() }).await.unwrap();
        let kubeconfig = root.join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, sim.kubeconfig(false)).unwrap();
        Self { name: name.into(), sim, kubeconfig }
    }

    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap()
    }
}

/// An agent as a real process.
pub struct Agent {
    pub state_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    token: String,
    child: Option<Child>,
    /// Runs as PID 1 of its own PID namespace.
    pid1: bool,
}

impl Agent {
    /// Started as PID 1 of a new PID namespace, as in a container without an init.
    pub fn start_as_pid1(root: &Path, cp: &ControlPlane, cluster: &Cluster, token: &str) -> Self {
        let mut a = Self::new(root, cp, cluster, token, "2s");
        a.pid1 = true;
        a.restart();
        a
    }

    /// The host PID of the agent itself.
    pub fn process_pid(&self) -> i32 {
        let pid = self.child.as_ref().expect("running").id() as i32;
        if self.pid1 { namespaced_child(pid).expect("unshare forked") } else { pid }
    }

    pub fn start(root: &Path, cp: &ControlPlane, cluster: &Cluster, token: &str) -> Self {
        Self::start_with_resync(root, cp, cluster, token, "2s")
    }

    /// An agent that reads its join token from `file` (as from a mounted Secret).
    pub fn start_with_token_file(root: &Path, cp: &ControlPlane, cluster: &Cluster, file: &Path) -> Self {
        let mut a = Self::new(root, cp, cluster, "", "2s");
        a.use_token_file(file);
        a.restart();
        a
    }

    /// An agent whose periodic resync is `resync` (self-heal must then come from watches).
    pub fn start_with_resync(root: &Path, cp: &ControlPlane, cluster: &Cluster, token: &str, resync: &str) -> Self {
        let mut a = Self::new(root, cp, cluster, token, resync);
        a.restart();
        a
    }

    fn new(root: &Path, cp: &ControlPlane, cluster: &Cluster, token: &str, resync: &str) -> Self {
        let state_dir = root.join(format!("agent-{}", cluster.name));
        let args = vec![
            "--control-plane".into(),
            format!("https://127.0.0.1:{}", cp.ports.agent),
            "--join-url".into(),
            format!("https://127.0.0.1:{}", cp.ports.join),
            "--join-token".into(),
            token.into(),
            "--ca-file".into(),
            cp.ca().display().to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--kubeconfig".into(),
            cluster.kubeconfig.display().to_string(),
            "--resync-interval".into(),
            resync.into(),
        ];
        Self {
            log: root.join(format!("agent-{}.log", cluster.name)),
            state_dir,
            args,
            token: token.into(),
            child: None,
            pid1: false,
        }
    }

    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = maybe_pid1(env!("CARGO_BIN_EXE_e2e-agent"), self.pid1)
            .args(&self.args)
            .env("RUST_LOG", "info,bosun=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        self.child = Some(child);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// An agent given several control-plane addresses (`--control-plane A,B`), in that order.
    pub fn start_with_control_planes(
        root: &Path,
        cp: &ControlPlane,
        cluster: &Cluster,
        token: &str,
        urls: &[String],
    ) -> Self {
        let mut a = Self::new(root, cp, cluster, token, "2s");
        let i = a.args.iter().position(|x| x == "--control-plane").expect("a control plane flag");
        a.args[i + 1] = urls.join(",");
        a.restart();
        a
    }

    /// An agent with more flags than the usual ones.
    pub fn start_with_flags(root: &Path, cp: &ControlPlane, cluster: &Cluster, token: &str, flags: &[String]) -> Self {
        let mut a = Self::new(root, cp, cluster, token, "2s");
        a.args.extend(flags.iter().cloned());
        a.restart();
        a
    }

    /// Replaces `--join-token VALUE` with `--join-token-file PATH` for the next start.
    pub fn use_token_file(&mut self, path: &Path) {
        let i = self.args.iter().position(|a| a == "--join-token").expect("started with a token");
        self.args[i] = "--join-token-file".into();
        self.args[i + 1] = path.display().to_string();
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig, self.pid1);
    }

    /// Waits for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> i32 {
        wait_exit(&mut self.child, "the agent", timeout).await
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let key = std::fs::read(self.state_dir.join("identity.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["key_pem"].as_str().map(str::to_string))
                .unwrap_or_default();
            let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
            let mut secrets = vec![self.token.clone()];
            if !key_body.is_empty() {
                secrets.push(key_body[..key_body.len().min(40)].to_string());
            }
            assert_no_secrets(&self.logs(), &secrets, "an agent's log");
        }
    }
}

/// Once `repo` is served: a control plane, one kube-sim cluster `c1`, and its agent joined
/// with a fresh token (`resync` is the agent's periodic resync).
pub async fn one_cluster(root: &Path, repo: &GitRepo, resync: &str) -> (ControlPlane, Cluster, Agent) {
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let c1 = Cluster::start(root, "c1").await;
    let agent = Agent::start_with_resync(root, &cp, &c1, &cp.add_cluster("c1"), resync);
    (cp, c1, agent)
}

/// A repository served by `git daemon` whose one commit holds `k8s/cm.yaml`, a ConfigMap
/// `web` with value "1"; and that commit.
pub async fn web_repo(root: &Path) -> (GitRepo, String) {
    let repo = GitRepo::new(root);
    repo.write("k8s/cm.yaml", &configmap("web", "1"));
    let rev = repo.commit("initial");
    repo.ready().await;
    (repo, rev)
}

/// One Application `web` (a ConfigMap at `k8s/`, value "1") created with `create_args` on
/// cluster `c1` of [`one_cluster`], and synced. Bind every field you need alive: a field left
/// to `..` is dropped at once (the Git server, the cluster or the agent stop).
pub struct OneApp {
    pub repo: GitRepo,
    pub rev: String,
    pub cp: ControlPlane,
    pub c1: Cluster,
    pub agent: Agent,
}

pub async fn one_app(root: &Path, create_args: &[&str]) -> OneApp {
    let (repo, rev) = web_repo(root).await;
    let (cp, c1, agent) = one_cluster(root, &repo, "2s").await;
    let mut args = vec!["app", "create", "web", "--repo", &repo.url, "--path", "k8s", "--cluster", "c1"];
    args.extend(create_args);
    cp.bosun_ok(&args);
    if create_args.contains(&"--auto-sync") {
        cp.wait_synced("web", &rev).await;
    }
    OneApp { repo, rev, cp, c1, agent }
}

/// Two clusters (`names`), each with its agent, and an Application on each, both synced:
/// `app-a` (path `a`, a ConfigMap) on the first, `app-b` (path `b`) on the second.
pub struct TwoClusters {
    pub repo: GitRepo,
    pub rev: String,
    pub cp: ControlPlane,
    pub clusters: [Cluster; 2],
    pub agents: [Agent; 2],
}

pub async fn two_clusters_two_apps(root: &Path, names: [&str; 2]) -> TwoClusters {
    let repo = GitRepo::new(root);
    repo.write("a/cm.yaml", &configmap("a", "1"));
    repo.write("b/cm.yaml", &configmap("b", "1"));
    let rev = repo.commit("initial");
    repo.ready().await;
    let cp = ControlPlane::start(root).await;
    let clusters = [Cluster::start(root, names[0]).await, Cluster::start(root, names[1]).await];
    let agents = [0, 1].map(|i| Agent::start(root, &cp, &clusters[i], &cp.add_cluster(names[i])));
    for (app, path, cluster) in [("app-a", "a", names[0]), ("app-b", "b", names[1])] {
        cp.bosun_ok(&["app", "create", app, "--repo", &repo.url, "--path", path, "--cluster", cluster, "--auto-sync"]);
    }
    cp.wait_synced("app-a", &rev).await;
    cp.wait_synced("app-b", &rev).await;
    TwoClusters { repo, rev, cp, clusters, agents }
}

pub fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        ports:\n        - containerPort: 8000\n"
    )
}

/// `manifest` with the sync-wave annotation on the object `name` (which has no annotations yet).
pub fn with_wave(manifest: &str, name: &str, wave: i32) -> String {
    manifest.replacen(
        &format!("  name: {name}\n"),
        &format!("  name: {name}\n  annotations: {{argocd.argoproj.io/sync-wave: \"{wave}\"}}\n"),
        1,
    )
}

pub fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n")
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: (status code, whole response).
pub fn http(method: &str, port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    exchange(s, method, path, headers, body)
}

/// [`http`] over TLS, trusting only the CA certificates in `ca_pem` and checking that the
/// server's certificate names `localhost`. A failed handshake answers code 0 and the error.
pub fn https(
    ca_pem: &str,
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            return (0, format!("TLS handshake: {e}"));
        }
    }
    exchange(tls, method, path, headers, body)
}

/// Writes one HTTP/1.1 request on `s` and reads the response to the end: (status, text).
fn exchange(
    mut s: impl std::io::Read + std::io::Write,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let mut resp = Vec::new();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("expect") && v == "100-continue") {
        // As curl does for large bodies: send the body only once the server asks for it, so
        // a refusal (413) arrives as an answer instead of a reset in the middle of the body.
        let _ = s.flush();
        let mut byte = [0u8; 1];
        while !resp.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
            resp.push(byte[0]);
        }
        if resp.starts_with(b"HTTP/1.1 100") {
            resp.clear();
            let _ = s.write_all(body);
        }
    } else {
        let _ = s.write_all(body);
    }
    let _ = s.flush();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let code = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, resp)
}

/// The creations and deletions a simulated cluster made, in order, as `create Kind name` and
/// `delete Kind name` (recorded from its store's event stream while this lives).
pub struct WriteLog {
    entries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WriteLog {
    pub fn start(cluster: &Cluster) -> Self {
        let mut events = cluster.sim.store().subscribe();
        let entries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = entries.clone();
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        let verb = match ev.kind {
                            EventType::Added => "create",
                            EventType::Deleted => "delete",
                            _ => continue,
                        };
                        let kind = ev.object["kind"].as_str().unwrap_or_default();
                        let name = ev.object["metadata"]["name"].as_str().unwrap_or_default();
                        sink.lock().unwrap().push(format!("{verb} {kind} {name}"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        sink.lock().unwrap().push(format!("lost {n} events"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Self { entries, task }
    }

    pub fn entries(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }

    /// Entries of one kind whose object name starts with `prefix`, kind left out
    /// (`create migrate-x7k2p`).
    pub fn of(&self, kind: &str, prefix: &str) -> Vec<String> {
        self.entries()
            .iter()
            .filter_map(|e| {
                let (verb, rest) = e.split_once(' ')?;
                let (k, name) = rest.split_once(' ')?;
                (k == kind && name.starts_with(prefix)).then(|| format!("{verb} {name}"))
            })
            .collect()
    }

    /// Position of the first entry `verb Kind name…` (name by prefix).
    pub fn position(&self, verb: &str, kind: &str, prefix: &str) -> Option<usize> {
        let start = format!("{verb} {kind} {prefix}");
        self.entries().iter().position(|e| e.starts_with(&start))
    }
}

impl Drop for WriteLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
