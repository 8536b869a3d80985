//! Application manifests as users already have them — Argo CD's `argoproj.io/v1alpha1`
//! Application, and Bosun's `bosun.dev/v1` Application of the same shape (plus
//! `destination.selector`, `dependsOn` and `rollout`) — converted to an [`AppSpec`]. Every
//! field Bosun cannot honour is reported, never silently dropped. [`manifest`] writes the
//! `bosun.dev/v1` form back (what `bosun app edit` and `app patch` work on).

use serde_json::Value;

use crate::app::{AppSpec, Destination, IgnoreDifference, Source, SyncPolicy};

/// An Application manifest, converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub name: String,
    pub spec: AppSpec,
    /// Fields present in the manifest that Bosun does not honour, with the reason.
    pub warnings: Vec<String>,
    /// The manifest targets "the cluster this runs in" (`https://kubernetes.default.svc` or
    /// `in-cluster`), or names none: the caller decides (a parent's destination, `--cluster`).
    pub inherits_destination: bool,
}

/// Whether `obj` is an Application manifest this module converts.
pub fn is_application(obj: &Value) -> bool {
    obj["kind"] == "Application" && matches!(obj["apiVersion"].as_str(), Some("argoproj.io/v1alpha1" | "bosun.dev/v1"))
}

const IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// A Go duration (`time.ParseDuration`): a sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5m`,
/// `2h45m`. Returns nanoseconds; `None` for anything else (and for negative durations, which
/// no Application field takes).
pub fn parse_go_duration(s: &str) -> Option<u128> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut value = whole.checked_mul(scale)?;
        if !frac.is_empty() {
            let digits = frac.len().min(18) as u32;
            let f: u128 = frac[..digits as usize].parse().ok()?;
            value = value.checked_add(f.checked_mul(scale)? / 10u128.pow(digits))?;
        }
        total = total.checked_add(value)?;
        rest = next;
    }
    Some(total)
}

/// A Go duration in whole seconds (rounded up), for the fields Bosun keeps in seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let n = parse_go_duration(s)?;
    u64::try_from(n.div_ceil(1_000_000_000)).ok()
}

/// The keys of an Application manifest Bosun reads; anything else present is reported.
enum Known {
    /// Read as a whole.
    Leaf,
    Fields(&'static [(&'static str, Known)]),
    /// Each item of a list, read with these keys.
    Items(&'static [(&'static str, Known)]),
}

use Known::{Fields, Items, Leaf};

const KNOWN: Known = Fields(&[
    ("apiVersion", Leaf),
    ("kind", Leaf),
    ("metadata", Fields(&[("name", Leaf)])),
    (
        "spec",
        Fields(&[
            ("project", Leaf),
            (
                "source",
                Fields(&[
                    ("repoURL", Leaf),
                    ("targetRevision", Leaf),
                    ("path", Leaf),
                    ("directory", Fields(&[("recurse", Leaf)])),
                ]),
            ),
            ("destination", Fields(&[("server", Leaf), ("name", Leaf), ("namespace", Leaf), ("selector", Leaf)])),
            (
                "syncPolicy",
                Fields(&[
                    (
                        "automated",
                        Fields(&[("prune", Leaf), ("selfHeal", Leaf), ("allowEmpty", Leaf), ("enabled", Leaf)]),
                    ),
                    ("syncOptions", Leaf),
                    (
                        "retry",
                        Fields(&[
                            ("limit", Leaf),
                            ("backoff", Fields(&[("duration", Leaf), ("factor", Leaf), ("maxDuration", Leaf)])),
                        ]),
                    ),
                ]),
            ),
            (
                "ignoreDifferences",
                Items(&[
                    ("group", Leaf),
                    ("kind", Leaf),
                    ("name", Leaf),
                    ("namespace", Leaf),
                    ("jsonPointers", Leaf),
                    ("jqPathExpressions", Leaf),
                    ("managedFieldsManagers", Leaf),
                ]),
            ),
            ("revisionHistoryLimit", Leaf),
            ("dependsOn", Leaf),
            (
                "rollout",
                Fields(&[
                    ("step", Leaf),
                    ("maxUnavailable", Leaf),
                    ("pause", Leaf),
                    ("orderByLabel", Leaf),
                    ("offlineTimeout", Leaf),
                ]),
            ),
        ]),
    ),
]);

/// Reports every key of `v` (at `path`) that `known` does not read, unless a warning about it
/// (or a field around it) was given already.
fn unread(v: &Value, known: &Known, path: &str, out: &mut Vec<String>) {
    let fields = match known {
        Leaf => return,
        Fields(f) | Items(f) => *f,
    };
    let mut visit = |obj: &serde_json::Map<String, Value>, at: &str| {
        for (k, child) in obj {
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            match fields.iter().find(|(n, _)| n == k) {
                Some((_, inner)) => unread(child, inner, &here, out),
                None => {
                    let covered =
                        out.iter().any(|w| w.starts_with(&format!("{here}:")) || w.starts_with(&format!("{here}.")));
                    let around =
                        out.iter().any(|w| w.split(':').next().is_some_and(|p| here.starts_with(&format!("{p}."))));
                    if !covered && !around {
                        out.push(format!("{here}: not supported; ignored"));
                    }
                }
            }
        }
    };
    match (known, v) {
        (Items(_), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(m) = item {
                    visit(m, &format!("{path}[{i}]"));
                }
            }
        }
        (Fields(_), Value::Object(m)) => visit(m, path),
        _ => {}
    }
}

/// Converts one Application manifest.
pub fn convert(obj: &Value) -> Result<Converted, String> {
    if !is_application(obj) {
        return Err("not an Application (apiVersion argoproj.io/v1alpha1 or bosun.dev/v1, kind Application)".into());
    }
    let bosun = obj["apiVersion"] == "bosun.dev/v1";
    let name = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()).ok_or("metadata.name is required")?;
    let spec = &obj["spec"];
    let mut warnings = Vec::new();
    let mut warn = |field: &str, why: &str| warnings.push(format!("{field}: {why}"));

    if spec.get("sources").is_some() {
        return Err("spec.sources (several sources) is not supported; use one source per Application".into());
    }
    let src = &spec["source"];
    let repo_url = src["repoURL"].as_str().ok_or("spec.source.repoURL is required")?;
    if src.get("chart").is_some() || src.get("helm").is_some() {
        return Err("Helm sources are not supported yet; render the chart into the repository".into());
    }
    if src.get("plugin").is_some() {
        return Err("config management plugins are not supported".into());
    }
    if let Some(k) = src.get("kustomize").and_then(Value::as_object)
        && !k.is_empty()
    {
        warn("spec.source.kustomize", "options are not applied (kustomization.yaml is built as it is)");
    }
    let dir = &src["directory"];
    for f in ["include", "exclude", "jsonnet"] {
        if dir.get(f).is_some() {
            warn(&format!("spec.source.directory.{f}"), "not supported; every YAML/JSON file in the path is read");
        }
    }
    let source = Source {
        repo_url: repo_url.to_string(),
        target_revision: src["targetRevision"].as_str().unwrap_or_default().to_string(),
        path: src["path"].as_str().unwrap_or_default().to_string(),
        recurse: dir["recurse"].as_bool().unwrap_or(false),
    };

    let dst = &spec["destination"];
    let server = dst["server"].as_str().unwrap_or_default();
    let dst_name = dst["name"].as_str().unwrap_or_default();
    let mut destination =
        Destination { namespace: dst["namespace"].as_str().unwrap_or_default().to_string(), ..Default::default() };
    let mut inherits_destination = false;
    if bosun && let Some(sel) = dst["selector"].as_str() {
        destination.selector = sel.to_string();
    } else if !dst_name.is_empty() && dst_name != "in-cluster" {
        destination.cluster = dst_name.to_string();
    } else {
        inherits_destination = true;
        if !server.is_empty() && server != IN_CLUSTER {
            warn(
                "spec.destination.server",
                &format!(
                    "{server:?}: Bosun targets clusters by name or labels, not API URLs; the destination given on import (or the parent's) is used"
                ),
            );
        }
    }

    let sp = &spec["syncPolicy"];
    let auto = &sp["automated"];
    let mut policy = SyncPolicy {
        automated: auto.is_object() && auto["enabled"].as_bool() != Some(false),
        prune: auto["prune"].as_bool().unwrap_or(false),
        self_heal: auto["selfHeal"].as_bool().unwrap_or(false),
        allow_empty: auto["allowEmpty"].as_bool().unwrap_or(false),
        ..Default::default()
    };
    for o in sp["syncOptions"].as_array().into_iter().flatten() {
        let Some(o) = o.as_str() else { continue };
        // Bosun always applies server-side with server validation, and always respects
        // ignoreDifferences when applying: these options are what it does anyway.
        let implied =
            matches!(o.split_once('='), Some(("Validate" | "ServerSideApply" | "RespectIgnoreDifferences", _)));
        if !implied && policy.set_option(o).is_err() {
            warn("spec.syncPolicy.syncOptions", &format!("{o:?} is not supported"));
        }
    }
    let retry = &sp["retry"];
    if retry.is_object() {
        match retry["limit"].as_i64() {
            Some(l) if l >= 0 => policy.retry.limit = u32::try_from(l).unwrap_or(u32::MAX),
            Some(l) => {
                warn("spec.syncPolicy.retry.limit", &format!("{l}: a negative limit is not supported; no retries"))
            }
            None if retry.get("limit").is_some() => {
                warn("spec.syncPolicy.retry.limit", "not a whole number; no retries")
            }
            None => {}
        }
        let b = &retry["backoff"];
        for (field, slot) in
            [("duration", &mut policy.retry.duration_secs), ("maxDuration", &mut policy.retry.max_duration_secs)]
        {
            let Some(v) = b.get(field) else { continue };
            let text = duration_text(v);
            match parse_go_duration(&text) {
                Some(ns) => {
                    let secs = u64::try_from(ns.div_ceil(1_000_000_000)).unwrap_or(u64::MAX);
                    if ns % 1_000_000_000 != 0 {
                        warn(
                            &format!("spec.syncPolicy.retry.backoff.{field}"),
                            &format!("{text:?} is rounded up to {secs}s (Bosun's backoff counts whole seconds)"),
                        );
                    }
                    *slot = secs;
                }
                None => warn(
                    &format!("spec.syncPolicy.retry.backoff.{field}"),
                    &format!(
                        "{text:?} is not a duration (such as 5s, 500ms, 1.5m, 1h30m); the default {}s is used",
                        *slot
                    ),
                ),
            }
        }
        if let Some(f) = b.get("factor") {
            match f.as_f64() {
                Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) => policy.retry.factor = x as u32,
                Some(x) if x >= 1.0 => {
                    policy.retry.factor = x.ceil() as u32;
                    warn(
                        "spec.syncPolicy.retry.backoff.factor",
                        &format!("{x} is rounded up to {}", policy.retry.factor),
                    );
                }
                _ => warn(
                    "spec.syncPolicy.retry.backoff.factor",
                    &format!("{f}: give a whole number ≥ 1; the default is used"),
                ),
            }
        }
    }
    if sp.get("managedNamespaceMetadata").is_some() {
        warn("spec.syncPolicy.managedNamespaceMetadata", "not supported");
    }

    let mut ignore_differences = Vec::new();
    for d in spec["ignoreDifferences"].as_array().into_iter().flatten() {
        let strings = |k: &str| -> Vec<String> {
            d[k].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
        };
        ignore_differences.push(IgnoreDifference {
            namespace: d["namespace"].as_str().unwrap_or_default().to_string(),
            group: d["group"].as_str().unwrap_or_default().to_string(),
            kind: d["kind"].as_str().unwrap_or_default().to_string(),
            name: d["name"].as_str().unwrap_or_default().to_string(),
            json_pointers: strings("jsonPointers"),
            jq_path_expressions: strings("jqPathExpressions"),
            managed_fields_managers: strings("managedFieldsManagers"),
        });
    }
    let revision_history_limit = match &spec["revisionHistoryLimit"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("spec.revisionHistoryLimit: {v} is not a count of syncs to keep"))?,
        ),
    };
    if let Some(p) = spec["project"].as_str()
        && !p.is_empty()
        && p != "default"
    {
        warn("spec.project", &format!("{p:?}: projects are not supported; admin roles apply to all Applications"));
    }
    if spec.get("info").is_some() {
        warn("spec.info", "not kept");
    }
    if !bosun {
        if dst.get("selector").is_some() {
            warn("spec.destination.selector", "only bosun.dev/v1 Applications target by selector");
        }
        if spec.get("dependsOn").is_some() {
            warn("spec.dependsOn", "only bosun.dev/v1 Applications declare dependencies");
        }
        if spec.get("rollout").is_some() {
            warn("spec.rollout", "only bosun.dev/v1 Applications roll out progressively");
        }
    }
    if obj["metadata"].get("namespace").is_some() {
        warn("metadata.namespace", "Argo CD's namespace; Bosun Applications are not namespaced");
    }
    if let Some(f) = obj["metadata"]["finalizers"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = f.iter().filter_map(Value::as_str).collect();
        warn(
            "metadata.finalizers",
            &format!(
                "{names:?}: not kept; deleting a Bosun Application deletes its objects when its sync policy prunes (Argo CD's resources-finalizer)"
            ),
        );
    }
    for field in ["status", "operation"] {
        if obj.get(field).is_some() {
            warn(field, "not read; Bosun keeps its own");
        }
    }
    unread(obj, &KNOWN, "", &mut warnings);
    let depends_on = if bosun {
        obj["spec"]["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    } else {
        Vec::new()
    };
    let rollout = match &spec["rollout"] {
        Value::Null => None,
        r if bosun => Some(rollout(r)?),
        _ => None,
    };
    Ok(Converted {
        name: name.to_string(),
        spec: AppSpec {
            source,
            destination,
            sync_policy: policy,
            ignore_differences,
            depends_on,
            rollout,
            revision_history_limit,
        },
        warnings,
        inherits_destination,
    })
}

/// A duration field as Go duration text; a bare number means seconds, as Argo CD reads it.
fn duration_text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => format!("{s}s"),
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("{n}s"),
        other => other.to_string(),
    }
}

/// Whole seconds from a duration field (`30s`, `5m`, `1h30m`, or a bare number of seconds).
fn seconds(v: &Value, field: &str) -> Result<u64, String> {
    let text = duration_text(v);
    match parse_go_duration(&text) {
        Some(ns) if ns % 1_000_000_000 == 0 => {
            u64::try_from(ns / 1_000_000_000).map_err(|_| format!("{field}: too long"))
        }
        Some(_) => Err(format!("{field}: {text:?}: give whole seconds")),
        None => Err(format!("{field}: {text:?} is not a duration (such as 30s, 5m, 1h30m)")),
    }
}

/// Bosun's `spec.rollout`.
fn rollout(r: &Value) -> Result<crate::rollout::Strategy, String> {
    let step = match &r["step"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err("spec.rollout.step is required: a count of clusters (2) or a percentage (25%)".into()),
    };
    let step = crate::rollout::StepSize::parse(&step)
        .ok_or_else(|| format!("spec.rollout.step {step:?}: give a count of clusters (2) or a percentage (25%)"))?;
    let max_unavailable = match &r["maxUnavailable"] {
        Value::Null => 0,
        v => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("spec.rollout.maxUnavailable: {v} is not a count of clusters"))?,
    };
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    Ok(crate::rollout::Strategy {
        step,
        max_unavailable,
        pause_secs: match &r["pause"] {
            Value::Null => 0,
            v => seconds(v, "spec.rollout.pause")?,
        },
        order_by: text("orderByLabel"),
        offline_timeout_secs: match &r["offlineTimeout"] {
            Value::Null => 300,
            v => seconds(v, "spec.rollout.offlineTimeout")?,
        },
    })
}

/// The `bosun.dev/v1` Application manifest of `spec`: what [`convert`] reads back into the
/// same spec, with no warnings. Defaults are written out, so the manifest shows what applies.
pub fn manifest(name: &str, spec: &AppSpec) -> Value {
    let p = &spec.sync_policy;
    let mut options = Vec::new();
    if p.create_namespace {
        options.push("CreateNamespace=true".to_string());
    }
    if p.apply_out_of_sync_only {
        options.push("ApplyOutOfSyncOnly=true".to_string());
    }
    if p.prune_last {
        options.push("PruneLast=true".to_string());
    }
    match p.prune_propagation {
        crate::app::Propagation::Foreground => {}
        crate::app::Propagation::Background => options.push("PrunePropagationPolicy=background".into()),
        crate::app::Propagation::Orphan => options.push("PrunePropagationPolicy=orphan".into()),
    }
    let mut destination = serde_json::Map::new();
    if spec.destination.selector.is_empty() {
        destination.insert("name".into(), spec.destination.cluster.clone().into());
    } else {
        destination.insert("selector".into(), spec.destination.selector.clone().into());
    }
    destination.insert("namespace".into(), spec.destination.namespace.clone().into());
    let mut out = serde_json::json!({
        "apiVersion": "bosun.dev/v1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "repoURL": spec.source.repo_url,
                "targetRevision": spec.source.target_revision,
                "path": spec.source.path,
                "directory": {"recurse": spec.source.recurse},
            },
            "destination": destination,
            "syncPolicy": {
                // Argo CD's `enabled: false` keeps prune and selfHeal written down while
                // automation is off.
                "automated": {"enabled": p.automated, "prune": p.prune, "selfHeal": p.self_heal, "allowEmpty": p.allow_empty},
                "syncOptions": options,
                "retry": {
                    "limit": p.retry.limit,
                    "backoff": {
                        "duration": format!("{}s", p.retry.duration_secs),
                        "factor": p.retry.factor,
                        "maxDuration": format!("{}s", p.retry.max_duration_secs),
                    },
                },
            },
            "ignoreDifferences": spec.ignore_differences.iter().map(|d| serde_json::json!({
                "group": d.group, "kind": d.kind, "name": d.name, "namespace": d.namespace,
                "jsonPointers": d.json_pointers, "jqPathExpressions": d.jq_path_expressions,
                "managedFieldsManagers": d.managed_fields_managers,
            })).collect::<Vec<_>>(),
            "dependsOn": spec.depends_on,
        },
    });
    if let Some(limit) = spec.revision_history_limit {
        out["spec"]["revisionHistoryLimit"] = limit.into();
    }
    if let Some(r) = &spec.rollout {
        out["spec"]["rollout"] = serde_json::json!({
            "step": r.step.to_string(),
            "maxUnavailable": r.max_unavailable,
            "pause": format!("{}s", r.pause_secs),
            "orderByLabel": r.order_by,
            "offlineTimeout": format!("{}s", r.offline_timeout_secs),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_child() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "fake-news-backend", "namespace": "argocd", "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": {
                "project": "fake-news-detector",
                "source": {"repoURL": "https://github.com/acme/fake-news.git", "targetRevision": "main", "path": "k8s/backend"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "fake-news-app"},
                "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                               "syncOptions": ["CreateNamespace=true", "PruneLast=true", "Validate=false"],
                               "retry": {"limit": 3, "backoff": {"duration": "10s", "factor": 3, "maxDuration": "2m"}}},
                "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
            }
        })
    }

    #[test]
    fn the_seed_child_converts_with_its_policy() {
        let c = convert(&seed_child()).unwrap();
        assert_eq!(c.name, "fake-news-backend");
        assert!(c.inherits_destination);
        assert_eq!(c.spec.source.path, "k8s/backend");
        assert_eq!(c.spec.destination.namespace, "fake-news-app");
        let p = c.spec.sync_policy;
        assert!(p.automated && p.prune && p.self_heal && p.create_namespace && p.prune_last);
        assert_eq!((p.retry.limit, p.retry.duration_secs, p.retry.factor, p.retry.max_duration_secs), (3, 10, 3, 120));
        assert_eq!(c.spec.ignore_differences[0].json_pointers, ["/spec/replicas"]);
        let fields: Vec<&str> = c.warnings.iter().map(|w| w.split(':').next().unwrap()).collect();
        assert_eq!(fields, ["spec.project", "metadata.namespace", "metadata.finalizers"], "{:?}", c.warnings);
    }

    #[test]
    fn what_cannot_be_honoured_is_reported_or_refused() {
        let mut a = seed_child();
        a["spec"]["destination"] = json!({"server": "https://10.0.0.1:6443"});
        a["spec"]["revisionHistoryLimit"] = json!(3);
        a["spec"]["syncPolicy"]["syncOptions"] = json!(["Frobnicate=true"]);
        a["spec"]["source"]["directory"] = json!({"recurse": true, "exclude": "*.md"});
        let c = convert(&a).unwrap();
        let fields: Vec<&str> = c.warnings.iter().map(|w| w.split(':').next().unwrap()).collect();
        assert_eq!(c.spec.revision_history_limit, Some(3));
        for f in
            ["spec.destination.server", "spec.syncPolicy.syncOptions", "spec.source.directory.exclude", "spec.project"]
        {
            assert!(fields.contains(&f), "{f} missing from {:?}", c.warnings);
        }
        assert!(c.spec.source.recurse);
        let mut helm = seed_child();
        helm["spec"]["source"]["helm"] = json!({"valueFiles": ["v.yaml"]});
        assert!(convert(&helm).unwrap_err().contains("Helm"));
        let mut multi = seed_child();
        multi["spec"]["sources"] = json!([]);
        assert!(convert(&multi).is_err());
        assert!(convert(&json!({"kind": "ConfigMap"})).is_err());
    }

    #[test]
    fn named_destinations_and_bosun_kind() {
        let mut a = seed_child();
        a["spec"]["destination"] = json!({"name": "prod-eu", "namespace": "x"});
        let c = convert(&a).unwrap();
        assert!(!c.inherits_destination);
        assert_eq!(c.spec.destination.cluster, "prod-eu");
        let b = json!({"apiVersion": "bosun.dev/v1", "kind": "Application", "metadata": {"name": "api"},
            "spec": {"source": {"repoURL": "file:///r", "path": "api"}, "destination": {"selector": "env=prod"},
                     "dependsOn": ["db"]}});
        let c = convert(&b).unwrap();
        assert_eq!(c.spec.destination.selector, "env=prod");
        assert_eq!(c.spec.depends_on, ["db"]);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn go_durations() {
        let ms = 1_000_000u128;
        for (s, want) in [
            ("5s", Some(5_000 * ms)),
            ("500ms", Some(500 * ms)),
            ("1.5m", Some(90_000 * ms)),
            ("1h30m", Some(5_400_000 * ms)),
            ("2h45m30.5s", Some(9_930_500 * ms)),
            ("300us", Some(300_000)),
            ("300µs", Some(300_000)),
            ("10ns", Some(10)),
            (".5s", Some(500 * ms)),
            ("0", Some(0)),
            ("1d", None),
            ("5x", None),
            ("", None),
            ("-1s", None),
            ("1.2.3s", None),
            ("s", None),
        ] {
            assert_eq!(parse_go_duration(s), want, "{s}");
        }
        assert_eq!(parse_duration("500ms"), Some(1), "rounded up to whole seconds");
        assert_eq!(parse_duration("1.5m"), Some(90));
    }

    #[test]
    fn every_key_it_does_not_honour_is_reported() {
        let mut a = seed_child();
        a["spec"]["source"]["fooBar"] = json!(1);
        a["spec"]["syncPolicy"]["automated"]["wat"] = json!(true);
        a["spec"]["ignoreDifferences"][0]["weird"] = json!("x");
        a["spec"]["unknownTopLevel"] = json!({});
        a["metadata"]["labels"] = json!({"team": "a"});
        a["status"] = json!({"sync": {"status": "Synced"}});
        a["spec"]["syncPolicy"]["retry"]["backoff"] =
            json!({"duration": "500ms", "factor": 1.5, "maxDuration": "1.5m"});
        let c = convert(&a).unwrap();
        let fields: Vec<&str> = c.warnings.iter().map(|w| w.split(':').next().unwrap()).collect();
        for f in [
            "spec.source.fooBar",
            "spec.syncPolicy.automated.wat",
            "spec.ignoreDifferences[0].weird",
            "spec.unknownTopLevel",
            "metadata.labels",
            "status",
            "spec.syncPolicy.retry.backoff.duration",
            "spec.syncPolicy.retry.backoff.factor",
        ] {
            assert!(fields.contains(&f), "{f} missing from {:#?}", c.warnings);
        }
        assert_eq!(fields.iter().filter(|f| **f == "status").count(), 1, "reported once: {:#?}", c.warnings);
        let r = c.spec.sync_policy.retry;
        assert_eq!((r.duration_secs, r.factor, r.max_duration_secs), (1, 2, 90));
        assert!(
            !c.warnings.iter().any(|w| w.starts_with("spec.syncPolicy.retry.backoff.maxDuration")),
            "1.5m is exact"
        );
        let mut bad = seed_child();
        bad["spec"]["syncPolicy"]["retry"]["backoff"]["duration"] = json!("5 seconds");
        let c = convert(&bad).unwrap();
        assert!(c.warnings.iter().any(|w| w.contains("not a duration")), "{:?}", c.warnings);
        assert_eq!(c.spec.sync_policy.retry.duration_secs, crate::app::Retry::default().duration_secs);
        // Names are object names: dots are fine.
        let mut dotted = seed_child();
        dotted["metadata"]["name"] = json!("example.guestbook");
        dotted["spec"]["destination"] = json!({"name": "c1", "namespace": "x"});
        let c = convert(&dotted).unwrap();
        c.spec.validate(&c.name).unwrap();
    }

    #[test]
    fn a_rollout_reads_from_bosun_manifests_only() {
        let mut m = manifest(
            "web",
            &AppSpec {
                source: Source { repo_url: "https://git.example/r".into(), ..Default::default() },
                destination: Destination { selector: "env=prod".into(), namespace: "web".into(), ..Default::default() },
                ..Default::default()
            },
        );
        m["spec"]["rollout"] = json!({"step": "25%", "pause": "1m", "maxUnavailable": 1});
        let r = convert(&m).unwrap().spec.rollout.unwrap();
        assert_eq!(
            (r.step, r.pause_secs, r.max_unavailable, r.offline_timeout_secs),
            (crate::rollout::StepSize::Percent(25), 60, 1, 300)
        );
        m["spec"]["rollout"]["step"] = json!("0");
        assert!(convert(&m).unwrap_err().contains("spec.rollout.step"));
        m["spec"]["rollout"] = json!({"step": 2, "pause": "1.5s"});
        assert!(convert(&m).unwrap_err().contains("whole seconds"));
        m["apiVersion"] = json!("argoproj.io/v1alpha1");
        m["spec"]["destination"] = json!({"name": "c1", "namespace": "web"});
        let c = convert(&m).unwrap();
        assert_eq!(c.spec.rollout, None);
        assert!(c.warnings.iter().any(|w| w.starts_with("spec.rollout")), "{:?}", c.warnings);
    }

    mod round_trip {
        use super::*;
        use crate::app::{Propagation, Retry};
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            "[a-z0-9][a-z0-9-]{0,8}"
        }

        fn spec() -> impl Strategy<Value = AppSpec> {
            let source = (text(), text(), text(), any::<bool>()).prop_map(|(r, t, p, recurse)| Source {
                repo_url: format!("https://git.example/{r}"),
                target_revision: t,
                path: p,
                recurse,
            });
            let destination = (text(), prop::option::of(text()), text()).prop_map(|(c, sel, ns)| match sel {
                Some(s) => Destination { cluster: String::new(), selector: format!("env={s}"), namespace: ns },
                None => Destination { cluster: c, selector: String::new(), namespace: ns },
            });
            let policy = (prop::array::uniform8(any::<bool>()), 0..3u8, (0..10u32, 0..600u64, 1..5u32, 0..3600u64))
                .prop_map(|(b, prop, (limit, d, factor, max))| SyncPolicy {
                    automated: b[0],
                    prune: b[1],
                    self_heal: b[2],
                    create_namespace: b[3],
                    allow_empty: b[4],
                    apply_out_of_sync_only: b[5],
                    prune_last: b[6],
                    prune_propagation: [Propagation::Foreground, Propagation::Background, Propagation::Orphan]
                        [prop as usize],
                    retry: Retry { limit, duration_secs: d, factor, max_duration_secs: max },
                });
            let ignore = prop::collection::vec(
                (text(), text(), prop::collection::vec(text(), 0..2), prop::collection::vec(text(), 0..2)).prop_map(
                    |(kind, name, pointers, managers)| crate::app::IgnoreDifference {
                        kind,
                        name,
                        json_pointers: pointers.into_iter().map(|p| format!("/{p}")).collect(),
                        managed_fields_managers: managers,
                        ..Default::default()
                    },
                ),
                0..3,
            );
            let rollout = prop::option::of((1..100u32, any::<bool>(), 0..3u32, 0..600u64, text(), 1..900u64).prop_map(
                |(n, percent, max_unavailable, pause_secs, order_by, offline_timeout_secs)| crate::rollout::Strategy {
                    step: if percent {
                        crate::rollout::StepSize::Percent(n)
                    } else {
                        crate::rollout::StepSize::Count(n)
                    },
                    max_unavailable,
                    pause_secs,
                    order_by,
                    offline_timeout_secs,
                },
            ));
            (
                source,
                destination,
                policy,
                ignore,
                prop::collection::vec(text(), 0..3),
                rollout,
                prop::option::of(0..50u32),
            )
                .prop_map(
                    |(source, destination, sync_policy, ignore_differences, depends_on, rollout, limit)| AppSpec {
                        source,
                        destination,
                        sync_policy,
                        ignore_differences,
                        depends_on,
                        rollout,
                        revision_history_limit: limit,
                    },
                )
        }

        proptest! {
            /// `bosun app edit` shows `manifest` and reads the edit with `convert`: an edit that
            /// changes nothing changes nothing, and nothing is reported as not honoured.
            #[test]
            fn the_manifest_reads_back_as_the_same_spec(spec in spec()) {
                let m = manifest("web", &spec);
                let yaml = serde_saphyr::to_string(&m).unwrap();
                let back: Value = serde_saphyr::from_str(&yaml).unwrap();
                let c = convert(&back).unwrap();
                prop_assert_eq!(&c.name, "web");
                prop_assert!(c.warnings.is_empty(), "{:?}", c.warnings);
                prop_assert!(!c.inherits_destination);
                prop_assert_eq!(c.spec, spec);
            }
        }
    }
}
