//! Argo CD and bosun.dev Application manifests as found in repositories (app of apps) and
//! given to `bosun app import`: conversion never panics, and what it accepts is a spec whose
//! validation does not panic either and whose every unhonoured field is reported, never lost.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(docs) = serde_saphyr::from_multiple::<serde_json::Value>(text) else { return };
    for doc in docs {
        if !bosun_core::argo::is_application(&doc) {
            continue;
        }
        if let Ok(c) = bosun_core::argo::convert(&doc) {
            assert!(!c.name.is_empty(), "a converted Application has a name");
            let _ = c.spec.validate(&c.name);
        }
    }
});
