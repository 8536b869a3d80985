//! A cluster's labels as selectors and per-cluster values see them, and who may set which.
//!
//! Three sources, in three namespaces that cannot overwrite each other:
//! - **identity**: `bosun.dev/name`, from the agent's certificate (never from a request);
//! - **admin labels**: anything set with `bosun cluster add --label` / `bosun cluster label`,
//!   except keys in a `bosun.dev` namespace;
//! - **facts** the agent reports about its cluster (Kubernetes version, node count), each under
//!   `fact.bosun.dev/<name>`. An agent can claim facts about its own cluster and nothing else:
//!   a fact whose name is not a plain label name (no `/`, so no other namespace) is refused.

use std::collections::BTreeMap;

use crate::selector::{valid_label_key, valid_label_value};

/// The identity label: the cluster's name as its certificate says.
pub const NAME_LABEL: &str = "bosun.dev/name";
/// The prefix of labels derived from agent-reported facts.
pub const FACT_PREFIX: &str = "fact.bosun.dev/";
/// Most facts one agent may report.
pub const MAX_FACTS: usize = 32;
/// Longest fact value kept (longer ones are refused).
pub const MAX_FACT_VALUE: usize = 256;

/// Whether `key` lies in a namespace Bosun reserves (`bosun.dev/…`, `*.bosun.dev/…`).
pub fn reserved(key: &str) -> bool {
    key.split_once('/').is_some_and(|(prefix, _)| prefix == "bosun.dev" || prefix.ends_with(".bosun.dev"))
}

/// Why an admin may not set this label, if they may not.
pub fn check_admin_label(key: &str, value: &str) -> Result<(), String> {
    if !valid_label_key(key) {
        return Err(format!(
            "{key:?} is not a label key (an optional DNS prefix and '/', then a name of at most 63 of [A-Za-z0-9._-])"
        ));
    }
    if reserved(key) {
        return Err(format!(
            "{key:?} is in the bosun.dev namespace, which Bosun sets itself (identity and agent facts); choose another prefix"
        ));
    }
    if !valid_label_value(value) {
        return Err(format!(
            "{value:?} is not a label value (at most 63 of [A-Za-z0-9._-], alphanumeric at both ends)"
        ));
    }
    Ok(())
}

/// One fact an agent reported that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedFact {
    pub name: String,
    pub why: String,
}

/// Splits reported facts into those kept and those refused. A fact's name must be a plain
/// label name (it becomes `fact.bosun.dev/<name>`); its value is kept as reported (at most
/// [`MAX_FACT_VALUE`] bytes) and is matched by selectors only when it is a label value.
pub fn accept_facts(reported: BTreeMap<String, String>) -> (BTreeMap<String, String>, Vec<RefusedFact>) {
    let mut kept = BTreeMap::new();
    let mut refused = Vec::new();
    for (name, value) in reported {
        let why = if kept.len() >= MAX_FACTS {
            Some(format!("more than {MAX_FACTS} facts"))
        } else if name.contains('/') || !valid_label_key(&name) {
            Some("a fact name is a plain label name (no '/'); agents cannot set labels in other namespaces".to_string())
        } else if value.len() > MAX_FACT_VALUE {
            Some(format!("the value is longer than {MAX_FACT_VALUE} bytes"))
        } else {
            None
        };
        match why {
            Some(why) => refused.push(RefusedFact { name, why }),
            None => {
                kept.insert(name, value);
            }
        }
    }
    (kept, refused)
}

/// The labels selectors match for a cluster: its admin labels, its facts under
/// [`FACT_PREFIX`] (those whose value is a label value), and its identity, which nothing
/// overwrites.
pub fn labels(
    name: &str,
    admin: &BTreeMap<String, String>,
    facts: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        admin.iter().filter(|(k, _)| !reserved(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in facts {
        if !k.contains('/') && valid_label_value(v) {
            out.insert(format!("{FACT_PREFIX}{k}"), v.clone());
        }
    }
    out.insert(NAME_LABEL.into(), name.into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn facts_cannot_claim_identity_or_admin_labels() {
        let (kept, refused) = accept_facts(map(&[
            ("name", "c2"),
            ("bosun.dev/name", "c2"),
            ("env", "prod"),
            ("kubernetesVersion", "v1.29.4+k3s1"),
            ("nodes", "3"),
        ]));
        assert_eq!(refused.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["bosun.dev/name"]);
        let l = labels("c1", &map(&[("env", "dev")]), &kept);
        assert_eq!(l[NAME_LABEL], "c1", "identity comes from the certificate");
        assert_eq!(l["env"], "dev", "admin labels are not overwritten by facts");
        assert_eq!(l["fact.bosun.dev/name"], "c2");
        assert_eq!(l["fact.bosun.dev/env"], "prod");
        assert_eq!(l["fact.bosun.dev/nodes"], "3");
        assert!(!l.contains_key("fact.bosun.dev/kubernetesVersion"), "not a label value: kept as a fact only");
    }

    #[test]
    fn admins_cannot_set_reserved_labels() {
        for key in ["bosun.dev/name", "fact.bosun.dev/nodes", "x.bosun.dev/y"] {
            assert!(check_admin_label(key, "v").is_err(), "{key}");
        }
        for key in ["env", "acme.io/tier", "bosun.devx/y", "notbosun.dev.io/a"] {
            assert!(check_admin_label(key, "v").is_ok(), "{key}");
        }
        assert!(check_admin_label("env", "not ok").is_err());
        // A stored label in a reserved namespace (from an older version) is not matched.
        let l = labels("c1", &map(&[("bosun.dev/name", "c9")]), &BTreeMap::new());
        assert_eq!(l[NAME_LABEL], "c1");
    }

    #[test]
    fn fact_limits() {
        let many: BTreeMap<String, String> = (0..40).map(|i| (format!("f{i:02}"), "v".to_string())).collect();
        let (kept, refused) = accept_facts(many);
        assert_eq!((kept.len(), refused.len()), (MAX_FACTS, 8));
        let (_, refused) = accept_facts(map(&[("big", &"x".repeat(MAX_FACT_VALUE + 1))]));
        assert_eq!(refused.len(), 1);
    }
}
