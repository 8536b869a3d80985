//! The control plane's certificate authority: created on first start (or taken from files
//! given), a server certificate per start, short-lived client certificates for agents and
//! for people from their CSRs, and the identity read back from a peer certificate.
//!
//! Identities are URI SANs, `spiffe://<trust-domain>/cluster/<name>` for agents and
//! `spiffe://<trust-domain>/user/<name>` for admin credentials; request fields never name
//! the caller. Every certificate carries a random serial the model records, so a single
//! certificate can be refused (revocation) without a CRL.
//!
//! CA rotation uses a trust bundle: the signing CA plus any extra trusted CAs
//! (`--trusted-ca`). Peers are accepted when signed by any CA in the bundle, and agents
//! receive the whole bundle at join and at every renewal, so a new CA can be trusted before
//! it signs anything, and an old one accepted until its last certificate expires.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::error::{Error, Result};

pub const DEFAULT_TRUST_DOMAIN: &str = "bosun";

/// Who a verified peer certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Cluster(String),
    User(String),
}

/// What the control plane reads from a peer certificate after TLS verified its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub subject: Subject,
    /// Hex serial number, as recorded when the certificate was issued.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// A certificate the control plane issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    pub serial: String,
    pub expires_at: i64,
}

pub struct Pki {
    /// The trust bundle: the signing CA first, then the extra trusted CAs.
    pub ca_pem: String,
    /// When the signing CA's certificate expires (Unix seconds).
    pub ca_not_after: i64,
    pub trust_domain: String,
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

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn random_serial() -> (SerialNumber, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive, as X.509 requires
    bytes[0] |= 0x01; // no leading zero byte, so the hex form round-trips
    (SerialNumber::from_slice(&bytes), hex::encode(bytes))
}

/// A new self-signed CA: (certificate PEM, key PEM).
pub fn generate_ca(common_name: &str) -> Result<(String, String)> {
    let (params, key) = ca_params(common_name)?;
    let cert = params.self_signed(&key).map_err(pki_err("self-signing the CA"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn ca_params(common_name: &str) -> Result<(CertificateParams, KeyPair)> {
    let key = KeyPair::generate().map_err(pki_err("generating the CA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("CA parameters"))?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial().0);
    params.not_before = SystemTime::now().into();
    params.not_after = (SystemTime::now() + Duration::from_secs(10 * 365 * 86400)).into();
    Ok((params, key))
}

impl Pki {
    /// Loads the signing CA from `given` (cert, key) when set, else from the data directory,
    /// creating it there on first start. `trusted` are extra CA certificates (PEM files)
    /// accepted for peers and handed to agents.
    pub fn load_or_create(
        data_dir: &Path,
        given: Option<(PathBuf, PathBuf)>,
        trusted: &[PathBuf],
        trust_domain: &str,
    ) -> Result<Self> {
        if trust_domain.is_empty() || !trust_domain.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            return Err(Error::Pki(format!(
                "trust domain {trust_domain:?} must be letters, digits, '-', '.' or '_' (e.g. bosun.example.com)"
            )));
        }
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::Pki(format!("reading {}: {e}", p.display())));
        let (cert_path, key_path) = given.unwrap_or_else(|| (data_dir.join("ca.pem"), data_dir.join("ca.key")));
        let (signing_pem, issuer) = if cert_path.exists() && key_path.exists() {
            let (ca_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
            let key = KeyPair::from_pem(&key_pem).map_err(pki_err("parsing the CA key"))?;
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(pki_err("parsing the CA certificate"))?;
            (ca_pem, issuer)
        } else {
            let (params, key) = ca_params("Bosun CA")?;
            let cert = params.self_signed(&key).map_err(pki_err("self-signing the CA"))?;
            write_private(&key_path, &key.serialize_pem())
                .map_err(|e| Error::Pki(format!("writing {}: {e}", key_path.display())))?;
            std::fs::write(&cert_path, cert.pem())
                .map_err(|e| Error::Pki(format!("writing {}: {e}", cert_path.display())))?;
            (cert.pem(), Issuer::new(params, key))
        };
        let mut bundle = signing_pem.trim_end().to_string();
        bundle.push('\n');
        for p in trusted {
            let pem = read(p)?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Pki(format!("{} holds no PEM certificate", p.display())));
            }
            bundle.push_str(pem.trim_end());
            bundle.push('\n');
        }
        let ca_not_after = x509_parser::pem::parse_x509_pem(signing_pem.as_bytes())
            .ok()
            .and_then(|(_, pem)| pem.parse_x509().ok().map(|c| c.validity().not_after.timestamp()))
            .ok_or_else(|| Error::Pki("the CA certificate is not a PEM X.509 certificate".into()))?;
        Ok(Self { ca_pem: bundle, ca_not_after, trust_domain: trust_domain.to_string(), issuer })
    }

    pub fn cluster_uri(&self, cluster: &str) -> String {
        format!("spiffe://{}/cluster/{cluster}", self.trust_domain)
    }

    pub fn user_uri(&self, user: &str) -> String {
        format!("spiffe://{}/user/{user}", self.trust_domain)
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
        params.serial_number = Some(random_serial().0);
        params.not_before = (SystemTime::now() - Duration::from_secs(300)).into();
        params.not_after = (SystemTime::now() + Duration::from_secs(365 * 86400)).into();
        let cert = params.signed_by(&key, &self.issuer).map_err(pki_err("signing the server certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a CSR for `subject`. The subject, SANs, usages and lifetime come from the
    /// control plane; only the public key is taken from the CSR.
    pub fn sign_csr(&self, csr_pem: &str, subject: &Subject, validity: Duration) -> Result<Issued> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            Error::InvalidRequest(format!("the certificate signing request is not valid PEM PKCS#10: {e}"))
        })?;
        let (cn, org, uri) = match subject {
            Subject::Cluster(c) => (c.as_str(), "bosun-agents", self.cluster_uri(c)),
            Subject::User(u) => (u.as_str(), "bosun-users", self.user_uri(u)),
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("client parameters"))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, org);
        params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(pki_err("identity URI"))?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        let not_after = SystemTime::now() + validity;
        // A little slack for peers whose clocks run behind (at most a tenth of the lifetime,
        // so an agent renewing at two thirds of not_before..not_after still renews late).
        params.not_before = (SystemTime::now() - (validity / 10).min(Duration::from_secs(60))).into();
        params.not_after = not_after.into();
        csr.params = params;
        let cert = csr.signed_by(&self.issuer).map_err(pki_err("signing the client certificate"))?;
        Ok(Issued { pem: cert.pem(), serial: serial_hex, expires_at: unix(not_after) })
    }

    /// The identity in a peer certificate whose chain TLS has already verified.
    pub fn peer(&self, cert_der: &[u8]) -> Option<PeerCert> {
        peer_cert(cert_der, &self.trust_domain)
    }
}

/// Reads the Bosun identity, serial and expiry of a certificate.
pub fn peer_cert(cert_der: &[u8], trust_domain: &str) -> Option<PeerCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let cluster_prefix = format!("spiffe://{trust_domain}/cluster/");
    let user_prefix = format!("spiffe://{trust_domain}/user/");
    let subject = san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u
            .strip_prefix(&cluster_prefix)
            .map(|c| Subject::Cluster(c.to_string()))
            .or_else(|| u.strip_prefix(&user_prefix).map(|c| Subject::User(c.to_string()))),
        _ => None,
    })?;
    Some(PeerCert {
        subject,
        serial: hex::encode(cert.tbs_certificate.raw_serial()),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Writes a secret file readable only by its owner.
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    write_private(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn csr() -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "i-claim-to-be-someone-else");
        p.subject_alt_names = vec![SanType::URI("spiffe://bosun/cluster/victim".try_into().unwrap())];
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn der(pem: &str) -> Vec<u8> {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    #[test]
    fn signs_csr_with_the_identity_it_chooses_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), None, &[], "bosun").unwrap();
        let issued = pki.sign_csr(&csr(), &Subject::Cluster("east-1".into()), Duration::from_secs(3600)).unwrap();
        let peer = pki.peer(&der(&issued.pem)).unwrap();
        assert_eq!(peer.subject, Subject::Cluster("east-1".into()), "the CSR's own SAN is ignored");
        assert_eq!(peer.serial, issued.serial);
        assert_eq!(peer.not_after, issued.expires_at);
        let again = Pki::load_or_create(dir.path(), None, &[], "bosun").unwrap();
        assert_eq!(again.ca_pem, pki.ca_pem, "the CA is created once");
        assert!(pki.sign_csr("garbage", &Subject::Cluster("x".into()), Duration::from_secs(1)).is_err());
        let user = pki.sign_csr(&csr(), &Subject::User("ci".into()), Duration::from_secs(60)).unwrap();
        assert_eq!(pki.peer(&der(&user.pem)).unwrap().subject, Subject::User("ci".into()));
    }

    #[test]
    fn another_trust_domain_is_not_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), None, &[], "prod.example.com").unwrap();
        let issued = pki.sign_csr(&csr(), &Subject::Cluster("a".into()), Duration::from_secs(60)).unwrap();
        assert!(peer_cert(&der(&issued.pem), "bosun").is_none());
        assert!(peer_cert(&der(&issued.pem), "prod.example.com").is_some());
        assert!(Pki::load_or_create(dir.path(), None, &[], "bad/domain").is_err());
    }

    #[test]
    fn trusted_cas_join_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let (old_ca, _) = generate_ca("old").unwrap();
        let f = dir.path().join("old.pem");
        std::fs::write(&f, &old_ca).unwrap();
        let pki = Pki::load_or_create(dir.path(), None, std::slice::from_ref(&f), "bosun").unwrap();
        assert_eq!(pki.ca_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(pki.ca_pem.contains(old_ca.trim()));
        std::fs::write(&f, "not a cert").unwrap();
        assert!(Pki::load_or_create(dir.path(), None, &[f], "bosun").is_err());
    }
}
