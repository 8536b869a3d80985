//! Per-cluster values substituted into paths and rendered manifests: never panics, succeeds
//! exactly when every variable used has a value, and leaves text without variables as it is.
#![no_main]

use std::collections::BTreeMap;

use bosun_core::template::{cluster_values, substitute, variables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (labels_part, body) = text.split_once('\n').unwrap_or(("", text));
    let labels: BTreeMap<String, String> = labels_part
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let values = cluster_values("c1", &labels);
    let used = variables(body);
    match substitute(body, &values) {
        Ok(out) => {
            assert!(used.iter().all(|v| values.contains_key(v)), "every variable used had a value");
            if used.is_empty() {
                assert_eq!(out, body, "text without variables is left as it is");
            }
        }
        Err(e) => {
            assert!(used.iter().any(|v| !values.contains_key(v)), "an error names a missing variable: {e}");
        }
    }
});
