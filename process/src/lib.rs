//! What the control plane and the agent share about being a long-running process: they log
//! the same way, stop gracefully on the signal Kubernetes sends, write their state files so a
//! crash leaves the old content or the new (whole files, or [`record::Record`]s rewritten in
//! place), and tie spawned tasks to their owners.

pub mod record;

use std::path::Path;

/// Logs as text for people (coloured on a terminal) or, with `format` `json`, for collectors:
/// one flat object per line (the event's fields beside `timestamp`, `level`, `message` and the
/// current span's fields). The filter is `level` (the `--log-level` directives), else
/// `RUST_LOG`, else `default_filter`.
pub fn init_logging(format: &str, level: Option<&str>, default_filter: &str) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
    };
    if format == "json" {
        let _ = tracing_subscriber::fmt().json().flatten_event(true).with_env_filter(filter).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .try_init();
    }
}

/// Resolves when the process is asked to stop: SIGTERM (what Kubernetes sends) or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (created with `mode`),
/// fsync, rename over `path`, fsync of the directory. A crash leaves the old content or the
/// new, never a mix; on failure the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_via_temporary(path, bytes, mode, true)
}

/// [`write_atomic`] without the two fsyncs: readers, and a process killed at any point, see
/// the old content or the new, but a crash of the machine may lose the write or leave the
/// file empty. For copies that can be verified and fetched again (a bundle checked against
/// its digest), or whose loss only repeats safe work, where an fsync would only add latency.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_via_temporary(path, bytes, mode, false)
}

fn write_via_temporary(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Aborts a spawned task when dropped, so no task outlives what started it.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_replace_the_whole_file_with_its_mode_and_leave_nothing_behind() {
        for write in [write_atomic, write_replace] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            write(&path, b"a longer first version", 0o600).unwrap();
            write(&path, b"second", 0o600).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"second");
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, ["state.json"]);
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old", 0o644).unwrap();
        // A directory in the way of the rename: the write fails, the old content stays.
        let blocked = dir.path().join("d");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomic(&blocked, b"new", 0o644).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let tmp_left =
            std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
        assert!(!tmp_left);
    }
}
