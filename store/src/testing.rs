//! A throwaway PostgreSQL server for tests: `initdb` and `pg_ctl` from the Debian package
//! (`apt-get install -y postgresql-15`) on a temporary directory and a free port. PostgreSQL
//! refuses to run as root, so as root the server runs as the `postgres` user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server; stopped (immediately) when dropped.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or `$BOSUN_PG_BIN`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("BOSUN_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed: apt-get install -y postgresql-15 (or set BOSUN_PG_BIN)".to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".into())
}

impl TestPostgres {
    /// Initialises and starts a server; fails with what to install when PostgreSQL is absent.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("bosun-pg-").tempdir().map_err(|e| e.to_string())?;
        if is_root() {
            // The server's user must own its directory (and reach the socket in it).
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
            let status = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status();
            if !status.is_ok_and(|s| s.success()) {
                return Err("chown to the postgres user failed (is postgresql-15 installed?)".into());
            }
        }
        let data = dir.path().join("data");
        run(&bin, "initdb", |c| {
            c.arg("-D").arg(&data).args(["-U", "bosun", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        })?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let me = Self { dir, bin, port };
        me.pg_ctl_start()?;
        Ok(me)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(&self.bin, "pg_ctl", |c| {
            c.arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "60", "-o", &options, "start"]);
        })
        .map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// `postgres://bosun@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://bosun@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&self) -> Result<(), String> {
        let data = self.dir.path().join("data");
        run(&self.bin, "pg_ctl", |c| {
            c.arg("-D").arg(&data).args(["-w", "-m", "immediate", "stop"]);
        })
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn run(bin: &Path, program: &str, args: impl FnOnce(&mut Command)) -> Result<(), String> {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    args(&mut c);
    let out = c.output().map_err(|e| format!("running {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
