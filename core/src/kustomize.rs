//! What a kustomization reads: every path it names (resources, components, patches,
//! generators, CRDs, OpenAPI schemas, configurations, replacements…), resolved against the
//! kustomization's directory and checked to stay inside the repository, and every remote
//! base it names with the host it would be fetched from.
//!
//! The control plane uses this to export only the files a render reads, to refuse paths
//! that climb out of the repository before `kustomize` ever runs, and to refuse remote bases
//! from hosts the operator has not allowed. Pure: the caller reads the repository.

use serde_json::Value;

/// Names a kustomization file may have, in kustomize's order of preference.
pub const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How a reference is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// A file or a directory holding a kustomization (resources, components, bases,
    /// generators, transformers, validators).
    FileOrDir,
    /// A file only (patches, CRDs, generator sources, OpenAPI schemas…).
    File,
    /// A file path, or an inline document when no such file exists (patchesStrategicMerge,
    /// generators/transformers given inline).
    FileOrInline,
}

/// One path-like value of a kustomization, with the field that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub field: String,
    pub value: String,
    pub kind: RefKind,
}

/// A reference that is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error(
        "{field}: {value:?} is an absolute path; paths in a kustomization are relative to it and stay in the repository"
    )]
    Absolute { field: String, value: String },
    #[error("{field}: {value:?} leads outside the repository; a render reads only the Application's repository")]
    Escapes { field: String, value: String },
    #[error(
        "{field}: remote base {url:?} (host {host}) is not allowed; the control plane renders only from the repository unless its operator lists the host with --allow-remote-bases"
    )]
    RemoteNotAllowed { field: String, url: String, host: String },
    #[error("{field}: {value:?} is not a path kustomize can read")]
    Malformed { field: String, value: String },
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// Every path-like value a kustomization names.
pub fn references(k: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut push = |field: String, value: &str, kind: RefKind| {
        out.push(Reference { field, value: value.to_string(), kind });
    };
    for field in ["resources", "bases", "components"] {
        for s in strings(&k[field]) {
            push(field.into(), s, RefKind::FileOrDir);
        }
    }
    for field in ["generators", "transformers", "validators"] {
        for s in strings(&k[field]) {
            // An entry may also be an inline plugin configuration (several lines).
            let kind = if s.contains('\n') { RefKind::FileOrInline } else { RefKind::FileOrDir };
            push(field.into(), s, kind);
        }
    }
    for s in strings(&k["patchesStrategicMerge"]) {
        push("patchesStrategicMerge".into(), s, RefKind::FileOrInline);
    }
    for field in ["crds", "configurations"] {
        for s in strings(&k[field]) {
            push(field.into(), s, RefKind::File);
        }
    }
    for field in ["patches", "patchesJson6902", "replacements"] {
        for (i, item) in k[field].as_array().into_iter().flatten().enumerate() {
            if let Some(p) = item["path"].as_str() {
                push(format!("{field}[{i}].path"), p, RefKind::File);
            }
        }
    }
    if let Some(p) = k["openapi"]["path"].as_str() {
        push("openapi.path".into(), p, RefKind::File);
    }
    for field in ["configMapGenerator", "secretGenerator"] {
        for (i, generator) in k[field].as_array().into_iter().flatten().enumerate() {
            for f in strings(&generator["files"]) {
                // `key=path` or `path`.
                let path = f.split_once('=').map(|(_, p)| p).unwrap_or(f);
                push(format!("{field}[{i}].files"), path, RefKind::File);
            }
            for e in strings(&generator["envs"]) {
                push(format!("{field}[{i}].envs"), e, RefKind::File);
            }
            if let Some(e) = generator["env"].as_str() {
                push(format!("{field}[{i}].env"), e, RefKind::File);
            }
        }
    }
    if let Some(home) = k["helmGlobals"]["chartHome"].as_str() {
        push("helmGlobals.chartHome".into(), home, RefKind::FileOrDir);
    }
    out
}

/// The host a remote reference would be fetched from, when it is one (kustomize's forms:
/// `https://host/…`, `ssh://…`, `git::…`, `git@host:…`, `host.tld/org/repo…`).
pub fn remote_host(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("git::").unwrap_or(v);
    if let Some((_, rest)) = v.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = host.split(':').next().unwrap_or_default();
        return Some(host.to_ascii_lowercase());
    }
    if let Some(rest) = v.strip_prefix("git@") {
        return Some(rest.split(':').next().unwrap_or_default().to_ascii_lowercase());
    }
    // `github.com/org/repo//path?ref=x`: a first segment that is a host name with a dot, as
    // kustomize accepts for well-known hosts and any host with `?ref=` or `//`.
    let first = v.split('/').next().unwrap_or_default();
    let looks_like_host = first.contains('.')
        && !first.starts_with('.')
        && first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let remote_hint = ["github.com", "gitlab.com", "bitbucket.org"].contains(&first.to_ascii_lowercase().as_str())
        || v.contains("?ref=")
        || v.contains("//");
    (looks_like_host && v.contains('/') && remote_hint).then(|| first.to_ascii_lowercase())
}

/// Joins `rel` to the repository directory `base` and normalises it (`.`, `..`); an absolute
/// path or one that climbs above the repository root is refused.
pub fn resolve(base: &str, rel: &str, field: &str) -> Result<String, RefError> {
    if rel.starts_with('/') {
        return Err(RefError::Absolute { field: field.into(), value: rel.into() });
    }
    if rel.is_empty() || rel.contains('\0') {
        return Err(RefError::Malformed { field: field.into(), value: rel.into() });
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(RefError::Escapes { field: field.into(), value: rel.into() });
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// Checks one reference of the kustomization in `dir`: a remote base must come from an
/// allowed host; a path must stay in the repository. Returns the repository path of a local
/// reference, `None` for an allowed remote one.
pub fn check(dir: &str, r: &Reference, allowed_hosts: &[String]) -> Result<Option<String>, RefError> {
    if r.kind == RefKind::FileOrInline && r.value.contains('\n') {
        return Ok(None); // inline content, not a path
    }
    if let Some(host) = remote_host(&r.value) {
        if matches!(r.kind, RefKind::FileOrDir) && allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            return Ok(None);
        }
        return Err(RefError::RemoteNotAllowed { field: r.field.clone(), url: redact(&r.value), host });
    }
    resolve(dir, &r.value, &r.field).map(Some)
}

/// A URL without credentials.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_path_field_is_found() {
        let k = json!({
            "resources": ["deploy.yaml", "../base", "https://github.com/acme/x//y?ref=v1"],
            "bases": ["../old"],
            "components": ["../comp"],
            "patchesStrategicMerge": ["patch.yaml", "apiVersion: v1\nkind: ConfigMap\n"],
            "patches": [{"path": "p1.yaml", "target": {"kind": "Deployment"}}, {"patch": "inline"}],
            "patchesJson6902": [{"path": "j.yaml"}],
            "crds": ["crd.yaml"],
            "configurations": ["conf.yaml"],
            "openapi": {"path": "schema.json"},
            "configMapGenerator": [{"name": "c", "files": ["a.txt", "key=b.txt"], "envs": ["e.env"], "env": "old.env"}],
            "secretGenerator": [{"name": "s", "files": ["../../etc/passwd"]}],
            "generators": ["gen.yaml"],
            "transformers": ["apiVersion: builtin\nkind: LabelTransformer\n"],
            "validators": ["val"],
            "replacements": [{"path": "r.yaml"}],
            "helmGlobals": {"chartHome": "charts"},
        });
        let fields: Vec<(String, String)> = references(&k).into_iter().map(|r| (r.field, r.value)).collect();
        for want in [
            ("resources", "../base"),
            ("bases", "../old"),
            ("components", "../comp"),
            ("patchesStrategicMerge", "patch.yaml"),
            ("patches[0].path", "p1.yaml"),
            ("patchesJson6902[0].path", "j.yaml"),
            ("crds", "crd.yaml"),
            ("configurations", "conf.yaml"),
            ("openapi.path", "schema.json"),
            ("configMapGenerator[0].files", "a.txt"),
            ("configMapGenerator[0].files", "b.txt"),
            ("configMapGenerator[0].envs", "e.env"),
            ("configMapGenerator[0].env", "old.env"),
            ("secretGenerator[0].files", "../../etc/passwd"),
            ("generators", "gen.yaml"),
            ("validators", "val"),
            ("replacements[0].path", "r.yaml"),
            ("helmGlobals.chartHome", "charts"),
        ] {
            assert!(fields.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} in {fields:?}");
        }
        assert_eq!(fields.len(), 22);
    }

    #[test]
    fn paths_stay_in_the_repository() {
        let table: &[(&str, &str, Result<&str, &str>)] = &[
            ("apps/web", "deploy.yaml", Ok("apps/web/deploy.yaml")),
            ("apps/web", "../base", Ok("apps/base")),
            ("apps/web", "./x/../y", Ok("apps/web/y")),
            ("apps/web", "../../x", Ok("x")),
            ("apps/web", "../../../x", Err("outside")),
            ("", "..", Err("outside")),
            ("apps", "/etc/passwd", Err("absolute")),
            ("apps", "", Err("not a path")),
        ];
        for (dir, rel, want) in table {
            let got = resolve(dir, rel, "resources");
            match (want, &got) {
                (Ok(p), Ok(g)) => assert_eq!(g, p, "{dir} + {rel}"),
                (Err(msg), Err(e)) => assert!(e.to_string().contains(msg), "{dir} + {rel}: {e}"),
                _ => panic!("{dir} + {rel}: {got:?}"),
            }
        }
    }

    #[test]
    fn remote_bases_by_host() {
        let table = [
            ("https://github.com/acme/x//base?ref=v1", Some("github.com")),
            ("https://user:tok@git.example.com:8443/x", Some("git.example.com")),
            ("git::https://gitlab.com/a/b", Some("gitlab.com")),
            ("ssh://git@github.com/acme/x", Some("github.com")),
            ("git@github.com:acme/x.git", Some("github.com")),
            ("github.com/acme/x//base?ref=main", Some("github.com")),
            ("example.com/acme/x?ref=main", Some("example.com")),
            ("../base", None),
            ("deploy.yaml", None),
            ("dir.with.dots/file.yaml", None),
        ];
        for (v, want) in table {
            assert_eq!(remote_host(v).as_deref(), want, "{v}");
        }
        let r = Reference {
            field: "resources".into(),
            value: "https://u:secret@evil.test/x".into(),
            kind: RefKind::FileOrDir,
        };
        let e = check("apps", &r, &[]).unwrap_err().to_string();
        assert!(e.contains("evil.test") && !e.contains("secret"), "{e}");
        assert_eq!(check("apps", &r, &["evil.test".into()]), Ok(None));
        // A remote patch file is never fetched.
        let p = Reference { field: "crds".into(), value: "https://evil.test/crd.yaml".into(), kind: RefKind::File };
        assert!(check("apps", &p, &["evil.test".into()]).is_err());
        let inline = Reference {
            field: "patchesStrategicMerge".into(),
            value: "kind: X\nmetadata: {name: a}\n".into(),
            kind: RefKind::FileOrInline,
        };
        assert_eq!(check("apps", &inline, &[]), Ok(None));
    }
}
