//! Per-cluster values in source paths and manifests: `{{cluster.name}}` and
//! `{{cluster.labels.KEY}}` (spaces inside the braces allowed). An Application whose path or
//! rendered manifests use them gets one bundle per distinct combination of the values it uses.

use std::collections::{BTreeMap, BTreeSet};

/// The variables of one cluster: `cluster.name` and `cluster.labels.<key>` for each label.
pub fn cluster_values(name: &str, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("cluster.name".to_string(), name.to_string());
    for (k, val) in labels {
        v.insert(format!("cluster.labels.{k}"), val.clone());
    }
    v
}

/// Finds `{{ cluster.… }}` placeholders: (start, end, variable) for each.
fn placeholders(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| i + from) {
        let Some(close) = text[open + 2..].find("}}").map(|i| i + open + 2) else { break };
        let var = text[open + 2..close].trim();
        if var.starts_with("cluster.") && !var.contains(char::is_whitespace) {
            out.push((open, close + 2, var));
        }
        from = close + 2;
    }
    out
}

/// The cluster variables `text` uses.
pub fn variables(text: &str) -> BTreeSet<String> {
    placeholders(text).into_iter().map(|(_, _, v)| v.to_string()).collect()
}

/// Replaces every placeholder with its value; a variable the cluster lacks is an error
/// naming it.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, var) in placeholders(text) {
        let value = values.get(var).ok_or_else(|| match var.strip_prefix("cluster.labels.") {
            Some(k) => format!("the cluster has no label {k:?} (used as {{{{{var}}}}})"),
            None => format!("{{{{{var}}}}} is not a cluster variable (use cluster.name or cluster.labels.KEY)"),
        })?;
        out.push_str(&text[last..start]);
        out.push_str(value);
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_table() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        let v = cluster_values("eu-1", &labels);
        let table = [
            ("overlays/{{cluster.labels.env}}", Ok("overlays/prod")),
            ("name: web-{{ cluster.name }}", Ok("name: web-eu-1")),
            ("{{cluster.name}}{{cluster.name}}", Ok("eu-1eu-1")),
            ("no placeholders {{ other }} {{", Ok("no placeholders {{ other }} {{")),
            ("{{cluster.labels.region}}", Err("no label \"region\"")),
            ("{{cluster.uid}}", Err("not a cluster variable")),
        ];
        for (input, want) in table {
            match (substitute(input, &v), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{input}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{input}: {got}"),
                (got, w) => panic!("{input}: {got:?} vs {w:?}"),
            }
        }
        assert_eq!(
            variables("a {{cluster.name}} b {{ cluster.labels.env }} {{x}}"),
            ["cluster.labels.env".to_string(), "cluster.name".to_string()].into()
        );
    }

    use proptest::prelude::{prop_assert_eq, proptest};

    proptest! {
        #[test]
        fn text_without_placeholders_is_unchanged(s in "[^{]{0,60}") {
            prop_assert_eq!(substitute(&s, &BTreeMap::new()).unwrap(), s);
        }

        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = substitute(&s, &cluster_values("c", &BTreeMap::new()));
            let _ = variables(&s);
        }
    }
}
