//! HTTPS for the control plane's HTTP routers (the dashboard and the webhook endpoint):
//! rustls in front of hyper, HTTP/1.1 and HTTP/2, with the connection's verified client
//! certificate handed to the router as [`PeerCertificate`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// The verified client certificate of the connection a request came on (its DER leaf), set
/// per connection by [`serve`]; `None` when the client presented none.
#[derive(Clone, Default)]
pub struct PeerCertificate(pub Option<Arc<Vec<u8>>>);

/// A TLS server configuration for `cert_pem`/`key_pem`. With `client_ca_pem`, a client
/// certificate is optional but one that is presented must chain to that bundle.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the server certificate chain (PEM)")?;
    anyhow::ensure!(!certs.is_empty(), "the server certificate file holds no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the server's private key (PEM)")?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c?)?;
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build()?,
            )
        }
    };
    let mut tls = builder.with_single_cert(certs, key).context("the server certificate does not match its key")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// Serves `router` over TLS on `listener` until `stop` resolves; `what` names the listener
/// in logs.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: rustls::ServerConfig,
    what: &'static str,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(listener = what, error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(listener = what, %peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(listener = what, %peer, "TLS handshake timed out"),
            };
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::new(c.to_vec()));
            let router = router.layer(axum::Extension(PeerCertificate(leaf)));
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
    info!(listener = what, "stopped accepting connections");
    Ok(())
}
