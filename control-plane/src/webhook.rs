//! The webhook endpoint, the only listener that faces Git hosts (served over TLS by the
//! caller): GitHub and GitLab push events, verified before anything is parsed —
//! GitHub's `X-Hub-Signature-256` HMAC-SHA256 and GitLab's `X-Gitlab-Token`, both compared
//! in constant time — with the payload capped. A verified push refreshes only the
//! Applications whose repository, revision and path it touches; unknown repositories are
//! acknowledged and ignored.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bosun_core::webhook::{Provider, parse_push};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::model::ControlPlane;
use crate::secrets::Secret;

/// Largest payload read; GitHub caps its payloads at 25 MB, but a push we care about is small.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct Hook {
    cp: Arc<ControlPlane>,
    secret: Option<Arc<Secret>>,
}

/// The webhook router: `POST /api/webhook` (GitHub or GitLab, told apart by their headers)
/// and nothing else.
pub fn router(cp: Arc<ControlPlane>, secret: Option<Secret>) -> Router {
    let hook = Hook { cp, secret: secret.map(Arc::new) };
    Router::new()
        .route("/api/webhook", post(receive))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .layer(axum::middleware::from_fn_with_state(hook.clone(), refuse_declared_oversize))
        .with_state(hook)
}

/// Refuses a declared `Content-Length` above [`MAX_PAYLOAD_BYTES`] before any of the body is
/// read, so a client that sent `Expect: 100-continue` gets the 413 instead of being asked for
/// the body; a body that declares no length is cut off at the cap by [`DefaultBodyLimit`].
async fn refuse_declared_oversize(State(hook): State<Hook>, request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64) {
        count(&hook, "too_large");
        return reply(StatusCode::PAYLOAD_TOO_LARGE, format!("payload larger than {MAX_PAYLOAD_BYTES} bytes"));
    }
    next.run(request).await
}

fn reply(code: StatusCode, message: impl Into<String>) -> Response {
    (code, message.into()).into_response()
}

fn count(hook: &Hook, outcome: &str) {
    hook.cp.metrics.webhooks.get_or_create(&crate::metrics::Metrics::outcome(outcome)).inc();
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_ok(secret: &Secret, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else { return false };
    let Ok(sig) = hex::decode(hex_sig.trim()) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    ring::hmac::verify(&key, body, &sig).is_ok()
}

/// Whether GitLab's token header equals the secret (constant time).
pub fn gitlab_token_ok(secret: &Secret, token: Option<&str>) -> bool {
    token.is_some_and(|t| {
        let (a, b) = (t.as_bytes(), secret.expose().as_bytes());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    })
}

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let Some(secret) = hook.secret.as_deref() else {
        count(&hook, "disabled");
        return reply(
            StatusCode::FORBIDDEN,
            "webhooks are disabled: start the control plane with --webhook-secret-file",
        );
    };
    let (provider, event) = if let Some(e) = header("x-github-event") {
        if !github_signature_ok(secret, &body, header("x-hub-signature-256")) {
            warn!(provider = "github", "webhook refused: missing or wrong X-Hub-Signature-256");
            count(&hook, "unauthorized");
            return reply(StatusCode::UNAUTHORIZED, "signature does not match");
        }
        (Provider::GitHub, e)
    } else if let Some(e) = header("x-gitlab-event") {
        if !gitlab_token_ok(secret, header("x-gitlab-token")) {
            warn!(provider = "gitlab", "webhook refused: missing or wrong X-Gitlab-Token");
            count(&hook, "unauthorized");
            return reply(StatusCode::UNAUTHORIZED, "token does not match");
        }
        (Provider::GitLab, e)
    } else {
        count(&hook, "bad_request");
        return reply(StatusCode::BAD_REQUEST, "not a GitHub or GitLab webhook (no X-GitHub-Event or X-Gitlab-Event)");
    };
    if provider == Provider::GitHub && event == "ping" {
        return reply(StatusCode::OK, "pong");
    }
    let push = match parse_push(provider, event, &body) {
        Ok(p) => p,
        Err(bosun_core::webhook::WebhookError::NotPush(e)) => {
            count(&hook, "ignored");
            return reply(StatusCode::ACCEPTED, format!("ignored: {e} is not a push"));
        }
        Err(e) => {
            warn!(?provider, error = %e, "webhook payload refused");
            count(&hook, "bad_request");
            return reply(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let apps = hook.cp.apps_touched_by(&push);
    info!(?provider, git_ref = %push.git_ref, repos = ?push.repos, applications = ?apps, "push received");
    if apps.is_empty() {
        count(&hook, "ignored");
        return reply(StatusCode::ACCEPTED, "ignored: no application follows this repository, ref and path");
    }
    let cp = hook.cp.clone();
    let names = apps.clone();
    count(&hook, "refreshing");
    tokio::spawn(async move { cp.refresh_apps(&names).await });
    reply(StatusCode::ACCEPTED, format!("refreshing: {}", apps.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let secret = Secret::new("s3cret");
        let body = br#"{"ref":"refs/heads/main"}"#;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let good = format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()));
        assert!(github_signature_ok(&secret, body, Some(&good)));
        assert!(!github_signature_ok(&secret, b"{}", Some(&good)), "another body");
        assert!(!github_signature_ok(&Secret::new("other"), body, Some(&good)), "another secret");
        assert!(!github_signature_ok(&secret, body, None));
        assert!(!github_signature_ok(&secret, body, Some("sha1=abc")));
        assert!(!github_signature_ok(&secret, body, Some("sha256=zz")));
        assert!(gitlab_token_ok(&secret, Some("s3cret")));
        assert!(!gitlab_token_ok(&secret, Some("s3cres")));
        assert!(!gitlab_token_ok(&secret, Some("")));
        assert!(!gitlab_token_ok(&secret, None));
    }
}
