//! Who may call the admin API and what they may do: credentials (bearer tokens or client
//! certificates issued by the control plane) carrying a role, the access each call needs,
//! and the audit line every mutating call leaves.
//!
//! Secrets are never kept: a token is stored as its SHA-256 digest, a certificate as its
//! serial number. Neither appears in logs or in any API answer after the one that creates it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including credentials and clusters.
    Admin,
    /// Read Applications, clusters, history and diffs; change nothing.
    #[default]
    Readonly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Readonly => "readonly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "readonly" | "read-only" | "viewer" => Some(Role::Readonly),
            _ => None,
        }
    }

    pub fn allows(self, access: Access) -> bool {
        matches!((self, access), (Role::Admin, _) | (Role::Readonly, Access::Read))
    }
}

/// What an admin call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A certificate the control plane issued, by serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    pub serial: String,
    pub expires_at: i64,
}

/// Keeps the certificates that have not expired.
pub fn prune_expired(certs: &mut Vec<IssuedCert>, now: i64) {
    certs.retain(|c| c.expires_at > now);
}

/// How a credential authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Token,
    Certificate,
}

/// An admin credential as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub name: String,
    pub role: Role,
    pub kind: CredentialKind,
    /// SHA-256 of the bearer token (tokens only).
    #[serde(default)]
    pub token_sha256: String,
    /// Certificates issued to it (certificates only).
    #[serde(default)]
    pub certificates: Vec<IssuedCert>,
    pub created_at: i64,
    /// Unix seconds; 0 = does not expire (tokens).
    #[serde(default)]
    pub expires_at: i64,
}

/// The authenticated caller of an admin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: CredentialKind,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let via = match self.via {
            CredentialKind::Token => "token",
            CredentialKind::Certificate => "certificate",
        };
        write!(f, "{} ({}, {via})", self.name, self.role.as_str())
    }
}

/// A caller already authenticated by another edge of this process (a dashboard session),
/// attached to an admin API request as an extension. Only code in this process can attach
/// one: requests from the network carry none.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests in time independent of where they differ.
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `name` may be a credential name: a DNS label, as cluster names are.
pub fn valid_name(name: &str) -> bool {
    bosun_core::app::is_dns_label(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow() {
        let table = [
            (Role::Admin, Access::Read, true),
            (Role::Admin, Access::Write, true),
            (Role::Readonly, Access::Read, true),
            (Role::Readonly, Access::Write, false),
        ];
        for (role, access, allowed) in table {
            assert_eq!(role.allows(access), allowed, "{role:?} {access:?}");
        }
        assert_eq!(Role::parse("readonly"), Some(Role::Readonly));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn digests_compare() {
        assert!(digest_eq(&hash_token("a"), &hash_token("a")));
        assert!(!digest_eq(&hash_token("a"), &hash_token("b")));
        assert!(!digest_eq("ab", "abc"));
    }

    #[test]
    fn expired_certificates_are_dropped() {
        let mut certs =
            vec![IssuedCert { serial: "a".into(), expires_at: 10 }, IssuedCert { serial: "b".into(), expires_at: 30 }];
        prune_expired(&mut certs, 20);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].serial, "b");
    }
}
