//! Webhook payloads (after signature checks, but from a host we do not control): parsing
//! never panics, and what a parsed push says obeys the rule the control plane relies on — a
//! push refreshes only Applications of its own repository, following the pushed ref, and (when
//! the payload lists every file) only those whose path a file lies under.
#![no_main]

use bosun_core::webhook::{Provider, normalize_repo_url, parse_push};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (provider, event) = match data.first() {
        Some(b) if b % 2 == 0 => (Provider::GitHub, "push"),
        _ => (Provider::GitLab, "Push Hook"),
    };
    let Ok(push) = parse_push(provider, event, data.get(1..).unwrap_or_default()) else { return };
    assert!(!push.repos.is_empty(), "a parsed push names its repository");
    assert!(!push.git_ref.is_empty(), "a parsed push names its ref");
    for r in &push.repos {
        assert_eq!(&normalize_repo_url(r), r, "repository URLs are normalised");
    }
    let pushed = push.pushed().to_string();
    let source = |repo: &str, rev: &str, path: &str| bosun_core::Source {
        repo_url: repo.into(),
        target_revision: rev.into(),
        path: path.into(),
        recurse: false,
    };
    // Another repository is never touched (the fuzzer may make the push name the very
    // repository the check calls another: then it is not another).
    let elsewhere = "https://elsewhere.invalid/other/repo";
    if !push.repos.contains(&normalize_repo_url(elsewhere)) {
        assert!(!push.touches(&source(elsewhere, &pushed, "")));
    }
    let repo = push.repos[0].clone();
    // Another branch is never touched.
    assert!(!push.touches(&source(&repo, &format!("{pushed}-not-this-one"), "")));
    // With every file listed, a path no file lies under is not touched.
    if let Some(paths) = &push.changed_paths {
        let unrelated = "zz-bosun-fuzz-unrelated";
        if !paths.iter().any(|p| p.starts_with(unrelated)) {
            assert!(!push.touches(&source(&repo, &pushed, unrelated)));
        }
        for p in paths.iter().filter(|p| !p.is_empty()) {
            let dir = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            assert!(push.touches(&source(&repo, &push.git_ref, dir)), "a changed file touches its directory");
        }
    }
    // The same question gets the same answer.
    let s = source(&repo, &pushed, "k8s");
    assert_eq!(push.touches(&s), push.touches(&s));
});
