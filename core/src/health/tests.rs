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
        "hpa scaling",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
status: {conditions: [{type: AbleToScale, status: "True", reason: ReadyForNewScale}, {type: ScalingActive, status: "True", reason: ValidMetricFound}]}"#,
    ),
    (
        "hpa metrics missing",
        Some(Degraded),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
status: {conditions: [{type: ScalingActive, status: "False", reason: FailedGetResourceMetric, message: no metrics}]}"#,
    ),
    (
        "hpa fresh",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}"#,
    ),
    (
        "apiservice available",
        Some(Healthy),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
status: {conditions: [{type: Available, status: "True"}]}"#,
    ),
    (
        "apiservice unavailable",
        Some(Progressing),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
status: {conditions: [{type: Available, status: "False", message: FailedDiscoveryCheck}]}"#,
    ),
    (
        "crd established",
        Some(Healthy),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status: {conditions: [{type: NamesAccepted, status: "True"}, {type: Established, status: "True"}]}"#,
    ),
    (
        "crd names conflict",
        Some(Degraded),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status: {conditions: [{type: NamesAccepted, status: "False", message: names in use}]}"#,
    ),
    (
        "crd not yet established",
        Some(Progressing),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}"#,
    ),
    (
        "crd terminating",
        Some(Progressing),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com, deletionTimestamp: "2026-01-01T00:00:00Z"}
status: {conditions: [{type: Established, status: "True"}]}"#,
    ),
    (
        "statefulset on delete",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 2, updateStrategy: {type: OnDelete}}
status: {observedGeneration: 1}"#,
    ),
    (
        "statefulset revision rolling",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 1}
status: {observedGeneration: 1, readyReplicas: 1, currentRevision: db-1, updateRevision: db-2}"#,
    ),
    (
        "deployment old replicas terminating",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, replicas: 3, updatedReplicas: 2, availableReplicas: 2}"#,
    ),
    (
        "replicaset available",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, availableReplicas: 2}"#,
    ),
    (
        "job suspended",
        Some(Suspended),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {suspend: true}"#,
    ),
    (
        "pod succeeded",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
status: {phase: Succeeded}"#,
    ),
    (
        "pod crash loop",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
status:
  phase: Running
  containerStatuses: [{name: c, state: {waiting: {reason: CrashLoopBackOff}}}]"#,
    ),
    (
        "pod running never restarts",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never}
status: {phase: Running}"#,
    ),
    (
        "pvc lost",
        Some(Degraded),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
status: {phase: Lost}"#,
    ),
    (
        "ingress with address",
        Some(Healthy),
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
status: {loadBalancer: {ingress: [{hostname: lb.example.com}]}}"#,
    ),
    (
        "unknown custom resource",
        None,
        r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}"#,
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
