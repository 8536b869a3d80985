//! What the control plane stores, record by record, and where: one key per record, one
//! JSON document per value. Keys are the only schema the store sees.
//!
//! | key | value |
//! |---|---|
//! | `apps/<app>` | [`AppRecord`] |
//! | `clusters/<cluster>` | [`ClusterRecord`] |
//! | `presence/<cluster>` | [`Presence`]: which replica streams to it, last seen |
//! | `status/<app>/<cluster>` | [`ClusterAppStatus`], the agent's last report |
//! | `history/<app>` | [`HistoryCounter`]: the next history id of the Application |
//! | `history/<app>/<cluster>/<id>` | [`HistoryEntry`]: one completed sync |
//! | `credentials/<name>` | an admin [`Credential`](crate::auth::Credential) |
//! | `repos/<hex(url)>` | [`RepoRecord`] (secrets sealed) |
//! | `tokens/<sha256>` | [`TokenRecord`], a join or registration token (the token itself is never stored) |
//! | `registrations/<name>` | [`RegistrationRecord`]: a registration token, by name |
//! | `bundles/<digest>` | a rendered bundle's bytes |
//! | `leases/<name>` | [`Lease`]: who runs a singleton task, until when |
//! | `removed/<app>` | [`RemovedRecord`]: an Application deleted lately, and whether its objects go too |

use std::collections::BTreeMap;

use bosun_core::{AppSpec, Health, SyncStatus};
use serde::{Deserialize, Serialize};

use crate::auth::IssuedCert;

pub const APPS: &str = "apps/";
pub const CLUSTERS: &str = "clusters/";
pub const PRESENCE: &str = "presence/";
pub const STATUS: &str = "status/";
pub const HISTORY: &str = "history/";
pub const CREDENTIALS: &str = "credentials/";
pub const REPOS: &str = "repos/";
pub const TOKENS: &str = "tokens/";
pub const REGISTRATIONS: &str = "registrations/";
pub const BUNDLES: &str = "bundles/";
pub const LEASES: &str = "leases/";
pub const REMOVED: &str = "removed/";

/// Every prefix the model caches (bundles are cached as keys only).
pub const CACHED: [&str; 10] =
    [APPS, CLUSTERS, PRESENCE, STATUS, HISTORY, CREDENTIALS, REPOS, LEASES, BUNDLES, REMOVED];

pub fn app_key(app: &str) -> String {
    format!("{APPS}{app}")
}
pub fn cluster_key(cluster: &str) -> String {
    format!("{CLUSTERS}{cluster}")
}
pub fn presence_key(cluster: &str) -> String {
    format!("{PRESENCE}{cluster}")
}
pub fn status_key(app: &str, cluster: &str) -> String {
    format!("{STATUS}{app}/{cluster}")
}
pub fn history_counter_key(app: &str) -> String {
    format!("{HISTORY}{app}")
}
pub fn history_key(app: &str, cluster: &str, id: u64) -> String {
    format!("{HISTORY}{app}/{cluster}/{id:012}")
}
pub fn credential_key(name: &str) -> String {
    format!("{CREDENTIALS}{name}")
}
/// Repository URLs may hold any character: the key carries them hex-encoded.
pub fn repo_key(url: &str) -> String {
    format!("{REPOS}{}", hex::encode(url))
}
pub fn token_key(sha256: &str) -> String {
    format!("{TOKENS}{sha256}")
}
pub fn registration_key(name: &str) -> String {
    format!("{REGISTRATIONS}{name}")
}
pub fn removed_key(app: &str) -> String {
    format!("{REMOVED}{app}")
}
pub fn bundle_key(digest: &str) -> String {
    format!("{BUNDLES}{digest}")
}
pub fn lease_key(name: &str) -> String {
    format!("{LEASES}{name}")
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data (strings, numbers, maps with string keys): encoding cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An Application as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    /// Identity of this Application (a new one when a deleted Application is created again
    /// under the same name); agents count sync requests per uid.
    #[serde(default)]
    pub uid: String,
    pub spec: AppSpec,
    /// Bumped each time the spec changes (1 at creation; 0 in records written before it was
    /// kept), like Kubernetes' `metadata.generation`.
    #[serde(default)]
    pub generation: u64,
    /// Bumped by each sync request; agents act on a value they have not seen.
    pub sync_request: u64,
    /// The latest sync request asks for pruning (that sync only).
    #[serde(default)]
    pub sync_prune: bool,
    pub status: AppSourceStatus,
    /// Set while rolled back to a history entry: its bundle is deployed and automated sync
    /// is paused until the next sync request.
    #[serde(default)]
    pub rollback: Option<HistoryEntry>,
    /// The Application whose path defines this one (app of apps); empty for top-level ones.
    #[serde(default)]
    pub parent: String,
    /// Fields of its manifest Bosun does not honour (Argo CD Applications from Git).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Progress of the rollout of the current bundle (with a rollout strategy).
    #[serde(default)]
    pub rollout: bosun_core::rollout::State,
}

/// What the control plane knows of an Application's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AppSourceStatus {
    pub revision: String,
    /// The bundle (or, with per-cluster values, a digest of all variants).
    pub bundle_digest: String,
    /// Per-cluster bundles when the path or manifests use per-cluster values.
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
    /// Whether the path or manifests use per-cluster values (re-rendered when clusters change).
    #[serde(default)]
    pub templated: bool,
    pub error: String,
    pub refreshed_at: i64,
    /// What the rendered manifests do that is accepted but probably a mistake.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl AppSourceStatus {
    /// Whether two statuses say the same, whenever they were refreshed.
    pub fn same_as(&self, other: &Self) -> bool {
        Self { refreshed_at: 0, ..self.clone() } == Self { refreshed_at: 0, ..other.clone() }
    }
}

/// A cluster as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClusterRecord {
    pub name: String,
    pub joined: bool,
    pub facts: BTreeMap<String, String>,
    pub agent_version: String,
    pub cert_expires: i64,
    /// Labels that Application selectors match (with the facts, see `cluster_labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unexpired certificates issued to the cluster's agent; any other is refused.
    #[serde(default)]
    pub certificates: Vec<IssuedCert>,
    /// When the cluster was last revoked (Unix seconds; 0 = never).
    #[serde(default)]
    pub revoked_at: i64,
    /// The registration token the cluster registered itself with (empty: an admin added it).
    #[serde(default)]
    pub registered_by: String,
}

/// Where a cluster's agent is connected, written by the replica that streams to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Presence {
    /// The replica holding the agent's stream (empty once it closed).
    pub replica: String,
    pub connected: bool,
    /// Unix seconds; refreshed while connected, so a replica that died stops vouching for it.
    pub last_seen: i64,
}

/// A token as stored, keyed by the SHA-256 of the token: a single-use join token bound to a
/// cluster, or a registration token (reusable until it expires, see [`RegistrationRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The cluster a join token is for; empty for a registration token.
    pub cluster: String,
    pub expires_at: i64,
    /// The name of the registration token this is; empty for a join token.
    #[serde(default)]
    pub registration: String,
}

/// A registration token (Fleet's ClusterRegistrationToken): many agents join with it, each
/// naming its cluster, each getting an identity of its own; it stops working when it expires
/// or is deleted. The clusters it registered keep their identities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub name: String,
    /// SHA-256 of the token (the key of its [`TokenRecord`]).
    pub token_sha256: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Labels every cluster registered with it starts with.
    pub labels: BTreeMap<String, String>,
}

/// An Application deleted lately: sent to every cluster (see [`bosun_core::Removal`]) until it
/// is [`REMOVED_KEPT`] old, or an Application of the same name is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedRecord {
    pub app: String,
    pub app_uid: String,
    pub cascade: bool,
    /// Unix seconds.
    pub at: i64,
}

/// How long a deletion is announced to agents: one away longer follows the Application's
/// last prune policy instead.
pub const REMOVED_KEPT: i64 = 7 * 86400;

/// Per-object state reported by an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceState {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub message: String,
    #[serde(default)]
    pub diff: String,
    /// A hook run of the current (or last) operation, not a resource of the bundle.
    #[serde(default)]
    pub hook: bool,
    /// For an owned object: its controller owner (same namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_name: String,
}

/// One Application on one cluster, as reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterAppStatus {
    pub app: String,
    pub cluster: String,
    pub bundle_digest: String,
    pub revision: String,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub message: String,
    pub resources: Vec<ResourceState>,
    pub observed_sync_request: u64,
    pub synced_at: i64,
    /// The sync operation in progress, in words (phase, wave, what it waits for).
    #[serde(default)]
    pub operation: String,
    /// Objects the resources own (ReplicaSets, Pods), for the tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ResourceState>,
    #[serde(default)]
    pub children_left_out: u32,
}

/// One completed sync of an Application on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryEntry {
    pub id: u64,
    pub cluster: String,
    pub revision: String,
    pub bundle_digest: String,
    pub synced_at: i64,
    pub sync_status: SyncStatus,
    pub health: Health,
    pub initiated_by: String,
}

/// The next history id of an Application (ids are unique per Application, as Argo CD's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryCounter {
    pub next: u64,
}

/// Credentials of a repository (or URL prefix) as stored; the password only sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub url: String,
    pub username: String,
    pub password_sealed: String,
    /// ssh: the deploy key, sealed (the URL with an `ssh-key:` prefix as associated data).
    #[serde(default)]
    pub ssh_key_sealed: String,
    /// ssh: the accepted host keys (known_hosts lines; public).
    #[serde(default)]
    pub known_hosts: String,
}

impl RepoRecord {
    /// The hosts whose keys are pinned (hashed entries shown as such).
    pub fn known_host_names(&self) -> Vec<String> {
        self.known_hosts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .flat_map(|hosts| hosts.split(','))
            .map(|h| if h.starts_with("|1|") { "(hashed)".to_string() } else { h.to_string() })
            .collect()
    }
}

/// Who runs a singleton task (Git polling, rollouts, collection) and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Lease {
    pub holder: String,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
}
