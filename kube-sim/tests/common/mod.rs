//! Helpers shared by kube-sim's conformance tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::{ControllerConfig, SimCluster, SimConfig};

/// Simulated controllers tuned for tests: quick rollouts, a short progress deadline.
pub fn fast_config() -> SimConfig {
    SimConfig {
        controllers: ControllerConfig {
            rollout_delay: Duration::from_millis(100),
            progress_deadline: Duration::from_millis(600),
            ..ControllerConfig::default()
        },
        bookmark_interval: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

pub async fn sim() -> SimCluster {
    SimCluster::start(fast_config()).await.expect("start kube-sim")
}

/// An unmodified `kube::Client`, configured from the cluster's kubeconfig.
pub async fn client(c: &SimCluster) -> kube::Client {
    client_from_kubeconfig(&c.kubeconfig(false)).await
}

pub async fn client_from_kubeconfig(yaml: &str) -> kube::Client {
    let kc = Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

/// Polls `f` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `kube::Error::Api` status code of a failed call.
pub fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
