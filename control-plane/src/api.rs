//! The gRPC edge: thin handlers that decode, call the model, and encode. Protobuf types stop
//! here; the model speaks domain types.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::AppSpec;
use bosun_proto::convert::{health_from_pb, health_to_pb, sync_from_pb, sync_to_pb};
use bosun_proto::v1 as pb;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::auth::{Access, Credential, CredentialKind, Principal, Role};
use crate::error::Error;
use crate::model::{AppView, ClusterAppStatus, ClusterView, ControlPlane, CredentialSecret, RepoRecord, ResourceState};
use crate::pki::PeerCert;
use crate::secrets::Secret;

// ---- conversions ----

fn spec_from_pb(s: Option<pb::ApplicationSpec>) -> Result<AppSpec, Error> {
    let s = s.ok_or_else(|| Error::InvalidRequest("spec is required".into()))?;
    AppSpec::try_from(s).map_err(|e| Error::InvalidRequest(e.to_string()))
}

fn resource_to_pb(r: &ResourceState) -> pb::ResourceStatus {
    pb::ResourceStatus {
        group: r.group.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        sync_status: sync_to_pb(r.sync_status),
        health: health_to_pb(r.health),
        message: r.message.clone(),
        diff: r.diff.clone(),
        hook: r.hook,
        parent_kind: r.parent_kind.clone(),
        parent_name: r.parent_name.clone(),
    }
}

pub fn app_to_pb(v: &AppView) -> pb::Application {
    let r = &v.record;
    let s = &r.spec;
    pb::Application {
        name: r.name.clone(),
        generation: r.generation,
        spec: Some(s.into()),
        status: Some(pb::ApplicationStatus {
            revision: r.status.revision.clone(),
            bundle_digest: r.status.bundle_digest.clone(),
            error: r.status.error.clone(),
            refreshed_at: r.status.refreshed_at,
            sync_status: sync_to_pb(v.sync_status),
            health: health_to_pb(v.health),
            sync_request: r.sync_request,
            rolled_back_to: r.rollback.as_ref().map(|e| e.id).unwrap_or_default(),
            rollback_revision: r.rollback.as_ref().map(|e| e.revision.clone()).unwrap_or_default(),
            parent: r.parent.clone(),
            children: v.children.clone(),
            warnings: r.warnings.iter().chain(&r.status.warnings).cloned().collect(),
            rollout: v.rollout.clone(),
            clusters: v.clusters.iter().map(|(c, connected)| cluster_status_to_pb(c, *connected)).collect(),
        }),
    }
}

fn cluster_status_to_pb(c: &ClusterAppStatus, connected: bool) -> pb::ClusterAppStatus {
    pb::ClusterAppStatus {
        cluster: c.cluster.clone(),
        sync_status: sync_to_pb(c.sync_status),
        health: health_to_pb(c.health),
        revision: c.revision.clone(),
        bundle_digest: c.bundle_digest.clone(),
        message: c.message.clone(),
        resources: c.resources.iter().map(resource_to_pb).collect(),
        observed_sync_request: c.observed_sync_request,
        synced_at: c.synced_at,
        connected,
        operation: c.operation.clone(),
        children: c.children.iter().map(resource_to_pb).collect(),
        children_left_out: c.children_left_out,
    }
}

fn status_event(s: &ClusterAppStatus) -> pb::StatusEvent {
    pb::StatusEvent { application: s.app.clone(), status: Some(cluster_status_to_pb(s, false)) }
}

fn cluster_to_pb(c: &ClusterView) -> pb::Cluster {
    pb::Cluster {
        name: c.record.name.clone(),
        joined: c.record.joined,
        connected: c.connected,
        last_seen: c.last_seen,
        facts: c.record.facts.clone().into_iter().collect(),
        agent_version: c.record.agent_version.clone(),
        certificate_expires: c.record.cert_expires,
        revoked_at: c.record.revoked_at,
        labels: c.record.labels.clone().into_iter().collect(),
    }
}

fn resource_from_pb(x: pb::ResourceStatus) -> ResourceState {
    ResourceState {
        group: x.group,
        kind: x.kind,
        namespace: x.namespace,
        name: x.name,
        sync_status: sync_from_pb(x.sync_status),
        health: health_from_pb(x.health),
        message: x.message,
        diff: x.diff,
        hook: x.hook,
        parent_kind: x.parent_kind,
        parent_name: x.parent_name,
    }
}

/// Owned objects kept per report, whatever an agent sends (it sends at most this many).
const MAX_CHILDREN: usize = 200;

fn report_from_pb(mut r: pb::AppStatusReport) -> ClusterAppStatus {
    if r.children.len() > MAX_CHILDREN {
        let extra = (r.children.len() - MAX_CHILDREN) as u32;
        r.children.truncate(MAX_CHILDREN);
        r.children_left_out = r.children_left_out.saturating_add(extra);
    }
    ClusterAppStatus {
        app: r.app,
        cluster: String::new(),
        bundle_digest: r.bundle_digest,
        revision: r.revision,
        sync_status: sync_from_pb(r.sync_status),
        health: health_from_pb(r.health),
        message: r.message,
        resources: r.resources.into_iter().map(resource_from_pb).collect(),
        observed_sync_request: r.observed_sync_request,
        synced_at: r.synced_at,
        operation: r.operation,
        children: r.children.into_iter().map(resource_from_pb).collect(),
        children_left_out: r.children_left_out,
    }
}

// ---- join ----

pub struct JoinApi(pub Arc<ControlPlane>);

#[tonic::async_trait]
impl pb::join_service_server::JoinService for JoinApi {
    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let r = req.into_inner();
        let (cluster, issued) = self
            .0
            .join(&r.token, &r.cluster, &r.csr_pem, &r.agent_version)
            .await
            .inspect_err(|e| warn!(error = %e, "join refused"))?;
        Ok(Response::new(pb::JoinResponse {
            cluster,
            certificate_pem: issued.pem,
            ca_pem: self.0.pki.ca_pem.clone(),
            expires_at: issued.expires_at,
        }))
    }
}

// ---- agent ----

pub struct AgentApi(pub Arc<ControlPlane>);

/// The identity in the verified client certificate of a request.
fn peer_of<T>(cp: &ControlPlane, req: &Request<T>) -> Result<PeerCert, Status> {
    let certs = req.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let leaf = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    cp.pki.peer(leaf.as_ref()).ok_or_else(|| {
        Status::unauthenticated(format!(
            "the client certificate names no identity of trust domain {:?}",
            cp.pki.trust_domain
        ))
    })
}

/// The calling cluster, from its verified client certificate; never from the request.
fn caller<T>(cp: &ControlPlane, req: &Request<T>) -> Result<String, Status> {
    let peer = peer_of(cp, req)?;
    Ok(cp.authorize_agent(&peer).inspect_err(|e| warn!(error = %e, "agent call refused"))?)
}

/// Resolves once the control plane is stopping.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::AssignmentSnapshot, Status>> + Send>>;

/// What an agent's assignment stream keeps between messages.
struct Feed {
    changes: tokio::sync::watch::Receiver<u64>,
    stopping: tokio::sync::watch::Receiver<bool>,
    expires: Pin<Box<tokio::time::Sleep>>,
    /// The generation the agent holds.
    known: u64,
    held: HashSet<String>,
    peer: PeerCert,
    /// The stream sent its closing status.
    ended: bool,
    presence: Presence,
}

impl Feed {
    /// The next snapshot to send once the cluster's assignments differ from what the agent
    /// holds; the status the stream closes with; or `None` after that.
    async fn next(&mut self) -> Option<Result<pb::AssignmentSnapshot, Status>> {
        if self.ended {
            return None;
        }
        let (cp, cluster) = (&self.presence.cp, &self.presence.cluster);
        let end = loop {
            // Identity is checked again before every message: expiry, revocation, serial.
            if let Err(e) = cp.authorize_agent(&self.peer) {
                break Status::from(e);
            }
            let Some((generation, assignments)) = cp.snapshot(cluster) else {
                break Status::not_found(format!("cluster {cluster:?} was deleted"));
            };
            if generation != self.known {
                let bundles = Box::pin(cp.inline_bundles(&assignments, &mut self.held)).await;
                self.known = generation;
                return Some(Ok(pb::AssignmentSnapshot {
                    cluster: cluster.clone(),
                    generation,
                    assignments: assignments.assignments.iter().map(pb::Assignment::from).collect(),
                    removals: assignments.removals.iter().map(pb::Removal::from).collect(),
                    bundles: bundles
                        .into_iter()
                        .map(|(digest, bytes)| pb::Bundle { digest, objects_json: bytes.as_ref().clone() })
                        .collect(),
                }));
            }
            tokio::select! {
                changed = self.changes.changed() => if changed.is_err() {
                    // The cluster was revoked or deleted: the next check says which.
                    self.changes = cp.subscribe(cluster);
                    if let Err(e) = cp.authorize_agent(&self.peer) {
                        break Status::from(e);
                    }
                },
                _ = &mut self.expires => {
                    // Checked at the top of the loop; look again in a second if the clock
                    // has not quite reached it.
                    self.expires.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                _ = stopped(&mut self.stopping) => {
                    break Status::unavailable("the control plane is shutting down; reconnect (to another replica)");
                }
            }
        };
        info!(cluster = %cluster, reason = %end.message(), "closing the agent's assignment stream");
        self.ended = true;
        Some(Err(end))
    }
}

/// An agent's stream is open: when it is dropped — the agent went away, or the stream ended
/// — the cluster is recorded as disconnected from this replica.
struct Presence {
    cp: Arc<ControlPlane>,
    cluster: String,
}

impl Drop for Presence {
    fn drop(&mut self) {
        let (cp, cluster) = (self.cp.clone(), std::mem::take(&mut self.cluster));
        // Without a runtime the process is ending, and presence expires on its own.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                Box::pin(cp.connected(&cluster, false, None)).await;
                info!(cluster = %cluster, "agent stream closed");
            });
        }
    }
}

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentApi {
    type WatchAssignmentsStream = SnapshotStream;

    async fn watch_assignments(
        &self,
        req: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let peer = peer_of(&self.0, &req)?;
        let cluster = caller(&self.0, &req)?;
        let r = req.into_inner();
        let facts: BTreeMap<String, String> = r.facts.into_iter().collect();
        let cp = self.0.clone();
        cp.connected(&cluster, true, Some((facts, r.agent_version.clone()))).await;
        info!(cluster = %cluster, known_generation = r.known_generation, "agent connected");
        // The certificate's end closes the stream even when nothing is sent.
        let expiry = std::time::UNIX_EPOCH + Duration::from_secs(peer.not_after.max(0) as u64);
        let until_expiry =
            expiry.duration_since(std::time::SystemTime::now()).unwrap_or_default() + Duration::from_millis(500);
        // One per connected agent, alive as long as its connection: the stream itself, polled
        // by the connection as the agent reads, with no task or channel of its own; the rarely
        // taken awaits that reach the store are boxed, so the resting state is small.
        let feed = Feed {
            changes: cp.subscribe(&cluster),
            stopping: cp.stopping(),
            expires: Box::pin(tokio::time::sleep(until_expiry)),
            known: r.known_generation,
            // Bundles the agent holds: those it named, then those of the last snapshot sent.
            held: r.held_bundles.into_iter().collect(),
            peer,
            ended: false,
            presence: Presence { cp, cluster },
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(feed, |mut feed| async move {
            let next = feed.next().await?;
            Some((next, feed))
        }))))
    }

    async fn get_bundle(&self, req: Request<pb::GetBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        let cluster = caller(&self.0, &req)?;
        let digest = req.into_inner().digest;
        let bytes = self
            .0
            .bundle_for(&cluster, &digest)
            .await
            .inspect_err(|e| warn!(cluster = %cluster, error = %e, "bundle refused"))?;
        Ok(Response::new(pb::Bundle { digest, objects_json: bytes }))
    }

    async fn report_status(
        &self,
        req: Request<Streaming<pb::AppStatusReport>>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let cluster = caller(&self.0, &req)?;
        let req_peer = peer_of(&self.0, &req)?;
        let mut stream = req.into_inner();
        while let Some(report) = stream.next().await {
            let report = report?;
            // Re-checked per message: a revocation ends an open stream at its next report.
            self.0.authorize_agent(&req_peer)?;
            // Boxed: this call rests between reports for as long as the agent is connected,
            // and should not carry the larger state of recording one while it waits.
            Box::pin(self.0.report(&cluster, report_from_pb(report))).await?;
        }
        Ok(Response::new(pb::ReportStatusResponse {}))
    }

    async fn renew_certificate(
        &self,
        req: Request<pb::RenewCertificateRequest>,
    ) -> Result<Response<pb::RenewCertificateResponse>, Status> {
        let cluster = caller(&self.0, &req)?;
        let issued = self
            .0
            .renew(&cluster, &req.into_inner().csr_pem)
            .await
            .inspect_err(|e| warn!(cluster = %cluster, error = %e, "certificate renewal refused"))?;
        Ok(Response::new(pb::RenewCertificateResponse {
            certificate_pem: issued.pem,
            ca_pem: self.0.pki.ca_pem.clone(),
            expires_at: issued.expires_at,
        }))
    }
}

// ---- admin ----

pub struct AdminApi(pub Arc<ControlPlane>);

/// One audit line per mutating call: who, what, on which object, and how it ended. The
/// timestamp is the log line's. Never carries secrets (tokens, passwords, keys).
pub(crate) fn audit(cp: &ControlPlane, who: &Principal, action: &str, object: &str, outcome: &str) {
    cp.metrics
        .admin_writes
        .get_or_create(&crate::metrics::Call { action: action.into(), outcome: outcome.into() })
        .inc();
    info!(
        target: "bosun::audit",
        who = %who.name,
        role = who.role.as_str(),
        via = ?who.via,
        action,
        object,
        outcome,
        "audit"
    );
}

fn outcome<T>(r: &Result<T, Status>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(s) => format!("{:?}", s.code()),
    }
}

impl AdminApi {
    /// The caller: a client certificate issued to a user, else a bearer token.
    fn principal<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        // The dashboard calls in-process for its session's principal (checked per request).
        if let Some(crate::auth::Authenticated(who)) = req.extensions().get() {
            return Ok(who.clone());
        }
        if let Some(leaf) = req.peer_certs().as_ref().and_then(|c| c.first().cloned()) {
            let peer = self.0.pki.peer(leaf.as_ref()).ok_or_else(|| {
                Status::unauthenticated(
                    "the client certificate names no bosun identity; use one from `bosun credential create`",
                )
            })?;
            return Ok(self.0.authenticate_cert(&peer)?);
        }
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let token = header.and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        match token {
            Some(t) => Ok(self.0.authenticate_token(t.trim())?),
            None => Err(Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <token>` metadata or a client certificate from `bosun credential create` (the first admin token is in the control plane's data directory)",
            )),
        }
    }

    fn read<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let who = self.principal(req)?;
        self.0.authorize_admin(&who, Access::Read)?;
        Ok(who)
    }

    /// Authenticates and authorises a mutating call; a refusal is audited too.
    fn write<T>(&self, req: &Request<T>, action: &str, object: &str) -> Result<Principal, Status> {
        let who = match self.principal(req) {
            Ok(w) => w,
            Err(s) => {
                warn!(target: "bosun::audit", action, object, outcome = ?s.code(), "audit: unauthenticated call refused");
                return Err(s);
            }
        };
        if let Err(e) = self.0.authorize_admin(&who, Access::Write) {
            audit(&self.0, &who, action, object, "PermissionDenied");
            return Err(e.into());
        }
        Ok(who)
    }
}

fn credential_to_pb(c: &Credential) -> pb::Credential {
    pb::Credential {
        name: c.name.clone(),
        role: c.role.as_str().into(),
        kind: match c.kind {
            CredentialKind::Token => "token".into(),
            CredentialKind::Certificate => "certificate".into(),
        },
        created_at: c.created_at,
        expires_at: c.expires_at,
    }
}

fn repo_to_pb(r: &RepoRecord) -> pb::Repository {
    pb::Repository {
        url: r.url.clone(),
        username: r.username.clone(),
        has_password: !r.password_sealed.is_empty(),
        has_ssh_key: !r.ssh_key_sealed.is_empty(),
        known_hosts: r.known_host_names(),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::StatusEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        req: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        self.read(&req)?;
        let app = req.into_inner().application;
        let (current, mut events) = self.0.watch_status(&app)?;
        let mut stopping = self.0.stopping();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            for s in &current {
                if tx.send(Ok(status_event(s))).await.is_err() {
                    return;
                }
            }
            loop {
                let received = tokio::select! {
                    r = events.recv() => r,
                    _ = stopped(&mut stopping) => {
                        let _ = tx.send(Err(Status::unavailable("the control plane is shutting down; watch again"))).await;
                        return;
                    }
                };
                let item = match received {
                    Ok(s) if app.is_empty() || s.app == app => Ok(status_event(&s)),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Err(Status::resource_exhausted(
                        format!("the status watch fell {n} reports behind; watch again (current statuses come first)"),
                    )),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn create_application(
        &self,
        req: Request<pb::CreateApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let who = self.write(&req, "CreateApplication", &req.get_ref().name)?;
        let r = req.into_inner();
        let result = async {
            let spec = spec_from_pb(r.spec)?;
            self.0.create_app(&r.name, spec).await?;
            // The first render happens now, so the answer already says whether the source works.
            let _ = self.0.refresh_app(&r.name, true).await;
            Ok(Response::new(app_to_pb(&self.0.app(&r.name)?)))
        }
        .await;
        audit(&self.0, &who, "CreateApplication", &r.name, &outcome(&result));
        result
    }

    async fn get_application(
        &self,
        req: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        self.read(&req)?;
        Ok(Response::new(app_to_pb(&self.0.app(&req.into_inner().name)?)))
    }

    async fn list_applications(
        &self,
        req: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        self.read(&req)?;
        Ok(Response::new(pb::ListApplicationsResponse { applications: self.0.apps().iter().map(app_to_pb).collect() }))
    }

    async fn update_application(
        &self,
        req: Request<pb::UpdateApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let who = self.write(&req, "UpdateApplication", &req.get_ref().name)?;
        let r = req.into_inner();
        let result = async {
            self.0.update_app(&r.name, spec_from_pb(r.spec)?, (r.generation != 0).then_some(r.generation)).await?;
            let _ = self.0.refresh_app(&r.name, true).await;
            Ok(Response::new(app_to_pb(&self.0.app(&r.name)?)))
        }
        .await;
        audit(&self.0, &who, "UpdateApplication", &r.name, &outcome(&result));
        result
    }

    async fn delete_application(
        &self,
        req: Request<pb::DeleteApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        let who = self.write(&req, "DeleteApplication", &req.get_ref().name)?;
        let r = req.into_inner();
        let (name, cascade) = (r.name, r.cascade.unwrap_or(true));
        let result = self
            .0
            .delete_app(&name, cascade)
            .await
            .map(|_| Response::new(pb::DeleteApplicationResponse {}))
            .map_err(Into::into);
        let object = if cascade { name.clone() } else { format!("{name} (orphaning its objects)") };
        audit(&self.0, &who, "DeleteApplication", &object, &outcome(&result));
        result
    }

    async fn refresh_application(
        &self,
        req: Request<pb::RefreshApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let who = self.write(&req, "RefreshApplication", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let result = async {
            self.0.refresh_app(&name, true).await?;
            Ok(Response::new(app_to_pb(&self.0.app(&name)?)))
        }
        .await;
        audit(&self.0, &who, "RefreshApplication", &name, &outcome(&result));
        result
    }

    async fn sync_application(
        &self,
        req: Request<pb::SyncApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let who = self.write(&req, "SyncApplication", &req.get_ref().name)?;
        let pb::SyncApplicationRequest { name, prune } = req.into_inner();
        let result = async {
            let _ = self.0.refresh_app(&name, true).await;
            self.0.sync_app(&name, prune).await?;
            Ok(Response::new(app_to_pb(&self.0.app(&name)?)))
        }
        .await;
        audit(&self.0, &who, "SyncApplication", &name, &outcome(&result));
        result
    }

    async fn get_application_history(
        &self,
        req: Request<pb::GetApplicationHistoryRequest>,
    ) -> Result<Response<pb::ApplicationHistory>, Status> {
        self.read(&req)?;
        let entries = self.0.history(&req.into_inner().name)?;
        Ok(Response::new(pb::ApplicationHistory {
            entries: entries
                .into_iter()
                .map(|e| pb::HistoryEntry {
                    id: e.id,
                    cluster: e.cluster,
                    revision: e.revision,
                    bundle_digest: e.bundle_digest,
                    synced_at: e.synced_at,
                    sync_status: sync_to_pb(e.sync_status),
                    health: health_to_pb(e.health),
                    initiated_by: e.initiated_by,
                })
                .collect(),
        }))
    }

    async fn rollback_application(
        &self,
        req: Request<pb::RollbackApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let target = format!("{}@{}", req.get_ref().name, req.get_ref().id);
        let who = self.write(&req, "RollbackApplication", &target)?;
        let r = req.into_inner();
        let result = self
            .0
            .rollback_app(&r.name, r.id)
            .await
            .and_then(|_| self.0.app(&r.name))
            .map(|a| Response::new(app_to_pb(&a)))
            .map_err(Into::into);
        audit(&self.0, &who, "RollbackApplication", &target, &outcome(&result));
        result
    }

    async fn rollout_application(
        &self,
        req: Request<pb::RolloutApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let target = format!("{} {}", req.get_ref().name, req.get_ref().action);
        let who = self.write(&req, "RolloutApplication", &target)?;
        let r = req.into_inner();
        let result = self
            .0
            .rollout_action(&r.name, &r.action)
            .await
            .and_then(|_| self.0.app(&r.name))
            .map(|a| Response::new(app_to_pb(&a)))
            .map_err(Into::into);
        audit(&self.0, &who, "RolloutApplication", &target, &outcome(&result));
        result
    }

    async fn list_clusters(
        &self,
        req: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        self.read(&req)?;
        Ok(Response::new(pb::ListClustersResponse { clusters: self.0.clusters().iter().map(cluster_to_pb).collect() }))
    }

    async fn get_cluster(&self, req: Request<pb::GetClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        self.read(&req)?;
        Ok(Response::new(cluster_to_pb(&self.0.cluster(&req.into_inner().name)?)))
    }

    async fn create_join_token(
        &self,
        req: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        let who = self.write(&req, "CreateJoinToken", &req.get_ref().cluster)?;
        let r = req.into_inner();
        let ttl = if r.ttl_seconds > 0 { Duration::from_secs(r.ttl_seconds as u64) } else { Duration::from_secs(3600) };
        let result = self
            .0
            .create_join_token(&r.cluster, ttl, r.labels.into_iter().collect())
            .await
            .map(|(token, expires_at)| {
                Response::new(pb::CreateJoinTokenResponse { cluster: r.cluster.clone(), token, expires_at })
            })
            .map_err(Into::into);
        audit(&self.0, &who, "CreateJoinToken", &r.cluster, &outcome(&result));
        result
    }

    async fn create_registration_token(
        &self,
        req: Request<pb::CreateRegistrationTokenRequest>,
    ) -> Result<Response<pb::CreateRegistrationTokenResponse>, Status> {
        let who = self.write(&req, "CreateRegistrationToken", &req.get_ref().name)?;
        let r = req.into_inner();
        let ttl =
            if r.ttl_seconds > 0 { Duration::from_secs(r.ttl_seconds as u64) } else { Duration::from_secs(86400) };
        let result = self
            .0
            .create_registration_token(&r.name, ttl, r.labels.into_iter().collect())
            .await
            .map(|(token, expires_at)| {
                Response::new(pb::CreateRegistrationTokenResponse { name: r.name.clone(), token, expires_at })
            })
            .map_err(Into::into);
        audit(&self.0, &who, "CreateRegistrationToken", &r.name, &outcome(&result));
        result
    }

    async fn list_registration_tokens(
        &self,
        req: Request<pb::ListRegistrationTokensRequest>,
    ) -> Result<Response<pb::ListRegistrationTokensResponse>, Status> {
        self.read(&req)?;
        let tokens = self
            .0
            .registration_tokens()
            .await?
            .into_iter()
            .map(|(r, clusters)| pb::RegistrationToken {
                name: r.name,
                created_at: r.created_at,
                expires_at: r.expires_at,
                labels: r.labels.into_iter().collect(),
                clusters,
            })
            .collect();
        Ok(Response::new(pb::ListRegistrationTokensResponse { tokens }))
    }

    async fn delete_registration_token(
        &self,
        req: Request<pb::DeleteRegistrationTokenRequest>,
    ) -> Result<Response<pb::DeleteRegistrationTokenResponse>, Status> {
        let who = self.write(&req, "DeleteRegistrationToken", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let result = self
            .0
            .delete_registration_token(&name)
            .await
            .map(|_| Response::new(pb::DeleteRegistrationTokenResponse {}))
            .map_err(Into::into);
        audit(&self.0, &who, "DeleteRegistrationToken", &name, &outcome(&result));
        result
    }

    async fn delete_cluster(
        &self,
        req: Request<pb::DeleteClusterRequest>,
    ) -> Result<Response<pb::DeleteClusterResponse>, Status> {
        let who = self.write(&req, "DeleteCluster", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let result =
            self.0.delete_cluster(&name).await.map(|_| Response::new(pb::DeleteClusterResponse {})).map_err(Into::into);
        audit(&self.0, &who, "DeleteCluster", &name, &outcome(&result));
        result
    }

    async fn revoke_cluster(&self, req: Request<pb::RevokeClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        let who = self.write(&req, "RevokeCluster", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let result = self
            .0
            .revoke_cluster(&name)
            .await
            .and_then(|_| self.0.cluster(&name))
            .map(|c| Response::new(cluster_to_pb(&c)))
            .map_err(Into::into);
        audit(&self.0, &who, "RevokeCluster", &name, &outcome(&result));
        result
    }

    async fn set_cluster_labels(
        &self,
        req: Request<pb::SetClusterLabelsRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let who = self.write(&req, "SetClusterLabels", &req.get_ref().name)?;
        let r = req.into_inner();
        let result = self
            .0
            .set_cluster_labels(&r.name, r.set.into_iter().collect(), &r.remove)
            .await
            .and_then(|_| self.0.cluster(&r.name))
            .map(|c| Response::new(cluster_to_pb(&c)))
            .map_err(Into::into);
        audit(&self.0, &who, "SetClusterLabels", &r.name, &outcome(&result));
        result
    }

    async fn create_credential(
        &self,
        req: Request<pb::CreateCredentialRequest>,
    ) -> Result<Response<pb::CreateCredentialResponse>, Status> {
        let who = self.write(&req, "CreateCredential", &req.get_ref().name)?;
        let r = req.into_inner();
        let result = async {
            let role = Role::parse(&r.role)
                .ok_or_else(|| Status::invalid_argument(format!("role {:?} is not one of admin, readonly", r.role)))?;
            let csr = (!r.csr_pem.trim().is_empty()).then_some(r.csr_pem.as_str());
            let ttl = (r.ttl_seconds > 0).then(|| Duration::from_secs(r.ttl_seconds as u64));
            let (cred, secret) = self.0.create_credential(&r.name, role, csr, ttl).await?;
            let mut resp =
                pb::CreateCredentialResponse { credential: Some(credential_to_pb(&cred)), ..Default::default() };
            match secret {
                CredentialSecret::Token(t) => resp.token = t,
                CredentialSecret::Certificate(issued) => {
                    resp.certificate_pem = issued.pem;
                    resp.ca_pem = self.0.pki.ca_pem.clone();
                }
            }
            Ok(Response::new(resp))
        }
        .await;
        audit(&self.0, &who, "CreateCredential", &format!("{} role={}", r.name, r.role), &outcome(&result));
        result
    }

    async fn list_credentials(
        &self,
        req: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        // Names and roles are not secret, but only admins manage them.
        self.write(&req, "ListCredentials", "")?;
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: self.0.credentials().iter().map(credential_to_pb).collect(),
        }))
    }

    async fn delete_credential(
        &self,
        req: Request<pb::DeleteCredentialRequest>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let who = self.write(&req, "DeleteCredential", &req.get_ref().name)?;
        let name = req.into_inner().name;
        let result = self
            .0
            .delete_credential(&name)
            .await
            .map(|_| Response::new(pb::DeleteCredentialResponse {}))
            .map_err(Into::into);
        audit(&self.0, &who, "DeleteCredential", &name, &outcome(&result));
        result
    }

    type CreateBackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

    async fn create_backup(
        &self,
        req: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<Self::CreateBackupStream>, Status> {
        let without = req.get_ref().without_secrets;
        let object = if without { "without secrets" } else { "with secrets" };
        let who = self.write(&req, "CreateBackup", object)?;
        let result = self.0.backup(without).await.map_err(Status::from);
        audit(&self.0, &who, "CreateBackup", object, &outcome(&result));
        let bytes = result?;
        let chunks: Vec<Result<pb::BackupChunk, Status>> =
            bytes.chunks(1 << 20).map(|c| Ok(pb::BackupChunk { data: c.to_vec() })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let who = self.read(&req)?;
        Ok(Response::new(pb::WhoAmIResponse {
            name: who.name,
            role: who.role.as_str().into(),
            kind: match who.via {
                CredentialKind::Token => "token".into(),
                CredentialKind::Certificate => "certificate".into(),
            },
        }))
    }

    async fn add_repository(&self, req: Request<pb::AddRepositoryRequest>) -> Result<Response<pb::Repository>, Status> {
        let object = crate::git::redact_url(&req.get_ref().url);
        let who = self.write(&req, "AddRepository", &object)?;
        let r = req.into_inner();
        let result = self
            .0
            .add_repository(
                &r.url,
                &r.username,
                &Secret::new(r.password),
                &Secret::new(r.ssh_private_key),
                &r.known_hosts,
            )
            .await
            .map(|rec| Response::new(repo_to_pb(&rec)))
            .map_err(Into::into);
        audit(&self.0, &who, "AddRepository", &object, &outcome(&result));
        result
    }

    async fn list_repositories(
        &self,
        req: Request<pb::ListRepositoriesRequest>,
    ) -> Result<Response<pb::ListRepositoriesResponse>, Status> {
        self.read(&req)?;
        Ok(Response::new(pb::ListRepositoriesResponse {
            repositories: self.0.repositories().iter().map(repo_to_pb).collect(),
        }))
    }

    async fn delete_repository(
        &self,
        req: Request<pb::DeleteRepositoryRequest>,
    ) -> Result<Response<pb::DeleteRepositoryResponse>, Status> {
        let object = crate::git::redact_url(&req.get_ref().url);
        let who = self.write(&req, "DeleteRepository", &object)?;
        let url = req.into_inner().url;
        let result = self
            .0
            .delete_repository(&url)
            .await
            .map(|_| Response::new(pb::DeleteRepositoryResponse {}))
            .map_err(Into::into);
        audit(&self.0, &who, "DeleteRepository", &object, &outcome(&result));
        result
    }
}
