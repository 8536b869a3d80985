//! The files a kustomization reads, found by following what it names from the repository at
//! one commit, and the private checkout that holds exactly those files.
//!
//! Limits and the symlink check apply to these files only: a symbolic link or a large file
//! elsewhere in the repository does not concern this render.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bosun_core::kustomize::{KUSTOMIZATION_FILES, RefKind, check, references};

use crate::git::{Entry, Snapshot};

/// Largest file a render reads, and the most bytes one render reads in all.
pub const MAX_FILE_BYTES: u64 = bosun_core::manifest::MAX_FILE_BYTES as u64;
pub const MAX_TOTAL_BYTES: u64 = crate::git::MAX_TREE_BYTES as u64;
/// Most kustomizations one render may traverse.
pub const MAX_KUSTOMIZATIONS: usize = 1000;

/// The repository files one render reads (repository-relative paths and sizes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closure {
    pub files: BTreeMap<String, u64>,
    pub dirs: BTreeSet<String>,
}

impl Closure {
    fn add(&mut self, path: &str, size: u64, why: &str) -> Result<(), String> {
        if size > MAX_FILE_BYTES {
            return Err(format!(
                "{why}: {path} is {size} bytes, more than the {MAX_FILE_BYTES} a render reads from one file"
            ));
        }
        self.files.insert(path.to_string(), size);
        let total: u64 = self.files.values().sum();
        if total > MAX_TOTAL_BYTES {
            return Err(format!("the files this kustomization reads exceed {MAX_TOTAL_BYTES} bytes"));
        }
        Ok(())
    }
}

fn git_message(e: crate::error::Error) -> String {
    match e {
        crate::error::Error::Git { message, .. } => message,
        other => other.to_string(),
    }
}

/// The kustomization file of `dir`, if it has one.
fn kustomization_file(snap: &Snapshot, dir: &str) -> Result<Option<(String, u64)>, String> {
    for name in KUSTOMIZATION_FILES {
        let path = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
        match snap.entry(&path).map_err(git_message)? {
            Entry::File(size) => return Ok(Some((path, size))),
            Entry::Symlink => {
                return Err(format!("{path} is a symbolic link; files a render reads must be regular files"));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Follows the kustomization in `start` through everything it names. Refuses paths that leave
/// the repository, remote bases from hosts not in `allowed_hosts`, symbolic links, submodules
/// and oversized files among what it reads.
pub fn closure(snap: &Snapshot, start: &str, allowed_hosts: &[String]) -> Result<Closure, String> {
    let mut out = Closure::default();
    let mut queue = vec![(start.to_string(), String::new())];
    while let Some((dir, named_by)) = queue.pop() {
        if !out.dirs.insert(dir.clone()) {
            continue;
        }
        if out.dirs.len() > MAX_KUSTOMIZATIONS {
            return Err(format!("the kustomization names more than {MAX_KUSTOMIZATIONS} kustomizations"));
        }
        let shown = if dir.is_empty() { "the repository root".to_string() } else { dir.clone() };
        let Some((kfile, size)) = kustomization_file(snap, &dir)? else {
            return Err(format!("{named_by}{shown} holds no kustomization.yaml"));
        };
        out.add(&kfile, size, &kfile)?;
        let bytes = snap.read(&kfile).map_err(git_message)?;
        let k = bosun_core::manifest::parse_document(&kfile, &bytes).map_err(|e| e.to_string())?;
        for r in references(&k) {
            let Some(path) = check(&dir, &r, allowed_hosts).map_err(|e| format!("{kfile}: {e}"))? else { continue };
            let named = format!("{kfile}: {}: {:?}", r.field, r.value);
            match snap.entry(&path).map_err(git_message)? {
                Entry::File(size) => out.add(&path, size, &named)?,
                Entry::Dir if r.kind == RefKind::FileOrDir => queue.push((path, format!("{named} → "))),
                Entry::Dir => return Err(format!("{named} is a directory; a file is expected")),
                Entry::Symlink => {
                    return Err(format!(
                        "{named} is (or goes through) a symbolic link; files a render reads must be regular files in the repository"
                    ));
                }
                Entry::Submodule => {
                    return Err(format!("{named} is in a submodule, whose content is not in this repository"));
                }
                // Not a file: inline content (kustomize reads it as a document).
                Entry::Missing if r.kind == RefKind::FileOrInline => {}
                Entry::Missing => return Err(format!("{named} does not exist in the repository at this commit")),
            }
        }
    }
    Ok(out)
}

/// Writes the files of `closure` under `dest` (a fresh directory), as they are at the commit.
pub fn export(snap: &Snapshot, closure: &Closure, dest: &Path) -> Result<(), String> {
    for dir in &closure.dirs {
        std::fs::create_dir_all(dest.join(dir)).map_err(|e| format!("preparing the checkout: {e}"))?;
    }
    for path in closure.files.keys() {
        let p = dest.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("preparing the checkout: {e}"))?;
        }
        let bytes = snap.read(path).map_err(git_message)?;
        std::fs::write(&p, bytes).map_err(|e| format!("preparing the checkout: {e}"))?;
    }
    Ok(())
}
