//! Defaulting of built-in kinds as a real API server does it, so that clients meet the same
//! server-populated fields (and the same drift-detection traps) as on a real cluster.

use serde_json::{Value, json};

/// Allocates cluster IPs and node ports, unique within one simulated cluster.
#[derive(Debug, Default)]
pub struct Allocator {
    next_ip: u32,
    next_node_port: u32,
}

impl Allocator {
    fn cluster_ip(&mut self) -> String {
        self.next_ip += 1;
        let n = self.next_ip + 10; // 10.96.0.1 is the `kubernetes` Service.
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    fn node_port(&mut self) -> u32 {
        self.next_node_port = (self.next_node_port + 1) % 2768;
        30000 + self.next_node_port
    }

    /// The fixed address of the `kubernetes` Service.
    pub fn api_ip() -> &'static str {
        "10.96.0.1"
    }
}

fn set_default(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(field.to_string()).or_insert(v);
    }
}

fn obj_at<'a>(v: &'a mut Value, field: &str) -> &'a mut Value {
    if !v[field].is_object() {
        v[field] = json!({});
    }
    &mut v[field]
}

/// Applies the defaults of `kind` to `obj` in place.
pub fn apply(kind: &str, obj: &mut Value, alloc: &mut Allocator) {
    match kind {
        "Deployment" => deployment(obj),
        "StatefulSet" => statefulset(obj),
        "DaemonSet" => daemonset(obj),
        "ReplicaSet" | "ReplicationController" => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "replicas", json!(1));
            pod_template(spec);
        }
        "Job" => job(obj),
        "CronJob" => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(js) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")) {
                job_spec(js);
            }
        }
        "Pod" => {
            let spec = obj_at(obj, "spec");
            pod_spec(spec);
            set_default(spec, "enableServiceLinks", json!(true));
            set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            set_default(spec, "priority", json!(0));
            set_default(
                spec,
                "tolerations",
                json!([
                    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
                ]),
            );
        }
        "Service" => service(obj, alloc),
        "PersistentVolumeClaim" => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
            set_default(spec, "storageClassName", json!("standard"));
        }
        "Namespace" => {
            let name = obj["metadata"]["name"].clone();
            let labels = obj_at(obj_at(obj, "metadata"), "labels");
            labels["kubernetes.io/metadata.name"] = name;
            let spec = obj_at(obj, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
        }
        "Secret" => set_default(obj, "type", json!("Opaque")),
        "HorizontalPodAutoscaler" => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "minReplicas", json!(1));
            let behavior = obj_at(spec, "behavior");
            set_default(
                behavior,
                "scaleUp",
                json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
            );
            set_default(
                behavior,
                "scaleDown",
                json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}),
            );
        }
        "CustomResourceDefinition" => {
            let spec = obj_at(obj, "spec");
            set_default(spec, "conversion", json!({"strategy": "None"}));
        }
        "Ingress" => {
            for rule in obj.pointer_mut("/spec/rules").and_then(Value::as_array_mut).into_iter().flatten() {
                for path in rule.pointer_mut("/http/paths").and_then(Value::as_array_mut).into_iter().flatten() {
                    set_default(path, "pathType", json!("ImplementationSpecific"));
                }
            }
        }
        "PodDisruptionBudget" => {}
        _ => {}
    }
}

fn deployment(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = obj_at(spec, "strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = obj_at(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    pod_template(spec);
}

fn statefulset(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
    for pvc in spec.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut).into_iter().flatten() {
        set_default(pvc, "apiVersion", json!("v1"));
        set_default(pvc, "kind", json!("PersistentVolumeClaim"));
        set_default(obj_at(pvc, "spec"), "volumeMode", json!("Filesystem"));
        set_default(pvc, "status", json!({"phase": "Pending"}));
    }
    pod_template(spec);
}

fn daemonset(obj: &mut Value) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
    );
    pod_template(spec);
}

fn job(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let spec = obj_at(obj, "spec");
    job_spec(spec);
    if !uid.is_null() && spec["manualSelector"] != json!(true) {
        set_default(spec, "selector", json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        let labels = obj_at(obj_at(obj_at(spec, "template"), "metadata"), "labels");
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            set_default(labels, k, v.clone());
        }
    }
}

fn job_spec(spec: &mut Value) {
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completions", json!(1));
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    pod_template(spec);
}

/// Defaults of `spec.template` in workload kinds.
fn pod_template(spec: &mut Value) {
    let template = obj_at(spec, "template");
    let meta = obj_at(template, "metadata");
    set_default(meta, "creationTimestamp", Value::Null);
    pod_spec(obj_at(template, "spec"));
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for field in ["containers", "initContainers"] {
        for c in spec.get_mut(field).and_then(Value::as_array_mut).into_iter().flatten() {
            container(c);
        }
    }
    for v in spec.get_mut("volumes").and_then(Value::as_array_mut).into_iter().flatten() {
        for (kind, key) in [("configMap", "defaultMode"), ("secret", "defaultMode"), ("projected", "defaultMode")] {
            if let Some(src) = v.get_mut(kind).filter(|s| s.is_object()) {
                set_default(src, key, json!(420));
            }
        }
        if let Some(hp) = v.get_mut("hostPath").filter(|s| s.is_object()) {
            set_default(hp, "type", json!(""));
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let last = image.rsplit('/').next().unwrap_or_default();
    let tag_latest = !last.contains(':') || last.ends_with(":latest");
    let digest = image.contains('@');
    set_default(c, "imagePullPolicy", json!(if tag_latest && !digest { "Always" } else { "IfNotPresent" }));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set_default(p, "protocol", json!("TCP"));
    }
    for e in c.get_mut("env").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(fr) = e.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")) {
            set_default(fr, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet") {
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

fn service(obj: &mut Value, alloc: &mut Allocator) {
    let spec = obj_at(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return;
    }
    set_default(spec, "sessionAffinity", json!("None"));
    if spec.get("clusterIP").is_none_or(|ip| ip == "") {
        spec["clusterIP"] = json!(alloc.cluster_ip());
    }
    let ip = spec["clusterIP"].clone();
    set_default(spec, "clusterIPs", json!([ip]));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    let external = ty == "NodePort" || ty == "LoadBalancer";
    if external {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set_default(p, "protocol", json!("TCP"));
        let port = p["port"].clone();
        set_default(p, "targetPort", port);
        if external && p.get("nodePort").is_none() {
            p["nodePort"] = json!(alloc.node_port());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
        apply("Deployment", &mut d, &mut Allocator::default());
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["metadata"]["creationTimestamp"], Value::Null);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn image_pull_policy_follows_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1", "IfNotPresent"),
            ("reg:5000/app", "Always"),
            ("app@sha256:ab", "IfNotPresent"),
        ] {
            let mut c = json!({"image": image});
            container(&mut c);
            assert_eq!(c["imagePullPolicy"], want, "{image}");
        }
    }

    #[test]
    fn service_defaults() {
        let mut a = Allocator::default();
        let mut s = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply("Service", &mut s, &mut a);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert!(s["spec"]["ports"][0]["nodePort"].as_u64().unwrap() >= 30000);
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        let mut h = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        apply("Service", &mut h, &mut a);
        assert_eq!(h["spec"]["clusterIP"], "None");
    }
}
