//! Manifest files from Git: any bytes, as YAML (multi-document) or JSON, must give objects or
//! a clear error — never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("f.json", rest),
        Some((_, rest)) => ("f.yaml", rest),
        None => ("f.yaml", data),
    };
    if let Ok(objects) = bosun_core::manifest::parse_file(name, body) {
        // Whatever parses has an identity and can be bundled and planned.
        for o in &objects {
            assert!(bosun_core::ObjectRef::of_manifest(o).is_some());
        }
        let _ = bosun_core::Bundle::new(objects);
    }
});
