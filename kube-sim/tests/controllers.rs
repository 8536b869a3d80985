//! Simulated controllers: rollouts, failures, Jobs, LoadBalancers, PVCs, CRDs, GC of children.

mod common;

use std::time::Duration;

use common::{client, eventually, sim};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn deploy(name: &str, image: &str, replicas: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn condition(d: &Deployment, t: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(t))
        .map(|c| (c.status.clone().unwrap_or_default(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn deployment_rolls_out_with_replicasets_and_pods() {
    let c = sim().await;
    let cl = client(&c).await;
    let api: Api<Deployment> = Api::namespaced(cl.clone(), "default");
    api.patch("web", &PatchParams::apply("t"), &Patch::Apply(deploy("web", "nginx:1.27", 2))).await.unwrap();
    // First Progressing, then Available with every replica ready.
    let d = eventually("web available", T, || async {
        let d = api.get("web").await.unwrap();
        (condition(&d, "Available") == Some(("True".into(), "MinimumReplicasAvailable".into()))).then_some(d)
    })
    .await;
    let s = d.status.unwrap();
    assert_eq!(
        (s.observed_generation, s.ready_replicas, s.available_replicas, s.updated_replicas),
        (d.metadata.generation, Some(2), Some(2), Some(2))
    );

    let rss: Api<ReplicaSet> = Api::namespaced(cl.clone(), "default");
    let rs = rss.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].metadata.owner_references.as_ref().unwrap()[0].uid, d.metadata.uid.clone().unwrap());
    let pods: Api<Pod> = Api::namespaced(cl.clone(), "default");
    let running = eventually("two running pods", T, || async {
        let ps = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
        (ps.len() == 2 && ps.iter().all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
            .then_some(ps)
    })
    .await;
    assert!(running[0].metadata.labels.as_ref().unwrap().contains_key("pod-template-hash"));

    // A new template makes a new ReplicaSet; the old one scales to zero.
    api.patch("web", &PatchParams::apply("t"), &Patch::Apply(deploy("web", "nginx:1.28", 2))).await.unwrap();
    eventually("second replicaset", T, || async {
        let rs = rss.list(&ListParams::default().labels("app=web")).await.unwrap().items;
        (rs.len() == 2 && rs.iter().any(|r| r.spec.replicas == Some(0))).then_some(())
    })
    .await;

    // Deleting the Deployment collects its ReplicaSets and Pods.
    api.delete("web", &DeleteParams::background()).await.unwrap();
    eventually("children collected", T, || async {
        let rs = rss.list(&ListParams::default()).await.unwrap().items.len();
        let ps = pods.list(&ListParams::default()).await.unwrap().items.len();
        (rs == 0 && ps == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn failing_image_reaches_progress_deadline_exceeded() {
    let c = sim().await;
    let cl = client(&c).await;
    let api: Api<Deployment> = Api::namespaced(cl.clone(), "default");
    api.patch("bad", &PatchParams::apply("t"), &Patch::Apply(deploy("bad", "nginx:fail", 1))).await.unwrap();
    eventually("deadline exceeded", T, || async {
        let d = api.get("bad").await.unwrap();
        (condition(&d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into()))).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(cl.clone(), "default");
    let reason = eventually("image pull backoff", T, || async {
        let ps = pods.list(&ListParams::default().labels("app=bad")).await.unwrap().items;
        ps.first()?.status.as_ref()?.container_statuses.as_ref()?[0].state.as_ref()?.waiting.as_ref()?.reason.clone()
    })
    .await;
    assert_eq!(reason, "ImagePullBackOff");

    // Images registered at run time fail too; a fix commits a good image and recovers.
    c.faults().add_failing_image("registry.example.com/app:2");
    api.patch("bad", &PatchParams::apply("t"), &Patch::Apply(deploy("bad", "nginx:1.27", 1))).await.unwrap();
    eventually("recovered", T, || async {
        let d = api.get("bad").await.unwrap();
        (condition(&d, "Progressing").map(|c| c.1) == Some("NewReplicaSetAvailable".into())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn jobs_services_claims_and_other_workloads() {
    let c = sim().await;
    let cl = client(&c).await;
    let jobs: Api<Job> = Api::namespaced(cl.clone(), "default");
    let job = |name: &str, image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}}})
    };
    jobs.patch("ok", &PatchParams::apply("t"), &Patch::Apply(job("ok", "busybox:1"))).await.unwrap();
    jobs.patch("ko", &PatchParams::apply("t"), &Patch::Apply(job("ko", "busybox:fail"))).await.unwrap();
    let done = |name: &'static str, t: &'static str| {
        let jobs = jobs.clone();
        async move {
            eventually(name, T, || async {
                let j = jobs.get(name).await.unwrap();
                j.status?.conditions?.iter().any(|c| c.type_ == t && c.status == "True").then_some(())
            })
            .await
        }
    };
    done("ok", "Complete").await;
    done("ko", "Failed").await;
    // The server adds the job-name labels and selector, as a real one does.
    let j = jobs.get("ok").await.unwrap();
    assert_eq!(j.spec.unwrap().template.metadata.unwrap().labels.unwrap()["batch.kubernetes.io/job-name"], "ok");

    let svcs: Api<Service> = Api::namespaced(cl.clone(), "default");
    let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    svcs.patch("lb", &PatchParams::apply("t"), &Patch::Apply(lb)).await.unwrap();
    eventually("load balancer address", T, || async {
        svcs.get("lb").await.unwrap().status?.load_balancer?.ingress?.first()?.ip.clone()
    })
    .await;

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cl.clone(), "default");
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    pvcs.patch("data", &PatchParams::apply("t"), &Patch::Apply(pvc)).await.unwrap();
    let bound = eventually("pvc bound", T, || async {
        let p = pvcs.get("data").await.unwrap();
        (p.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(p)
    })
    .await;
    assert!(bound.spec.unwrap().volume_name.is_some(), "binding sets spec.volumeName, a classic drift trap");

    let sts: Api<StatefulSet> = Api::namespaced(cl.clone(), "default");
    let s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"replicas": 3, "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "postgres:16"}]}}}});
    sts.patch("db", &PatchParams::apply("t"), &Patch::Apply(s)).await.unwrap();
    eventually("statefulset ready", T, || async {
        (sts.get("db").await.unwrap().status?.ready_replicas == Some(3)).then_some(())
    })
    .await;

    let dss: Api<DaemonSet> = Api::namespaced(cl.clone(), "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}});
    dss.patch("agent", &PatchParams::apply("t"), &Patch::Apply(d)).await.unwrap();
    eventually("daemonset ready", T, || async {
        let s = dss.get("agent").await.unwrap().status?;
        (s.number_ready == 1 && s.desired_number_scheduled == 1).then_some(())
    })
    .await;
}
