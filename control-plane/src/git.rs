//! Git repositories tracked with gix: a bare cache per repository URL, incremental fetches,
//! revision resolution, and reading trees at a commit without a worktree.
//!
//! gix's network client is blocking: call these from `spawn_blocking`. Fetching over
//! `file://` runs `git upload-pack`, so git must be on PATH for local repositories.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gix::remote::Direction;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One file read from a tree: its path relative to the requested directory, and content.
pub type File = (String, Vec<u8>);

/// The directory (in the cache) that holds ssh keys and known hosts during a fetch.
const SCRATCH: &str = ".scratch";

/// Largest tree (files under the Application path) read for rendering.
pub const MAX_TREE_BYTES: usize = 64 * 1024 * 1024;

/// Credentials for one fetch: https basic auth (or a token), or an ssh deploy key with the
/// host keys to accept.
#[derive(Clone)]
pub struct Account {
    pub username: String,
    pub password: crate::secrets::Secret,
    pub ssh: Option<SshAccount>,
}

/// An ssh deploy key and the pinned host keys (known_hosts lines).
#[derive(Clone)]
pub struct SshAccount {
    pub private_key: crate::secrets::Secret,
    pub known_hosts: String,
}

/// Files ssh reads for one fetch, in a private directory removed afterwards.
struct SshFiles {
    _dir: tempfile::TempDir,
    command: String,
    /// Where ssh writes its messages (read back for errors; never copied to the log as is).
    stderr: std::path::PathBuf,
}

impl SshFiles {
    fn new(account: &SshAccount, dir: tempfile::TempDir) -> std::io::Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write = |name: &str, content: &str| -> std::io::Result<std::path::PathBuf> {
            let p = dir.path().join(name);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p)?;
            f.write_all(content.as_bytes())?;
            if !content.ends_with('\n') {
                f.write_all(b"\n")?;
            }
            Ok(p)
        };
        let key = write("key", account.private_key.expose())?;
        let known = write("known_hosts", &account.known_hosts)?;
        let stderr = dir.path().join("stderr");
        // Only this key, only these host keys, no prompts, no user or system configuration.
        let command = format!(
            "ssh -F /dev/null -i '{}' -o IdentitiesOnly=yes -o UserKnownHostsFile='{}' -o GlobalKnownHostsFile=/dev/null \
-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=30 -o LogLevel=ERROR 2>>'{}'",
            key.display(),
            known.display(),
            stderr.display()
        );
        Ok(Self { _dir: dir, command, stderr })
    }

    /// What ssh said, as one line without private paths.
    fn said(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Please contact"))
            .collect();
        ssh_hint(&lines.join("; "))
    }
}

/// The bare caches under one directory. Cloning it is cheap (the locks are shared).
#[derive(Clone)]
pub struct GitCache {
    root: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    fetch_timeout: Duration,
}

/// How long a fetch may take unless told otherwise (`--git-timeout`).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(120);

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

/// ssh's own words turned into what to do; private file paths left out.
fn ssh_hint(message: &str) -> String {
    let mut m = message.to_string();
    // The key and known_hosts live in a private temporary directory: never show its path.
    let delimiter = ['\'', ' ', '"', ':'];
    while let Some(at) = m.find(SCRATCH) {
        let start = m[..at].rfind(delimiter).map(|i| i + 1).unwrap_or(0);
        let end = m[at..].find(delimiter).map(|e| at + e).unwrap_or(m.len());
        m.replace_range(start..end, "<private>");
    }
    if m.contains("Host key verification failed")
        || m.contains("No ED25519 host key is known")
        || m.contains("host key for")
    {
        return format!(
            "{m} (the server's host key is not among the known hosts stored for this URL: add it with `bosun repo add URL --known-hosts FILE` after checking its fingerprint)"
        );
    }
    if m.contains("Permission denied (publickey") {
        return format!(
            "{m} (the server refused the deploy key: check that its public half is a deploy key of the repository)"
        );
    }
    m
}

/// A repository URL without credentials, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl GitCache {
    /// A cache under `root`. Scratch files of an earlier process (ssh keys written for a
    /// fetch that a kill -9 interrupted) are removed.
    pub fn new(root: PathBuf) -> Self {
        let _ = std::fs::remove_dir_all(root.join(SCRATCH));
        Self { root, locks: Default::default(), fetch_timeout: DEFAULT_FETCH_TIMEOUT }
    }

    /// Fetches that take longer than `timeout` fail (see [`GitCache::fetch`]).
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// A private directory for one fetch's ssh files, removed when dropped.
    fn scratch(&self) -> std::io::Result<tempfile::TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.root.join(SCRATCH);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        tempfile::Builder::new().prefix("ssh-").tempdir_in(dir)
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

    /// Fetches branches, tags and HEAD of `url` into its bare cache (incremental after the
    /// first). Gives up after the fetch timeout: the fetch runs on a thread of its own, told
    /// to stop, and a host that never answers holds only its own repository's lock — a later
    /// fetch of the same URL waits for it (and times out too), other repositories do not.
    pub fn fetch(&self, url: &str, account: Option<&Account>) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let interrupt = Arc::new(AtomicBool::new(false));
        let (worker, u, a, stop) = (self.clone(), url.to_string(), account.cloned(), interrupt.clone());
        std::thread::Builder::new()
            .name("git-fetch".into())
            .spawn(move || {
                let _ = tx.send(worker.fetch_now(&u, a.as_ref(), &stop));
            })
            .map_err(|e| git_err(url, format!("starting the fetch: {e}")))?;
        match rx.recv_timeout(self.fetch_timeout) {
            Ok(r) => r,
            Err(_) => {
                interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(git_err(
                    url,
                    format!(
                        "no answer within {} (--git-timeout): the host may be down or hung; tried again at the next poll or refresh",
                        humantime::format_duration(self.fetch_timeout)
                    ),
                ))
            }
        }
    }

    fn fetch_now(&self, url: &str, account: Option<&Account>, interrupt: &AtomicBool) -> Result<()> {
        let lock = self.lock(url);
        let _guard = lock.lock();
        if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            // Given up on while an earlier fetch of this URL held the lock.
            return Err(git_err(url, "gave up waiting for an earlier fetch of this repository"));
        }
        let mut repo = self.open(url)?;
        let mut _ssh_files = None;
        if bosun_core::app::is_ssh_url(url) {
            let ssh = account.and_then(|a| a.ssh.as_ref()).ok_or_else(|| {
                git_err(
                    url,
                    "no ssh key is stored for this repository; add one with `bosun repo add URL --ssh-key-file KEY --known-hosts FILE`",
                )
            })?;
            let files = self
                .scratch()
                .and_then(|dir| SshFiles::new(ssh, dir))
                .map_err(|e| git_err(url, format!("preparing ssh: {e}")))?;
            let mut cfg = repo.config_snapshot_mut();
            cfg.set_value(&gix::config::tree::Core::SSH_COMMAND, files.command.as_str())
                .map_err(|e| git_err(url, format!("configuring ssh: {e}")))?;
            cfg.commit().map_err(|e| git_err(url, format!("configuring ssh: {e}")))?;
            _ssh_files = Some(files);
        }
        let remote = repo
            .remote_at(url)
            .map_err(|e| git_err(url, e))?
            .with_refspecs(
                ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", "+HEAD:refs/remotes/origin/HEAD"],
                Direction::Fetch,
            )
            .map_err(|e| git_err(url, e))?;
        let mut connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| git_err(url, format!("connecting: {}", ssh_hint(&chain(&e)))))?;
        if let Some(account) = account.filter(|a| a.ssh.is_none()) {
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
        let with_ssh = |what: &str, e: String| match &_ssh_files {
            Some(f) if !f.said().is_empty() => git_err(url, format!("{what}: ssh: {}", f.said())),
            _ => git_err(url, format!("{what}: {}", ssh_hint(&e))),
        };
        connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| with_ssh("listing references", chain(&e)))?
            .receive(gix::progress::Discard, interrupt)
            .map_err(|e| with_ssh("fetching", chain(&e)))?;
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

    /// Reads the manifest files under `path` at `commit` (recursively when `recurse`).
    /// Symlinked manifests and submodules are refused: manifests must be regular files inside
    /// the repository. Other files are neither read nor counted.
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
        Ok(bosun_core::kustomize::KUSTOMIZATION_FILES.iter().any(|n| tree.find_entry(*n).is_some()))
    }

    /// The names of the entries directly under `path` at `commit`.
    pub fn list_names(&self, url: &str, commit: &str, path: &str) -> Result<Vec<String>> {
        let repo = self.open(url)?;
        let tree = self.tree_at(&repo, url, commit, path)?;
        tree.iter().map(|e| e.map(|e| e.inner.filename.to_string()).map_err(|e| git_err(url, e))).collect()
    }

    /// The repository at `commit`, for reading single entries by path.
    pub fn snapshot(&self, url: &str, commit: &str) -> Result<Snapshot> {
        let repo = self.open(url)?;
        let root = self.tree_at(&repo, url, commit, "")?.id;
        Ok(Snapshot { repo, root, url: url.to_string() })
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
        } else if !bosun_core::manifest::is_manifest(&rel) {
            // Not read, not counted: only manifests are rendered.
        } else if mode.is_link() {
            return Err(git_err(
                url,
                format!("{rel} is a symbolic link; manifests must be regular files in the repository"),
            ));
        } else if mode.is_blob() {
            let blob = repo.find_blob(entry.inner.oid.to_owned()).map_err(|e| git_err(url, e))?;
            *total += blob.data.len();
            if *total > MAX_TREE_BYTES {
                return Err(git_err(url, format!("the manifests under the path exceed {MAX_TREE_BYTES} bytes")));
            }
            out.push((rel, blob.data.clone()));
        }
    }
    Ok(())
}

/// What a path is in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Missing,
    /// A regular (or executable) file of this many bytes.
    File(u64),
    Dir,
    /// A symbolic link, at the path or at one of its parent directories.
    Symlink,
    /// A submodule (its content is not in this repository).
    Submodule,
}

/// One repository at one commit, read by path (no worktree).
pub struct Snapshot {
    repo: gix::Repository,
    root: gix::ObjectId,
    url: String,
}

impl Snapshot {
    /// What `path` (repository-relative, normalised; empty is the root) is. A symbolic link
    /// anywhere on the way counts as one: nothing is read through links.
    pub fn entry(&self, path: &str) -> Result<Entry> {
        let mut tree = self.repo.find_tree(self.root).map_err(|e| git_err(&self.url, e))?;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return Ok(Entry::Dir);
        }
        for (i, part) in parts.iter().enumerate() {
            let Some(e) = tree.find_entry(*part) else { return Ok(Entry::Missing) };
            let mode = e.mode();
            let last = i + 1 == parts.len();
            if mode.is_link() {
                return Ok(Entry::Symlink);
            }
            if mode.is_commit() {
                return Ok(Entry::Submodule);
            }
            if mode.is_tree() {
                let id = e.object_id();
                tree = self.repo.find_tree(id).map_err(|e| git_err(&self.url, e))?;
                if last {
                    return Ok(Entry::Dir);
                }
                continue;
            }
            if !last {
                return Ok(Entry::Missing); // a file where a directory is expected
            }
            let header = self.repo.find_header(e.object_id()).map_err(|e| git_err(&self.url, e))?;
            return Ok(Entry::File(header.size()));
        }
        Ok(Entry::Missing)
    }

    /// The content of the regular file at `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let tree = self.repo.find_tree(self.root).map_err(|e| git_err(&self.url, e))?;
        let e = tree
            .lookup_entry_by_path(path)
            .map_err(|e| git_err(&self.url, e))?
            .ok_or_else(|| git_err(&self.url, format!("{path} does not exist")))?;
        let blob = self.repo.find_blob(e.object_id()).map_err(|e| git_err(&self.url, e))?;
        Ok(blob.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_files_of_a_killed_process_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let left = tmp.path().join(SCRATCH).join("ssh-x");
        std::fs::create_dir_all(&left).unwrap();
        std::fs::write(left.join("key"), "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();
        let cache = GitCache::new(tmp.path().into());
        assert!(!tmp.path().join(SCRATCH).exists());
        let d = cache.scratch().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.path().parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let msg = ssh_hint(&format!("Load key \"{}/key\": bad permissions", d.path().display()));
        assert!(!msg.contains(SCRATCH) && msg.contains("<private>"), "{msg}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://user:tok@github.com/o/r"), "https://***@github.com/o/r");
        assert_eq!(redact_url("file:///tmp/r"), "file:///tmp/r");
    }
}
