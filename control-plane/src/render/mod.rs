//! Rendering an Application's path at a commit into a bundle: plain YAML/JSON files, or a
//! kustomization through `kustomize build` / `kubectl kustomize`, confined (see [`sandbox`]).
//!
//! A path that Bosun cannot render says why, naming the kind of source it found (a Helm
//! chart, Jsonnet, a plugin), rather than failing on what it is not.

pub mod kustomize;
pub mod sandbox;

use std::path::PathBuf;
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

/// What a render produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub bundle: Bundle,
    /// What the manifests do that Kubernetes accepts but is probably a mistake.
    pub warnings: Vec<String>,
}

/// How renders run (the control plane's flags).
#[derive(Debug, Clone)]
pub struct Renderer {
    /// Hosts kustomizations may fetch remote bases from (`--allow-remote-bases`); none by
    /// default.
    pub allowed_hosts: Vec<String>,
    /// The kustomize tool: `kustomize` (`build`) or `kubectl` (`kustomize`), found on PATH
    /// when not given.
    pub tool: Option<PathBuf>,
    pub timeout: Duration,
    /// Most memory a render process may allocate.
    pub max_memory: u64,
}

impl Default for Renderer {
    fn default() -> Self {
        Self { allowed_hosts: Vec::new(), tool: None, timeout: Duration::from_secs(120), max_memory: 2 << 30 }
    }
}

fn render_err(key: &RenderKey, message: impl Into<String>) -> Error {
    Error::Render { path: key.path.clone(), revision: key.commit.chars().take(12).collect(), message: message.into() }
}

/// Finds `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

impl Renderer {
    /// The tool and the arguments before the directory.
    fn tool(&self) -> Option<(PathBuf, &'static str)> {
        let from = |p: PathBuf| {
            let sub = if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("kubectl")) {
                "kustomize"
            } else {
                "build"
            };
            (p, sub)
        };
        match &self.tool {
            Some(p) => Some(from(p.clone())),
            None => on_path("kustomize").or_else(|| on_path("kubectl")).map(from),
        }
    }

    /// Renders a path. Blocking (reads Git objects, may run kustomize).
    pub fn render(&self, git: &GitCache, key: &RenderKey) -> Result<Output> {
        let mut warnings = Vec::new();
        let objects = if git.has_kustomization(&key.repo_url, &key.commit, &key.path)? {
            self.kustomize(git, key)?
        } else {
            let names = git.list_names(&key.repo_url, &key.commit, &key.path)?;
            if names.iter().any(|n| n == "Chart.yaml") {
                return Err(render_err(
                    key,
                    "the path is a Helm chart (Chart.yaml); Helm charts are not supported yet — render it to YAML (helm template) and commit that, or use a kustomization",
                ));
            }
            // `.argocd-source*.yaml` configure Argo CD (plugins, parameters); they are not manifests.
            let files: Vec<_> = git
                .read_dir(&key.repo_url, &key.commit, &key.path, key.recurse)?
                .into_iter()
                .filter(|(p, _)| !p.rsplit('/').next().unwrap_or_default().starts_with(".argocd-source"))
                .collect();
            if files.is_empty()
                && let Some(kind) = unsupported_source(&names)
            {
                return Err(render_err(key, kind));
            }
            let named: Vec<(String, &[u8])> = files
                .iter()
                .map(|(p, b)| (if key.path.is_empty() { p.clone() } else { format!("{}/{p}", key.path) }, b.as_slice()))
                .collect();
            let parsed = manifest::parse_files_with_warnings(named.iter().map(|(p, b)| (p.as_str(), *b)))
                .map_err(|e| render_err(key, e.to_string()))?;
            warnings = parsed.warnings;
            parsed.objects
        };
        Ok(Output { bundle: Bundle::new(objects), warnings })
    }

    fn kustomize(&self, git: &GitCache, key: &RenderKey) -> Result<Vec<serde_json::Value>> {
        let snap = git.snapshot(&key.repo_url, &key.commit)?;
        let closure = kustomize::closure(&snap, &key.path, &self.allowed_hosts).map_err(|m| render_err(key, m))?;
        let work = tempfile::Builder::new()
            .prefix("bosun-render-")
            .tempdir()
            .map_err(|e| render_err(key, format!("creating a work directory: {e}")))?;
        let checkout = work.path().join("checkout");
        let home = work.path().join("home");
        for d in [&checkout, &home] {
            std::fs::create_dir_all(d).map_err(|e| render_err(key, format!("creating a work directory: {e}")))?;
        }
        kustomize::export(&snap, &closure, &checkout).map_err(|m| render_err(key, m))?;
        let target = if key.path.is_empty() { checkout.clone() } else { checkout.join(&key.path) };
        self.run_kustomize(&checkout, &home, &target).map_err(|m| render_err(key, m))
    }

    /// Runs the kustomize tool, confined, on `target` inside `checkout`, with `home` as its
    /// private writable directory; the objects it printed, or a message for people.
    pub fn run_kustomize(
        &self,
        checkout: &std::path::Path,
        home: &std::path::Path,
        target: &std::path::Path,
    ) -> std::result::Result<Vec<serde_json::Value>, String> {
        let Some((program, sub)) = self.tool() else {
            return Err(
                "the path holds a kustomization, but neither `kustomize` nor `kubectl` is installed on the control plane"
                    .into(),
            );
        };
        let job = sandbox::Job {
            program: program.clone(),
            args: vec![sub.into(), target.as_os_str().to_owned()],
            readable: vec![checkout.to_path_buf()],
            home: home.to_path_buf(),
            network: !self.allowed_hosts.is_empty(),
            timeout: self.timeout,
            max_stdout: bosun_core::bundle::MAX_BUNDLE_BYTES * 2,
            max_memory: self.max_memory,
        };
        let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let out = sandbox::run(job).map_err(|e| format!("{name} {sub}: {e}"))?;
        if !out.success {
            let msg = sandbox::clean_message(&String::from_utf8_lossy(&out.stderr), checkout, home);
            return Err(format!("{name} {sub} failed: {msg}"));
        }
        manifest::parse_file("kustomize output", &out.stdout).map_err(|e| e.to_string())
    }
}

/// A path with no manifests that holds a source Bosun does not render yet: says which.
fn unsupported_source(names: &[String]) -> Option<String> {
    if names.iter().any(|f| f.ends_with(".jsonnet") || f.ends_with(".libsonnet")) {
        return Some(
            "the path holds Jsonnet (*.jsonnet); Jsonnet is not supported yet — render it to YAML and commit that"
                .into(),
        );
    }
    if names.iter().any(|f| f.starts_with(".argocd-source")) {
        return Some(
            "the path is set up for an Argo CD config management plugin (.argocd-source*.yaml); plugins are not supported".into(),
        );
    }
    None
}
