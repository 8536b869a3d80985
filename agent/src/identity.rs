//! The agent's identity: a key generated locally, a CSR sent with the join token, and the
//! short-lived client certificate the control plane signs — renewed over mTLS, with a fresh
//! key, at two thirds of its lifetime. The private key never leaves the agent.

use anyhow::{Context, bail};
use bosun_proto::v1 as pb;
use rcgen::{CertificateParams, DnType, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tracing::info;

use crate::state::{StateDir, write_secret};

/// PEM material for mTLS with the control plane.
#[derive(Clone)]
pub struct Credentials {
    pub cluster: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn load(dir: &StateDir) -> Option<Self> {
        let read = |n: &str| std::fs::read_to_string(dir.path(n)).ok();
        Some(Self {
            cluster: read("cluster")?.trim().to_string(),
            cert_pem: read("client.pem")?,
            key_pem: read("client.key")?,
            ca_pem: read("ca.pem")?,
        })
    }

    /// Writes the credentials; each file is replaced atomically, key first, so a crash
    /// leaves either the old or the new pair readable (the old stays valid until it expires).
    fn save(&self, dir: &StateDir) -> anyhow::Result<()> {
        let replace = |name: &str, contents: &str, secret: bool| -> anyhow::Result<()> {
            let tmp = dir.path(&format!("{name}.tmp"));
            if secret {
                write_secret(&tmp, contents)?;
            } else {
                std::fs::write(&tmp, contents)?;
            }
            std::fs::rename(&tmp, dir.path(name))?;
            Ok(())
        };
        replace("client.key", &self.key_pem, true)?;
        replace("client.pem", &self.cert_pem, false)?;
        replace("ca.pem", &self.ca_pem, false)?;
        replace("cluster", &self.cluster, false)?;
        Ok(())
    }

    /// (not before, not after) of the client certificate, Unix seconds.
    pub fn validity(&self) -> anyhow::Result<(i64, i64)> {
        let der = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the stored client certificate is not PEM: {e}"))?
            .1;
        let cert = der.parse_x509().map_err(|e| anyhow::anyhow!("the stored client certificate is invalid: {e}"))?;
        Ok((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
    }

    /// When to renew: two thirds into the certificate's lifetime (Unix seconds).
    pub fn renew_at(&self) -> anyhow::Result<i64> {
        let (nb, na) = self.validity()?;
        Ok(nb + (na - nb) * 2 / 3)
    }

    pub fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
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

/// Joins with a single-use token: generates a key, sends a CSR, stores the certificate.
pub async fn join(dir: &StateDir, join_url: &str, token: &str, ca_pem: &str) -> anyhow::Result<Credentials> {
    if token.is_empty() {
        bail!(
            "no credentials in the state directory and no join token: run `bosun cluster add NAME` and pass --join-token"
        );
    }
    let (key, csr) = new_csr()?;
    let channel = Channel::from_shared(join_url.to_string())?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)))?
        .connect()
        .await
        .with_context(|| format!("connecting to the join endpoint {join_url}"))?;
    let resp = pb::join_service_client::JoinServiceClient::new(channel)
        .join(pb::JoinRequest {
            token: token.to_string(),
            csr_pem: csr,
            agent_version: env!("CARGO_PKG_VERSION").into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("join refused: {}", s.message()))?
        .into_inner();
    let creds = Credentials {
        cluster: resp.cluster,
        cert_pem: resp.certificate_pem,
        key_pem: key.serialize_pem(),
        ca_pem: resp.ca_pem,
    };
    creds.save(dir)?;
    info!(cluster = %creds.cluster, "joined the control plane");
    Ok(creds)
}

/// Asks the control plane for a new certificate over mTLS with the current one, for a fresh
/// key, and stores it. The old certificate stays valid until its own expiry.
pub async fn renew(dir: &StateDir, url: &str, current: &Credentials) -> anyhow::Result<Credentials> {
    let (key, csr) = new_csr()?;
    let channel = Channel::from_shared(url.to_string())?
        .tls_config(current.tls())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url} to renew the certificate"))?;
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
    };
    creds.save(dir)?;
    info!(cluster = %creds.cluster, expires_at = resp.expires_at, "certificate renewed");
    Ok(creds)
}

/// Renews the certificate at two thirds of its lifetime, forever, publishing each new one.
/// Failures are retried with backoff; an expired certificate is reported, not fatal (the
/// agent keeps enforcing its last desired state and needs a new join token).
pub async fn renew_forever(
    shared: std::sync::Arc<crate::reconcile::Shared>,
    url: String,
    creds: tokio::sync::watch::Sender<Credentials>,
) {
    use backon::BackoffBuilder;
    let builder = backon::ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(std::time::Duration::from_secs(1))
        .with_max_delay(std::time::Duration::from_secs(300))
        .without_max_times();
    let mut backoff = builder.build();
    loop {
        let current = creds.borrow().clone();
        let at = match current.renew_at() {
            Ok(at) => at,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read the client certificate; not renewing");
                return;
            }
        };
        let wait = (at - crate::state::unix_now()).max(0) as u64;
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        match renew(&shared.dir, &url, &current).await {
            Ok(new) => {
                creds.send_replace(new);
                backoff = builder.build();
            }
            Err(e) => {
                let expired = current.validity().map(|(_, na)| na <= crate::state::unix_now()).unwrap_or(true);
                tracing::warn!(error = %format!("{e:#}"), expired, "certificate renewal failed; retrying");
                tokio::time::sleep(backoff.next().unwrap_or(std::time::Duration::from_secs(300))).await;
            }
        }
    }
}
