//! The gRPC edge: thin handlers that decode, call the model, and encode. Protobuf types stop
//! here; the model speaks domain types.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{AppSpec, Destination, Source};
use bosun_proto::convert::{health_from_pb, health_to_pb, sync_from_pb, sync_to_pb};
use bosun_proto::v1 as pb;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::error::Error;
use crate::model::{AppView, ClusterAppStatus, ClusterView, ControlPlane, ResourceState};
use crate::pki;

// ---- conversions ----

fn spec_from_pb(s: Option<pb::ApplicationSpec>) -> Result<AppSpec, Error> {
    let s = s.ok_or_else(|| Error::InvalidRequest("spec is required".into()))?;
    let src = s.source.unwrap_or_default();
    let dst = s.destination.unwrap_or_default();
    Ok(AppSpec {
        source: Source {
            repo_url: src.repo_url,
            target_revision: src.target_revision,
            path: src.path,
            recurse: src.recurse,
        },
        destination: Destination { cluster: dst.cluster, namespace: dst.namespace },
        sync_policy: s.sync_policy.unwrap_or_default().into(),
        ignore_differences: s.ignore_differences.into_iter().map(Into::into).collect(),
    })
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
    }
}

pub fn app_to_pb(v: &AppView) -> pb::Application {
    let r = &v.record;
    let s = &r.spec;
    pb::Application {
        name: r.name.clone(),
        spec: Some(pb::ApplicationSpec {
            source: Some(pb::Source {
                repo_url: s.source.repo_url.clone(),
                target_revision: s.source.target_revision.clone(),
                path: s.source.path.clone(),
                recurse: s.source.recurse,
            }),
            destination: Some(pb::Destination {
                cluster: s.destination.cluster.clone(),
                namespace: s.destination.namespace.clone(),
            }),
            sync_policy: Some(s.sync_policy.into()),
            ignore_differences: s.ignore_differences.iter().map(Into::into).collect(),
        }),
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
            clusters: v
                .clusters
                .iter()
                .map(|(c, connected)| pb::ClusterAppStatus {
                    cluster: c.cluster.clone(),
                    sync_status: sync_to_pb(c.sync_status),
                    health: health_to_pb(c.health),
                    revision: c.revision.clone(),
                    bundle_digest: c.bundle_digest.clone(),
                    message: c.message.clone(),
                    resources: c.resources.iter().map(resource_to_pb).collect(),
                    observed_sync_request: c.observed_sync_request,
                    synced_at: c.synced_at,
                    connected: *connected,
                })
                .collect(),
        }),
    }
}

fn cluster_to_pb(c: &ClusterView) -> pb::Cluster {
    pb::Cluster {
        name: c.record.name.clone(),
        joined: c.record.joined,
        connected: c.connected,
        last_seen: c.record.last_seen,
        facts: c.record.facts.clone().into_iter().collect(),
        agent_version: c.record.agent_version.clone(),
        certificate_expires: c.record.cert_expires,
    }
}

fn report_from_pb(r: pb::AppStatusReport) -> ClusterAppStatus {
    ClusterAppStatus {
        app: r.app,
        cluster: String::new(),
        bundle_digest: r.bundle_digest,
        revision: r.revision,
        sync_status: sync_from_pb(r.sync_status),
        health: health_from_pb(r.health),
        message: r.message,
        resources: r
            .resources
            .into_iter()
            .map(|x| ResourceState {
                group: x.group,
                kind: x.kind,
                namespace: x.namespace,
                name: x.name,
                sync_status: sync_from_pb(x.sync_status),
                health: health_from_pb(x.health),
                message: x.message,
                diff: x.diff,
            })
            .collect(),
        observed_sync_request: r.observed_sync_request,
        synced_at: r.synced_at,
    }
}

// ---- join ----

pub struct JoinApi(pub Arc<ControlPlane>);

#[tonic::async_trait]
impl pb::join_service_server::JoinService for JoinApi {
    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let r = req.into_inner();
        let (cluster, certificate_pem) =
            self.0.join(&r.token, &r.csr_pem, &r.agent_version).inspect_err(|e| warn!(error = %e, "join refused"))?;
        Ok(Response::new(pb::JoinResponse { cluster, certificate_pem, ca_pem: self.0.pki.ca_pem.clone() }))
    }
}

// ---- agent ----

pub struct AgentApi(pub Arc<ControlPlane>);

/// The calling cluster, from its verified client certificate; never from the request.
fn caller<T>(cp: &ControlPlane, req: &Request<T>) -> Result<String, Status> {
    let certs = req.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let leaf = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let cluster = pki::cluster_of(leaf.as_ref())
        .ok_or_else(|| Status::unauthenticated("the client certificate names no bosun cluster"))?;
    cp.authorize_cluster(&cluster)?;
    Ok(cluster)
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::AssignmentSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentApi {
    type WatchAssignmentsStream = SnapshotStream;

    async fn watch_assignments(
        &self,
        req: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let cluster = caller(&self.0, &req)?;
        let r = req.into_inner();
        let facts: BTreeMap<String, String> = r.facts.into_iter().collect();
        let cp = self.0.clone();
        cp.connected(&cluster, true, Some((facts, r.agent_version.clone())));
        info!(cluster = %cluster, known_generation = r.known_generation, "agent connected");
        let mut changes = cp.subscribe(&cluster);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut known = r.known_generation;
            while let Some((generation, assignments)) = cp.snapshot(&cluster) {
                if generation != known {
                    let snap = pb::AssignmentSnapshot {
                        cluster: cluster.clone(),
                        generation,
                        assignments: assignments.iter().map(pb::Assignment::from).collect(),
                    };
                    if tx.send(Ok(snap)).await.is_err() {
                        break;
                    }
                    known = generation;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = tx.closed() => break,
                }
            }
            cp.connected(&cluster, false, None);
            info!(cluster = %cluster, "agent stream closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_bundle(&self, req: Request<pb::GetBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        let cluster = caller(&self.0, &req)?;
        let digest = req.into_inner().digest;
        let bytes = self
            .0
            .bundle_for(&cluster, &digest)
            .inspect_err(|e| warn!(cluster = %cluster, error = %e, "bundle refused"))?;
        Ok(Response::new(pb::Bundle { digest, objects_json: bytes }))
    }

    async fn report_status(
        &self,
        req: Request<Streaming<pb::AppStatusReport>>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let cluster = caller(&self.0, &req)?;
        let mut stream = req.into_inner();
        while let Some(report) = stream.next().await {
            let report = report?;
            self.0.authorize_cluster(&cluster)?;
            self.0.report(&cluster, report_from_pb(report))?;
        }
        Ok(Response::new(pb::ReportStatusResponse {}))
    }
}

// ---- admin ----

pub struct AdminApi(pub Arc<ControlPlane>);

/// Checks the admin bearer token on every admin call.
pub fn admin_auth(cp: Arc<ControlPlane>) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let token =
            req.metadata().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t) if cp.is_admin_token(t) => Ok(req),
            Some(_) => Err(Status::unauthenticated("invalid admin token")),
            None => Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata (the admin token is in the control plane's data directory)",
            )),
        }
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn create_application(
        &self,
        req: Request<pb::CreateApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let r = req.into_inner();
        let spec = spec_from_pb(r.spec)?;
        self.0.create_app(&r.name, spec)?;
        // The first render happens now, so the answer already says whether the source works.
        let _ = self.0.refresh_app(&r.name, true).await;
        Ok(Response::new(app_to_pb(&self.0.app(&r.name)?)))
    }

    async fn get_application(
        &self,
        req: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        Ok(Response::new(app_to_pb(&self.0.app(&req.into_inner().name)?)))
    }

    async fn list_applications(
        &self,
        _: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        Ok(Response::new(pb::ListApplicationsResponse { applications: self.0.apps().iter().map(app_to_pb).collect() }))
    }

    async fn update_application(
        &self,
        req: Request<pb::UpdateApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let r = req.into_inner();
        self.0.update_app(&r.name, spec_from_pb(r.spec)?)?;
        let _ = self.0.refresh_app(&r.name, true).await;
        Ok(Response::new(app_to_pb(&self.0.app(&r.name)?)))
    }

    async fn delete_application(
        &self,
        req: Request<pb::DeleteApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        self.0.delete_app(&req.into_inner().name)?;
        Ok(Response::new(pb::DeleteApplicationResponse {}))
    }

    async fn refresh_application(
        &self,
        req: Request<pb::RefreshApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let name = req.into_inner().name;
        self.0.refresh_app(&name, true).await?;
        Ok(Response::new(app_to_pb(&self.0.app(&name)?)))
    }

    async fn sync_application(
        &self,
        req: Request<pb::SyncApplicationRequest>,
    ) -> Result<Response<pb::Application>, Status> {
        let name = req.into_inner().name;
        let _ = self.0.refresh_app(&name, true).await;
        self.0.sync_app(&name)?;
        Ok(Response::new(app_to_pb(&self.0.app(&name)?)))
    }

    async fn get_application_history(
        &self,
        req: Request<pb::GetApplicationHistoryRequest>,
    ) -> Result<Response<pb::ApplicationHistory>, Status> {
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
        let r = req.into_inner();
        self.0.rollback_app(&r.name, r.id)?;
        Ok(Response::new(app_to_pb(&self.0.app(&r.name)?)))
    }

    async fn list_clusters(
        &self,
        _: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        Ok(Response::new(pb::ListClustersResponse { clusters: self.0.clusters().iter().map(cluster_to_pb).collect() }))
    }

    async fn get_cluster(&self, req: Request<pb::GetClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        Ok(Response::new(cluster_to_pb(&self.0.cluster(&req.into_inner().name)?)))
    }

    async fn create_join_token(
        &self,
        req: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        let r = req.into_inner();
        let ttl = if r.ttl_seconds > 0 { Duration::from_secs(r.ttl_seconds as u64) } else { Duration::from_secs(3600) };
        let (token, expires_at) = self.0.create_join_token(&r.cluster, ttl)?;
        Ok(Response::new(pb::CreateJoinTokenResponse { cluster: r.cluster, token, expires_at }))
    }

    async fn delete_cluster(
        &self,
        req: Request<pb::DeleteClusterRequest>,
    ) -> Result<Response<pb::DeleteClusterResponse>, Status> {
        self.0.delete_cluster(&req.into_inner().name)?;
        Ok(Response::new(pb::DeleteClusterResponse {}))
    }
}
