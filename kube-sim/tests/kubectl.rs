//! kubectl as an outside client: apply --server-side, get (short names, -o yaml, -w), wait,
//! scale, conflicts, delete, dry runs, HTTPS kubeconfig.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::fast_config;
use kube_sim::{SimCluster, SimConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: IMAGE
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: prod
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: hello
"#;

struct Kubectl {
    kubeconfig: PathBuf,
    dir: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(c: &SimCluster, tag: &str) -> Self {
        assert!(
            std::process::Command::new("kubectl").arg("version").arg("--client").output().is_ok(),
            "kubectl must be on PATH for these tests (.ci/run installs it)"
        );
        let dir = std::env::temp_dir().join(format!("kube-sim-kubectl-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, c.kubeconfig(false)).unwrap();
        Self { kubeconfig, dir }
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("KUBECACHEDIR", self.dir.join("cache"));
        c.kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Out {
        let o = self.cmd(args).output().await.expect("run kubectl");
        Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(o.ok, "kubectl {args:?} failed: {}", o.stderr);
        o.stdout
    }
}

#[tokio::test]
async fn apply_get_wait_conflict_delete() {
    let c = SimCluster::start(fast_config()).await.unwrap();
    let k = Kubectl::new(&c, "main");
    let manifest = k.file("app.yaml", &APP.replace("IMAGE", "nginx:1.27"));
    let out = k.ok(&["apply", "--server-side", "--validate=false", "-f", &manifest]).await;
    assert_eq!(out.matches("serverside-applied").count(), 4, "{out}");

    // Short names and the printed columns.
    let table = k.ok(&["get", "deploy,svc,cm", "-n", "demo"]).await;
    for want in ["deployment.apps/web", "service/web", "configmap/settings", "ClusterIP"] {
        assert!(table.contains(want), "{want} missing from:\n{table}");
    }
    let resources = k.ok(&["api-resources"]).await;
    assert!(
        resources.lines().any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{resources}"
    );

    // `kubectl wait` watches the Deployment until the simulated controller makes it Available.
    k.ok(&["wait", "-n", "demo", "--for=condition=Available", "deploy/web", "--timeout=30s"]).await;
    let yaml = k.ok(&["get", "deploy", "web", "-n", "demo", "-o", "yaml"]).await;
    let live: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(live["status"]["availableReplicas"], 2);
    assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");

    // Dropping env from the manifest removes it from the live object (SSA field removal).
    let without_env = k.file(
        "app2.yaml",
        &APP.replace("IMAGE", "nginx:1.27").replace("        env:\n        - name: MODE\n          value: prod\n", ""),
    );
    k.ok(&["apply", "--server-side", "--validate=false", "-f", &without_env]).await;
    let env =
        k.ok(&["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.template.spec.containers[0].env}"]).await;
    assert_eq!(env.trim(), "", "env removed");

    // Another manager takes replicas: applying conflicts, --force-conflicts takes it back.
    k.ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=5"]).await;
    let conflict = k.run(&["apply", "--server-side", "--validate=false", "-f", &without_env]).await;
    assert!(
        !conflict.ok && conflict.stderr.contains("conflict") && conflict.stderr.contains(".spec.replicas"),
        "{}",
        conflict.stderr
    );
    k.ok(&["apply", "--server-side", "--force-conflicts", "--validate=false", "-f", &without_env]).await;
    assert_eq!(k.ok(&["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas}"]).await, "2");

    // A server-side dry run stores nothing.
    let dry =
        k.file("dry.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: demo}\ndata: {a: b}\n");
    k.ok(&["apply", "--server-side", "--dry-run=server", "--validate=false", "-f", &dry]).await;
    assert!(!k.run(&["get", "cm", "dry", "-n", "demo"]).await.ok);

    // Client-side apply (strategic merge patch, last-applied annotation) works too.
    k.ok(&["apply", "--validate=false", "-f", &dry]).await;
    k.ok(&["get", "cm", "dry", "-n", "demo"]).await;

    k.ok(&["delete", "-f", &manifest, "--wait=true", "--timeout=30s"]).await;
    assert!(!k.run(&["get", "ns", "demo"]).await.ok, "namespace deleted");
}

#[tokio::test]
async fn failing_deployment_reports_progress_deadline_exceeded() {
    let c = SimCluster::start(fast_config()).await.unwrap();
    let k = Kubectl::new(&c, "fail");
    let manifest = k.file("app.yaml", &APP.replace("IMAGE", "nginx:fail"));
    k.ok(&["apply", "--server-side", "--validate=false", "-f", &manifest]).await;
    k.ok(&[
        "wait",
        "-n",
        "demo",
        "--for=jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}=ProgressDeadlineExceeded",
        "deploy/web",
        "--timeout=30s",
    ])
    .await;
    let pods = k.ok(&["get", "pods", "-n", "demo"]).await;
    assert!(pods.contains("ImagePullBackOff"), "{pods}");
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let c = SimCluster::start(fast_config()).await.unwrap();
    let k = Kubectl::new(&c, "watch");
    let mut child =
        k.cmd(&["get", "cm", "-n", "default", "-w", "--output-watch-events"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("EVENT") || first.contains("kube-root-ca.crt"), "{first}");
    let cm = k.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: default}\ndata: {a: b}\n",
    );
    k.ok(&["apply", "--server-side", "--validate=false", "-f", &cm]).await;
    k.ok(&["delete", "cm", "watched"]).await;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("DELETED") && l.contains("watched")) {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch line within 10s")
            .unwrap()
            .expect("watch open");
        seen.push(line);
    }
    assert!(seen.iter().any(|l| l.contains("ADDED") && l.contains("watched")), "{seen:?}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn https_kubeconfig_with_client_certificate() {
    let c = SimCluster::start(SimConfig { tls: true, ..fast_config() }).await.unwrap();
    let k = Kubectl::new(&c, "tls");
    let out = k.ok(&["get", "ns", "kube-system", "-o", "name"]).await;
    assert_eq!(out.trim(), "namespace/kube-system");
    let version = k.ok(&["version", "-o", "json"]).await;
    assert!(version.contains("kube-sim"), "{version}");
}
