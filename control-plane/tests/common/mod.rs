//! What the control plane's integration tests share: git with a test identity.

use std::path::Path;
use std::process::Command;

/// Runs git in `dir` with a test identity and no signing; its trimmed stdout. Fails the
/// test when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.email=t@bosun.test", "-c", "user.name=t", "-c", "init.defaultBranch=main"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
