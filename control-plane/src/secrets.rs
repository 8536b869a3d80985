//! Secrets at rest: Git repository credentials sealed with ChaCha20-Poly1305 under a key that
//! lives outside the store (a file, typically mounted from a Kubernetes Secret or a secret
//! manager). A copy of the store alone reveals no credential.
//!
//! Sealed values are `v1:` + base64(nonce ‖ ciphertext ‖ tag); the record's key (its URL)
//! is bound as associated data, so a sealed password cannot be moved to another repository.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// A secret string that never prints its value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Seals and opens secrets with one key, and authenticates values (dashboard sessions) with
/// a MAC key derived from it, so every replica sharing the secret key accepts them.
pub struct SecretBox {
    key: LessSafeKey,
    mac: hmac::Key,
    rng: SystemRandom,
}

const PREFIX: &str = "v1:";

impl SecretBox {
    /// Reads the 32-byte key (hex or base64) from `path`, creating a random one there when the
    /// file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let rng = SystemRandom::new();
        let bytes = if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Secrets(format!("reading the secret key {}: {e}", path.display())))?;
            let text = text.trim();
            let decoded = hex::decode(text).ok().or_else(|| B64.decode(text).ok());
            match decoded {
                Some(b) if b.len() == 32 => b,
                _ => {
                    return Err(Error::Secrets(format!(
                        "the secret key {} must hold 32 bytes as hex or base64 (e.g. `openssl rand -hex 32`)",
                        path.display()
                    )));
                }
            }
        } else {
            let mut b = vec![0u8; 32];
            rng.fill(&mut b).map_err(|_| Error::Secrets("no system randomness for a new secret key".into()))?;
            crate::pki::write_secret(path, &hex::encode(&b))
                .map_err(|e| Error::Secrets(format!("writing the secret key {}: {e}", path.display())))?;
            b
        };
        Self::from_key(&bytes)
    }

    pub fn from_key(bytes: &[u8]) -> Result<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| Error::Secrets("the secret key must be 32 bytes".into()))?;
        // A separate key for MACs: HMAC of a fixed label under the secret key.
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, bytes), b"bosun mac key v1");
        Ok(Self {
            key: LessSafeKey::new(key),
            mac: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            rng: SystemRandom::new(),
        })
    }

    /// A MAC of `data` for `purpose` (domain-separated, so a MAC for one purpose never
    /// verifies for another).
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `tag` is the MAC of `data` for `purpose` (constant time).
    pub fn verify_mac(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        tag.len() == 32 && bool::from(self.mac(purpose, data).as_slice().ct_eq(tag))
    }

    /// `n` random bytes.
    pub fn random(&self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b).map_err(|_| Error::Secrets("no system randomness".into()))?;
        Ok(b)
    }

    /// Seals `plain`, bound to `context` (the record it belongs to).
    pub fn seal(&self, context: &str, plain: &Secret) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::Secrets("no system randomness for a nonce".into()))?;
        let mut buf = plain.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| Error::Secrets("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Secret> {
        let bad = || {
            Error::Secrets(format!(
                "the stored credential for {context} cannot be decrypted with this secret key (was the key replaced?)"
            ))
        };
        let raw = B64.decode(sealed.strip_prefix(PREFIX).ok_or_else(bad)?).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map(Secret).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let b = SecretBox::load_or_create(&path).unwrap();
        let sealed = b.seal("https://git.example/a", &Secret::new("hunter2")).unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(b.open("https://git.example/a", &sealed).unwrap().expose(), "hunter2");
        assert!(b.open("https://git.example/b", &sealed).is_err(), "bound to its record");
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open("https://git.example/a", &sealed).unwrap().expose(), "hunter2", "key reloads");
        let other = SecretBox::from_key(&[7u8; 32]).unwrap();
        let err = other.open("https://git.example/a", &sealed).unwrap_err().to_string();
        assert!(err.contains("cannot be decrypted") && !err.contains("hunter2"), "{err}");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        let tag = b.mac("session", b"alice");
        assert!(b.verify_mac("session", b"alice", &tag));
        assert!(!b.verify_mac("csrf", b"alice", &tag), "domain-separated");
        assert!(!b.verify_mac("session", b"alicf", &tag));
        assert!(!other.verify_mac("session", b"alice", &tag), "another key");
        std::fs::write(&path, "short").unwrap();
        assert!(SecretBox::load_or_create(&path).is_err());
    }
}
