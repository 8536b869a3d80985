//! Non-apply patches: JSON patch (RFC 6902), merge patch (RFC 7386) and strategic merge
//! patch (the subset of it that clients send: merge by key, `$patch` directives, nulls delete).

use bosun_core::schema::Shape;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::fieldset::key_string;
use crate::resources::{ListType, ResourceType, list_type};

/// The patch flavours a PATCH request may carry (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
                Some(Self::Apply)
            }
            _ => None,
        }
    }
}

/// Applies a JSON, merge or strategic merge patch to `live`.
pub fn apply_patch(kind: PatchKind, rt: &ResourceType, live: &Value, patch: &Value) -> ApiResult<Value> {
    let mut out = live.clone();
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: invalid JSON patch: {e}"
                ))
            })?;
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
            }
            if !rt.builtin {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json (strategic merge patch is not supported for custom resources)",
                ));
            }
            strategic(rt.shape(), &mut out, patch);
        }
        PatchKind::Apply => unreachable!("server-side apply is handled by the store"),
    }
    Ok(out)
}

/// Strategic merge of `patch` into `live`, whose shape (from the schema) is `shape`.
fn strategic(shape: Option<Shape>, live: &mut Value, patch: &Value) {
    match (live, patch) {
        (Value::Object(l), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut p = p.clone();
                p.remove("$patch");
                *l = p;
                return;
            }
            for (k, pv) in p {
                if k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    l.remove(k);
                    continue;
                }
                match l.get_mut(k) {
                    Some(lv) => strategic(shape.and_then(|s| s.child(k)), lv, pv),
                    None => {
                        l.insert(k.clone(), strip_directives(pv));
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(p)) => match list_type(shape, p) {
            ListType::Map(keys) => {
                if p.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
                    *l = p.iter().filter(|i| i.get("$patch").is_none()).map(strip_directives).collect();
                    return;
                }
                for item in p {
                    let key = key_string(item, keys);
                    let pos = l.iter().position(|i| key_string(i, keys) == key);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            l.remove(i);
                        }
                        (Some(i), false) => strategic(shape.and_then(Shape::item), &mut l[i], item),
                        (None, false) => l.push(strip_directives(item)),
                        (None, true) => {}
                    }
                }
            }
            ListType::Set => {
                for item in p {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *l = p.clone(),
        },
        (live, patch) => *live = strip_directives(patch),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::BUILTIN;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let rt = BUILTIN.iter().find(|r| r.kind == "Deployment").unwrap();
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}}}});
        let out = apply_patch(PatchKind::Strategic, rt, &live, &patch).unwrap();
        let cs = out["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0]["image"], "x:1");
        assert_eq!(cs[1]["image"], "y:2");
        let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}});
        let out = apply_patch(PatchKind::Strategic, rt, &out, &del).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let rt = BUILTIN.iter().find(|r| r.kind == "ConfigMap").unwrap();
        let live = json!({"data": {"a": "1", "b": "2"}});
        let out = apply_patch(PatchKind::Merge, rt, &live, &json!({"data": {"a": null, "c": "3"}})).unwrap();
        assert_eq!(out["data"], json!({"b": "2", "c": "3"}));
        let out = apply_patch(PatchKind::Json, rt, &live, &json!([{"op": "replace", "path": "/data/a", "value": "9"}]))
            .unwrap();
        assert_eq!(out["data"]["a"], "9");
        assert!(apply_patch(PatchKind::Json, rt, &live, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
