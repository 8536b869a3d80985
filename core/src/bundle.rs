//! Content-addressed bundles: the rendered objects of one (repository, commit, path),
//! rendered once and served by digest to every cluster that needs them.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::object::ObjectRef;

/// Largest bundle (wire form) the control plane serves and an agent accepts. gRPC message
/// limits on both sides are set from it.
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

/// Rendered objects, sorted by identity, with their digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub objects: Vec<Value>,
    pub digest: String,
}

impl Bundle {
    /// Builds a bundle: sorts objects by identity and hashes their canonical JSON.
    pub fn new(mut objects: Vec<Value>) -> Self {
        objects.sort_by_cached_key(ObjectRef::of_manifest);
        let bytes = serde_json::to_vec(&objects).expect("JSON values serialize");
        let digest = hex::encode(Sha256::digest(&bytes));
        Self { objects, digest }
    }

    /// The wire form: a JSON array.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.objects).expect("JSON values serialize")
    }

    /// Reads the wire form and checks it matches `digest`.
    pub fn from_bytes(digest: &str, bytes: &[u8]) -> Result<Self, BundleError> {
        let objects: Vec<Value> = serde_json::from_slice(bytes).map_err(|e| BundleError::Decode(e.to_string()))?;
        let b = Self::new(objects);
        if b.digest != digest {
            return Err(BundleError::DigestMismatch { expected: digest.into(), actual: b.digest });
        }
        Ok(b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not a JSON array of objects: {0}")]
    Decode(String),
    #[error("bundle digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_is_independent_of_input_order() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}});
        let x = Bundle::new(vec![a.clone(), b.clone()]);
        let y = Bundle::new(vec![b, a]);
        assert_eq!(x.digest, y.digest);
        assert_eq!(Bundle::from_bytes(&x.digest, &x.to_bytes()).unwrap(), x);
        assert!(Bundle::from_bytes("00", &x.to_bytes()).is_err());
    }
}
