//! Per-object sync annotations, as Argo CD users already write them
//! (`argocd.argoproj.io/sync-wave`, `/hook`, `/hook-delete-policy`, `/sync-options`,
//! `/compare-options`), with `bosun.dev/…` equivalents taking precedence — and Helm's hook
//! annotations mapped as Argo CD maps them: `helm.sh/hook` pre-install/pre-upgrade → PreSync,
//! post-install/post-upgrade → PostSync (other Helm hooks never run; `crd-install` is not a
//! hook), `helm.sh/hook-weight` → the wave when no sync-wave is given, `helm.sh/hook-delete-policy`
//! before-hook-creation/hook-succeeded/hook-failed → the same delete policies.

use serde_json::Value;

pub const WAVE: [&str; 2] = ["bosun.dev/sync-wave", "argocd.argoproj.io/sync-wave"];
pub const HOOK: [&str; 2] = ["bosun.dev/hook", "argocd.argoproj.io/hook"];
pub const HOOK_DELETE_POLICY: [&str; 2] = ["bosun.dev/hook-delete-policy", "argocd.argoproj.io/hook-delete-policy"];
pub const SYNC_OPTIONS: [&str; 2] = ["bosun.dev/sync-options", "argocd.argoproj.io/sync-options"];
pub const COMPARE_OPTIONS: [&str; 2] = ["bosun.dev/compare-options", "argocd.argoproj.io/compare-options"];

/// A malformed sync annotation, named with its object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: annotation {annotation}={value:?} is invalid: {why}")]
pub struct OptionError {
    pub object: String,
    pub annotation: &'static str,
    pub value: String,
    pub why: String,
}

fn annotation<'a>(obj: &'a Value, keys: &[&'static str; 2]) -> Option<(&'static str, &'a str)> {
    keys.iter().find_map(|k| obj["metadata"]["annotations"][*k].as_str().map(|v| (*k, v)))
}

fn name(obj: &Value) -> String {
    crate::ObjectRef::of_manifest(obj).map(|r| r.to_string()).unwrap_or_default()
}

pub const HELM_HOOK: &str = "helm.sh/hook";
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
pub const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

fn helm<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// The sync wave (default 0; a Helm hook weight when no sync-wave is given, as Argo CD reads it).
pub fn wave(obj: &Value) -> Result<i64, OptionError> {
    match annotation(obj, &WAVE) {
        None => Ok(helm(obj, HELM_HOOK_WEIGHT).and_then(|w| w.trim().parse().ok()).unwrap_or(0)),
        Some((k, v)) => v.trim().parse().map_err(|_| OptionError {
            object: name(obj),
            annotation: k,
            value: v.into(),
            why: "expected an integer".into(),
        }),
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    /// Never applied.
    Skip,
}

/// Whether an object is a hook (created for a sync, not applied and not pruned): it has a hook
/// annotation other than `Skip` alone, or a Helm hook annotation other than `crd-install`.
pub fn is_hook(obj: &Value) -> bool {
    match annotation(obj, &HOOK) {
        Some(_) => hooks(obj).is_ok_and(|h| !h.is_empty() && h != [HookType::Skip]),
        None => helm(obj, HELM_HOOK).is_some_and(|h| h.trim() != "crd-install"),
    }
}

/// The hooks an object declares (empty for a regular object). Helm's are read when no Argo CD
/// or Bosun hook annotation is present.
pub fn hooks(obj: &Value) -> Result<Vec<HookType>, OptionError> {
    let Some((k, v)) = annotation(obj, &HOOK) else {
        let helm_hooks = helm(obj, HELM_HOOK).unwrap_or_default();
        return Ok(helm_hooks
            .split(',')
            .filter_map(|h| match h.trim() {
                "pre-install" | "pre-upgrade" => Some(HookType::PreSync),
                "post-install" | "post-upgrade" => Some(HookType::PostSync),
                _ => None,
            })
            .fold(Vec::new(), |mut acc, h| {
                if !acc.contains(&h) {
                    acc.push(h);
                }
                acc
            }));
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|h| match h {
            "PreSync" => Ok(HookType::PreSync),
            "Sync" => Ok(HookType::Sync),
            "PostSync" => Ok(HookType::PostSync),
            "SyncFail" => Ok(HookType::SyncFail),
            "Skip" => Ok(HookType::Skip),
            other => Err(OptionError {
                object: name(obj),
                annotation: k,
                value: v.into(),
                why: format!("unknown hook {other:?}; use PreSync, Sync, PostSync, SyncFail or Skip"),
            }),
        })
        .collect()
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookDeletePolicy {
    HookSucceeded,
    HookFailed,
    BeforeHookCreation,
}

/// Delete policies of a hook: Argo CD's and Helm's together (default: BeforeHookCreation).
pub fn hook_delete_policies(obj: &Value) -> Result<Vec<HookDeletePolicy>, OptionError> {
    let mut policies = match annotation(obj, &HOOK_DELETE_POLICY) {
        Some(_) => argo_delete_policies(obj)?,
        None => Vec::new(),
    };
    for p in helm(obj, HELM_HOOK_DELETE_POLICY).unwrap_or_default().split(',') {
        let mapped = match p.trim() {
            "before-hook-creation" => Some(HookDeletePolicy::BeforeHookCreation),
            "hook-succeeded" => Some(HookDeletePolicy::HookSucceeded),
            "hook-failed" => Some(HookDeletePolicy::HookFailed),
            _ => None,
        };
        if let Some(m) = mapped.filter(|m| !policies.contains(m)) {
            policies.push(m);
        }
    }
    if policies.is_empty() {
        policies.push(HookDeletePolicy::BeforeHookCreation);
    }
    Ok(policies)
}

fn argo_delete_policies(obj: &Value) -> Result<Vec<HookDeletePolicy>, OptionError> {
    let Some((k, v)) = annotation(obj, &HOOK_DELETE_POLICY) else { return Ok(Vec::new()) };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| match p {
            "HookSucceeded" => Ok(HookDeletePolicy::HookSucceeded),
            "HookFailed" => Ok(HookDeletePolicy::HookFailed),
            "BeforeHookCreation" => Ok(HookDeletePolicy::BeforeHookCreation),
            other => Err(OptionError {
                object: name(obj),
                annotation: k,
                value: v.into(),
                why: format!("unknown delete policy {other:?}"),
            }),
        })
        .collect()
}

/// Sync options of one object (from `sync-options` and `compare-options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectOptions {
    /// `Prune=false`: never pruned.
    pub prune: bool,
    /// `Delete=false`: kept when its Application is deleted.
    pub delete: bool,
    /// `Replace=true`: replaced instead of applied.
    pub replace: bool,
    /// `Force=true`: deleted and recreated when an update is refused.
    pub force: bool,
    /// `PruneLast=true`: pruned after everything else is healthy.
    pub prune_last: bool,
    /// `ApplyOutOfSyncOnly=true`.
    pub apply_out_of_sync_only: bool,
    /// `compare-options: IgnoreExtraneous`: not counted as OutOfSync when left over.
    pub ignore_extraneous: bool,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        Self {
            prune: true,
            delete: true,
            replace: false,
            force: false,
            prune_last: false,
            apply_out_of_sync_only: false,
            ignore_extraneous: false,
        }
    }
}

/// Parses the sync and compare options of an object. Unknown options are errors, so a typo
/// is reported instead of silently ignored.
pub fn options(obj: &Value) -> Result<ObjectOptions, OptionError> {
    let mut o = ObjectOptions::default();
    if let Some((k, v)) = annotation(obj, &SYNC_OPTIONS) {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: String| OptionError { object: name(obj), annotation: k, value: v.into(), why };
            let (key, value) = item.split_once('=').ok_or_else(|| bad(format!("{item:?} is not Key=value")))?;
            let flag = match value.trim() {
                "true" => true,
                "false" => false,
                other => return Err(bad(format!("{key}={other}: expected true or false"))),
            };
            match key.trim() {
                "Prune" => o.prune = flag,
                "Delete" => o.delete = flag,
                "Replace" => o.replace = flag,
                "Force" => o.force = flag,
                "PruneLast" => o.prune_last = flag,
                "ApplyOutOfSyncOnly" => o.apply_out_of_sync_only = flag,
                // Accepted for compatibility; Bosun always applies server-side and creates
                // namespaces per Application.
                "ServerSideApply"
                | "Validate"
                | "CreateNamespace"
                | "SkipDryRunOnMissingResource"
                | "RespectIgnoreDifferences" => {}
                other => return Err(bad(format!("unknown sync option {other:?}"))),
            }
        }
    }
    if let Some((_, v)) = annotation(obj, &COMPARE_OPTIONS) {
        o.ignore_extraneous = v.split(',').any(|s| s.trim() == "IgnoreExtraneous");
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": annotations}})
    }

    #[test]
    fn waves() {
        for (a, want) in [
            (json!({}), Ok(0)),
            (json!({"argocd.argoproj.io/sync-wave": "-2"}), Ok(-2)),
            (json!({"argocd.argoproj.io/sync-wave": "5", "bosun.dev/sync-wave": "1"}), Ok(1)),
        ] {
            assert_eq!(wave(&obj(a)).map_err(|e| e.to_string()), want.map_err(|_: ()| String::new()));
        }
        assert!(
            wave(&obj(json!({"argocd.argoproj.io/sync-wave": "soon"})))
                .unwrap_err()
                .to_string()
                .contains("expected an integer")
        );
    }

    #[test]
    fn hooks_and_delete_policies() {
        assert_eq!(hooks(&obj(json!({}))).unwrap(), vec![]);
        assert_eq!(
            hooks(&obj(json!({"argocd.argoproj.io/hook": "PreSync,PostSync"}))).unwrap(),
            vec![HookType::PreSync, HookType::PostSync]
        );
        assert!(hooks(&obj(json!({"argocd.argoproj.io/hook": "Later"}))).is_err());
        assert_eq!(hook_delete_policies(&obj(json!({}))).unwrap(), vec![HookDeletePolicy::BeforeHookCreation]);
        assert_eq!(
            hook_delete_policies(&obj(json!({"argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}))).unwrap(),
            vec![HookDeletePolicy::HookSucceeded]
        );
    }

    #[test]
    fn helm_hooks_are_mapped_as_argo_cd_maps_them() {
        let helm = |a: Value| obj(a);
        assert_eq!(hooks(&helm(json!({"helm.sh/hook": "pre-install,pre-upgrade"}))).unwrap(), vec![HookType::PreSync]);
        assert_eq!(hooks(&helm(json!({"helm.sh/hook": "post-upgrade"}))).unwrap(), vec![HookType::PostSync]);
        assert!(hooks(&helm(json!({"helm.sh/hook": "test"}))).unwrap().is_empty());
        assert!(is_hook(&helm(json!({"helm.sh/hook": "test"}))), "a hook that never runs, not a resource");
        assert!(!is_hook(&helm(json!({"helm.sh/hook": "crd-install"}))));
        // Argo CD's annotation wins.
        let both = helm(json!({"helm.sh/hook": "pre-install", "argocd.argoproj.io/hook": "PostSync"}));
        assert_eq!(hooks(&both).unwrap(), vec![HookType::PostSync]);
        assert_eq!(wave(&helm(json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "-5"}))).unwrap(), -5);
        assert_eq!(wave(&helm(json!({"helm.sh/hook-weight": "3", "argocd.argoproj.io/sync-wave": "1"}))).unwrap(), 1);
        assert_eq!(
            hook_delete_policies(&helm(json!({"helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation"})))
                .unwrap(),
            vec![HookDeletePolicy::HookSucceeded, HookDeletePolicy::BeforeHookCreation]
        );
        assert!(!is_hook(&obj(json!({"argocd.argoproj.io/hook": "Skip"}))));
        assert!(is_hook(&obj(json!({"argocd.argoproj.io/hook": "PreSync"}))));
    }

    #[test]
    fn sync_options_table() {
        let o = options(&obj(json!({"argocd.argoproj.io/sync-options": "Prune=false,Replace=true, PruneLast=true, ServerSideApply=true"}))).unwrap();
        assert_eq!((o.prune, o.replace, o.prune_last, o.delete), (false, true, true, true));
        let o = options(&obj(
            json!({"argocd.argoproj.io/sync-options": "Delete=false,Force=true,ApplyOutOfSyncOnly=true"}),
        ))
        .unwrap();
        assert_eq!((o.delete, o.force, o.apply_out_of_sync_only), (false, true, true));
        assert!(
            options(&obj(json!({"argocd.argoproj.io/compare-options": "IgnoreExtraneous"}))).unwrap().ignore_extraneous
        );
        assert_eq!(options(&obj(json!({}))).unwrap(), ObjectOptions::default());
        for bad in ["Prune", "Prune=maybe", "Prun=false"] {
            assert!(options(&obj(json!({"argocd.argoproj.io/sync-options": bad}))).is_err(), "{bad}");
        }
    }
}
