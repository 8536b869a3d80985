//! Fixture table: one object per case, one expected health per case. Rows named `argo: …` are
//! the situations of gitops-engine's `pkg/health/health_test.go` (its `testdata/*.yaml`),
//! written here as our own objects with the status Argo CD gives them; the others are Bosun's.

use super::assess;
use crate::status::Health::{self, *};

const CASES: &[(&str, Option<Health>, &str)] = &[
    (
        "argo: deployment rolled out (nginx)",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 3}
spec: {replicas: 2, template: {spec: {containers: [{name: web, image: 'nginx:1'}]}}}
status: {observedGeneration: 3, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2,
  conditions: [{type: Available, status: 'True'}, {type: Progressing, status: 'True', reason: NewReplicaSetAvailable}]}"#,
    ),
    (
        "argo: deployment-progressing (an old replica still terminating)",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ui, generation: 5}
spec: {replicas: 1}
status: {observedGeneration: 5, replicas: 2, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1,
  conditions: [{type: Progressing, status: 'True', reason: ReplicaSetUpdated}]}"#,
    ),
    (
        "argo: deployment-suspended (paused)",
        Some(Suspended),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ui, generation: 2}
spec: {replicas: 1, paused: true}
status: {observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1}"#,
    ),
    (
        "argo: deployment-degraded (progress deadline exceeded)",
        Some(Degraded),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: ui, generation: 5}
spec: {replicas: 1}
status: {observedGeneration: 5, replicas: 2, updatedReplicas: 1, availableReplicas: 1,
  conditions: [{type: Available, status: 'True'}, {type: Progressing, status: 'False', reason: ProgressDeadlineExceeded}]}"#,
    ),
    (
        "deployment generation not observed yet",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 3}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}"#,
    ),
    (
        "deployment: updated replicas not all available",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 3}
status: {observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 1}"#,
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
        "argo: statefulset rolled out",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 3, updateStrategy: {type: RollingUpdate}}
status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, currentReplicas: 3, updatedReplicas: 3, currentRevision: db-7, updateRevision: db-7}"#,
    ),
    (
        "argo: statefulset-ondelete",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, generation: 1}
spec: {replicas: 1, updateStrategy: {type: OnDelete}}
status: {observedGeneration: 1, replicas: 1, readyReplicas: 1, currentRevision: redis-1, updateRevision: redis-2}"#,
    ),
    (
        "statefulset OnDelete with a pod not ready: readiness first",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, generation: 1}
spec: {replicas: 2, updateStrategy: {type: OnDelete}}
status: {observedGeneration: 1, replicas: 2, readyReplicas: 1}"#,
    ),
    (
        "statefulset spec never observed",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec: {replicas: 1}
status: {replicas: 0}"#,
    ),
    (
        "statefulset rolling update in progress",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 2, updateStrategy: {type: RollingUpdate}}
status: {observedGeneration: 2, readyReplicas: 2, updatedReplicas: 1, currentRevision: db-1, updateRevision: db-2}"#,
    ),
    (
        "statefulset partitioned rollout waiting",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 4, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}}
status: {observedGeneration: 2, readyReplicas: 4, updatedReplicas: 1}"#,
    ),
    (
        "statefulset partitioned rollout complete",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 2}
spec: {replicas: 4, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}}
status: {observedGeneration: 2, readyReplicas: 4, updatedReplicas: 2, currentRevision: db-1, updateRevision: db-2}"#,
    ),
    (
        "argo: daemonset-ondelete",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs, generation: 4}
spec: {updateStrategy: {type: OnDelete}}
status: {observedGeneration: 4, desiredNumberScheduled: 1, currentNumberScheduled: 1, numberReady: 1, numberAvailable: 1}"#,
    ),
    (
        "daemonset rolling out",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs, generation: 2}
spec: {updateStrategy: {type: RollingUpdate}}
status: {observedGeneration: 2, desiredNumberScheduled: 3, updatedNumberScheduled: 1, numberAvailable: 3}"#,
    ),
    (
        "daemonset pods not available",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs, generation: 2}
status: {observedGeneration: 2, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 2}"#,
    ),
    (
        "replicaset available",
        Some(Healthy),
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, replicas: 2, availableReplicas: 2}"#,
    ),
    (
        "replicaset with a replica failure",
        Some(Degraded),
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, conditions: [{type: ReplicaFailure, status: 'True', message: 'pods "web" is forbidden: exceeded quota'}]}"#,
    ),
    (
        "replicaset waiting for replicas",
        Some(Progressing),
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, availableReplicas: 1}"#,
    ),
    (
        "argo: pvc-bound",
        Some(Healthy),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}
status: {phase: Bound, capacity: {storage: 2Gi}}"#,
    ),
    (
        "argo: pvc-pending",
        Some(Progressing),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
status: {phase: Pending}"#,
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
        "pvc without a phase",
        Some(Unknown),
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}"#,
    ),
    (
        "argo: svc-clusterip",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {type: ClusterIP, clusterIP: 10.0.0.7, ports: [{port: 80}]}"#,
    ),
    (
        "argo: svc-loadbalancer (with an address)",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.51.100.7}]}}"#,
    ),
    (
        "argo: svc-loadbalancer-unassigned",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {}}"#,
    ),
    (
        "argo: svc-loadbalancer-nonemptylist (an entry with no fields)",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{}]}}"#,
    ),
    (
        "argo: ingress (with an address)",
        Some(Healthy),
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
status: {loadBalancer: {ingress: [{hostname: lb.example.com}]}}"#,
    ),
    (
        "argo: ingress-unassigned",
        Some(Progressing),
        r#"
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: web}
status: {loadBalancer: {}}"#,
    ),
    (
        "argo: ingress-nonemptylist",
        Some(Healthy),
        r#"
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: web}
status: {loadBalancer: {ingress: [{}]}}"#,
    ),
    (
        "argo: knative-service (a custom resource without a check)",
        None,
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
status: {conditions: [{type: Ready, status: 'True'}]}"#,
    ),
    (
        "argo: application-healthy (not assessed as a resource)",
        None,
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: child}
status: {health: {status: Healthy}}"#,
    ),
    (
        "argo: application-degraded (not assessed as a resource)",
        None,
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: child}
status: {health: {status: Degraded}}"#,
    ),
    (
        "argo: job-running",
        Some(Progressing),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec: {backoffLimit: 0}
status: {active: 1, startTime: '2026-01-01T00:00:00Z'}"#,
    ),
    (
        "argo: job-failed",
        Some(Degraded),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {failed: 1, conditions: [{type: Failed, status: 'True', reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}]}"#,
    ),
    (
        "argo: job-succeeded",
        Some(Healthy),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {succeeded: 1, conditions: [{type: Complete, status: 'True'}]}"#,
    ),
    (
        "argo: job-suspended",
        Some(Suspended),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec: {suspend: true}
status: {conditions: [{type: Suspended, status: 'True', reason: JobSuspended, message: Job suspended}]}"#,
    ),
    (
        "job suspended in spec, no condition yet: still running",
        Some(Progressing),
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec: {suspend: true}"#,
    ),
    (
        "argo: hpa-v2-healthy",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: AbleToScale, status: 'True', reason: ReadyForNewScale}, {type: ScalingActive, status: 'True', reason: ValidMetricFound}, {type: ScalingLimited, status: 'False', reason: DesiredWithinRange}]}"#,
    ),
    (
        "argo: hpa-v2-degraded (unable to get the scale)",
        Some(Degraded),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: AbleToScale, status: 'False', reason: FailedGetScale, message: no scale}, {type: ScalingActive, status: 'True', reason: ValidMetricFound}, {type: ScalingLimited, status: 'False', reason: DesiredWithinRange}]}"#,
    ),
    (
        "argo: hpa-v2-progressing (no AbleToScale yet)",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: ScalingActive, status: 'True', reason: ValidMetricFound}, {type: ScalingLimited, status: 'False', reason: DesiredWithinRange}]}"#,
    ),
    (
        "argo: hpa-v2beta2-healthy",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: AbleToScale, status: 'True', reason: ReadyForNewScale}, {type: ScalingActive, status: 'True', reason: ValidMetricFound}, {type: ScalingLimited, status: 'False', reason: DesiredWithinRange}]}"#,
    ),
    (
        "argo: hpa-v2beta1-healthy-disabled (scaling disabled, able to scale)",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v2beta1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: AbleToScale, status: 'True', reason: SucceededGetScale}, {type: ScalingActive, status: 'False', reason: ScalingDisabled}]}"#,
    ),
    (
        "argo: hpa-v2beta1-healthy",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v2beta1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: AbleToScale, status: 'True', reason: ReadyForNewScale}, {type: ScalingActive, status: 'True', reason: ValidMetricFound}, {type: ScalingLimited, status: 'False', reason: DesiredWithinRange}]}"#,
    ),
    (
        "argo: hpa-v1-degraded (conditions in the annotation)",
        Some(Degraded),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/conditions: '[{"type":"AbleToScale","status":"True","reason":"FailedGetScale","message":"unable to get the scale"},{"type":"ScalingActive","status":"False","reason":"FailedGetResourceMetric"}]'}}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "argo: hpa-v1-healthy",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/conditions: '[{"type":"AbleToScale","status":"True","reason":"SucceededRescale"},{"type":"ScalingActive","status":"False","reason":"FailedGetResourceMetric"}]'}}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "argo: hpa-v1-healthy-toofew (limited to its minimum)",
        Some(Healthy),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/conditions: '[{"type":"AbleToScale","status":"True","reason":"ReadyForNewScale"},{"type":"ScalingActive","status":"True","reason":"ValidMetricFound"},{"type":"ScalingLimited","status":"True","reason":"TooFewReplicas"}]'}}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "argo: hpa-v1-progressing (not able to scale, no failure reason)",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/conditions: '[{"type":"AbleToScale","status":"False","reason":"SucceededGetScale"}]'}}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "argo: hpa-v1-progressing-with-no-annotations",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "hpa v1 with an empty conditions annotation",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/conditions: '[]'}}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "hpa v2 without conditions",
        Some(Progressing),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {currentReplicas: 1, desiredReplicas: 1}"#,
    ),
    (
        "hpa v2 invalid selector",
        Some(Degraded),
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec: {maxReplicas: 5, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}
status: {conditions: [{type: ScalingActive, status: 'False', reason: InvalidSelector}]}"#,
    ),
    (
        "argo: pod-pending",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Pending, containerStatuses: [{name: main, ready: false, state: {waiting: {reason: ContainerCreating}}}]}"#,
    ),
    (
        "argo: pod-running-not-ready",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'False', reason: ContainersNotReady}], containerStatuses: [{name: main, ready: false, state: {running: {}}, lastState: {}}]}"#,
    ),
    (
        "argo: pod-crashloop",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'False', reason: ContainersNotReady}], containerStatuses: [{name: main, ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff, message: back-off restarting failed container}}, lastState: {terminated: {exitCode: 1, reason: Error}}}]}"#,
    ),
    (
        "argo: pod-imagepullbackoff",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Pending, containerStatuses: [{name: main, ready: false, state: {waiting: {reason: ImagePullBackOff, message: 'Back-off pulling image'}}}]}"#,
    ),
    (
        "argo: pod-error (restarting after a failure)",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'False', reason: ContainersNotReady}], containerStatuses: [{name: main, ready: false, restartCount: 2, state: {terminated: {exitCode: 1, reason: Error}}, lastState: {terminated: {exitCode: 1, reason: Error}}}]}"#,
    ),
    (
        "argo: pod-running-restart-always (ready)",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'True'}], containerStatuses: [{name: main, ready: true, state: {running: {}}}]}"#,
    ),
    (
        "argo: pod-running-restart-never (a hook still running)",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'True'}], containerStatuses: [{name: main, ready: true, state: {running: {}}}]}"#,
    ),
    (
        "argo: pod-running-restart-onfailure",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: OnFailure, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Running, conditions: [{type: Ready, status: 'True'}], containerStatuses: [{name: main, ready: true, state: {running: {}}}]}"#,
    ),
    (
        "argo: pod-failed (exit code of the container)",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Failed, containerStatuses: [{name: main, ready: false, state: {terminated: {exitCode: 1, reason: Error}}}]}"#,
    ),
    (
        "argo: pod-succeeded",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Succeeded, containerStatuses: [{name: main, ready: false, state: {terminated: {exitCode: 0, reason: Completed}}}]}"#,
    ),
    (
        "argo: pod-deletion (terminating)",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p, deletionTimestamp: '2026-01-01T00:00:00Z'}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Pending, containerStatuses: [{name: main, ready: false, state: {waiting: {reason: PodInitializing}}}]}"#,
    ),
    (
        "hook pod in ImagePullBackOff with restartPolicy Never keeps waiting",
        Some(Progressing),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Pending, containerStatuses: [{name: main, ready: false, state: {waiting: {reason: ImagePullBackOff, message: 'Back-off pulling image'}}}]}"#,
    ),
    (
        "failed pod with a message",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Failed, message: 'Pod was evicted'}"#,
    ),
    (
        "failed pod killed for memory",
        Some(Degraded),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: OnFailure, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Failed, containerStatuses: [{name: main, state: {terminated: {exitCode: 137, reason: OOMKilled}}}]}"#,
    ),
    (
        "pod with an unknown phase",
        Some(Unknown),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {restartPolicy: Always, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Unknown}"#,
    ),
    (
        "terminating pod held by Argo CD's hook finalizer is judged as it is",
        Some(Healthy),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: p, deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [argocd.argoproj.io/hook-finalizer]}
spec: {restartPolicy: Never, containers: [{name: main, image: 'alpine:3'}]}
status: {phase: Succeeded}"#,
    ),
    (
        "a terminating ConfigMap is pending deletion",
        Some(Progressing),
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: c, deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [example.com/keep]}"#,
    ),
    (
        "argo: apiservice-v1-true",
        Some(Healthy),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.metrics.k8s.io}
status: {conditions: [{type: Available, status: 'True', reason: Passed, message: all checks passed}]}"#,
    ),
    (
        "argo: apiservice-v1-false",
        Some(Progressing),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.admission.cert-manager.io}
status: {conditions: [{type: Available, status: 'False', reason: MissingEndpoints, message: endpoints have no addresses}]}"#,
    ),
    (
        "argo: apiservice-v1beta1-true",
        Some(Healthy),
        r#"
apiVersion: apiregistration.k8s.io/v1beta1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
status: {conditions: [{type: Available, status: 'True', reason: Passed, message: all checks passed}]}"#,
    ),
    (
        "argo: apiservice-v1beta1-false",
        Some(Progressing),
        r#"
apiVersion: apiregistration.k8s.io/v1beta1
kind: APIService
metadata: {name: v1beta1.admission.cert-manager.io}
status: {conditions: [{type: Available, status: 'False', reason: MissingEndpoints, message: endpoints have no addresses}]}"#,
    ),
    (
        "apiservice not processed yet",
        Some(Progressing),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.example.com}"#,
    ),
    (
        "argo: workflow running",
        Some(Progressing),
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec: {entrypoint: main}
status: {phase: Running, message: This node is running}"#,
    ),
    (
        "argo: workflow succeeded",
        Some(Healthy),
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
status: {phase: Succeeded}"#,
    ),
    (
        "argo: workflow without status",
        Some(Progressing),
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec: {entrypoint: main}"#,
    ),
    (
        "workflow failed",
        Some(Degraded),
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
status: {phase: Failed}"#,
    ),
    (
        "crd established",
        Some(Healthy),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status: {conditions: [{type: NamesAccepted, status: 'True'}, {type: Established, status: 'True'}]}"#,
    ),
    (
        "crd names not accepted",
        Some(Degraded),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
status: {conditions: [{type: NamesAccepted, status: 'False', message: 'kind Widget is already in use'}]}"#,
    ),
    (
        "crd not established yet",
        Some(Progressing),
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}"#,
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
    let mut wrong = Vec::new();
    for (name, want, yaml) in CASES {
        let obj: serde_json::Value = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = assess(&obj).map(|a| a.health);
        if got != *want {
            wrong.push(format!("{name}: {got:?}, Argo CD says {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every situation of gitops-engine's health tests is covered.
    assert!(CASES.iter().filter(|(n, _, _)| n.starts_with("argo: ")).count() >= 48);
}
