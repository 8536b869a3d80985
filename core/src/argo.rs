//! Application manifests as users already have them — Argo CD's `argoproj.io/v1alpha1`
//! Application, and Bosun's `bosun.dev/v1` Application of the same shape (plus
//! `destination.selector` and `dependsOn`) — converted to an [`AppSpec`]. Every field Bosun
//! cannot honour is reported, never silently dropped.

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

/// A Go duration as Argo CD writes them (`5s`, `3m`, `1h30m`) in seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            total += n * match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return None,
            };
        }
    }
    if !num.is_empty() {
        total += num.parse::<u64>().ok()?; // a bare number: seconds
    }
    Some(total)
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
        if let Some(l) = retry["limit"].as_i64() {
            policy.retry.limit = l.max(0) as u32;
        }
        let b = &retry["backoff"];
        if let Some(d) = b["duration"].as_str().and_then(parse_duration) {
            policy.retry.duration_secs = d;
        }
        if let Some(f) = b["factor"].as_u64() {
            policy.retry.factor = f as u32;
        }
        if let Some(d) = b["maxDuration"].as_str().and_then(parse_duration) {
            policy.retry.max_duration_secs = d;
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
    if let Some(limit) = spec["revisionHistoryLimit"].as_i64()
        && limit != 10
    {
        warn("spec.revisionHistoryLimit", "Bosun keeps the last 10 syncs");
    }
    if let Some(p) = spec["project"].as_str()
        && !p.is_empty()
        && p != "default"
    {
        warn("spec.project", &format!("{p:?}: projects are not supported; admin roles apply to all Applications"));
    }
    if spec.get("info").is_some() {
        warn("spec.info", "not kept");
    }
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
    Ok(Converted {
        name: name.to_string(),
        spec: AppSpec { source, destination, sync_policy: policy, ignore_differences, depends_on, rollout: None },
        warnings,
        inherits_destination,
    })
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
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("spec.project"));
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
        for f in [
            "spec.destination.server",
            "spec.revisionHistoryLimit",
            "spec.syncPolicy.syncOptions",
            "spec.source.directory.exclude",
            "spec.project",
        ] {
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
    fn durations() {
        for (s, want) in [("5s", Some(5)), ("3m", Some(180)), ("1h30m", Some(5400)), ("90", Some(90)), ("1d", None)] {
            assert_eq!(parse_duration(s), want, "{s}");
        }
    }
}
