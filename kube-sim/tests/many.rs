//! Many simulated clusters in one process, each with its own URL and store.

mod common;

use common::{client, fast_config};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube_sim::{ControllerConfig, SimCluster, SimConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clusters_are_isolated() {
    let mut clusters = Vec::new();
    for i in 0..200 {
        let cfg = SimConfig {
            name: format!("c{i}"),
            controllers: ControllerConfig { simulate_pods: false, ..fast_config().controllers },
            ..fast_config()
        };
        clusters.push(SimCluster::start(cfg).await.unwrap());
    }
    let urls: std::collections::HashSet<_> = clusters.iter().map(|c| c.url().to_string()).collect();
    assert_eq!(urls.len(), 200);
    for (i, c) in clusters.iter().enumerate().step_by(20) {
        let api: Api<ConfigMap> = Api::namespaced(client(c).await, "default");
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "who"}, "data": {"cluster": i.to_string()}});
        api.patch("who", &PatchParams::apply("t"), &Patch::Apply(m)).await.unwrap();
    }
    for (i, c) in clusters.iter().enumerate().step_by(10) {
        let api: Api<ConfigMap> = Api::namespaced(client(c).await, "default");
        let got = api.get_opt("who").await.unwrap().map(|m| m.data.unwrap()["cluster"].clone());
        assert_eq!(got, (i % 20 == 0).then(|| i.to_string()), "cluster {i}");
    }
}
