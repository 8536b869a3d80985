//! Per-object sync annotations, as Argo CD users already write them
//! (`argocd.argoproj.io/sync-wave`, `/hook`, `/hook-delete-policy`, `/sync-options`,
//! `/compare-options`), with `bosun.dev/…` equivalents taking precedence.

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
    crate::ObjectRef::of(obj).map(|r| r.to_string()).unwrap_or_default()
}

/// The sync wave (default 0).
pub fn wave(obj: &Value) -> Result<i64, OptionError> {
    match annotation(obj, &WAVE) {
        None => Ok(0),
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

/// The hooks an object declares (empty for a regular object).
pub fn hooks(obj: &Value) -> Result<Vec<HookType>, OptionError> {
    let Some((k, v)) = annotation(obj, &HOOK) else { return Ok(vec![]) };
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

/// Delete policies of a hook (Argo CD's default: BeforeHookCreation).
pub fn hook_delete_policies(obj: &Value) -> Result<Vec<HookDeletePolicy>, OptionError> {
    let Some((k, v)) = annotation(obj, &HOOK_DELETE_POLICY) else {
        return Ok(vec![HookDeletePolicy::BeforeHookCreation]);
    };
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
