//! Running a render tool (`kustomize build`, `kubectl kustomize`) on untrusted repository
//! content, confined.
//!
//! Layers, outermost first:
//! 1. **What is there to read**: the tool runs on a private checkout holding only the files
//!    the kustomization names (see `render::kustomize`), in a temporary directory of its own.
//! 2. **Landlock** (when the kernel has it): the process may read only that checkout, the
//!    tool's own directory and the system directories a program needs (`/usr`, `/lib`, a few
//!    files of `/etc`); it may write only its private home; it may not open TCP connections
//!    unless remote bases are allowed, nor signal or connect to processes outside the sandbox.
//!    The data directory, keys, other repositories and the Git cache are out of reach.
//!    The restriction is put on a thread created for one render, which then starts the tool:
//!    the child inherits it, the control plane's other threads never carry it.
//! 3. **Limits**: a deadline (the process group is killed), a cap on output and on the
//!    memory the process may allocate, an empty environment.
//!
//! Path validation (`bosun_core::kustomize`) runs before all of this, on every host; Landlock
//! is the layer that holds even if a tool follows a path nobody validated.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the kernel enforces, found once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// Landlock is active with this ABI version; `tcp` says whether TCP is restricted too.
    Landlock { abi: i32, tcp: bool },
    /// The kernel (or the container runtime) offers no Landlock: only path validation and
    /// limits apply.
    Unavailable(String),
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Confinement::Landlock { abi, tcp } => write!(
                f,
                "Landlock ABI {abi} (filesystem{}, signals, abstract sockets)",
                if *tcp { ", TCP" } else { "" }
            ),
            Confinement::Unavailable(why) => write!(f, "no kernel sandbox ({why}); path validation and limits only"),
        }
    }
}

/// How a tool runs.
#[derive(Debug, Clone)]
pub struct Job {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Read-only: the checkout.
    pub readable: Vec<PathBuf>,
    /// Read-write: the tool's private home and temporary directory.
    pub home: PathBuf,
    /// Whether the tool may open TCP connections (remote bases allowed).
    pub network: bool,
    pub timeout: Duration,
    pub max_stdout: usize,
    /// Most memory (data segment) the process may allocate.
    pub max_memory: u64,
}

/// How a run ended, when it did not produce output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0} is not installed")]
    NotFound(String),
    #[error("could not start {program}: {why}")]
    Start { program: String, why: String },
    #[error("setting up the sandbox: {0}")]
    Sandbox(String),
    #[error("did not finish within {0:?}; stopped")]
    TimedOut(Duration),
    #[error("wrote more than {0} bytes of output; stopped")]
    TooMuchOutput(usize),
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Files and directories every program needs to start and resolve names (only those that
/// exist are granted; `/etc` is not granted as a whole).
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/gitconfig",
    "/etc/passwd",
    "/etc/group",
];

/// The confinement this process gets, probed once on a throwaway thread.
pub fn confinement() -> &'static Confinement {
    static PROBE: OnceLock<Confinement> = OnceLock::new();
    PROBE.get_or_init(|| {
        let probe = std::thread::spawn(|| restrict_current_thread(&[], &[], false));
        match probe.join() {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => Confinement::Unavailable(e),
            Err(_) => Confinement::Unavailable("the probe thread panicked".into()),
        }
    })
}

/// Puts a Landlock domain on the calling thread (and everything it starts from then on).
fn restrict_current_thread(readable: &[PathBuf], writable: &[PathBuf], network: bool) -> Result<Confinement, String> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, Scope, path_beneath_rules,
    };
    let abi = ABI::V7;
    let err = |e: landlock::RulesetError| e.to_string();
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    if !network {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp).map_err(err)?;
    }
    ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal).map_err(err)?;
    let existing = |paths: &[PathBuf]| paths.iter().filter(|p| p.exists()).cloned().collect::<Vec<_>>();
    let status = ruleset
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(existing(readable), AccessFs::from_read(abi)))
        .map_err(err)?
        .add_rules(path_beneath_rules(existing(writable), AccessFs::from_all(abi)))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(match status.landlock {
            landlock::LandlockStatus::NotEnabled => "Landlock is built into the kernel but not enabled".into(),
            landlock::LandlockStatus::NotImplemented => "the kernel has no Landlock".into(),
            other => format!("Landlock is not enforced ({other:?})"),
        }),
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => {
            let abi = match status.landlock {
                landlock::LandlockStatus::Available { effective_abi, .. } => effective_abi as i32,
                _ => 0,
            };
            // TCP rules exist from ABI 4 on.
            Ok(Confinement::Landlock { abi, tcp: !network && abi >= 4 })
        }
    }
}

/// Runs `job` on a thread of its own that confines itself first; the calling thread is
/// never restricted.
pub fn run(job: Job) -> Result<Output, RunError> {
    let handle = std::thread::Builder::new()
        .name("bosun-render".into())
        .spawn(move || confined(job))
        .map_err(|e| RunError::Sandbox(format!("starting the render thread: {e}")))?;
    handle.join().map_err(|_| RunError::Sandbox("the render thread panicked".into()))?
}

fn confined(job: Job) -> Result<Output, RunError> {
    let mut readable: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    if let Some(dir) = job.program.parent() {
        readable.push(dir.to_path_buf());
    }
    readable.extend(job.readable.iter().cloned());
    let writable = vec![job.home.clone(), PathBuf::from("/dev/null")];
    let tmp = job.home.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| RunError::Sandbox(format!("creating the render home: {e}")))?;
    if matches!(confinement(), Confinement::Landlock { .. }) {
        restrict_current_thread(&readable, &writable, job.network).map_err(RunError::Sandbox)?;
    }
    let mut cmd = Command::new(&job.program);
    cmd.args(&job.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &job.home)
        .env("TMPDIR", &tmp)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(&job.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a deadline stops whatever it started too.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let limit = job.max_memory;
    // SAFETY: only async-signal-safe calls (setrlimit) run between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let data = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_DATA, &data) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let files = libc::rlimit { rlim_cur: 256 << 20, rlim_max: 256 << 20 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &files) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = job.program.display().to_string();
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::NotFound(program.clone()),
        _ => RunError::Start { program: program.clone(), why: e.to_string() },
    })?;
    let pid = child.id() as libc::pid_t;
    let kill_group = || {
        // SAFETY: signals the process group this child leads; no memory is touched.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    };
    let max = job.max_stdout;
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let n = (&mut out_pipe).take(max as u64 + 1).read_to_end(&mut buf);
        (n.is_ok() && buf.len() <= max, buf)
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut err_pipe).take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + job.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) if stdout.is_finished() => {
                // Output closed (finished, or over the cap): wait briefly for the exit.
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(RunError::Start { program, why: e.to_string() }),
        }
    };
    let Some(status) = status else {
        kill_group();
        let _ = child.wait();
        return Err(RunError::TimedOut(job.timeout));
    };
    // Whatever the tool left running in its group goes with it.
    kill_group();
    let (within, stdout) = stdout.join().unwrap_or((false, Vec::new()));
    let stderr = stderr.join().unwrap_or_default();
    if !within {
        return Err(RunError::TooMuchOutput(max));
    }
    Ok(Output { success: status.success(), stdout, stderr })
}

/// A tool's error output as a message for people: the private paths of the render replaced
/// by repository paths, klog prefixes, resolver addresses and Go's noise removed.
pub fn clean_message(stderr: &str, checkout: &Path, home: &Path) -> String {
    let checkout = checkout.display().to_string();
    let home = home.display().to_string();
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let mut l = strip_klog(line.trim()).to_string();
        for root in [&checkout, &home] {
            l = l.replace(&format!("{root}/"), "").replace(root.as_str(), ".");
        }
        let l = strip_resolver(&l);
        let l = l.strip_prefix("Error: ").unwrap_or(&l).trim();
        // kubectl's structured log form: `"command failed" err="…"`.
        let l = match l.strip_prefix("\"command failed\" err=\"") {
            Some(inner) => inner.strip_suffix('"').unwrap_or(inner).replace("\\\"", "\""),
            None => l.to_string(),
        };
        if !l.is_empty() && !l.starts_with("Usage:") && !lines.contains(&l) {
            lines.push(l);
        }
    }
    let mut msg = lines.join("; ");
    if msg.len() > 2000 {
        let mut cut = 2000;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}

/// Removes a klog header (`E1130 12:00:00.123456   12345 file.go:123] `).
fn strip_klog(line: &str) -> &str {
    let b = line.as_bytes();
    let klog = b.len() > 22
        && matches!(b[0], b'I' | b'W' | b'E' | b'F')
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' ';
    if klog && let Some(end) = line.find("] ") {
        return &line[end + 2..];
    }
    line
}

/// `lookup github.com on 10.0.0.2:53: no such host` → `lookup github.com: no such host`.
fn strip_resolver(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(" on ") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[4..];
        let addr_len = after.find([' ', ',']).unwrap_or(after.len());
        let addr = after[..addr_len].trim_end_matches(':');
        let is_addr = addr.contains(':') && addr.chars().all(|c| c.is_ascii_hexdigit() || ".:[]".contains(c));
        if is_addr {
            // Keep the colon that ended the address, if any.
            rest = &after[addr.len()..];
        } else {
            out.push_str(" on ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_no_private_paths_or_resolver_addresses() {
        let checkout = Path::new("/tmp/bosun-render-abc/checkout");
        let home = Path::new("/tmp/bosun-render-abc/home");
        let structured = "E1130 10:11:12.123456   4242 run.go:72] \"command failed\" err=\"accumulating resources: must build at directory: not a valid directory: evalsymlink failure on '/tmp/bosun-render-abc/checkout/x'\"";
        assert_eq!(
            clean_message(structured, checkout, home),
            "accumulating resources: must build at directory: not a valid directory: evalsymlink failure on 'x'"
        );
        let raw = "E1130 10:11:12.123456   4242 run.go:72] Error: accumulating resources: accumulation err='accumulating resources from '../../secret': evalsymlink failure on '/tmp/bosun-render-abc/checkout/secret' : lstat /tmp/bosun-render-abc/checkout/secret: no such file or directory'\n\
Error: git cmd = '/usr/bin/git fetch': dial tcp: lookup github.com on 10.0.0.2:53: no such host\n";
        let m = clean_message(raw, checkout, home);
        assert!(!m.contains("/tmp/bosun-render"), "{m}");
        assert!(!m.contains("10.0.0.2"), "{m}");
        assert!(!m.contains("E1130") && !m.starts_with("Error"), "{m}");
        assert!(m.contains("lstat secret: no such file") && m.contains("lookup github.com: no such host"), "{m}");
        assert_eq!(
            strip_resolver("read udp [::1]:5353->[fe80::1]:53: i/o timeout on x"),
            "read udp [::1]:5353->[fe80::1]:53: i/o timeout on x"
        );
        assert_eq!(strip_resolver("lookup h on [fd00::1]:53: refused"), "lookup h: refused");
    }

    #[test]
    fn a_confined_tool_reads_only_what_it_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        let checkout = tmp.path().join("checkout");
        let home = tmp.path().join("home");
        let secret_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(&checkout).unwrap();
        std::fs::write(checkout.join("ok.txt"), "visible").unwrap();
        std::fs::write(secret_dir.path().join("key"), "hidden").unwrap();
        let cat = |path: &Path| Job {
            program: PathBuf::from("/bin/cat"),
            args: vec![path.into()],
            readable: vec![checkout.clone()],
            home: home.clone(),
            network: false,
            timeout: Duration::from_secs(10),
            max_stdout: 1024,
            max_memory: 1 << 30,
        };
        let ok = run(cat(&checkout.join("ok.txt"))).unwrap();
        assert!(ok.success);
        assert_eq!(ok.stdout, b"visible");
        let denied = run(cat(&secret_dir.path().join("key"))).unwrap();
        match confinement() {
            Confinement::Landlock { .. } => {
                assert!(!denied.success, "Landlock lets the tool read outside its checkout");
                assert!(String::from_utf8_lossy(&denied.stderr).contains("Permission denied"));
            }
            Confinement::Unavailable(why) => eprintln!("no Landlock here ({why}); the kernel layer is not tested"),
        }
        // The caller's thread is not restricted.
        assert_eq!(std::fs::read_to_string(secret_dir.path().join("key")).unwrap(), "hidden");
        // Deadlines and output caps.
        let sleep = Job {
            program: PathBuf::from("/bin/sleep"),
            args: vec!["5".into()],
            timeout: Duration::from_millis(200),
            ..cat(&checkout.join("ok.txt"))
        };
        assert!(matches!(run(sleep), Err(RunError::TimedOut(_))));
        let big = Job { program: PathBuf::from("/usr/bin/yes"), args: vec![], ..cat(&checkout.join("ok.txt")) };
        assert!(matches!(run(big), Err(RunError::TooMuchOutput(1024))));
    }
}
