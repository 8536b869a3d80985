//! Webhook payloads (after signature checks, but from a host we do not control).
#![no_main]

use bosun_core::webhook::{Provider, parse_push};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (provider, event) = match data.first() {
        Some(b) if b % 2 == 0 => (Provider::GitHub, "push"),
        _ => (Provider::GitLab, "Push Hook"),
    };
    if let Ok(push) = parse_push(provider, event, data.get(1..).unwrap_or_default()) {
        let source = bosun_core::Source {
            repo_url: push.repos.first().cloned().unwrap_or_default(),
            target_revision: "main".into(),
            path: "k8s".into(),
            recurse: false,
        };
        let _ = push.touches(&source);
    }
});
