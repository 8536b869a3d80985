//! The agent's identity: a key generated locally, a CSR sent with the join token, and the
//! short-lived client certificate the control plane signs — renewed over mTLS, with a fresh
//! key, at two thirds of its lifetime. The private key never leaves the agent.
//!
//! Key, certificate, CA and cluster name live in one file (`identity.json`, 0600) replaced
//! atomically, so a crash never leaves a key beside a certificate it does not match. A join
//! token (flag or file) is used when the agent has no identity, when the token is not the one
//! it last joined with (an admin issued a new one), and whenever the control plane refuses the
//! stored certificate (revoked, expired while the control plane was down).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bosun_proto::v1 as pb;
use rcgen::{CertificateParams, DnType, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};
use tracing::{error, info, warn};

use crate::state::{StateDir, unix_now};

/// The file holding the agent's identity.
pub const IDENTITY_FILE: &str = "identity.json";
/// Files of the identity before it was one file (read once, then replaced).
const LEGACY_FILES: [&str; 4] = ["cluster", "client.pem", "client.key", "ca.pem"];

/// PEM material for mTLS with the control plane.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub cluster: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// SHA-256 of the join token this identity came from (empty: unknown).
    #[serde(default)]
    pub joined_with: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Credentials {
    /// The stored identity: `None` when there is none, or when the file cannot be used (then
    /// it is moved aside, with a log line naming it, and the agent joins again).
    pub fn load(dir: &StateDir) -> Option<Self> {
        let path = dir.path(IDENTITY_FILE);
        let parsed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Self>(&bytes)
                .map_err(|e| format!("not an identity file: {e}"))
                .and_then(|c| c.validity().map(|_| c).map_err(|e| format!("{e:#}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::load_legacy(dir),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(c) => Some(c),
            Err(why) => {
                let aside = dir.set_aside(IDENTITY_FILE);
                error!(file = %path.display(), moved_to = %aside.map(|p| p.display().to_string()).unwrap_or_default(), reason = %why,
                    "the agent's identity file is unusable; it was moved aside and the agent joins again (it needs a join token)");
                None
            }
        }
    }

    /// Reads the four files of older versions, replacing them with one identity file.
    fn load_legacy(dir: &StateDir) -> Option<Self> {
        let read = |n: &str| std::fs::read_to_string(dir.path(n)).ok();
        let c = Self {
            cluster: read("cluster")?.trim().to_string(),
            cert_pem: read("client.pem")?,
            key_pem: read("client.key")?,
            ca_pem: read("ca.pem")?,
            joined_with: String::new(),
        };
        if let Err(e) = c.validity() {
            error!(error = %format!("{e:#}"), "the stored client certificate is unusable; the agent joins again");
            for f in LEGACY_FILES {
                dir.set_aside(f);
            }
            return None;
        }
        match c.save(dir) {
            Ok(()) => {
                for f in LEGACY_FILES {
                    let _ = std::fs::remove_file(dir.path(f));
                }
            }
            Err(e) => warn!(error = %format!("{e:#}"), "could not rewrite the identity as one file"),
        }
        Some(c)
    }

    /// [`Credentials::load`] on the blocking pool.
    pub async fn load_in(dir: &Arc<StateDir>) -> Option<Self> {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Self::load(&dir)).await.ok().flatten()
    }

    /// [`Credentials::save`] on the blocking pool.
    pub async fn store_in(&self, dir: &Arc<StateDir>) -> anyhow::Result<()> {
        let (me, dir) = (self.clone(), dir.clone());
        tokio::task::spawn_blocking(move || me.save(&dir)).await.context("writing the identity")?
    }

    /// Replaces the stored identity atomically (one file: key and certificate change together).
    pub fn save(&self, dir: &StateDir) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::state::write_atomic(&dir.path(IDENTITY_FILE), &bytes, 0o600)
            .with_context(|| format!("writing {}", dir.path(IDENTITY_FILE).display()))
    }

    /// (not before, not after) of the client certificate, Unix seconds; checks that the key
    /// and certificate are PEM.
    pub fn validity(&self) -> anyhow::Result<(i64, i64)> {
        let der = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the client certificate is not PEM: {e}"))?
            .1;
        let cert = der.parse_x509().map_err(|e| anyhow::anyhow!("the client certificate is invalid: {e}"))?;
        KeyPair::from_pem(&self.key_pem).map_err(|e| anyhow::anyhow!("the private key is invalid: {e}"))?;
        Ok((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
    }

    /// Whether the certificate's lifetime has ended.
    pub fn expired(&self) -> bool {
        self.validity().map(|(_, not_after)| not_after <= unix_now()).unwrap_or(true)
    }

    /// When to renew: two thirds into the certificate's lifetime (Unix seconds).
    pub fn renew_at(&self) -> anyhow::Result<i64> {
        let (nb, na) = self.validity()?;
        Ok(nb + (na - nb) * 2 / 3)
    }

    pub fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(TlsIdentity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

/// A fresh private key and a PEM CSR for it. The control plane decides the subject.
pub fn new_csr() -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "bosun-agent");
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// Where a join token comes from. A file is read each time, so a Secret updated in place (a
/// new token after a revocation) is picked up without a restart.
#[derive(Debug, Clone)]
pub enum TokenSource {
    None,
    Value(String),
    File(PathBuf),
}

impl TokenSource {
    /// The token, if one is given (an empty file counts as none).
    pub async fn read(&self) -> anyhow::Result<Option<String>> {
        let t = match self {
            TokenSource::None => return Ok(None),
            TokenSource::Value(v) => v.trim().to_string(),
            TokenSource::File(f) => tokio::fs::read_to_string(f)
                .await
                .with_context(|| format!("reading the join token {}", f.display()))?
                .trim()
                .to_string(),
        };
        Ok((!t.is_empty()).then_some(t))
    }
}

/// Why joining did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "no usable identity in the state directory and no join token: run `bosun cluster add NAME` and pass --join-token-file (or --join-token)"
    )]
    NoToken,
    #[error("--ca-file is required to join (the control plane's ca.pem)")]
    NoCa,
    #[error("join refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Everything needed to join (again).
#[derive(Debug, Clone)]
pub struct Joiner {
    pub url: String,
    pub token: TokenSource,
    pub ca_file: Option<PathBuf>,
    /// The cluster to register with a registration token (none with a join token, which
    /// names its cluster).
    pub cluster_name: ClusterName,
}

/// Where the name to register under comes from: a flag, or a file read at each join (a key
/// of the mounted join Secret; a missing file means no name).
#[derive(Debug, Clone)]
pub enum ClusterName {
    Value(String),
    File(PathBuf),
}

impl ClusterName {
    pub async fn read(&self) -> anyhow::Result<String> {
        match self {
            ClusterName::Value(v) => Ok(v.trim().to_string()),
            ClusterName::File(f) => match tokio::fs::read_to_string(f).await {
                Ok(s) => Ok(s.trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(e).with_context(|| format!("reading the cluster name {}", f.display())),
            },
        }
    }
}

impl Joiner {
    /// The token, when it is one this agent has not joined with yet.
    async fn fresh_token(&self, current: Option<&Credentials>) -> anyhow::Result<Option<String>> {
        let Some(token) = self.token.read().await? else { return Ok(None) };
        let used = current.is_some_and(|c| c.joined_with == token_digest(&token));
        Ok((!used).then_some(token))
    }

    /// The token to join again with once the control plane refused the certificate: one not
    /// used yet, or a registration token (reusable by design, `brt_`), which re-registers
    /// this cluster if the control plane still allows it (the certificate lapsed, say).
    async fn token_to_rejoin(&self, current: &Credentials) -> anyhow::Result<Option<String>> {
        if let Some(t) = self.fresh_token(Some(current)).await? {
            return Ok(Some(t));
        }
        Ok(self.token.read().await?.filter(|t| t.starts_with("brt_")))
    }

    /// Joins with a single-use token: generates a key, sends a CSR, stores the identity.
    pub async fn join(
        &self,
        dir: &Arc<StateDir>,
        token: &str,
        fallback_ca: Option<&str>,
    ) -> Result<Credentials, JoinError> {
        let ca = match &self.ca_file {
            Some(f) => tokio::fs::read_to_string(f).await.with_context(|| format!("reading {}", f.display()))?,
            None => fallback_ca.ok_or(JoinError::NoCa)?.to_string(),
        };
        let cluster = self.cluster_name.read().await?;
        let (key, csr) = new_csr()?;
        let channel = Channel::from_shared(self.url.clone())
            .context("the join URL")?
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca)))
            .context("TLS for the join endpoint")?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("connecting to the join endpoint {}", self.url))?;
        let resp = pb::join_service_client::JoinServiceClient::new(channel)
            .join(pb::JoinRequest {
                token: token.to_string(),
                csr_pem: csr,
                agent_version: env!("CARGO_PKG_VERSION").into(),
                cluster,
            })
            .await
            .map_err(|s| JoinError::Refused(s.message().to_string()))?
            .into_inner();
        let creds = Credentials {
            cluster: resp.cluster,
            cert_pem: resp.certificate_pem,
            key_pem: key.serialize_pem(),
            ca_pem: resp.ca_pem,
            joined_with: token_digest(token),
        };
        creds.validity().context("the certificate the control plane returned")?;
        creds.store_in(dir).await?;
        info!(cluster = %creds.cluster, "joined the control plane");
        Ok(creds)
    }

    /// The identity to start with: the stored one, unless a join token it has not used is
    /// given (an admin issued a new one: join with it; if that fails, keep the stored one);
    /// without a stored identity, join.
    pub async fn startup(&self, dir: &Arc<StateDir>) -> Result<Credentials, JoinError> {
        let stored = Credentials::load_in(dir).await;
        let fresh = self.fresh_token(stored.as_ref()).await?;
        match (stored, fresh) {
            (Some(stored), None) => Ok(stored),
            (Some(stored), Some(token)) => match self.join(dir, &token, Some(&stored.ca_pem)).await {
                Ok(c) => Ok(c),
                Err(e) => {
                    warn!(error = %e, cluster = %stored.cluster, "a join token was given but joining with it failed; using the stored identity");
                    Ok(stored)
                }
            },
            (None, Some(token)) => self.join(dir, &token, None).await,
            (None, None) => Err(JoinError::NoToken),
        }
    }
}

/// The agent's live identity: the current credentials (published to the link on change),
/// where they are stored, and how to join again.
pub struct IdentityManager {
    pub dir: Arc<StateDir>,
    pub joiner: Joiner,
    /// The agent API's addresses (renewal goes to the one the link uses, then the others).
    pub endpoints: Arc<crate::link::Endpoints>,
    pub creds: watch::Sender<Credentials>,
}

impl IdentityManager {
    pub fn current(&self) -> Credentials {
        self.creds.borrow().clone()
    }

    /// The control plane refused the stored certificate: joins again when a token this agent
    /// has not used is available. Returns whether a new identity was obtained.
    pub async fn rejoin(&self, why: &str) -> bool {
        let current = self.current();
        let token = match self.joiner.token_to_rejoin(&current).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                warn!(cluster = %current.cluster, reason = why,
                    "the control plane refuses this agent's certificate; put a new join token from `bosun cluster add {}` in --join-token-file and the agent joins again",
                    current.cluster);
                return false;
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot read the join token");
                return false;
            }
        };
        match self.joiner.join(&self.dir, &token, Some(&current.ca_pem)).await {
            Ok(c) => {
                info!(cluster = %c.cluster, "joined again after the certificate was refused");
                self.creds.send_replace(c);
                true
            }
            Err(e) => {
                warn!(error = %e, "joining again failed");
                false
            }
        }
    }

    /// Asks the control plane for a new certificate over mTLS with the current one, for a
    /// fresh key, and stores it. The old certificate stays valid until its own expiry.
    async fn renew(&self, current: &Credentials) -> anyhow::Result<Credentials> {
        let (key, csr) = new_csr()?;
        let mut failures = Vec::new();
        let mut connected = None;
        for url in self.endpoints.in_turn() {
            let attempt = async {
                Channel::from_shared(url.clone())?
                    .tls_config(current.tls())?
                    .connect_timeout(Duration::from_secs(10))
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {url} to renew the certificate"))
            };
            match attempt.await {
                Ok(c) => {
                    connected = Some(c);
                    break;
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        let channel = connected.ok_or_else(|| anyhow::anyhow!("{}", failures.join("; ")))?;
        let resp = pb::agent_service_client::AgentServiceClient::new(channel)
            .renew_certificate(pb::RenewCertificateRequest { csr_pem: csr })
            .await
            .map_err(|s| anyhow::anyhow!("certificate renewal refused: {}", s.message()))?
            .into_inner();
        let creds = Credentials {
            cluster: current.cluster.clone(),
            cert_pem: resp.certificate_pem,
            key_pem: key.serialize_pem(),
            ca_pem: resp.ca_pem,
            joined_with: current.joined_with.clone(),
        };
        creds.validity().context("the renewed certificate")?;
        creds.store_in(&self.dir).await?;
        info!(cluster = %creds.cluster, expires_at = resp.expires_at, "certificate renewed");
        Ok(creds)
    }

    /// Renews the certificate at two thirds of its lifetime, forever, publishing each new
    /// one. Failures are retried with backoff; once the certificate has expired, renewal is
    /// impossible and the link joins again when it can. Returns only on an error the agent
    /// cannot recover from (then the process exits non-zero).
    pub async fn renew_forever(self: Arc<Self>) -> anyhow::Result<()> {
        use backon::BackoffBuilder;
        let builder = backon::ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(300))
            .without_max_times();
        let mut backoff = builder.build();
        let mut changes = self.creds.subscribe();
        loop {
            let current = changes.borrow_and_update().clone();
            let at = current.renew_at().context("reading the client certificate to schedule its renewal")?;
            let wait = Duration::from_secs((at - unix_now()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A new identity (a join): schedule from it.
                c = changes.changed() => { c.context("identity channel closed")?; continue; }
            }
            if current.expired() {
                // Only a join helps now; wait for one.
                changes.changed().await.context("identity channel closed")?;
                continue;
            }
            match self.renew(&current).await {
                Ok(new) => {
                    self.creds.send_replace(new);
                    backoff = builder.build();
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "certificate renewal failed; retrying");
                    tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(300))).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cluster_name_file_is_read_at_each_join_and_may_be_absent() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cluster-name");
        let name = ClusterName::File(f.clone());
        assert_eq!(name.read().await.unwrap(), "", "no key in the Secret: no name");
        std::fs::write(&f, "spoke-1\n").unwrap();
        assert_eq!(name.read().await.unwrap(), "spoke-1");
        std::fs::write(&f, "spoke-2").unwrap();
        assert_eq!(name.read().await.unwrap(), "spoke-2", "an updated Secret is seen");
        assert_eq!(ClusterName::Value(" c1 ".into()).read().await.unwrap(), "c1");
    }

    fn self_signed() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["c1".to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn key_and_certificate_are_one_file_replaced_together() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path()).unwrap();
        // Four files of an older version are read once and become one.
        let (cert, key) = self_signed();
        for (name, content) in
            [("cluster", "c1"), ("client.pem", cert.as_str()), ("client.key", key.as_str()), ("ca.pem", cert.as_str())]
        {
            std::fs::write(dir.path(name), content).unwrap();
        }
        let c = Credentials::load(&dir).unwrap();
        assert_eq!((c.cluster.as_str(), c.cert_pem.as_str()), ("c1", cert.as_str()));
        assert!(dir.path(IDENTITY_FILE).exists());
        for f in LEGACY_FILES {
            assert!(!dir.path(f).exists(), "{f} left behind");
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path(IDENTITY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        // A renewal replaces key and certificate in one rename: no temporary file stays.
        let (cert2, key2) = self_signed();
        Credentials { cert_pem: cert2.clone(), key_pem: key2.clone(), ..c }.save(&dir).unwrap();
        let again = Credentials::load(&dir).unwrap();
        assert_eq!((again.cert_pem, again.key_pem), (cert2, key2));
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // Garbage is set aside, not fatal and not silently kept.
        std::fs::write(dir.path(IDENTITY_FILE), "not json").unwrap();
        assert!(Credentials::load(&dir).is_none());
        assert!(!dir.path(IDENTITY_FILE).exists());
        assert!(names_now(tmp.path()).iter().any(|n| n.starts_with("identity.json.broken-")));
    }

    fn names_now(p: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(p).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    }
}
