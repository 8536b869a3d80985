//! What the agent tells Kubernetes and Prometheus about itself, on a port of its own
//! (`--http-addr`): `GET /healthz` (the process answers), `GET /readyz` (joined; connected to
//! the control plane or serving the desired state it kept on disk; every watch it needs has
//! listed) and `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    /// `in_sync` (nothing to do), `acted` (actions ran), `waiting` (could not start: bundle or
    /// cache not ready), `error` (state could not be written).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `apply`, `create`, `replace` or `delete`.
    pub action: String,
    /// `sync` (an operation), `heal` (drift between operations), `prune`, `hook`, `cascade`.
    pub reason: String,
    pub kind: String,
    /// `ok` or `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppState {
    pub sync: String,
    pub health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// Every metric the agent exports (prefix `bosun_agent_`).
pub struct Metrics {
    registry: Registry,
    pub passes: Family<PassLabels, Counter>,
    pub pass_duration: Histogram,
    pub actions: Family<ActionLabels, Counter>,
    pub watch_restarts: Family<KindLabel, Counter>,
    pub connected: Gauge,
    pub last_report: Gauge,
    /// When the agent's client certificate expires (Unix seconds).
    pub certificate_expiry: Gauge,
    pub applications: Family<AppState, Gauge>,
    pub bundles: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bosun_agent");
        let m = Self {
            registry: Registry::default(),
            passes: Family::default(),
            pass_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            actions: Family::default(),
            watch_restarts: Family::default(),
            connected: Gauge::default(),
            last_report: Gauge::default(),
            certificate_expiry: Gauge::default(),
            applications: Family::default(),
            bundles: Gauge::default(),
        };
        registry.register("passes", "Passes over an Application by result", m.passes.clone());
        registry.register_with_unit(
            "pass_duration",
            "How long one pass over an Application took, deciding and acting",
            prometheus_client::registry::Unit::Seconds,
            m.pass_duration.clone(),
        );
        registry.register("actions", "Writes to the cluster by action, reason, kind and outcome", m.actions.clone());
        registry.register(
            "watch_restarts",
            "Watches of managed kinds that listed again after the first time",
            m.watch_restarts.clone(),
        );
        registry.register("connected", "1 while the link to the control plane is up", m.connected.clone());
        registry.register(
            "last_report_timestamp_seconds",
            "When a status report was last sent to the control plane (Unix seconds; age = time() - this)",
            m.last_report.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the agent's client certificate expires (Unix seconds); it renews at two thirds of its life",
            m.certificate_expiry.clone(),
        );
        registry.register("applications", "Applications by sync and health status", m.applications.clone());
        registry.register("bundles_cached", "Bundles kept in the state directory", m.bundles.clone());
        let build: Family<BuildLabels, Gauge> = Family::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("build_info", "The agent's version", build);
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Counts one write to the cluster.
    pub fn action(&self, action: &str, reason: &str, kind: &str, ok: bool) {
        let labels = ActionLabels {
            action: action.into(),
            reason: reason.into(),
            kind: kind.into(),
            outcome: if ok { "ok" } else { "failed" }.into(),
        };
        self.actions.get_or_create(&labels).inc();
    }

    pub fn pass(&self, result: &str, seconds: f64) {
        self.passes.get_or_create(&PassLabels { result: result.into() }).inc();
        self.pass_duration.observe(seconds);
    }

    /// Sets the gauges read from the agent's state, then encodes everything.
    fn encode(&self, applications: &BTreeMap<(String, String), i64>, bundles: i64) -> String {
        self.applications.clear();
        for ((sync, health), n) in applications {
            self.applications.get_or_create(&AppState { sync: sync.clone(), health: health.clone() }).set(*n);
        }
        self.bundles.set(bundles);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What readiness depends on, set by the parts that know.
#[derive(Default)]
pub struct Readiness {
    /// The agent has an identity (joined, or loaded from its state directory).
    pub joined: AtomicBool,
    /// The link to the control plane is up.
    pub connected: AtomicBool,
}

/// What the endpoints read from the running agent.
pub trait Observed: Send + Sync + 'static {
    /// Kinds whose watch has not listed yet (in words).
    fn unsynced(&self) -> Vec<String>;
    /// Applications by (sync, health).
    fn applications(&self) -> BTreeMap<(String, String), i64>;
    /// Bundles kept on disk.
    fn bundles(&self) -> i64;
    /// Whether it holds a desired state (received, or kept on disk from before a restart):
    /// then it enforces it without the control plane.
    fn has_desired(&self) -> bool;
}

/// Why the agent is not ready (`None`: ready).
pub fn not_ready(r: &Readiness, has_desired: bool, unsynced: &[String]) -> Option<String> {
    let mut why = Vec::new();
    if !r.joined.load(Ordering::Acquire) {
        why.push("not joined yet".to_string());
    }
    if !r.connected.load(Ordering::Acquire) && !has_desired {
        why.push("not connected to the control plane and no desired state on disk".to_string());
    }
    if !unsynced.is_empty() {
        why.push(format!("watches still listing: {}", unsynced.join(", ")));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    observed: Arc<std::sync::OnceLock<Arc<dyn Observed>>>,
}

/// Serves the endpoints on `addr` until the task is dropped. `observed` is filled in once the
/// agent has started (until then: alive, not ready).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    observed: Arc<std::sync::OnceLock<Arc<dyn Observed>>>,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Endpoints { metrics, readiness, observed });
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding --http-addr {addr}: {e}"))?;
    let _ = bound.send(listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn readyz(State(e): State<Endpoints>) -> (StatusCode, String) {
    let unsynced = e.observed.get().map(|o| o.unsynced()).unwrap_or_default();
    let has_desired = e.observed.get().is_some_and(|o| o.has_desired());
    let started = e.observed.get().is_some();
    match not_ready(&e.readiness, has_desired, &unsynced) {
        None if started => (StatusCode::OK, "ready\n".into()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn metrics_text(State(e): State<Endpoints>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let (apps, bundles) = match e.observed.get() {
        Some(o) => (o.applications(), o.bundles()),
        None => (BTreeMap::new(), 0),
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        e.metrics.encode(&apps, bundles),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_says_what_is_missing() {
        let r = Readiness::default();
        let why = not_ready(&r, false, &["apps/v1/Deployment".into()]).unwrap();
        assert!(why.contains("not joined") && why.contains("no desired state") && why.contains("Deployment"), "{why}");
        r.joined.store(true, Ordering::Release);
        assert_eq!(not_ready(&r, true, &[]), None, "serving the desired state it holds is ready");
        r.connected.store(true, Ordering::Release);
        assert_eq!(not_ready(&r, false, &[]), None);
        assert!(not_ready(&r, true, &["v1/ConfigMap".into()]).is_some());
    }

    #[test]
    fn metrics_are_exported_with_units_and_zeros() {
        let m = Metrics::default();
        m.pass("acted", 0.2);
        m.action("apply", "sync", "Deployment", true);
        let text = m.encode(&[(("Synced".to_string(), "Healthy".to_string()), 2)].into(), 3);
        for want in [
            "bosun_agent_passes_total{result=\"acted\"} 1",
            "bosun_agent_pass_duration_seconds_bucket",
            "bosun_agent_actions_total{action=\"apply\",reason=\"sync\",kind=\"Deployment\",outcome=\"ok\"} 1",
            "bosun_agent_connected 0",
            "bosun_agent_applications{sync=\"Synced\",health=\"Healthy\"} 2",
            "bosun_agent_bundles_cached 3",
            "bosun_agent_build_info{version=",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
    }
}
