//! Parsing of REST paths (`/api/v1/namespaces/ns/pods/name/status`) into a resource request.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api`, `/apis`, `/api/v1`, `/apis/group`, `/apis/group/version`.
    Discovery { group: Option<String>, version: Option<String>, legacy: bool },
    /// A resource collection or object.
    Resource(ResourcePath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a URL path (without query). Returns `None` for paths that are not API paths.
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest, legacy) = match segs.as_slice() {
        ["api"] => {
            return Some(Target::Discovery { group: None, version: None, legacy: true });
        }
        ["apis"] => {
            return Some(Target::Discovery { group: None, version: None, legacy: false });
        }
        ["api", v] => {
            return Some(Target::Discovery { group: None, version: Some((*v).into()), legacy: true });
        }
        ["apis", g] => {
            return Some(Target::Discovery { group: Some((*g).into()), version: None, legacy: false });
        }
        ["apis", g, v] => {
            return Some(Target::Discovery { group: Some((*g).into()), version: Some((*v).into()), legacy: false });
        }
        ["api", v, rest @ ..] => ("", *v, rest, true),
        ["apis", g, v, rest @ ..] => (*g, *v, rest, false),
        _ => return None,
    };
    let _ = legacy;
    let mk = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Target::Resource(ResourcePath {
            group: group.into(),
            version: version.into(),
            namespace: namespace.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }))
    };
    match rest {
        // The namespace object itself and its subresources.
        ["namespaces"] => mk(None, "namespaces", None, None),
        ["namespaces", name] => mk(None, "namespaces", Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            mk(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => mk(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => mk(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => mk(Some(ns), plural, Some(name), Some(sub)),
        [plural] => mk(None, plural, None, None),
        [plural, name] => mk(None, plural, Some(name), None),
        [plural, name, sub] => mk(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_paths() {
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (r.group.as_str(), r.namespace.as_deref(), r.plural.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("", Some("default"), "pods", Some("web"), Some("status"))
        );
        let r = res("/api/v1/namespaces/default");
        assert_eq!((r.plural.as_str(), r.name.as_deref(), r.namespace), ("namespaces", Some("default"), None));
        let r = res("/api/v1/namespaces/default/status");
        assert_eq!((r.plural.as_str(), r.subresource.as_deref()), ("namespaces", Some("status")));
        let r = res("/apis/apps/v1/deployments");
        assert_eq!((r.group.as_str(), r.namespace, r.name), ("apps", None, None));
        let r = res("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b.io");
        assert_eq!(r.name.as_deref(), Some("a.b.io"));
        assert!(matches!(parse("/apis/apps/v1"), Some(Target::Discovery { .. })));
        assert_eq!(parse("/healthz"), None);
        assert_eq!(parse("/api/v1/a/b/c/d"), None);
    }
}
