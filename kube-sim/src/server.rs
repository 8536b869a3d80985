//! The HTTP(S) front of a simulated cluster: routing, authentication, verbs, watch streams.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::faults::{FaultSettings, Faults, WatchSignal};
use crate::patch::{self, PatchKind};
use crate::path::{self, ResourcePath, Target};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{DeleteOpts, EventType, Store, WriteOpts};
use crate::table::{self, Include};

/// Shared state of one simulated cluster's HTTP front.
pub struct ClusterState {
    pub name: String,
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    /// Requests answered, by verb and resource.
    pub requests: Arc<crate::requests::Requests>,
    /// When set, requests must present a client certificate signed by the CA or one of
    /// these bearer tokens.
    pub auth: Option<Vec<String>>,
    pub bookmark_interval: Duration,
    pub address: String,
}

/// Per-connection facts: whether the peer presented a verified client certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnAuth {
    pub client_cert: bool,
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, &e.to_status());
    if e.code == 429 {
        resp.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("static header"));
    }
    resp
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query().map(|q| serde_urlencoded_pairs(q).into_iter().collect()).unwrap_or_default()
}

fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{q}").parse().unwrap_or_default())
        .map(|x| x.0)
        .unwrap_or_default()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// The entry point: every request to a simulated cluster.
pub async fn handle(
    State(st): State<Arc<ClusterState>>,
    conn: Option<Extension<ConnAuth>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(tokens) = &st.auth {
        let cert = conn.is_some_and(|c| c.client_cert);
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| tokens.iter().any(|x| x == t));
        if !cert && !bearer {
            return error_response(&ApiError::unauthorized());
        }
    }
    let path = uri.path().to_string();
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return (StatusCode::OK, "ok").into_response(),
        "/version" => return json_response(StatusCode::OK, &discovery::version()),
        "/_sim/faults" => return faults_endpoint(&st.faults, &method, &body),
        "/_sim/requests" => {
            if method == Method::DELETE {
                st.requests.reset();
            }
            return json_response(StatusCode::OK, &json!(st.requests.snapshot()));
        }
        "/_sim/stats" => {
            return json_response(
                StatusCode::OK,
                &json!({"cluster": st.name, "objects": st.store.object_count(), "resourceVersion": st.store.resource_version()}),
            );
        }
        _ => {}
    }
    let result = match path::parse(&path) {
        Some(Target::Discovery { group, version, legacy }) => {
            discovery_doc(&st, group.as_deref(), version.as_deref(), legacy)
        }
        Some(Target::Resource(rp)) => return resource(st, method, &uri, &headers, body, rp).await,
        None => Err(ApiError::new(404, "NotFound", "the server could not find the requested resource")),
    };
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

fn faults_endpoint(faults: &Faults, method: &Method, body: &Bytes) -> Response {
    match *method {
        Method::GET => json_response(StatusCode::OK, &serde_json::to_value(faults.settings()).unwrap_or_default()),
        Method::PUT | Method::POST => match serde_json::from_slice::<Value>(body) {
            Ok(v) if v["action"] == "drop-watches" => {
                faults.drop_watches();
                StatusCode::NO_CONTENT.into_response()
            }
            Ok(v) if v["action"] == "expire-watches" => {
                faults.expire_watches();
                StatusCode::NO_CONTENT.into_response()
            }
            Ok(v) => match serde_json::from_value::<FaultSettings>(v) {
                Ok(s) => {
                    faults.set(s);
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => error_response(&ApiError::bad_request(format!("invalid fault settings: {e}"))),
            },
            Err(e) => error_response(&ApiError::bad_request(format!("invalid fault settings: {e}"))),
        },
        Method::DELETE => {
            faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error_response(&ApiError::method_not_allowed("use GET, PUT or DELETE")),
    }
}

fn discovery_doc(st: &ClusterState, group: Option<&str>, version: Option<&str>, legacy: bool) -> ApiResult<Value> {
    let reg = st.store.registry();
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    match (legacy, group, version) {
        (true, None, None) => Ok(discovery::api_versions(&st.address)),
        (true, None, Some(v)) => discovery::resource_list(&reg, "", v).ok_or_else(not_found),
        (false, None, _) => Ok(discovery::api_group_list(&reg)),
        (false, Some(g), None) => discovery::api_group(&reg, g).ok_or_else(not_found),
        (false, Some(g), Some(v)) => discovery::resource_list(&reg, g, v).ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

/// Parses a request body as JSON, or as YAML for apply patches.
fn parse_body(body: &Bytes, content_type: &str) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "kube-sim does not decode {content_type} bodies; send JSON or YAML (kubectl apply -f, kubectl apply --server-side -f)"
            ),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if content_type.contains("yaml") => {
            let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})")))
        }
        Err(e) => Err(ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))),
    }
}

fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    // The real server derives the default manager from the User-Agent's first segment.
    let ua = headers.get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or("unknown");
    ua.split('/').next().unwrap_or("unknown").to_string()
}

/// The object as served at the resource's version: as stored when its `apiVersion` is
/// already that one, else a copy that says it.
fn with_version<'a>(rt: &ResourceType, o: &'a Value) -> std::borrow::Cow<'a, Value> {
    let version = rt.api_version();
    if o["apiVersion"].as_str() == Some(version.as_str()) {
        return std::borrow::Cow::Borrowed(o);
    }
    let mut o = o.clone();
    o["apiVersion"] = json!(version);
    std::borrow::Cow::Owned(o)
}

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Full,
    /// `as=Table`, what `kubectl get` prints.
    Table,
    /// `as=PartialObjectMetadata(List)`: metadata-only requests.
    Metadata,
}

fn format_of(headers: &HeaderMap) -> Format {
    let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if accept.contains("as=Table") {
        Format::Table
    } else if accept.contains("as=PartialObjectMetadata") {
        Format::Metadata
    } else {
        Format::Full
    }
}

fn metadata_only(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
}

fn include_param(q: &HashMap<String, String>) -> Include {
    match q.get("includeObject").map(String::as_str) {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    }
}

fn verb_of(method: &Method, rp: &ResourcePath, q: &HashMap<String, String>) -> &'static str {
    match (method.as_str(), rp.name.is_some()) {
        ("GET", true) if truthy(q, "watch") => "watch",
        ("GET", true) => "get",
        ("GET", false) if truthy(q, "watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

async fn resource(
    st: Arc<ClusterState>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    rp: ResourcePath,
) -> Response {
    let q = query(uri);
    let verb = verb_of(&method, &rp, &q);
    st.requests.record(verb, &rp.group, &rp.plural);
    let latency = st.faults.latency_for(&rp.group, &rp.plural);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(e) = st.faults.check(verb) {
        return error_response(&e);
    }
    let Some(rt) = st.store.resolve(&rp.group, &rp.version, &rp.plural) else {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    };
    if rp.namespace.is_some() && !rt.namespaced {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    if let Err(e) = st.faults.check_scope(verb, &rp.group, &rp.plural, rt.namespaced, rp.namespace.as_deref()) {
        return error_response(&e);
    }
    if verb == "watch" {
        return watch(st, rt, rp, q, format_of(headers));
    }
    let result = dispatch(&st, &rt, &rp, verb, &q, headers, &body);
    match result {
        Ok((status, v))
            if format_of(headers) == Format::Metadata
                && (verb == "get" || verb == "list")
                && status == StatusCode::OK =>
        {
            if verb == "get" {
                return json_response(status, &metadata_only(&v));
            }
            let items: Vec<Value> = v["items"].as_array().into_iter().flatten().map(metadata_only).collect();
            json_response(
                status,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"], "items": items}),
            )
        }
        Ok((status, v))
            if format_of(headers) == Format::Table && (verb == "get" || verb == "list") && status == StatusCode::OK =>
        {
            let items: Vec<Value> =
                if verb == "list" { v["items"].as_array().cloned().unwrap_or_default() } else { vec![v.clone()] };
            let refs: Vec<&Value> = items.iter().collect();
            let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            let mut t = table::table(&rt.kind, &refs, &rv, include_param(&q));
            if let Some(c) = v["metadata"].get("continue") {
                t["metadata"]["continue"] = c.clone();
            }
            json_response(status, &t)
        }
        Ok((status, v)) => json_response(status, &v),
        Err(e) => error_response(&e),
    }
}

fn dispatch(
    st: &ClusterState,
    rt: &ResourceType,
    rp: &ResourcePath,
    verb: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<(StatusCode, Value)> {
    let store = &st.store;
    let ns = rp.namespace.as_deref();
    if rt.namespaced && ns.is_none() && !matches!(verb, "list" | "deletecollection") {
        return Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    let sub = rp.subresource.as_deref();
    match sub {
        None => {}
        Some("status") if rt.has_status => {}
        Some("scale") if rt.has_scale => return scale(st, rt, rp, verb, q, headers, body),
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({other})"),
            ));
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or("application/json");
    let opts = WriteOpts {
        manager: manager(q, headers),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        force: truthy(q, "force"),
    };
    let name = rp.name.as_deref().unwrap_or_default();
    match verb {
        "get" => Ok((StatusCode::OK, with_version(rt, &*store.get(rt, ns, name)?).into_owned())),
        "list" => {
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default())?;
            let limit = q.get("limit").and_then(|l| l.parse().ok());
            let page = store.list(rt, ns, &labels, &fields, limit, q.get("continue").map(String::as_str))?;
            let items: Vec<Value> = page.items.iter().map(|o| with_version(rt, o).into_owned()).collect();
            let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(c) = page.continue_token {
                meta["continue"] = json!(c);
                meta["remainingItemCount"] = json!(page.remaining.unwrap_or(0));
            }
            Ok((
                StatusCode::OK,
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": items}),
            ))
        }
        "create" => {
            if rp.name.is_some() {
                return Err(ApiError::method_not_allowed("POST is not allowed on a named resource"));
            }
            let obj = parse_body(body, content_type)?;
            Ok((StatusCode::CREATED, with_version(rt, &*store.create(rt, ns, obj, &opts)?).into_owned()))
        }
        "update" => {
            let obj = parse_body(body, content_type)?;
            Ok((StatusCode::OK, with_version(rt, &*store.update(rt, ns, name, obj, sub, &opts)?).into_owned()))
        }
        "patch" => {
            let kind = PatchKind::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let p = parse_body(body, content_type)?;
            if kind == PatchKind::Apply {
                if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
                    return Err(ApiError::bad_request(
                        "PATCH, application/apply-patch+yaml requests must supply fieldManager",
                    ));
                }
                let existed = store.get(rt, ns, name).is_ok();
                let out = store.apply(rt, ns, name, sub, p, &opts)?;
                let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
                return Ok((code, with_version(rt, &out).into_owned()));
            }
            let out = store.patch(rt, ns, name, sub, &opts, |rt, live| patch::apply_patch(kind, rt, live, &p))?;
            Ok((StatusCode::OK, with_version(rt, &out).into_owned()))
        }
        "delete" => {
            let body_opts: Value =
                if body.is_empty() { json!({}) } else { serde_json::from_slice(body).unwrap_or(json!({})) };
            let propagation = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| body_opts["propagationPolicy"].as_str().map(str::to_string));
            if let Some(p) = &propagation
                && !matches!(p.as_str(), "Foreground" | "Background" | "Orphan")
            {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    vec![(
                        "propagationPolicy".into(),
                        format!(
                            "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                        ),
                    )],
                ));
            }
            let dopts = DeleteOpts {
                propagation,
                dry_run: q.get("dryRun").is_some_and(|v| v == "All")
                    || body_opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All")),
                precondition_uid: body_opts["preconditions"]["uid"].as_str().map(str::to_string),
                precondition_rv: body_opts["preconditions"]["resourceVersion"].as_str().map(str::to_string),
            };
            let out = store.delete(rt, ns, name, &dopts)?;
            let still_there = store.get(rt, ns, name).is_ok();
            if still_there {
                Ok((StatusCode::OK, with_version(rt, &out).into_owned()))
            } else {
                Ok((
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": out["metadata"]["uid"]}}),
                ))
            }
        }
        "deletecollection" => {
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default())?;
            let page = store.list(rt, ns, &labels, &fields, None, None)?;
            let mut deleted = Vec::new();
            for o in page.items {
                let n = o["metadata"]["name"].as_str().unwrap_or_default();
                let ons = o["metadata"]["namespace"].as_str();
                if let Ok(d) = store.delete(rt, ons, n, &DeleteOpts::default()) {
                    deleted.push(with_version(rt, &d).into_owned());
                }
            }
            Ok((
                StatusCode::OK,
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb})"
        ))),
    }
}

fn scale_of(rt: &ResourceType, o: &Value) -> Value {
    let selector = LabelSelectorString::of(&o["spec"]["selector"]);
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "uid": o["metadata"]["uid"],
                     "resourceVersion": o["metadata"]["resourceVersion"], "creationTimestamp": o["metadata"]["creationTimestamp"]},
        "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(if rt.kind == "Deployment" { 1 } else { 0 })},
        "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector}})
}

struct LabelSelectorString;

impl LabelSelectorString {
    fn of(sel: &Value) -> String {
        let mut parts: Vec<String> = sel["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            let vals: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let key = e["key"].as_str().unwrap_or_default();
            parts.push(match e["operator"].as_str() {
                Some("In") => format!("{key} in ({})", vals.join(",")),
                Some("NotIn") => format!("{key} notin ({})", vals.join(",")),
                Some("Exists") => key.to_string(),
                _ => format!("!{key}"),
            });
        }
        parts.join(",")
    }
}

fn scale(
    st: &ClusterState,
    rt: &ResourceType,
    rp: &ResourcePath,
    verb: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<(StatusCode, Value)> {
    let ns = rp.namespace.as_deref();
    let name = rp.name.as_deref().unwrap_or_default();
    let current = st.store.get(rt, ns, name)?;
    let scale_now = scale_of(rt, &current);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or("application/json");
    let desired = match verb {
        "get" => return Ok((StatusCode::OK, scale_now)),
        "update" => parse_body(body, content_type)?,
        "patch" => {
            let kind = PatchKind::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let p = parse_body(body, content_type)?;
            match kind {
                PatchKind::Json | PatchKind::Apply => {
                    let mut s = scale_now.clone();
                    if kind == PatchKind::Json {
                        let jp: json_patch::Patch =
                            serde_json::from_value(p).map_err(|e| ApiError::bad_request(e.to_string()))?;
                        json_patch::patch(&mut s, &jp).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
                    } else {
                        json_patch::merge(&mut s, &p);
                    }
                    s
                }
                PatchKind::Merge | PatchKind::Strategic => {
                    let mut s = scale_now.clone();
                    json_patch::merge(&mut s, &p);
                    s
                }
            }
        }
        _ => {
            return Err(ApiError::method_not_allowed("scale supports get, update and patch"));
        }
    };
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::invalid("Scale", name, vec![("spec.replicas".into(), "Required value".into())]))?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            name,
            vec![("spec.replicas".into(), "Invalid value: must be greater than or equal to 0".into())],
        ));
    }
    let mgr = manager(q, headers);
    let out = st.store.modify(rt, ns, name, &mgr, |o| o["spec"]["replicas"] = json!(replicas))?;
    Ok((StatusCode::OK, scale_of(rt, &out)))
}

/// One line of a watch stream: `{"type": kind, "object": object}` and a newline.
fn watch_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut s = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn error_event(e: &ApiError) -> Bytes {
    watch_line("ERROR", &e.to_status())
}

/// A watch stream: replays history after `resourceVersion` (or lists first when unset),
/// then follows changes; bookmarks, `timeoutSeconds`, and injected drops/expiry.
fn watch(
    st: Arc<ClusterState>,
    rt: ResourceType,
    rp: ResourcePath,
    q: HashMap<String, String>,
    format: Format,
) -> Response {
    let labels = match LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default()) {
        Ok(l) => l,
        Err(e) => return error_response(&e),
    };
    let mut fields = match FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default()) {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    if let Some(n) = &rp.name {
        fields = match FieldSelector::parse(&format!("metadata.name={n}")) {
            Ok(f) => f,
            Err(e) => return error_response(&e),
        };
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let timeout = Duration::from_secs(q.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800));
    let bookmarks = truthy(&q, "allowWatchBookmarks");
    let send_initial = truthy(&q, "sendInitialEvents");
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let include = include_param(&q);
    tokio::spawn(async move {
        let ns = rp.namespace.clone();
        let matches = |o: &Value| {
            ns.as_deref().is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
                && labels.matches(&o["metadata"]["labels"])
                && fields.matches(o)
        };
        let render = |kind: &str, o: &Value| {
            let o = with_version(&rt, o);
            match format {
                Format::Table => {
                    let rv = o["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                    watch_line(kind, &table::table(&rt.kind, &[&o], rv, include))
                }
                Format::Metadata => watch_line(kind, &metadata_only(&o)),
                Format::Full => watch_line(kind, &o),
            }
        };
        let mut signal = st.faults.watch_signal();
        signal.borrow_and_update();
        let explicit = !(rv_param.is_empty() || rv_param == "0" || send_initial);
        let mut last_rv: u64;
        let (backlog, mut rx) = if explicit {
            let Ok(rv) = rv_param.parse::<u64>() else {
                let _ = tx
                    .send(Ok(error_event(&ApiError::bad_request(format!("invalid resource version {rv_param:?}")))))
                    .await;
                return;
            };
            last_rv = rv;
            match st.store.watch_from(rv) {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Ok(error_event(&e))).await;
                    return;
                }
            }
        } else {
            let page = match st.store.list(&rt, ns.as_deref(), &labels, &fields, None, None) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Ok(error_event(&e))).await;
                    return;
                }
            };
            last_rv = page.resource_version;
            let sub = match st.store.watch_from(page.resource_version) {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Ok(error_event(&e))).await;
                    return;
                }
            };
            for o in &page.items {
                if tx.send(Ok(render("ADDED", o))).await.is_err() {
                    return;
                }
            }
            if send_initial {
                let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(Ok(watch_line("BOOKMARK", &bm))).await.is_err() {
                    return;
                }
            }
            sub
        };
        let key = rt.key();
        let mut pending: std::collections::VecDeque<Arc<crate::store::Event>> = backlog.into();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark_tick = tokio::time::interval(st.bookmark_interval);
        bookmark_tick.tick().await;
        loop {
            let ev = if let Some(e) = pending.pop_front() {
                e
            } else {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(e) => e,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let _ = tx.send(Ok(error_event(&ApiError::gone("the watch fell behind; too old resource version")))).await;
                            return;
                        }
                        Err(_) => return,
                    },
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = bookmark_tick.tick(), if bookmarks => {
                        let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                        if tx.send(Ok(watch_line("BOOKMARK", &bm))).await.is_err() { return; }
                        continue;
                    }
                    changed = signal.changed() => {
                        if changed.is_err() { return; }
                        let sig = *signal.borrow_and_update();
                        match sig {
                            WatchSignal::Drop(_) => return,
                            WatchSignal::Expire(_) => {
                                let _ = tx.send(Ok(error_event(&ApiError::gone("too old resource version (expired by kube-sim)")))).await;
                                return;
                            }
                            WatchSignal::None => continue,
                        }
                    }
                    _ = tx.closed() => return,
                }
            };
            if ev.rv <= last_rv {
                continue;
            }
            last_rv = ev.rv;
            if ev.res != key {
                continue;
            }
            let now_matches = matches(&ev.object);
            let kind = match ev.kind {
                EventType::Modified => {
                    let was = ev.old.as_deref().is_some_and(&matches);
                    match (was, now_matches) {
                        (true, true) => Some("MODIFIED"),
                        (false, true) => Some("ADDED"),
                        (true, false) => Some("DELETED"),
                        (false, false) => None,
                    }
                }
                k => now_matches.then_some(k.as_str()),
            };
            if let Some(kind) = kind
                && tx.send(Ok(render(kind, &ev.object))).await.is_err()
            {
                return;
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static header"));
    resp
}
