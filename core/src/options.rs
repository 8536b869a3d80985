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

pub const HELM_HOOK: &str = "helm.sh/hook";
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
pub const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

/// An annotation that was set: its key (for error messages) and value.
type Set<'a> = Option<(&'static str, &'a str)>;

/// The sync annotations of one object, found in one pass over its annotations (an agent
/// reads them for every object on every pass). A `bosun.dev/…` key wins over its Argo CD twin.
#[derive(Clone, Copy)]
struct Raw<'a> {
    obj: &'a Value,
    wave: Set<'a>,
    hook: Set<'a>,
    hook_delete_policy: Set<'a>,
    sync_options: Set<'a>,
    compare_options: Set<'a>,
    helm_hook: Set<'a>,
    helm_hook_weight: Set<'a>,
    helm_hook_delete_policy: Set<'a>,
}

impl<'a> Raw<'a> {
    fn of(obj: &'a Value) -> Self {
        let mut raw = Raw {
            obj,
            wave: None,
            hook: None,
            hook_delete_policy: None,
            sync_options: None,
            compare_options: None,
            helm_hook: None,
            helm_hook_weight: None,
            helm_hook_delete_policy: None,
        };
        let annotations = obj.get("metadata").and_then(|m| m.get("annotations")).and_then(Value::as_object);
        for (k, v) in annotations.into_iter().flatten() {
            let Some(v) = v.as_str() else { continue };
            // [preferred key, the other]: the preferred one replaces the other if read before it.
            let (slot, [preferred, other]) = match k.as_str() {
                HELM_HOOK => (&mut raw.helm_hook, [HELM_HOOK; 2]),
                HELM_HOOK_WEIGHT => (&mut raw.helm_hook_weight, [HELM_HOOK_WEIGHT; 2]),
                HELM_HOOK_DELETE_POLICY => (&mut raw.helm_hook_delete_policy, [HELM_HOOK_DELETE_POLICY; 2]),
                k if WAVE.contains(&k) => (&mut raw.wave, WAVE),
                k if HOOK.contains(&k) => (&mut raw.hook, HOOK),
                k if HOOK_DELETE_POLICY.contains(&k) => (&mut raw.hook_delete_policy, HOOK_DELETE_POLICY),
                k if SYNC_OPTIONS.contains(&k) => (&mut raw.sync_options, SYNC_OPTIONS),
                k if COMPARE_OPTIONS.contains(&k) => (&mut raw.compare_options, COMPARE_OPTIONS),
                _ => continue,
            };
            if k == preferred {
                *slot = Some((preferred, v));
            } else if slot.is_none() {
                *slot = Some((other, v));
            }
        }
        raw
    }

    fn error(&self, (annotation, value): (&'static str, &str), why: String) -> OptionError {
        let object = crate::ObjectRef::of_manifest(self.obj).map(|r| r.to_string()).unwrap_or_default();
        OptionError { object, annotation, value: value.into(), why }
    }
}

/// Every sync annotation of an object, parsed: what a sync needs to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnnotations {
    pub wave: i64,
    /// The hooks it declares (empty for a regular object).
    pub hooks: Vec<HookType>,
    /// Whether it is a hook (see [`is_hook`]).
    pub is_hook: bool,
    pub delete_policies: Vec<HookDeletePolicy>,
    pub options: ObjectOptions,
}

/// Reads every sync annotation of `obj` at once (one pass over its annotations); the first
/// malformed one is the error.
pub fn read(obj: &Value) -> Result<SyncAnnotations, OptionError> {
    let raw = Raw::of(obj);
    let hooks = raw_hooks(&raw)?;
    Ok(SyncAnnotations {
        wave: raw_wave(&raw)?,
        is_hook: raw_is_hook(&raw, &hooks),
        options: raw_options(&raw)?,
        delete_policies: raw_delete_policies(&raw)?,
        hooks,
    })
}

/// The sync wave (default 0; a Helm hook weight when no sync-wave is given, as Argo CD reads it).
pub fn wave(obj: &Value) -> Result<i64, OptionError> {
    raw_wave(&Raw::of(obj))
}

fn raw_wave(raw: &Raw<'_>) -> Result<i64, OptionError> {
    match raw.wave {
        None => Ok(raw.helm_hook_weight.and_then(|(_, w)| w.trim().parse().ok()).unwrap_or(0)),
        Some(set) => set.1.trim().parse().map_err(|_| raw.error(set, "expected an integer".into())),
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
    let raw = Raw::of(obj);
    raw_hooks(&raw).is_ok_and(|h| raw_is_hook(&raw, &h))
}

fn raw_is_hook(raw: &Raw<'_>, hooks: &[HookType]) -> bool {
    match raw.hook {
        Some(_) => !hooks.is_empty() && hooks != [HookType::Skip],
        None => raw.helm_hook.is_some_and(|(_, h)| h.trim() != "crd-install"),
    }
}

/// The hooks an object declares (empty for a regular object). Helm's are read when no Argo CD
/// or Bosun hook annotation is present.
pub fn hooks(obj: &Value) -> Result<Vec<HookType>, OptionError> {
    raw_hooks(&Raw::of(obj))
}

fn raw_hooks(raw: &Raw<'_>) -> Result<Vec<HookType>, OptionError> {
    let Some(set) = raw.hook else {
        let helm_hooks = raw.helm_hook.map(|(_, h)| h).unwrap_or_default();
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
    set.1
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|h| match h {
            "PreSync" => Ok(HookType::PreSync),
            "Sync" => Ok(HookType::Sync),
            "PostSync" => Ok(HookType::PostSync),
            "SyncFail" => Ok(HookType::SyncFail),
            "Skip" => Ok(HookType::Skip),
            other => {
                Err(raw.error(set, format!("unknown hook {other:?}; use PreSync, Sync, PostSync, SyncFail or Skip")))
            }
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
    raw_delete_policies(&Raw::of(obj))
}

fn raw_delete_policies(raw: &Raw<'_>) -> Result<Vec<HookDeletePolicy>, OptionError> {
    let mut policies = match raw.hook_delete_policy {
        Some(set) => set
            .1
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|p| match p {
                "HookSucceeded" => Ok(HookDeletePolicy::HookSucceeded),
                "HookFailed" => Ok(HookDeletePolicy::HookFailed),
                "BeforeHookCreation" => Ok(HookDeletePolicy::BeforeHookCreation),
                other => Err(raw.error(set, format!("unknown delete policy {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    for p in raw.helm_hook_delete_policy.map(|(_, p)| p).unwrap_or_default().split(',') {
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
    raw_options(&Raw::of(obj))
}

fn raw_options(raw: &Raw<'_>) -> Result<ObjectOptions, OptionError> {
    let mut o = ObjectOptions::default();
    if let Some(set) = raw.sync_options {
        for item in set.1.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: String| raw.error(set, why);
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
    if let Some((_, v)) = raw.compare_options {
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
            (json!({"bosun.dev/sync-wave": "1", "argocd.argoproj.io/sync-wave": "5"}), Ok(1)),
            (json!({"helm.sh/hook-weight": "3"}), Ok(3)),
            (json!({"helm.sh/hook-weight": "3", "argocd.argoproj.io/sync-wave": "-1"}), Ok(-1)),
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

    #[test]
    fn reading_everything_at_once_agrees_with_each_reader() {
        let cases = [
            json!({}),
            json!({"argocd.argoproj.io/hook": "PreSync,PostSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
            json!({"bosun.dev/hook": "Skip", "argocd.argoproj.io/hook": "Sync"}),
            json!({"helm.sh/hook": "pre-install,post-upgrade", "helm.sh/hook-weight": "-5",
                   "helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation"}),
            json!({"helm.sh/hook": "crd-install"}),
            json!({"argocd.argoproj.io/sync-options": "Prune=false,Replace=true", "argocd.argoproj.io/compare-options": "IgnoreExtraneous"}),
            json!({"argocd.argoproj.io/sync-options": "Prune=maybe"}),
            json!({"argocd.argoproj.io/hook": "Sometimes"}),
            json!({"argocd.argoproj.io/sync-wave": 3}),
        ];
        for a in cases {
            let o = obj(a.clone());
            let each = (|| {
                Ok::<_, OptionError>(SyncAnnotations {
                    wave: wave(&o)?,
                    hooks: hooks(&o)?,
                    is_hook: is_hook(&o),
                    delete_policies: hook_delete_policies(&o)?,
                    options: options(&o)?,
                })
            })();
            let at_once = read(&o);
            assert_eq!(at_once.is_ok(), each.is_ok(), "{a}");
            if let (Ok(x), Ok(y)) = (at_once, each) {
                assert_eq!(x, y, "{a}");
            }
        }
    }
}
