//! Runs a decision's actions against the cluster and says what each did.
//!
//! Actions come in the order the sync needs; consecutive writes of the same install rank
//! (Namespaces, then CRDs, then ServiceAccounts…) form a batch whose actions run
//! concurrently (bounded), batches run one after another, and after a batch with a failed
//! write the later writes are not attempted (the operation fails and may be retried). Every
//! result is recorded in the cache, so the next pass sees what was written.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bosun_core::ObjectRef;
use bosun_core::app::Propagation;
use bosun_core::sync::{Action, DeleteWhy, Live, Outcome};
use futures::StreamExt;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::cache::View;
use crate::kube::{ClusterApi, Deleted, KubeError};

/// Writes of one install rank run together; deletions run together.
fn batch_of(a: &Action) -> (u8, usize) {
    match a {
        Action::Apply { object, .. } | Action::Create { object, .. } => {
            (0, bosun_core::plan::kind_rank(object["kind"].as_str().unwrap_or_default()))
        }
        Action::Delete { .. } => (1, 0),
    }
}

fn is_crd(o: &Value) -> bool {
    o["kind"] == "CustomResourceDefinition"
}

/// Runs `actions`; one outcome per action that ran, in order.
/// Called with each action run and what it did (metrics).
pub type Counted<'a> = &'a (dyn Fn(&Action, &Outcome) + Sync);

pub async fn run(
    cluster: &ClusterApi,
    view: &View<'_>,
    actions: Vec<Action>,
    concurrency: usize,
    counted: Counted<'_>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(actions.len());
    let mut crd_written = false;
    let mut write_failed = false;
    let mut rest = actions.into_iter().peekable();
    while let Some(first) = rest.next() {
        let key = batch_of(&first);
        let mut batch = vec![first];
        while let Some(next) = rest.next_if(|a| batch_of(a) == key) {
            batch.push(next);
        }
        let writes = key.0 == 0;
        if writes && write_failed {
            continue;
        }
        let crds_before = crd_written;
        let has_crd = batch.iter().any(|a| matches!(a, Action::Apply { object, .. } if is_crd(object)));
        let results: Vec<Outcome> = futures::stream::iter(batch)
            .map(|a| async move {
                let outcome = one(cluster, view, &a, crds_before).await;
                counted(&a, &outcome);
                outcome
            })
            .buffered(concurrency.max(1))
            .collect()
            .await;
        if has_crd {
            // New kinds may be served now.
            cluster.forget_kinds();
            crd_written = true;
        }
        write_failed |= writes && results.iter().any(|o| matches!(o, Outcome::Failed { .. }));
        outcomes.extend(results);
    }
    outcomes
}

async fn one(cluster: &ClusterApi, view: &View<'_>, action: &Action, after_crd: bool) -> Outcome {
    match action {
        Action::Apply { object, replace, force } => {
            match apply(cluster, view, object, *replace, *force, after_crd).await {
                Ok(out) => {
                    view.cache.wrote(out);
                    Outcome::Done
                }
                Err(e) => {
                    warn!(error = %e, "apply failed");
                    Outcome::Failed { message: e.to_string() }
                }
            }
        }
        Action::Create { key, object } => match with_new_kinds(after_crd, || cluster.create(object)).await {
            Ok(out) => {
                let name = out["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let uid = out["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                view.cache.wrote(out);
                info!(hook = %key, name, "hook created");
                Outcome::Created { key: key.clone(), name, uid }
            }
            Err(e) => {
                warn!(hook = %key, error = %e, "creating a hook failed");
                Outcome::Failed { message: e.to_string() }
            }
        },
        Action::Delete { r, uid, propagation, why } => match cluster.delete(r, uid, None, *propagation).await {
            Ok(d) => {
                match &d {
                    Deleted::Pending(o) => view.cache.wrote(o.clone()),
                    Deleted::Gone => view.cache.deleted(r, uid),
                    Deleted::Replaced => {}
                }
                match (why, d) {
                    (_, Deleted::Replaced) => {
                        info!(object = %r, "not deleted: it was deleted and created again by someone else since it was seen")
                    }
                    (DeleteWhy::Prune, _) => info!(object = %r, "pruned"),
                    (DeleteWhy::Cascade, _) => info!(object = %r, "deleted with its application"),
                    (DeleteWhy::Hook, _) => info!(hook = %r, "hook deleted"),
                }
                Outcome::Done
            }
            Err(e) => {
                warn!(object = %r, error = %e, "delete failed");
                Outcome::Failed { message: e.to_string() }
            }
        },
    }
}

/// Right after a CRD was applied its kind may take a moment to be served: an unknown kind is
/// looked up again for a few seconds then.
async fn with_new_kinds<F, Fut>(after_crd: bool, f: F) -> Result<Arc<Value>, KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Arc<Value>, KubeError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(if after_crd { 8 } else { 0 });
    f.retry(backoff).when(|e| matches!(e, KubeError::UnknownKind { .. })).await
}

async fn apply(
    cluster: &ClusterApi,
    view: &View<'_>,
    object: &Value,
    replace: bool,
    force: bool,
    after_crd: bool,
) -> Result<Arc<Value>, KubeError> {
    let Some(r) = ObjectRef::of(object) else { return Err(KubeError::NoIdentity { verb: "apply" }) };
    let live = view.get(&r);
    let result = with_new_kinds(after_crd, || async {
        if replace { cluster.replace(object, live.as_deref()).await } else { cluster.apply(object).await }
    })
    .await;
    match (result, &live) {
        // Force=true: an update the server refuses (an immutable field) becomes delete + create.
        (Err(KubeError::Api { source: kube::Error::Api(s), .. }), Some(live))
            if force && (s.code == 422 || s.code == 409) =>
        {
            debug!(object = %r, reason = %s.message, "force: deleting and creating again");
            let uid = live["metadata"]["uid"].as_str().unwrap_or_default();
            match cluster.delete(&r, uid, None, Propagation::Background).await? {
                Deleted::Gone | Deleted::Replaced => {}
                Deleted::Pending(_) => {
                    return Err(KubeError::Api {
                        object: r.to_string(),
                        verb: "force-replace",
                        source: kube::Error::Api(s),
                    });
                }
            }
            info!(object = %r, "force: deleted and created again");
            cluster.apply(object).await
        }
        (result, _) => result,
    }
}
