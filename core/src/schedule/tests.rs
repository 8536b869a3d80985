//! Scheduling tables (one row per rule) and properties over generated fleets.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::app::{AppSpec, Destination};
use crate::rollout::{StepSize, Strategy as RolloutStrategy};

/// An owned world that [`Fleet`] views borrow.
#[derive(Debug, Clone, Default)]
struct World {
    clusters: Vec<(String, BTreeMap<String, String>, bool)>,
    apps: Vec<App>,
    /// (app, cluster) → (bundle digest, sync, health).
    reports: BTreeMap<(String, String), (String, SyncStatus, Health)>,
}

#[derive(Debug, Clone, Default)]
struct App {
    name: String,
    spec: AppSpec,
    digest: String,
    templated: bool,
    variants: BTreeMap<String, String>,
    rollback: Option<String>,
    rollout: rollout::State,
}

fn app(name: &str, destination: &str, digest: &str) -> App {
    let selector = destination.contains('=') || destination.contains(" in ");
    let (cluster, selector) = if selector { ("", destination) } else { (destination, "") };
    App {
        name: name.into(),
        spec: AppSpec {
            destination: Destination {
                cluster: cluster.into(),
                selector: selector.into(),
                namespace: "default".into(),
            },
            ..Default::default()
        },
        digest: digest.into(),
        ..Default::default()
    }
}

fn fleet(w: &World) -> Fleet<'_> {
    let clusters = w
        .clusters
        .iter()
        .map(|(name, labels, connected)| {
            let c = Cluster {
                name,
                labels,
                selector_labels: std::borrow::Cow::Owned(crate::cluster::labels(name, labels, &BTreeMap::new())),
                connected: *connected,
                last_seen: 100,
            };
            (name.as_str(), c)
        })
        .collect();
    let apps = w
        .apps
        .iter()
        .map(|a| {
            let view = Application {
                name: &a.name,
                uid: "uid",
                spec: &a.spec,
                sync_request: 0,
                sync_prune: false,
                bundle_digest: &a.digest,
                revision: "rev",
                templated: a.templated,
                variants: &a.variants,
                rollback: a.rollback.as_deref().map(|d| Rollback { bundle_digest: d, revision: "old" }),
                rollout: &a.rollout,
            };
            (a.name.as_str(), view)
        })
        .collect();
    let reports = &w.reports;
    Fleet {
        clusters,
        apps,
        reports: Box::new(move |app, cluster| {
            reports.get(&(app.to_string(), cluster.to_string())).map(|(d, sync, health)| Reported {
                bundle_digest: d,
                revision: "reported",
                sync: *sync,
                health: *health,
            })
        }),
    }
}

/// `cluster`'s assignments as (app, digest).
fn assigned(w: &World, cluster: &str) -> Vec<(String, String)> {
    let f = fleet(w);
    f.assignments(&f.admissions(), cluster).into_iter().map(|a| (a.app, a.bundle_digest)).collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

#[test]
fn each_rule_of_what_a_cluster_gets() {
    let base = World {
        clusters: vec![("c1".into(), labels(&[("env", "prod")]), true), ("c2".into(), labels(&[("env", "dev")]), true)],
        ..Default::default()
    };
    // By name, by selector, not yet rendered.
    let mut w = base.clone();
    w.apps = vec![app("named", "c1", "d1"), app("prod", "env=prod", "d2"), app("unrendered", "c1", "")];
    assert_eq!(assigned(&w, "c1"), [pair("named", "d1"), pair("prod", "d2")]);
    assert_eq!(assigned(&w, "c2"), []);
    assert_eq!(assigned(&w, "nope"), [], "an unknown cluster gets nothing");

    // Per-cluster variants: each cluster its own; a cluster without one keeps what it runs.
    let mut w = base.clone();
    let mut t = app("t", "env in (prod,dev)", "all");
    t.templated = true;
    t.variants = [("c1".to_string(), "v1".to_string())].into();
    w.apps = vec![t];
    w.reports.insert(pair("t", "c2"), ("v0".into(), SyncStatus::Synced, Health::Healthy));
    assert_eq!(assigned(&w, "c1"), [pair("t", "v1")]);
    assert_eq!(assigned(&w, "c2"), [pair("t", "v0")], "held at what it runs");
    w.reports.clear();
    assert_eq!(assigned(&w, "c2"), [], "nothing to hold: nothing assigned");

    // Rolled back: the old bundle everywhere, automation off.
    let mut w = base.clone();
    let mut r = app("r", "c1", "new");
    r.spec.sync_policy.automated = true;
    r.rollback = Some("old".into());
    w.apps = vec![r];
    let f = fleet(&w);
    let a = &f.assignments(&f.admissions(), "c1")[0];
    assert_eq!((a.bundle_digest.as_str(), a.revision.as_str(), a.sync_policy.automated), ("old", "old", false));

    // dependsOn: held until the dependency is Synced and Healthy at its own bundle there.
    let mut w = base.clone();
    let mut b = app("b", "c1", "b2");
    b.spec.depends_on = vec!["a".into()];
    w.apps = vec![app("a", "c1", "a2"), b];
    w.reports.insert(pair("b", "c1"), ("b1".into(), SyncStatus::Synced, Health::Healthy));
    for (a_reports, b_gets) in [
        (None, "b1"),
        (Some(("a1", SyncStatus::Synced, Health::Healthy)), "b1"),
        (Some(("a2", SyncStatus::Synced, Health::Progressing)), "b1"),
        (Some(("a2", SyncStatus::OutOfSync, Health::Healthy)), "b1"),
        (Some(("a2", SyncStatus::Synced, Health::Healthy)), "b2"),
    ] {
        match a_reports {
            Some((d, s, h)) => w.reports.insert(pair("a", "c1"), (d.into(), s, h)),
            None => w.reports.remove(&pair("a", "c1")),
        };
        assert_eq!(assigned(&w, "c1")[1], pair("b", b_gets), "a reports {a_reports:?}");
    }

    // A rollout admits clusters in order of its label, then name.
    let mut w = World {
        clusters: vec![
            ("z".into(), labels(&[("wave", "1")]), true),
            ("a".into(), labels(&[("wave", "2")]), true),
            ("m".into(), labels(&[("wave", "1")]), false),
        ],
        ..Default::default()
    };
    let mut ro = app("ro", "wave in (1,2)", "new");
    ro.spec.rollout = Some(RolloutStrategy {
        step: StepSize::Count(1),
        max_unavailable: 0,
        pause_secs: 0,
        order_by: "wave".into(),
        offline_timeout_secs: 300,
    });
    ro.rollout = rollout::State { digest: "new".into(), admitted: 2, ..Default::default() };
    w.apps = vec![ro];
    let f = fleet(&w);
    let order: Vec<String> = f
        .rollout_targets(&f.apps["ro"], f.apps["ro"].spec.rollout.as_ref().unwrap())
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(order, ["m", "z", "a"]);
    assert!(matches!(
        f.rollout_targets(&f.apps["ro"], f.apps["ro"].spec.rollout.as_ref().unwrap())[0].progress,
        rollout::Progress::Offline { since: 100 }
    ));
    assert_eq!(assigned(&w, "m"), [pair("ro", "new")]);
    assert_eq!(assigned(&w, "z"), [pair("ro", "new")]);
    assert_eq!(assigned(&w, "a"), [], "not admitted, running nothing yet");
}

#[test]
fn dependency_checks_name_what_is_missing_and_the_cycle() {
    let deps: BTreeMap<&str, Vec<String>> =
        [("a", vec![]), ("b", vec!["a".to_string()]), ("c", vec!["b".to_string()])].into();
    let lookup = |n: &str| deps.get(n).map(Vec::as_slice);
    assert_eq!(check_dependencies(lookup, "d", &["c".into()]), Ok(()));
    let missing = check_dependencies(lookup, "d", &["x".into()]).unwrap_err();
    assert!(missing.contains("\"x\" does not exist"), "{missing}");
    let cycle = check_dependencies(lookup, "a", &["c".into()]).unwrap_err();
    assert_eq!(cycle, "dependsOn would form a cycle: a → c → b → a");
}

/// Generated fleets: up to 6 clusters labelled env and tier, up to 6 Applications by name or
/// selector, dependencies only on earlier Applications (no cycles), random reports.
fn worlds() -> impl Strategy<Value = World> {
    let cluster = (prop::sample::select(vec!["prod", "dev"]), prop::sample::select(vec!["a", "b"]), any::<bool>());
    let reported = prop::option::of((
        prop::sample::select(vec!["d0", "d1", "v-c0", "v-c1"]),
        prop::sample::select(vec![SyncStatus::Synced, SyncStatus::OutOfSync]),
        prop::sample::select(vec![Health::Healthy, Health::Progressing, Health::Degraded]),
    ));
    let application = (
        prop::sample::select(vec!["c0", "c1", "c5", "env=prod", "tier=a", "env in (prod,dev)"]),
        prop::sample::select(vec!["", "d1", "d2"]),
        any::<bool>(),
        prop::collection::vec(0usize..6, 0..3),
        prop::option::of((0usize..4, any::<bool>())),
    );
    (
        prop::collection::vec(cluster, 0..6),
        prop::collection::vec(application, 0..6),
        prop::collection::vec(reported, 36),
    )
        .prop_map(|(clusters, apps, reports)| {
            let mut w = World::default();
            for (i, (env, tier, connected)) in clusters.into_iter().enumerate() {
                w.clusters.push((format!("c{i}"), labels(&[("env", env), ("tier", tier)]), connected));
            }
            for (i, (dest, digest, templated, deps, rollout)) in apps.into_iter().enumerate() {
                let mut a = app(&format!("app{i}"), dest, digest);
                a.spec.depends_on = deps.into_iter().filter(|d| *d < i).map(|d| format!("app{d}")).collect();
                if templated && !digest.is_empty() {
                    a.templated = true;
                    a.variants = w.clusters.iter().step_by(2).map(|(n, _, _)| (n.clone(), format!("v-{n}"))).collect();
                }
                if let Some((admitted, started)) = rollout {
                    a.spec.rollout = Some(RolloutStrategy {
                        step: StepSize::Count(1),
                        max_unavailable: 0,
                        pause_secs: 0,
                        order_by: "tier".into(),
                        offline_timeout_secs: 300,
                    });
                    a.rollout = rollout::State {
                        digest: if started { digest.into() } else { "older".into() },
                        admitted,
                        ..Default::default()
                    };
                }
                w.apps.push(a);
            }
            for (k, r) in reports.into_iter().enumerate() {
                let (a, c) = (k / 6, k % 6);
                if let (Some((d, s, h)), true) = (r, a < w.apps.len() && c < w.clusters.len()) {
                    w.reports.insert((format!("app{a}"), format!("c{c}")), (d.to_string(), s, h));
                }
            }
            w
        })
}

proptest! {
    #[test]
    fn scheduling_is_a_function_of_its_inputs(w in worlds()) {
        for (c, _, _) in &w.clusters {
            prop_assert_eq!(assigned(&w, c), assigned(&w, c));
        }
    }

    #[test]
    fn a_cluster_gets_only_what_targets_it_and_everything_free_to_go(w in worlds()) {
        let f = fleet(&w);
        let admissions = f.admissions();
        for c in f.clusters.values() {
            let got = f.assignments(&admissions, c.name);
            for a in &got {
                prop_assert!(f.targets(&f.apps[a.app.as_str()], c), "{} is not for {}", a.app, c.name);
            }
            for app in f.apps.values() {
                let free = f.targets(app, c)
                    && !app.bundle_digest.is_empty()
                    && app.spec.depends_on.is_empty()
                    && app.spec.rollout.is_none()
                    && !app.templated;
                if free {
                    prop_assert!(got.iter().any(|a| a.app == app.name && a.bundle_digest == app.bundle_digest),
                        "{} at {} on {}", app.name, app.bundle_digest, c.name);
                }
            }
        }
    }

    #[test]
    fn nothing_new_goes_where_a_dependency_is_unmet(w in worlds()) {
        let f = fleet(&w);
        let admissions = f.admissions();
        for c in f.clusters.values() {
            for a in f.assignments(&admissions, c.name) {
                let app = &f.apps[a.app.as_str()];
                if !f.unmet_dependencies(app, c.name).is_empty() {
                    let held = (f.reports)(app.name, c.name).map(|r| r.bundle_digest.to_string());
                    prop_assert_eq!(Some(a.bundle_digest.clone()), held, "{} on {}", app.name, c.name);
                }
            }
        }
    }

    #[test]
    fn a_rollout_admits_a_prefix_that_only_grows(w in worlds()) {
        let f = fleet(&w);
        for app in f.apps.values() {
            let Some(strategy) = app.spec.rollout.as_ref() else { continue };
            let order: Vec<String> = f.rollout_targets(app, strategy).into_iter().map(|t| t.name).collect();
            let mut previous: Vec<String> = Vec::new();
            for admitted in 0..=order.len() + 1 {
                let state = rollout::State { digest: app.bundle_digest.into(), admitted, ..Default::default() };
                let view = Application { rollout: &state, ..app.clone() };
                let apps = BTreeMap::from([(app.name, view)]);
                let g = Fleet { clusters: f.clusters.clone(), apps, reports: Box::new(|a, c| (f.reports)(a, c)) };
                let mut now: Vec<String> = g.admissions().remove(app.name).unwrap_or_default().into_iter().collect();
                now.sort();
                prop_assert!(previous.iter().all(|p| now.contains(p)), "step {}: {:?} then {:?}", admitted, previous, now);
                prop_assert_eq!(now.len(), admitted.min(order.len()));
                previous = now;
            }
        }
    }
}
