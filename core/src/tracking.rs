//! Tracking identity: how the agent marks what it applies, so that prune only ever touches
//! objects Bosun created for that Application.
//!
//! Every applied object carries the label `bosun.dev/app: <app>` (for listing and watching)
//! and the annotation `bosun.dev/tracking-id: <app>:<group>/<kind>:<namespace>/<name>` (the
//! proof of ownership). Application names are object names (DNS subdomains, up to 253
//! characters); a label value is at most 63, so a longer name is shortened to a prefix and a
//! hash ([`label_value`]) — the annotation always carries the full name. Annotations on an object's own metadata are not copied to the Pods or
//! ReplicaSets a controller creates from it, so those never look tracked.

use serde_json::{Value, json};

use crate::object::ObjectRef;

pub const APP_LABEL: &str = "bosun.dev/app";
pub const TRACKING_ANNOTATION: &str = "bosun.dev/tracking-id";

/// The value of the `bosun.dev/app` label for Application `app`: the name itself when it is a
/// label value, else its first characters and a hash of the whole name (63 characters).
pub fn label_value(app: &str) -> String {
    if crate::selector::valid_label_value(app) {
        return app.to_string();
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(app.as_bytes()));
    let mut prefix: String = app.chars().take(52).collect();
    while prefix.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        prefix.pop();
    }
    format!("{prefix}-{}", &hash[..10])
}

/// The tracking id of object `r` in Application `app`.
pub fn tracking_id(app: &str, r: &ObjectRef) -> String {
    format!("{app}:{}/{}:{}/{}", r.group, r.kind, r.namespace, r.name)
}

/// Adds the tracking label and annotation to a desired object (in place). A hook created
/// under a generated name is tracked under its `generateName` prefix.
pub fn mark(obj: &mut Value, app: &str) {
    let Some(r) = ObjectRef::of_manifest(obj) else { return };
    let id = tracking_id(app, &r);
    let meta = &mut obj["metadata"];
    for (field, key, value) in [("labels", APP_LABEL, label_value(app)), ("annotations", TRACKING_ANNOTATION, id)] {
        if !meta[field].is_object() {
            meta[field] = json!({});
        }
        meta[field][key] = json!(value);
    }
}

/// Whether a live object carries Bosun's tracking identity for `app` (and for its own
/// identity: a copied annotation on another object does not count).
pub fn is_tracked_by(live: &Value, app: &str) -> bool {
    let Some(r) = ObjectRef::of(live) else { return false };
    let annotation = live["metadata"]["annotations"][TRACKING_ANNOTATION].as_str();
    let matches_cluster_scoped = || {
        // A cluster-scoped object was applied with the namespace the manifest had (often none).
        annotation.is_some_and(|a| {
            a.starts_with(&format!("{app}:{}/{}:", r.group, r.kind)) && a.ends_with(&format!("/{}", r.name))
        })
    };
    annotation == Some(tracking_id(app, &r).as_str()) || (r.namespace.is_empty() && matches_cluster_scoped())
}

/// Whether prune may delete this live object for `app`: it carries our tracking identity for
/// that Application and does not opt out with `Prune=false`.
pub fn prunable(live: &Value, app: &str) -> bool {
    is_tracked_by(live, app) && crate::options::options(live).is_ok_and(|o| o.prune)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_application_names_get_a_label_value_that_fits() {
        assert_eq!(label_value("example.guestbook"), "example.guestbook");
        let long = format!("{}.example.com", "a".repeat(70));
        let v = label_value(&long);
        assert!(v.len() <= 63 && crate::selector::valid_label_value(&v), "{v}");
        assert_ne!(v, label_value(&format!("{}.example.org", "a".repeat(70))), "different names, different values");
        let mut d = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});
        mark(&mut d, &long);
        assert_eq!(d["metadata"]["labels"][APP_LABEL], v.as_str());
        assert!(is_tracked_by(&d, &long), "the annotation carries the full name");
    }

    #[test]
    fn marks_and_recognises() {
        let mut d =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}});
        mark(&mut d, "shop");
        assert_eq!(d["metadata"]["labels"][APP_LABEL], "shop");
        assert_eq!(d["metadata"]["annotations"][TRACKING_ANNOTATION], "shop:apps/Deployment:ns/web");
        assert!(is_tracked_by(&d, "shop"));
        assert!(!is_tracked_by(&d, "other"));
        // A Pod carrying the label (copied from a template) but not the annotation is not ours.
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "ns", "labels": {APP_LABEL: "shop"}}});
        assert!(!is_tracked_by(&pod, "shop"));
        // An annotation naming another object does not count.
        let mut other = d.clone();
        other["metadata"]["name"] = json!("web2");
        assert!(!is_tracked_by(&other, "shop"));
    }
}
