//! jq path expressions (Argo CD's `jqPathExpressions` in `ignoreDifferences`), evaluated with
//! jaq: the expression selects values, and their paths are what gets ignored.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

/// The paths (keys and indices) of the values `expr` selects in `obj`.
pub fn paths(obj: &Value, expr: &str) -> Result<Vec<Vec<Value>>, String> {
    let code = format!("[path({expr})]");
    let program = File { code: code.as_str(), path: () };
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let arena = Arena::default();
    let modules =
        Loader::new(defs).load(&arena, program).map_err(|e| format!("cannot parse jq expression {expr:?}: {e:?}"))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|e| format!("cannot compile jq expression {expr:?}: {e:?}"))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let input: Val = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for v in filter.id.run((ctx, input)).map(unwrap_valr) {
        // A path into a part of the object that is absent is simply nothing to ignore.
        let Ok(v) = v else { continue };
        let parsed: Value = serde_json::from_str(&v.to_string()).map_err(|e| e.to_string())?;
        for p in parsed.as_array().into_iter().flatten() {
            if let Some(steps) = p.as_array() {
                out.push(steps.clone());
            }
        }
    }
    Ok(out)
}

/// Checks that `expr` is a jq expression.
pub fn check(expr: &str) -> Result<(), String> {
    paths(&Value::Null, expr).map(|_| ())
}

/// Removes the value at a jq path (string keys, integer indices), if present.
pub fn remove_path(obj: &mut Value, path: &[Value]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = obj;
    for step in parents {
        let next = match step {
            Value::String(k) => cur.get_mut(k.as_str()),
            Value::Number(n) => n.as_u64().and_then(|i| cur.get_mut(i as usize)),
            _ => None,
        };
        let Some(n) = next else { return };
        cur = n;
    }
    match (cur, last) {
        (Value::Object(m), Value::String(k)) => {
            m.remove(k);
        }
        (Value::Array(a), Value::Number(n)) => {
            if let Some(i) = n.as_u64().map(|i| i as usize).filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Removes every value `expr` selects; later list items first, so indices stay valid.
pub fn remove_selected(obj: &mut Value, expr: &str) {
    let Ok(mut found) = paths(obj, expr) else { return };
    found.sort_by(|a, b| b.iter().map(|v| v.to_string()).cmp(a.iter().map(|v| v.to_string())));
    for p in found {
        remove_path(obj, &p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_and_removes() {
        let mut v =
            json!({"spec": {"containers": [{"name": "app", "image": "x"}, {"name": "injected", "image": "y"}]}});
        let p = paths(&v, ".spec.containers[] | select(.name == \"injected\") | .image").unwrap();
        assert_eq!(p, vec![vec![json!("spec"), json!("containers"), json!(1), json!("image")]]);
        remove_selected(&mut v, ".spec.containers[] | select(.name == \"injected\")");
        assert_eq!(v, json!({"spec": {"containers": [{"name": "app", "image": "x"}]}}));
        assert!(check(".spec[").is_err());
        assert!(check(".metadata.labels").is_ok());
    }
}
