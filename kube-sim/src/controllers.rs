//! Simulated controllers, in the manner of kwok: workloads roll out, Jobs complete,
//! LoadBalancers get an address, PVCs bind, Pods run, namespaces get their defaults, and
//! the garbage collector follows ownerReferences. All after a configurable delay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util_lite::DueQueue;

use crate::faults::Faults;
use crate::resources::{BUILTIN, ResourceType, fnv};
use crate::store::{EventType, Store, WriteOpts, now, random_suffix};

/// Settings of the simulated controllers.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Time from a change to the controllers' reaction (a workload becoming ready).
    pub rollout_delay: Duration,
    /// Time after which a failing Deployment reports `ProgressDeadlineExceeded`
    /// (the real server waits `spec.progressDeadlineSeconds`; the shorter of the two is used).
    pub progress_deadline: Duration,
    /// Create ReplicaSets and Pods for Deployments (more realistic, more memory).
    pub simulate_pods: bool,
    /// Number of Nodes the cluster reports.
    pub nodes: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            rollout_delay: Duration::from_millis(200),
            progress_deadline: Duration::from_secs(2),
            simulate_pods: true,
            nodes: 1,
        }
    }
}

mod tokio_util_lite {
    //! A small due-time queue: keys with the time they are due, earliest first, deduplicated.
    use std::collections::{BTreeSet, HashMap};
    use std::hash::Hash;
    use tokio::time::Instant;

    pub struct DueQueue<K> {
        by_time: BTreeSet<(Instant, u64)>,
        keys: HashMap<u64, K>,
        due: HashMap<K, (Instant, u64)>,
        seq: u64,
    }

    impl<K: Clone + Eq + Hash> DueQueue<K> {
        pub fn new() -> Self {
            Self { by_time: BTreeSet::new(), keys: HashMap::new(), due: HashMap::new(), seq: 0 }
        }

        /// Schedules `k` at `at`, or earlier if it is already due earlier.
        pub fn schedule(&mut self, k: K, at: Instant) {
            if let Some((t, s)) = self.due.get(&k).copied() {
                if t <= at {
                    return;
                }
                self.by_time.remove(&(t, s));
                self.keys.remove(&s);
            }
            self.seq += 1;
            self.by_time.insert((at, self.seq));
            self.keys.insert(self.seq, k.clone());
            self.due.insert(k, (at, self.seq));
        }

        pub fn next_due(&self) -> Option<Instant> {
            self.by_time.first().map(|(t, _)| *t)
        }

        pub fn pop_due(&mut self, now: Instant) -> Option<K> {
            let (t, s) = *self.by_time.first()?;
            if t > now {
                return None;
            }
            self.by_time.remove(&(t, s));
            let k = self.keys.remove(&s)?;
            self.due.remove(&k);
            Some(k)
        }
    }
}

type Key = (String, String, String, String); // (group, plural, namespace, name)

fn rt_of(kind: &str) -> &'static ResourceType {
    BUILTIN.iter().find(|r| r.kind == kind).expect("built-in kind")
}

fn controlled(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
            | ("batch", "jobs")
            | ("", "services" | "persistentvolumeclaims" | "pods" | "namespaces")
            | ("networking.k8s.io", "ingresses")
            | ("apiextensions.k8s.io", "customresourcedefinitions")
            | ("apiregistration.k8s.io", "apiservices")
            | ("autoscaling", "horizontalpodautoscalers")
    )
}

/// Rollout bookkeeping kept by the controller (a real controller keeps it in conditions).
#[derive(Default)]
struct Progress {
    started: HashMap<String, (i64, Instant)>,
    lb_ips: u32,
}

/// Runs the controllers of one cluster until the store's sender is gone.
pub async fn run(store: Arc<Store>, faults: Arc<Faults>, cfg: ControllerConfig) {
    let mut rx = store.subscribe();
    let mut queue: DueQueue<Key> = DueQueue::new();
    let mut progress = Progress::default();
    seed_nodes(&store, cfg.nodes);
    resync(&store, &mut queue);
    loop {
        let sleep_until = queue.next_due().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if ev.kind == EventType::Deleted || !ev.object["metadata"]["deletionTimestamp"].is_null() {
                        while store.collect_garbage() {}
                    }
                    if controlled(&ev.res.group, &ev.res.plural) && ev.kind != EventType::Deleted {
                        let key = (ev.res.group.clone(), ev.res.plural.clone(),
                            ev.object["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                            ev.object["metadata"]["name"].as_str().unwrap_or_default().to_string());
                        let terminating = !ev.object["metadata"]["deletionTimestamp"].is_null();
                        let quick = !terminating && matches!(ev.res.plural.as_str(), "namespaces" | "customresourcedefinitions" | "apiservices" | "horizontalpodautoscalers" | "replicasets");
                        queue.schedule(key, Instant::now() + if quick { Duration::ZERO } else { cfg.rollout_delay / 2 });
                    }
                }
                Err(RecvError::Lagged(_)) => resync(&store, &mut queue),
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(sleep_until) => {
                while let Some(key) = queue.pop_due(Instant::now()) {
                    if let Some(again) = reconcile(&store, &faults, &cfg, &mut progress, &key) {
                        queue.schedule(key, Instant::now() + again);
                    }
                }
            }
        }
    }
}

fn seed_nodes(store: &Store, n: usize) {
    let rt = rt_of("Node");
    let opts = WriteOpts { manager: "kubelet".into(), ..Default::default() };
    for i in 0..n {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("kube-sim-node-{i}"),
            "labels": {"kubernetes.io/hostname": format!("kube-sim-node-{i}"), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}});
        if store.create(rt, None, node, &opts).is_ok() {
            let _ = store.set_status(rt, None, &format!("kube-sim-node-{i}"), json!({
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status (simulated)"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0", "architecture": "amd64", "operatingSystem": "linux", "containerRuntimeVersion": "kube-sim://0"},
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}
            }));
        }
    }
}

fn resync(store: &Store, queue: &mut DueQueue<Key>) {
    for rt in store.registry().all().filter(|r| controlled(&r.group, &r.plural)) {
        for o in store.all(rt) {
            let key = (
                rt.group.clone(),
                rt.plural.clone(),
                o["metadata"]["namespace"].as_str().unwrap_or_default().into(),
                o["metadata"]["name"].as_str().unwrap_or_default().into(),
            );
            queue.schedule(key, Instant::now());
        }
    }
}

fn images(pod_spec: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod_spec[*f].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

fn failing(faults: &Faults, pod_spec: &Value) -> bool {
    images(pod_spec).iter().any(|i| faults.image_fails(i))
}

fn cond(t: &str, status: &str, reason: &str, message: &str) -> Value {
    let ts = now();
    json!({"type": t, "status": status, "reason": reason, "message": message, "lastUpdateTime": ts, "lastTransitionTime": ts})
}

/// Keeps `lastTransitionTime`/`lastUpdateTime` of conditions whose status and reason did not
/// change, so that rewriting the same state is a no-op (no resourceVersion churn).
fn keep_condition_times(old: &Value, new: &mut Value) {
    let Some(new_conds) = new.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in new_conds {
        if let Some(o) = old["conditions"].as_array().into_iter().flatten().find(|o| o["type"] == c["type"]) {
            if o["status"] == c["status"] && o["reason"] == c["reason"] && o["message"] == c["message"] {
                for f in ["lastTransitionTime", "lastUpdateTime", "lastProbeTime"] {
                    if o.get(f).is_some() {
                        c[f] = o[f].clone();
                    }
                }
            } else if o["status"] == c["status"] {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
        }
    }
}

fn write_status(store: &Store, rt: &ResourceType, ns: &str, name: &str, old: &Value, mut status: Value) {
    keep_condition_times(&old["status"], &mut status);
    let ns = (!ns.is_empty()).then_some(ns);
    let _ = store.set_status(rt, ns, name, status);
}

fn owner_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by<'a>(objs: &'a [Arc<Value>], owner: &Value) -> Vec<&'a Arc<Value>> {
    objs.iter()
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["uid"] == owner["metadata"]["uid"])
        })
        .collect()
}

/// Reconciles one object. Returns when to look at it again, if ever.
fn reconcile(store: &Store, faults: &Faults, cfg: &ControllerConfig, p: &mut Progress, key: &Key) -> Option<Duration> {
    let (group, plural, ns, name) = key;
    let rt = store.registry().all().find(|r| r.group == *group && r.plural == *plural)?.clone();
    let obj = store.get(&rt, (!ns.is_empty()).then_some(ns.as_str()), name).ok()?;
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        // The namespace controller empties a terminating namespace, then removes it.
        let namespace = rt.kind == "Namespace" && rt.group.is_empty();
        return (namespace && !store.terminate_namespace(name)).then_some(Duration::from_millis(20));
    }
    match rt.kind.as_str() {
        "Deployment" => deployment(store, faults, cfg, p, &rt, &obj),
        "ReplicaSet" => replicaset(store, faults, cfg, &obj),
        "StatefulSet" | "DaemonSet" => workload(store, faults, cfg, p, &rt, &obj),
        "Pod" => pod(store, faults, cfg, &obj),
        "Job" => job(store, faults, cfg, p, &rt, &obj),
        "Service" => {
            if obj["spec"]["type"] == "LoadBalancer" && obj["status"]["loadBalancer"]["ingress"].is_null() {
                p.lb_ips += 1;
                let ip = format!("192.0.2.{}", 10 + p.lb_ips % 240);
                write_status(
                    store,
                    &rt,
                    ns,
                    name,
                    &obj,
                    json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}),
                );
            }
            None
        }
        "Ingress" => {
            if obj["status"]["loadBalancer"]["ingress"].is_null() {
                write_status(store, &rt, ns, name, &obj, json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.250"}]}}));
            }
            None
        }
        "PersistentVolumeClaim" => {
            if obj["status"]["phase"] != "Bound" {
                let volume = format!("pvc-{}", obj["metadata"]["uid"].as_str().unwrap_or_default());
                let _ = store.modify(&rt, Some(ns), name, "kube-controller-manager", |o| {
                    o["spec"]["volumeName"] = json!(volume);
                });
                let storage = obj["spec"]["resources"]["requests"]["storage"].clone();
                write_status(
                    store,
                    &rt,
                    ns,
                    name,
                    &obj,
                    json!({"phase": "Bound", "accessModes": obj["spec"]["accessModes"], "capacity": {"storage": storage}}),
                );
            }
            None
        }
        "Namespace" => {
            namespace_defaults(store, name);
            None
        }
        "CustomResourceDefinition" => {
            let names = obj["spec"]["names"].clone();
            let versions: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect();
            write_status(
                store,
                &rt,
                "",
                name,
                &obj,
                json!({
                "acceptedNames": names,
                "storedVersions": versions,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()}
                ]}),
            );
            None
        }
        "APIService" => {
            let (reason, message) = if obj["spec"]["service"].is_null() {
                ("Local", "Local APIServices are always available")
            } else {
                ("Passed", "all checks passed")
            };
            write_status(
                store,
                &rt,
                "",
                name,
                &obj,
                json!({"conditions": [{"type": "Available", "status": "True", "reason": reason, "message": message, "lastTransitionTime": now()}]}),
            );
            None
        }
        "HorizontalPodAutoscaler" => {
            let min = obj["spec"]["minReplicas"].as_i64().unwrap_or(1);
            write_status(
                store,
                &rt,
                ns,
                name,
                &obj,
                json!({"currentReplicas": min, "desiredReplicas": min, "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size", "lastTransitionTime": now()},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count (simulated)", "lastTransitionTime": now()}]}),
            );
            None
        }
        _ => None,
    }
}

fn namespace_defaults(store: &Store, ns: &str) {
    let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    let _ = store.create(rt_of("ServiceAccount"), Some(ns), sa, &opts);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. (simulated)"}},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nkube-sim\n-----END CERTIFICATE-----\n"}});
    let _ = store.create(rt_of("ConfigMap"), Some(ns), cm, &opts);
}

/// Where a rollout stands: generation seen, time it started.
fn started(p: &mut Progress, obj: &Value) -> (bool, Instant) {
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    match p.started.get(&uid) {
        Some((g, t)) if *g == generation => (false, *t),
        _ => {
            let t = Instant::now();
            p.started.insert(uid, (generation, t));
            (true, t)
        }
    }
}

fn template_hash(template: &Value) -> String {
    let h = fnv(template.to_string().as_bytes());
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10).map(|i| alphabet[((h >> (i * 6)) % alphabet.len() as u64) as usize] as char).collect()
}

fn deployment(
    store: &Store,
    faults: &Faults,
    cfg: &ControllerConfig,
    p: &mut Progress,
    rt: &ResourceType,
    d: &Value,
) -> Option<Duration> {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let fails = failing(faults, &d["spec"]["template"]["spec"]);
    let hash = template_hash(&d["spec"]["template"]);
    let rs_name = format!("{name}-{hash}");
    if cfg.simulate_pods {
        sync_replicasets(store, d, &rs_name, &hash, replicas);
    }
    let (_, t0) = started(p, d);
    let elapsed = t0.elapsed();
    let deadline =
        cfg.progress_deadline.min(Duration::from_secs(d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600)));
    let was_available = d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    let base = |ready: i64, updated: i64| {
        let mut s = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": updated,
            "readyReplicas": ready, "availableReplicas": ready});
        if replicas - ready > 0 {
            s["unavailableReplicas"] = json!(replicas - ready);
        }
        if ready == 0
            && let Some(m) = s.as_object_mut()
        {
            m.remove("readyReplicas");
            m.remove("availableReplicas");
        }
        s
    };
    if d["spec"]["paused"] == true {
        let mut s = d["status"].clone();
        s["observedGeneration"] = json!(generation);
        s["conditions"] = json!([cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")]);
        write_status(store, rt, ns, name, d, s);
        return None;
    }
    let available = |ok: bool| {
        if ok {
            cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        } else {
            cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        }
    };
    if elapsed < cfg.rollout_delay || (fails && elapsed < deadline) {
        let ready_now = if was_available && !fails { replicas } else { 0 };
        let mut s = base(ready_now.min(replicas), replicas);
        s["conditions"] = json!([
            available(was_available),
            cond("Progressing", "True", "ReplicaSetUpdated", &format!("ReplicaSet \"{rs_name}\" is progressing."))
        ]);
        write_status(store, rt, ns, name, d, s);
        let next = if fails { deadline.saturating_sub(elapsed) } else { cfg.rollout_delay.saturating_sub(elapsed) };
        return Some(next.max(Duration::from_millis(5)));
    }
    if fails {
        let mut s = base(0, replicas);
        s["conditions"] = json!([
            available(replicas == 0),
            cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing.")
            )
        ]);
        write_status(store, rt, ns, name, d, s);
        return None;
    }
    let mut s = base(replicas, replicas);
    s["conditions"] = json!([
        available(true),
        cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed.")
        )
    ]);
    write_status(store, rt, ns, name, d, s);
    None
}

fn sync_replicasets(store: &Store, d: &Value, rs_name: &str, hash: &str, replicas: i64) {
    let rs_rt = rt_of("ReplicaSet");
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
    let all = store.all(rs_rt);
    for rs in owned_by(&all, d) {
        let n = rs["metadata"]["name"].as_str().unwrap_or_default();
        if n != rs_name && rs["spec"]["replicas"] != 0 {
            let _ = store.modify(rs_rt, Some(ns), n, "kube-controller-manager", |o| o["spec"]["replicas"] = json!(0));
        }
    }
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    match store.get(rs_rt, Some(ns), rs_name) {
        Ok(rs) => {
            if rs["spec"]["replicas"] != replicas {
                let _ = store.modify(rs_rt, Some(ns), rs_name, "kube-controller-manager", |o| {
                    o["spec"]["replicas"] = json!(replicas)
                });
            }
        }
        Err(_) => {
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs_name, "namespace": ns,
                "labels": labels, "ownerReferences": [owner_ref(d)],
                "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(), "deployment.kubernetes.io/revision": "1"}},
                "spec": {"replicas": replicas, "selector": selector, "template": template}});
            let _ = store.create(rs_rt, Some(ns), rs, &opts);
        }
    }
}

fn replicaset(store: &Store, _faults: &Faults, cfg: &ControllerConfig, rs: &Value) -> Option<Duration> {
    if !cfg.simulate_pods {
        return None;
    }
    let pod_rt = rt_of("Pod");
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let all = store.all(pod_rt);
    let pods: Vec<Arc<Value>> =
        owned_by(&all, rs).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned().collect();
    let opts = WriteOpts { manager: "kube-controller-manager".into(), ..Default::default() };
    if pods.len() < want {
        for _ in pods.len()..want {
            let template = &rs["spec"]["template"];
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{name}-{}", random_suffix(5)), "namespace": ns,
                "labels": template["metadata"]["labels"], "annotations": template["metadata"]["annotations"].clone(),
                "ownerReferences": [owner_ref(rs)]}, "spec": template["spec"]});
            let mut pod = pod;
            if pod["metadata"]["annotations"].is_null() {
                pod["metadata"].as_object_mut().map(|m| m.remove("annotations"));
            }
            pod["spec"]["nodeName"] = json!("kube-sim-node-0");
            let _ = store.create(pod_rt, Some(ns), pod, &opts);
        }
    } else {
        for p in pods.iter().skip(want) {
            let _ =
                store.delete(pod_rt, Some(ns), p["metadata"]["name"].as_str().unwrap_or_default(), &Default::default());
        }
    }
    let all = store.all(pod_rt);
    let pods: Vec<&Arc<Value>> = owned_by(&all, rs);
    let ready = pods
        .iter()
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    let mut status = json!({"replicas": pods.len().min(want), "fullyLabeledReplicas": pods.len().min(want),
        "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"]});
    if ready == 0
        && let Some(m) = status.as_object_mut()
    {
        m.remove("readyReplicas");
        m.remove("availableReplicas");
    }
    write_status(store, rt_of("ReplicaSet"), ns, name, rs, status);
    (ready < want).then_some(cfg.rollout_delay)
}

fn pod(store: &Store, faults: &Faults, cfg: &ControllerConfig, pod: &Value) -> Option<Duration> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if pod["status"]["phase"] != "Pending" || !pod["status"]["containerStatuses"].is_null() {
        return None;
    }
    let fails = failing(faults, &pod["spec"]);
    let mut statuses = Vec::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let image = c["image"].as_str().unwrap_or_default();
        let state = if faults.image_fails(image) {
            json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\" (simulated failure)")}})
        } else {
            json!({"running": {"startedAt": now()}})
        };
        let ok = !faults.image_fails(image);
        statuses.push(json!({"name": c["name"], "image": image, "imageID": "", "ready": ok, "started": ok, "restartCount": 0, "state": state}));
    }
    let t = now();
    let status = if fails {
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status", "lastTransitionTime": t}],
            "containerStatuses": statuses, "hostIP": "172.18.0.2", "podIP": "10.244.0.10", "startTime": t, "qosClass": "BestEffort"})
    } else {
        json!({"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
            {"type": "Ready", "status": "True", "lastTransitionTime": t}],
            "containerStatuses": statuses, "hostIP": "172.18.0.2", "podIP": "10.244.0.10", "startTime": t, "qosClass": "BestEffort"})
    };
    let _ = cfg;
    write_status(store, rt_of("Pod"), ns, name, pod, status);
    None
}

fn workload(
    store: &Store,
    faults: &Faults,
    cfg: &ControllerConfig,
    p: &mut Progress,
    rt: &ResourceType,
    w: &Value,
) -> Option<Duration> {
    let ns = w["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = w["metadata"]["name"].as_str().unwrap_or_default();
    let generation = w["metadata"]["generation"].as_i64().unwrap_or(1);
    let fails = failing(faults, &w["spec"]["template"]["spec"]);
    let (_, t0) = started(p, w);
    let done = t0.elapsed() >= cfg.rollout_delay;
    let ready = |n: i64| if done && !fails { n } else { 0 };
    let revision = format!("{name}-{}", &template_hash(&w["spec"]["template"])[..10]);
    let status = if rt.kind == "StatefulSet" {
        let replicas = w["spec"]["replicas"].as_i64().unwrap_or(1);
        json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": ready(replicas), "currentReplicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": ready(replicas), "currentRevision": revision, "updateRevision": revision, "collisionCount": 0})
    } else {
        let n = cfg.nodes as i64;
        json!({"observedGeneration": generation, "desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": ready(n),
            "updatedNumberScheduled": n, "numberAvailable": ready(n), "numberMisscheduled": 0})
    };
    write_status(store, rt, ns, name, w, status);
    (!done).then(|| cfg.rollout_delay.saturating_sub(t0.elapsed()).max(Duration::from_millis(5)))
}

/// Annotation on a Job: how long it runs before completing, in seconds (`"12s"`, `"0.5s"`).
pub const JOB_DURATION_ANNOTATION: &str = "kube-sim.bosun.dev/duration";

fn job(
    store: &Store,
    faults: &Faults,
    cfg: &ControllerConfig,
    p: &mut Progress,
    rt: &ResourceType,
    j: &Value,
) -> Option<Duration> {
    let ns = j["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = j["metadata"]["name"].as_str().unwrap_or_default();
    let terminal = j["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True");
    if terminal || j["spec"]["suspend"] == true {
        return None;
    }
    let (_, t0) = started(p, j);
    let start = j["status"]["startTime"].as_str().map(str::to_string).unwrap_or_else(now);
    // How long the Job "runs": the annotation when set (for tests of long hooks), else the
    // rollout delay.
    let runtime = j["metadata"]["annotations"][JOB_DURATION_ANNOTATION]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0 && *d < 86400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(cfg.rollout_delay);
    if t0.elapsed() < runtime {
        write_status(
            store,
            rt,
            ns,
            name,
            j,
            json!({"startTime": start, "active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}),
        );
        return Some(runtime.saturating_sub(t0.elapsed()).max(Duration::from_millis(5)));
    }
    let t = now();
    let status = if failing(faults, &j["spec"]["template"]["spec"]) {
        let failed = j["spec"]["backoffLimit"].as_i64().unwrap_or(6) + 1;
        json!({"startTime": start, "failed": failed, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": t, "lastTransitionTime": t},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": t, "lastTransitionTime": t}]})
    } else {
        let completions = j["spec"]["completions"].as_i64().unwrap_or(1);
        json!({"startTime": start, "completionTime": t, "succeeded": completions, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t}]})
    };
    write_status(store, rt, ns, name, j, status);
    None
}
