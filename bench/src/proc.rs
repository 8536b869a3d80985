//! Resident memory and CPU time of a process, read from Linux's `/proc`.

use std::time::{Duration, Instant};

use anyhow::Context;

/// The CPU time `processes` have used, together.
pub fn cpu_of(processes: &[Process]) -> anyhow::Result<Duration> {
    processes.iter().map(Process::cpu).sum()
}

/// A process whose footprint is read from `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pid: u32,
}

impl Process {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size in bytes (`VmRSS`).
    pub fn rss(&self) -> anyhow::Result<u64> {
        self.kib_field("status", "VmRSS:")
    }

    /// Anonymous memory in bytes (heap, stacks: what the process allocated itself, without the
    /// pages of its program file), from `/proc/<pid>/smaps_rollup`.
    pub fn anonymous(&self) -> anyhow::Result<u64> {
        self.kib_field("smaps_rollup", "Anonymous:")
    }

    /// The `NAME: N kB` line of `/proc/<pid>/<file>`, in bytes.
    fn kib_field(&self, file: &str, name: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/{file}", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} line in {path}"))?;
        Ok(kib * 1024)
    }

    /// User + system CPU time consumed so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading /proc/{}/stat", self.pid))?;
        // Fields after the command name (which may hold spaces) start at state (field 3);
        // utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/<pid>/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
    }

    /// CPU used over `window` as a fraction of one core.
    pub async fn cpu_share(&self, window: Duration) -> anyhow::Result<f64> {
        let (c0, t0) = (self.cpu()?, Instant::now());
        tokio::time::sleep(window).await;
        Ok((self.cpu()? - c0).as_secs_f64() / t0.elapsed().as_secs_f64())
    }
}

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every mainstream Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// `perf record` over the measured phase of a benchmark when `BOSUN_BENCH_PERF` names an
/// output file (read it with `perf report -i FILE`); stopped when dropped.
pub struct Profiler(Option<std::process::Child>);

impl Profiler {
    pub fn start(processes: &[Process]) -> anyhow::Result<Self> {
        let Some(out) = std::env::var_os("BOSUN_BENCH_PERF") else { return Ok(Self(None)) };
        let pids: Vec<String> = processes.iter().map(|p| p.pid().to_string()).collect();
        let freq = std::env::var("BOSUN_BENCH_PERF_FREQ").unwrap_or_else(|_| "299".into());
        let child = std::process::Command::new("perf")
            .args(["record", "-F", &freq, "--call-graph", "dwarf,16384", "-o"])
            .arg(out)
            .args(["-p", &pids.join(",")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf (BOSUN_BENCH_PERF is set)")?;
        // perf needs a moment to attach before the measured phase starts.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self(Some(child)))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SIGINT makes perf write its file; `kill` is the portable way to send it.
            let _ = std::process::Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}
