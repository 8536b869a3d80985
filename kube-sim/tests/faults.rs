//! Fault injection, switched at run time from tests (in-process and over HTTP).

mod common;

use std::time::{Duration, Instant};

use common::{api_code, client, sim};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube_sim::{ErrorRule, FaultSettings};
use serde_json::json;

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

#[tokio::test]
async fn error_rules_per_verb() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    let pp = PatchParams::apply("t");
    c.faults().add_error(ErrorRule { verb: Some("patch".into()), code: 500, rate: 1.0, count: Some(1) });
    assert_eq!(api_code(api.patch("a", &pp, &Patch::Apply(cm("a"))).await), (500, "InternalError".into()));
    api.patch("a", &pp, &Patch::Apply(cm("a"))).await.expect("the rule is spent after one failure");

    // kube::Client retries 429 (honouring Retry-After) on its own: the write lands.
    c.faults().add_error(ErrorRule { verb: Some("patch".into()), code: 429, rate: 1.0, count: Some(2) });
    api.patch(
        "a",
        &pp,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "2"}})),
    )
    .await
    .unwrap();
    assert!(c.faults().settings().errors.is_empty(), "both injected 429s were served");
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["a"], "2");

    c.faults().add_error(ErrorRule { verb: Some("get".into()), code: 500, rate: 0.5, count: None });
    let mut failed = 0;
    for _ in 0..10 {
        if api.get("a").await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 5, "a rate of 0.5 fails exactly every other request");
    api.patch("a", &pp, &Patch::Apply(cm("a"))).await.expect("other verbs are unaffected");
    c.faults().clear();

    c.faults().add_error(ErrorRule { verb: None, code: 409, rate: 1.0, count: Some(1) });
    assert_eq!(api_code(api.get("a").await).0, 409);
}

#[tokio::test]
async fn latency_is_added_to_requests() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    c.faults().set_latency(Duration::from_millis(150));
    let t = Instant::now();
    api.list(&Default::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150), "added latency is never skipped");
}

#[tokio::test]
async fn faults_switch_over_http() {
    let c = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
    let settings = FaultSettings {
        errors: vec![ErrorRule { verb: Some("list".into()), code: 500, rate: 1.0, count: None }],
        ..Default::default()
    };
    let kube_client = client(&c).await;
    let put = http::Request::put("/_sim/faults")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&settings).unwrap())
        .unwrap();
    kube_client.request_text(put).await.unwrap();
    assert_eq!(c.faults().settings(), settings);
    assert_eq!(api_code(api.list(&Default::default()).await).0, 500);
    let del = http::Request::delete("/_sim/faults").body(vec![]).unwrap();
    kube_client.request_text(del).await.unwrap();
    api.list(&Default::default()).await.unwrap();
}
