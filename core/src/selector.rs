//! Label selectors as Kubernetes writes them (`env=prod,tier in (web,api),!canary`), used to
//! target clusters by their labels; and label syntax checks for the labels clusters carry.

use std::collections::BTreeMap;
use std::fmt;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector {input:?}: {why}")]
pub struct SelectorError {
    pub input: String,
    pub why: String,
}

/// Whether `key` is a label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
pub fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_label_value(name)
}

/// Whether `value` is a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && value.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric()))
}

impl Selector {
    /// Parses the Kubernetes selector syntax: comma-separated `k=v`, `k==v`, `k!=v`,
    /// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |why: String| SelectorError { input: input.to_string(), why };
        let mut reqs = Vec::new();
        let mut rest = input.trim();
        while !rest.is_empty() {
            // One requirement runs to the next comma outside parentheses.
            let mut depth = 0i32;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    c == ',' && depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            let part = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim_start();
            if part.is_empty() {
                return Err(err("empty requirement (two commas in a row?)".into()));
            }
            reqs.push(parse_requirement(part).map_err(err)?);
            if rest.is_empty() && end < input.trim().len() && input.trim().ends_with(',') {
                return Err(err("trailing comma".into()));
            }
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Whether the labels `get` looks up satisfy every requirement (for labels kept in
    /// another shape, such as a JSON object).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let key_ok = |k: &str| {
        if valid_label_key(k) { Ok(k.to_string()) } else { Err(format!("{k:?} is not a label key")) }
    };
    let value_ok = |v: &str| {
        let v = v.trim();
        if valid_label_value(v) { Ok(v.to_string()) } else { Err(format!("{v:?} is not a label value")) }
    };
    if let Some(k) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_ok(k.trim())?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEq(key_ok(k.trim())?, value_ok(v)?));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Eq(key_ok(k.trim())?, value_ok(v)?));
    }
    for (word, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = part.split_once(word) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("{set:?}: a set is written (a,b)"))?;
            let values: Vec<String> = inner.split(',').map(value_ok).collect::<Result<_, _>>()?;
            if values.iter().all(String::is_empty) {
                return Err(format!("{part:?}: the set is empty"));
            }
            let key = key_ok(k.trim())?;
            return Ok(if negate { Requirement::NotIn(key, values) } else { Requirement::In(key, values) });
        }
    }
    if part.contains(char::is_whitespace) || part.contains(['(', ')']) {
        return Err(format!("{part:?} is not a requirement (use k=v, k!=v, k in (a,b), k notin (a,b), k or !k)"));
    }
    Ok(Requirement::Exists(key_ok(part)?))
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Eq(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEq(k, v) => write!(f, "{k}!={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn matching_table() {
        let prod_eu = labels(&[("env", "prod"), ("region", "eu-west-1"), ("tier", "web")]);
        let staging = labels(&[("env", "staging"), ("canary", "true")]);
        let table = [
            ("", true, true),
            ("env=prod", true, false),
            ("env==prod", true, false),
            ("env!=prod", false, true),
            ("env in (prod,staging)", true, true),
            ("env notin (prod)", false, true),
            ("region notin (eu-west-1)", false, true),
            ("canary", false, true),
            ("!canary", true, false),
            ("env=prod,tier in (web, api)", true, false),
            ("env=prod, !canary, region", true, false),
            ("tier", true, false),
        ];
        for (sel, a, b) in table {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.matches(&prod_eu), a, "{sel:?} on prod_eu");
            assert_eq!(s.matches(&staging), b, "{sel:?} on staging");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for bad in ["env=", "=prod", "env in prod", "env in ()", "a,,b", "env=pr od", "Env Key=x", "x/", "-a=b", "a=b,"]
        {
            if bad == "env=" {
                // An empty value is a valid label value (k8s allows `env=`).
                assert!(Selector::parse(bad).is_ok());
                continue;
            }
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn label_syntax() {
        for k in ["env", "bosun.dev/region", "a.b-c/x_y.z", "A1"] {
            assert!(valid_label_key(k), "{k}");
        }
        for k in ["", "/x", "Bad.Prefix/x", "x/", "-x", &"a".repeat(64)] {
            assert!(!valid_label_key(k), "{k}");
        }
        assert!(valid_label_value("") && valid_label_value("v1.33.0") && !valid_label_value("v1.33.0+k3s"));
    }

    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9]{0,5}(\\.[a-z]{1,3}/[a-z][a-z0-9]{0,4})?"
    }
    fn value() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9.-]{0,4}[a-z0-9])?"
    }
    fn requirement() -> impl Strategy<Value = Requirement> {
        prop_oneof![
            (key(), value()).prop_map(|(k, v)| Requirement::Eq(k, v)),
            (key(), value()).prop_map(|(k, v)| Requirement::NotEq(k, v)),
            (key(), prop::collection::vec(value(), 1..4)).prop_map(|(k, v)| Requirement::In(k, v)),
            (key(), prop::collection::vec(value(), 1..4)).prop_map(|(k, v)| Requirement::NotIn(k, v)),
            key().prop_map(Requirement::Exists),
            key().prop_map(Requirement::DoesNotExist),
        ]
    }

    proptest! {
        #[test]
        fn display_parses_back(reqs in prop::collection::vec(requirement(), 0..5)) {
            let s = Selector(reqs);
            prop_assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,40}") {
            let _ = Selector::parse(&input);
        }

        #[test]
        fn negations_are_complements(k in key(), v in value(), present in any::<bool>(), other in value()) {
            let mut l = BTreeMap::new();
            if present { l.insert(k.clone(), other.clone()); }
            let eq = Selector(vec![Requirement::Eq(k.clone(), v.clone())]).matches(&l);
            let ne = Selector(vec![Requirement::NotEq(k.clone(), v.clone())]).matches(&l);
            prop_assert_ne!(eq, ne);
            let ex = Selector(vec![Requirement::Exists(k.clone())]).matches(&l);
            let dne = Selector(vec![Requirement::DoesNotExist(k)]).matches(&l);
            prop_assert_ne!(ex, dne);
        }
    }
}
