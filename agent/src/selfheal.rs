//! Watch-driven self-heal: one metadata watch per kind the agent manages, filtered to objects
//! carrying Bosun's tracking label. A change to what we manage (spec, labels, annotations, or a
//! deletion) wakes the reconcile loop at once instead of waiting for the next resync.
//! Status-only updates (same generation) wake it only while something is progressing (so a
//! rollout's end is seen at once); at steady state controllers writing status cause no churn.

use std::collections::HashMap;
use std::sync::Arc;

use bosun_core::tracking::APP_LABEL;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::reconcile::Shared;

/// What of an object's metadata makes a change worth a reconcile.
#[derive(PartialEq, Eq)]
struct Seen {
    generation: Option<i64>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

pub struct Watches {
    client: kube::Client,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for (_, t) in self.running.lock().drain() {
            t.abort();
        }
    }
}

impl Watches {
    pub fn new(client: kube::Client) -> Self {
        Self { client, running: Mutex::new(HashMap::new()) }
    }

    /// Starts a watch for each resource not watched yet.
    pub fn ensure(&self, resources: &[ApiResource], shared: &Arc<Shared>) {
        let mut running = self.running.lock();
        for ar in resources {
            let key = format!("{}/{}/{}", ar.group, ar.version, ar.plural);
            if running.get(&key).is_some_and(|t| !t.is_finished()) {
                continue;
            }
            debug!(resource = %key, "watching managed objects");
            let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), ar);
            running.insert(key, tokio::spawn(watch(api, shared.clone())));
        }
    }
}

async fn watch(api: Api<PartialObjectMeta<DynamicObject>>, shared: Arc<Shared>) {
    // `Api<PartialObjectMeta<_>>` makes metadata-only requests: no specs or statuses on the wire.
    let stream = watcher::watcher(api, watcher::Config::default().labels(APP_LABEL)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut initialising = true;
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        let woken = match event {
            Event::Init => {
                initialising = true;
                None
            }
            Event::InitApply(o) => {
                record(&mut seen, &o);
                None
            }
            Event::InitDone => {
                initialising = false;
                None
            }
            Event::Apply(o) => {
                let changed = record(&mut seen, &o);
                let progressing = shared.progressing.load(std::sync::atomic::Ordering::Relaxed);
                (!initialising && (changed || progressing)).then_some(o)
            }
            Event::Delete(o) => {
                seen.remove(o.metadata.uid.as_deref().unwrap_or_default());
                Some(o)
            }
        };
        if let Some(o) = woken {
            // The label names the Application the object belongs to; only it is looked at.
            match o.metadata.labels.as_ref().and_then(|l| l.get(APP_LABEL)) {
                Some(label) => shared.touch_label(label),
                None => shared.touch_all(),
            }
        }
    }
}

/// Records what was seen of `o`; returns whether it changed in a way worth reconciling.
fn record(seen: &mut HashMap<String, Seen>, o: &PartialObjectMeta<DynamicObject>) -> bool {
    let m = &o.metadata;
    let now = Seen { generation: m.generation, labels: m.labels.clone(), annotations: m.annotations.clone() };
    let uid = m.uid.clone().unwrap_or_default();
    // Kinds without a generation (ConfigMaps, Secrets…) have no status churn: any change counts.
    let changed = m.generation.is_none() || seen.get(&uid) != Some(&now);
    seen.insert(uid, now);
    changed
}
