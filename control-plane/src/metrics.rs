//! Prometheus metrics of the control plane and its probe endpoints, served on a listener of
//! their own (`--metrics-addr`, plain HTTP, read-only): `GET /metrics`, `GET /healthz`,
//! `GET /readyz` (and, added by the caller, `grpc.health.v1.Health` over h2c). Counters are
//! bumped where things happen (and exported at zero for every outcome they can take, so rates
//! and alerts work before the first event); gauges describing the model (clusters,
//! Applications by status, `app_info`, per-cluster connection) are computed from it at scrape
//! time, so they can never drift; the CA's expiry is set once at start.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Call {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppState {
    pub sync: String,
    pub health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterState {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertKind {
    /// `join`, `renewal` or `admin`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster: String,
}

/// One Application, as Argo CD's `argocd_app_info` describes one.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppInfo {
    pub name: String,
    /// Without credentials.
    pub repo: String,
    pub path: String,
    pub target_revision: String,
    /// A cluster name or `selector:<selector>`.
    pub destination: String,
    pub sync: String,
    pub health: String,
    pub autosync: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// Every metric the control plane exports.
pub struct Metrics {
    registry: Registry,
    pub status_reports: Counter,
    pub renders: Family<Outcome, Counter>,
    pub git_fetches: Family<Outcome, Counter>,
    pub webhooks: Family<Outcome, Counter>,
    pub admin_writes: Family<Call, Counter>,
    pub certificates_issued: Family<CertKind, Counter>,
    pub applications: Family<AppState, Gauge>,
    pub clusters: Family<ClusterState, Gauge>,
    pub cluster_connected: Family<ClusterLabel, Gauge>,
    pub app_info: Family<AppInfo, Gauge>,
    /// When the CA that signs agents' certificates expires (Unix seconds).
    pub ca_expiry: Gauge,
    pub render_duration: Histogram,
    pub git_fetch_duration: Histogram,
    pub report_duration: Histogram,
}

/// Buckets from 1 ms to about 16 s (renders and fetches are slower than reports).
fn seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bosun");
        let m = Self {
            registry: Registry::default(),
            status_reports: Counter::default(),
            renders: Family::default(),
            git_fetches: Family::default(),
            webhooks: Family::default(),
            admin_writes: Family::default(),
            certificates_issued: Family::default(),
            applications: Family::default(),
            clusters: Family::default(),
            cluster_connected: Family::default(),
            app_info: Family::default(),
            ca_expiry: Gauge::default(),
            render_duration: Histogram::new(seconds_buckets()),
            git_fetch_duration: Histogram::new(seconds_buckets()),
            report_duration: Histogram::new(seconds_buckets()),
        };
        // Every outcome a counter can take, at zero until it happens.
        for o in ["ok", "error", "cached", "cached_error"] {
            let _ = m.renders.get_or_create(&Self::outcome(o));
        }
        for o in ["ok", "error"] {
            let _ = m.git_fetches.get_or_create(&Self::outcome(o));
        }
        for o in ["unauthorized", "bad_request", "too_large", "disabled", "ignored", "refreshing"] {
            let _ = m.webhooks.get_or_create(&Self::outcome(o));
        }
        for k in ["join", "renewal", "admin"] {
            let _ = m.certificates_issued.get_or_create(&CertKind { kind: k.into() });
        }
        registry.register("status_reports", "Status reports received from agents", m.status_reports.clone());
        registry.register("renders", "Bundle renders by outcome (ok, error, cached)", m.renders.clone());
        registry.register("git_fetches", "Git fetches by outcome", m.git_fetches.clone());
        registry.register("webhook_requests", "Webhook requests by outcome", m.webhooks.clone());
        registry.register("admin_writes", "Mutating admin API calls by action and outcome", m.admin_writes.clone());
        registry.register(
            "certificates_issued",
            "Certificates issued by kind (join, renewal, admin)",
            m.certificates_issued.clone(),
        );
        registry.register(
            "applications",
            "Application × cluster pairs by sync and health status",
            m.applications.clone(),
        );
        registry.register("clusters", "Clusters by state (registered, joined, connected, revoked)", m.clusters.clone());
        registry.register("cluster_connected", "1 while the cluster's agent is connected", m.cluster_connected.clone());
        registry.register(
            "app_info",
            "One series per Application with its source, destination and status",
            m.app_info.clone(),
        );
        registry.register(
            "ca_expiry_timestamp_seconds",
            "When the CA that signs agents' and admins' certificates expires (Unix seconds)",
            m.ca_expiry.clone(),
        );
        let seconds = prometheus_client::registry::Unit::Seconds;
        registry.register_with_unit(
            "render_duration",
            "Renders of a path at a commit",
            seconds.clone(),
            m.render_duration.clone(),
        );
        registry.register_with_unit(
            "git_fetch_duration",
            "Git fetches of a repository",
            seconds.clone(),
            m.git_fetch_duration.clone(),
        );
        registry.register_with_unit(
            "report_duration",
            "Handling of one status report from an agent",
            seconds,
            m.report_duration.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("build_info", "The control plane's version", build);
        Self { registry, ..m }
    }
}

impl Metrics {
    pub fn outcome(label: &str) -> Outcome {
        Outcome { outcome: label.into() }
    }

    /// Counts a certificate issued (`join`, `renewal`, `admin`).
    pub fn certificate(&self, kind: &str) {
        self.certificates_issued.get_or_create(&CertKind { kind: kind.into() }).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The metrics and probes router: `GET /metrics`, `GET /healthz` (the process answers) and
/// `GET /readyz` (200 when the control plane can serve — store answering, CA valid, not
/// stopping — else 503 with the reason).
pub fn router(cp: Arc<crate::model::ControlPlane>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(scrape))
        .with_state(cp)
}

async fn ready(State(cp): State<Arc<crate::model::ControlPlane>>) -> Response {
    match cp.readiness().await {
        Ok(()) => (StatusCode::OK, "ok".to_string()).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn scrape(State(cp): State<Arc<crate::model::ControlPlane>>) -> Response {
    cp.refresh_gauges();
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        cp.metrics.encode(),
    )
        .into_response()
}
