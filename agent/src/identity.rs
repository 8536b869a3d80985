//! The agent's identity: a key generated locally, a CSR sent with the join token, and the
//! client certificate the control plane signs. The private key never leaves the agent.

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

    fn save(&self, dir: &StateDir) -> anyhow::Result<()> {
        write_secret(&dir.path("client.key"), &self.key_pem)?;
        std::fs::write(dir.path("client.pem"), &self.cert_pem)?;
        std::fs::write(dir.path("ca.pem"), &self.ca_pem)?;
        std::fs::write(dir.path("cluster"), &self.cluster)?;
        Ok(())
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
