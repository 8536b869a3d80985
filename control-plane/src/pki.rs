//! The control plane's certificate authority: created on first start (or taken from files
//! given), a server certificate per start, client certificates for agents from their CSRs,
//! and the cluster identity read back from a peer certificate.
//!
//! An agent's identity is the URI SAN `spiffe://bosun/cluster/<name>` in its certificate;
//! request fields never name the caller.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

pub const TRUST_DOMAIN: &str = "bosun";

pub fn cluster_uri(cluster: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/cluster/{cluster}")
}

pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Pki(format!("{what}: {e}"))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

impl Pki {
    /// Loads the CA from `ca_cert`/`ca_key` when given, else from the data directory,
    /// creating it there on first start.
    pub fn load_or_create(data_dir: &Path, given: Option<(PathBuf, PathBuf)>) -> Result<Self> {
        let (cert_path, key_path) = given.unwrap_or_else(|| (data_dir.join("ca.pem"), data_dir.join("ca.key")));
        if cert_path.exists() && key_path.exists() {
            let read =
                |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::Pki(format!("reading {}: {e}", p.display())));
            let (ca_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
            let key = KeyPair::from_pem(&key_pem).map_err(pki_err("parsing the CA key"))?;
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(pki_err("parsing the CA certificate"))?;
            return Ok(Self { ca_pem, issuer });
        }
        let key = KeyPair::generate().map_err(pki_err("generating the CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("CA parameters"))?;
        params.distinguished_name.push(DnType::CommonName, "Bosun CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = SystemTime::now().into();
        params.not_after = (SystemTime::now() + Duration::from_secs(10 * 365 * 86400)).into();
        let cert = params.self_signed(&key).map_err(pki_err("self-signing the CA"))?;
        write_private(&key_path, &key.serialize_pem())
            .map_err(|e| Error::Pki(format!("writing {}: {e}", key_path.display())))?;
        std::fs::write(&cert_path, cert.pem())
            .map_err(|e| Error::Pki(format!("writing {}: {e}", cert_path.display())))?;
        Ok(Self { ca_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A server certificate (PEM cert, PEM key) for the given DNS names and IPs.
    pub fn server_certificate(&self, names: &[String]) -> Result<(String, String)> {
        let key = KeyPair::generate().map_err(pki_err("generating the server key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("server parameters"))?;
        for n in names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName(n.clone().try_into().map_err(pki_err("server name"))?)),
            }
        }
        params.distinguished_name.push(DnType::CommonName, "bosun-control-plane");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (SystemTime::now() - Duration::from_secs(300)).into();
        params.not_after = (SystemTime::now() + Duration::from_secs(365 * 86400)).into();
        let cert = params.signed_by(&key, &self.issuer).map_err(pki_err("signing the server certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs an agent's CSR for `cluster`. The subject and SANs come from the control plane,
    /// not from the CSR. Returns the PEM certificate and its expiry (Unix seconds).
    pub fn sign_agent_csr(&self, csr_pem: &str, cluster: &str, validity: Duration) -> Result<(String, i64)> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            Error::InvalidRequest(format!("the certificate signing request is not valid PEM PKCS#10: {e}"))
        })?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("agent parameters"))?;
        params.distinguished_name.push(DnType::CommonName, cluster);
        params.distinguished_name.push(DnType::OrganizationName, "bosun-agents");
        params.subject_alt_names = vec![SanType::URI(cluster_uri(cluster).try_into().map_err(pki_err("cluster URI"))?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let not_after = SystemTime::now() + validity;
        params.not_before = (SystemTime::now() - Duration::from_secs(300)).into();
        params.not_after = not_after.into();
        csr.params = params;
        let cert = csr.signed_by(&self.issuer).map_err(pki_err("signing the agent certificate"))?;
        let expires = not_after.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
        Ok((cert.pem(), expires))
    }
}

/// The cluster named by a verified peer certificate (its `spiffe://bosun/cluster/<name>` URI SAN).
pub fn cluster_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => {
            u.strip_prefix(&format!("spiffe://{TRUST_DOMAIN}/cluster/")).map(str::to_string)
        }
        _ => None,
    })
}

/// Writes a secret file readable only by its owner.
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    write_private(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_csr_with_cluster_identity_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), None).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "i-claim-to-be-someone-else");
        let csr = p.serialize_request(&key).unwrap().pem().unwrap();
        let (pem, expires) = pki.sign_agent_csr(&csr, "east-1", Duration::from_secs(3600)).unwrap();
        assert!(expires > 0);
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(cluster_of(&der).as_deref(), Some("east-1"));
        let again = Pki::load_or_create(dir.path(), None).unwrap();
        assert_eq!(again.ca_pem, pki.ca_pem, "the CA is created once");
        assert!(pki.sign_agent_csr("garbage", "x", Duration::from_secs(1)).is_err());
    }

    use rustls::pki_types::pem::PemObject;
}
