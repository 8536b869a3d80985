//! Refreshing Applications: Git fetches (each repository on its own, with a deadline — a
//! hung host fails its own Applications' refresh, never another's), renders into bundles
//! (cached per repository, commit and path, failures too), per-cluster variants, and the
//! Application's source status written by compare-and-set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bosun_core::AppSpec;
use bosun_core::argo::Converted;
use bosun_store::{Store, Txn};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::records::{AppRecord, AppSourceStatus, bundle_key};
use super::{ControlPlane, now};
use crate::error::{Error, Result};
use crate::git::redact_url;
use crate::render::RenderKey;

/// One path rendered at one commit.
#[derive(Debug, Clone)]
pub(super) struct RenderedPath {
    digest: String,
    children: Vec<Converted>,
    /// What the manifests do that is accepted but probably a mistake.
    warnings: Vec<String>,
    /// No objects and no children (refused unless the Application allows empty renders).
    empty: bool,
}

/// Renders by (repository, commit, path), successes and failures. A path that failed at a
/// commit is not rendered again at that commit until its backoff has passed (1 min,
/// doubling to 30 min) or someone asks (create, update, refresh, webhook): the same commit
/// fails the same way, and re-running it on every poll costs CPU for nothing. A new commit
/// is a new key. The oldest entries go beyond [`RenderCache::CAPACITY`].
#[derive(Default)]
pub(super) struct RenderCache {
    entries: HashMap<RenderKey, (u64, CachedRender)>,
    tick: u64,
}

enum CachedRender {
    Ok(RenderedPath),
    Failed { message: String, at: std::time::Instant, attempts: u32 },
}

impl RenderCache {
    const CAPACITY: usize = 4096;

    fn backoff(attempts: u32) -> Duration {
        Duration::from_secs(60u64.saturating_mul(1 << attempts.saturating_sub(1).min(5))).min(Duration::from_secs(1800))
    }

    /// A cached render: `Ok`, or a failure still within its backoff (`retry` ignores that).
    fn get(&mut self, key: &RenderKey, retry: bool) -> Option<std::result::Result<RenderedPath, String>> {
        self.tick += 1;
        let tick = self.tick;
        let (used, entry) = self.entries.get_mut(key)?;
        *used = tick;
        match entry {
            CachedRender::Ok(r) => Some(Ok(r.clone())),
            CachedRender::Failed { message, at, attempts } => {
                (!retry && at.elapsed() < Self::backoff(*attempts)).then(|| Err(message.clone()))
            }
        }
    }

    fn insert_ok(&mut self, key: RenderKey, r: RenderedPath) {
        self.insert(key, CachedRender::Ok(r));
    }

    fn insert_err(&mut self, key: RenderKey, message: String) {
        let attempts = match self.entries.get(&key) {
            Some((_, CachedRender::Failed { attempts, .. })) => attempts + 1,
            _ => 1,
        };
        self.insert(key, CachedRender::Failed { message, at: std::time::Instant::now(), attempts });
    }

    fn insert(&mut self, key: RenderKey, entry: CachedRender) {
        self.tick += 1;
        self.entries.insert(key, (self.tick, entry));
        if self.entries.len() > Self::CAPACITY {
            // Drop the least recently used eighth.
            let mut ticks: Vec<u64> = self.entries.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 8];
            self.entries.retain(|_, (t, _)| *t > cut);
        }
    }
}

/// A targeted cluster and its template values (`cluster.name`, `cluster.labels.*`).
type ClusterValues = (String, BTreeMap<String, String>);

/// What a refresh rendered.
#[derive(Debug, Default)]
struct Rendered {
    commit: String,
    digest: String,
    variants: BTreeMap<String, String>,
    templated: bool,
    children: Vec<Converted>,
    /// Clusters whose variant could not be rendered (they keep their last bundle).
    errors: Vec<String>,
    /// Warnings of the renders.
    warnings: Vec<String>,
    /// Bundles to store before the Application refers to them.
    bundles: BTreeMap<String, Vec<u8>>,
}

fn combined_digest(variants: &BTreeMap<String, String>) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(variants).unwrap_or_default()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("a refresh task failed: {e}")))?
}

impl ControlPlane {
    /// Fetches (when `fetch`) and re-renders one Application; errors are recorded on the
    /// Application and also returned. A fetch means someone asked (a create, an update, a
    /// refresh, a webhook): then a render that failed at this commit is tried again at once;
    /// a poll leaves it to its backoff. The record is written only when what it says changed.
    pub async fn refresh_app(self: &Arc<Self>, name: &str, fetch: bool) -> Result<AppRecord> {
        // One refresh of this Application at a time here; other Applications go on.
        let lock = self.refreshing.lock().entry(name.to_string()).or_default().clone();
        let _serial = lock.lock().await;
        let (spec, clusters) = {
            let st = self.state.read();
            let spec = st.apps.get(name).ok_or_else(|| Error::AppNotFound(name.into()))?.value.spec.clone();
            let clusters: Vec<ClusterValues> = st
                .clusters
                .values()
                .map(|c| &c.value)
                .filter(|c| spec.destination.targets(&c.record.name, &c.selector_labels))
                .map(|c| {
                    (c.record.name.clone(), bosun_core::template::cluster_values(&c.record.name, &c.selector_labels))
                })
                .collect();
            (spec, clusters)
        };
        let outcome = self.resolve_and_render(&spec, fetch, &clusters).await;
        let outcome = match outcome {
            Ok(mut r) => {
                // Bundles first: an Application never refers to one that is not stored.
                let fresh: Vec<(String, Vec<u8>)> = {
                    let st = self.state.read();
                    std::mem::take(&mut r.bundles).into_iter().filter(|(d, _)| !st.bundles.contains_key(d)).collect()
                };
                if !fresh.is_empty() {
                    let txn = fresh.into_iter().fold(Txn::new(), |t, (d, b)| t.put(bundle_key(&d), b));
                    self.commit(txn).await?;
                }
                Ok(r)
            }
            Err(e) => Err(e),
        };
        let mut error_changed = false;
        let mut source_changed = false;
        let bundles: Vec<String> = match &outcome {
            Ok(r) if r.variants.is_empty() => vec![bundle_key(&r.digest)],
            Ok(r) => r
                .variants
                .values()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|d| bundle_key(d))
                .collect(),
            Err(_) => Vec::new(),
        };
        let rec = self
            .modify_app_requiring(name, &bundles, |_, rec| {
                let old = rec.status.clone();
                match &outcome {
                    Ok(r) => {
                        rec.status = AppSourceStatus {
                            revision: r.commit.clone(),
                            bundle_digest: r.digest.clone(),
                            error: r.errors.join("; "),
                            refreshed_at: now(),
                            variants: r.variants.clone(),
                            templated: r.templated,
                            warnings: r.warnings.clone(),
                        };
                    }
                    Err(e) => {
                        rec.status.error = e.to_string();
                        rec.status.refreshed_at = now();
                    }
                }
                error_changed = rec.status.error != old.error;
                source_changed = !rec.status.same_as(&old);
                // Only what it says matters: a refresh that found nothing new writes nothing.
                Ok(source_changed)
            })
            .await?;
        match outcome {
            Ok(Rendered { commit: revision, children, .. }) => {
                if source_changed {
                    info!(app = name, revision = %revision, "application refreshed");
                }
                let changed = self.reconcile_children(name, children).await?;
                if !changed.is_empty() {
                    tokio::spawn(self.clone().refresh_children(changed));
                }
                Ok(rec)
            }
            Err(e) => {
                if error_changed {
                    warn!(app = name, error = %e, "application refresh failed");
                }
                Err(e)
            }
        }
    }

    /// Fetches one repository on a blocking thread (bounded by `--git-timeout`), counted.
    async fn fetch_repo(&self, url: &str) -> Result<()> {
        let creds = self.repo_credentials(url)?;
        let (git, u) = (self.git.clone(), url.to_string());
        let started = std::time::Instant::now();
        let fetched = blocking(move || git.fetch(&u, creds.as_ref())).await;
        self.metrics.git_fetch_duration.observe(started.elapsed().as_secs_f64());
        let outcome = if fetched.is_ok() { "ok" } else { "error" };
        self.metrics.git_fetches.get_or_create(&crate::metrics::Metrics::outcome(outcome)).inc();
        fetched
    }

    /// Resolves the revision and renders: one bundle, or one per distinct variant when the
    /// path or the manifests use per-cluster values (`{{cluster.name}}`,
    /// `{{cluster.labels.KEY}}`) — the path is rendered once per distinct rendered path and
    /// the values substituted once per distinct combination the manifests use.
    async fn resolve_and_render(&self, spec: &AppSpec, fetch: bool, clusters: &[ClusterValues]) -> Result<Rendered> {
        let url = &spec.source.repo_url;
        if fetch {
            self.fetch_repo(url).await?;
        }
        let commit = {
            let (git, u, rev) = (self.git.clone(), url.clone(), spec.source.target_revision.clone());
            blocking(move || git.resolve(&u, &rev)).await?
        };
        let render_err = |path: &str, message: String| Error::Render {
            path: path.to_string(),
            revision: commit.chars().take(12).collect(),
            message,
        };
        if !spec.source.path.contains("{{") {
            let (rendered, bytes) = self.render_path(spec, &commit, &spec.source.path, fetch).await?;
            let mut out = Rendered {
                commit: commit.clone(),
                digest: rendered.digest.clone(),
                children: rendered.children,
                warnings: rendered.warnings,
                ..Default::default()
            };
            out.bundles.extend(bytes.clone().map(|b| (rendered.digest.clone(), b)));
            let text = self.bundle_text(&rendered.digest, bytes).await?;
            variants(&spec.source.path, &rendered.digest, &text, clusters.iter().collect(), &mut out, &render_err)?;
            return Ok(out);
        }
        // A templated path: group clusters by the path they render.
        let mut by_path: BTreeMap<String, Vec<&ClusterValues>> = BTreeMap::new();
        let mut out = Rendered { commit: commit.clone(), templated: true, ..Default::default() };
        for c in clusters {
            match bosun_core::template::substitute(&spec.source.path, &c.1)
                .and_then(|p| bosun_core::app::normalize_path(&p).map_err(|e| e.to_string()))
            {
                Ok(p) => by_path.entry(p).or_default().push(c),
                Err(e) => out.errors.push(format!("cluster {}: path: {e}", c.0)),
            }
        }
        for (path, group) in by_path {
            match self.render_path(spec, &commit, &path, fetch).await {
                Ok((rendered, bytes)) => {
                    out.warnings.extend(rendered.warnings);
                    out.bundles.extend(bytes.clone().map(|b| (rendered.digest.clone(), b)));
                    let text = self.bundle_text(&rendered.digest, bytes).await?;
                    variants(&path, &rendered.digest, &text, group, &mut out, &render_err)?
                }
                Err(e) => {
                    for c in group {
                        out.errors.push(format!("cluster {}: {e}", c.0));
                    }
                }
            }
        }
        if out.variants.is_empty() && !out.errors.is_empty() {
            return Err(render_err(&spec.source.path, out.errors.join("; ")));
        }
        out.digest = combined_digest(&out.variants);
        Ok(out)
    }

    /// A bundle's text: the bytes just rendered, else read from the store.
    async fn bundle_text(&self, digest: &str, fresh: Option<Vec<u8>>) -> Result<String> {
        let bytes = match fresh {
            Some(b) => b,
            None => self.store.get(&bundle_key(digest)).await?.map(|r| r.value).unwrap_or_default(),
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Renders one path at a commit (cached, failures too, see [`RenderCache`]): the render
    /// and, when it ran now, the bundle's bytes to store. `retry` skips a cached failure's
    /// backoff. A cached render whose bundle was collected meanwhile runs again.
    async fn render_path(
        &self,
        spec: &AppSpec,
        commit: &str,
        path: &str,
        retry: bool,
    ) -> Result<(RenderedPath, Option<Vec<u8>>)> {
        let key = RenderKey {
            repo_url: spec.source.repo_url.clone(),
            commit: commit.to_string(),
            path: path.to_string(),
            recurse: spec.source.recurse,
        };
        let cached = self.renders.lock().get(&key, retry);
        let cached = match cached {
            Some(Ok(r)) if !self.state.read().bundles.contains_key(&r.digest) => None,
            other => other,
        };
        let (rendered, bytes) = match cached {
            Some(Ok(r)) => {
                self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("cached")).inc();
                (r, None)
            }
            Some(Err(message)) => {
                self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("cached_error")).inc();
                return Err(Error::Source(message));
            }
            None => {
                let _slot =
                    self.render_slots.acquire().await.map_err(|_| Error::Internal("render slots closed".into()))?;
                let started = std::time::Instant::now();
                let (renderer, git, k, c) =
                    (self.settings.renderer.clone(), self.git.clone(), key.clone(), commit.to_string());
                let r = blocking(move || render_uncached(&renderer, &git, &k, &c)).await;
                self.metrics.render_duration.observe(started.elapsed().as_secs_f64());
                match r {
                    Ok((r, bytes)) => {
                        self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("ok")).inc();
                        self.renders.lock().insert_ok(key.clone(), r.clone());
                        (r, Some(bytes))
                    }
                    Err(e) => {
                        self.metrics.renders.get_or_create(&crate::metrics::Metrics::outcome("error")).inc();
                        self.renders.lock().insert_err(key.clone(), e.to_string());
                        return Err(e);
                    }
                }
            }
        };
        if rendered.empty && !spec.sync_policy.allow_empty {
            return Err(Error::Render {
                path: key.path.clone(),
                revision: commit.chars().take(12).collect(),
                message:
                    "the path renders no objects; refusing to assign an empty bundle (set allowEmpty to permit it)"
                        .into(),
            });
        }
        Ok((rendered, bytes))
    }

    /// Refreshes every Application: each repository fetched once, side by side (a few at a
    /// time, so a host that hangs until --git-timeout holds up only its own Applications),
    /// then the Applications rendered, also side by side.
    pub async fn refresh_all(self: &Arc<Self>) {
        use futures::StreamExt;
        let apps: Vec<(String, String)> = self
            .state
            .read()
            .apps
            .values()
            .map(|a| (a.value.name.clone(), a.value.spec.source.repo_url.clone()))
            .collect();
        let count = apps.len();
        let mut by_repo: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, url) in apps {
            by_repo.entry(url).or_default().push(name);
        }
        let repos = by_repo.len();
        futures::stream::iter(by_repo)
            .map(|(url, names)| async move {
                if let Err(e) = self.fetch_repo(&url).await {
                    warn!(repo = %redact_url(&url), error = %e, "fetch failed");
                }
                for name in names {
                    let _ = self.refresh_app(&name, false).await;
                }
            })
            .buffer_unordered(4)
            .collect::<()>()
            .await;
        info!(repositories = repos, applications = count, "git polled");
    }

    /// Refreshes children after their parent (boxed: refreshing is recursive through it).
    fn refresh_children(self: Arc<Self>, names: Vec<String>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.refresh_apps(&names).await })
    }

    /// Refreshes the named Applications now, fetching each repository once (webhooks).
    pub async fn refresh_apps(self: &Arc<Self>, names: &[String]) {
        let mut fetched = std::collections::HashSet::new();
        for name in names {
            let Some(url) = self.state.read().apps.get(name).map(|a| a.value.spec.source.repo_url.clone()) else {
                continue;
            };
            let fetch = fetched.insert(url);
            let _ = self.refresh_app(name, fetch).await;
        }
    }
}

/// Renders one path: the render and the bundle's bytes.
fn render_uncached(
    renderer: &crate::render::Renderer,
    git: &crate::git::GitCache,
    key: &RenderKey,
    commit: &str,
) -> Result<(RenderedPath, Vec<u8>)> {
    let output = renderer.render(git, key)?;
    let warnings = output.warnings;
    let (apps, objects): (Vec<_>, Vec<_>) =
        output.bundle.objects.into_iter().partition(bosun_core::argo::is_application);
    let mut children = Vec::new();
    for a in &apps {
        let name = a["metadata"]["name"].as_str().unwrap_or_default();
        children.push(bosun_core::argo::convert(a).map_err(|message| Error::Render {
            path: key.path.clone(),
            revision: commit.chars().take(12).collect(),
            message: format!("Application {name:?}: {message}"),
        })?);
    }
    let bundle = bosun_core::Bundle::new(objects);
    let bytes = bundle.to_bytes();
    if bytes.len() > bosun_core::bundle::MAX_BUNDLE_BYTES {
        return Err(Error::Render {
            path: key.path.clone(),
            revision: commit.chars().take(12).collect(),
            message: format!(
                "the rendered bundle is {} bytes, more than the {} allowed; split the Application",
                bytes.len(),
                bosun_core::bundle::MAX_BUNDLE_BYTES
            ),
        });
    }
    let empty = bundle.objects.is_empty() && children.is_empty();
    Ok((RenderedPath { empty, digest: bundle.digest, children, warnings }, bytes))
}

/// Substitutes per-cluster values into the bundle `digest` (whose text is `text`) when it
/// uses any, one bundle per distinct combination; records each cluster's digest in
/// `out.variants` and the new bundles in `out.bundles`.
fn variants(
    path: &str,
    digest: &str,
    text: &str,
    clusters: Vec<&ClusterValues>,
    out: &mut Rendered,
    render_err: &dyn Fn(&str, String) -> Error,
) -> Result<()> {
    let used = bosun_core::template::variables(text);
    let templated_path = out.digest.is_empty();
    if used.is_empty() {
        if templated_path {
            for c in clusters {
                out.variants.insert(c.0.clone(), digest.to_string());
            }
        }
        return Ok(());
    }
    out.templated = true;
    let mut by_values: BTreeMap<Vec<Option<String>>, String> = BTreeMap::new();
    for (name, values) in clusters {
        let key: Vec<Option<String>> = used.iter().map(|v| values.get(v).cloned()).collect();
        if let Some(d) = by_values.get(&key) {
            out.variants.insert(name.clone(), d.clone());
            continue;
        }
        let variant = bosun_core::template::substitute(text, values)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).map_err(|e| e.to_string()))
            .and_then(|objects| {
                // A value may have emptied a name or made a label invalid: refused here,
                // for this Application and cluster, never sent to an agent.
                for o in &objects {
                    bosun_core::manifest::check_rendered(o)?;
                }
                Ok(objects)
            });
        match variant {
            Ok(objects) => {
                let b = bosun_core::Bundle::new(objects);
                out.bundles.insert(b.digest.clone(), b.to_bytes());
                by_values.insert(key, b.digest.clone());
                out.variants.insert(name.clone(), b.digest);
            }
            Err(e) => out.errors.push(format!("cluster {name}: {e}")),
        }
    }
    if !templated_path {
        // The manifests use values: the app's identity is the set of its variants.
        if out.variants.is_empty() && !out.errors.is_empty() {
            return Err(render_err(path, out.errors.join("; ")));
        }
        out.digest = combined_digest(&out.variants);
    }
    Ok(())
}
