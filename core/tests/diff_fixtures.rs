//! Normalisation fixtures: a desired manifest, the live object as a server returns it, and the
//! drift expected (none, for every server-side trap a real cluster sets). The live sides are
//! written as a Kubernetes API server returns the objects: quantities in canonical form,
//! omitempty fields dropped, `managedFields` per field manager.

use bosun_core::diff::{Options, drift, drifted_fields};

const CASES: &[(&str, &str, &str, &[&str])] = &[
    (
        "server defaults on a Deployment",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers: [{name: web, image: 'nginx:1', ports: [{containerPort: 80}]}]",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: d, uid: u, resourceVersion: '9', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z'}\nspec:\n  replicas: 2\n  revisionHistoryLimit: 10\n  progressDeadlineSeconds: 600\n  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}\n  template:\n    metadata: {creationTimestamp: null}\n    spec:\n      dnsPolicy: ClusterFirst\n      restartPolicy: Always\n      containers: [{name: web, image: 'nginx:1', imagePullPolicy: IfNotPresent, terminationMessagePath: /dev/termination-log, resources: {}, ports: [{containerPort: 80, protocol: TCP}]}]\nstatus: {replicas: 2}",
        &[],
    ),
    (
        "status is not compared",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, protocol: TCP, targetPort: 80}], clusterIP: 10.96.0.5, type: ClusterIP}",
        &[],
    ),
    (
        "managed metadata is not compared",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: b}}\ndata: {k: v}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: b, extra: x}, annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}, managedFields: [{manager: m}], uid: u, resourceVersion: '1'}\ndata: {k: v}",
        &[],
    ),
    (
        "containers in another order are matched by name",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:1'}, {name: b, image: 'y:1'}]}}}",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: b, image: 'y:1'}, {name: a, image: 'x:1'}]}}}",
        &[],
    ),
    (
        "null in the manifest equals absent",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: null}\ndata: {k: v}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}",
        &[],
    ),
    (
        "empty map and list in the manifest equal absent",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {}}\nspec: {volumes: [], containers: [{name: a, image: 'x:1', env: []}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1'}]}",
        &[],
    ),
    (
        "Secret stringData equals base64 data",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {user: admin}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {user: YWRtaW4=}",
        &[],
    ),
    (
        "Secret stringData change is drift",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {user: root}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {user: YWRtaW4=}",
        &[".data.user"],
    ),
    (
        "namespace on a cluster-scoped object",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: default}\nrules: []",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\nrules: []",
        &[],
    ),
    (
        "integer and float forms of a number",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nspec: {weight: 1}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nspec: {weight: 1.0}",
        &[],
    ),
    (
        "a changed image is drift",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:2'}]}}}",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:1', imagePullPolicy: IfNotPresent}]}}}",
        &[".spec.template.spec.containers[a].image"],
    ),
    (
        "a missing container is drift",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:1'}, {name: sidecar, image: 's:1'}]}}}",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:1'}]}}}",
        &[".spec.template.spec.containers[sidecar]"],
    ),
    (
        "a removed label is drift",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {team: a}}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}",
        &[".metadata.labels"],
    ),
    (
        "an atomic list of args compared in order",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', args: [--a, --b]}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', args: [--b, --a]}]}",
        &[".spec.containers[a].args[0]", ".spec.containers[a].args[1]"],
    ),
    (
        "extra items in an unnamed list are drift",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', args: [--a]}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', args: [--a, --injected]}]}",
        &[".spec.containers[a].args[1]"],
    ),
    (
        "quantities compare by value (cpu: 1, cpu: 0.5, 1024Mi as the server writes them)",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        resources: {limits: {cpu: 1, memory: 1024Mi}, requests: {cpu: 0.5, memory: 1e3, ephemeral-storage: 1.5Gi}}",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        resources: {limits: {cpu: '1', memory: 1Gi}, requests: {cpu: 500m, memory: 1k, ephemeral-storage: 1536Mi}}",
        &[],
    ),
    (
        "a different quantity is drift",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', resources: {limits: {cpu: 2}}}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', resources: {limits: {cpu: 1500m}}}]}",
        &[".spec.containers[a].resources.limits.cpu"],
    ),
    (
        "PVC storage request",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10240Mi}}}",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}, volumeMode: Filesystem, storageClassName: standard}",
        &[],
    ),
    (
        "ResourceQuota and LimitRange",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {requests.cpu: 4, requests.memory: 8192Mi}}",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {requests.cpu: '4', requests.memory: 8Gi}}",
        &[],
    ),
    (
        "LimitRange limits",
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec: {limits: [{type: Container, default: {cpu: 0.25}, max: {memory: 2048Mi}}]}",
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec: {limits: [{type: Container, default: {cpu: 250m}, defaultRequest: {cpu: 250m}, max: {memory: 2Gi}}]}",
        &[],
    ),
    (
        "HPA v2 average value target",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, maxReplicas: 5, metrics: [{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 0.1}}}]}",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: 1, maxReplicas: 5, metrics: [{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 100m}}}]}",
        &[],
    ),
    (
        "pod overhead and emptyDir size limits",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {overhead: {cpu: 0.1}, containers: [{name: a, image: 'x:1'}], volumes: [{name: tmp, emptyDir: {sizeLimit: 512Ki}}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {overhead: {cpu: 100m}, containers: [{name: a, image: 'x:1'}], volumes: [{name: tmp, emptyDir: {sizeLimit: 512Ki}}]}",
        &[],
    ),
    (
        "empty values the API server drops equal absent",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, annotations: {}}\nspec:\n  template:\n    metadata: {labels: {}}\n    spec:\n      imagePullSecrets: []\n      containers: [{name: a, image: 'x:1', env: [], envFrom: [], args: [], command: [], workingDir: ''}]",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata: {creationTimestamp: null}\n    spec:\n      containers: [{name: a, image: 'x:1', imagePullPolicy: IfNotPresent}]",
        &[],
    ),
    (
        "an empty rules list comes back as null",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: nothing}\nrules: []",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: nothing}\nrules: null",
        &[],
    ),
    (
        "Secret data with an empty value",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {empty: ''}\ndata: {}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {empty: ''}",
        &[],
    ),
    (
        "one volume mounted at two paths is matched by mountPath",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        volumeMounts: [{name: cfg, mountPath: /etc/app}, {name: cfg, mountPath: /etc/app-copy, subPath: app.conf}]\n      volumes: [{name: cfg, configMap: {name: cfg}}]",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        volumeMounts: [{name: cfg, mountPath: /etc/app-copy, subPath: app.conf}, {name: cfg, mountPath: /etc/app}]\n      volumes: [{name: cfg, configMap: {name: cfg, defaultMode: 420}}]",
        &[],
    ),
    (
        "a changed subPath of one of two mounts of a volume",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        volumeMounts: [{name: cfg, mountPath: /etc/app}, {name: cfg, mountPath: /etc/app-copy, subPath: new.conf}]",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: 'x:1'\n        volumeMounts: [{name: cfg, mountPath: /etc/app}, {name: cfg, mountPath: /etc/app-copy, subPath: app.conf}]",
        &[".spec.template.spec.containers[a].volumeMounts[/etc/app-copy].subPath"],
    ),
    (
        "ports by containerPort and protocol (TCP by default)",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: dns, image: 'x:1', ports: [{containerPort: 53, protocol: UDP}, {containerPort: 53}]}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: dns, image: 'x:1', ports: [{containerPort: 53, protocol: TCP}, {containerPort: 53, protocol: UDP}]}]}",
        &[],
    ),
    (
        "service ports by port and protocol",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: https, port: 443, targetPort: 8443}, {name: http, port: 80}]}",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: ClusterIP, clusterIP: 10.0.0.1, ports: [{name: http, port: 80, protocol: TCP, targetPort: 80}, {name: https, port: 443, protocol: TCP, targetPort: 8443}]}",
        &[],
    ),
    (
        "env by name in another order",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', env: [{name: A, value: '1'}, {name: B, value: '2'}]}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1', env: [{name: B, value: '2'}, {name: A, value: '1'}]}]}",
        &[],
    ),
    (
        "tolerations are atomic: another order is drift",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1'}], tolerations: [{key: a, operator: Exists}, {key: b, operator: Exists}]}",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1'}], tolerations: [{key: b, operator: Exists}, {key: a, operator: Exists}]}",
        &[".spec.tolerations[0].key", ".spec.tolerations[1].key"],
    ),
    (
        "finalizers are a set",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, finalizers: [a/x, b/y]}",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, finalizers: [b/y, other/z, a/x]}",
        &[],
    ),
    (
        "a custom resource's named list items match by name",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {parts: [{name: a, size: 1}, {name: b, size: 2}]}",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {parts: [{name: b, size: 2}, {name: a, size: 1}]}",
        &[],
    ),
];

/// Removals: (name, desired, live with managedFields, drift expected for the agent's manager).
const REMOVALS: &[(&str, &str, &str, &[&str])] = &[
    (
        "a label and an env var removed from Git, owned by the agent",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: 'x:1', env: [{name: KEEP, value: '1'}]}]",
        r#"{"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "api", "scaled-by": "ops"},
              "managedFields": [
                {"manager": "bosun-agent", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:name": {}, "f:image": {},
                     "f:env": {"k:{\"name\":\"KEEP\"}": {".": {}, "f:name": {}, "f:value": {}}, "k:{\"name\":\"DEBUG\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}}}}},
                {"manager": "kubectl-label", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:scaled-by": {}}}}}]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent",
              "env": [{"name": "KEEP", "value": "1"}, {"name": "DEBUG", "value": "true"}]}]}}}}"#,
        &[".metadata.labels.tier", ".spec.template.spec.containers[a].env[DEBUG]"],
    ),
    (
        "replicas owned by an autoscaler are not drift",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: 'x:1'}]}}}",
        r#"{"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [
              {"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
              {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 7, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}"#,
        &[],
    ),
    (
        "a whole container removed from Git",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'x:1'}]}",
        r#"{"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "managedFields": [
              {"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}, "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}]},
            "spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "sidecar", "image": "s:1"}]}}"#,
        &[".spec.containers[sidecar]"],
    ),
    (
        "a port removed from a Service (keys by port and protocol)",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}",
        r#"{"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "managedFields": [
              {"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:spec": {"f:ports": {
                "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}, "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}}}]},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "protocol": "TCP", "targetPort": 443}]}}"#,
        &[".spec.ports[443/TCP]"],
    ),
    (
        "a finalizer removed from a set",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, finalizers: [a/x]}",
        r#"{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": ["a/x", "b/y", "other/z"], "managedFields": [
              {"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:finalizers": {"v:\"a/x\"": {}, "v:\"b/y\"": {}}}}}]}}"#,
        &[".metadata.finalizers[b/y]"],
    ),
];

#[test]
fn normalisation_fixtures() {
    for (name, desired, live, want) in CASES {
        let d: serde_json::Value = serde_saphyr::from_str(desired).unwrap_or_else(|e| panic!("{name}: desired: {e}"));
        let l: serde_json::Value = serde_saphyr::from_str(live).unwrap_or_else(|e| panic!("{name}: live: {e}"));
        assert_eq!(drifted_fields(&d, &l), *want, "{name}");
    }
}

#[test]
fn removal_fixtures() {
    for (name, desired, live, want) in REMOVALS {
        let d: serde_json::Value = serde_saphyr::from_str(desired).unwrap_or_else(|e| panic!("{name}: desired: {e}"));
        let l: serde_json::Value = serde_json::from_str(live).unwrap_or_else(|e| panic!("{name}: live: {e}"));
        let found: Vec<String> =
            drift(&d, &l, Options { ignore: &[], manager: Some("bosun-agent") }).into_iter().map(|x| x.path).collect();
        assert_eq!(found, *want, "{name}");
        // A removal is not seen without the manager's ownership.
        let other: Vec<String> =
            drift(&d, &l, Options { ignore: &[], manager: Some("someone-else") }).into_iter().map(|x| x.path).collect();
        assert!(other.is_empty(), "{name}: {other:?}");
    }
}
