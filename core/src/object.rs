//! Resource identity: group, kind, namespace and name (the version is not part of identity).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Identity of a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// Identity of a manifest object, or `None` when apiVersion, kind or name is missing.
    pub fn of(obj: &Value) -> Option<Self> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let name = obj.get("metadata")?.get("name")?.as_str()?;
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace: obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
            name: name.to_string(),
        })
    }
}

impl ObjectRef {
    /// Identity of a manifest entry: its name, or for a hook created under a generated name,
    /// its `generateName` prefix (`migrate-`). Two entries of a bundle never share one.
    pub fn of_manifest(obj: &Value) -> Option<Self> {
        Self::of(obj).or_else(|| {
            let prefix = obj["metadata"]["generateName"].as_str().filter(|p| !p.is_empty())?;
            let mut named = obj.clone();
            named["metadata"]["name"] = Value::String(prefix.to_string());
            Self::of(&named)
        })
    }

    /// Whether a manifest entry is created under a generated name (`generateName`, no `name`).
    pub fn is_generated(obj: &Value) -> bool {
        obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
            && obj["metadata"]["generateName"].as_str().is_some_and(|p| !p.is_empty())
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gk = if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) };
        if self.namespace.is_empty() {
            write!(f, "{gk}/{}", self.name)
        } else {
            write!(f, "{gk}/{}/{}", self.namespace, self.name)
        }
    }
}

/// `apps/v1` → `apps`; `v1` → `` (the core group).
pub fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "x"}});
        let r = ObjectRef::of(&d).unwrap();
        assert_eq!(r.to_string(), "Deployment.apps/x/web");
        let n = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        assert_eq!(ObjectRef::of(&n).unwrap().to_string(), "Namespace/x");
        assert!(ObjectRef::of(&json!({"kind": "X", "metadata": {"name": "a"}})).is_none());
    }
}
