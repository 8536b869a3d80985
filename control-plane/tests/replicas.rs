//! Several model replicas over one store: every acknowledged write survives concurrent
//! writers on other tasks and other replicas (compare-and-set, no lost update), and a change
//! made through one replica reaches the others through the feed. Runs on the embedded store
//! (two replicas in one process over one file) and on PostgreSQL (two connections).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_control_plane::git::GitCache;
use bosun_control_plane::model::{ClusterAppStatus, ControlPlane, Settings};
use bosun_control_plane::pki::Pki;
use bosun_control_plane::secrets::SecretBox;
use bosun_core::{AppSpec, Health, SyncStatus};
use bosun_store::{Backend, Embedded, Postgres, PostgresOptions, Store};
use common::git;

struct Replicas {
    a: Arc<ControlPlane>,
    b: Arc<ControlPlane>,
    store: Arc<Backend>,
    repo: String,
    _dir: tempfile::TempDir,
    _pg: Option<bosun_store::testing::TestPostgres>,
}

async fn replica(store: Arc<Backend>, dir: &std::path::Path, name: &str) -> Arc<ControlPlane> {
    let pki = Pki::load_or_create(dir, None, &[], "bosun.test").unwrap();
    let secrets = SecretBox::load_or_create(&dir.join("secret.key")).unwrap();
    let git = Arc::new(GitCache::new(dir.join(format!("git-{name}"))));
    let settings = Settings {
        cert_validity: Duration::from_secs(3600),
        admin_cert_validity: Duration::from_secs(3600),
        poll_interval: Duration::from_secs(3600),
        installation_id: "test".into(),
        backup_sources: Default::default(),
        renderer: Default::default(),
        render_concurrency: 2,
        collect_interval: Duration::from_secs(3600),
        replica: name.into(),
        initial_admin_token: None,
    };
    ControlPlane::start(store, git, pki, secrets, settings).await.unwrap().0
}

/// A repository with one ConfigMap at `k8s/`.
fn repository(dir: &std::path::Path) -> String {
    let work = dir.join("repo");
    std::fs::create_dir_all(work.join("k8s")).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("k8s/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "one"]);
    format!("file://{}", work.display())
}

async fn embedded() -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Backend::Embedded(Embedded::open(&dir.path().join("store.redb")).unwrap()));
    let a = replica(store.clone(), dir.path(), "a").await;
    let b = replica(store.clone(), dir.path(), "b").await;
    Replicas { a, b, store, repo: repository(dir.path()), _dir: dir, _pg: None }
}

async fn postgres() -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let pg = tokio::task::spawn_blocking(bosun_store::testing::TestPostgres::start).await.unwrap().unwrap();
    let connect =
        || async { Arc::new(Backend::Postgres(Postgres::connect(&PostgresOptions::new(pg.url())).await.unwrap())) };
    let a = replica(connect().await, dir.path(), "a").await;
    let store = connect().await;
    let b = replica(store.clone(), dir.path(), "b").await;
    Replicas { a, b, store, repo: repository(dir.path()), _dir: dir, _pg: Some(pg) }
}

fn spec(repo: &str, namespace: &str) -> AppSpec {
    let mut s = AppSpec::default();
    s.source.repo_url = repo.into();
    s.source.path = "k8s".into();
    s.destination.cluster = "c1".into();
    s.destination.namespace = namespace.into();
    s.rollout = Some(bosun_core::rollout::Strategy {
        step: bosun_core::rollout::StepSize::Count(1),
        max_unavailable: 0,
        pause_secs: 0,
        order_by: String::new(),
        offline_timeout_secs: 300,
    });
    s
}

/// A CSR for a fresh key (the control plane ignores its subject).
fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec!["agent".into()]).unwrap().serialize_request(&key).unwrap().pem().unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Updates, sync requests, rollbacks and rollout actions race on one Application from four
/// tasks on two replicas; each acknowledged change is in the final record.
async fn no_acknowledged_write_is_lost(r: Replicas) {
    let (a, b) = (r.a.clone(), r.b.clone());
    a.create_join_token("c1", Duration::from_secs(600), Default::default()).await.unwrap();
    a.create_app("web", spec(&r.repo, "ns-0")).await.unwrap();
    // Seen by the other replica through the feed.
    eventually("the Application on replica b", || b.app("web").is_ok()).await;
    let rec = b.refresh_app("web", true).await.unwrap();
    assert!(!rec.status.bundle_digest.is_empty());
    // A completed sync gives a history entry to roll back to.
    let synced = ClusterAppStatus {
        app: "web".into(),
        bundle_digest: rec.status.bundle_digest.clone(),
        revision: rec.status.revision.clone(),
        sync_status: SyncStatus::Synced,
        health: Health::Healthy,
        synced_at: 1,
        ..Default::default()
    };
    a.report("c1", synced).await.unwrap();
    eventually("the history entry on b", || b.history("web").is_ok_and(|h| h.len() == 1)).await;
    let entry = b.history("web").unwrap()[0].id;

    let before = a.app("web").unwrap().record.sync_request;
    let updates = {
        let (a, repo) = (a.clone(), r.repo.clone());
        tokio::spawn(async move {
            let mut last = String::new();
            for i in 1..=15 {
                let ns = format!("ns-{i}");
                a.update_app("web", spec(&repo, &ns), None).await.unwrap();
                last = ns;
            }
            last
        })
    };
    let syncs = |cp: Arc<ControlPlane>| {
        tokio::spawn(async move {
            for _ in 0..15 {
                cp.sync_app("web", false).await.unwrap();
            }
            15u64
        })
    };
    let rollbacks = {
        let b = b.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                b.rollback_app("web", entry).await.unwrap();
            }
            10u64
        })
    };
    let rollouts = {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..10 {
                let cp = if i % 2 == 0 { &a } else { &b };
                cp.rollout_action("web", if i % 2 == 0 { "abort" } else { "resume" }).await.unwrap();
                cp.advance_rollouts().await.unwrap();
            }
        })
    };
    let (s1, s2) = (syncs(a.clone()), syncs(b.clone()));
    let last_namespace = updates.await.unwrap();
    let acknowledged = s1.await.unwrap() + s2.await.unwrap() + rollbacks.await.unwrap();
    rollouts.await.unwrap();
    for cp in [&a, &b] {
        // Each write was answered once in its own replica's cache; the other replica's cache
        // follows the feed a moment later. A lost write would never show up.
        eventually("every acknowledged write in this replica's cache", || {
            cp.app("web").is_ok_and(|v| {
                v.record.sync_request - before == acknowledged && v.record.spec.destination.namespace == last_namespace
            })
        })
        .await;
        let rec = cp.app("web").unwrap().record;
        assert_eq!(rec.sync_request - before, acknowledged, "every sync request and rollback counted once");
        assert_eq!(rec.spec.destination.namespace, last_namespace, "the last acknowledged update stands");
        assert_eq!(cp.history("web").unwrap().len(), 1);
    }
}

/// A revocation or a deleted credential made through one replica is refused by the other
/// within a second; a cluster deleted on one is gone on both.
async fn revocations_reach_every_replica(r: Replicas) {
    let (a, b) = (r.a.clone(), r.b.clone());
    let (cred, secret) = a.create_credential("ci", bosun_control_plane::auth::Role::Admin, None, None).await.unwrap();
    let bosun_control_plane::model::CredentialSecret::Token(token) = secret else { panic!("a token") };
    eventually("the credential on b", || b.authenticate_token(&token).is_ok()).await;
    let started = Instant::now();
    a.delete_credential(&cred.name).await.unwrap();
    eventually("the deletion on b", || b.authenticate_token(&token).is_err()).await;
    assert!(started.elapsed() < Duration::from_secs(1), "refused everywhere within 1 s: {:?}", started.elapsed());

    // Two replicas consume one join token at once: exactly one wins.
    let (token, _) = a.create_join_token("c2", Duration::from_secs(600), Default::default()).await.unwrap();
    eventually("c2 on b", || b.cluster("c2").is_ok()).await;
    let (csr_a, csr_b) = (csr(), csr());
    let (ja, jb) = tokio::join!(a.join(&token, "", &csr_a, "t"), b.join(&token, "", &csr_b, "t"));
    assert!(ja.is_ok() != jb.is_ok(), "one join wins: {:?} / {:?}", ja.as_ref().err(), jb.as_ref().err());
    b.revoke_cluster("c2").await.unwrap();
    eventually("the revocation on a", || !a.cluster("c2").unwrap().record.joined).await;
}

/// A deletion's notice (cascade or orphan) reaches the clusters through every replica's
/// snapshot; two replicas registering one name with one registration token: one wins.
async fn deletions_and_registrations_agree_across_replicas(r: Replicas) {
    let (a, b) = (r.a.clone(), r.b.clone());
    a.create_join_token("c1", Duration::from_secs(600), Default::default()).await.unwrap();
    let rec = a.create_app("web", spec(&r.repo, "ns-0")).await.unwrap();
    eventually("web on b", || b.app("web").is_ok()).await;
    a.delete_app("web", false).await.unwrap();
    eventually("the notice on b", || {
        b.snapshot("c1").is_some_and(|(_, s)| {
            s.assignments.is_empty()
                && s.removals == [bosun_core::Removal { app: "web".into(), app_uid: rec.uid.clone(), cascade: false }]
        })
    })
    .await;
    let (print_a, _) = a.snapshot("c1").unwrap();
    assert_eq!(Some(print_a), b.snapshot("c1").map(|(p, _)| p), "the same fingerprint on both");

    let (token, _) = a.create_registration_token("spokes", Duration::from_secs(600), Default::default()).await.unwrap();
    let (csr_a, csr_b) = (csr(), csr());
    let (ja, jb) = tokio::join!(a.join(&token, "spoke-1", &csr_a, "t"), b.join(&token, "spoke-1", &csr_b, "t"));
    assert!(ja.is_ok() != jb.is_ok(), "one registration wins: {:?} / {:?}", ja.as_ref().err(), jb.as_ref().err());
    let (again, _) = a.create_registration_token("other", Duration::from_secs(600), Default::default()).await.unwrap();
    let taken = b.join(&again, "spoke-1", &csr(), "t").await.unwrap_err().to_string();
    assert!(taken.contains("not registered with registration token"), "{taken}");
    a.delete_registration_token("spokes").await.unwrap();
    assert!(b.join(&token, "spoke-2", &csr(), "t").await.is_err(), "a deleted token registers nothing");
}

/// A collection pass deletes the bundles nothing refers to any more (those already stored at
/// the pass before) and the join tokens past their expiry; it keeps the bundle in use, a
/// live join token and a registration token (listed until deleted, expired or not).
async fn collection_keeps_what_is_referred_to(r: Replicas) {
    let a = r.a.clone();
    let (_, live_until) = a.create_join_token("c1", Duration::from_secs(600), Default::default()).await.unwrap();
    let (_, expires_at) = a.create_join_token("c9", Duration::from_secs(1), Default::default()).await.unwrap();
    a.create_registration_token("spokes", Duration::from_secs(1), Default::default()).await.unwrap();
    a.create_app("web", spec(&r.repo, "ns-0")).await.unwrap();
    let old = a.refresh_app("web", true).await.unwrap().status.bundle_digest;
    let work = std::path::PathBuf::from(r.repo.strip_prefix("file://").unwrap());
    std::fs::write(work.join("k8s/cm2.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-2\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "two"]);
    let new = a.refresh_app("web", true).await.unwrap().status.bundle_digest;
    assert_ne!(old, new, "the new commit renders another bundle");
    let bundle = |d: &str| bosun_control_plane::model::records::bundle_key(d);
    assert!(r.store.get(&bundle(&old)).await.unwrap().is_some());

    eventually("the short join token to expire", || bosun_control_plane::model::now() > expires_at).await;
    assert!(bosun_control_plane::model::now() < live_until);
    let first = a.collect(None).await.unwrap();
    // The first pass deletes no bundle: one rendered just before it is not referred to yet.
    assert!(r.store.get(&bundle(&old)).await.unwrap().is_some(), "kept by the first pass");
    a.collect(Some(first)).await.unwrap();
    assert!(r.store.get(&bundle(&old)).await.unwrap().is_none(), "the unused bundle is collected");
    assert!(r.store.get(&bundle(&new)).await.unwrap().is_some(), "the bundle in use stays");
    let tokens = r.store.list(bosun_control_plane::model::records::TOKENS).await.unwrap().records;
    let kinds: Vec<String> = tokens
        .iter()
        .map(|t| {
            let rec: serde_json::Value = serde_json::from_slice(&t.value).unwrap();
            format!("{}{}", rec["cluster"].as_str().unwrap(), rec["registration"].as_str().unwrap_or_default())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(kinds, ["c1", "spokes"], "the expired join token is gone, the others stay");
}

macro_rules! both {
    ($($case:ident),*) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::embedded().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::postgres().await).await;
            })*
        }
    };
}

both!(
    no_acknowledged_write_is_lost,
    revocations_reach_every_replica,
    deletions_and_registrations_agree_across_replicas,
    collection_keeps_what_is_referred_to
);
