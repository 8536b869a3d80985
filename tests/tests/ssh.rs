//! Git over ssh against a real sshd on loopback: a deploy key stored sealed, host keys pinned
//! per URL (an unknown or changed host key is refused with what to do), and neither the key
//! nor its temporary file path in any log or error.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

struct Sshd {
    child: Child,
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bosun-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen is installed");
    assert!(ok.success());
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An sshd on 127.0.0.1 accepting `authorized` for the current user.
fn sshd(dir: &Path, authorized: &Path) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(sshd.exists(), "openssh-server is not installed (scripts/test-tools.sh installs it)");
    let _ = std::fs::create_dir_all("/run/sshd");
    keygen(&dir.join("host_key"));
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nPidFile {pid}\nAllowUsers {user}\nLogLevel VERBOSE\n",
            host = dir.join("host_key").display(),
            auth = authorized.display(),
            pid = dir.join("sshd.pid").display(),
            user = user(),
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    // Wait until it accepts connections.
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Sshd { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_repositories_with_a_deploy_key_and_pinned_host_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ssh_dir = root.join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    keygen(&ssh_dir.join("deploy"));
    let authorized = ssh_dir.join("authorized_keys");
    std::fs::copy(ssh_dir.join("deploy.pub"), &authorized).unwrap();
    let server = sshd(&ssh_dir, &authorized);

    // A bare repository served over ssh.
    let work = root.join("work");
    std::fs::create_dir_all(work.join("k8s")).unwrap();
    std::fs::write(work.join("k8s/cm.yaml"), configmap("web", "1")).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "initial"]);
    let bare = root.join("served/repo.git");
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&work).output().unwrap();
    let rev = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let url = format!("ssh://{}@127.0.0.1:{}{}", user(), server.port, bare.display());

    // known_hosts: the real host key, and one that is not the server's.
    let host_pub = std::fs::read_to_string(ssh_dir.join("host_key.pub")).unwrap();
    let key_of = |pub_line: &str| pub_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let known = ssh_dir.join("known_hosts");
    std::fs::write(&known, format!("[127.0.0.1]:{} {}\n", server.port, key_of(&host_pub))).unwrap();
    keygen(&ssh_dir.join("impostor"));
    let wrong = ssh_dir.join("wrong_known_hosts");
    let impostor = std::fs::read_to_string(ssh_dir.join("impostor.pub")).unwrap();
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {}\n", server.port, key_of(&impostor))).unwrap();

    let cp = ControlPlane::start(root).await;
    let private = std::fs::read_to_string(ssh_dir.join("deploy")).unwrap();
    cp.plant(private.lines().nth(1).unwrap());
    let c1 = Cluster::start(root, "c1").await;
    let _agent = Agent::start(root, &cp, &c1, &cp.add_cluster("c1"));
    let prefix = format!("ssh://{}@127.0.0.1:{}/", user(), server.port);
    let deploy = ssh_dir.join("deploy");

    // Without a key: refused, saying what to do.
    cp.create_app("web", &url, "k8s", "c1", &["--auto-sync"]);
    let err = cp.app_json("web")["status"]["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("no ssh key is stored"), "{err}");

    // A key, but a host key that is not the server's: refused, saying what to do.
    let add_key = |url: &str, known_hosts: &std::path::Path| {
        let args = ["repo", "add", url, "--ssh-key-file", deploy.to_str().unwrap(), "--known-hosts"];
        cp.bosun(&[&args[..], &[known_hosts.to_str().unwrap()]].concat())
    };
    let o = add_key(&prefix, &wrong);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = cp.bosun(&["app", "refresh", "web"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("host key") && o.stderr.contains("known hosts"), "{}", o.stderr);
    assert!(!o.stderr.contains(".scratch"), "private paths stay private: {}", o.stderr);

    // The right host key: fetched, rendered and synced.
    let o = add_key(&prefix, &known);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let listed = cp.bosun_ok(&["repo", "list", "-o", "json"]);
    assert!(
        listed.contains("\"hasSshKey\": true") && listed.contains(&format!("[127.0.0.1]:{}", server.port)),
        "{listed}"
    );
    assert!(!listed.contains("PRIVATE KEY"), "{listed}");
    cp.bosun_ok(&["app", "refresh", "web"]);
    cp.wait_synced("web", &rev).await;

    // Validation: a key for an https URL, a key without host keys.
    let o = add_key("https://example.com/x/", &known);
    assert_ne!(o.code, 0);
    let empty = ssh_dir.join("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let o = add_key(&prefix, &empty);
    assert!(o.code != 0 && o.stderr.contains("host keys"), "{}", o.stderr);
}
