//! The agent's link to the control plane: an outbound mTLS connection that receives
//! assignment snapshots, fetches bundles by digest, and streams status changes; it
//! reconnects with jittered exponential backoff — to the next control-plane address when
//! several are given — and, once back, resends every status.
//! When the certificate is renewed it reconnects at once with the new one (reconciling
//! does not depend on the link, so a sync in progress is not interrupted).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::state::{Assigned, DesiredState};
use bosun_process::AbortOnDrop;

/// How a session ended.
enum Ended {
    /// The control plane closed the stream, or the connection failed: reconnect.
    Retry(anyhow::Error),
    /// The control plane refused this certificate (revoked, expired, replaced).
    Refused(String),
}

/// The control plane's agent API addresses, and the one in use. A failed connection moves
/// the link to the next one (replicas behind separate addresses); renewals try the one in
/// use first.
#[derive(Debug)]
pub struct Endpoints {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Endpoints {
    /// Refuses an empty list or an address that is not an `https://` URL.
    pub fn new(urls: &[String]) -> anyhow::Result<Self> {
        let urls: Vec<String> = urls.iter().map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
        anyhow::ensure!(!urls.is_empty(), "--control-plane needs at least one URL");
        for u in &urls {
            let parsed = tonic::transport::Endpoint::from_shared(u.clone())
                .with_context(|| format!("--control-plane {u:?} is not a URL"))?;
            anyhow::ensure!(
                parsed.uri().scheme_str() == Some("https") && parsed.uri().host().is_some(),
                "--control-plane {u:?}: expected https://HOST:PORT (the agent API is mTLS only)"
            );
        }
        Ok(Self { urls, current: AtomicUsize::new(0) })
    }

    /// The address in use.
    pub fn current(&self) -> String {
        self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()].clone()
    }

    /// Moves to the next address (after `failed` failed; another task may have moved already).
    fn advance(&self, failed: &str) {
        let at = self.current.load(Ordering::Relaxed);
        if self.urls[at % self.urls.len()] == failed {
            let next = (at + 1) % self.urls.len();
            let _ = self.current.compare_exchange(at, next, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Every address, starting with the one in use.
    pub fn in_turn(&self) -> impl Iterator<Item = String> + '_ {
        let start = self.current.load(Ordering::Relaxed);
        (0..self.urls.len()).map(move |i| self.urls[(start + i) % self.urls.len()].clone())
    }
}

/// Keeps the link up forever.
pub async fn run(
    shared: Arc<Shared>,
    identity: Arc<IdentityManager>,
    endpoints: Arc<Endpoints>,
    facts: BTreeMap<String, String>,
) {
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
        let url = endpoints.current();
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
            Some(Ended::Retry(e)) => {
                endpoints.advance(&url);
                warn!(error = %format!("{e:#}"), next = %endpoints.current(), "control plane link failed; retrying");
            }
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

/// Marks the link up (readiness, the `connected` gauge) for as long as it lives.
struct LinkUp<'a>(&'a Shared);

impl<'a> LinkUp<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.readiness.connected.store(true, Ordering::Release);
        shared.metrics.connected.set(1);
        Self(shared)
    }
}

impl Drop for LinkUp<'_> {
    fn drop(&mut self) {
        self.0.readiness.connected.store(false, Ordering::Release);
        self.0.metrics.connected.set(0);
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
            held_bundles: shared.dir.held_bundles().await,
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
    let _up = LinkUp::new(shared);
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
                    Ok(waited) => shared.touch(waited),
                    Err(e) => return Ended::Retry(e),
                }
            }
        }
    }
}

/// Fetches the bundles of `assignments` that are not at hand (verified); returns the
/// Applications that waited for them.
async fn fetch_missing(
    shared: &Shared,
    client: &mut pb::agent_service_client::AgentServiceClient<Channel>,
    assignments: &[Assigned],
) -> anyhow::Result<BTreeSet<String>> {
    let mut fetched: BTreeSet<&str> = BTreeSet::new();
    for a in assignments {
        if fetched.contains(a.bundle_digest.as_str()) || shared.dir.has_bundle(&a.bundle_digest).await {
            continue;
        }
        let b = client
            .get_bundle(pb::GetBundleRequest { digest: a.bundle_digest.clone() })
            .await
            .map_err(|s| anyhow::anyhow!("fetching bundle {}: {}", a.bundle_digest, s.message()))?
            .into_inner();
        shared.dir.save_bundle(&a.bundle_digest, b.objects_json).await?;
        fetched.insert(&a.bundle_digest);
    }
    Ok(assignments.iter().filter(|a| fetched.contains(a.bundle_digest.as_str())).map(|a| a.app.clone()).collect())
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
    // Bundles that came along, each checked against its digest; any other is fetched.
    for b in snap.bundles {
        if assignments.iter().any(|a| a.bundle_digest == b.digest) {
            shared.dir.save_bundle(&b.digest, b.objects_json).await?;
        }
    }
    fetch_missing(shared, client, &assignments).await?;
    let keep: Vec<String> = assignments.iter().map(|a| a.bundle_digest.clone()).collect();
    let removals = snap.removals.into_iter().map(Into::into).collect();
    let next = DesiredState::new(snap.cluster, snap.generation, assignments, removals);
    let changed = {
        let mut st = shared.state.lock();
        let changed = st.changed_apps(&next);
        *st = next;
        changed
    };
    shared.persist().await?;
    let applications = keep.len();
    let changed_count = changed.as_ref().map_or(applications, BTreeSet::len);
    info!(generation = snap.generation, applications, changed = changed_count, "assignments received");
    shared.assignments_changed(changed.as_ref());
    // After the passes were asked for, which read only bundles in `keep`.
    shared.dir.gc_bundles(keep).await;
    Ok(())
}

/// Streams status reports: everything once per connection, then only what changed.
async fn report(shared: Arc<Shared>, channel: Channel) {
    let (tx, rx) = mpsc::channel::<pb::AppStatusReport>(64);
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let call = tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await });
    let mut watch = shared.reports.subscribe();
    // A report is replaced only by one that differs (see `Shared::publish`): the same pointer
    // is the same report.
    let mut sent: BTreeMap<String, Arc<pb::AppStatusReport>> = BTreeMap::new();
    loop {
        let current = watch.borrow_and_update().clone();
        for (app, r) in &current {
            if !sent.get(app).is_some_and(|s| Arc::ptr_eq(s, r)) {
                if tx.send(pb::AppStatusReport::clone(r)).await.is_err() {
                    return;
                }
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                shared.metrics.last_report.set(now.as_secs() as i64);
                sent.insert(app.clone(), r.clone());
            }
        }
        sent.retain(|k, _| current.contains_key(k));
        if watch.changed().await.is_err() || call.is_finished() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoints;

    #[test]
    fn a_failed_address_moves_the_link_to_the_next_and_round() {
        let e = Endpoints::new(&["https://a:7444".into(), " https://b:7444 ".into(), "".into()]).unwrap();
        assert_eq!(e.current(), "https://a:7444");
        e.advance("https://a:7444");
        assert_eq!(e.current(), "https://b:7444");
        // A report of a failure of an address no longer in use moves nothing.
        e.advance("https://a:7444");
        assert_eq!(e.current(), "https://b:7444");
        assert_eq!(e.in_turn().collect::<Vec<_>>(), ["https://b:7444", "https://a:7444"]);
        e.advance("https://b:7444");
        assert_eq!(e.current(), "https://a:7444");
    }

    #[test]
    fn addresses_must_be_https_urls() {
        for bad in [vec![], vec!["".to_string()], vec!["http://a:7444".into()], vec!["a:7444".into()]] {
            assert!(Endpoints::new(&bad).is_err(), "{bad:?}");
        }
    }
}
