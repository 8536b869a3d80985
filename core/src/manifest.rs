//! Parsing manifest files (YAML multi-document streams, JSON objects and lists) into objects.

use serde_json::Value;

use crate::object::ObjectRef;

/// Largest manifest file accepted.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A manifest that cannot become objects, with the file and document it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: file is {size} bytes, more than the {max} allowed; split it or move data out of Git")]
    TooLarge { file: String, size: usize, max: usize },
    #[error("{file}: not valid UTF-8")]
    NotUtf8 { file: String },
    #[error("{file}: invalid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: invalid JSON: {message}")]
    Json { file: String, message: String },
    #[error("{file}: document {index} is not a Kubernetes object: {why}")]
    NotAnObject { file: String, index: usize, why: String },
    #[error("{object} is defined twice: in {first} and in {second}")]
    Duplicate { object: String, first: String, second: String },
}

/// Deepest nesting accepted in a manifest (Kubernetes objects rarely exceed 20).
pub const MAX_DEPTH: usize = 64;
/// Most YAML nodes in one file, counting those produced by alias expansion.
pub const MAX_NODES: usize = 250_000;
/// Most events replayed through aliases in one file: a "billion laughs" document stops here.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    let mut budget = o.budget.clone().unwrap_or_default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    o.budget = Some(budget);
    o.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    o
}

/// The parser's message as a sentence for people: its first line (the rest repeats the
/// input), with the budget limits named in words rather than the parser's own forms.
fn yaml_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or_default().trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line L column C: <what>"
    let (at, what) = match first.split_once(": ") {
        Some((at, what)) if at.starts_with("line ") => (Some(at), what),
        _ => (None, first),
    };
    let what = if what.contains("budget breached: Depth") || what.contains("recursion limit") {
        format!("nesting deeper than {MAX_DEPTH} levels")
    } else if what.contains("budget breached: Nodes") {
        format!("more than {MAX_NODES} YAML nodes (aliases counted as expanded)")
    } else if what.contains("budget breached") {
        "the document is larger than a manifest may be".to_string()
    } else if what.contains("alias replay limit") {
        format!("aliases expand to more than {MAX_ALIAS_EVENTS} nodes (an alias bomb)")
    } else {
        // The parser's advice is for programmers of the parser, not for the manifest's author.
        what.split(", set DuplicateKeyPolicy").next().unwrap_or(what).to_string()
    };
    match at {
        Some(at) => format!("{what} at {at}"),
        None => what,
    }
}

/// Whether a file name is a manifest this parser reads.
pub fn is_manifest(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Parses a file holding one YAML (or JSON) document that is not a Kubernetes object, such as
/// a kustomization, with the same size and nesting budgets as manifests.
pub fn parse_document(file: &str, bytes: &[u8]) -> Result<Value, ManifestError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ManifestError::TooLarge { file: file.into(), size: bytes.len(), max: MAX_FILE_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8 { file: file.into() })?;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options::<Value>(text, yaml_options())
        .map_err(|e| ManifestError::Yaml { file: file.into(), message: yaml_message(&e.to_string()) })?;
    Ok(docs.into_iter().find(|d| !d.is_null()).unwrap_or(Value::Null))
}

/// Objects parsed from manifests, with what was accepted but deserves a word.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub objects: Vec<Value>,
    /// Things Kubernetes would accept that are probably mistakes (a mapping key written twice).
    pub warnings: Vec<String>,
}

/// Parses one file. YAML files may hold several documents; empty documents are skipped;
/// `kind: List` objects are expanded into their items.
pub fn parse_file(file: &str, bytes: &[u8]) -> Result<Vec<Value>, ManifestError> {
    parse_file_with_warnings(file, bytes).map(|p| p.objects)
}

/// Like [`parse_file`], with warnings. A mapping key written twice is loaded as Kubernetes
/// loads it (the last value wins) and named in a warning.
pub fn parse_file_with_warnings(file: &str, bytes: &[u8]) -> Result<Parsed, ManifestError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ManifestError::TooLarge { file: file.into(), size: bytes.len(), max: MAX_FILE_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8 { file: file.into() })?;
    let mut warnings = Vec::new();
    let docs: Vec<Value> = if file.to_ascii_lowercase().ends_with(".json") {
        vec![
            serde_json::from_str(text)
                .map_err(|e| ManifestError::Json { file: file.into(), message: e.to_string() })?,
        ]
    } else {
        match serde_saphyr::from_multiple_with_options::<Value>(text, yaml_options()) {
            Ok(d) => d,
            Err(e) if e.to_string().contains("duplicate mapping key") => {
                let what = yaml_message(&e.to_string());
                warnings.push(format!(
                    "{file}: {what}; the last value is used, as Kubernetes does (only the first duplicate is named)"
                ));
                let mut options = yaml_options();
                options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
                serde_saphyr::from_multiple_with_options::<Value>(text, options)
                    .map_err(|e| ManifestError::Yaml { file: file.into(), message: yaml_message(&e.to_string()) })?
            }
            Err(e) => return Err(ManifestError::Yaml { file: file.into(), message: yaml_message(&e.to_string()) }),
        }
    };
    let mut objects = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let items = if doc["kind"].as_str().is_some_and(|k| k.ends_with("List")) && doc["items"].is_array() {
            doc["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![doc]
        };
        for obj in items {
            check_object(file, index, &obj)?;
            objects.push(obj);
        }
    }
    Ok(Parsed { objects, warnings })
}

fn check_object(file: &str, index: usize, obj: &Value) -> Result<(), ManifestError> {
    let err = |why: &str| Err(ManifestError::NotAnObject { file: file.into(), index, why: why.into() });
    if !obj.is_object() {
        return err("expected a mapping with apiVersion, kind and metadata.name");
    }
    if obj["apiVersion"].as_str().is_none_or(str::is_empty) {
        return err("missing apiVersion");
    }
    if obj["kind"].as_str().is_none_or(str::is_empty) {
        return err("missing kind");
    }
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        if crate::ObjectRef::is_generated(obj) {
            if !crate::options::is_hook(obj) {
                return err(
                    "metadata.generateName without a name works only for hooks (they are created for each sync; other objects are applied by name)",
                );
            }
        } else {
            return err("missing metadata.name");
        }
    }
    Ok(())
}

/// Checks an object after per-cluster values were substituted into it (`{{cluster.name}}`,
/// `{{cluster.labels.x}}`): it still has an identity, a name the API server accepts (a value
/// may have emptied it), a namespace that is a DNS label, and label values Kubernetes allows.
/// The message names the object and what is wrong.
pub fn check_rendered(obj: &Value) -> Result<(), String> {
    let what = || {
        let kind = obj["kind"].as_str().unwrap_or("object");
        match obj["metadata"]["name"].as_str().or(obj["metadata"]["generateName"].as_str()) {
            Some(n) if !n.is_empty() => format!("{kind} {n:?}"),
            _ => kind.to_string(),
        }
    };
    check_object("", 0, obj).map_err(|e| match e {
        ManifestError::NotAnObject { why, .. } => format!("{}: {why}", what()),
        other => other.to_string(),
    })?;
    let name = obj["metadata"]["name"].as_str().or(obj["metadata"]["generateName"].as_str()).unwrap_or_default();
    // Kubernetes' rule for any object name (path segment): kinds differ beyond it.
    if name.len() > 253 || name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Err(format!("{}: {name:?} is not a valid object name", what()));
    }
    if let Some(ns) = obj["metadata"]["namespace"].as_str()
        && !ns.is_empty()
        && !crate::app::is_dns_label(ns)
    {
        return Err(format!("{}: namespace {ns:?} is not a DNS label", what()));
    }
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or("\u{0}");
            if !crate::selector::valid_label_key(k) || !crate::selector::valid_label_value(v) {
                return Err(format!("{}: label {k}={v:?} is not a valid label", what()));
            }
        }
    }
    Ok(())
}

/// Parses several files into one object list, refusing an object defined twice.
pub fn parse_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Vec<Value>, ManifestError> {
    parse_files_with_warnings(files).map(|p| p.objects)
}

/// Like [`parse_files`], with the files' warnings.
pub fn parse_files_with_warnings<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Parsed, ManifestError> {
    let mut seen: std::collections::BTreeMap<ObjectRef, String> = Default::default();
    let mut out = Parsed::default();
    for (file, bytes) in files {
        let parsed = parse_file_with_warnings(file, bytes)?;
        out.warnings.extend(parsed.warnings);
        for obj in parsed.objects {
            let id = ObjectRef::of_manifest(&obj).expect("checked by parse_file");
            if let Some(first) = seen.insert(id.clone(), file.to_string()) {
                return Err(ManifestError::Duplicate { object: id.to_string(), first, second: file.into() });
            }
            out.objects.push(obj);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = r#"
# a comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  script: |
    #!/bin/sh
    echo "hello"
  anchor: &x value
  alias: *x
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
"#;

    #[test]
    fn multi_document_yaml_with_block_scalars_and_anchors() {
        let objs = parse_file("k8s/app.yaml", MULTI.as_bytes()).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["data"]["script"], "#!/bin/sh\necho \"hello\"\n");
        assert_eq!(objs[0]["data"]["alias"], "value");
        assert_eq!(objs[1]["spec"]["replicas"], 2);
    }

    #[test]
    fn lists_and_json() {
        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]}"#;
        assert_eq!(parse_file("a.json", list.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let cases: &[(&str, &str, &str)] = &[
            ("bad.yaml", "apiVersion: v1\nkind: [unclosed\n", "bad.yaml: invalid YAML"),
            (
                "x.yaml",
                "apiVersion: v1\nkind: ConfigMap\n",
                "x.yaml: document 0 is not a Kubernetes object: missing metadata.name",
            ),
            ("y.yaml", "- 1\n- 2\n", "y.yaml: document 0 is not a Kubernetes object"),
            ("z.json", "{", "z.json: invalid JSON"),
        ];
        for (file, text, want) in cases {
            let err = parse_file(file, text.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
        let big = vec![b' '; MAX_FILE_BYTES + 1];
        assert!(matches!(parse_file("big.yaml", &big), Err(ManifestError::TooLarge { .. })));
    }

    #[test]
    fn a_key_written_twice_is_loaded_as_kubernetes_loads_it_with_a_warning() {
        let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n  name: second\ndata: {a: '1'}\n";
        let p = parse_file_with_warnings("k8s/cm.yaml", doc.as_bytes()).unwrap();
        assert_eq!(p.objects[0]["metadata"]["name"], "second");
        assert_eq!(p.warnings.len(), 1);
        let w = &p.warnings[0];
        assert!(
            w.contains("k8s/cm.yaml")
                && w.contains("duplicate mapping key")
                && w.contains("name")
                && w.contains("line 5"),
            "{w}"
        );
        assert!(!w.contains("DuplicateKeyPolicy"), "{w}");
    }

    #[test]
    fn rendered_objects_are_checked() {
        let ok = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-eu", "namespace": "prod",
            "labels": {"tier": ""}}});
        assert_eq!(check_rendered(&ok), Ok(()));
        for (obj, want) in [
            (
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}}),
                "missing metadata.name",
            ),
            (
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a/b"}}),
                "not a valid object name",
            ),
            (
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "Prod EU"}}),
                "namespace",
            ),
            (
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "a b"}}}),
                "label x",
            ),
            (
                serde_json::json!({"apiVersion": "", "kind": "ConfigMap", "metadata": {"name": "a"}}),
                "missing apiVersion",
            ),
        ] {
            let e = check_rendered(&obj).unwrap_err();
            assert!(e.contains(want) && e.starts_with("ConfigMap"), "{e}");
        }
    }

    #[test]
    fn hooks_may_have_generated_names() {
        let hook = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: upgrade-sql-schema-\n  annotations: {argocd.argoproj.io/hook: PreSync}\nspec: {}\n";
        let objs = parse_file("hooks.yaml", hook.as_bytes()).unwrap();
        assert_eq!(ObjectRef::of_manifest(&objs[0]).unwrap().name, "upgrade-sql-schema-");
        let plain = "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: cfg-}\n";
        let e = parse_file("cm.yaml", plain.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("generateName") && e.contains("hooks"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let a = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
        let err = parse_files([("one.yaml", a.as_bytes()), ("two.yaml", a.as_bytes())]).unwrap_err();
        assert_eq!(err.to_string(), "ConfigMap/a is defined twice: in one.yaml and in two.yaml");
    }

    #[test]
    fn hostile_documents_are_refused_quickly() {
        // "Billion laughs": each level doubles the previous ten times.
        let mut bomb = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        );
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = parse_file("bomb.yaml", bomb.as_bytes()).unwrap_err();
        assert!(matches!(err, ManifestError::Yaml { .. }), "{err}");
        assert!(err.to_string().contains("aliases expand to more than 100000 nodes"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused without expanding it");

        let deep = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: d}}\ndata: {}{}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let err = parse_file("deep.yaml", deep.as_bytes()).unwrap_err();
        // A sentence with the file and line, not the parser's debug form.
        assert!(
            err.to_string().starts_with("deep.yaml: invalid YAML: nesting deeper than 64 levels at line 4"),
            "{err}"
        );
        assert!(!err.to_string().contains('{'), "{err}");
        let deep_json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(parse_file("deep.json", deep_json.as_bytes()), Err(ManifestError::Json { .. })));
        let big = vec![b'a'; MAX_FILE_BYTES + 1];
        assert!(matches!(parse_file("big.yaml", &big), Err(ManifestError::TooLarge { .. })));
    }
}
