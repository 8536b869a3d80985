//! Rendering an Application's path at a commit into a bundle: plain YAML/JSON files, or a
//! kustomization through `kustomize build` / `kubectl kustomize` when installed.

use std::process::Command;
use std::time::Duration;

use bosun_core::Bundle;
use bosun_core::manifest;

use crate::error::{Error, Result};
use crate::git::GitCache;

/// What a render reads: one repository path at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenderKey {
    pub repo_url: String,
    pub commit: String,
    pub path: String,
    pub recurse: bool,
}

fn render_err(key: &RenderKey, message: impl Into<String>) -> Error {
    Error::Render { path: key.path.clone(), revision: key.commit.chars().take(12).collect(), message: message.into() }
}

/// Renders a path. Blocking (reads Git objects, may run kustomize).
pub fn render(git: &GitCache, key: &RenderKey) -> Result<Bundle> {
    let objects = if git.has_kustomization(&key.repo_url, &key.commit, &key.path)? {
        kustomize(git, key)?
    } else {
        let files = git.read_dir(&key.repo_url, &key.commit, &key.path, key.recurse)?;
        let manifests: Vec<(String, Vec<u8>)> = files.into_iter().filter(|(p, _)| manifest::is_manifest(p)).collect();
        let named: Vec<(String, &[u8])> = manifests
            .iter()
            .map(|(p, b)| (if key.path.is_empty() { p.clone() } else { format!("{}/{p}", key.path) }, b.as_slice()))
            .collect();
        manifest::parse_files(named.iter().map(|(p, b)| (p.as_str(), *b)))
            .map_err(|e| render_err(key, e.to_string()))?
    };
    Ok(Bundle::new(objects))
}

fn kustomize(git: &GitCache, key: &RenderKey) -> Result<Vec<serde_json::Value>> {
    let dir = tempfile::tempdir().map_err(|e| render_err(key, format!("creating a work directory: {e}")))?;
    git.export(&key.repo_url, &key.commit, dir.path())?;
    let target = dir.path().join(&key.path);
    let attempts: [(&str, &[&str]); 2] = [("kustomize", &["build"]), ("kubectl", &["kustomize"])];
    for (bin, args) in attempts {
        let mut cmd = Command::new(bin);
        cmd.args(args).arg(&target).env_remove("KUBECONFIG");
        let child = match cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(render_err(key, format!("running {bin}: {e}"))),
        };
        let out =
            wait_with_timeout(child, Duration::from_secs(120)).map_err(|e| render_err(key, format!("{bin}: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(render_err(key, format!("{bin} {} failed: {}", args.join(" "), stderr.trim())));
        }
        return manifest::parse_file("kustomize output", &out.stdout).map_err(|e| render_err(key, e.to_string()));
    }
    Err(render_err(
        key,
        "the path holds a kustomization, but neither `kustomize` nor `kubectl` is installed on the control plane",
    ))
}

fn wait_with_timeout(child: std::process::Child, timeout: Duration) -> std::io::Result<std::process::Output> {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("timed out after {timeout:?}")))
        }
    }
}
