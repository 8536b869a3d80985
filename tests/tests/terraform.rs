//! The Terraform configuration, checked without providers (they cannot be downloaded here):
//! every file parses as HCL, every variable is typed and described, inputs that can be wrong
//! are validated, every output is described, nothing secret has a default, and modules are
//! called with the variables they declare. `terraform fmt -check` and checkov run in CI too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body};

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("terraform")
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.ends_with(".terraform") {
            tf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "tf") {
            out.push(p);
        }
    }
}

/// Every configuration directory with its parsed files.
fn configurations() -> BTreeMap<PathBuf, Vec<Body>> {
    let mut files = Vec::new();
    tf_files(&terraform_dir(), &mut files);
    assert!(files.len() >= 20, "modules and examples exist");
    let mut out: BTreeMap<PathBuf, Vec<Body>> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let body: Body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        out.entry(f.parent().unwrap().to_path_buf()).or_default().push(body);
    }
    out
}

fn blocks<'a>(bodies: &'a [Body], ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    bodies.iter().flat_map(move |b| b.blocks().filter(move |x| x.identifier() == ident))
}

fn label(b: &Block) -> String {
    b.labels().first().map(|l| l.as_str().to_string()).unwrap_or_default()
}

fn attr<'a>(b: &'a Block, name: &str) -> Option<&'a hcl::Expression> {
    b.body().attributes().find(|a| a.key() == name).map(|a| a.expr())
}

#[test]
fn variables_are_typed_described_and_validated_and_outputs_described() {
    let configs = configurations();
    for (dir, bodies) in &configs {
        let rel = dir.strip_prefix(terraform_dir()).unwrap().display().to_string();
        for v in blocks(bodies, "variable") {
            let name = label(v);
            assert!(attr(v, "type").is_some(), "{rel}: variable {name} has a type");
            let desc = attr(v, "description").map(|d| d.to_string()).unwrap_or_default();
            assert!(desc.len() > 10, "{rel}: variable {name} is described");
            let secret = ["token", "secret", "password"].iter().any(|w| name.contains(w));
            if secret {
                assert_eq!(
                    attr(v, "sensitive").map(|s| s.to_string()).as_deref(),
                    Some("true"),
                    "{rel}: {name} is sensitive"
                );
                let default = attr(v, "default").map(|d| d.to_string()).unwrap_or_default();
                assert!(
                    default.is_empty() || default == "\"\"" || default == "{}",
                    "{rel}: {name} has no secret default"
                );
            }
        }
        for o in blocks(bodies, "output") {
            assert!(attr(o, "description").is_some(), "{rel}: output {} is described", label(o));
        }
    }
    // Inputs that can be wrong are validated in the modules.
    let must_validate = [
        ("modules/network", ["name", "cidr", "azs"].as_slice()),
        ("modules/eks", &["name", "subnet_ids", "node_count", "public_access_cidrs"]),
        ("modules/control-plane", &["hostname", "allowed_cidrs", "image", "storage_size"]),
        ("modules/agent", &["cluster_name", "ca_pem", "join_token", "image"]),
    ];
    for (dir, names) in must_validate {
        let bodies = &configs[&terraform_dir().join(dir)];
        for name in names {
            let v = blocks(bodies, "variable").find(|v| label(v) == *name).unwrap_or_else(|| panic!("{dir}: {name}"));
            assert!(v.body().blocks().any(|b| b.identifier() == "validation"), "{dir}: variable {name} is validated");
        }
    }
}

#[test]
fn modules_are_called_with_the_variables_they_declare() {
    let configs = configurations();
    for (dir, bodies) in &configs {
        for m in blocks(bodies, "module") {
            let source = attr(m, "source").unwrap().to_string().trim_matches('"').to_string();
            let target = dir.join(&source).canonicalize().unwrap_or_else(|_| panic!("{}: {source}", dir.display()));
            let declared: BTreeSet<String> = blocks(&configs[&target], "variable").map(label).collect();
            let required: BTreeSet<String> =
                blocks(&configs[&target], "variable").filter(|v| attr(v, "default").is_none()).map(label).collect();
            let meta = ["source", "count", "for_each", "providers", "depends_on", "version"];
            let given: BTreeSet<String> =
                m.body().attributes().map(|a| a.key().to_string()).filter(|k| !meta.contains(&k.as_str())).collect();
            for g in &given {
                assert!(
                    declared.contains(g),
                    "{}: module {} passes {g}, which {source} does not declare",
                    dir.display(),
                    label(m)
                );
            }
            for r in &required {
                assert!(given.contains(r), "{}: module {} misses required {r}", dir.display(), label(m));
            }
        }
    }
}

/// The control plane comes up on a fresh EKS cluster: its Network Load Balancer is managed by
/// Terraform (nothing relies on an AWS Load Balancer Controller that nobody installs), passes
/// TCP through (mTLS must reach the control plane), admits only the allowed sources, and
/// forwards to fixed node ports of the node group; DNS is an alias of it.
#[test]
fn the_control_plane_load_balancer_passes_tls_through() {
    let configs = configurations();
    let text = std::fs::read_to_string(terraform_dir().join("modules/control-plane/main.tf")).unwrap();
    assert!(!text.contains("aws-load-balancer-type"), "no Service annotation needing the AWS Load Balancer Controller");
    let bodies = &configs[&terraform_dir().join("modules/control-plane")];
    let resource = |kind: &str, name: &str| {
        blocks(bodies, "resource")
            .find(|b| b.labels().len() == 2 && label(b) == kind && b.labels()[1].as_str() == name)
            .unwrap_or_else(|| panic!("resource {kind}.{name}"))
    };
    let lb = hcl::to_string(resource("aws_lb", "this")).unwrap();
    assert!(lb.contains("load_balancer_type = \"network\"") && lb.contains("security_groups"), "{lb}");
    let listener = hcl::to_string(resource("aws_lb_listener", "this")).unwrap();
    assert!(
        listener.contains("protocol = \"TCP\"") && !listener.contains("certificate_arn"),
        "TCP passthrough: {listener}"
    );
    let ingress = hcl::to_string(resource("aws_vpc_security_group_ingress_rule", "load_balancer")).unwrap();
    assert!(ingress.contains("var.allowed_cidrs"), "only the allowed sources: {ingress}");
    let service = hcl::to_string(resource("kubernetes_service_v1", "this")).unwrap();
    assert!(service.contains("\"NodePort\"") && service.contains("node_port = local.node_ports"), "{service}");
    resource("aws_autoscaling_attachment", "this");
    // The node ports are inside Kubernetes' default range (30000–32767).
    let locals = blocks(bodies, "locals").map(|b| hcl::to_string(b).unwrap()).collect::<String>();
    assert!(locals.contains("30000 + p - 7400"), "{locals}");
    let dns = hcl::to_string(resource("aws_route53_record", "this")).unwrap();
    assert!(dns.contains("aws_lb.this.dns_name"), "{dns}");
    let names: BTreeSet<String> = blocks(bodies, "resource").map(label).collect();
    for r in [
        "kubernetes_stateful_set_v1",
        "kubernetes_service_v1",
        "kubernetes_pod_disruption_budget_v1",
        "kubernetes_network_policy_v1",
        "aws_route53_record",
    ] {
        assert!(names.contains(r), "control-plane module has {r}");
    }
    assert!(
        !names.iter().any(|n| n.contains("role_binding") || n.contains("cluster_role")),
        "the control plane gets no RBAC"
    );
}

/// Several replicas get a database that survives an availability zone and is never public:
/// RDS PostgreSQL, Multi-AZ, encrypted with the module's key, its password in Secrets
/// Manager (encrypted too), reachable only from the given security groups; the replicas read
/// the URL from a mounted Secret, and more than one replica without a database is refused.
#[test]
fn replicas_share_an_rds_database_that_is_multi_az_encrypted_and_private() {
    let configs = configurations();
    let module = &configs[&terraform_dir().join("modules/control-plane")];
    let resource = |kind: &str, name: &str| {
        blocks(module, "resource")
            .find(|b| b.labels().len() == 2 && label(b) == kind && b.labels()[1].as_str() == name)
            .unwrap_or_else(|| panic!("resource {kind}.{name}"))
    };
    let db = resource("aws_db_instance", "this");
    let is = |b: &Block, key: &str, want: &str| {
        assert_eq!(attr(b, key).map(|e| e.to_string()).as_deref(), Some(want), "{} {key}", label(b))
    };
    is(db, "engine", "\"postgres\"");
    is(db, "multi_az", "true");
    is(db, "storage_encrypted", "true");
    is(db, "publicly_accessible", "false");
    is(db, "kms_key_id", "var.kms_key_arn");
    is(db, "deletion_protection", "true");
    let secret = resource("aws_secretsmanager_secret", "database");
    is(secret, "kms_key_id", "var.kms_key_arn");
    let sg = resource("aws_security_group", "database");
    let ingress = sg.body().blocks().find(|b| b.identifier() == "ingress").expect("an ingress rule");
    is(ingress, "from_port", "5432");
    assert!(attr(ingress, "cidr_blocks").is_none(), "only security groups reach the database");
    let sts = resource("kubernetes_stateful_set_v1", "this");
    let text = hcl::to_string(sts).unwrap();
    assert!(text.contains("replicas = var.replicas"), "{text}");
    assert!(text.contains("precondition"), "more than one replica without a database is refused");
    let main = std::fs::read_to_string(terraform_dir().join("modules/control-plane/main.tf")).unwrap();
    assert!(main.contains("--database-url-file=/etc/bosun/database/url"), "the URL comes from the mounted Secret");
}

/// Managed nodes can launch with volumes encrypted by the customer key: the key policy lets
/// the Auto Scaling service-linked role use the key and create grants for AWS resources only;
/// the EBS CSI driver's CreateGrant is conditioned the same way.
#[test]
fn encrypted_node_volumes_can_launch_and_grants_are_scoped() {
    let configs = configurations();
    let text = |dir: &str| -> String {
        configs[&terraform_dir().join(dir)].iter().map(|b| hcl::to_string(b).unwrap()).collect::<Vec<_>>().join("\n")
    };
    let kms = text("modules/kms");
    assert!(kms.contains("AWSServiceRoleForAutoScaling"), "the autoscaling role is named in the key policy");
    for sid in ["AutoScalingUsesKey", "AutoScalingGrantsForAwsResources"] {
        assert!(kms.contains(sid), "statement {sid}");
    }
    let module = &configs[&terraform_dir().join("modules/kms")];
    let policy = blocks(module, "data").find(|b| b.labels().get(1).is_some_and(|l| l.as_str() == "key")).unwrap();
    let eks = &configs[&terraform_dir().join("modules/eks")];
    let csi = blocks(eks, "data").find(|b| b.labels().get(1).is_some_and(|l| l.as_str() == "ebs_csi_kms")).unwrap();
    for doc in [policy, csi] {
        for st in doc.body().blocks().filter(|b| b.identifier() == "statement") {
            let st_text = hcl::to_string(st).unwrap();
            if st_text.contains("kms:CreateGrant") && !st_text.contains("\"kms:*\"") {
                assert!(st_text.contains("kms:GrantIsForAWSResource"), "CreateGrant only for AWS resources: {st_text}");
            }
        }
    }
}

/// The spoke agent's state volume binds on a fresh EKS cluster: by default the module creates
/// the gp3 class it asks for (encrypted), instead of naming a class that does not exist there.
#[test]
fn the_agent_state_volume_uses_a_class_that_exists() {
    let configs = configurations();
    let module = &configs[&terraform_dir().join("modules/agent")];
    let default = blocks(module, "variable")
        .find(|v| label(v) == "storage_class")
        .and_then(|v| attr(v, "default"))
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert_eq!(default, "\"\"", "no class is assumed to exist");
    let class = blocks(module, "resource")
        .find(|b| label(b) == "kubernetes_storage_class_v1")
        .expect("the module creates the class");
    let text = hcl::to_string(class).unwrap();
    assert!(text.contains("ebs.csi.aws.com") && text.contains("encrypted = \"true\""), "{text}");
    let pvc = blocks(module, "resource").find(|b| label(b) == "kubernetes_persistent_volume_claim_v1").unwrap();
    assert!(hcl::to_string(pvc).unwrap().contains("kubernetes_storage_class_v1.state[0].metadata[0].name"));
}

/// Several clusters never share a key: the fleet example makes one per cluster and gives each
/// cluster (network, EKS, control plane or agent) its own.
#[test]
fn each_cluster_has_its_own_kms_key() {
    let configs = configurations();
    let example = &configs[&terraform_dir().join("examples/hub-and-spokes")];
    let kms = blocks(example, "module").find(|m| label(m) == "kms").expect("module kms");
    assert_eq!(attr(kms, "for_each").map(|e| e.to_string()).as_deref(), Some("local.clusters"));
    let text = example.iter().map(|b| hcl::to_string(b).unwrap()).collect::<String>();
    assert!(!text.contains("module.kms.arn"), "no shared key is referenced");
    for each in [
        "module.kms[each.key].arn",
        "module.kms[\"hub\"].arn",
        "module.kms[\"spoke-1\"].arn",
        "module.kms[\"spoke-2\"].arn",
    ] {
        assert!(text.contains(each), "{each}");
    }
}

/// EKS as a platform team expects it: access only through explicit access entries, the VPC
/// CNI (enforcing NetworkPolicies), CoreDNS and kube-proxy as managed add-ons at pinned
/// versions, and provider bounds that have every feature used (`pod_identity_association` on
/// `aws_eks_addon` needs AWS provider 5.75).
#[test]
fn eks_access_add_ons_and_provider_bounds() {
    let configs = configurations();
    let eks = &configs[&terraform_dir().join("modules/eks")];
    let resource = |kind: &str, name: &str| {
        blocks(eks, "resource")
            .find(|b| b.labels().len() == 2 && label(b) == kind && b.labels()[1].as_str() == name)
            .unwrap_or_else(|| panic!("resource {kind}.{name}"))
    };
    let cluster = hcl::to_string(resource("aws_eks_cluster", "this")).unwrap();
    assert!(cluster.contains("bootstrap_cluster_creator_admin_permissions = false"), "{cluster}");
    resource("aws_eks_access_entry", "admin");
    resource("aws_eks_access_policy_association", "admin");
    for name in ["vpc_cni", "coredns", "kube_proxy", "pod_identity", "ebs_csi"] {
        let addon = resource("aws_eks_addon", name);
        assert!(attr(addon, "addon_version").is_some(), "add-on {name} has a pinned version");
    }
    let cni = hcl::to_string(resource("aws_eks_addon", "vpc_cni")).unwrap();
    assert!(cni.contains("enableNetworkPolicy"), "{cni}");
    for (dir, bodies) in &configs {
        let text = bodies.iter().map(|b| hcl::to_string(b).unwrap()).collect::<String>();
        if text.contains("hashicorp/aws") {
            assert!(text.contains(">= 5.75"), "{}: AWS provider bound", dir.display());
        }
    }
}

/// The objects `kubectl kustomize` renders from `dir` (under k8s/).
fn render(dir: &str) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("k8s").join(dir);
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", path.to_str().unwrap()])
        .output()
        .expect("kubectl on PATH (.ci/run installs it)");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    bosun_core::manifest::parse_file(dir, &out.stdout).unwrap()
}

fn object<'a>(objects: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The `--flag` names in a piece of text (Terraform's argument lists).
fn flags_in(text: &str) -> BTreeSet<String> {
    text.split("\"--").skip(1).map(|rest| rest.split(['=', '"']).next().unwrap().to_string()).collect()
}

/// Terraform's source without whitespace, for checking one block's shape.
fn squeezed(file: &str) -> String {
    std::fs::read_to_string(terraform_dir().join(file)).unwrap().split_whitespace().collect()
}

/// `terraform/modules/*` and `k8s/overlays/eks` deploy the same Kubernetes objects: the same
/// arguments, ports, node ports, probes, NetworkPolicy, resources and encrypted gp3 classes with
/// a KMS key — so the kubectl path and the Terraform path cannot drift apart.
#[test]
fn terraform_and_the_eks_overlays_deploy_the_same_objects() {
    use serde_json::Value;
    let configs = configurations();
    let module = &configs[&terraform_dir().join("modules/control-plane")];
    let locals: Vec<&hcl::Attribute> = blocks(module, "locals").flat_map(|b| b.body().attributes()).collect();
    let local = |name: &str| locals.iter().find(|a| a.key() == name).unwrap_or_else(|| panic!("local.{name}")).expr();
    let number = |e: &hcl::Expression| e.to_string().parse::<i64>().unwrap();
    let mut ports: BTreeMap<String, i64> = match local("ports") {
        hcl::Expression::Object(o) => o.iter().map(|(k, v)| (k.to_string(), number(v))).collect(),
        other => panic!("local.ports is an object: {other}"),
    };
    let public = ports.clone();
    let metrics = number(local("metrics_port"));
    ports.insert("metrics".into(), metrics);
    let (always, conditional) = match local("args") {
        hcl::Expression::FuncCall(f) => (flags_in(&f.args[0].to_string()), flags_in(&local("args").to_string())),
        other => panic!("local.args is concat(...): {other}"),
    };

    let cp = render("overlays/eks/control-plane");
    let container = &object(&cp, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let overlay_flags: BTreeSet<String> = args.iter().map(|a| a[2..].split('=').next().unwrap().to_string()).collect();
    for f in &always {
        assert!(overlay_flags.contains(f), "--{f} is set by Terraform but not by the overlay");
    }
    for f in &overlay_flags {
        assert!(conditional.contains(f), "--{f} is set by the overlay but not by Terraform");
    }
    let default = |name: &str| {
        let v = blocks(module, "variable").find(|v| label(v) == name).unwrap_or_else(|| panic!("var.{name}"));
        attr(v, "default").unwrap().clone()
    };
    let cert_validity = default("cert_validity").to_string();
    assert!(args.contains(&format!("--cert-validity={}", cert_validity.trim_matches('"')).as_str()), "{args:?}");

    // Ports, node ports, probes.
    let container_ports: BTreeMap<String, i64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["containerPort"].as_i64().unwrap()))
        .collect();
    assert_eq!(container_ports, ports, "container ports");
    let service = object(&cp, "Service");
    assert_eq!(service["spec"]["type"], "NodePort");
    let node_ports: BTreeMap<String, i64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["nodePort"].as_i64().unwrap()))
        .collect();
    let expected: BTreeMap<String, i64> = public.iter().map(|(k, p)| (k.clone(), 30000 + p - 7400)).collect();
    assert_eq!(node_ports, expected, "node ports (Terraform's local.node_ports)");
    assert!(service["metadata"]["annotations"].is_null(), "no AWS Load Balancer Controller annotations");
    assert_eq!(container["readinessProbe"]["grpc"]["port"], metrics);
    assert_eq!(container["livenessProbe"]["grpc"]["port"], metrics);
    assert_eq!(container["startupProbe"]["httpGet"], serde_json::json!({"path": "/healthz", "port": "metrics"}));
    let tf = squeezed("modules/control-plane/main.tf");
    for probe in [
        "readiness_probe{grpc{port=local.metrics_port}",
        "liveness_probe{grpc{port=local.metrics_port}",
        "startup_probe{http_get{path=\"/healthz\"port=\"metrics\"}",
    ] {
        assert!(tf.contains(probe), "Terraform has {probe}");
    }

    // NetworkPolicy: the public listeners from anywhere, metrics from inside the cluster.
    let policy = object(&cp, "NetworkPolicy");
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    let open: BTreeSet<i64> = ingress
        .iter()
        .filter(|r| r["from"].is_null())
        .flat_map(|r| r["ports"].as_array().unwrap())
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(open, public.values().copied().collect::<BTreeSet<_>>());
    let inside = ingress.iter().find(|r| !r["from"].is_null()).unwrap();
    assert_eq!(inside["from"], serde_json::json!([{"namespaceSelector": {}}]));
    assert_eq!(inside["ports"][0]["port"], metrics);
    assert!(tf.contains("ingress{from{namespace_selector{}}ports{port=local.metrics_port"), "Terraform's metrics rule");
    assert!(tf.contains("ingress{dynamic\"ports\"{for_each=local.ports"), "Terraform's public rule");

    // Resources and the data volume.
    let resources = default("resources").to_string().replace(' ', "");
    let req = &container["resources"];
    for (key, value) in [
        ("cpu", &req["requests"]["cpu"]),
        ("memory", &req["requests"]["memory"]),
        ("memory_limit", &req["limits"]["memory"]),
    ] {
        assert!(resources.contains(&format!("{key}=\"{}\"", value.as_str().unwrap())), "{key}: {resources} vs {req}");
    }
    let claim = &object(&cp, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(default("storage_size").to_string().trim_matches('"'), claim["resources"]["requests"]["storage"]);
    let class = object(&cp, "StorageClass");
    assert_eq!(claim["storageClassName"], class["metadata"]["name"]);
    assert!(tf.contains(&format!("name=\"{}\"", class["metadata"]["name"].as_str().unwrap())));
    let same_class = |class: &Value, tf: &str| {
        assert_eq!(class["provisioner"], "ebs.csi.aws.com");
        assert_eq!(class["parameters"]["type"], "gp3");
        assert_eq!(class["parameters"]["encrypted"], "true");
        assert!(class["parameters"]["kmsKeyId"].as_str().unwrap().starts_with("arn:aws:kms:"), "a KMS key");
        assert!(
            tf.contains("kmsKeyId") && tf.contains("type=\"gp3\"") && tf.contains("encrypted=\"true\""),
            "Terraform's class"
        );
        assert!(tf.contains("reclaim_policy=\"Retain\"") && class["reclaimPolicy"] == "Retain");
        assert!(
            tf.contains("volume_binding_mode=\"WaitForFirstConsumer\"")
                && class["volumeBindingMode"] == "WaitForFirstConsumer"
        );
    };
    same_class(class, &tf);

    // The agent: its arguments (--namespace only in the namespaced variants of both), and a
    // state volume on a class of its own that exists.
    let agent = render("overlays/eks/agent");
    let tf_agent = squeezed("modules/agent/main.tf");
    let flags_of = |objects: &[serde_json::Value]| -> BTreeSet<String> {
        object(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()[2..].split('=').next().unwrap().to_string())
            .collect()
    };
    let mut tf_flags = flags_in(&tf_agent);
    assert!(tf_flags.remove("namespace"), "terraform's agent takes --namespace when namespaced");
    assert_eq!(flags_of(&agent), tf_flags, "the agent's flags");
    tf_flags.insert("namespace".into());
    assert_eq!(flags_of(&render("overlays/eks/agent-namespaced")), tf_flags, "the namespaced agent's flags");
    let agent_class = object(&agent, "StorageClass");
    assert_eq!(object(&agent, "PersistentVolumeClaim")["spec"]["storageClassName"], agent_class["metadata"]["name"]);
    assert!(tf_agent.contains(&format!("name=\"{}\"", agent_class["metadata"]["name"].as_str().unwrap())));
    same_class(agent_class, &tf_agent);
}
