//! Dashboard page render time on the server: the Application list and the fleet matrix (one
//! page of 100 clusters, and all clusters on one page) for N clusters × M Applications, each
//! pair reported with three resources. Floor: encoding the same Applications as the admin
//! API's `ListApplications` answer (protobuf), i.e. what any client of the same data costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bosun_control_plane::auth::{CredentialKind, Principal, Role};
use bosun_control_plane::model::{AppRecord, AppView, ClusterAppStatus, ClusterRecord, ClusterView, ResourceState};
use bosun_control_plane::ui::pages::{self, FleetQuery, ListQuery, Viewer};
use bosun_core::{AppSpec, Destination, Health, Source, SyncStatus};

use crate::report::Report;

pub fn run(json_out: bool, clusters: usize, apps: usize, runs: usize) {
    let cluster_views: Vec<ClusterView> = (0..clusters)
        .map(|i| ClusterView {
            record: ClusterRecord {
                name: format!("c{i:05}"),
                joined: true,
                labels: BTreeMap::from([
                    ("env".to_string(), ["prod", "staging", "dev"][i % 3].to_string()),
                    ("region".to_string(), format!("r{}", i % 7)),
                ]),
                agent_version: "0.1.0".into(),
                cert_expires: 1_900_000_000,
                ..Default::default()
            },
            connected: i % 50 != 0,
            last_seen: 1_800_000_000,
        })
        .collect();
    let app_views: Vec<AppView> = (0..apps)
        .map(|a| {
            let name = format!("app-{a}");
            let statuses: Vec<(ClusterAppStatus, bool)> = cluster_views
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (sync, health) = match (i + a) % 97 {
                        0 => (SyncStatus::OutOfSync, Health::Progressing),
                        1 => (SyncStatus::Synced, Health::Degraded),
                        _ => (SyncStatus::Synced, Health::Healthy),
                    };
                    let resources = ["Deployment", "Service", "ConfigMap"]
                        .iter()
                        .map(|k| ResourceState {
                            kind: k.to_string(),
                            namespace: "apps".into(),
                            name: name.clone(),
                            sync_status: sync,
                            health,
                            ..Default::default()
                        })
                        .collect();
                    (
                        ClusterAppStatus {
                            app: name.clone(),
                            cluster: c.record.name.clone(),
                            revision: "0123456789abcdef0123456789abcdef01234567".into(),
                            sync_status: sync,
                            health,
                            resources,
                            synced_at: 1_800_000_000,
                            ..Default::default()
                        },
                        c.connected,
                    )
                })
                .collect();
            let verdicts = statuses.iter().map(|(s, _)| (s.sync_status, s.health)).collect();
            AppView {
                record: AppRecord {
                    name: name.clone(),
                    uid: "u".into(),
                    generation: 1,
                    spec: AppSpec {
                        source: Source {
                            repo_url: "https://github.com/acme/fleet.git".into(),
                            target_revision: "main".into(),
                            path: format!("apps/{name}"),
                            recurse: false,
                        },
                        destination: Destination {
                            cluster: String::new(),
                            selector: "env".into(),
                            namespace: "apps".into(),
                        },
                        ..Default::default()
                    },
                    sync_request: 1,
                    sync_prune: false,
                    status: Default::default(),
                    rollback: None,
                    parent: String::new(),
                    warnings: Vec::new(),
                    rollout: Default::default(),
                },
                children: Vec::new(),
                rollout: String::new(),
                clusters: statuses,
                verdicts,
                sync_status: SyncStatus::OutOfSync,
                health: Health::Degraded,
            }
        })
        .collect();
    let who = Principal { name: "admin".into(), role: Role::Admin, via: CredentialKind::Token };
    let viewer = Viewer { who: &who, csrf: "csrf-token", now: 1_800_000_100 };

    let time = |f: &dyn Fn() -> usize| {
        let mut samples = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let t = Instant::now();
            bytes = std::hint::black_box(f());
            samples.push(t.elapsed());
        }
        (samples, bytes)
    };
    let (list, list_bytes) =
        time(&|| pages::app_list(&app_views, &cluster_views, &ListQuery::default(), &viewer).into_string().len());
    let (matrix, matrix_bytes) =
        time(&|| pages::fleet(&app_views, &cluster_views, &FleetQuery::default(), &viewer).into_string().len());
    let all = FleetQuery { per: 1000, ..FleetQuery::default() };
    let (matrix_all, matrix_all_bytes) =
        time(&|| pages::fleet(&app_views, &cluster_views, &all, &viewer).into_string().len());
    let grouped = FleetQuery { group: "env".into(), ..FleetQuery::default() };
    let (matrix_grouped, _) = time(&|| pages::fleet(&app_views, &cluster_views, &grouped, &viewer).into_string().len());
    let (floor, floor_bytes) = time(&|| {
        use prost::Message;
        let list = bosun_proto::v1::ListApplicationsResponse {
            applications: app_views.iter().map(bosun_control_plane::api::app_to_pb).collect(),
        };
        list.encode_to_vec().len()
    });

    let mut r = Report::new("ui", "Application list and fleet matrix ≤ 100 ms server time at 1,000 × 10")
        .param("clusters", clusters)
        .param("apps", apps)
        .param("runs", runs);
    let l = r.row("Application list page", &list);
    let m = r.row("fleet matrix, page of 100 clusters", &matrix);
    r.row("fleet matrix grouped by env, page of 100", &matrix_grouped);
    r.row(&format!("fleet matrix, all {} clusters on one page", clusters.min(1000)), &matrix_all);
    let f = r.row("floor: ListApplications encoded (protobuf)", &floor);
    r.figure("list_bytes", list_bytes as f64, "B");
    r.figure("matrix_bytes", matrix_bytes as f64, "B");
    r.figure("matrix_all_bytes", matrix_all_bytes as f64, "B");
    r.figure("floor_bytes", floor_bytes as f64, "B");
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    r.figure("list_p50_vs_floor", ratio(l.p50, f.p50), "x");
    r.figure("matrix_p50_vs_floor", ratio(m.p50, f.p50), "x");
    r.print(json_out);
}

/// One open dashboard page during a benchmark: signed in with the admin token, following
/// `/events` over TLS, counting the live updates it is sent (each would make the page fetch
/// its `<main>` again). It runs on an OS thread and runtime of its own, as a browser is a
/// process of its own: arrival times then measure the server's pacing, not how long the
/// benchmark's thousand agents kept this reader off a shared runtime.
pub struct LivePage {
    /// Arrival times of the events.
    events: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    started: Instant,
}

impl LivePage {
    pub async fn open(cp: &crate::fleet::ControlPlane) -> anyhow::Result<Self> {
        use anyhow::Context;
        let addr = cp.endpoints.ui.clone();
        anyhow::ensure!(!addr.is_empty(), "the control plane names no dashboard address");
        let token = std::fs::read_to_string(cp.data.join("admin-token"))?.trim().to_string();
        let ca = std::fs::read(cp.data.join("ca.pem"))?;
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = events.clone();
        let (opened_tx, opened) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("live-page".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = opened_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let s = match follow_events(&addr, &token, &ca).await {
                    Ok(s) => {
                        let _ = opened_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let read = async {
                    use tokio::io::AsyncBufReadExt;
                    let mut lines = tokio::io::BufReader::new(s).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l.trim_end() == "event: change" {
                            seen.lock().unwrap().push(Instant::now());
                        }
                    }
                };
                tokio::select! {
                    _ = read => {}
                    _ = stopped => {}
                }
            })
        })?;
        opened.await.context("the live page's thread ended before it opened")??;
        Ok(Self { events, stop, thread, started: Instant::now() })
    }

    /// (events received, the most in any one second, seconds followed).
    pub fn stop(self) -> (usize, usize, f64) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        let times = self.events.lock().unwrap().clone();
        let most = times
            .iter()
            .enumerate()
            .map(|(i, t)| times[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(1)).count())
            .max()
            .unwrap_or(0);
        (times.len(), most, self.started.elapsed().as_secs_f64())
    }
}

/// Signs in with `token` (the session cookie comes back in Set-Cookie) and opens `/events`;
/// returns the TLS stream positioned at the response.
async fn follow_events(
    addr: &str,
    token: &str,
    ca: &[u8],
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use anyhow::Context;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca) {
        roots.add(c?)?;
    }
    let tls = std::sync::Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth());
    let connector = tokio_rustls::TlsConnector::from(tls);
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        anyhow::Ok(connector.connect(name, tcp).await?)
    };
    let mut s = connect().await?;
    let body = format!("token={token}");
    s.write_all(
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut head = String::new();
    let mut reader = BufReader::new(s);
    let mut cookie = None;
    loop {
        head.clear();
        if reader.read_line(&mut head).await? == 0 || head == "\r\n" {
            break;
        }
        if let Some(v) = head.strip_prefix("set-cookie: ").or_else(|| head.strip_prefix("Set-Cookie: ")) {
            cookie = v.split(';').next().map(str::to_string);
        }
    }
    let cookie = cookie.context("sign-in returned no session cookie")?;
    let mut s = connect().await?;
    s.write_all(
        format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    Ok(s)
}
