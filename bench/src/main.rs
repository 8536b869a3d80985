//! `bosun-bench`: measures what BRIEF.md §4 budgets, each figure beside a floor measured in
//! the same run on the same machine where one exists, so results read as ratios.
//!
//! - `fan-out`: one Application on N clusters, commit → every cluster Synced + Healthy;
//!   floors: delivery (minimal tonic server over mTLS) and apply (plain `kube::Client`).
//! - `scale`: N clusters × M Applications, created → all Synced + Healthy.
//! - `footprint`: control plane memory per connected agent, one agent's memory with 10
//!   Applications / 100 objects, idle CPU of both.
//! - `steady-state`: status messages per agent per minute when nothing changes.
//! - `resync`: one agent with 100 Applications × 20 objects: CPU and time of a resync.
//! - `self-heal`: hand edit → reverted; floor: a minimal healer.
//! - `hooks`: commit → Synced + Healthy of an Application with a PreSync hook, three waves
//!   and a PostSync hook; floor: a minimal client driving the same steps.
//! - `plan`: `sync::decide` over a synced 5,000-object Application; floor: an identity pass.
//! - `store`: Application create at N clusters and status reports recorded per second, on the
//!   embedded store and (`--postgres`) PostgreSQL; floors: plain commits of the same records.
//! - `ui`: the dashboard's Application list and fleet matrix rendered at N × M; floor: the
//!   admin API's list of the same Applications, encoded. (`fan-out` also counts the live
//!   updates one open dashboard page receives.)
//!
//! The fleet benchmarks run the control plane in a child process (this binary, re-executed
//! with the hidden `control-plane` subcommand) and N simulated clusters with N agents in this
//! one, each agent with its own identity and connection. `--json` prints one JSON object.

mod failover;
mod fanout;
mod fleet;
mod floors;
mod hooks;
mod idle;
mod plan;
mod proc;
mod report;
mod selfheal;
mod store;
mod ui;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bosun-bench", about = "Bosun benchmarks with same-run floors (BRIEF.md §4)")]
struct Cli {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Commit → N clusters Synced+Healthy (one Application, 5 objects), with delivery and apply floors.
    FanOut {
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
    },
    /// N clusters × M Applications, from created to all Synced+Healthy.
    Scale {
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
        #[arg(long, default_value_t = 10)]
        apps: usize,
    },
    /// Three replicas on PostgreSQL: the lease holder, then the replica N agents use, killed with SIGKILL.
    Failover {
        #[arg(long, default_value_t = 300)]
        clusters: usize,
    },
    /// Control plane memory per connected agent; agent memory with 10 Applications / 100 objects; idle CPU.
    Footprint {
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
        /// Window over which idle CPU is measured.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// Status messages per agent per minute once everything is Synced and nothing changes.
    SteadyState {
        #[arg(long, default_value_t = 100)]
        clusters: usize,
        #[arg(long, default_value_t = 3)]
        apps: usize,
        #[arg(long, default_value = "65s", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// One agent with many Applications, all Synced: CPU and wall time of a periodic resync.
    Resync {
        #[arg(long, default_value_t = 100)]
        apps: usize,
        #[arg(long, default_value_t = 20)]
        objects: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        interval: Duration,
        #[arg(long, default_value_t = 3)]
        resyncs: u32,
    },
    /// Hand edit → reverted, p50/p99 over N edits.
    SelfHeal {
        #[arg(long, default_value_t = 100)]
        edits: usize,
    },
    /// Commit → Synced+Healthy of a PreSync hook, 3 waves and a PostSync hook; floor: a minimal client.
    Hooks {
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// Diff + plan of an Application of N objects.
    Plan {
        #[arg(long, default_value_t = 5000)]
        objects: usize,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Application create at N clusters and status reports per second, embedded and PostgreSQL.
    Store {
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
        #[arg(long, default_value_t = 50)]
        creates: usize,
        #[arg(long, default_value_t = 20000)]
        reports: usize,
        /// Also on a throwaway PostgreSQL server (needs postgresql-15's binaries).
        #[arg(long)]
        postgres: bool,
    },
    /// Dashboard pages' server render time (Application list, fleet matrix) at N × M.
    Ui {
        #[arg(long, default_value_t = 1000)]
        clusters: usize,
        #[arg(long, default_value_t = 10)]
        apps: usize,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Runs the control plane (the fleet benchmarks start it in its own process).
    #[command(hide = true)]
    ControlPlane {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs simulated clusters until stdin closes (`scale` starts them in their own process).
    #[command(hide = true)]
    Clusters {
        #[arg(long)]
        count: usize,
    },
    /// Runs the floor server with the certificates in DIR until stdin closes (`footprint`
    /// starts it in its own process).
    #[command(hide = true)]
    FloorServer { dir: PathBuf },
    /// Runs one agent (the footprint benchmark starts it in its own process).
    #[command(hide = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
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

/// Lets this process (and the processes it starts) open `want` files and sockets, as far as
/// the system allows: a thousand agents, each watching its cluster on about nine connections,
/// need more than a login shell's usual limit, and so do the thousand clusters serving them.
/// Best effort: a limit that cannot be raised is left as it is (runs then stop at "Too many
/// open files", which names the cause).
fn raise_open_files_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        // Raising the hard limit needs privilege; without it, go as far as the hard limit.
        let raised = libc::rlimit { rlim_cur: want, rlim_max: want.max(lim.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let capped = libc::rlimit { rlim_cur: lim.rlim_max.min(want), rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::ControlPlane { args } => {
            let cfg = <bosun_control_plane::Config as Parser>::try_parse_from(
                std::iter::once("bosun-control-plane".to_string()).chain(args),
            )?;
            bosun_process::init_logging(&cfg.log_format, cfg.log_level.as_deref(), "info");
            return bosun_control_plane::run(cfg).await;
        }
        Bench::Agent { args } => {
            let cfg = <bosun_agent::Config as Parser>::try_parse_from(
                std::iter::once("bosun-agent".to_string()).chain(args),
            )?;
            bosun_process::init_logging(&cfg.log_format, cfg.log_level.as_deref(), "info");
            return bosun_agent::run(cfg).await;
        }
        Bench::Clusters { count } => {
            raise_open_files_limit(65_536);
            return fleet::serve_clusters(count).await;
        }
        Bench::FloorServer { dir } => {
            bosun_control_plane::install_crypto();
            raise_open_files_limit(65_536);
            return floors::floor_server(&dir).await;
        }
        _ => {}
    }
    bosun_control_plane::install_crypto();
    raise_open_files_limit(65_536);
    // Logs of the in-process agents and clusters go to stderr: stdout is the report (JSON
    // with --json).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
    match cli.bench {
        Bench::FanOut { clusters } => fanout::fanout(cli.json, clusters).await,
        Bench::Scale { clusters, apps } => fanout::scale(cli.json, clusters, apps).await,
        Bench::Failover { clusters } => failover::run(cli.json, clusters).await,
        Bench::Footprint { clusters, window } => idle::footprint(cli.json, clusters, window).await,
        Bench::SteadyState { clusters, apps, window } => idle::steady_state(cli.json, clusters, apps, window).await,
        Bench::SelfHeal { edits } => selfheal::run(cli.json, edits).await,
        Bench::Resync { apps, objects, interval, resyncs } => {
            idle::resync(cli.json, apps, objects, interval, resyncs).await
        }
        Bench::Hooks { runs } => hooks::run(cli.json, runs).await,
        Bench::Plan { objects, runs } => {
            plan::run(cli.json, objects, runs);
            Ok(())
        }
        Bench::Store { clusters, creates, reports, postgres } => {
            store::run(cli.json, clusters, creates, reports, postgres).await
        }
        Bench::Ui { clusters, apps, runs } => {
            ui::run(cli.json, clusters, apps, runs);
            Ok(())
        }
        Bench::ControlPlane { .. } | Bench::Agent { .. } | Bench::Clusters { .. } | Bench::FloorServer { .. } => {
            unreachable!("handled above")
        }
    }
}
