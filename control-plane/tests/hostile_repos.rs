//! Hostile repositories against the renderer: kustomizations that try to read outside the
//! repository or reach the network are refused by path validation with a message naming the
//! field, and — when validation is bypassed — by the kernel sandbox (Landlock); a symbolic
//! link or a large file elsewhere in the repository does not concern a render; sources Bosun
//! cannot render say what they are.

mod common;

use std::path::Path;
use std::process::Command;

use bosun_control_plane::git::GitCache;
use bosun_control_plane::render::sandbox::{Confinement, confinement};
use bosun_control_plane::render::{RenderKey, Renderer};

use common::git;

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\ndata:\n  v: \"1\"\n";
const SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\nstringData:\n  password: do-not-read-me\n";

/// A repository whose files are `files` (path, content); `links` are (path, target).
struct Repo {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    url: String,
    commit: String,
    cache: GitCache,
}

fn repo(files: &[(&str, &str)], links: &[(&str, &str)]) -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let work = root.join("repo");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    for (p, c) in files {
        let f = work.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    for (p, target) in links {
        let f = work.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, f).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "c"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", work.display());
    let cache = GitCache::new(root.join("cache"));
    cache.fetch(&url, None).unwrap();
    Repo { _tmp: tmp, root, url, commit, cache }
}

impl Repo {
    fn render(&self, path: &str) -> Result<Vec<serde_json::Value>, String> {
        self.render_with(&Renderer::default(), path)
    }

    fn render_with(&self, r: &Renderer, path: &str) -> Result<Vec<serde_json::Value>, String> {
        let key =
            RenderKey { repo_url: self.url.clone(), commit: self.commit.clone(), path: path.into(), recurse: false };
        r.render(&self.cache, &key).map(|o| o.bundle.objects).map_err(|e| e.to_string())
    }
}

/// Plants a kustomization holding a Secret outside the repository, as an attacker would
/// hope to find one (the Git cache of another repository, the data directory).
fn planted_outside(root: &Path) -> std::path::PathBuf {
    let dir = root.join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret.yaml"), SECRET).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), "resources:\n- secret.yaml\n").unwrap();
    dir
}

#[test]
fn validation_refuses_every_escape_with_a_clear_message() {
    let cases: &[(&str, &str, &str)] = &[
        ("resources:\n- ../../../outside\n", "resources", "leads outside the repository"),
        ("resources:\n- /etc\n", "resources", "absolute path"),
        ("components:\n- ../../..\n", "components", "leads outside the repository"),
        ("patches:\n- path: ../../../etc/passwd\n", "patches[0].path", "leads outside the repository"),
        (
            "configMapGenerator:\n- name: x\n  files:\n  - k=../../../etc/passwd\n",
            "configMapGenerator[0].files",
            "leads outside",
        ),
        (
            "secretGenerator:\n- name: x\n  envs:\n  - ../../../../root/.env\n",
            "secretGenerator[0].envs",
            "leads outside",
        ),
        ("crds:\n- ../../../x.yaml\n", "crds", "leads outside"),
        ("openapi:\n  path: /etc/schema.json\n", "openapi.path", "absolute path"),
        ("resources:\n- https://evil.example/x//base?ref=main\n", "resources", "remote base"),
        ("resources:\n- git@github.com:acme/private.git\n", "resources", "remote base"),
        ("resources:\n- linked\n", "resources", "symbolic link"),
        ("resources:\n- via/cm.yaml\n", "resources", "symbolic link"),
    ];
    for (k, field, why) in cases {
        let r = repo(
            &[("apps/web/kustomization.yaml", k), ("apps/web/cm.yaml", &CM.replace("NAME", "a"))],
            &[("apps/web/linked", "/etc"), ("apps/web/via", "../web")],
        );
        planted_outside(&r.root);
        let err = r.render("apps/web").unwrap_err();
        assert!(err.contains(field) && err.contains(why), "{k:?}: {err}");
        assert!(!err.contains("do-not-read-me") && !err.contains(&r.root.display().to_string()), "{err}");
    }
}

#[test]
fn the_kernel_sandbox_refuses_what_validation_would() {
    if let Confinement::Unavailable(why) = confinement() {
        eprintln!("skipped: no Landlock on this kernel ({why}); validation is the layer that runs");
        return;
    }
    // Bypass validation: a checkout written by hand, naming a directory outside it (kustomize
    // itself allows relative bases anywhere) and a remote file.
    let tmp = tempfile::tempdir().unwrap();
    planted_outside(tmp.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let checkout = tmp.path().join("checkout");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    for k in ["resources:\n- ../../outside\n".to_string(), format!("resources:\n- http://127.0.0.1:{port}/x.yaml\n")] {
        let _ = std::fs::remove_dir_all(&checkout);
        std::fs::create_dir_all(checkout.join("app")).unwrap();
        std::fs::write(checkout.join("app/kustomization.yaml"), &k).unwrap();
        let err = Renderer::default().run_kustomize(&checkout, &home, &checkout.join("app")).unwrap_err();
        assert!(!err.contains("do-not-read-me"), "{err}");
        assert!(!err.contains(&checkout.display().to_string()), "private paths do not leak: {err}");
        println!("refused by the kernel: {err}");
    }
    // Without the sandbox the same escape works: the kernel layer is what refused it.
    std::fs::write(checkout.join("app/kustomization.yaml"), "resources:\n- ../../outside\n").unwrap();
    let plain = Command::new("kubectl").args(["kustomize"]).arg(checkout.join("app")).output().unwrap();
    assert!(String::from_utf8_lossy(&plain.stdout).contains("planted"), "unconfined kustomize reads outside");
    assert!(listener.accept().is_err(), "the sandboxed render opened a TCP connection");
}

#[test]
fn only_what_a_render_reads_is_checked() {
    let big = "x".repeat(5 * 1024 * 1024);
    let r = repo(
        &[
            ("base/kustomization.yaml", "resources:\n- cm.yaml\n"),
            ("base/cm.yaml", &CM.replace("NAME", "settings")),
            ("overlays/prod/kustomization.yaml", "resources:\n- ../../base\nnamePrefix: prod-\n"),
            ("assets/huge.bin", &big),
            ("docs/big.yaml", &big),
        ],
        &[("docs/passwd.yaml", "/etc/passwd"), ("other/link", "/")],
    );
    let objects = r.render("overlays/prod").unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["metadata"]["name"], "prod-settings");
    // The same checks do apply to what it reads.
    let r = repo(&[("app/kustomization.yaml", "resources:\n- big.yaml\n"), ("app/big.yaml", &big)], &[]);
    let err = r.render("app").unwrap_err();
    assert!(err.contains("big.yaml") && err.contains("bytes"), "{err}");
}

#[test]
fn allowed_remote_hosts_are_the_only_ones() {
    let r = repo(
        &[(
            "app/kustomization.yaml",
            "resources:\n- https://github.com/acme/x//base?ref=v1\n- https://evil.example/y\n",
        )],
        &[],
    );
    let renderer = Renderer { allowed_hosts: vec!["github.com".into()], ..Renderer::default() };
    let err = r.render_with(&renderer, "app").unwrap_err();
    assert!(err.contains("evil.example") && !err.contains("github.com/acme"), "{err}");
}

#[test]
fn sources_bosun_cannot_render_say_what_they_are() {
    let r = repo(
        &[
            ("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"),
            ("chart/values.yaml", "replicas: 2\n"),
            ("jsonnet/main.jsonnet", "{}"),
            ("plugin/.argocd-source-web.yaml", "plugin: {}\n"),
            ("plugin/notes.txt", "x"),
        ],
        &[],
    );
    for (path, want) in [("chart", "Helm chart"), ("jsonnet", "Jsonnet"), ("plugin", "plugin")] {
        let err = r.render(path).unwrap_err();
        assert!(err.contains(want) && !err.contains("missing") && !err.contains("allowEmpty"), "{path}: {err}");
    }
}
