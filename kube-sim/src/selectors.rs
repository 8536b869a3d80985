//! Label selectors (equality- and set-based) and field selectors, as list and watch accept them.

use serde_json::Value;

use bosun_core::selector::{Requirement, Selector};

use crate::error::ApiError;

/// A parsed label selector (Bosun core's parser and matcher: one implementation of Kubernetes'
/// selector syntax serves the control plane's cluster targeting and this server); the empty
/// selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Selector);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Selector::parse(s).map(Self).map_err(|e| {
            ApiError::bad_request(format!("unable to parse requirement: invalid label selector: {}", e.why))
        })
    }

    /// From a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                reqs.push(Requirement::Eq(k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => reqs.push(Requirement::In(key, values)),
                Some("NotIn") => reqs.push(Requirement::NotIn(key, values)),
                Some("Exists") => reqs.push(Requirement::Exists(key)),
                Some("DoesNotExist") => reqs.push(Requirement::DoesNotExist(key)),
                _ => {}
            }
        }
        Self(Selector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &Value) -> bool {
        self.0.matches_with(|k| labels.get(k).and_then(Value::as_str))
    }
}

/// A field selector: `metadata.name=x,metadata.namespace!=y` (and other dotted paths).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, eq, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{term}'; can't understand '{term}'")));
            };
            let path = path.trim();
            if !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') || path.is_empty() {
                return Err(ApiError::bad_request(format!("field label not supported: {path}")));
            }
            out.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, value)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_table() {
        let labels = json!({"app": "web", "env": "prod", "tier": "frontend"});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("env in (prod,staging)", true),
            ("env in (dev)", false),
            ("env notin (dev, staging)", true),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,env in (prod),!missing", true),
            ("app=web,env in (dev)", false),
        ];
        for (sel, want) in cases {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&labels), want, "{sel}");
        }
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn selector_from_object() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]});
        let s = LabelSelector::from_object(&sel);
        assert!(s.matches(&json!({"app": "web", "env": "prod"})));
        assert!(!s.matches(&json!({"app": "web", "env": "dev"})));
    }

    #[test]
    fn field_selector_table() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}});
        for (sel, want) in [
            ("metadata.name=a", true),
            ("metadata.name!=a", false),
            ("metadata.namespace=ns,metadata.name=a", true),
            ("status.phase=Running", true),
            ("metadata.name=b", false),
        ] {
            assert_eq!(FieldSelector::parse(sel).unwrap().matches(&obj), want, "{sel}");
        }
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
