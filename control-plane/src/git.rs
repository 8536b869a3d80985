//! Git repositories tracked with gix: a bare cache per repository URL, incremental fetches,
//! revision resolution, and reading trees at a commit without a worktree.
//!
//! gix's network client is blocking: call these from `spawn_blocking`. Fetching over
//! `file://` runs `git upload-pack`, so git must be on PATH for local repositories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use gix::remote::Direction;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One file read from a tree: its path relative to the requested directory, and content.
pub type File = (String, Vec<u8>);

/// Largest tree (files under the Application path) read for rendering.
pub const MAX_TREE_BYTES: usize = 64 * 1024 * 1024;

/// Credentials for one fetch (https basic auth or token).
pub struct Account {
    pub username: String,
    pub password: crate::secrets::Secret,
}

pub struct GitCache {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn git_err(repo: &str, e: impl std::fmt::Display) -> Error {
    Error::Git { repo: redact_url(repo), message: e.to_string() }
}

/// An error with its causes ("a: b: c"), which gix keeps in `source()`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// A repository URL without credentials, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl GitCache {
    pub fn new(root: PathBuf) -> Self {
        Self { root, locks: Mutex::new(HashMap::new()) }
    }

    fn dir(&self, url: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(url.as_bytes()));
        self.root.join(&h[..24])
    }

    fn lock(&self, url: &str) -> Arc<Mutex<()>> {
        self.locks.lock().entry(url.to_string()).or_default().clone()
    }

    fn open(&self, url: &str) -> Result<gix::Repository> {
        let dir = self.dir(url);
        if dir.join("HEAD").exists() {
            gix::open(&dir).map_err(|e| git_err(url, e))
        } else {
            std::fs::create_dir_all(&dir)
                .map_err(|e| git_err(url, format!("creating the cache {}: {e}", dir.display())))?;
            gix::init_bare(&dir).map_err(|e| git_err(url, e))
        }
    }

    /// Fetches branches, tags and HEAD of `url` into its bare cache (incremental after the first).
    pub fn fetch(&self, url: &str, account: Option<&Account>) -> Result<()> {
        let lock = self.lock(url);
        let _guard = lock.lock();
        let repo = self.open(url)?;
        let remote = repo
            .remote_at(url)
            .map_err(|e| git_err(url, e))?
            .with_refspecs(
                ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", "+HEAD:refs/remotes/origin/HEAD"],
                Direction::Fetch,
            )
            .map_err(|e| git_err(url, e))?;
        let mut connection = remote.connect(Direction::Fetch).map_err(|e| git_err(url, format!("connecting: {e}")))?;
        if let Some(account) = account {
            let (username, password) = (account.username.clone(), account.password.expose().to_string());
            connection = connection.with_credentials(move |action| match action {
                gix::credentials::helper::Action::Get(ctx) => Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: username.clone(),
                        password: password.clone(),
                        oauth_refresh_token: None,
                    },
                    next: ctx.into(),
                })),
                _ => Ok(None),
            });
        }
        connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| git_err(url, format!("listing references: {}", chain(&e))))?
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| git_err(url, format!("fetching: {}", chain(&e))))?;
        Ok(())
    }

    /// Resolves a branch, tag or commit (empty: the remote's HEAD) to a commit id.
    pub fn resolve(&self, url: &str, revision: &str) -> Result<String> {
        let repo = self.open(url)?;
        let rev = if revision.is_empty() || revision == "HEAD" { "HEAD" } else { revision };
        let candidates = [format!("refs/remotes/origin/{rev}"), format!("refs/tags/{rev}")];
        for name in &candidates {
            if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str()) {
                let commit = r.peel_to_commit().map_err(|e| git_err(url, e))?;
                return Ok(commit.id.to_string());
            }
        }
        let looks_like_commit = rev.len() >= 7 && rev.len() <= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        if looks_like_commit
            && let Ok(id) = repo.rev_parse_single(rev)
            && let Ok(c) = id.object().and_then(|o| o.peel_to_commit())
        {
            return Ok(c.id.to_string());
        }
        Err(git_err(url, format!("revision {rev:?} is not a branch, tag or commit of this repository")))
    }

    /// Reads the files under `path` at `commit` (recursively when `recurse`). Symlinks and
    /// submodules are refused: manifests must be regular files inside the repository.
    pub fn read_dir(&self, url: &str, commit: &str, path: &str, recurse: bool) -> Result<Vec<File>> {
        let repo = self.open(url)?;
        let tree = self.tree_at(&repo, url, commit, path)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        walk(&repo, url, &tree, "", recurse, &mut out, &mut total)?;
        Ok(out)
    }

    /// Whether `path` at `commit` holds a kustomization file.
    pub fn has_kustomization(&self, url: &str, commit: &str, path: &str) -> Result<bool> {
        let repo = self.open(url)?;
        let tree = self.tree_at(&repo, url, commit, path)?;
        Ok(["kustomization.yaml", "kustomization.yml", "Kustomization"].iter().any(|n| tree.find_entry(*n).is_some()))
    }

    /// Writes the whole tree at `commit` into `dest` (for kustomize, which reads a directory).
    pub fn export(&self, url: &str, commit: &str, dest: &Path) -> Result<()> {
        let repo = self.open(url)?;
        let tree = self.tree_at(&repo, url, commit, "")?;
        let mut files = Vec::new();
        let mut total = 0usize;
        walk(&repo, url, &tree, "", true, &mut files, &mut total)?;
        for (rel, bytes) in files {
            let p = dest.join(&rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| git_err(url, e))?;
            }
            std::fs::write(&p, bytes).map_err(|e| git_err(url, e))?;
        }
        Ok(())
    }

    fn tree_at<'r>(&self, repo: &'r gix::Repository, url: &str, commit: &str, path: &str) -> Result<gix::Tree<'r>> {
        let id = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| git_err(url, format!("bad commit id {commit:?}: {e}")))?;
        let root = repo.find_commit(id).map_err(|e| git_err(url, e))?.tree().map_err(|e| git_err(url, e))?;
        if path.is_empty() {
            return Ok(root);
        }
        let entry = root.lookup_entry_by_path(path).map_err(|e| git_err(url, e))?.ok_or_else(|| {
            git_err(url, format!("path {path:?} does not exist at {}", &commit[..commit.len().min(12)]))
        })?;
        if !entry.mode().is_tree() {
            return Err(git_err(url, format!("path {path:?} is not a directory")));
        }
        repo.find_tree(entry.object_id()).map_err(|e| git_err(url, e))
    }
}

fn walk(
    repo: &gix::Repository,
    url: &str,
    tree: &gix::Tree<'_>,
    prefix: &str,
    recurse: bool,
    out: &mut Vec<File>,
    total: &mut usize,
) -> Result<()> {
    for entry in tree.iter() {
        let entry = entry.map_err(|e| git_err(url, e))?;
        let name = entry.inner.filename.to_string();
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let mode = entry.inner.mode;
        if mode.is_tree() {
            if recurse {
                let sub = repo.find_tree(entry.inner.oid.to_owned()).map_err(|e| git_err(url, e))?;
                walk(repo, url, &sub, &rel, recurse, out, total)?;
            }
        } else if mode.is_link() {
            if bosun_core::manifest::is_manifest(&rel) {
                return Err(git_err(
                    url,
                    format!("{rel} is a symbolic link; manifests must be regular files in the repository"),
                ));
            }
        } else if mode.is_blob() {
            let blob = repo.find_blob(entry.inner.oid.to_owned()).map_err(|e| git_err(url, e))?;
            *total += blob.data.len();
            if *total > MAX_TREE_BYTES {
                return Err(git_err(url, format!("the files under the path exceed {MAX_TREE_BYTES} bytes")));
            }
            out.push((rel, blob.data.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://user:tok@github.com/o/r"), "https://***@github.com/o/r");
        assert_eq!(redact_url("file:///tmp/r"), "file:///tmp/r");
    }
}
