//! Counts of the requests a simulated cluster answered, by verb and resource: what tests use
//! to check that a client makes no request it does not need (a resync that reads nothing and
//! writes nothing, a commit that costs one apply per changed object).

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Requests by (verb, resource); the resource is `group/plural` (`plural` for the core group).
#[derive(Debug, Default)]
pub struct Requests {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

/// Verbs that change state.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl Requests {
    pub fn record(&self, verb: &str, group: &str, plural: &str) {
        let resource = if group.is_empty() { plural.to_string() } else { format!("{group}/{plural}") };
        *self.counts.lock().entry((verb.to_string(), resource)).or_default() += 1;
    }

    /// Requests with this verb, on any resource.
    pub fn count(&self, verb: &str) -> u64 {
        self.counts.lock().iter().filter(|((v, _), _)| v == verb).map(|(_, n)| n).sum()
    }

    /// Requests with this verb on one resource (`deployments`, `apps/deployments`).
    pub fn count_of(&self, verb: &str, resource: &str) -> u64 {
        let counts = self.counts.lock();
        counts
            .iter()
            .filter(|((v, r), _)| v == verb && (r == resource || r.ends_with(&format!("/{resource}"))))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that change state (create, update, patch, delete).
    pub fn writes(&self) -> u64 {
        WRITE_VERBS.iter().map(|v| self.count(v)).sum()
    }

    /// Every count, as `"verb resource": n`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().iter().map(|((v, r), n)| (format!("{v} {r}"), *n)).collect()
    }

    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_verb_and_resource() {
        let r = Requests::default();
        r.record("get", "apps", "deployments");
        r.record("get", "", "configmaps");
        r.record("patch", "apps", "deployments");
        assert_eq!((r.count("get"), r.count_of("get", "deployments"), r.writes()), (2, 1, 1));
        assert_eq!(r.snapshot()["get apps/deployments"], 1);
        r.reset();
        assert_eq!(r.count("get"), 0);
    }
}
