//! Applications: create, update, delete and sync requests — each one transaction of O(1)
//! records whatever the number of clusters targeted (assignments are computed, not stored) —
//! their views, and the children an app-of-apps path declares.

use std::collections::BTreeSet;

use bosun_core::AppSpec;
use bosun_core::argo::Converted;
use bosun_store::{Expect, Txn};
use tracing::info;

use super::cache::State;
use super::records::*;
use super::{AppView, ControlPlane, fleet, view};
use crate::error::{Error, Result};
use crate::git::redact_url;

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_record(name: &str, spec: AppSpec, parent: &str, warnings: Vec<String>) -> AppRecord {
    AppRecord {
        name: name.into(),
        uid: new_uid(),
        spec,
        generation: 1,
        sync_request: 0,
        sync_prune: false,
        status: AppSourceStatus::default(),
        rollback: None,
        parent: parent.into(),
        warnings,
        rollout: Default::default(),
    }
}

/// Refuses a dependency on a missing Application or one that would close a cycle; pins the
/// versions of the dependencies read (a concurrent change to them conflicts).
fn check_dependencies(st: &State, name: &str, deps: &[String], txn: Txn) -> Result<Txn> {
    bosun_core::schedule::check_dependencies(
        |n| st.apps.get(n).map(|a| a.value.spec.depends_on.as_slice()),
        name,
        deps,
    )
    .map_err(Error::InvalidRequest)?;
    Ok(deps.iter().fold(txn, |t, d| match st.apps.get(d) {
        Some(a) => t.expect(app_key(d), Expect::Version(a.version)),
        None => t,
    }))
}

/// Adds to `txn` the deletion of `name`, its statuses, its history and its children's, all
/// at the versions read.
/// Deletes an Application and its children. With `cascade` (a user's deletion), every
/// cluster is told whether their objects go too (see [`RemovedRecord`]); without it (a child
/// no longer declared), agents follow each Application's last prune policy.
fn delete_tree(st: &State, name: &str, mut txn: Txn, deleted: &mut BTreeSet<String>, cascade: Option<bool>) -> Txn {
    let Some(a) = st.apps.get(name) else { return txn };
    if !deleted.insert(name.to_string()) {
        return txn;
    }
    txn = txn.expect(app_key(name), Expect::Version(a.version)).delete(app_key(name));
    if let Some(cascade) = cascade {
        let removed = RemovedRecord { app: name.into(), app_uid: a.value.uid.clone(), cascade, at: super::now() };
        txn = txn.put(removed_key(name), encode(&removed));
    }
    for (app, cluster) in st.statuses.keys().filter(|(a, _)| a == name) {
        txn = txn.delete(status_key(app, cluster));
    }
    if st.history_counters.contains_key(name) {
        txn = txn.delete(history_counter_key(name));
    }
    for ((app, cluster), entries) in st.history.range((name.to_string(), String::new())..) {
        if app != name {
            break;
        }
        for id in entries.keys() {
            txn = txn.delete(history_key(app, cluster, *id));
        }
    }
    let children: Vec<String> =
        st.apps.values().filter(|c| c.value.parent == name).map(|c| c.value.name.clone()).collect();
    for c in children {
        txn = delete_tree(st, &c, txn, deleted, cascade);
    }
    txn
}

impl ControlPlane {
    pub async fn create_app(&self, name: &str, spec: AppSpec) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        let key = app_key(name);
        let rec = self
            .transact(|st| {
                if st.apps.contains_key(name) {
                    return Err(Error::AppExists(name.into()));
                }
                let rec = new_record(name, spec.clone(), "", Vec::new());
                let txn = Txn::new().expect(&key, Expect::Absent).put(&key, encode(&rec));
                Ok((Some(check_dependencies(st, name, &rec.spec.depends_on, txn)?), rec))
            })
            .await?;
        info!(app = name, cluster = %rec.spec.destination.cluster, selector = %rec.spec.destination.selector, repo = %redact_url(&rec.spec.source.repo_url), "application created");
        Ok(rec)
    }

    /// Replaces an Application's spec; its status, sync requests and history stay. With
    /// `generation`, only while the spec is still at that generation (else [`Error::Conflict`]).
    pub async fn update_app(&self, name: &str, spec: AppSpec, generation: Option<u64>) -> Result<AppRecord> {
        let spec = spec.validate(name)?;
        let rec = self
            .modify_app(name, |st, rec| {
                if let Some(g) = generation.filter(|g| *g != rec.generation) {
                    return Err(Error::Conflict(format!(
                        "application {name:?} changed since it was read (generation {g}, now {}); read it again and retry",
                        rec.generation
                    )));
                }
                bosun_core::schedule::check_dependencies(
                    |n| st.apps.get(n).map(|a| a.value.spec.depends_on.as_slice()),
                    name,
                    &spec.depends_on,
                )
                .map_err(Error::InvalidRequest)?;
                if rec.spec != spec {
                    rec.spec = spec.clone();
                    rec.generation += 1;
                }
                Ok(true)
            })
            .await?;
        info!(app = name, "application updated");
        Ok(rec)
    }

    /// Deletes an Application with its children (app of apps), statuses and history, in one
    /// transaction. As Argo CD: with `cascade` its clusters delete its objects (whatever the
    /// prune policy); without, they leave them in place (orphaned).
    pub async fn delete_app(&self, name: &str, cascade: bool) -> Result<()> {
        let deleted = self
            .transact(|st| {
                if !st.apps.contains_key(name) {
                    return Err(Error::AppNotFound(name.into()));
                }
                let mut deleted = BTreeSet::new();
                let txn = delete_tree(st, name, Txn::new(), &mut deleted, Some(cascade));
                Ok((Some(txn), deleted))
            })
            .await?;
        for d in deleted {
            info!(app = %d, cascade, "application deleted");
        }
        Ok(())
    }

    /// Asks the Application's clusters to sync now (delivered durably with the assignment).
    /// A sync request ends a rollback: the latest revision is synced again.
    /// With `prune`, that sync prunes whatever the sync policy says.
    pub async fn sync_app(&self, name: &str, prune: bool) -> Result<AppRecord> {
        let rec = self
            .modify_app(name, |_, rec| {
                rec.sync_request += 1;
                rec.sync_prune = prune;
                rec.rollback = None;
                Ok(true)
            })
            .await?;
        info!(app = name, sync_request = rec.sync_request, prune, "sync requested");
        Ok(rec)
    }

    /// Read-modify-write of one Application at the version read: `f` changes the record and
    /// says whether it did; a concurrent write makes it run again on the newer record.
    pub(super) async fn modify_app(
        &self,
        name: &str,
        f: impl FnMut(&State, &mut AppRecord) -> Result<bool>,
    ) -> Result<AppRecord> {
        self.modify_app_requiring(name, &[], f).await
    }

    /// [`Self::modify_app`], written only while every key of `present` exists (the bundles
    /// a new status refers to: collection cannot take them in between).
    pub(super) async fn modify_app_requiring(
        &self,
        name: &str,
        present: &[String],
        mut f: impl FnMut(&State, &mut AppRecord) -> Result<bool>,
    ) -> Result<AppRecord> {
        let key = app_key(name);
        self.transact(|st| {
            let current = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
            let mut rec = current.value.clone();
            if !f(st, &mut rec)? || rec == current.value {
                return Ok((None, rec));
            }
            let txn = present.iter().fold(Txn::new(), |t, k| t.expect(k, Expect::Present));
            Ok((Some(txn.expect(&key, Expect::Version(current.version)).put(&key, encode(&rec))), rec))
        })
        .await
    }

    pub fn app(&self, name: &str) -> Result<AppView> {
        let st = self.state.read();
        let rec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?;
        Ok(view(&st, &fleet(&st), &rec.value))
    }

    pub fn apps(&self) -> Vec<AppView> {
        let st = self.state.read();
        let f = fleet(&st);
        st.apps.values().map(|a| view(&st, &f, &a.value)).collect()
    }

    /// Applications whose source a push touches (see [`bosun_core::webhook::PushEvent::touches`]).
    pub fn apps_touched_by(&self, event: &bosun_core::webhook::PushEvent) -> Vec<String> {
        self.state
            .read()
            .apps
            .values()
            .filter(|a| event.touches(&a.value.spec.source))
            .map(|a| a.value.name.clone())
            .collect()
    }

    /// Makes the children of `parent` what its path declares, in one transaction: creates new
    /// ones, updates changed ones, deletes those no longer declared (which prunes their
    /// objects when their policy prunes). Returns the children to refresh.
    pub(super) async fn reconcile_children(&self, parent: &str, declared: Vec<Converted>) -> Result<Vec<String>> {
        let (changed, log) = self
            .transact(|st| {
                let Some(p) = st.apps.get(parent) else { return Ok((None, (Vec::new(), Vec::new()))) };
                let p = &p.value;
                let mut txn = Txn::new();
                let (mut changed, mut log, mut problems) = (Vec::new(), Vec::new(), Vec::new());
                let mut keep = BTreeSet::new();
                for c in &declared {
                    let mut spec = c.spec.clone();
                    if c.inherits_destination {
                        spec.destination.cluster = p.spec.destination.cluster.clone();
                        spec.destination.selector = p.spec.destination.selector.clone();
                    }
                    let spec = match spec.validate(&c.name) {
                        Ok(s) => s,
                        Err(e) => {
                            problems.push(format!("child {:?}: {e}", c.name));
                            continue;
                        }
                    };
                    keep.insert(c.name.clone());
                    let key = app_key(&c.name);
                    match st.apps.get(&c.name) {
                        Some(e) if e.value.parent != parent => problems.push(format!(
                            "child {:?} is declared here but an Application of that name already exists{}",
                            c.name,
                            if e.value.parent.is_empty() {
                                String::new()
                            } else {
                                format!(" as a child of {:?}", e.value.parent)
                            }
                        )),
                        Some(e) if e.value.spec == spec && e.value.warnings == c.warnings => {}
                        Some(e) => {
                            let generation = e.value.generation + u64::from(e.value.spec != spec);
                            let rec = AppRecord { spec, generation, warnings: c.warnings.clone(), ..e.value.clone() };
                            txn = txn.expect(&key, Expect::Version(e.version)).put(&key, encode(&rec));
                            log.push((c.name.clone(), "child application updated"));
                            changed.push(c.name.clone());
                        }
                        None => {
                            let rec = new_record(&c.name, spec, parent, c.warnings.clone());
                            txn = txn.expect(&key, Expect::Absent).put(&key, encode(&rec));
                            log.push((c.name.clone(), "child application created"));
                            changed.push(c.name.clone());
                        }
                    }
                }
                let gone: Vec<String> = st
                    .apps
                    .values()
                    .filter(|a| a.value.parent == parent && !keep.contains(&a.value.name))
                    .map(|a| a.value.name.clone())
                    .collect();
                let mut deleted = BTreeSet::new();
                for g in gone {
                    txn = delete_tree(st, &g, txn, &mut deleted, None);
                }
                log.extend(deleted.into_iter().map(|d| (d, "child application no longer declared; deleted")));
                let error = problems.join("; ");
                if !error.is_empty() && p.status.error != error {
                    let mut rec = p.clone();
                    rec.status.error = error;
                    let key = app_key(parent);
                    txn = txn.expect(&key, Expect::Version(st.apps[parent].version)).put(&key, encode(&rec));
                }
                Ok(((!txn.writes.is_empty()).then_some(txn), (changed, log)))
            })
            .await?;
        for (child, what) in log {
            info!(app = %child, parent, "{what}");
        }
        Ok(changed)
    }
}
