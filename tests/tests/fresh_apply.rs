//! A freshly applied object never shows as OutOfSync: manifests of every common kind are
//! applied to kube-sim (which sets a real server's defaults and bookkeeping) and compared.

use bosun_core::{diff, manifest, tracking};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
        env: [{name: MODE, value: prod}, {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        readinessProbe: {httpGet: {path: /healthz, port: 80}}
        volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
      volumes: [{name: cfg, configMap: {name: settings}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: 'postgres:16'}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: 'migrate:1'}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: r, image: 'report:1'}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
"#;

#[tokio::test]
async fn freshly_applied_objects_are_in_sync() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = kube_sim::SimCluster::start(Default::default()).await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let objects = manifest::parse_file("fresh.yaml", MANIFESTS.as_bytes()).unwrap();
    assert!(objects.len() >= 13);
    for mut obj in objects {
        tracking::mark(&mut obj, "shop");
        let av = obj["apiVersion"].as_str().unwrap().to_string();
        let (g, v) = av.split_once('/').unwrap_or(("", &av));
        let gvk = GroupVersionKind::gvk(g, v, obj["kind"].as_str().unwrap());
        let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => {
                Api::namespaced_with(client.clone(), obj["metadata"]["namespace"].as_str().unwrap(), &ar)
            }
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let live = api.patch(&name, &PatchParams::apply("bosun-agent").force(), &Patch::Apply(&obj)).await.unwrap();
        let live = serde_json::to_value(live).unwrap();
        assert!(
            diff::drifted_fields(&obj, &live).is_empty(),
            "{} {name}: {:?}",
            gvk.kind,
            diff::drifted_fields(&obj, &live)
        );
        // And again once the simulated controllers have written status and bound volumes.
        let again = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
        assert!(!diff::needs_apply(&obj, Some(&again), &[]), "{} {name}", gvk.kind);
    }
}
