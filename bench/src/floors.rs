//! The two floors of the fan-out benchmark (BRIEF.md §4), measured in the same run:
//!
//! - **delivery**: the smallest tonic server there is, streaming one message of the bundle's
//!   size to N clients, each over its own mTLS connection with its own certificate;
//! - **apply**: the same server-side applies sent straight to the same simulated clusters by a
//!   plain `kube::Client` per cluster, then waiting for the Deployment to be healthy (the same
//!   health check Bosun uses), so the floor includes kube-sim's rollout time as Bosun does;
//! - **install** (for `scale`): several Applications' objects applied the same way to empty
//!   clusters, one Application after another as they are created, each waited on to health.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_cli::pb;
use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::sync::broadcast;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

struct FloorServer {
    tx: broadcast::Sender<Arc<pb::AssignmentSnapshot>>,
    /// Status reports received (over every client's report stream).
    reports: Arc<AtomicUsize>,
}

impl FloorServer {
    fn new(tx: broadcast::Sender<Arc<pb::AssignmentSnapshot>>) -> Self {
        Self { tx, reports: Arc::default() }
    }
}

/// What the floor server sends a client first: one Application assigned, as a control plane
/// sends an agent with one Application (names and digests of the same lengths).
fn first_snapshot() -> pb::AssignmentSnapshot {
    pb::AssignmentSnapshot {
        cluster: "floor-0000".into(),
        generation: 1,
        assignments: vec![pb::Assignment {
            app: "web".into(),
            bundle_digest: "b".repeat(64),
            revision: "r".repeat(40),
            namespace: "default".into(),
            app_uid: "u".repeat(36),
            ..Default::default()
        }],
        removals: Vec::new(),
        bundles: Vec::new(),
    }
}

type Snapshots = Pin<Box<dyn Stream<Item = Result<pb::AssignmentSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for FloorServer {
    type WatchAssignmentsStream = Snapshots;

    async fn watch_assignments(
        &self,
        _req: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let rx = self.tx.subscribe();
        // First a message, so the client knows it is subscribed; then what is sent.
        let first = futures::stream::once(async { Ok(first_snapshot()) });
        let rest = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(|m| async move { m.ok().map(|s| Ok((*s).clone())) });
        Ok(Response::new(Box::pin(first.chain(rest))))
    }

    /// Not a bundle: the number of reports received so far, in `digest` (the bench's way to
    /// learn that every client's report arrived).
    async fn get_bundle(&self, _: Request<pb::GetBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        Ok(Response::new(pb::Bundle {
            digest: self.reports.load(Ordering::SeqCst).to_string(),
            objects_json: Vec::new(),
        }))
    }

    async fn report_status(
        &self,
        req: Request<tonic::Streaming<pb::AppStatusReport>>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let mut stream = req.into_inner();
        while let Some(report) = stream.next().await {
            report?;
            self.reports.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Response::new(pb::ReportStatusResponse {}))
    }

    async fn renew_certificate(
        &self,
        _: Request<pb::RenewCertificateRequest>,
    ) -> Result<Response<pb::RenewCertificateResponse>, Status> {
        Err(Status::unimplemented("floor server"))
    }
}

/// The floors' certificate authority: it signs the floor server's certificate and one per
/// client, as the control plane's CA does for agents.
struct FloorPki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl FloorPki {
    fn new() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?;
        Ok(Self { ca_pem: ca.pem(), issuer: Issuer::new(ca_params, ca_key) })
    }

    /// A certificate and key (PEM) for `names`.
    fn leaf(&self, names: Vec<String>) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn identity(&self, names: Vec<String>) -> anyhow::Result<Identity> {
        let (cert, key) = self.leaf(names)?;
        Ok(Identity::from_pem(cert, key))
    }

    fn client(&self, addr: SocketAddr, i: usize) -> anyhow::Result<tonic::transport::Endpoint> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.identity(vec![format!("client-{i}")])?)
            .domain_name("localhost");
        Ok(Channel::from_shared(format!("https://{addr}"))?.tls_config(tls)?)
    }
}

/// Serves the floor server on `listener` until the task is aborted.
fn serve_floor(
    listener: tokio::net::TcpListener,
    identity: Identity,
    ca_pem: &str,
    tx: broadcast::Sender<Arc<pb::AssignmentSnapshot>>,
) -> crate::fleet::Task {
    let svc =
        pb::agent_service_server::AgentServiceServer::new(FloorServer::new(tx)).max_encoding_message_size(64 << 20);
    let tls = ServerTlsConfig::new().identity(identity).client_ca_root(Certificate::from_pem(ca_pem));
    crate::fleet::Task(tokio::spawn(async move {
        let _ = Server::builder()
            .tls_config(tls)
            .expect("valid TLS config")
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    }))
}

/// Connects one floor client and waits for its first message; returns the client and its
/// assignment stream.
async fn subscribe(
    endpoint: tonic::transport::Endpoint,
) -> anyhow::Result<(pb::agent_service_client::AgentServiceClient<Channel>, tonic::Streaming<pb::AssignmentSnapshot>)> {
    let channel = endpoint.connect().await?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut stream = client.watch_assignments(pb::WatchAssignmentsRequest::default()).await?.into_inner();
    stream.message().await?.context("no first message")?;
    Ok((client, stream))
}

/// Time from sending one `payload`-byte message to each of `n` mTLS clients receiving it.
pub async fn delivery(n: usize, payload: usize) -> anyhow::Result<Vec<Duration>> {
    let pki = FloorPki::new()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, _) = broadcast::channel(4);
    let server = serve_floor(listener, pki.identity(vec!["localhost".into()])?, &pki.ca_pem, tx.clone());

    // Connect every client (its own key and certificate) and wait for its first message.
    let mut receivers = Vec::with_capacity(n);
    for i in 0..n {
        let endpoint = pki.client(addr, i)?;
        receivers.push(async move { anyhow::Ok(subscribe(endpoint).await?.1) });
    }
    let streams: Vec<_> = futures::stream::iter(receivers).buffer_unordered(64).collect::<Vec<_>>().await;
    let streams = streams.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Arc::new(tokio::sync::OnceCell::<Instant>::new());
    let mut tasks = Vec::new();
    for mut s in streams {
        let (done_tx, start) = (done_tx.clone(), start.clone());
        tasks.push(crate::fleet::Task(tokio::spawn(async move {
            if let Ok(Some(m)) = s.message().await {
                let t0 = *start.get().expect("set before sending");
                let _ = done_tx.send((t0.elapsed(), m.assignments.first().map(|a| a.revision.len())));
            }
        })));
    }
    drop(done_tx);
    let message = pb::AssignmentSnapshot {
        cluster: "floor".into(),
        generation: 1,
        assignments: vec![pb::Assignment { app: "floor".into(), revision: "x".repeat(payload), ..Default::default() }],
        removals: Vec::new(),
        bundles: Vec::new(),
    };
    start.set(Instant::now())?;
    tx.send(Arc::new(message)).map_err(|_| anyhow::anyhow!("no client subscribed"))?;
    let mut samples = Vec::with_capacity(n);
    while let Some((d, len)) = done_rx.recv().await {
        anyhow::ensure!(len == Some(payload), "a floor client got a truncated message");
        samples.push(d);
    }
    anyhow::ensure!(samples.len() == n, "{} of {n} floor clients got the message", samples.len());
    drop(server);
    Ok(samples)
}

/// The memory floor of `footprint`: the floor server in a process of its own (this binary
/// re-executed with `floor-server`), and `n` mTLS clients (here) that each open the two
/// streams an agent keeps open: first the assignment stream (one message received), then a
/// report stream (one report sent). Returns the server's resident memory per client, in
/// bytes, after the first and after both.
pub async fn connection_memory(n: usize) -> anyhow::Result<(f64, f64)> {
    let pki = FloorPki::new()?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = pki.leaf(vec!["localhost".into()])?;
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem)?;
    std::fs::write(dir.path().join("server.pem"), cert)?;
    std::fs::write(dir.path().join("server.key"), key)?;
    let dir_arg = dir.path().to_str().context("utf-8 temporary path")?;
    let (server, process, mut stdout) =
        crate::fleet::spawn_self(&["floor-server", dir_arg]).context("starting the floor server")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).map(|_| line)
    })
    .await??;
    let addr: SocketAddr = line.trim().parse().with_context(|| format!("floor server address {line:?}"))?;
    let empty = process.rss()?;

    let mut connecting = Vec::with_capacity(n);
    for i in 0..n {
        connecting.push(subscribe(pki.client(addr, i)?));
    }
    let clients: Vec<_> = futures::stream::iter(connecting).buffer_unordered(64).collect::<Vec<_>>().await;
    let clients = clients.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let watching = process.rss()?;

    // Each client's report stream stays open (its sender is kept) after one report.
    let report = pb::AppStatusReport {
        app: "web".into(),
        bundle_digest: "b".repeat(64),
        revision: "r".repeat(40),
        ..Default::default()
    };
    let mut held = Vec::with_capacity(n);
    for (client, stream) in clients {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(report.clone()).await?;
        let mut reporter = client.clone();
        let call = crate::fleet::Task(tokio::spawn(async move {
            let _ = reporter.report_status(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
        }));
        held.push((client, stream, tx, call));
    }
    let mut probe = held.first().map(|h| h.0.clone()).context("at least one client")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = probe.get_bundle(pb::GetBundleRequest::default()).await?.into_inner().digest;
        if got == n.to_string() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the floor server received {got} of {n} reports in 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let both = process.rss()?;
    let per = |rss: u64| rss.saturating_sub(empty) as f64 / n.max(1) as f64;
    drop(held);
    drop(server);
    Ok((per(watching), per(both)))
}

/// `floor-server DIR`: serves the floor server with the certificate, key and CA in `DIR`,
/// prints its address, and runs until stdin closes.
pub async fn floor_server(dir: &std::path::Path) -> anyhow::Result<()> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"));
    let identity = Identity::from_pem(read("server.pem")?, read("server.key")?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, _) = broadcast::channel(4);
    let _server = serve_floor(listener, identity, &read("ca.pem")?, tx);
    println!("{addr}");
    crate::fleet::until_stdin_closes().await;
    Ok(())
}

/// A plain client of the simulated cluster at `url`.
fn client(url: &str) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(kube::Config::new(url.parse()?))?)
}

fn api_resource(obj: &Value) -> anyhow::Result<ApiResource> {
    let gv: GroupVersion = obj["apiVersion"].as_str().unwrap_or_default().parse()?;
    Ok(ApiResource::from_gvk(&gv.with_kind(obj["kind"].as_str().unwrap_or_default())))
}

/// Applies `objects` to one cluster (in their order) as `manager`; returns the generation
/// the apply gave the Deployment named `deployment`.
async fn apply_all(client: &kube::Client, objects: &[Value], manager: &str, deployment: &str) -> anyhow::Result<i64> {
    let mut generation = None;
    for o in objects {
        let ar = api_resource(o)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let name = o["metadata"]["name"].as_str().context("named object")?;
        let out = api.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(o)).await?;
        if o["kind"] == "Deployment" && name == deployment {
            generation = out.metadata.generation;
        }
    }
    generation.with_context(|| format!("no generation for the Deployment {deployment} among the objects"))
}

/// Whether the watched Deployment `d` is Healthy by Bosun's health check at a generation of
/// at least `generation` (the health check also wants `observedGeneration` to have caught up).
fn healthy_at(d: &DynamicObject, generation: i64) -> anyhow::Result<bool> {
    let healthy =
        bosun_core::health::assess(&serde_json::to_value(d)?).is_some_and(|a| a.health == bosun_core::Health::Healthy);
    Ok(healthy && d.metadata.generation.unwrap_or(0) >= generation)
}

/// Waits (by watching) until the Deployment `name` is [`healthy_at`] `generation`.
pub async fn until_healthy(api: &Api<DynamicObject>, name: &str, generation: i64) -> anyhow::Result<()> {
    let stream = kube::runtime::watcher::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}")),
    );
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        if let Ok(kube::runtime::watcher::Event::Apply(d) | kube::runtime::watcher::Event::InitApply(d)) = ev
            && healthy_at(&d, generation)?
        {
            return Ok(());
        }
    }
    anyhow::bail!("watch of {name} ended")
}

/// Applies `objects` to one cluster, then waits until its Deployment `name` is healthy at
/// the generation the apply produced.
async fn roll_out(client: &kube::Client, objects: &[Value], ar: &ApiResource, name: &str) -> anyhow::Result<()> {
    let generation = apply_all(client, objects, "floor", name).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", ar);
    until_healthy(&api, name, generation).await
}

/// The apply floor over `clusters` (kube-sim URLs): `v1` is applied and rolled out first
/// (untimed), then the time from starting to apply `v2` to its Deployment being healthy, per
/// cluster; and the CPU `processes` (the clients' and the simulated clusters') used for `v2`.
pub async fn apply(
    urls: &[String],
    v1: &[Value],
    v2: &[Value],
    processes: &[crate::proc::Process],
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let deployment = v2.iter().find(|o| o["kind"] == "Deployment").context("a Deployment among the objects")?;
    let name = deployment["metadata"]["name"].as_str().context("named Deployment")?.to_string();
    let ar = api_resource(deployment)?;
    let clients = urls.iter().map(|u| client(u)).collect::<anyhow::Result<Vec<_>>>()?;
    // v1 applied and rolled out everywhere first, as Bosun's previous commit is.
    let settle = clients.iter().map(|c| roll_out(c, v1, &ar, &name));
    futures::stream::iter(settle)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cpu0 = crate::proc::cpu_of(processes)?;
    let t0 = Instant::now();
    let runs = clients.iter().map(|c| async {
        roll_out(c, v2, &ar, &name).await?;
        anyhow::Ok(t0.elapsed())
    });
    let samples: Vec<_> = futures::future::join_all(runs).await.into_iter().collect::<anyhow::Result<_>>()?;
    Ok((samples, crate::proc::cpu_of(processes)? - cpu0))
}

/// The install floor over `clusters` (kube-sim URLs): on every cluster at once, each set of
/// `apps` objects applied in turn (as the Applications are created one after another), then
/// one watch of the cluster's Deployments until each set's is healthy; one sample per (set,
/// cluster), timed from the start. One watch per cluster, as an agent has: a thousand
/// clusters with a watch per Deployment would exhaust the file descriptors.
pub async fn install(urls: &[String], apps: &[Vec<Value>]) -> anyhow::Result<Vec<Duration>> {
    let clients = urls.iter().map(|u| client(u)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut deployments = Vec::with_capacity(apps.len());
    for objects in apps {
        let d = objects.iter().find(|o| o["kind"] == "Deployment").context("a Deployment among the objects")?;
        deployments.push((d["metadata"]["name"].as_str().context("named Deployment")?, api_resource(d)?));
    }
    let ar = &deployments.first().context("at least one set of objects")?.1;
    let t0 = Instant::now();
    let runs = clients.iter().map(|c| async {
        let mut waiting = std::collections::HashMap::new();
        for (objects, (name, _)) in apps.iter().zip(&deployments) {
            waiting.insert(name.to_string(), apply_all(c, objects, "floor", name).await?);
        }
        let mut samples = Vec::with_capacity(waiting.len());
        let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", ar);
        let stream = kube::runtime::watcher::watcher(api, kube::runtime::watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while !waiting.is_empty() {
            let event = stream.next().await.context("the floor's watch ended")?;
            let (kube::runtime::watcher::Event::Apply(d) | kube::runtime::watcher::Event::InitApply(d)) = event? else {
                continue;
            };
            let name = d.metadata.name.clone().unwrap_or_default();
            if let Some(&generation) = waiting.get(&name)
                && healthy_at(&d, generation)?
            {
                waiting.remove(&name);
                samples.push(t0.elapsed());
            }
        }
        anyhow::Ok(samples)
    });
    let per_cluster = futures::future::try_join_all(runs).await?;
    Ok(per_cluster.into_iter().flatten().collect())
}

/// Deletes what a floor put on the clusters (`sets`, all in `default`, all named with
/// `prefix`) and waits until no object of that name is left, its ReplicaSets and Pods
/// included (the simulated garbage collector removes those). Bosun's run then starts from
/// clusters in the state the floor started from, instead of sharing them with the floor's
/// leftovers (which doubled the objects every simulated controller scans, and added the
/// floor's Pods to the lists every agent's watches start with).
pub async fn remove(urls: &[String], sets: &[Vec<Value>], prefix: &str, timeout: Duration) -> anyhow::Result<()> {
    let owned = [("apps", "v1", "Deployment"), ("apps", "v1", "ReplicaSet"), ("", "v1", "Pod")]
        .map(|(g, v, k)| ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(g, v, k)));
    let deadline = Instant::now() + timeout;
    let runs = urls.iter().map(|url| {
        let owned = &owned;
        async move {
            let client = client(url)?;
            for o in sets.iter().flatten() {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &api_resource(o)?);
                let name = o["metadata"]["name"].as_str().context("named object")?;
                match api.delete(name, &kube::api::DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        return Err(anyhow::Error::from(e).context(format!("deleting the floor's {name} at {url}")));
                    }
                }
            }
            for ar in owned {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", ar);
                while api
                    .list(&Default::default())
                    .await?
                    .items
                    .iter()
                    .any(|o| o.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
                {
                    anyhow::ensure!(Instant::now() < deadline, "the floor's {}s at {url} are still there", ar.kind);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            anyhow::Ok(())
        }
    });
    futures::stream::iter(runs).buffer_unordered(64).try_collect().await
}
