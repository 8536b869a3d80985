//! Admin credentials (tokens and client certificates, with roles) and repository credentials
//! (sealed before they reach the store).

use std::time::Duration;

use bosun_store::{Expect, Txn};

use super::records::{RepoRecord, credential_key, encode, repo_key};
use super::{ControlPlane, MAX_CREDENTIAL_TTL, now};
use crate::auth::{self, Access, Credential, CredentialKind, IssuedCert, Principal, Role, hash_token};
use crate::error::{Error, Result};
use crate::git::redact_url;
use crate::pki::{Issued, PeerCert, Subject};
use crate::secrets::Secret;

/// The secret half of a new credential, returned once.
pub enum CredentialSecret {
    Token(String),
    Certificate(Issued),
}

pub(super) fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Checks known_hosts lines: `hosts keytype base64-key [comment]`, optionally preceded by a
/// marker (`@cert-authority`, `@revoked`).
fn check_known_hosts(text: &str) -> Result<()> {
    let mut any = false;
    for (i, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fields = if fields.first().is_some_and(|f| f.starts_with('@')) { &fields[1..] } else { &fields[..] };
        let ok = fields.len() >= 3
            && (fields[1].starts_with("ssh-") || fields[1].starts_with("ecdsa-") || fields[1].starts_with("sk-"))
            && fields[2].bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !ok {
            return Err(Error::InvalidRequest(format!(
                "known_hosts line {i} is not `HOST KEYTYPE BASE64KEY` (as `ssh-keyscan HOST` prints it)"
            )));
        }
        any = true;
    }
    if !any {
        return Err(Error::InvalidRequest(
            "an ssh repository needs the host keys to accept (--known-hosts FILE; `ssh-keyscan HOST` prints them — check their fingerprints)".into(),
        ));
    }
    Ok(())
}

impl ControlPlane {
    /// The caller behind a bearer token (digests compared in constant time).
    pub fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let digest = hash_token(token);
        let st = self.state.read();
        let found = st
            .credentials
            .values()
            .map(|c| &c.value)
            .find(|c| c.kind == CredentialKind::Token && auth::digest_eq(&c.token_sha256, &digest));
        match found {
            Some(c) if c.expires_at == 0 || c.expires_at > now() => {
                Ok(Principal { name: c.name.clone(), role: c.role, via: CredentialKind::Token })
            }
            Some(c) => Err(Error::Unauthenticated(format!(
                "the token of credential {:?} has expired; create a new one with `bosun credential create`",
                c.name
            ))),
            None => Err(Error::Unauthenticated("invalid admin token".into())),
        }
    }

    /// The caller behind a verified client certificate on the admin API.
    pub fn authenticate_cert(&self, peer: &PeerCert) -> Result<Principal> {
        let Subject::User(name) = &peer.subject else {
            return Err(Error::PermissionDenied(
                "an agent's certificate cannot call the admin API; use an admin credential".into(),
            ));
        };
        if peer.not_after <= now() {
            return Err(Error::Unauthenticated(format!("the certificate of {name:?} has expired")));
        }
        let st = self.state.read();
        match st.credentials.get(name).map(|c| &c.value) {
            Some(c) if c.certificates.iter().any(|x| x.serial == peer.serial) => {
                Ok(Principal { name: c.name.clone(), role: c.role, via: CredentialKind::Certificate })
            }
            _ => Err(Error::Unauthenticated(format!("the certificate of {name:?} has been revoked or replaced"))),
        }
    }

    /// Authorises `who` for `access`.
    pub fn authorize_admin(&self, who: &Principal, access: Access) -> Result<()> {
        if who.role.allows(access) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("{who} may only read; this call changes state and needs role admin")))
        }
    }

    /// Creates a credential: a bearer token (returned once) or, given a CSR, a client
    /// certificate. Re-creating an existing name replaces it (and revokes the old secret).
    pub async fn create_credential(
        &self,
        name: &str,
        role: Role,
        csr_pem: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(Credential, CredentialSecret)> {
        if !auth::valid_name(name) {
            return Err(Error::InvalidRequest(format!(
                "credential name {name:?} must be a DNS label: lowercase letters, digits and '-'"
            )));
        }
        if let Some(t) = ttl
            && t > MAX_CREDENTIAL_TTL
        {
            return Err(Error::InvalidRequest(format!(
                "ttl {}s is longer than the {} days a credential may live; give a shorter ttl",
                t.as_secs(),
                MAX_CREDENTIAL_TTL.as_secs() / 86400
            )));
        }
        let created_at = now();
        let (cred, secret) = match csr_pem {
            None => {
                let token = new_token("bat_");
                let expires_at = ttl.map(|t| created_at + t.as_secs() as i64).unwrap_or(0);
                let cred = Credential {
                    name: name.into(),
                    role,
                    kind: CredentialKind::Token,
                    token_sha256: hash_token(&token),
                    certificates: Vec::new(),
                    created_at,
                    expires_at,
                };
                (cred, CredentialSecret::Token(token))
            }
            Some(csr) => {
                let validity = ttl.unwrap_or(self.settings.admin_cert_validity);
                let issued = self.pki.sign_csr(csr, &Subject::User(name.into()), validity)?;
                self.metrics.certificate("admin");
                let cred = Credential {
                    name: name.into(),
                    role,
                    kind: CredentialKind::Certificate,
                    token_sha256: String::new(),
                    certificates: vec![IssuedCert { serial: issued.serial.clone(), expires_at: issued.expires_at }],
                    created_at,
                    expires_at: issued.expires_at,
                };
                (cred, CredentialSecret::Certificate(issued))
            }
        };
        let key = credential_key(name);
        self.transact(|st| {
            // Replacing the last admin with a readonly credential would lock everyone out.
            let other_admin = st.credentials.values().any(|c| c.value.name != name && c.value.role == Role::Admin);
            if role != Role::Admin
                && !other_admin
                && st.credentials.get(name).is_some_and(|c| c.value.role == Role::Admin)
            {
                return Err(Error::InvalidRequest(format!(
                    "{name:?} is the last admin credential; create another admin first"
                )));
            }
            let expect = st.version(&key).map_or(Expect::Absent, Expect::Version);
            Ok((Some(Txn::new().expect(&key, expect).put(&key, encode(&cred))), ()))
        })
        .await?;
        Ok((cred, secret))
    }

    /// Deletes a credential; refused for the last admin one. Every replica refuses its secret
    /// as soon as the deletion reaches its cache.
    pub async fn delete_credential(&self, name: &str) -> Result<()> {
        let key = credential_key(name);
        self.transact(|st| {
            let Some(c) = st.credentials.get(name) else {
                return Err(Error::NotFound(format!("no credential named {name:?}; see `bosun credential list`")));
            };
            let mut txn = Txn::new().expect(&key, Expect::Version(c.version)).delete(&key);
            if c.value.role == Role::Admin {
                // Another admin must remain: pin one (a concurrent deletion of it conflicts).
                let Some(other) = st.credentials.values().find(|o| o.value.name != name && o.value.role == Role::Admin)
                else {
                    return Err(Error::InvalidRequest(format!(
                        "{name:?} is the last admin credential; create another admin first"
                    )));
                };
                txn = txn.expect(credential_key(&other.value.name), Expect::Version(other.version));
            }
            Ok((Some(txn), ()))
        })
        .await
    }

    /// One credential by name.
    pub fn credential(&self, name: &str) -> Option<Credential> {
        self.state.read().credentials.values().map(|c| &c.value).find(|c| c.name == name).cloned()
    }

    pub fn credentials(&self) -> Vec<Credential> {
        self.state.read().credentials.values().map(|c| c.value.clone()).collect()
    }

    /// Stores credentials for a repository URL or URL prefix: a username and password or token
    /// (https), or a deploy key with the host keys to accept (ssh). Secrets are sealed with the
    /// secret key before they reach the store.
    pub async fn add_repository(
        &self,
        url: &str,
        username: &str,
        password: &Secret,
        ssh_key: &Secret,
        known_hosts: &str,
    ) -> Result<RepoRecord> {
        let url = url.trim();
        let rec = if bosun_core::app::is_ssh_url(url) {
            if !password.is_empty() {
                return Err(Error::InvalidRequest("an ssh repository takes a deploy key, not a password".into()));
            }
            if ssh_key.is_empty() || !ssh_key.expose().contains("PRIVATE KEY-----") {
                return Err(Error::InvalidRequest(
                    "an ssh repository needs a private deploy key (--ssh-key-file, OpenSSH PEM)".into(),
                ));
            }
            check_known_hosts(known_hosts)?;
            RepoRecord {
                url: url.to_string(),
                username: username.to_string(),
                password_sealed: String::new(),
                ssh_key_sealed: self.secrets.seal(&format!("ssh-key:{url}"), ssh_key)?,
                known_hosts: known_hosts.trim().to_string(),
            }
        } else {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::InvalidRequest(format!(
                    "repository credentials are for https:// or ssh URLs (ssh://… or user@host:path); {:?} is neither",
                    redact_url(url)
                )));
            }
            if url.contains('@') {
                return Err(Error::InvalidRequest(
                    "put the username and password in their fields, not in the URL".into(),
                ));
            }
            if !ssh_key.is_empty() {
                return Err(Error::InvalidRequest("an ssh key is for ssh URLs (ssh://… or user@host:path)".into()));
            }
            RepoRecord {
                url: url.to_string(),
                username: username.to_string(),
                password_sealed: if password.is_empty() { String::new() } else { self.secrets.seal(url, password)? },
                ssh_key_sealed: String::new(),
                known_hosts: String::new(),
            }
        };
        if url.len() > 200 {
            return Err(Error::InvalidRequest("a repository URL longer than 200 characters is not accepted".into()));
        }
        self.commit(Txn::new().put(repo_key(url), encode(&rec))).await?;
        Ok(rec)
    }

    pub fn repositories(&self) -> Vec<RepoRecord> {
        self.state.read().repos.values().map(|r| r.value.clone()).collect()
    }

    pub async fn delete_repository(&self, url: &str) -> Result<()> {
        let key = repo_key(url);
        self.transact(|st| match st.repos.get(url) {
            Some(r) => Ok((Some(Txn::new().expect(&key, Expect::Version(r.version)).delete(&key)), ())),
            None => {
                Err(Error::NotFound(format!("no credentials stored for {:?}; see `bosun repo list`", redact_url(url))))
            }
        })
        .await
    }

    /// The credentials of the longest stored URL prefix of `url`, decrypted.
    pub(super) fn repo_credentials(&self, url: &str) -> Result<Option<crate::git::Account>> {
        let rec = {
            let st = self.state.read();
            st.repos.values().map(|r| &r.value).filter(|r| url.starts_with(&r.url)).max_by_key(|r| r.url.len()).cloned()
        };
        let Some(rec) = rec else { return Ok(None) };
        let password = if rec.password_sealed.is_empty() {
            Secret::default()
        } else {
            self.secrets.open(&rec.url, &rec.password_sealed)?
        };
        let ssh = if rec.ssh_key_sealed.is_empty() {
            None
        } else {
            Some(crate::git::SshAccount {
                private_key: self.secrets.open(&format!("ssh-key:{}", rec.url), &rec.ssh_key_sealed)?,
                known_hosts: rec.known_hosts.clone(),
            })
        };
        Ok(Some(crate::git::Account { username: rec.username, password, ssh }))
    }
}
