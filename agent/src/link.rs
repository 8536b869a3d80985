//! The agent's link to the control plane: an outbound mTLS connection that receives
//! assignment snapshots, fetches bundles by digest, and streams status changes; it
//! reconnects with jittered exponential backoff and, once back, resends every status.
//! When the certificate is renewed it reconnects at once with the new one (reconciling
//! does not depend on the link, so a sync in progress is not interrupted).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use bosun_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::controller::Shared;
use crate::identity::{Credentials, IdentityManager};
use crate::state::Assigned;
use bosun_process::AbortOnDrop;

/// How a session ended.
enum Ended {
    /// The control plane closed the stream, or the connection failed: reconnect.
    Retry(anyhow::Error),
    /// The control plane refused this certificate (revoked, expired, replaced).
    Refused(String),
}

/// Keeps the link up forever.
pub async fn run(shared: Arc<Shared>, identity: Arc<IdentityManager>, url: String, facts: BTreeMap<String, String>) {
    let builder = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times();
    let mut backoff = builder.build();
    let mut creds = identity.creds.subscribe();
    loop {
        let mut connected = false;
        let current = creds.borrow_and_update().clone();
        let ended = tokio::select! {
            r = session(&shared, &current, &url, &facts, &mut connected) => Some(r),
            _ = creds.changed() => None,
        };
        match ended {
            None => {
                info!("reconnecting with the new certificate");
                backoff = builder.build();
                continue;
            }
            Some(Ended::Retry(e)) if current.expired() => {
                // Refused at the handshake: an expired certificate cannot be renewed, only replaced.
                if identity.rejoin(&format!("the certificate has expired ({e:#})")).await {
                    backoff = builder.build();
                    continue;
                }
            }
            Some(Ended::Retry(e)) => warn!(error = %format!("{e:#}"), "control plane link failed; retrying"),
            Some(Ended::Refused(why)) => {
                if identity.rejoin(&why).await {
                    backoff = builder.build();
                    continue;
                }
            }
        }
        if connected {
            backoff = builder.build();
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::time::sleep(delay).await;
    }
}

/// Whether a status says the control plane does not accept this agent's certificate.
fn refusal(s: &tonic::Status) -> Option<String> {
    matches!(s.code(), tonic::Code::PermissionDenied | tonic::Code::Unauthenticated).then(|| s.message().to_string())
}

async fn session(
    shared: &Arc<Shared>,
    creds: &Credentials,
    url: &str,
    facts: &BTreeMap<String, String>,
    connected: &mut bool,
) -> Ended {
    let channel = match Channel::from_shared(url.to_string()).map_err(anyhow::Error::from).and_then(|c| {
        Ok(c.tls_config(creds.tls())?
            .http2_keep_alive_interval(Duration::from_secs(15))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10)))
    }) {
        Ok(c) => c,
        Err(e) => return Ended::Retry(e),
    };
    let channel = match channel.connect().await.with_context(|| format!("connecting to {url}")) {
        Ok(c) => c,
        Err(e) => return Ended::Retry(e),
    };
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel.clone())
        .max_decoding_message_size(bosun_core::bundle::MAX_BUNDLE_BYTES + (1 << 20));
    let known = shared.state.lock().generation;
    let stream = client
        .watch_assignments(pb::WatchAssignmentsRequest {
            known_generation: known,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            facts: facts.clone().into_iter().collect(),
        })
        .await;
    let mut stream = match stream {
        Ok(s) => s.into_inner(),
        Err(s) => {
            return match refusal(&s) {
                Some(why) => Ended::Refused(why),
                None => Ended::Retry(anyhow::anyhow!("watching assignments: {}", s.message())),
            };
        }
    };
    info!(cluster = %creds.cluster, known_generation = known, "connected to the control plane");
    *connected = true;
    // Aborted when this session ends or is dropped (a certificate handover cancels it): two
    // sessions must never report side by side.
    let _reporter = AbortOnDrop(tokio::spawn(report(shared.clone(), channel)));
    // Bundles damaged or lost since the last snapshot are fetched again.
    shared.need_bundles.notify_one();
    loop {
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(snap)) => {
                    if let Err(e) = apply_snapshot(shared, &mut client, snap).await {
                        return Ended::Retry(e);
                    }
                }
                Ok(None) => return Ended::Retry(anyhow::anyhow!("the control plane closed the assignment stream")),
                Err(s) => {
                    return match refusal(&s) {
                        Some(why) => Ended::Refused(why),
                        None => Ended::Retry(anyhow::anyhow!("assignment stream: {}", s.message())),
                    };
                }
            },
            _ = shared.need_bundles.notified() => {
                let assignments = shared.state.lock().assignments.clone();
                match fetch_missing(shared, &mut client, &assignments).await {
                    Ok(0) => {}
                    Ok(_) => shared.touch_all(),
                    Err(e) => return Ended::Retry(e),
                }
            }
        }
    }
}

/// Fetches the bundles of `assignments` that are not at hand (verified); returns how many.
async fn fetch_missing(
    shared: &Shared,
    client: &mut pb::agent_service_client::AgentServiceClient<Channel>,
    assignments: &[Assigned],
) -> anyhow::Result<usize> {
    let mut fetched = 0;
    for a in assignments {
        if shared.dir.has_bundle(&a.bundle_digest).await {
            continue;
        }
        let b = client
            .get_bundle(pb::GetBundleRequest { digest: a.bundle_digest.clone() })
            .await
            .map_err(|s| anyhow::anyhow!("fetching bundle {}: {}", a.bundle_digest, s.message()))?
            .into_inner();
        shared.dir.save_bundle(&a.bundle_digest, b.objects_json).await?;
        fetched += 1;
    }
    Ok(fetched)
}

async fn apply_snapshot(
    shared: &Shared,
    client: &mut pb::agent_service_client::AgentServiceClient<Channel>,
    snap: pb::AssignmentSnapshot,
) -> anyhow::Result<()> {
    let assignments: Vec<Assigned> = snap
        .assignments
        .iter()
        .cloned()
        .map(Assigned::try_from)
        .collect::<Result<_, _>>()
        .context("the control plane sent an assignment this agent cannot read (upgrade the agent)")?;
    fetch_missing(shared, client, &assignments).await?;
    let keep: Vec<String> = assignments.iter().map(|a| a.bundle_digest.clone()).collect();
    {
        let mut st = shared.state.lock();
        st.cluster = snap.cluster.clone();
        st.generation = snap.generation;
        st.assignments = assignments;
    }
    shared.persist().await?;
    let applications = keep.len();
    shared.dir.gc_bundles(keep).await;
    info!(generation = snap.generation, applications, "assignments received");
    shared.assignments_changed();
    Ok(())
}

/// Streams status reports: everything once per connection, then only what changed.
async fn report(shared: Arc<Shared>, channel: Channel) {
    let (tx, rx) = mpsc::channel::<pb::AppStatusReport>(64);
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let call = tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await });
    let mut watch = shared.reports.subscribe();
    let mut sent: BTreeMap<String, pb::AppStatusReport> = BTreeMap::new();
    loop {
        let current = watch.borrow_and_update().clone();
        for (app, r) in &current {
            if sent.get(app) != Some(r) {
                if tx.send(r.clone()).await.is_err() {
                    return;
                }
                sent.insert(app.clone(), r.clone());
            }
        }
        sent.retain(|k, _| current.contains_key(k));
        if watch.changed().await.is_err() || call.is_finished() {
            return;
        }
    }
}
