//! The installation as users meet it, checked as far as this machine allows (no Docker, no
//! real cluster): every kustomization renders with `kubectl kustomize`, passes the project's
//! own manifest validation and is applied by kubectl to kube-sim; the control plane and an
//! agent start from the exact arguments and environment of the rendered Kind manifests and the
//! agent joins; the agent's RBAC covers what it does; the Dockerfiles are multi-stage,
//! non-root and pinned; the Grafana dashboard asks only for metrics the control plane exports.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const KUSTOMIZATIONS: [&str; 10] = [
    "base/control-plane",
    "base/agent",
    "overlays/kind/control-plane",
    "overlays/kind/control-plane-replicated",
    "overlays/kind/agent",
    "overlays/eks/control-plane",
    "overlays/eks/control-plane-replicated",
    "overlays/eks/agent",
    "overlays/kind/agent-namespaced",
    "overlays/eks/agent-namespaced",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn render(dir: &str) -> (String, Vec<Value>) {
    let out = Command::new("kubectl")
        .args(["kustomize", repo_root().join("k8s").join(dir).to_str().unwrap()])
        .output()
        .expect("kubectl on PATH (.ci/run installs it)");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let objects = bosun_core::manifest::parse_file(&format!("{dir} (rendered)"), yaml.as_bytes())
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
    (yaml, objects)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn kubectl_apply(server: &str, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut child = Command::new("kubectl")
        .args(["--server", server, "apply", "--server-side", "--validate=false", "-f", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kustomization_renders_validates_and_applies() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in KUSTOMIZATIONS {
        let (yaml, objects) = render(dir);
        // The project's own planner accepts it and puts the Namespace first.
        let plan = bosun_core::plan::plan(&objects).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(plan.steps.len(), 1, "{dir}: one step, no hooks");
        assert_eq!(plan.steps[0].objects[0]["kind"], "Namespace", "{dir}");
        for o in &objects {
            for c in o["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten() {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{dir}: {}", c["name"]);
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{dir}");
                assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{dir}");
                assert!(c["resources"]["requests"]["memory"].is_string(), "{dir}: requests set");
                assert_eq!(o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true, "{dir}");
            }
        }
        let cluster = Cluster::start(tmp.path(), &dir.replace('/', "-")).await;
        if dir.ends_with("agent-namespaced") {
            // The namespaces granted to the agent exist before the Roles in them.
            let ns =
                kubectl_apply(cluster.sim.url(), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n", &[]);
            assert!(ns.status.success());
        }
        let first = kubectl_apply(cluster.sim.url(), &yaml, &[]);
        assert!(first.status.success(), "{dir}: {}", String::from_utf8_lossy(&first.stderr));
        let dry = kubectl_apply(cluster.sim.url(), &yaml, &["--dry-run=server"]);
        assert!(dry.status.success(), "{dir} (dry run): {}", String::from_utf8_lossy(&dry.stderr));
    }
    // The control plane holds no Kubernetes permissions.
    let (_, cp) = render("overlays/eks/control-plane");
    assert!(
        !cp.iter().any(|o| o["apiVersion"].as_str().unwrap().starts_with("rbac.")),
        "no RBAC for the control plane"
    );
    assert_eq!(find(&cp, "ServiceAccount")["automountServiceAccountToken"], false);
    let svc = find(&cp, "Service");
    // Node ports behind a load balancer Terraform (or the user) makes; nothing needs the AWS
    // Load Balancer Controller (tests/tests/terraform.rs checks the rest against Terraform).
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(
        find(&cp, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "bosun-control-plane"
    );
}

/// The replicated control plane: three replicas on the database from a Secret, a shared CA and
/// admin token, spread across nodes, at most one down at a time, the database reachable; on
/// Kind, PostgreSQL runs beside it and only the control plane reaches it.
#[test]
fn the_replicated_control_plane_runs_three_replicas_on_postgres() {
    for dir in ["overlays/kind/control-plane-replicated", "overlays/eks/control-plane-replicated"] {
        let (_, objects) = render(dir);
        let sts = objects
            .iter()
            .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "bosun-control-plane")
            .unwrap();
        assert_eq!(sts["spec"]["replicas"], 3, "{dir}");
        assert!(sts["spec"]["volumeClaimTemplates"].is_null(), "{dir}: the state is in the database");
        let pod = &sts["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let env = c["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "BOSUN_REPLICA_NAME"), "{dir}");
        // The database URL is read from the mounted Secret, not an environment variable.
        let volumes = pod["volumes"].as_array().unwrap();
        assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "bosun-database"), "{dir}");
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        for flag in
            ["--ca-cert=", "--ca-key=", "--initial-admin-token-file=", "--database-url-file=/etc/bosun/database/url"]
        {
            assert!(args.iter().any(|a| a.starts_with(flag)), "{dir}: {flag}");
        }
        assert!(pod["affinity"]["podAntiAffinity"].is_object(), "{dir}");
        assert_eq!(find(&objects, "PodDisruptionBudget")["spec"]["minAvailable"], 2, "{dir}");
        let np = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "bosun-control-plane")
            .unwrap();
        assert!(np.to_string().contains("5432"), "{dir}: egress to the database");
    }
    let (_, kind) = render("overlays/kind/control-plane-replicated");
    let pg = kind.iter().find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "bosun-postgres").unwrap();
    let pg_pod = &pg["spec"]["template"]["spec"];
    assert!(pg_pod["volumes"].as_array().unwrap().iter().any(|v| v["secret"]["secretName"] == "bosun-postgres"));
    let np = kind.iter().find(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "bosun-postgres").unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "bosun-control-plane"
    );
}

/// Whether `rules` (RBAC PolicyRules) allow `verb` on `group`/`resource`.
fn allows(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |v: &Value, want: &str| v.as_array().into_iter().flatten().any(|x| x == "*" || x == want);
    rules
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb))
}

/// What the agent does to a cluster in the e2e suite: server-side apply (patch), replace
/// (update), delete (prune, hooks, Force), get/list/watch (diff, health, self-heal), on the
/// kinds the suite deploys.
const AGENT_USES: [(&str, &str); 9] = [
    ("", "configmaps"),
    ("", "secrets"),
    ("", "services"),
    ("", "namespaces"),
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("networking.k8s.io", "ingresses"),
];
const AGENT_VERBS: [&str; 7] = ["get", "list", "watch", "create", "patch", "update", "delete"];

#[test]
fn the_agent_rbac_covers_what_it_does() {
    let (_, objects) = render("overlays/kind/agent");
    let role = find(&objects, "ClusterRole");
    for (group, resource) in AGENT_USES {
        for verb in AGENT_VERBS {
            assert!(allows(&role["rules"], group, resource, verb), "the agent may not {verb} {group}/{resource}");
        }
    }
    let binding = find(&objects, "ClusterRoleBinding");
    let sa = find(&objects, "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], sa["metadata"]["namespace"]);
    assert_eq!(find(&objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);

    // Namespaced variants: Roles only, in exactly the namespaces the agent is told to manage.
    for dir in ["overlays/kind/agent-namespaced", "overlays/eks/agent-namespaced"] {
        let (_, objects) = render(dir);
        let namespaces = namespaced_grants(&objects, dir);
        assert_eq!(namespaces, ["apps"], "{dir}");
        let ns_rules = &find(&objects, "Role")["rules"];
        for (group, resource) in AGENT_USES {
            for verb in AGENT_VERBS {
                assert!(allows(ns_rules, group, resource, verb), "{dir}: {verb} {group}/{resource}");
            }
        }
    }
}

/// For a namespaced agent: no cluster-wide RBAC at all, and each `--namespace` of the agent
/// has a Role bound to its ServiceAccount in that namespace (and no Role elsewhere). The
/// namespaces, sorted.
fn namespaced_grants(objects: &[Value], dir: &str) -> Vec<String> {
    assert!(
        !objects.iter().any(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding"),
        "{dir}: nothing cluster-wide"
    );
    let sa = find(objects, "ServiceAccount");
    let mut flagged: Vec<String> = args_of(&container(objects, "Deployment"))
        .iter()
        .filter_map(|a| a.strip_prefix("--namespace=").map(str::to_string))
        .collect();
    flagged.sort();
    let namespace_of = |o: &Value| o["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let mut bound: Vec<String> = objects
        .iter()
        .filter(|b| b["kind"] == "RoleBinding")
        .filter(|b| {
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == sa["metadata"]["name"]
                    && s["namespace"] == sa["metadata"]["namespace"]
            }) && objects.iter().any(|r| {
                r["kind"] == "Role"
                    && r["metadata"]["name"] == b["roleRef"]["name"]
                    && namespace_of(r) == namespace_of(b)
            })
        })
        .map(namespace_of)
        .collect();
    bound.sort();
    assert_eq!(flagged, bound, "{dir}: the agent's --namespace flags and its Roles agree");
    flagged
}

/// Kubernetes' escalation check (RBAC's `ConfirmNoEscalation`): a subject may create or
/// update a Role, or bind one, only when its own rules cover every permission the role grants
/// (short of holding `escalate` or `bind`). Coverage as the API server decides it: a holder's
/// `*` matches anything, a non-resource URL ending in `*` matches by prefix, and a wanted `*`
/// is covered only by a `*`.
fn covers(holder: &Value, wanted: &Value) -> bool {
    let list = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
    };
    let matches = |held: &[String], want: &str| held.iter().any(|h| h == "*" || h == want);
    let url_matches = |held: &[String], want: &str| {
        held.iter().any(|h| h == want || h.strip_suffix('*').is_some_and(|prefix| want.starts_with(prefix)))
    };
    let held: Vec<&Value> = holder.as_array().into_iter().flatten().collect();
    wanted.as_array().into_iter().flatten().all(|rule| {
        let verbs = list(&rule["verbs"]);
        if let Some(urls) = rule["nonResourceURLs"].as_array().filter(|u| !u.is_empty()) {
            return urls.iter().filter_map(Value::as_str).all(|url| {
                verbs.iter().all(|verb| {
                    held.iter()
                        .any(|h| url_matches(&list(&h["nonResourceURLs"]), url) && matches(&list(&h["verbs"]), verb))
                })
            });
        }
        // Resource rules: each (group, resource, verb) the wanted rule names, matched as
        // `allows` matches them (a holder's `*` or the same name; a wanted `*` only by `*`).
        list(&rule["apiGroups"]).iter().all(|group| {
            list(&rule["resources"])
                .iter()
                .all(|resource| verbs.iter().all(|verb| allows(holder, group, resource, verb)))
        })
    })
}

/// The agent applies what Git declares, RBAC included: a ClusterRoleBinding to cluster-admin,
/// a Role granting `*`. Kubernetes lets it only if its own role covers those; the namespaced
/// variant can do so in its namespaces and nowhere else.
#[test]
fn the_agent_passes_the_escalation_check_for_what_git_may_declare() {
    let cluster_admin = serde_json::json!([
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ]);
    let grant_all_in_namespace = serde_json::json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
    let (_, objects) = render("overlays/kind/agent");
    let role = &find(&objects, "ClusterRole")["rules"];
    assert!(covers(role, &cluster_admin), "the agent may bind cluster-admin and create any (Cluster)Role");
    // The reasoning has teeth: a role listing the verbs it uses is admin in effect, yet fails.
    let listed = serde_json::json!([
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
        {"nonResourceURLs": ["/version", "/api", "/api/*", "/apis", "/apis/*"], "verbs": ["get"]},
    ]);
    assert!(!covers(&listed, &cluster_admin) && !covers(&listed, &grant_all_in_namespace));
    assert!(covers(&listed, &serde_json::json!([{"nonResourceURLs": ["/apis/apps"], "verbs": ["get"]}])));

    // Namespaced: Roles granting `*` in its namespaces, so Git's RBAC there passes; nothing
    // cluster-wide, so cluster-admin can never be bound.
    let (_, objects) = render("overlays/kind/agent-namespaced");
    namespaced_grants(&objects, "overlays/kind/agent-namespaced");
    let ns_rules = &find(&objects, "Role")["rules"];
    assert!(covers(ns_rules, &grant_all_in_namespace), "namespaced: Roles granting * in its namespaces");

    // Terraform's agent module grants the same: every verb cluster-wide, or Roles only.
    let tf = std::fs::read_to_string(repo_root().join("terraform/modules/agent/main.tf")).unwrap();
    let all_verbs = tf.contains("all_verbs  = [\"*\"]") || tf.contains("all_verbs = [\"*\"]");
    assert!(all_verbs && tf.contains("verbs      = local.all_verbs"), "terraform: all verbs");
    assert!(tf.contains("non_resource_urls = [\"*\"]"), "terraform: URLs");
    assert_eq!(tf.matches("count = local.namespaced ? 0 : 1").count(), 2, "terraform: no ClusterRole when namespaced");
    assert!(
        tf.contains("[for n in var.namespaces : \"--namespace=${n}\"]"),
        "terraform: the agent told its namespaces"
    );
}

fn container(objects: &[Value], kind: &str) -> Value {
    find(objects, kind)["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args_of(c: &Value) -> Vec<String> {
    c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

/// Replaces `--flag=value` by `--flag=new`.
fn set_arg(args: &mut [String], flag: &str, value: &str) {
    let prefix = format!("{flag}=");
    let i = args.iter().position(|a| a.starts_with(&prefix)).unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    args[i] = format!("{prefix}{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_install_starts_and_an_agent_joins_from_the_rendered_config() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();

    // The control plane from the hub overlay's StatefulSet; only addresses and paths change
    // (the pod's volumes become directories here).
    let (_, hub) = render("overlays/kind/control-plane");
    let cpc = container(&hub, "StatefulSet");
    let mut args = args_of(&cpc);
    let data = root.join("data");
    let ports = [free_port(), free_port(), free_port(), free_port(), free_port(), free_port()];
    let flags = ["--admin-addr", "--agent-addr", "--join-addr", "--webhook-addr", "--ui-addr", "--metrics-addr"];
    for (flag, port) in flags.iter().zip(ports) {
        set_arg(&mut args, flag, &format!("127.0.0.1:{port}"));
    }
    set_arg(&mut args, "--data-dir", data.to_str().unwrap());
    let key = root.join("secret-key");
    std::fs::write(&key, "ab".repeat(32)).unwrap(); // as quickstart.sh creates it: 32 bytes, hex
    set_arg(&mut args, "--secret-key-file", key.to_str().unwrap());
    assert!(args.iter().any(|a| a == "--server-name=bosun-hub-control-plane"), "spokes dial the hub by node name");
    let log = std::fs::File::create(root.join("cp.log")).unwrap();
    let cp = Killed(
        Command::new(env!("CARGO_BIN_EXE_e2e-control-plane"))
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let (webhook, http) = (ports[3], ports[5]);
    // The readiness probe as the kubelet runs it: grpc.health.v1.Health/Check, plaintext, on
    // the probe's port, which is the metrics listener's.
    let probe_port = cpc["readinessProbe"]["grpc"]["port"].as_i64().unwrap();
    assert_eq!(
        cpc["ports"].as_array().unwrap().iter().find(|p| p["name"] == "metrics").unwrap()["containerPort"],
        probe_port
    );
    eventually("the readiness probe passes", WAIT, || async {
        let ch =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{http}")).ok()?.connect().await.ok()?;
        let r = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .ok()?;
        (r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32).then_some(())
    })
    .await;

    // A join token as quickstart.sh asks for it (the CLI inside the control plane's pod).
    let bosun = |a: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_e2e-bosun")).arg("--data-dir").arg(&data).args(a).output().unwrap();
        assert!(out.status.success(), "bosun {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let v: Value = serde_json::from_str(&bosun(&["cluster", "add", "bosun-spoke-1", "-o", "json"])).unwrap();
    let token = v["token"].as_str().unwrap().to_string();

    // The spoke: its manifests applied to kube-sim (the join Secret is made apart, as the script
    // does), then the agent run with the rendered Deployment's arguments and environment.
    let spoke = Cluster::start(root, "bosun-spoke-1").await;
    let (_, agent_objs) = render("overlays/kind/agent");
    assert!(!agent_objs.iter().any(|o| o["kind"] == "Secret"), "no placeholder join Secret to overwrite the real one");
    let yaml: String =
        agent_objs.iter().map(|o| format!("---\n{}", serde_json::to_string(o).unwrap())).collect::<Vec<_>>().join("\n");
    let out = kubectl_apply(spoke.sim.url(), &yaml, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let ac = container(&agent_objs, "Deployment");
    let mut env: Vec<(String, String)> = Vec::new();
    for e in ac["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]["key"]) {
            (Value::String(v), _) => v
                .replace("bosun-hub-control-plane:30444", &format!("127.0.0.1:{}", ports[1]))
                .replace("bosun-hub-control-plane:30445", &format!("127.0.0.1:{}", ports[2])),
            other => panic!("unexpected env source {other:?}"),
        };
        env.push((name, value));
    }
    // The hub's NodePorts are what the overlay's URLs point at.
    let svc = find(&hub, "Service");
    let node_port = |name: &str| {
        svc["spec"]["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["nodePort"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((node_port("agent"), node_port("join")), (30444, 30445));
    let mut agent_args: Vec<String> = args_of(&ac)
        .into_iter()
        .map(|a| {
            env.iter().fold(a, |a, (k, v)| a.replace(&format!("$({k})"), v)) // Kubernetes' $(VAR) expansion
        })
        .collect();
    let ca = root.join("ca.pem");
    std::fs::copy(data.join("ca-bundle.pem"), &ca).unwrap();
    set_arg(&mut agent_args, "--ca-file", ca.to_str().unwrap());
    // The mounted Secret's `token` key, as a file.
    let token_file = root.join("join-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    set_arg(&mut agent_args, "--join-token-file", token_file.to_str().unwrap());
    // A single-use token's Secret has no `cluster-name`: the file is absent.
    set_arg(&mut agent_args, "--cluster-name-file", root.join("no-such-file").to_str().unwrap());
    set_arg(&mut agent_args, "--state-dir", root.join("agent-state").to_str().unwrap());
    // The health port the probes use, on a free port of this machine.
    let agent_probe = common::free_port();
    set_arg(&mut agent_args, "--http-addr", &format!("127.0.0.1:{agent_probe}"));
    agent_args.push(format!("--kubeconfig={}", spoke.kubeconfig.display()));
    let alog = std::fs::File::create(root.join("agent.log")).unwrap();
    let agent = Killed(
        Command::new(env!("CARGO_BIN_EXE_e2e-agent"))
            .args(&agent_args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BOSUN_LOG_LEVEL", "info,bosun_agent=debug")
            .stdout(alog.try_clone().unwrap())
            .stderr(alog)
            .spawn()
            .unwrap(),
    );
    let joined = eventually("the agent joined and connected", WAIT, || async {
        let out = Command::new(env!("CARGO_BIN_EXE_e2e-bosun"))
            .arg("--data-dir")
            .arg(&data)
            .args(["cluster", "get", "bosun-spoke-1", "-o", "json"])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        // The facts arrive with the connection, stored just after it counts as connected.
        (v["joined"] == true && v["connected"] == true && v["facts"]["kubernetesVersion"].is_string()).then_some(v)
    })
    .await;
    assert!(joined["facts"]["nodes"].is_string(), "{joined}");
    // The rendered probes answer where they point.
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = ac[probe]["httpGet"]["path"].as_str().unwrap_or_else(|| panic!("{probe} in {ac}"));
        let (code, body) = eventually(&format!("{probe} {path}"), WAIT, || async {
            Some(common::http("GET", agent_probe, path, &[], b"")).filter(|(c, _)| *c == 200)
        })
        .await;
        assert_eq!(code, 200, "{body}");
    }

    // Something to report on, so every metric has samples: an Application synced through the
    // installed agent, and a webhook call (refused: no secret configured in this install).
    let repo = GitRepo::new(root);
    repo.write("k8s/cm.yaml", &configmap("hello", "1"));
    repo.commit("initial");
    repo.ready().await;
    bosun(&[
        "app",
        "create",
        "hello",
        "--repo",
        &repo.url,
        "--path",
        "k8s",
        "--cluster",
        "bosun-spoke-1",
        "--auto-sync",
    ]);
    eventually("hello synced on the spoke", WAIT, || async {
        let v: Value = serde_json::from_str(&bosun(&["app", "get", "hello", "-o", "json"])).ok()?;
        (v["status"]["sync"] == "Synced" && v["status"]["health"] == "Healthy").then_some(())
    })
    .await;
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let (code, r) = common::https(&ca, "POST", webhook, "/api/webhook", &[("X-GitHub-Event", "push".into())], b"{}");
    assert_eq!(code, 403, "webhooks refused without a secret: {r}");

    // The dashboard and the alerts only ask for metrics the binaries export, with labels they
    // carry; the PodMonitors point at the ports and labels the rendered pods have.
    let (_, metrics) = common::http("GET", http, "/metrics", &[], b"");
    let (_, agent_metrics) = common::http("GET", agent_probe, "/metrics", &[], b"");
    let exported = format!("{metrics}\n{agent_metrics}");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("k8s/monitoring/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut asked = 0;
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            asked += assert_exported(t["expr"].as_str().unwrap(), &metrics, &format!("panel {}", p["title"]));
        }
    }
    assert!(asked >= 8, "the dashboard has panels");
    let monitoring = |file: &str| {
        let text = std::fs::read_to_string(repo_root().join("k8s/monitoring").join(file)).unwrap();
        bosun_core::manifest::parse_file(file, text.as_bytes()).unwrap()
    };
    let rules = monitoring("prometheusrule.yaml");
    let mut alerts = Vec::new();
    for rule in rules[0]["spec"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        let alert = rule["alert"].as_str().unwrap();
        assert_exported(rule["expr"].as_str().unwrap(), &exported, alert);
        assert!(rule["annotations"]["summary"].is_string() && rule["labels"]["severity"].is_string(), "{rule}");
        alerts.push(alert.to_string());
    }
    for wanted in ["AgentDisconnected", "ApplicationDegraded", "SyncWritesFailing", "CertificateExpiring"] {
        assert!(alerts.iter().any(|a| a.contains(wanted)), "an alert on {wanted}: {alerts:?}");
    }
    for monitor in monitoring("podmonitors.yaml") {
        let pod = if monitor["metadata"]["name"] == "bosun-agent" { &agent_objs } else { &hub };
        let deployed = pod.iter().find(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet").unwrap();
        let template = &deployed["spec"]["template"];
        for (k, v) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&template["metadata"]["labels"][k], v, "{} selects the pods", monitor["metadata"]["name"]);
        }
        assert_eq!(monitor["metadata"]["namespace"], deployed["metadata"]["namespace"]);
        let port = &monitor["spec"]["podMetricsEndpoints"][0]["port"];
        let ports = template["spec"]["containers"][0]["ports"].as_array().unwrap();
        assert!(ports.iter().any(|p| &p["name"] == port), "{port} is a port of {}", monitor["metadata"]["name"]);
    }
    drop(agent);
    drop(cp);
    // `--log-format=json` (as rendered): one flat object per line, message and fields side by
    // side; `--log-level` (here from its environment variable) lets the agent's debug lines out.
    for file in ["cp.log", "agent.log"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}: not JSON ({e}): {line}"));
            assert!(v["message"].is_string() && v["level"].is_string() && v.get("fields").is_none(), "{file}: {line}");
        }
    }
    let agent_log = std::fs::read_to_string(root.join("agent.log")).unwrap();
    assert!(agent_log.contains("\"level\":\"DEBUG\""), "debug lines with --log-level");
    let logs = std::fs::read_to_string(root.join("cp.log")).unwrap() + &agent_log;
    assert_no_secrets(&logs, &[token, "ab".repeat(32)], "the install's logs");
}

#[test]
fn dockerfiles_are_multi_stage_non_root_and_pinned() {
    for (file, binaries) in [
        ("docker/control-plane.Dockerfile", &["bosun-control-plane", "bosun"][..]),
        ("docker/agent.Dockerfile", &["bosun-agent"][..]),
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        // Join continuation lines, drop comments: one instruction per line.
        let joined = text.replace("\\\n", " ");
        let instructions: Vec<(String, String)> = joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (i, rest) = l.split_once(' ').unwrap_or((l, ""));
                (i.to_ascii_uppercase(), rest.trim().to_string())
            })
            .collect();
        let stages: Vec<usize> =
            instructions.iter().enumerate().filter(|(_, (i, _))| i == "FROM").map(|(n, _)| n).collect();
        assert!(stages.len() >= 2, "{file}: multi-stage");
        for &s in &stages {
            let image = instructions[s].1.split_whitespace().find(|w| !w.starts_with("--")).unwrap();
            assert!(image.contains(':') && !image.ends_with(":latest"), "{file}: {image} is pinned to a tag");
        }
        // The build stage runs on the builder's platform and cross-compiles for the target's.
        assert!(instructions[stages[0]].1.starts_with("--platform=$BUILDPLATFORM"), "{file}: cross-compiles");
        let last = &instructions[*stages.last().unwrap()..];
        let user = last.iter().rev().find(|(i, _)| i == "USER").map(|(_, u)| u.as_str());
        assert_eq!(user, Some("65532:65532"), "{file}: the final stage runs as a non-root user");
        let labels = last.iter().filter(|(i, _)| i == "LABEL").map(|(_, l)| l.as_str()).collect::<String>();
        for label in ["title", "licenses", "version", "revision"] {
            assert!(labels.contains(&format!("org.opencontainers.image.{label}=")), "{file}: OCI label {label}");
        }
        let entry = last.iter().find(|(i, _)| i == "ENTRYPOINT").map(|(_, e)| e.clone()).unwrap();
        let entry: Vec<String> = serde_json::from_str(&entry).expect("ENTRYPOINT in exec (JSON) form");
        assert!(binaries.iter().any(|b| entry[0].ends_with(b)), "{file}: {entry:?}");
        assert!(!instructions.iter().any(|(i, a)| i == "ADD" && a.contains("://")), "{file}: no remote ADD");
        let build = instructions.iter().find(|(i, a)| i == "RUN" && a.contains("cross-build.sh")).unwrap();
        for b in binaries {
            assert!(build.1.contains(b), "{file}: installs {b} from the build");
        }
        // The default arguments are ones the binary accepts.
        if let Some((_, cmd)) = last.iter().find(|(i, _)| i == "CMD") {
            let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec (JSON) form");
            let help = Command::new(env!("CARGO_BIN_EXE_e2e-control-plane")).arg("--help").output().unwrap();
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in cmd.iter().filter(|a| a.starts_with("--")) {
                assert!(help.contains(&format!("{flag} ")), "{file}: {flag} is not a flag of {}", entry[0]);
            }
        }
    }
    let script = std::fs::read_to_string(repo_root().join("docker/cross-build.sh")).unwrap();
    assert!(script.contains("--release --locked") && script.contains("strip"), "release builds, locked and stripped");
    // The release workflow builds both images for both architectures.
    let workflow = std::fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    let workflow: Value = serde_saphyr::from_str(&workflow).unwrap();
    let job = &workflow["jobs"]["images"];
    assert_eq!(job["strategy"]["matrix"]["image"], serde_json::json!(["control-plane", "agent"]));
    let build = job["steps"].as_array().unwrap().iter().find(|s| s["id"] == "build").unwrap();
    assert_eq!(build["with"]["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(build["with"]["file"], "docker/${{ matrix.image }}.Dockerfile");
    assert!(std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap().contains("target/"));
}

/// Checks that every `bosun_*` series a PromQL expression names is exported (its family has a
/// `# TYPE` line in `exported`) and that each label it matches on is one the family carries;
/// returns how many series it named.
fn assert_exported(expr: &str, exported: &str, what: &str) -> usize {
    let mut named = 0;
    let mut rest = expr;
    while let Some(at) = rest.find("bosun_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_total", "_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(exported.contains(&format!("# TYPE {family} ")), "{name} ({what}) is not exported");
        if let Some(matchers) = tail[end..].strip_prefix('{') {
            let matchers = &matchers[..matchers.find('}').unwrap()];
            for key in matchers.split(',').filter_map(|m| m.split(['=', '!', '~']).next()).map(str::trim) {
                let carried =
                    exported.lines().any(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("{key}=\"")));
                assert!(carried, "{name} ({what}) has no label {key}");
            }
        }
        named += 1;
        rest = &tail[end..];
    }
    named
}
