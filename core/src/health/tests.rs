//! Fixture table: one YAML object per case, one expected health per case.

use super::assess;
use crate::status::Health::{self, *};

const CASES: &[(&str, Option<Health>, &str)] = &[
    (
        "deployment available",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}"#,
    ),
    (
        "deployment generation not observed",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 3}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}"#,
    ),
    (
        "deployment rolling",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 3}
status: {observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 1}"#,
    ),
    (
        "deployment deadline exceeded",
        Some(Degraded),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 1}
status:
  observedGeneration: 1
  conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded}]"#,
    ),
    (
        "deployment paused",
        Some(Suspended),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {paused: true}"#,
    ),
    (
        "deployment scaled to zero",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 0}
status: {observedGeneration: 1}"#,
    ),
    (
        "statefulset ready",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, readyReplicas: 2, currentRevision: db-1, updateRevision: db-1}"#,
    ),
    (
        "statefulset waiting",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, readyReplicas: 1}"#,
    ),
    (
        "daemonset ready",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, generation: 1}
status: {observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3}"#,
    ),
    (
        "daemonset rolling",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, generation: 1}
status: {observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 1, numberAvailable: 3}"#,
    ),
    (
        "replicaset failure",
        Some(Degraded),
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {replicas: 1}
status: {conditions: [{type: ReplicaFailure, status: "True", message: quota exceeded}]}"#,
    ),
    (
        "pod running ready",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}"#,
    ),
    (
        "pod image pull backoff",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
status:
  phase: Pending
  containerStatuses: [{name: c, state: {waiting: {reason: ImagePullBackOff, message: back-off}}}]"#,
    ),
    (
        "pod pending",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
status: {phase: Pending}"#,
    ),
    (
        "pod failed",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
status: {phase: Failed}"#,
    ),
    (
        "job complete",
        Some(Healthy),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j}
status: {conditions: [{type: Complete, status: "True"}]}"#,
    ),
    (
        "job failed",
        Some(Degraded),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j}
status: {conditions: [{type: Failed, status: "True", message: BackoffLimitExceeded}]}"#,
    ),
    (
        "job running",
        Some(Progressing),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j}
status: {active: 1}"#,
    ),
    (
        "pvc bound",
        Some(Healthy),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
status: {phase: Bound}"#,
    ),
    (
        "pvc pending",
        Some(Progressing),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
status: {phase: Pending}"#,
    ),
    (
        "load balancer without address",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Service
metadata: {name: lb}
spec: {type: LoadBalancer}"#,
    ),
    (
        "load balancer with address",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Service
metadata: {name: lb}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 192.0.2.1}]}}"#,
    ),
    (
        "cluster ip service",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {type: ClusterIP}"#,
    ),
    (
        "ingress without address",
        Some(Progressing),
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}"#,
    ),
    (
        "configmap has no check",
        None,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: c}"#,
    ),
];

#[test]
fn health_fixtures() {
    for (name, want, yaml) in CASES {
        let obj: serde_json::Value = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(assess(&obj).map(|a| a.health), *want, "{name}");
    }
}
