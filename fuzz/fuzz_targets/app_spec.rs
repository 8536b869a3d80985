//! Application specs as people write them (YAML or JSON), through deserialisation and
//! validation (which parses jq path expressions too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let spec: Result<bosun_core::AppSpec, _> = serde_saphyr::from_str(text);
    if let Ok(spec) = spec {
        if let Ok(valid) = spec.validate("fuzz") {
            // A valid spec's path never leaves the repository.
            assert!(!valid.source.path.starts_with('/'));
            assert!(!valid.source.path.split('/').any(|p| p == ".."));
        }
    }
});
