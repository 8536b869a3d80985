//! The web dashboard: server-rendered pages over the model's views, served over TLS on
//! `--ui-addr` by the control plane itself (no extra process, no JavaScript build).
//!
//! - Sign-in with an admin or readonly token, or with the client certificate of an admin
//!   credential presented on the connection (optional TLS client auth against the control
//!   plane's CA), gives a signed session cookie ([`session`]):
//!   HttpOnly, Secure, SameSite=Strict, expiring; every state-changing request also carries
//!   the session's CSRF token.
//! - Every action is the admin API's own call ([`crate::api::AdminApi`]) made for the session's
//!   principal: the same roles, the same audit line as from the CLI or grpcurl.
//! - Live: `/events` streams a server-sent event when the store revision this replica has
//!   applied moves, at most [`EVENT_INTERVAL`] apart, so a fleet-wide rollout cannot flood a
//!   page; the page's script then fetches its own `<main>` again.
//! - Pages are rendered by [`pages`] (pure functions of views); assets are embedded.

pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use bosun_proto::v1 as pb;
use maud::Markup;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use crate::api::AdminApi;
use crate::auth::{Authenticated, Principal};
use crate::https::PeerCertificate;
use crate::model::{ControlPlane, now};
use pages::{FleetQuery, ListQuery, Section, Viewer};
use session::Session;

/// Live updates one page receives are at least this far apart: ≤ 4 in any second even when
/// network jitter brings two closer together on arrival.
pub const EVENT_INTERVAL: Duration = Duration::from_millis(300);

/// The header the page's script sends to get only a page's `<main>`.
const FRAGMENT_HEADER: &str = "x-bosun-fragment";

const CSS: &str = include_str!("../../assets/ui.css");
const JS: &str = include_str!("../../assets/ui.js");

/// What pages may load: only this origin's own script and style, nothing inline, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Ui {
    cp: Arc<ControlPlane>,
    api: AdminApi,
    session_ttl: Duration,
}

type Shared = Arc<Ui>;

/// The dashboard's routes.
pub fn router(cp: Arc<ControlPlane>, session_ttl: Duration) -> Router {
    let ui = Arc::new(Ui { api: AdminApi(cp.clone()), cp, session_ttl });
    Router::new()
        .route("/", get(list))
        .route("/login", get(login_page).post(login))
        .route("/login/certificate", post(login_certificate))
        .route("/logout", post(logout))
        .route("/apps/{name}", get(app))
        .route("/apps/{name}/{action}", post(app_action))
        .route("/apps/{name}/rollback/{id}", post(rollback))
        .route("/apps/{name}/rollout/{action}", post(rollout))
        .route("/fleet", get(fleet))
        .route("/clusters", get(clusters))
        .route("/clusters/{name}/revoke", post(revoke))
        .route("/events", get(events))
        .route("/assets/ui.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/ui.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::map_request(host_from_authority))
        .with_state(ui)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// HTTP/2 requests name their host in the `:authority` pseudo-header (the URI), not in
/// `Host`: give them a `Host` so that origin checks read one place.
async fn host_from_authority(mut req: axum::extract::Request) -> axum::extract::Request {
    if !req.headers().contains_key(header::HOST)
        && let Some(v) = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    req
}

/// Headers every answer carries.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Why a request has no usable session.
enum NoSession {
    /// No cookie at all.
    Missing,
    /// A cookie that does not (or no longer) opens a session.
    Invalid(String),
}

impl Ui {
    /// The session and principal of a request, checked against the credential's current state.
    fn session(&self, headers: &HeaderMap) -> Result<(Session, Principal), NoSession> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::cookie_value)
            .ok_or(NoSession::Missing)?;
        let now = now();
        let s = Session::decode(value, self.cp.secret_box(), now).map_err(|e| NoSession::Invalid(e.to_string()))?;
        let who =
            s.principal(self.cp.credential(&s.name).as_ref(), now).map_err(|e| NoSession::Invalid(e.to_string()))?;
        Ok((s, who))
    }

    /// A page for a signed-in viewer, or a redirect to sign in.
    fn page(
        &self,
        headers: &HeaderMap,
        title: &str,
        section: Section,
        body: impl FnOnce(&Viewer<'_>) -> Markup,
    ) -> Response {
        let (s, who) = match self.session(headers) {
            Ok(x) => x,
            Err(_) => return Redirect::to("/login").into_response(),
        };
        let csrf = s.csrf(self.cp.secret_box());
        let viewer = Viewer { who: &who, csrf: &csrf, now: now() };
        let main = body(&viewer);
        if headers.contains_key(FRAGMENT_HEADER) {
            return html(main);
        }
        html(pages::layout(title, section, &viewer, main))
    }

    /// The principal of a state-changing request: a valid session, the same origin, and the
    /// session's CSRF token. Refusals are audited.
    fn writer(&self, headers: &HeaderMap, csrf: &str, action: &str, object: &str) -> Result<Principal, Box<Response>> {
        let (s, who) = match self.session(headers) {
            Ok(x) => x,
            Err(e) => {
                let why = match e {
                    NoSession::Missing => "no session".to_string(),
                    NoSession::Invalid(why) => why,
                };
                warn!(target: "bosun::audit", action, object, outcome = "Unauthenticated", reason = %why, "audit: dashboard call without a session refused");
                return Err(Box::new(refusal(
                    StatusCode::FORBIDDEN,
                    "Not signed in",
                    "Sign in again; the session is missing or ended.",
                )));
            }
        };
        if !same_origin(headers) || !s.csrf_ok(self.cp.secret_box(), csrf) {
            crate::api::audit(&self.cp, &who, action, object, "CsrfRejected");
            return Err(Box::new(refusal(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's CSRF token is missing or does not belong to this session (or the request came from another site). Reload the page and try again.",
            )));
        }
        Ok(who)
    }
}

/// Whether the request's `Origin` (when the browser sends one) is this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.strip_prefix("https://").is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

fn html(m: Markup) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], m.into_string()).into_response()
}

fn refusal(code: StatusCode, title: &str, detail: &str) -> Response {
    (code, html(pages::standalone(title, pages::problem(title, detail)))).into_response()
}

/// The HTTP answer for an admin call's gRPC status.
fn from_status(s: tonic::Status) -> Response {
    use tonic::Code;
    let code = match s.code() {
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => StatusCode::BAD_REQUEST,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refusal(code, "The request failed", s.message())
}

/// A gRPC request made for a signed-in principal.
fn as_principal<T>(who: &Principal, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.extensions_mut().insert(Authenticated(who.clone()));
    req
}

impl Ui {
    /// The admin credential the connection's client certificate stands for, if it is one.
    fn certificate_principal(&self, cert: &PeerCertificate) -> Option<Result<Principal, String>> {
        let leaf = cert.0.as_ref()?;
        let Some(peer) = self.cp.pki.peer(leaf) else {
            return Some(Err("the client certificate names no bosun identity".into()));
        };
        Some(self.cp.authenticate_cert(&peer).map_err(|e| e.to_string()))
    }
}

async fn login_page(
    State(ui): State<Shared>,
    headers: HeaderMap,
    cert: Option<axum::Extension<PeerCertificate>>,
) -> Response {
    if ui.session(&headers).is_ok() {
        return Redirect::to("/").into_response();
    }
    let cert = cert.map(|c| c.0).unwrap_or_default();
    let named = ui.certificate_principal(&cert).and_then(Result::ok).map(|p| p.name);
    html(pages::login(None, named.as_deref()))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

fn sign_in_refused(why: &str) -> Response {
    warn!(target: "bosun::audit", action = "SignIn", outcome = "Unauthenticated", reason = %why, "audit: dashboard sign-in refused");
    (
        StatusCode::UNAUTHORIZED,
        html(pages::login(Some("Those credentials are not valid (unknown, expired or deleted)."), None)),
    )
        .into_response()
}

async fn login(State(ui): State<Shared>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return refusal(StatusCode::FORBIDDEN, "Request refused", "Sign-in must come from this site's own page.");
    }
    match ui.cp.authenticate_token(f.token.trim()) {
        Ok(who) => start_session(&ui, who),
        Err(e) => sign_in_refused(&e.to_string()),
    }
}

/// Sign-in with the client certificate the browser presented on this connection (one from
/// `bosun credential create --cert-out`), as the admin API accepts it.
async fn login_certificate(
    State(ui): State<Shared>,
    headers: HeaderMap,
    cert: Option<axum::Extension<PeerCertificate>>,
) -> Response {
    if !same_origin(&headers) {
        return refusal(StatusCode::FORBIDDEN, "Request refused", "Sign-in must come from this site's own page.");
    }
    match ui.certificate_principal(&cert.map(|c| c.0).unwrap_or_default()) {
        Some(Ok(who)) => start_session(&ui, who),
        Some(Err(why)) => sign_in_refused(&why),
        None => sign_in_refused("no client certificate was presented"),
    }
}

/// A session for a principal that just proved who it is: the signed cookie, and the audit line.
fn start_session(ui: &Shared, who: Principal) -> Response {
    let Some(cred) = ui.cp.credential(&who.name) else { return sign_in_refused("credential vanished") };
    let random = match ui.cp.secret_box().random(18) {
        Ok(r) => r,
        Err(e) => return refusal(StatusCode::SERVICE_UNAVAILABLE, "Sign-in failed", &e.to_string()),
    };
    let ttl = ui.session_ttl.as_secs() as i64;
    let s = Session::new(&cred, now(), ttl, &random);
    crate::api::audit(&ui.cp, &who, "SignIn", "dashboard", "ok");
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&s.encode(ui.cp.secret_box()), ttl)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    /// The Sync dialog's "Prune" box (present when ticked).
    #[serde(default)]
    prune: Option<String>,
}

async fn logout(State(ui): State<Shared>, headers: HeaderMap, Form(f): Form<ActionForm>) -> Response {
    // A forged sign-out is harmless but still needs the token, like every POST.
    if let Err(r) = ui.writer(&headers, &f.csrf, "SignOut", "dashboard") {
        return *r;
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn list(State(ui): State<Shared>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    ui.page(&headers, "Applications", Section::Applications, |v| {
        pages::app_list(&ui.cp.apps(), &ui.cp.clusters(), &q, v)
    })
}

#[derive(Deserialize)]
struct AppQuery {
    #[serde(default)]
    cluster: Option<String>,
}

async fn app(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Response {
    let found = ui.cp.app(&name);
    let history = ui.cp.history(&name).unwrap_or_default();
    let title = name.clone();
    let resp = ui.page(&headers, &title, Section::Applications, |v| match &found {
        Ok(a) => pages::app_page(a, &history, q.cluster.as_deref(), v),
        Err(e) => pages::problem("Application not found", &e.to_string()),
    });
    if found.is_err() && resp.status().is_success() {
        return (StatusCode::NOT_FOUND, resp).into_response();
    }
    resp
}

async fn fleet(State(ui): State<Shared>, headers: HeaderMap, Query(q): Query<FleetQuery>) -> Response {
    ui.page(&headers, "Fleet", Section::Fleet, |v| pages::fleet(&ui.cp.apps(), &ui.cp.clusters(), &q, v))
}

async fn clusters(State(ui): State<Shared>, headers: HeaderMap) -> Response {
    ui.page(&headers, "Clusters", Section::Clusters, |v| pages::clusters_page(&ui.cp.clusters(), v))
}

/// Sync, refresh or delete an Application.
async fn app_action(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    use pb::admin_service_server::AdminService;
    let call = match action.as_str() {
        "sync" => "SyncApplication",
        "refresh" => "RefreshApplication",
        "delete" => "DeleteApplication",
        _ => return refusal(StatusCode::NOT_FOUND, "Unknown action", "Use sync, refresh or delete."),
    };
    let who = match ui.writer(&headers, &f.csrf, call, &name) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let back = Redirect::to(&format!("/apps/{name}")).into_response();
    let result = match action.as_str() {
        "sync" => ui
            .api
            .sync_application(as_principal(
                &who,
                pb::SyncApplicationRequest { name: name.clone(), prune: f.prune.is_some() },
            ))
            .await
            .map(|_| back),
        "refresh" => ui
            .api
            .refresh_application(as_principal(&who, pb::RefreshApplicationRequest { name: name.clone() }))
            .await
            .map(|_| back),
        _ => {
            if f.confirm.trim() != name {
                return refusal(StatusCode::BAD_REQUEST, "Not deleted", "Type the Application's name to confirm.");
            }
            ui.api
                .delete_application(as_principal(
                    &who,
                    pb::DeleteApplicationRequest { name: name.clone(), cascade: None },
                ))
                .await
                .map(|_| Redirect::to("/").into_response())
        }
    };
    result.unwrap_or_else(from_status)
}

async fn rollback(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, u64)>,
    Form(f): Form<ActionForm>,
) -> Response {
    use pb::admin_service_server::AdminService;
    let who = match ui.writer(&headers, &f.csrf, "RollbackApplication", &format!("{name}@{id}")) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    ui.api
        .rollback_application(as_principal(&who, pb::RollbackApplicationRequest { name: name.clone(), id }))
        .await
        .map(|_| Redirect::to(&format!("/apps/{name}")).into_response())
        .unwrap_or_else(from_status)
}

async fn rollout(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    use pb::admin_service_server::AdminService;
    let who = match ui.writer(&headers, &f.csrf, "RolloutApplication", &format!("{name} {action}")) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    ui.api
        .rollout_application(as_principal(&who, pb::RolloutApplicationRequest { name: name.clone(), action }))
        .await
        .map(|_| Redirect::to(&format!("/apps/{name}")).into_response())
        .unwrap_or_else(from_status)
}

async fn revoke(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    use pb::admin_service_server::AdminService;
    let who = match ui.writer(&headers, &f.csrf, "RevokeCluster", &name) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    ui.api
        .revoke_cluster(as_principal(&who, pb::RevokeClusterRequest { name }))
        .await
        .map(|_| Redirect::to("/clusters").into_response())
        .unwrap_or_else(from_status)
}

/// Server-sent events: `change` (with the store revision) whenever this replica's view moved,
/// coalesced to at most one per [`EVENT_INTERVAL`]. Ends when the session does.
async fn events(State(ui): State<Shared>, headers: HeaderMap) -> Response {
    let (s, _) = match ui.session(&headers) {
        Ok(x) => x,
        Err(_) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    };
    let mut changes = ui.cp.changes();
    let mut stopping = ui.cp.stopping();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(1);
    tokio::spawn(async move {
        // The page rendered what was current when it loaded; say so once, then on changes.
        let first = *changes.borrow_and_update();
        if tx.send(Ok(Event::default().event("hello").data(first.to_string()))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = stopping.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
            if s.principal(ui.cp.credential(&s.name).as_ref(), now()).is_err() || s.expires_at <= now() {
                let _ = tx.send(Ok(Event::default().event("ended").data("the session ended; sign in again"))).await;
                return;
            }
            let rev = *changes.borrow_and_update();
            if tx.send(Ok(Event::default().event("change").data(rev.to_string()))).await.is_err() {
                return;
            }
            tokio::time::sleep(EVENT_INTERVAL).await;
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
