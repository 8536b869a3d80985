//! Normalisation fixtures: a desired manifest, the live object as a server returns it, and the
//! drift expected (none, for every server-side trap a real cluster sets).

use bosun_core::diff::drifted_fields;

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
];

#[test]
fn normalisation_fixtures() {
    for (name, desired, live, want) in CASES {
        let d: serde_json::Value = serde_saphyr::from_str(desired).unwrap_or_else(|e| panic!("{name}: desired: {e}"));
        let l: serde_json::Value = serde_saphyr::from_str(live).unwrap_or_else(|e| panic!("{name}: live: {e}"));
        assert_eq!(drifted_fields(&d, &l), *want, "{name}");
    }
}
