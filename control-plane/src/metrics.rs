//! Prometheus metrics of the control plane, served as text on `GET /metrics` of the HTTP
//! listener. Counters are bumped where things happen; gauges describing the model (clusters,
//! Applications by status) are computed from it at scrape time, so they can never drift.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// Every metric the control plane exports.
pub struct Metrics {
    registry: Registry,
    pub status_reports: Counter,
    pub renders: Family<Outcome, Counter>,
    pub git_fetches: Family<Outcome, Counter>,
    pub webhooks: Family<Outcome, Counter>,
    pub admin_writes: Family<Call, Counter>,
    pub certificates_issued: Family<Outcome, Counter>,
    pub applications: Family<AppState, Gauge>,
    pub clusters: Family<ClusterState, Gauge>,
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
        };
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
        Self { registry, ..m }
    }
}

impl Metrics {
    pub fn outcome(label: &str) -> Outcome {
        Outcome { outcome: label.into() }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
