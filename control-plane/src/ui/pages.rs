//! The dashboard's pages as HTML, rendered on the server from the model's views: functions of
//! their arguments (no I/O), so they are tested and benchmarked without a server.
//!
//! Every status is shown as text and an icon as well as a colour; every action is a plain
//! form (it works without script) carrying the session's CSRF token, and is drawn only for
//! sessions whose role may perform it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bosun_core::{Health, SyncStatus};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::auth::{Principal, Role};
use crate::model::{AppView, ClusterAppStatus, ClusterView, HistoryEntry};

/// Who is looking, and what their forms need.
pub struct Viewer<'a> {
    pub who: &'a Principal,
    pub csrf: &'a str,
    /// Unix seconds, for ages.
    pub now: i64,
}

impl Viewer<'_> {
    fn may_write(&self) -> bool {
        self.who.role == Role::Admin
    }
}

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Applications,
    Fleet,
    Clusters,
}

/// The `<head>` of every page; the script (live updates, dialogs) only where signed in.
fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Bosun" }
            link rel="stylesheet" href="/assets/ui.css";
            link rel="icon" href="data:,";
            @if script { script src="/assets/ui.js" defer {} }
        }
    }
}

/// A whole page around `main`: header, navigation, who is signed in, the live indicator.
pub fn layout(title: &str, section: Section, viewer: &Viewer<'_>, main: Markup) -> Markup {
    let nav = [
        (Section::Applications, "/", "Applications"),
        (Section::Fleet, "/fleet", "Fleet"),
        (Section::Clusters, "/clusters", "Clusters"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { span aria-hidden="true" { "⚓" } " Bosun" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, label) in nav {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span #live.live role="status" aria-live="polite" title="Live updates" { "○ connecting" }
                        span { (viewer.who.name) " · " span.role { (viewer.who.role.as_str()) } }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// A page outside the signed-in layout (refusals, errors).
pub fn standalone(title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body.login { main #main { (main) } }
        }
    }
}

/// The sign-in page.
/// `certificate`: the credential a verified client certificate on this connection names, if
/// any (offered as a one-click sign-in).
pub fn login(error: Option<&str>, certificate: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in", false))
            body.login {
                main #main {
                    h1 { span aria-hidden="true" { "⚓" } " Bosun" }
                    @if let Some(name) = certificate {
                        form method="post" action="/login/certificate" {
                            button type="submit" { "Sign in as " (name) " with your client certificate" }
                        }
                        p.hint { "or with a token:" }
                    }
                    form method="post" action="/login" {
                        label for="token" { "Admin or readonly token" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        @if let Some(e) = error { p.error role="alert" { (e) } }
                        button type="submit" { "Sign in" }
                        p.hint { "The first admin token is in the control plane's data directory (admin-token); "
                            code { "bosun credential create NAME --role readonly" } " makes others." }
                    }
                }
            }
        }
    }
}

/// A sync status as icon and text.
pub fn sync_badge(s: SyncStatus) -> Markup {
    let (class, icon) = match s {
        SyncStatus::Synced => ("synced", "✔"),
        SyncStatus::OutOfSync => ("outofsync", "⚠"),
        SyncStatus::Unknown => ("unknown", "?"),
    };
    html! { span class={ "badge sync-" (class) } { span aria-hidden="true" { (icon) } " " (s) } }
}

/// A health as icon and text.
pub fn health_badge(h: Health) -> Markup {
    html! { span class={ "badge health-" (health_class(h)) } { span aria-hidden="true" { (health_icon(h)) } " " (h) } }
}

fn health_class(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Suspended => "suspended",
        Health::Progressing => "progressing",
        Health::Missing => "missing",
        Health::Degraded => "degraded",
        Health::Unknown => "unknown",
    }
}

fn health_icon(h: Health) -> &'static str {
    match h {
        Health::Healthy => "♥",
        Health::Suspended => "⏸",
        Health::Progressing => "↻",
        Health::Missing => "∅",
        Health::Degraded => "✖",
        Health::Unknown => "?",
    }
}

/// The first 7 characters of a commit id (all of anything else).
fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) { &rev[..7] } else { rev }
}

/// A Unix time as a `<time>` with its RFC 3339 form and an age.
fn when(ts: i64, now: i64) -> Markup {
    if ts <= 0 {
        return html! { span.none { "—" } };
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts as u64);
    let rfc = humantime::format_rfc3339_seconds(at).to_string();
    html! { time datetime=(rfc) title=(rfc) { (age(now - ts)) } }
}

/// A duration in seconds, as `kubectl get` prints ages.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// A browsable URL for a source on GitHub or GitLab (repository, revision and path), if the
/// repository is hosted there.
pub fn browse_url(repo_url: &str, revision: &str, path: &str) -> Option<String> {
    let u = repo_url.trim().trim_end_matches('/').trim_end_matches(".git");
    let web = if let Some(rest) = u.strip_prefix("git@") {
        let (host, repo) = rest.split_once(':')?;
        format!("https://{host}/{repo}")
    } else if let Some(rest) = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://")) {
        // Drop credentials a URL may carry.
        let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
        format!("https://{rest}")
    } else {
        return None;
    };
    let host = web.strip_prefix("https://")?.split('/').next()?.to_ascii_lowercase();
    let rev = if revision.is_empty() { "HEAD" } else { revision };
    let path = path.trim_matches('/');
    let path = if path == "." { "" } else { path };
    if host == "github.com" {
        Some(format!("{web}/tree/{rev}/{path}").trim_end_matches('/').to_string())
    } else if host == "gitlab.com" || host.starts_with("gitlab.") {
        Some(format!("{web}/-/tree/{rev}/{path}").trim_end_matches('/').to_string())
    } else {
        None
    }
}

/// Filters of the Application list (query parameters).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Part of the name, or of the repository or path.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sync: String,
    #[serde(default)]
    pub health: String,
    /// A cluster the Application targets.
    #[serde(default)]
    pub cluster: String,
    /// A label selector: Applications on at least one cluster it matches.
    #[serde(default)]
    pub label: String,
}

impl ListQuery {
    fn keeps(&self, a: &AppView, labels: &BTreeMap<String, BTreeMap<String, String>>) -> bool {
        let r = &a.record;
        let q = self.q.trim().to_ascii_lowercase();
        if !q.is_empty()
            && ![&r.name, &r.spec.source.repo_url, &r.spec.source.path]
                .iter()
                .any(|s| s.to_ascii_lowercase().contains(&q))
        {
            return false;
        }
        if !self.sync.is_empty() && !a.sync_status.to_string().eq_ignore_ascii_case(&self.sync) {
            return false;
        }
        if !self.health.is_empty() && !a.health.to_string().eq_ignore_ascii_case(&self.health) {
            return false;
        }
        if !self.cluster.is_empty() && !a.clusters.iter().any(|(c, _)| c.cluster == self.cluster) {
            return false;
        }
        if !self.label.trim().is_empty() {
            let Ok(sel) = bosun_core::selector::Selector::parse(self.label.trim()) else { return false };
            if !a.clusters.iter().any(|(c, _)| labels.get(&c.cluster).is_some_and(|l| sel.matches(l))) {
                return false;
            }
        }
        true
    }
}

/// Counts of each value, in a fixed order.
fn tally<T: Ord + Copy>(items: impl IntoIterator<Item = T>) -> Vec<(T, usize)> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

fn sync_rank(s: SyncStatus) -> u8 {
    match s {
        SyncStatus::Synced => 0,
        SyncStatus::OutOfSync => 1,
        SyncStatus::Unknown => 2,
    }
}

/// Small coloured counts of the clusters' statuses ("✔ 9 ⚠ 1 · ♥ 8 ↻ 2").
fn cluster_counts(a: &AppView) -> Markup {
    let mut syncs = tally(a.verdicts.iter().map(|(s, _)| sync_rank(*s)));
    syncs.sort();
    let healths = tally(a.verdicts.iter().map(|(_, h)| *h));
    let sync_of = |r: u8| match r {
        0 => SyncStatus::Synced,
        1 => SyncStatus::OutOfSync,
        _ => SyncStatus::Unknown,
    };
    html! {
        span.counts {
            @for (r, n) in &syncs {
                @let s = sync_of(*r);
                span class={ "count sync-" (s.to_string().to_ascii_lowercase()) } title={ (n) " " (s) } {
                    span aria-hidden="true" { (match s { SyncStatus::Synced => "✔", SyncStatus::OutOfSync => "⚠", _ => "?" }) }
                    span.sr { (s) " " } (n)
                }
            }
            " · "
            @for (h, n) in &healths {
                span class={ "count health-" (health_class(*h)) } title={ (n) " " (h) } {
                    span aria-hidden="true" { (health_icon(*h)) } span.sr { (h) " " } (n)
                }
            }
        }
    }
}

/// The Application list: filters and one tile per Application.
pub fn app_list(apps: &[AppView], clusters: &[ClusterView], query: &ListQuery, viewer: &Viewer<'_>) -> Markup {
    let labels: BTreeMap<String, BTreeMap<String, String>> =
        clusters.iter().map(|c| (c.record.name.clone(), crate::model::cluster_labels(&c.record))).collect();
    let shown: Vec<&AppView> = apps.iter().filter(|a| query.keeps(a, &labels)).collect();
    let option = |current: &str, value: &str| {
        html! { option value=(value) selected[current.eq_ignore_ascii_case(value)] { (if value.is_empty() { "any" } else { value }) } }
    };
    html! {
        h1 { "Applications" }
        form.filters method="get" action="/" role="search" {
            label { "Name, repo or path " input type="search" name="q" value=(query.q); }
            label { "Sync " select name="sync" { @for v in ["", "Synced", "OutOfSync", "Unknown"] { (option(&query.sync, v)) } } }
            label { "Health " select name="health" {
                @for v in ["", "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"] { (option(&query.health, v)) }
            } }
            label { "Cluster " input type="text" name="cluster" value=(query.cluster) list="cluster-names"; }
            datalist #cluster-names { @for c in clusters { option value=(c.record.name) {} } }
            label { "Cluster labels " input type="text" name="label" value=(query.label) placeholder="env=prod"; }
            button type="submit" { "Filter" }
            a href="/" { "Clear" }
        }
        p.summary { (shown.len()) " of " (apps.len()) " Applications" }
        ul.tiles {
            @for a in &shown {
                @let last = a.clusters.iter().map(|(c, _)| c.synced_at).max().unwrap_or_default();
                li class={ "tile health-" (health_class(a.health)) } {
                    h2 { a href={ "/apps/" (a.record.name) } { (a.record.name) } }
                    p { (sync_badge(a.sync_status)) " " (health_badge(a.health)) }
                    p.clusters { (a.clusters.len()) " cluster" @if a.clusters.len() != 1 { "s" } ": " (cluster_counts(a)) }
                    dl {
                        dt { "Revision" } dd { code { (short(&a.record.status.revision)) } }
                        dt { "Last sync" } dd { (when(last, viewer.now)) }
                        @if !a.record.parent.is_empty() {
                            dt { "Parent" } dd { a href={ "/apps/" (a.record.parent) } { (a.record.parent) } }
                        }
                    }
                    @if !a.record.status.error.is_empty() { p.error { (a.record.status.error) } }
                }
            }
        }
        @if shown.is_empty() { p.empty { "No Application matches." } }
    }
}

/// The page of one Application. `cluster` picks whose resource tree is shown.
pub fn app_page(a: &AppView, history: &[HistoryEntry], cluster: Option<&str>, viewer: &Viewer<'_>) -> Markup {
    let r = &a.record;
    let s = &r.spec;
    let name = &r.name;
    let selected = cluster
        .and_then(|c| a.clusters.iter().position(|(x, _)| x.cluster == c))
        .or_else(|| (!a.clusters.is_empty()).then_some(0));
    let out_of_sync: Vec<(&ClusterAppStatus, &crate::model::ResourceState)> = a
        .clusters
        .iter()
        .flat_map(|(c, _)| c.resources.iter().filter(|x| x.sync_status == SyncStatus::OutOfSync).map(move |x| (c, x)))
        .collect();
    let operations: Vec<&ClusterAppStatus> =
        a.clusters.iter().map(|(c, _)| c).filter(|c| !c.operation.is_empty()).collect();
    let link = browse_url(&s.source.repo_url, &s.source.target_revision, &s.source.path);
    html! {
        h1 { (name) " " (sync_badge(a.sync_status)) " " (health_badge(a.health)) }
        @if viewer.may_write() {
            div.actions {
                details.dialog {
                    summary.button.primary { "Sync" }
                    form method="post" action={ "/apps/" (name) "/sync" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        p { "Synchronise " strong { (name) } " on " (a.clusters.len()) " cluster(s) at " code { (if s.source.target_revision.is_empty() { "HEAD" } else { &s.source.target_revision }) } "." }
                        p {
                            @if s.sync_policy.prune {
                                "Prune: on (the sync policy prunes what Git no longer has)"
                            } @else {
                                label { input type="checkbox" name="prune" value="true"; " Prune: delete what Git no longer has, in this sync only" }
                            }
                        }
                        p { "Self-heal: " (if s.sync_policy.self_heal { "on" } else { "off" }) }
                        @if out_of_sync.is_empty() {
                            p { "Dry run: no object is OutOfSync; a sync re-applies the current revision." }
                        } @else {
                            p { "Dry run: these objects change:" }
                            ul.preview { @for (c, x) in out_of_sync.iter().take(50) {
                                li { code { (c.cluster) } " " (x.kind) "/" (x.name) }
                            } }
                            @if out_of_sync.len() > 50 { p { "…and " (out_of_sync.len() - 50) " more." } }
                        }
                        button.primary type="submit" { "Synchronize" }
                    }
                }
                (action_button(&format!("/apps/{name}/refresh"), "Refresh", viewer))
                details.dialog {
                    summary.button.danger { "Delete" }
                    form method="post" action={ "/apps/" (name) "/delete" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        p { "Deleting " strong { (name) } (if s.sync_policy.prune { " prunes its objects on every cluster." } else { " leaves its objects in place (prune is off)." }) }
                        label { "Type the name to confirm " input type="text" name="confirm" required autocomplete="off"; }
                        button.danger type="submit" { "Delete" }
                    }
                }
            }
        }
        section aria-labelledby="source-h" {
            h2 #source-h { "Source and destination" }
            dl.grid {
                dt { "Repository" } dd { code { (s.source.repo_url) } }
                dt { "Target revision" } dd { code { (if s.source.target_revision.is_empty() { "HEAD" } else { &s.source.target_revision }) } }
                dt { "Path" } dd {
                    @if let Some(u) = &link { a href=(u) rel="noreferrer" { code { (s.source.path) } } } @else { code { (s.source.path) } }
                    @if s.source.recurse { " (recursive)" }
                }
                dt { "Revision" } dd { code title=(r.status.revision) { (short(&r.status.revision)) } " refreshed " (when(r.status.refreshed_at, viewer.now)) }
                dt { "Destination" } dd {
                    @if !s.destination.cluster.is_empty() { "cluster " code { (s.destination.cluster) } }
                    @else { "clusters matching " code { (s.destination.selector) } }
                    " · namespace " code { (if s.destination.namespace.is_empty() { "(from manifests)" } else { &s.destination.namespace }) }
                }
                dt { "Sync policy" } dd {
                    (if s.sync_policy.automated { "automated" } else { "manual" })
                    @if s.sync_policy.prune { ", prune" }
                    @if s.sync_policy.self_heal { ", self-heal" }
                    @if s.sync_policy.create_namespace { ", CreateNamespace" }
                }
                @if !s.depends_on.is_empty() {
                    dt { "Depends on" } dd { @for d in &s.depends_on { a href={ "/apps/" (d) } { (d) } " " } }
                }
                @if !r.parent.is_empty() {
                    dt { "Parent" } dd { a href={ "/apps/" (r.parent) } { (r.parent) } }
                }
                @if !a.children.is_empty() {
                    dt { "Children" } dd { @for c in &a.children { a href={ "/apps/" (c) } { (c) } " " } }
                }
                @if let Some(rb) = &r.rollback {
                    dt { "Rolled back" } dd { "to history entry " (rb.id) " (" code { (short(&rb.revision)) } "); automated sync paused until the next sync" }
                }
            }
            @if !r.status.error.is_empty() { p.error role="alert" { (r.status.error) } }
            @for w in r.warnings.iter().chain(&r.status.warnings) { p.warning { "⚠ " (w) } }
        }
        @if s.rollout.is_some() {
            section aria-labelledby="rollout-h" {
                h2 #rollout-h { "Rollout" }
                p { (a.rollout) }
                @if viewer.may_write() {
                    div.actions {
                        (action_button(&format!("/apps/{name}/rollout/resume"), "Resume", viewer))
                        (action_button(&format!("/apps/{name}/rollout/abort"), "Abort", viewer))
                    }
                }
            }
        }
        section aria-labelledby="clusters-h" {
            h2 #clusters-h { "Clusters" }
            table {
                thead { tr { th { "Cluster" } th { "Agent" } th { "Sync" } th { "Health" } th { "Revision" } th { "Message" } th { "Last sync" } } }
                tbody {
                    @for (i, ((c, connected), (sync, health))) in a.clusters.iter().zip(&a.verdicts).enumerate() {
                        tr aria-selected[selected == Some(i)] {
                            td { a href={ "/apps/" (name) "?cluster=" (c.cluster) "#tree-h" } { (c.cluster) } }
                            td { (if *connected { "● connected" } else { "○ offline" }) }
                            td { (sync_badge(*sync)) }
                            td { (health_badge(*health)) }
                            td { code { (short(&c.revision)) } }
                            td.message { (c.message) }
                            td { (when(c.synced_at, viewer.now)) }
                        }
                    }
                }
            }
        }
        @if !operations.is_empty() {
            section aria-labelledby="operation-h" {
                h2 #operation-h { "Operations in progress" }
                ul.operations {
                    @for c in operations.iter().take(50) {
                        li { a href={ "/apps/" (name) "?cluster=" (c.cluster) "#tree-h" } { code { (c.cluster) } } " ⟳ " (c.operation) }
                    }
                }
                @if operations.len() > 50 { p { "and " (operations.len() - 50) " more clusters." } }
            }
        }
        @if let Some(i) = selected {
            @let c = &a.clusters[i].0;
            section aria-labelledby="tree-h" {
                h2 #tree-h { "Resources on " (c.cluster) }
                @if !c.operation.is_empty() { p.operation { strong { "Current operation: " } (c.operation) } }
                (resource_tree(a, c))
            }
        }
        @if !out_of_sync.is_empty() {
            section aria-labelledby="diff-h" {
                h2 #diff-h { "Differences" }
                @for (c, x) in &out_of_sync {
                    details.diff open[out_of_sync.len() <= 5] {
                        summary { code { (c.cluster) } " " (x.kind) "/" (x.name) @if !x.namespace.is_empty() { " in " (x.namespace) } }
                        @if x.diff.is_empty() { p { (x.message) } } @else { pre { (x.diff) } }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            @if history.is_empty() { p.empty { "No completed sync yet." } } @else {
                table {
                    thead { tr { th { "ID" } th { "Cluster" } th { "Revision" } th { "Synced" } th { "Health" } th { "By" } @if viewer.may_write() { th { span.sr { "Actions" } } } } }
                    tbody {
                        @for e in history.iter().take(100) {
                            tr {
                                td { (e.id) } td { (e.cluster) } td { code title=(e.revision) { (short(&e.revision)) } }
                                td { (when(e.synced_at, viewer.now)) } td { (health_badge(e.health)) } td { (e.initiated_by) }
                                @if viewer.may_write() {
                                    td { (action_button(&format!("/apps/{name}/rollback/{}", e.id), "Rollback", viewer)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One cluster's objects as a tree under the Application, Argo CD's way: the Application at
/// the root, namespaces, then each object with its kind, name, sync and health.
fn resource_tree(a: &AppView, c: &ClusterAppStatus) -> Markup {
    let mut by_ns: BTreeMap<&str, Vec<&crate::model::ResourceState>> = BTreeMap::new();
    for r in c.resources.iter().filter(|r| !r.hook) {
        by_ns.entry(r.namespace.as_str()).or_default().push(r);
    }
    let hooks: Vec<_> = c.resources.iter().filter(|r| r.hook).collect();
    let mut owned: Children<'_> = HashMap::new();
    for x in &c.children {
        owned.entry((x.namespace.as_str(), x.parent_kind.as_str(), x.parent_name.as_str())).or_default().push(x);
    }
    html! {
        ul.tree role="tree" aria-label={ "Resources of " (a.record.name) " on " (c.cluster) } {
            li role="treeitem" aria-expanded="true" {
                span.node { span.kind { "Application" } " " (a.record.name) }
                @if c.resources.is_empty() { p.empty { "No resources reported yet." } }
                ul role="group" {
                    @for (ns, items) in &by_ns {
                        li role="treeitem" aria-expanded="true" {
                            span.node.ns { span.kind { "Namespace" } " " (if ns.is_empty() { "(cluster-scoped)" } else { ns }) }
                            ul role="group" {
                                @for r in items { (tree_node(r, &owned, 0)) }
                            }
                        }
                    }
                    @if !hooks.is_empty() {
                        li role="treeitem" aria-expanded="true" {
                            span.node.ns { span.kind { "Hooks" } " of the current or last operation" }
                            ul role="group" {
                                @for r in &hooks { (tree_node(r, &owned, 0)) }
                            }
                        }
                    }
                }
            }
        }
        @if c.children_left_out > 0 { p.empty { (c.children_left_out) " more owned objects not shown." } }
    }
}

/// Owned objects by (namespace, owner kind, owner name).
type Children<'a> = HashMap<(&'a str, &'a str, &'a str), Vec<&'a crate::model::ResourceState>>;

/// One object of the tree: kind, name (and namespace for hooks), sync, health, message.
fn tree_node(r: &crate::model::ResourceState, owned: &Children<'_>, depth: usize) -> Markup {
    let below = if depth < 3 { owned.get(&(r.namespace.as_str(), r.kind.as_str(), r.name.as_str())) } else { None };
    html! {
        li role="treeitem" aria-expanded=[below.map(|_| "true")] {
            span.node {
                span.kind { (r.kind) } " " (r.name)
                @if r.hook { " " span.hook { "hook" } @if !r.namespace.is_empty() { " in " (r.namespace) } }
                // Owned objects are not compared with Git: they have health, not sync.
                @if r.parent_kind.is_empty() { " " (sync_badge(r.sync_status)) }
                " " (health_badge(r.health))
                @if !r.message.is_empty() { " " span.message { (r.message) } }
            }
            @if let Some(children) = below {
                ul role="group" {
                    @for x in children { (tree_node(x, owned, depth + 1)) }
                }
            }
        }
    }
}

/// A one-button form for an action.
fn action_button(action: &str, label: &str, viewer: &Viewer<'_>) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" { (label) }
        }
    }
}

/// Parameters of the fleet matrix.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetQuery {
    /// Group clusters by the value of this label.
    #[serde(default)]
    pub group: String,
    /// 1-based page of clusters.
    #[serde(default = "one")]
    pub page: usize,
    #[serde(default = "per_page")]
    pub per: usize,
    /// Only clusters whose name contains this.
    #[serde(default)]
    pub q: String,
}

impl Default for FleetQuery {
    fn default() -> Self {
        Self { group: String::new(), page: 1, per: per_page(), q: String::new() }
    }
}

fn one() -> usize {
    1
}
fn per_page() -> usize {
    100
}

/// The clusters × Applications matrix: one row per cluster (a page of them, grouped by a
/// label's value), one column per Application, each cell the cluster's status for it.
pub fn fleet(apps: &[AppView], clusters: &[ClusterView], query: &FleetQuery, viewer: &Viewer<'_>) -> Markup {
    let _ = viewer;
    // (app index, cluster) → verdict
    let mut cells: BTreeMap<(&str, usize), (SyncStatus, Health)> = BTreeMap::new();
    for (i, a) in apps.iter().enumerate() {
        for ((c, _), v) in a.clusters.iter().zip(&a.verdicts) {
            cells.insert((c.cluster.as_str(), i), *v);
        }
    }
    let q = query.q.trim();
    let mut rows: Vec<(String, &ClusterView)> = clusters
        .iter()
        .filter(|c| q.is_empty() || c.record.name.contains(q))
        .map(|c| {
            let group = if query.group.is_empty() {
                String::new()
            } else {
                crate::model::cluster_labels(&c.record).get(&query.group).cloned().unwrap_or_else(|| "(none)".into())
            };
            (group, c)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1.record.name).cmp(&(&b.0, &b.1.record.name)));
    let per = query.per.clamp(10, 1000);
    let pages = rows.len().div_ceil(per).max(1);
    let page = query.page.clamp(1, pages);
    let start = (page - 1) * per;
    let shown = &rows[start.min(rows.len())..(start + per).min(rows.len())];
    // Counts per group over all its clusters (not only this page).
    let mut groups: BTreeMap<&str, Vec<(SyncStatus, Health)>> = BTreeMap::new();
    for (g, c) in &rows {
        let e = groups.entry(g.as_str()).or_default();
        for i in 0..apps.len() {
            if let Some(v) = cells.get(&(c.record.name.as_str(), i)) {
                e.push(*v);
            }
        }
    }
    let page_link = |p: usize| {
        let mut u = format!("/fleet?page={p}&per={per}");
        if !query.group.is_empty() {
            let _ = write!(u, "&group={}", urlencode(&query.group));
        }
        if !q.is_empty() {
            let _ = write!(u, "&q={}", urlencode(q));
        }
        u
    };
    html! {
        h1 { "Fleet" }
        form.filters method="get" action="/fleet" {
            label { "Group by label " input type="text" name="group" value=(query.group) placeholder="env"; }
            label { "Cluster " input type="search" name="q" value=(query.q); }
            input type="hidden" name="per" value=(per);
            button type="submit" { "Show" }
        }
        p.summary { (rows.len()) " clusters × " (apps.len()) " Applications · page " (page) " of " (pages) }
        @if !query.group.is_empty() {
            table.groups {
                caption { "By " code { (query.group) } }
                thead { tr { th { "Value" } th { "Pairs" } th { "Synced" } th { "Healthy" } th { "Degraded" } } }
                tbody {
                    @for (g, vs) in &groups {
                        tr {
                            td { (g) } td { (vs.len()) }
                            td { (vs.iter().filter(|v| v.0 == SyncStatus::Synced).count()) }
                            td { (vs.iter().filter(|v| v.1 == Health::Healthy).count()) }
                            td { (vs.iter().filter(|v| v.1 == Health::Degraded).count()) }
                        }
                    }
                }
            }
        }
        div.matrix-wrap {
            table.matrix {
                thead {
                    tr {
                        th scope="col" { "Cluster" }
                        @for a in apps { th scope="col" { a href={ "/apps/" (a.record.name) } { (a.record.name) } } }
                    }
                }
                tbody {
                    @for (i, (g, c)) in shown.iter().enumerate() {
                        @if !query.group.is_empty() && (i == 0 || shown[i - 1].0 != *g) {
                            tr.group { th colspan=(apps.len() + 1) scope="rowgroup" { (query.group) "=" (g) } }
                        }
                        tr {
                            th scope="row" { (c.record.name) @if !c.connected { " " span.offline title="agent not connected" { "○" span.sr { " offline" } } } }
                            @for (j, a) in apps.iter().enumerate() {
                                @match cells.get(&(c.record.name.as_str(), j)) {
                                    Some((sync, health)) => {
                                        td class={ "cell health-" (health_class(*health)) " sync-" (sync.to_string().to_ascii_lowercase()) }
                                            title={ (a.record.name) " on " (c.record.name) ": " (sync) ", " (health) } {
                                            span aria-hidden="true" { (health_icon(*health)) @if *sync == SyncStatus::OutOfSync { "⚠" } }
                                            span.sr { (sync) ", " (health) }
                                        }
                                    }
                                    None => { td.cell.none title={ (a.record.name) " does not target " (c.record.name) } { span.sr { "not targeted" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a href=(page_link(page - 1)) rel="prev" { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a href=(page_link(page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

/// The clusters: connection, labels and facts, agent version, certificate expiry, revoke.
pub fn clusters_page(clusters: &[ClusterView], viewer: &Viewer<'_>) -> Markup {
    html! {
        h1 { "Clusters" }
        p.summary { (clusters.len()) " clusters · " (clusters.iter().filter(|c| c.connected).count()) " connected" }
        table {
            thead { tr { th { "Cluster" } th { "Agent" } th { "Labels" } th { "Facts" } th { "Version" } th { "Certificate expires" } @if viewer.may_write() { th { span.sr { "Actions" } } } } }
            tbody {
                @for c in clusters {
                    @let r = &c.record;
                    tr {
                        th scope="row" { a href={ "/?cluster=" (urlencode(&r.name)) } { (r.name) } }
                        td {
                            @if r.revoked_at > 0 { span.revoked { "⊘ revoked " (when(r.revoked_at, viewer.now)) } }
                            @else if !r.joined { "not joined" }
                            @else if c.connected { "● connected" }
                            @else { "○ last seen " (when(c.last_seen, viewer.now)) }
                        }
                        td { @for (k, v) in &r.labels { code.label { (k) "=" (v) } " " } }
                        td { @for (k, v) in &r.facts { code.label { (k) "=" (v) } " " } }
                        td { (r.agent_version) }
                        td { @if r.cert_expires > 0 {
                            @let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.cert_expires as u64);
                            time datetime=(humantime::format_rfc3339_seconds(at).to_string()) { (humantime::format_rfc3339_seconds(at).to_string()) }
                        } }
                        @if viewer.may_write() {
                            td { @if r.joined && r.revoked_at == 0 {
                                details.dialog {
                                    summary.button.danger { "Revoke" }
                                    form method="post" action={ "/clusters/" (r.name) "/revoke" } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        p { "The agent of " strong { (r.name) } " loses its certificate at once and must join again." }
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn problem(title: &str, detail: &str) -> Markup {
    html! { h1 { (title) } p.error role="alert" { (detail) } p { a href="/" { "Back to Applications" } } }
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
