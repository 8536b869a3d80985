//! kube-sim: a simulated Kubernetes API server for Bosun's tests, demo and benchmarks.
//!
//! It is a **test double**, not a cluster: it speaks the Kubernetes REST API well enough for
//! an unmodified `kube::Client`, `kube_runtime::watcher` and `kubectl` (discovery, CRUD,
//! patches, server-side apply with managed fields, watches, garbage collection), plays the
//! controllers (workloads roll out, Jobs complete, LoadBalancers get an address), and injects
//! faults on demand. Many clusters run in one process, each with its own listener and store.
//! See the crate README for what it does not model.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = kube_sim::SimCluster::start(kube_sim::SimConfig::default()).await?;
//! println!("kubectl --server {} get ns", cluster.url());
//! # Ok(()) }
//! ```

pub mod canonical;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod fieldset;
pub mod patch;
pub mod path;
pub mod requests;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use controllers::ControllerConfig;
pub use faults::{ErrorRule, FaultSettings, Faults};
pub use store::Store;
pub use tls::SimPki;

use server::{ClusterState, ConnAuth};
use store::WriteOpts;

/// How to start one simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Cluster name (used in kubeconfig contexts and logs).
    pub name: String,
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Serve HTTPS with a generated CA; clients authenticate with the admin client
    /// certificate or a bearer token.
    pub tls: bool,
    /// Bearer tokens accepted over HTTPS (a random one is generated when empty).
    pub tokens: Vec<String>,
    pub controllers: ControllerConfig,
    /// Number of watch events kept for resuming watches; older resourceVersions get 410.
    pub history: usize,
    /// Interval of watch bookmarks for watches that allow them.
    pub bookmark_interval: Duration,
    /// Events buffered for slow watches; a watch further behind gets 410 and re-lists.
    pub watch_buffer: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            name: "kube-sim".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            tokens: vec![],
            controllers: ControllerConfig::default(),
            history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            watch_buffer: 512,
        }
    }
}

/// A running simulated cluster. Dropping it stops its server and controllers.
pub struct SimCluster {
    name: String,
    url: String,
    store: Arc<Store>,
    faults: Arc<Faults>,
    requests: Arc<requests::Requests>,
    pki: Option<SimPki>,
    token: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Objects every fresh cluster has, as a real one does after bootstrap.
fn bootstrap(store: &Store) {
    let opts = WriteOpts { manager: "kube-apiserver".into(), ..Default::default() };
    let ns_rt = resources::BUILTIN.iter().find(|r| r.kind == "Namespace").expect("built in");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = store.create(
            ns_rt,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            &opts,
        );
    }
    let svc_rt = resources::BUILTIN.iter().find(|r| r.kind == "Service").expect("built in");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
        "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": defaults::Allocator::api_ip(), "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}});
    let _ = store.create(svc_rt, Some("default"), svc, &opts);
    let sc_rt = resources::BUILTIN.iter().find(|r| r.kind == "StorageClass").expect("built in");
    let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "kube-sim/hostpath",
        "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"});
    let _ = store.create(sc_rt, None, sc, &opts);
}

impl SimCluster {
    /// Starts a cluster: binds its listener, seeds its store, runs its controllers.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(cfg.bind)
            .await
            .with_context(|| format!("binding kube-sim {} to {}", cfg.name, cfg.bind))?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store::new(cfg.history, cfg.watch_buffer));
        let faults = Arc::new(Faults::default());
        let requests = Arc::new(requests::Requests::default());
        bootstrap(&store);
        let (pki, token) = if cfg.tls {
            let pki = SimPki::generate().context("generating kube-sim certificates")?;
            let token = cfg.tokens.first().cloned().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            (Some(pki), Some(token))
        } else {
            (None, None)
        };
        let mut tokens = cfg.tokens.clone();
        if let Some(t) = &token
            && !tokens.contains(t)
        {
            tokens.push(t.clone());
        }
        let scheme = if cfg.tls { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let state = Arc::new(ClusterState {
            name: cfg.name.clone(),
            store: store.clone(),
            faults: faults.clone(),
            requests: requests.clone(),
            auth: cfg.tls.then_some(tokens),
            bookmark_interval: cfg.bookmark_interval,
            address: addr.to_string(),
        });
        let router =
            Router::new().fallback(server::handle).layer(DefaultBodyLimit::max(3 * 1024 * 1024)).with_state(state);
        let tls_config = match &pki {
            Some(p) => Some(p.server_config()?),
            None => None,
        };
        let serve = tokio::spawn(accept_loop(listener, router, tls_config));
        let ctrl = tokio::spawn(controllers::run(store.clone(), faults.clone(), cfg.controllers.clone()));
        Ok(Self { name: cfg.name, url, store, faults, requests, pki, token, tasks: vec![serve, ctrl] })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Fault injection, switchable at run time.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The requests this cluster has answered, by verb and resource.
    pub fn requests(&self) -> &Arc<requests::Requests> {
        &self.requests
    }

    pub fn pki(&self) -> Option<&SimPki> {
        self.pki.as_ref()
    }

    /// The bearer token accepted over HTTPS.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A kubeconfig for this cluster. Over HTTPS it carries the CA and the admin client
    /// certificate (or, with `use_token`, the bearer token instead).
    pub fn kubeconfig(&self, use_token: bool) -> String {
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        };
        let (cluster_extra, user) = match (&self.pki, &self.token) {
            (Some(p), Some(t)) => {
                let user = if use_token {
                    format!("    token: {t}\n")
                } else {
                    format!(
                        "    client-certificate-data: {}\n    client-key-data: {}\n",
                        b64(&p.client_cert_pem),
                        b64(&p.client_key_pem)
                    )
                };
                (format!("    certificate-authority-data: {}\n", b64(&p.ca_pem)), user)
            }
            _ => (String::new(), "    {}\n".to_string()),
        };
        let user = if user.trim() == "{}" { "  user: {}\n".to_string() } else { format!("  user:\n{user}") };
        let n = &self.name;
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {n}\n  cluster:\n    server: {url}\n{cluster_extra}contexts:\n- name: {n}\n  context:\n    cluster: {n}\n    user: {n}\n    namespace: default\ncurrent-context: {n}\nusers:\n- name: {n}\n{user}",
            url = self.url
        )
    }
}

async fn accept_loop(listener: TcpListener, router: Router, tls: Option<Arc<rustls::ServerConfig>>) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = JoinSet::new();
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "kube-sim accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acc) => {
                    let Ok(tls) = acc.accept(sock).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    let svc = TowerToHyperService::new(router.layer(Extension(ConnAuth { client_cert })));
                    let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc).await;
                }
                None => {
                    let svc = TowerToHyperService::new(router.layer(Extension(ConnAuth::default())));
                    let _ = builder.serve_connection_with_upgrades(TokioIo::new(sock), svc).await;
                }
            }
        });
    }
}
