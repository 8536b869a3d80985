//! Git sources through gix against real servers: file://, git:// (`git daemon`) and smart
//! HTTP (`git http-backend` behind a CGI server); branch, tag, commit and HEAD resolution;
//! incremental refetch; plain and kustomize rendering.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bosun_control_plane::git::GitCache;
use bosun_control_plane::render::{RenderKey, Renderer};

use common::git;

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_served(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Command::new("git")
        .args(["ls-remote", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "{url} not served");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\ndata:\n  v: \"1\"\n";

/// A repository with main (two commits), a dev branch and a tag; served three ways.
#[test]
fn resolves_and_reads_over_file_git_and_http() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let work = root.join("work");
    std::fs::create_dir_all(work.join("k8s/sub")).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("k8s/a.yaml"), CM.replace("NAME", "a")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "v1"]);
    std::fs::write(work.join("k8s/sub/b.yaml"), CM.replace("NAME", "b")).unwrap();
    std::fs::write(work.join("k8s/README.md"), "not a manifest").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["branch", "dev", &first]);
    let served = root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), served.join("repo.git").to_str().unwrap()]);

    let gp = port();
    let _daemon = Killed(
        Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all"])
            .arg(format!("--base-path={}", served.display()))
            .arg(format!("--port={gp}"))
            .arg("--listen=127.0.0.1")
            .arg(&served)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cgi = root.join("www/cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("git");
    std::fs::write(&script, format!("#!/bin/sh\nexport GIT_PROJECT_ROOT={}\nexport GIT_HTTP_EXPORT_ALL=1\nexec git -c safe.directory='*' http-backend\n", served.display())).unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let hp = port();
    let _http = Killed(
        Command::new("python3")
            .args(["-m", "http.server", "--cgi", &hp.to_string(), "--bind", "127.0.0.1"])
            .current_dir(root.join("www"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let urls = [
        format!("file://{}", served.join("repo.git").display()),
        format!("git://127.0.0.1:{gp}/repo.git"),
        format!("http://127.0.0.1:{hp}/cgi-bin/git/repo.git"),
    ];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cache = GitCache::new(root.join("cache"));
    for url in &urls {
        wait_served(url);
        cache.fetch(url, None).unwrap_or_else(|e| panic!("{url}: {e}"));
        for (rev, want) in [
            ("", &second),
            ("HEAD", &second),
            ("main", &second),
            ("dev", &first),
            ("v1", &first),
            (first.as_str(), &first),
            (&first[..10], &first),
        ] {
            assert_eq!(&cache.resolve(url, rev).unwrap_or_else(|e| panic!("{url} {rev}: {e}")), want, "{url} {rev:?}");
        }
        assert!(cache.resolve(url, "no-such-branch").unwrap_err().to_string().contains("not a branch, tag or commit"));
        let flat = cache.read_dir(url, &second, "k8s", false).unwrap();
        let names: Vec<&str> = flat.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["a.yaml"], "{url}: only manifests are read");
        let deep = Renderer::default()
            .render(
                &cache,
                &RenderKey { repo_url: url.clone(), commit: second.clone(), path: "k8s".into(), recurse: true },
            )
            .unwrap();
        assert_eq!(deep.bundle.objects.len(), 2, "{url}: recursion reads k8s/sub");
        let err = cache.read_dir(url, &second, "nope", false).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    // A new commit arrives with an incremental fetch.
    std::fs::write(work.join("k8s/c.yaml"), CM.replace("NAME", "c")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "three"]);
    let third = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", served.join("repo.git").to_str().unwrap(), "main"]);
    cache.fetch(&urls[1], None).unwrap();
    assert_eq!(cache.resolve(&urls[1], "main").unwrap(), third);
}

/// A private repository over HTTP basic auth: refused without or with wrong credentials
/// (without echoing the password), fetched with the right ones.
#[test]
fn http_basic_auth_uses_the_credentials_given() {
    use bosun_control_plane::git::Account;
    use bosun_control_plane::secrets::Secret;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let work = root.join("work");
    std::fs::create_dir_all(work.join("k8s")).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("k8s/a.yaml"), CM.replace("NAME", "a")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "one"]);
    let served = root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), served.join("private.git").to_str().unwrap()]);
    let hp = port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/git_http_server.py");
    let _http = Killed(
        Command::new("python3")
            .args([script, &hp.to_string(), served.to_str().unwrap(), "bosun", "pw-8c1f-do-not-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{hp}/cgi-bin/git/private.git");
    wait_served(&format!("http://bosun:pw-8c1f-do-not-log@127.0.0.1:{hp}/cgi-bin/git/private.git"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cache = GitCache::new(root.join("cache"));
    assert!(cache.fetch(&url, None).is_err(), "no credentials");
    let wrong = Account { username: "bosun".into(), password: Secret::new("wrong-pw"), ssh: None };
    let err = cache.fetch(&url, Some(&wrong)).unwrap_err().to_string();
    assert!(!err.contains("wrong-pw"), "{err}");
    let right = Account { username: "bosun".into(), password: Secret::new("pw-8c1f-do-not-log"), ssh: None };
    cache.fetch(&url, Some(&right)).unwrap();
    assert_eq!(cache.resolve(&url, "main").unwrap(), git(&work, &["rev-parse", "HEAD"]));
}

/// A repository at `work` whose one commit holds `k8s/a.yaml` (a ConfigMap) and whatever
/// `more` adds to `k8s/`; the commit.
fn one_commit(work: &std::path::Path, more: impl FnOnce(&std::path::Path)) -> String {
    std::fs::create_dir_all(work.join("k8s")).unwrap();
    git(work, &["init", "-q"]);
    std::fs::write(work.join("k8s/a.yaml"), CM.replace("NAME", "a")).unwrap();
    more(&work.join("k8s"));
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", "one"]);
    git(work, &["rev-parse", "HEAD"])
}

/// Content that tries to leave the repository: a symlinked manifest pointing outside the tree
/// is refused with a clear error naming the file; a regular file beside it is not read then.
#[test]
fn symlinked_manifests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let commit = one_commit(&work, |k8s| std::os::unix::fs::symlink("/etc/passwd", k8s.join("passwd.yaml")).unwrap());
    let url = format!("file://{}", work.display());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cache = GitCache::new(tmp.path().join("cache"));
    cache.fetch(&url, None).unwrap();
    let err = Renderer::default()
        .render(&cache, &RenderKey { repo_url: url, commit, path: "k8s".into(), recurse: false })
        .unwrap_err()
        .to_string();
    assert!(err.contains("passwd.yaml is a symbolic link"), "{err}");
    assert!(!err.contains("root:"), "nothing outside the repository was read: {err}");
}

#[test]
fn kustomize_directories_render_through_kubectl_or_kustomize() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("base")).unwrap();
    std::fs::create_dir_all(work.join("overlays/prod")).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("base/cm.yaml"), CM.replace("NAME", "settings")).unwrap();
    std::fs::write(work.join("base/kustomization.yaml"), "resources:\n- cm.yaml\n").unwrap();
    std::fs::write(
        work.join("overlays/prod/kustomization.yaml"),
        "resources:\n- ../../base\nnamePrefix: prod-\ncommonLabels:\n  env: prod\n",
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "kustomize"]);
    let rev = git(&work, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", work.display());
    let cache = GitCache::new(tmp.path().join("cache"));
    cache.fetch(&url, None).unwrap();
    let b = Renderer::default()
        .render(&cache, &RenderKey { repo_url: url, commit: rev, path: "overlays/prod".into(), recurse: false })
        .unwrap()
        .bundle;
    assert_eq!(b.objects.len(), 1);
    assert_eq!(b.objects[0]["metadata"]["name"], "prod-settings");
    assert_eq!(b.objects[0]["metadata"]["labels"]["env"], "prod");
}

/// A host that accepts connections and never answers (a hung Git server).
fn hung_host() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        // Holds every connection open, saying nothing, until the test process ends.
        for conn in listener.incoming().take(8).flatten() {
            open.push(conn);
        }
        std::thread::park();
    });
    (port, held)
}

#[test]
fn a_hung_host_fails_its_own_fetch_at_the_deadline_and_holds_up_no_other_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    one_commit(&work, |_| {});
    let good = format!("file://{}", work.display());
    let (port, _held) = hung_host();
    let hung = format!("git://127.0.0.1:{port}/repo");

    // The hung fetch runs (with a long deadline) while the healthy repository is fetched.
    let slow = GitCache::new(tmp.path().join("cache")).with_fetch_timeout(Duration::from_secs(60));
    let waiting = {
        let (cache, url) = (slow.clone(), hung.clone());
        std::thread::spawn(move || cache.fetch(&url, None))
    };
    slow.fetch(&good, None).expect("another repository is fetched while one host hangs");
    assert!(!waiting.is_finished(), "the hung fetch was still waiting when the other finished");

    // With a short deadline the hung host's fetch fails, saying why and what happens next.
    let quick = GitCache::new(tmp.path().join("cache2")).with_fetch_timeout(Duration::from_millis(500));
    let err = quick.fetch(&hung, None).unwrap_err().to_string();
    assert!(err.contains("no answer within 500ms (--git-timeout)") && err.contains("127.0.0.1"), "{err}");
    quick.fetch(&good, None).expect("the cache still works after a fetch was given up");
}
