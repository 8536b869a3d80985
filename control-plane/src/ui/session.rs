//! Dashboard sessions: a signed cookie naming the credential that signed in, and the CSRF
//! token that every state-changing form carries.
//!
//! The cookie holds no secret: `v1.<payload>.<mac>` with the payload (credential name, role,
//! the credential's creation time, expiry, a random session id) in base64url and an HMAC under
//! a key derived from the control plane's secret key, so any replica sharing that key accepts
//! it and nobody without it can forge one. A session ends at its expiry, at sign-out (the
//! browser drops the cookie), and whenever its credential is deleted or re-created (its
//! creation time no longer matches) — checked on every request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::auth::{Credential, CredentialKind, Principal, Role};
use crate::secrets::SecretBox;

/// The cookie's name. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-bosun-session";
const SESSION_PURPOSE: &str = "ui session v1";
const CSRF_PURPOSE: &str = "ui csrf v1";

/// What a session cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The credential that signed in.
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "r")]
    pub role: Role,
    /// The credential's `created_at` at sign-in: a re-created credential ends old sessions.
    #[serde(rename = "c")]
    pub credential_created: i64,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// Random, base64url; the CSRF token is derived from it.
    #[serde(rename = "s")]
    pub id: String,
}

/// Why a cookie does not open a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session cookie is malformed")]
    Malformed,
    #[error("the session cookie's signature does not verify (signed with another key, or altered)")]
    BadSignature,
    #[error("the session expired; sign in again")]
    Expired,
    #[error("the credential {0:?} was deleted or replaced since sign-in; sign in again")]
    CredentialGone(String),
}

impl Session {
    /// A new session for `credential`, valid for `ttl_secs` from `now`.
    pub fn new(credential: &Credential, now: i64, ttl_secs: i64, random: &[u8]) -> Self {
        Self {
            name: credential.name.clone(),
            role: credential.role,
            credential_created: credential.created_at,
            expires_at: now + ttl_secs,
            id: B64.encode(random),
        }
    }

    /// The cookie value.
    pub fn encode(&self, keys: &SecretBox) -> String {
        let payload = B64.encode(serde_json::to_vec(self).unwrap_or_default());
        let tag = B64.encode(keys.mac(SESSION_PURPOSE, payload.as_bytes()));
        format!("v1.{payload}.{tag}")
    }

    /// The session a cookie value carries, if its signature verifies and it has not expired.
    pub fn decode(value: &str, keys: &SecretBox, now: i64) -> Result<Self, SessionError> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(payload), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        let tag = B64.decode(tag).map_err(|_| SessionError::Malformed)?;
        if !keys.verify_mac(SESSION_PURPOSE, payload.as_bytes(), &tag) {
            return Err(SessionError::BadSignature);
        }
        let raw = B64.decode(payload).map_err(|_| SessionError::Malformed)?;
        let s: Session = serde_json::from_slice(&raw).map_err(|_| SessionError::Malformed)?;
        if s.expires_at <= now {
            return Err(SessionError::Expired);
        }
        Ok(s)
    }

    /// The caller this session stands for, if its credential still exists as it was at
    /// sign-in (same creation time, not expired). The role is the credential's current one.
    pub fn principal(&self, current: Option<&Credential>, now: i64) -> Result<Principal, SessionError> {
        match current {
            Some(c)
                if c.created_at == self.credential_created
                    && c.kind == CredentialKind::Token
                    && (c.expires_at == 0 || c.expires_at > now) =>
            {
                Ok(Principal { name: c.name.clone(), role: c.role, via: CredentialKind::Token })
            }
            _ => Err(SessionError::CredentialGone(self.name.clone())),
        }
    }

    /// The CSRF token of this session: forms carry it, state-changing requests must match it.
    pub fn csrf(&self, keys: &SecretBox) -> String {
        B64.encode(keys.mac(CSRF_PURPOSE, self.id.as_bytes()))
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, keys: &SecretBox, token: &str) -> bool {
        B64.decode(token.trim()).is_ok_and(|t| keys.verify_mac(CSRF_PURPOSE, self.id.as_bytes(), &t))
    }
}

/// A `Set-Cookie` value for a session: HttpOnly (no script reads it), Secure (TLS only),
/// SameSite=Strict (never sent by another site's request), expiring with the session.
pub fn set_cookie(value: &str, max_age_secs: i64) -> String {
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    set_cookie("", 0)
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(role: Role, created_at: i64) -> Credential {
        Credential {
            name: "alice".into(),
            role,
            kind: CredentialKind::Token,
            token_sha256: "x".into(),
            certificates: Vec::new(),
            created_at,
            expires_at: 0,
        }
    }

    #[test]
    fn a_cookie_round_trips_and_resists_tampering() {
        let keys = SecretBox::from_key(&[1u8; 32]).unwrap();
        let s = Session::new(&cred(Role::Readonly, 100), 1_000, 3_600, &[9u8; 16]);
        let v = s.encode(&keys);
        assert_eq!(Session::decode(&v, &keys, 1_001), Ok(s.clone()));

        // Turning readonly into admin in the payload breaks the signature.
        let (_, rest) = v.split_once('.').unwrap();
        let (payload, tag) = rest.split_once('.').unwrap();
        let mut raw: serde_json::Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        raw["r"] = "admin".into();
        let forged = format!("v1.{}.{tag}", B64.encode(serde_json::to_vec(&raw).unwrap()));
        assert_eq!(Session::decode(&forged, &keys, 1_001), Err(SessionError::BadSignature));

        let other = SecretBox::from_key(&[2u8; 32]).unwrap();
        assert_eq!(Session::decode(&v, &other, 1_001), Err(SessionError::BadSignature));
        assert_eq!(Session::decode(&v, &keys, 4_600), Err(SessionError::Expired));
        for bad in ["", "v1", "v1.a", "v2.a.b", "v1.a.b.c", "v1.!!.??"] {
            assert!(Session::decode(bad, &keys, 1_001).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_session_ends_with_its_credential() {
        let s = Session::new(&cred(Role::Admin, 100), 1_000, 3_600, &[9u8; 16]);
        assert_eq!(s.principal(Some(&cred(Role::Admin, 100)), 1_001).unwrap().role, Role::Admin);
        // The role is the credential's current one.
        assert_eq!(s.principal(Some(&cred(Role::Readonly, 100)), 1_001).unwrap().role, Role::Readonly);
        assert!(s.principal(None, 1_001).is_err(), "deleted");
        assert!(s.principal(Some(&cred(Role::Admin, 200)), 1_001).is_err(), "re-created");
        let mut expired = cred(Role::Admin, 100);
        expired.expires_at = 1_000;
        assert!(s.principal(Some(&expired), 1_001).is_err(), "credential expired");
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let keys = SecretBox::from_key(&[1u8; 32]).unwrap();
        let a = Session::new(&cred(Role::Admin, 100), 1_000, 3_600, &[1u8; 16]);
        let b = Session::new(&cred(Role::Admin, 100), 1_000, 3_600, &[2u8; 16]);
        assert!(a.csrf_ok(&keys, &a.csrf(&keys)));
        assert!(!a.csrf_ok(&keys, &b.csrf(&keys)));
        assert!(!a.csrf_ok(&keys, ""));
        assert!(!a.csrf_ok(&keys, "not base64!"));
    }

    #[test]
    fn cookies_are_strict() {
        let c = set_cookie("v", 60);
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(c.contains(attr), "{c}");
        }
        assert_eq!(cookie_value("a=b; __Host-bosun-session=v1.x.y; c=d"), Some("v1.x.y"));
        assert_eq!(cookie_value("a=b"), None);
        assert_eq!(cookie_value("__Host-bosun-sessionx=1"), None);
    }
}
