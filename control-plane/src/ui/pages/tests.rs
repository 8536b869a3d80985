//! Pages rendered from fixture views: what each role sees, filters, the matrix's paging and
//! grouping, escaping of reported text, and source links.

use std::collections::BTreeMap;

use bosun_core::{AppSpec, Destination, Health, Source, SyncStatus};

use super::*;
use crate::auth::CredentialKind;
use crate::model::{AppRecord, ClusterRecord, ResourceState};

fn who(role: Role) -> Principal {
    Principal { name: "alice".into(), role, via: CredentialKind::Token }
}

fn cluster(name: &str, env: &str) -> ClusterView {
    ClusterView {
        record: ClusterRecord {
            name: name.into(),
            joined: true,
            labels: BTreeMap::from([("env".to_string(), env.to_string())]),
            ..Default::default()
        },
        connected: true,
        last_seen: 0,
    }
}

fn app(name: &str, per_cluster: &[(&str, SyncStatus, Health)]) -> AppView {
    let record = AppRecord {
        name: name.into(),
        uid: "u".into(),
        generation: 1,
        spec: AppSpec {
            source: Source {
                repo_url: "https://github.com/acme/deploy.git".into(),
                target_revision: "main".into(),
                path: "k8s/backend".into(),
                recurse: false,
            },
            destination: Destination { cluster: String::new(), selector: "env".into(), namespace: "backend".into() },
            ..Default::default()
        },
        sync_request: 0,
        sync_prune: false,
        status: Default::default(),
        rollback: None,
        parent: String::new(),
        warnings: Vec::new(),
        rollout: Default::default(),
    };
    let clusters: Vec<(ClusterAppStatus, bool)> = per_cluster
        .iter()
        .map(|(c, s, h)| {
            (
                ClusterAppStatus {
                    app: name.into(),
                    cluster: c.to_string(),
                    sync_status: *s,
                    health: *h,
                    resources: vec![ResourceState {
                        kind: "Deployment".into(),
                        namespace: "backend".into(),
                        name: "api".into(),
                        sync_status: *s,
                        health: *h,
                        message: "<script>alert(1)</script>".into(),
                        diff: if *s == SyncStatus::OutOfSync { "spec.replicas: 3 → 5".into() } else { String::new() },
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                true,
            )
        })
        .collect();
    let verdicts: Vec<(SyncStatus, Health)> = per_cluster.iter().map(|(_, s, h)| (*s, *h)).collect();
    let sync_status =
        if verdicts.iter().all(|v| v.0 == SyncStatus::Synced) { SyncStatus::Synced } else { SyncStatus::OutOfSync };
    let health = Health::worst(verdicts.iter().map(|v| v.1));
    AppView { record, children: Vec::new(), rollout: String::new(), clusters, verdicts, sync_status, health }
}

fn render(m: Markup) -> String {
    m.into_string()
}

#[test]
fn readonly_sees_no_action_and_admin_sees_each() {
    let a = app("backend", &[("kind-1", SyncStatus::OutOfSync, Health::Progressing)]);
    let history =
        vec![HistoryEntry { id: 3, cluster: "kind-1".into(), revision: "a".repeat(40), ..Default::default() }];
    let clusters = [cluster("kind-1", "dev")];
    for (role, shown) in [(Role::Admin, true), (Role::Readonly, false)] {
        let w = who(role);
        let v = Viewer { who: &w, csrf: "TOKEN", now: 100 };
        let page = render(app_page(&a, &history, None, &v));
        for action in
            ["/apps/backend/sync", "/apps/backend/refresh", "/apps/backend/delete", "/apps/backend/rollback/3"]
        {
            assert_eq!(page.contains(action), shown, "{role:?} {action}");
        }
        assert_eq!(page.contains("name=\"csrf\" value=\"TOKEN\""), shown, "{role:?}: forms carry the CSRF token");
        let cl = render(clusters_page(&clusters, &v));
        assert_eq!(cl.contains("/clusters/kind-1/revoke"), shown, "{role:?} revoke");
        // Everyone sees statuses as text, the diff, the tree and the history.
        for text in ["OutOfSync", "Progressing", "spec.replicas: 3 → 5", "Deployment", "Rollback"] {
            assert_eq!(page.contains(text), text != "Rollback" || shown, "{role:?} {text}");
        }
    }
}

#[test]
fn reported_text_is_escaped() {
    let a = app("backend", &[("kind-1", SyncStatus::Synced, Health::Healthy)]);
    let w = who(Role::Admin);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let page = render(app_page(&a, &[], None, &v));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn list_filters() {
    let apps = vec![
        app("backend", &[("a", SyncStatus::Synced, Health::Healthy), ("b", SyncStatus::Synced, Health::Healthy)]),
        app("frontend", &[("b", SyncStatus::OutOfSync, Health::Degraded)]),
        app("monitoring", &[("c", SyncStatus::Synced, Health::Progressing)]),
    ];
    let clusters = [cluster("a", "prod"), cluster("b", "dev"), cluster("c", "dev")];
    let w = who(Role::Readonly);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let names = |q: ListQuery| {
        let page = render(app_list(&apps, &clusters, &q, &v));
        ["backend", "frontend", "monitoring"]
            .into_iter()
            .filter(|n| page.contains(&format!("href=\"/apps/{n}\"")))
            .collect::<Vec<_>>()
    };
    let table: Vec<(ListQuery, Vec<&str>)> = vec![
        (ListQuery::default(), vec!["backend", "frontend", "monitoring"]),
        (ListQuery { q: "front".into(), ..Default::default() }, vec!["frontend"]),
        (ListQuery { q: "k8s/BACKEND".into(), ..Default::default() }, vec!["backend", "frontend", "monitoring"]),
        (ListQuery { sync: "OutOfSync".into(), ..Default::default() }, vec!["frontend"]),
        (ListQuery { health: "progressing".into(), ..Default::default() }, vec!["monitoring"]),
        (ListQuery { cluster: "b".into(), ..Default::default() }, vec!["backend", "frontend"]),
        (ListQuery { label: "env=prod".into(), ..Default::default() }, vec!["backend"]),
        (ListQuery { label: "env in (dev)".into(), ..Default::default() }, vec!["backend", "frontend", "monitoring"]),
        (ListQuery { label: "not a selector ((".into(), ..Default::default() }, vec![]),
    ];
    for (q, want) in table {
        assert_eq!(names(q.clone()), want, "{q:?}");
    }
    // Per-cluster counts as text.
    let page = render(app_list(&apps, &clusters, &ListQuery::default(), &v));
    assert!(page.contains("2 clusters"), "{page}");
    assert!(page.contains("Synced </span>2"), "{page}");
}

#[test]
fn fleet_pages_and_groups() {
    let clusters: Vec<ClusterView> =
        (0..250).map(|i| cluster(&format!("c{i:03}"), if i % 2 == 0 { "prod" } else { "dev" })).collect();
    let on_all: Vec<(String, SyncStatus, Health)> =
        clusters.iter().map(|c| (c.record.name.clone(), SyncStatus::Synced, Health::Healthy)).collect();
    let refs: Vec<(&str, SyncStatus, Health)> = on_all.iter().map(|(c, s, h)| (c.as_str(), *s, *h)).collect();
    let apps = vec![app("backend", &refs), app("frontend", &refs[..10])];
    let w = who(Role::Readonly);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let page = render(fleet(&apps, &clusters, &FleetQuery::default(), &v));
    assert!(page.contains("page 1 of 3"), "100 per page");
    assert!(page.contains(">c000<") && page.contains(">c099<") && !page.contains(">c100<"));
    assert!(page.contains("rel=\"next\"") && !page.contains("rel=\"prev\""));
    assert!(page.contains("does not target"), "frontend is on 10 clusters only");
    let last = render(fleet(&apps, &clusters, &FleetQuery { page: 9, ..Default::default() }, &v));
    assert!(last.contains("page 3 of 3") && last.contains(">c249<"), "a page past the end shows the last");
    let grouped = render(fleet(&apps, &clusters, &FleetQuery { group: "env".into(), ..Default::default() }, &v));
    assert!(grouped.contains("env=dev") && grouped.contains("By <code>env</code>"));
    // dev sorts first: its 125 clusters fill page 1.
    assert!(grouped.contains(">c001<") && !grouped.contains(">c000<"));
    let searched = render(fleet(&apps, &clusters, &FleetQuery { q: "c24".into(), ..Default::default() }, &v));
    assert!(searched.contains("10 clusters × 2"), "{searched}");
}

#[test]
fn source_links() {
    let table = [
        (
            "https://github.com/acme/deploy.git",
            "main",
            "k8s/backend",
            Some("https://github.com/acme/deploy/tree/main/k8s/backend"),
        ),
        ("git@github.com:acme/deploy.git", "v1.2", ".", Some("https://github.com/acme/deploy/tree/v1.2")),
        ("https://user:pw@gitlab.com/g/p", "", "apps", Some("https://gitlab.com/g/p/-/tree/HEAD/apps")),
        ("https://gitlab.example.com/g/p.git", "dev", "x/", Some("https://gitlab.example.com/g/p/-/tree/dev/x")),
        ("file:///srv/repo", "main", "k8s", None),
        ("git://example.com/repo", "main", "k8s", None),
        ("https://example.com/repo.git", "main", "k8s", None),
    ];
    for (url, rev, path, want) in table {
        assert_eq!(browse_url(url, rev, path).as_deref(), want, "{url}");
    }
}

#[test]
fn ages_read_like_kubectl() {
    assert_eq!(age(5), "5s ago");
    assert_eq!(age(600), "10m ago");
    assert_eq!(age(3 * 3600), "3h ago");
    assert_eq!(age(3 * 86_400), "3d ago");
    assert_eq!(age(-5), "0s ago");
}

#[test]
fn current_operation_and_hooks_are_shown() {
    let mut a = app(
        "backend",
        &[("kind-1", SyncStatus::Synced, Health::Progressing), ("kind-2", SyncStatus::Synced, Health::Healthy)],
    );
    let c = &mut a.clusters[0].0;
    c.operation = "PreSync wave 0: waiting for hook db-migrate-x7k2p".into();
    c.resources.push(ResourceState {
        group: "batch".into(),
        kind: "Job".into(),
        namespace: "backend".into(),
        name: "db-migrate-x7k2p".into(),
        sync_status: SyncStatus::Synced,
        health: Health::Progressing,
        message: "hook: running".into(),
        hook: true,
        ..Default::default()
    });
    let w = who(Role::Readonly);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let page = render(app_page(&a, &[], Some("kind-1"), &v));
    assert!(page.contains("Operations in progress"), "{page}");
    assert!(page.contains("Current operation: </strong>PreSync wave 0: waiting for hook db-migrate-x7k2p"), "{page}");
    let hooks = page.find("of the current or last operation").expect("a hooks group in the tree");
    assert!(page[hooks..].contains("db-migrate-x7k2p"), "the hook sits in the hooks group");
    // A cluster with no operation shows none.
    let other = render(app_page(&a, &[], Some("kind-2"), &v));
    assert!(!other.contains("Current operation"), "{other}");
    a.clusters[0].0.operation.clear();
    assert!(!render(app_page(&a, &[], Some("kind-1"), &v)).contains("Operations in progress"));
}

#[test]
fn owned_objects_hang_under_their_owner() {
    let mut a = app("backend", &[("kind-1", SyncStatus::Synced, Health::Healthy)]);
    let owned = |kind: &str, name: &str, parent_kind: &str, parent_name: &str, health| ResourceState {
        group: if kind == "ReplicaSet" { "apps".into() } else { String::new() },
        kind: kind.into(),
        namespace: "backend".into(),
        name: name.into(),
        health,
        parent_kind: parent_kind.into(),
        parent_name: parent_name.into(),
        ..Default::default()
    };
    a.clusters[0].0.children = vec![
        owned("ReplicaSet", "api-7d9", "Deployment", "api", Health::Healthy),
        owned("Pod", "api-7d9-xk2", "ReplicaSet", "api-7d9", Health::Progressing),
    ];
    a.clusters[0].0.children_left_out = 3;
    let w = who(Role::Readonly);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let page = render(app_page(&a, &[], Some("kind-1"), &v));
    let deployment = page.find("</span> api ").expect("the Deployment's node");
    let rs = page.find("api-7d9<").or_else(|| page.find("api-7d9 ")).expect("its ReplicaSet");
    let pod = page.find("api-7d9-xk2").expect("the ReplicaSet's Pod");
    assert!(deployment < rs && rs < pod, "owner before owned: {page}");
    // Nested: the Pod's list sits inside the ReplicaSet's item, inside the Deployment's.
    let between = &page[deployment..pod];
    assert_eq!(between.matches("<ul role=\"group\">").count(), 2, "{between}");
    assert!(page.contains("3 more owned objects not shown"));
    // Owned objects show health, not sync.
    let pod_node = &page[pod..page[pod..].find("</li>").map(|e| pod + e).unwrap()];
    assert!(pod_node.contains("Progressing") && !pod_node.contains("Unknown"), "{pod_node}");
}

#[test]
fn the_sync_dialog_offers_prune_when_the_policy_does_not() {
    let mut a = app("backend", &[("kind-1", SyncStatus::OutOfSync, Health::Healthy)]);
    let w = who(Role::Admin);
    let v = Viewer { who: &w, csrf: "t", now: 0 };
    let page = render(app_page(&a, &[], None, &v));
    assert!(page.contains("name=\"prune\""), "a Prune box: {page}");
    assert!(page.contains("Dry run: these objects change"), "the preview lists what changes");
    a.record.spec.sync_policy.prune = true;
    let page = render(app_page(&a, &[], None, &v));
    assert!(!page.contains("name=\"prune\"") && page.contains("the sync policy prunes"));
}
