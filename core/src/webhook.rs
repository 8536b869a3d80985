//! Push events from Git hosting webhooks (GitHub, GitLab), parsed into what Bosun needs to
//! know — which repository, which ref, which files — and the rule deciding which
//! Applications a push touches. Signature checks happen at the HTTP edge; this is pure.

use serde_json::Value;

use crate::app::Source;

/// Which host sent the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
}

/// A push, as far as refreshing Applications is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushEvent {
    /// The repository's URLs (https, ssh, web), normalised with [`normalize_repo_url`].
    pub repos: Vec<String>,
    /// The full ref pushed, e.g. `refs/heads/main` or `refs/tags/v1`.
    pub git_ref: String,
    /// The repository's default branch when the payload names it.
    pub default_branch: Option<String>,
    /// Files added, modified or removed; `None` when the payload does not list them all.
    pub changed_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("not a push event ({0}); only pushes trigger refreshes")]
    NotPush(String),
    #[error("the push payload has no {0}")]
    Missing(&'static str),
    #[error("the push names ref {0:?}, which is not refs/heads/<branch> or refs/tags/<tag>")]
    BadRef(String),
}

/// A repository URL reduced to `host/path` in lowercase, without scheme, credentials, port,
/// trailing `.git` or `/`, so `https://github.com/Acme/App.git`, `git@github.com:acme/app`
/// and `ssh://git@github.com/acme/app` compare equal.
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim();
    // A scheme is letters, digits, `+`, `.` or `-` before the first `://`.
    let scheme_end = url
        .find("://")
        .filter(|&i| i > 0 && url[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)));
    let has_scheme = scheme_end.is_some();
    let rest = match scheme_end {
        Some(i) => &url[i + 3..],
        None => url, // scp-like: git@host:path
    };
    // Credentials are in the authority only (before the first `/`).
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let (host, path) = match rest.find(['/', ':']) {
        // `host:port/path` in a URL; `host:path` in scp-like syntax.
        Some(i) if rest.as_bytes()[i] == b':' && has_scheme => {
            let after = &rest[i + 1..];
            (&rest[..i], after.find('/').map(|j| &after[j..]).unwrap_or(""))
        }
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    // Strip until nothing changes, so that normalising twice gives the same answer
    // (`a.git.git`, `a.git/`, `a.GIT `).
    let mut path = path.to_ascii_lowercase();
    loop {
        let trimmed = path.trim().trim_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        if trimmed.len() == path.len() {
            break;
        }
        path = trimmed.to_string();
    }
    format!("{}/{path}", host.trim().to_ascii_lowercase())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Parses a push payload. `event` is the `X-GitHub-Event` / `X-Gitlab-Event` header value.
pub fn parse_push(provider: Provider, event: &str, body: &[u8]) -> Result<PushEvent, WebhookError> {
    let is_push = match provider {
        Provider::GitHub => event == "push",
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
    };
    if !is_push {
        return Err(WebhookError::NotPush(event.to_string()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let git_ref = str_at(&v, "/ref").ok_or(WebhookError::Missing("ref"))?.to_string();
    if short_ref(&git_ref).is_none() {
        return Err(WebhookError::BadRef(git_ref));
    }
    let url_fields: &[&str] = match provider {
        Provider::GitHub => {
            &["/repository/clone_url", "/repository/ssh_url", "/repository/html_url", "/repository/git_url"]
        }
        Provider::GitLab => &[
            "/project/git_http_url",
            "/project/git_ssh_url",
            "/project/web_url",
            "/repository/git_http_url",
            "/repository/git_ssh_url",
            "/repository/homepage",
        ],
    };
    let mut repos: Vec<String> = url_fields.iter().filter_map(|p| str_at(&v, p)).map(normalize_repo_url).collect();
    repos.sort();
    repos.dedup();
    if repos.is_empty() {
        return Err(WebhookError::Missing("repository URL"));
    }
    let default_branch = match provider {
        Provider::GitHub => {
            str_at(&v, "/repository/default_branch").or_else(|| str_at(&v, "/repository/master_branch"))
        }
        Provider::GitLab => str_at(&v, "/project/default_branch"),
    }
    .map(str::to_string);
    let commits = v.get("commits").and_then(Value::as_array);
    let listed = commits.map(Vec::len).unwrap_or(0);
    let complete = match provider {
        // GitHub lists at most 2048 commits; a forced push or a new branch may list none.
        Provider::GitHub => commits.is_some() && listed > 0 && listed < 2048,
        // GitLab lists at most 20 and says how many there were.
        Provider::GitLab => {
            let total = v.get("total_commits_count").and_then(Value::as_u64).unwrap_or(listed as u64);
            listed > 0 && total as usize == listed
        }
    };
    let changed_paths = if complete {
        let mut paths = Vec::new();
        for c in commits.into_iter().flatten() {
            for field in ["added", "modified", "removed"] {
                for p in c.get(field).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(p) = p.as_str() {
                        paths.push(repo_relative(p).to_string());
                    }
                }
            }
        }
        paths.sort();
        paths.dedup();
        Some(paths)
    } else {
        None
    };
    Ok(PushEvent { repos, git_ref, default_branch, changed_paths })
}

impl PushEvent {
    /// The branch or tag pushed (`main` for `refs/heads/main`).
    pub fn pushed(&self) -> &str {
        short_ref(&self.git_ref).unwrap_or(&self.git_ref)
    }

    /// Whether this push may change what `source` renders: same repository, the ref the
    /// Application follows, and (when the payload lists files) a file under its path.
    /// An Application pinned to a commit is never touched.
    pub fn touches(&self, source: &Source) -> bool {
        if !self.repos.contains(&normalize_repo_url(&source.repo_url)) {
            return false;
        }
        let pushed = self.pushed();
        let target = source.target_revision.trim();
        let follows = match target {
            "" | "HEAD" => self.default_branch.as_deref().is_none_or(|d| d == pushed),
            t => t == pushed || t == self.git_ref,
        };
        if !follows {
            return false;
        }
        let Some(paths) = &self.changed_paths else { return true };
        let dir = repo_relative(&source.path);
        if dir.is_empty() {
            return !paths.is_empty();
        }
        paths.iter().any(|p| p.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// The branch or tag name of a pushed ref; `None` unless it is `refs/heads/<name>` or
/// `refs/tags/<name>` with a name Git accepts (no spaces, control characters, `..` or empty
/// components).
fn short_ref(git_ref: &str) -> Option<&str> {
    let name = git_ref.strip_prefix("refs/heads/").or_else(|| git_ref.strip_prefix("refs/tags/"))?;
    let valid = !name.is_empty()
        && !name.contains("..")
        && name.split('/').all(|c| !c.is_empty() && !c.starts_with('.'))
        && !name.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    valid.then_some(name)
}

/// A path inside the repository as Git names it: no leading `./` or `/`, no trailing `/`
/// (payloads and Application paths both arrive written either way).
fn repo_relative(path: &str) -> &str {
    let mut p = path.trim_matches('/');
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    if p == "." { "" } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(url: &str, rev: &str, path: &str) -> Source {
        Source { repo_url: url.into(), target_revision: rev.into(), path: path.into(), recurse: false }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        // Found by fuzzing: a `://` inside the path was taken for a scheme on the second pass.
        for url in [
            "https://github.com/acme/gitopsttps://github.com/a.git",
            "https://user@host/a@b/c",
            "git@github.com:acme/app.git",
            "ssh://git@github.com:22/acme/app",
            // Found by fuzzing: a suffix uncovered by stripping another one.
            "https://github.com/acme/gi.git.git",
            "https://github.com/acme/app.git/",
            "https://github.com/acme/app .GIT",
        ] {
            let once = normalize_repo_url(url);
            assert_eq!(normalize_repo_url(&once), once, "{url}");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalising_is_idempotent(url in "[a-zA-Z@:/. _-]{0,12}(\\.git|\\.GIT|/| ){0,4}") {
            let once = normalize_repo_url(&url);
            proptest::prop_assert_eq!(normalize_repo_url(&once), once);
        }
    }

    #[test]
    fn urls_normalise() {
        let table = [
            ("https://github.com/Acme/App.git", "github.com/acme/app"),
            ("https://user:tok@github.com/acme/app/", "github.com/acme/app"),
            ("git@github.com:acme/app.git", "github.com/acme/app"),
            ("ssh://git@github.com/acme/app", "github.com/acme/app"),
            ("ssh://git@gitlab.example:2222/g/sub/app.git", "gitlab.example/g/sub/app"),
            ("git://127.0.0.1:9418/repo", "127.0.0.1/repo"),
            ("https://host/2024/repo", "host/2024/repo"),
        ];
        for (url, want) in table {
            assert_eq!(normalize_repo_url(url), want, "{url}");
        }
    }

    fn github(commits: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "repository": {"clone_url": "https://github.com/acme/gitops.git", "ssh_url": "git@github.com:acme/gitops.git",
                           "html_url": "https://github.com/acme/gitops", "default_branch": "main"},
            "commits": commits,
        }))
        .unwrap()
    }

    #[test]
    fn github_push_touches_only_apps_under_changed_paths() {
        let body =
            github(json!([{"added": ["k8s/backend/deployment.yaml"], "modified": [], "removed": ["README.md"]}]));
        let e = parse_push(Provider::GitHub, "push", &body).unwrap();
        assert_eq!(e.changed_paths.as_deref().unwrap(), ["README.md", "k8s/backend/deployment.yaml"]);
        let url = "git@github.com:Acme/gitops";
        let table = [
            (src(url, "main", "k8s/backend"), true),
            (src(url, "", "k8s/backend"), true),
            (src(url, "HEAD", "k8s"), true),
            (src(url, "main", "k8s/frontend"), false),
            (src(url, "main", "k8s/back"), false),
            (src(url, "main", ""), true),
            (src(url, "main", "./k8s/backend/"), true),
            (src(url, "main", "/k8s"), true),
            (src(url, "main", "./"), true),
            (src(url, "release", "k8s/backend"), false),
            (src(url, "0123456789abcdef0123456789abcdef01234567", "k8s/backend"), false),
            (src("https://github.com/acme/other", "main", "k8s/backend"), false),
        ];
        for (s, want) in table {
            assert_eq!(e.touches(&s), want, "{s:?}");
        }
    }

    #[test]
    fn a_ref_that_is_no_branch_or_tag_is_refused() {
        // Found by fuzzing: " efs/heads/main" was taken for a ref no Application could follow.
        for bad in [" efs/heads/main", "refs/heads/", "refs/heads/a b", "refs/heads/../x", "refs/pull/1/head", "main"] {
            let mut body: Value = serde_json::from_slice(&github(json!([]))).unwrap();
            body["ref"] = json!(bad);
            let err = parse_push(Provider::GitHub, "push", &serde_json::to_vec(&body).unwrap()).unwrap_err();
            assert!(matches!(err, WebhookError::BadRef(_)), "{bad}: {err}");
        }
        let e = parse_push(Provider::GitHub, "push", &github(json!([]))).unwrap();
        assert_eq!(e.pushed(), "main");
    }

    #[test]
    fn a_listed_path_written_with_a_leading_slash_still_touches_its_directory() {
        // Found by fuzzing: "/8s/a.yaml" did not touch the Application at path "/8s".
        let body = github(json!([{"added": ["/8s/a.yaml", "./k8s/b.yaml"], "modified": [], "removed": []}]));
        let e = parse_push(Provider::GitHub, "push", &body).unwrap();
        assert_eq!(e.changed_paths.as_deref().unwrap(), ["8s/a.yaml", "k8s/b.yaml"]);
        let url = "https://github.com/acme/gitops";
        for path in ["/8s", "8s", "8s/", "k8s", "./k8s"] {
            assert!(e.touches(&src(url, "main", path)), "{path}");
        }
        assert!(!e.touches(&src(url, "main", "s")));
    }

    #[test]
    fn unlisted_files_touch_every_app_of_the_branch() {
        let e = parse_push(Provider::GitHub, "push", &github(json!([]))).unwrap();
        assert_eq!(e.changed_paths, None);
        assert!(e.touches(&src("https://github.com/acme/gitops", "main", "anything")));
    }

    #[test]
    fn gitlab_push_and_truncated_commit_lists() {
        let body = serde_json::to_vec(&json!({
            "object_kind": "push", "ref": "refs/heads/main", "total_commits_count": 1,
            "project": {"git_http_url": "https://gitlab.com/acme/gitops.git", "git_ssh_url": "git@gitlab.com:acme/gitops.git",
                        "default_branch": "main"},
            "commits": [{"added": [], "modified": ["k8s/frontend/a.yaml"], "removed": []}],
        }))
        .unwrap();
        let e = parse_push(Provider::GitLab, "Push Hook", &body).unwrap();
        assert!(e.touches(&src("https://gitlab.com/acme/gitops", "main", "k8s/frontend")));
        assert!(!e.touches(&src("https://gitlab.com/acme/gitops", "main", "k8s/backend")));
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        v["total_commits_count"] = json!(40);
        let e = parse_push(Provider::GitLab, "Push Hook", &serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(e.changed_paths, None, "GitLab lists 20 of 40 commits: files unknown");
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(matches!(parse_push(Provider::GitHub, "ping", b"{}"), Err(WebhookError::NotPush(_))));
        assert!(matches!(parse_push(Provider::GitHub, "push", b"{"), Err(WebhookError::NotJson(_))));
        assert!(matches!(
            parse_push(Provider::GitHub, "push", b"{\"ref\":\"refs/heads/x\"}"),
            Err(WebhookError::Missing(_))
        ));
        assert!(matches!(parse_push(Provider::GitLab, "Push Hook", b"[]"), Err(WebhookError::Missing(_))));
    }
}
