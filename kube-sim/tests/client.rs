//! Conformance through an unmodified `kube::Client`: typed and dynamic CRUD, patches,
//! selectors, pagination, server-side apply, bookkeeping, finalizers, garbage collection.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{api_code, client, eventually, sim};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn deployment(replicas: i32, image: &str, env: bool) -> serde_json::Value {
    let mut c = json!({"name": "web", "image": image, "ports": [{"containerPort": 80}]});
    if env {
        c["env"] = json!([{"name": "MODE", "value": "prod"}]);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}}}})
}

#[tokio::test]
async fn typed_crud_patches_and_optimistic_concurrency() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    let created = api.create(&PostParams::default(), &cm("a", &[("app", "x")])).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(api_code(api.create(&PostParams::default(), &cm("a", &[])).await), (409, "AlreadyExists".into()));

    // A replace carrying a stale resourceVersion is refused.
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("k".into(), "v2".into())]));
    api.replace("a", &PostParams::default(), &fresh).await.unwrap();
    stale.data = Some(BTreeMap::from([("k".into(), "lost".into())]));
    assert_eq!(api_code(api.replace("a", &PostParams::default(), &stale).await), (409, "Conflict".into()));

    let pp = PatchParams::default();
    api.patch("a", &pp, &Patch::Merge(json!({"data": {"m": "1"}}))).await.unwrap();
    let jp: json_patch_type::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "2"}])).unwrap();
    api.patch("a", &pp, &Patch::<()>::Json(jp)).await.unwrap();
    api.patch("a", &pp, &Patch::Strategic(json!({"data": {"s": "3", "k": null}}))).await.unwrap();
    let got = api.get("a").await.unwrap();
    assert_eq!(
        got.data.unwrap(),
        BTreeMap::from([("j".into(), "2".into()), ("m".into(), "1".into()), ("s".into(), "3".into())])
    );

    let gone = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_right(), "an object without finalizers is deleted at once");
    assert_eq!(api_code(api.get("a").await), (404, "NotFound".into()));
    assert_eq!(api_code(api.delete("a", &DeleteParams::default()).await), (404, "NotFound".into()));
}

// kube-core builds `Patch::Json` from json-patch 4's type.
use json_patch as json_patch_type;

#[tokio::test]
async fn namespaces_and_cluster_scope() {
    let c = sim().await;
    let cl = client(&c).await;
    let missing: Api<ConfigMap> = Api::namespaced(cl.clone(), "nope");
    assert_eq!(api_code(missing.create(&PostParams::default(), &cm("a", &[])).await), (404, "NotFound".into()));

    // The namespace of a cluster-scoped object is dropped, as a real server does.
    let roles: Api<ClusterRole> = Api::all(cl.clone());
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "reader", "namespace": "default"}, "rules": []})).unwrap();
    let created = roles.create(&PostParams::default(), &role).await.unwrap();
    assert_eq!(created.metadata.namespace, None);

    // Fresh namespaces get their label, their default ServiceAccount and root CA ConfigMap.
    let nss: Api<Namespace> = Api::all(cl.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let ns = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"], "team");
    let cms: Api<ConfigMap> = Api::namespaced(cl.clone(), "team");
    eventually("kube-root-ca.crt", Duration::from_secs(5), || async { cms.get_opt("kube-root-ca.crt").await.unwrap() })
        .await;

    // Deleting a namespace removes what it holds, then the namespace itself.
    cms.create(&PostParams::default(), &cm("x", &[])).await.unwrap();
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    eventually("x deleted with its namespace", Duration::from_secs(5), || async {
        cms.get_opt("x").await.unwrap().is_none().then_some(())
    })
    .await;
    let ns = nss.get("team").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"), "a namespace waits for its contents");
    assert_eq!(
        api_code(cms.create(&PostParams::default(), &cm("y", &[])).await).0,
        403,
        "no new content in a terminating namespace"
    );
    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    eventually("namespace gone", Duration::from_secs(5), || async {
        nss.get_opt("team").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(cms.get_opt("x").await.unwrap().is_none());
}

#[tokio::test]
async fn selectors_and_pagination() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    for (i, env) in ["dev", "prod", "prod", "staging", "dev"].iter().enumerate() {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[("env", env), ("bosun", "yes")])).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.into_iter().map(|c| c.metadata.name.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(names(api.list(&ListParams::default().labels("env=prod")).await.unwrap()), ["c1", "c2"]);
    assert_eq!(
        names(api.list(&ListParams::default().labels("env in (dev,staging)")).await.unwrap()),
        ["c0", "c3", "c4"]
    );
    assert_eq!(
        names(api.list(&ListParams::default().labels("env notin (dev),bosun")).await.unwrap()),
        ["c1", "c2", "c3"]
    );
    assert_eq!(names(api.list(&ListParams::default().labels("!bosun")).await.unwrap()), ["kube-root-ca.crt"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=c3")).await.unwrap()), ["c3"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.namespace!=default")).await.unwrap()).len(), 0);
    assert_eq!(api_code(api.list(&ListParams::default().labels("env in prod")).await).0, 400);

    // Pages of two, following continue tokens.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("bosun=yes").limit(2);
    loop {
        let page = api.list(&lp).await.unwrap();
        let token = page.metadata.continue_.clone();
        seen.extend(names(page));
        match token {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
}

#[tokio::test]
async fn server_side_apply_field_ownership() {
    let c = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&c).await, "default");
    let bosun = PatchParams::apply("bosun");
    api.patch("web", &bosun, &Patch::Apply(deployment(2, "nginx:1.27", true))).await.unwrap();

    // Server defaults are filled in, and are not owned by the applier.
    let d = api.get("web").await.unwrap();
    let spec = d.spec.clone();
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("RollingUpdate"));
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(container.termination_message_path.as_deref(), Some("/dev/termination-log"));
    let managers: Vec<_> = d
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect();
    assert!(managers.contains(&("bosun".into(), "Apply".into())), "{managers:?}");

    // A field the manager stops applying is removed.
    api.patch("web", &bosun, &Patch::Apply(deployment(2, "nginx:1.27", false))).await.unwrap();
    let d = api.get("web").await.unwrap();
    assert!(d.spec.template.spec.unwrap().containers[0].env.is_none(), "env removed with the manifest");

    // Another manager changes replicas: re-applying a different value conflicts unless forced.
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    let err = api.patch("web", &bosun, &Patch::Apply(deployment(2, "nginx:1.27", false))).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("expected API error") };
    assert_eq!(status.code, 409);
    assert!(status.message.contains(".spec.replicas"), "{}", status.message);
    // Applying the live value shares ownership without conflict.
    api.patch("web", &bosun, &Patch::Apply(deployment(5, "nginx:1.27", false))).await.unwrap();
    api.patch("web", &bosun.clone().force(), &Patch::Apply(deployment(3, "nginx:1.27", false))).await.unwrap();
    assert_eq!(api.get("web").await.unwrap().spec.replicas, Some(3));

    // dryRun=All answers with the result and stores nothing.
    let rv = api.get("web").await.unwrap().metadata.resource_version;
    let dry = api
        .patch("web", &PatchParams::apply("bosun").force().dry_run(), &Patch::Apply(deployment(9, "nginx:1.27", false)))
        .await
        .unwrap();
    assert_eq!(dry.spec.replicas, Some(9));
    let after = api.get("web").await.unwrap();
    assert_eq!((after.spec.replicas, after.metadata.resource_version), (Some(3), rv));

    // Re-applying the same configuration writes nothing.
    let before = api.get("web").await.unwrap().metadata.resource_version;
    api.patch("web", &bosun.clone().force(), &Patch::Apply(deployment(3, "nginx:1.27", false))).await.unwrap();
    assert_eq!(
        api.get("web").await.unwrap().metadata.resource_version,
        before,
        "a no-op apply does not bump resourceVersion"
    );

    // Apply without a field manager is a bad request.
    let (code, _) = api_code(api.patch("web", &PatchParams::default(), &Patch::Apply(deployment(3, "x", false))).await);
    assert_eq!(code, 400);
}

#[tokio::test]
async fn generation_status_subresource_and_service_defaults() {
    let c = sim().await;
    let cl = client(&c).await;
    let api: Api<Deployment> = Api::namespaced(cl.clone(), "default");
    api.patch("web", &PatchParams::apply("t"), &Patch::Apply(deployment(1, "nginx:1", false))).await.unwrap();
    let g1 = api.get("web").await.unwrap().metadata.generation;
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(api.get("web").await.unwrap().metadata.generation, g1, "metadata changes keep the generation");
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
    assert_eq!(api.get("web").await.unwrap().metadata.generation, g1.map(|g| g + 1));

    // The main resource ignores status; the status subresource changes only status.
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 42}}))).await.unwrap();
    assert_ne!(api.get("web").await.unwrap().status.and_then(|s| s.replicas), Some(42));
    api.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"observedGeneration": 99}, "spec": {"replicas": 7}})),
    )
    .await
    .unwrap();
    let d = api.get("web").await.unwrap();
    assert_eq!(d.status.unwrap().observed_generation, Some(99));
    assert_eq!(d.spec.replicas, Some(4));

    // Immutable selector.
    let (code, reason) = api_code(api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}}))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    let svcs: Api<Service> = Api::namespaced(cl.clone(), "default");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let s = svcs.patch("web", &PatchParams::apply("t"), &Patch::Apply(svc)).await.unwrap().spec.unwrap();
    assert!(s.cluster_ip.unwrap().starts_with("10.96."));
    let port = &s.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(port.node_port.unwrap() >= 30000);
    assert_eq!(s.session_affinity.as_deref(), Some("None"));

    // Secret stringData is folded into base64 data.
    let secrets: Api<Secret> = Api::namespaced(cl, "default");
    let sec =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
    let s = secrets.patch("s", &PatchParams::apply("t"), &Patch::Apply(sec)).await.unwrap();
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(s.data.unwrap()["password"].0, b"hunter2");
    assert!(s.string_data.is_none());
}

#[tokio::test]
async fn finalizers_and_garbage_collection() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    assert!(pending.is_left(), "deletion waits for finalizers");
    assert!(api.get("held").await.unwrap().metadata.deletion_timestamp.is_some());
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());

    let owned = |name: &str, owner: &ConfigMap| {
        let mut o = cm(name, &[]);
        o.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: owner.metadata.name.clone().unwrap(),
            uid: owner.metadata.uid.clone().unwrap(),
            block_owner_deletion: Some(true),
            ..Default::default()
        }]);
        o
    };
    // Background: dependents follow their owner.
    let owner = api.create(&PostParams::default(), &cm("owner", &[])).await.unwrap();
    api.create(&PostParams::default(), &owned("dep", &owner)).await.unwrap();
    api.delete("owner", &DeleteParams::background()).await.unwrap();
    eventually("dependent collected", Duration::from_secs(5), || async {
        api.get_opt("dep").await.unwrap().is_none().then_some(())
    })
    .await;

    // Foreground: the owner stays (with deletionTimestamp) until its dependents are gone.
    let owner = api.create(&PostParams::default(), &cm("fg", &[])).await.unwrap();
    let mut dep = owned("fg-dep", &owner);
    dep.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let o = api.get("fg").await.unwrap();
    assert!(
        o.metadata.deletion_timestamp.is_some()
            && o.metadata.finalizers.unwrap().contains(&"foregroundDeletion".to_string())
    );
    eventually("dependent marked", Duration::from_secs(5), || async {
        api.get("fg-dep").await.unwrap().metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    api.patch("fg-dep", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    eventually("owner gone", Duration::from_secs(5), || async {
        api.get_opt("fg").await.unwrap().is_none().then_some(())
    })
    .await;

    // Orphan: dependents stay and lose their owner reference.
    let owner = api.create(&PostParams::default(), &cm("or", &[])).await.unwrap();
    api.create(&PostParams::default(), &owned("or-dep", &owner)).await.unwrap();
    api.delete("or", &DeleteParams::orphan()).await.unwrap();
    let d = api.get("or-dep").await.unwrap();
    assert!(d.metadata.owner_references.is_none_or(|r| r.is_empty()));
}

#[tokio::test]
async fn dynamic_objects_and_crd_discovery() {
    let c = sim().await;
    let cl = client(&c).await;
    let discovery = Discovery::new(cl.clone()).run().await.unwrap();
    let (ar, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")).expect("deployments discovered");
    assert_eq!(ar.plural, "deployments");
    assert!(matches!(caps.scope, kube::discovery::Scope::Namespaced));
    for (g, v, k) in [
        ("", "v1", "ConfigMap"),
        ("batch", "v1", "Job"),
        ("networking.k8s.io", "v1", "Ingress"),
        ("autoscaling", "v2", "HorizontalPodAutoscaler"),
        ("apiregistration.k8s.io", "v1", "APIService"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("policy", "v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ] {
        assert!(discovery.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(), "{k} discovered");
    }
    let widget = GroupVersionKind::gvk("example.com", "v1", "Widget");
    assert!(discovery.resolve_gvk(&widget).is_none());

    let crds: Api<CustomResourceDefinition> = Api::all(cl.clone());
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                               "subresources": {"status": {}}}]}});
    crds.patch("widgets.example.com", &PatchParams::apply("t"), &Patch::Apply(crd)).await.unwrap();
    eventually("CRD established", Duration::from_secs(5), || async {
        let crd = crds.get("widgets.example.com").await.unwrap();
        crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
    })
    .await;

    let discovery = Discovery::new(cl.clone()).run().await.unwrap();
    let (ar, _) = discovery.resolve_gvk(&widget).expect("widgets discovered after the CRD is created");
    let widgets: Api<DynamicObject> = Api::namespaced_with(cl.clone(), "default", &ar);
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3, "items": ["a", "b"]}});
    widgets.patch("w1", &PatchParams::apply("t"), &Patch::Apply(&w)).await.unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    // Lists in custom resources are atomic: a shorter list replaces the longer one.
    let w2 = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3, "items": ["c"]}});
    widgets.patch("w1", &PatchParams::apply("t"), &Patch::Apply(&w2)).await.unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["items"], json!(["c"]));

    crds.delete("widgets.example.com", &DeleteParams::default()).await.unwrap();
    let discovery = Discovery::new(cl.clone()).run().await.unwrap();
    assert!(discovery.resolve_gvk(&widget).is_none(), "widgets gone with their CRD");
    let ar = ApiResource::from_gvk_with_plural(&widget, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(cl, "default", &ar);
    assert_eq!(api_code(widgets.get("w1").await).0, 404);
}

#[tokio::test]
async fn bad_requests_get_status_errors() {
    let c = sim().await;
    let http = reqwest_like::Client::new(c.url());
    for (method, path, ct, body, want) in [
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", "{not json", 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", "[1,2]", 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf", "k8s\0", 415),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"kind":"Secret","metadata":{"name":"x"}}"#,
            400,
        ),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", r#"{"metadata":{}}"#, 422),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", "text/plain", "{}", 415),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/nope"}]"#,
            422,
        ),
        ("GET", "/apis/nope.example.com/v1/things", "", "", 404),
        ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b", "", "", 400),
        ("GET", "/api/v1/namespaces/default/configmaps?continue=%%%", "", "", 400),
        ("DELETE", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt?propagationPolicy=Sideways", "", "", 422),
        ("GET", "/api/v1/nodes/kube-sim-node-0/exec", "", "", 404),
    ] {
        let (code, body) = http.send(method, path, ct, body).await;
        assert_eq!(code, want, "{method} {path}: {body}");
        let status: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: not a Status: {body}"));
        assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(want as u64)), "{body}");
    }
}

/// A tiny raw HTTP client for requests `kube::Client` will not send.
mod reqwest_like {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client as HClient;
    use hyper_util::rt::TokioExecutor;

    pub struct Client {
        base: String,
        inner: HClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    }

    impl Client {
        pub fn new(base: &str) -> Self {
            Self { base: base.to_string(), inner: HClient::builder(TokioExecutor::new()).build_http() }
        }

        pub async fn send(&self, method: &str, path: &str, ct: &str, body: &str) -> (u16, String) {
            let mut req = hyper::Request::builder().method(method).uri(format!("{}{path}", self.base));
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
            let resp = self.inner.request(req).await.unwrap();
            let code = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (code, String::from_utf8_lossy(&body).into_owned())
        }
    }
}
