//! HTTPS with client-certificate or bearer-token authentication, through kube::Client.

mod common;

use common::{client_from_kubeconfig, fast_config};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube_sim::{SimCluster, SimConfig};

async fn tls_sim() -> SimCluster {
    SimCluster::start(SimConfig { tls: true, tokens: vec!["s3cret-token".into()], ..fast_config() }).await.unwrap()
}

#[tokio::test]
async fn client_certificate_and_token_are_accepted() {
    let c = tls_sim().await;
    assert!(c.url().starts_with("https://"));
    for use_token in [false, true] {
        let cl = client_from_kubeconfig(&c.kubeconfig(use_token)).await;
        let nss: Api<Namespace> = Api::all(cl);
        let names: Vec<_> = nss
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect();
        assert!(names.contains(&"kube-system".to_string()), "token={use_token}: {names:?}");
    }
    assert_eq!(c.token(), Some("s3cret-token"));
}

#[tokio::test]
async fn requests_without_credentials_are_unauthorized() {
    let c = tls_sim().await;
    // Trust the CA but present no certificate and a wrong token.
    let kc = c.kubeconfig(true).replace("s3cret-token", "wrong");
    let nss: Api<Namespace> = Api::all(client_from_kubeconfig(&kc).await);
    match nss.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // A client certificate issued by another CA is refused, even by a client that trusts
    // this server.
    let other = SimCluster::start(SimConfig { tls: true, ..fast_config() }).await.unwrap();
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let (mine, theirs) = (c.pki().unwrap(), other.pki().unwrap());
    let foreign = c
        .kubeconfig(false)
        .replace(&b64(&mine.client_cert_pem), &b64(&theirs.client_cert_pem))
        .replace(&b64(&mine.client_key_pem), &b64(&theirs.client_key_pem));
    assert_ne!(foreign, c.kubeconfig(false));
    let nss: Api<Namespace> = Api::all(client_from_kubeconfig(&foreign).await);
    assert!(nss.list(&ListParams::default()).await.is_err(), "a certificate from another CA is refused");
    // And a client that does not trust the simulated CA fails the handshake.
    let untrusting = other.kubeconfig(false).replace(other.url(), c.url());
    let nss: Api<Namespace> = Api::all(client_from_kubeconfig(&untrusting).await);
    assert!(nss.list(&ListParams::default()).await.is_err());
}
