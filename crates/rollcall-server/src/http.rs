//! The HTTP API: batch status, channel state, login history, REST broadcast, metrics, health,
//! readiness and the demo page. Every refusal is a 4xx/5xx with a JSON body
//! `{"message": …, "error": …}` ([`ErrorBody`]); who may call what is in [`crate::http_auth`].
//! The request and response types here are the ones the OpenAPI document is generated from
//! ([`crate::openapi`]), so the document cannot drift from the handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rollcall_core::{Key, QueryError, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::http_auth::{Caller, MetricsAuth, StatusRead, authenticate, require};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::session::topic_for;

/// The JSON body of every error answer: Supabase's `message` plus a specific `error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Short class of the error, as Supabase words it (`Unauthorized`, `Forbidden`, …).
    pub message: String,
    /// What exactly was wrong.
    pub error: String,
    /// For a refused broadcast batch: each message that was refused and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedMessage>,
}

/// One refused message of a REST broadcast batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusedMessage {
    /// Index in `messages`.
    pub index: usize,
    /// The message's topic.
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
}

/// A refusal: its status and body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// A refusal with `status`; `message` is the status' reason phrase.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                message: status.canonical_reason().unwrap_or("Error").to_string(),
                error: error.into(),
                refused: Vec::new(),
            },
        }
    }

    /// 401 for a missing or invalid token (Supabase: `{"message":"Unauthorized"}`).
    pub fn unauthorized(e: &AuthError) -> ApiError {
        ApiError::refused(&crate::refusal::Refusal::Token(e.clone()))
    }

    /// A [`crate::refusal::Refusal`] with its status and text.
    pub fn refused(why: &crate::refusal::Refusal) -> ApiError {
        ApiError::new(why.http_status(), why.http_message())
    }

    /// 403: the token is valid but may not do `what`.
    pub fn forbidden(what: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, what)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A JSON request body, read within the configured size limit: a declared or actual size over
/// it is a 413 (a declared one before anything is read), bad JSON a 400.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<Hub>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let max = hub.cfg.http.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(hub, max));
        }
        let body = axum::body::to_bytes(req.into_body(), max)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    too_large(hub, max)
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("could not read the request body: {e}"),
                    )
                }
            })?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
    }
}

/// True when reading a body failed because it went over the size limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn too_large(hub: &Hub, max: usize) -> ApiError {
    hub.metrics.error("http_body_too_large");
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is over max_http_body_bytes ({max} bytes)"),
    )
}

/// `POST /api/presence/status` request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusRequest {
    /// Presence keys to look up (at most `max_batch_keys`).
    pub keys: Vec<String>,
}

/// One key's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyStatusBody {
    /// `online`, `idle` or `offline`.
    #[schema(value_type = String, example = "online")]
    pub status: &'static str,
    /// True unless offline.
    pub online: bool,
    /// Unix ms: now while online, else when the key was last seen; null if never seen.
    pub last_seen: Option<u64>,
    /// Connections (devices, tabs) holding a presence of the key.
    pub connections: usize,
}

/// `POST /api/presence/status` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// Status per requested key.
    pub statuses: BTreeMap<String, KeyStatusBody>,
}

/// `POST /api/presence/status` `{"keys":[...]}` → per key `{status, last_seen, connections}`.
#[utoipa::path(post, path = "/api/presence/status", tag = "presence",
    request_body = StatusRequest,
    security((), ("bearer" = []), ("apikey" = [])),
    responses(
        (status = 200, description = "Status of every key", body = StatusResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token may not read statuses (status_read)", body = ErrorBody),
        (status = 413, description = "Too many keys or body too large", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The database is down and some keys' last_seen is only there", body = ErrorBody),
    ))]
pub async fn status(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    JsonBody(req): JsonBody<StatusRequest>,
) -> Result<axum::Json<StatusResponse>, ApiError> {
    if hub.cfg.http.status_read == StatusRead::ServiceRole {
        require(
            &hub,
            caller.is_service(),
            "status_read = service_role: only service_role tokens may read statuses",
        )?;
    }
    let keys: Vec<Key> = req.keys.iter().map(|k| Key::new(k)).collect();
    let statuses = hub.engine.statuses(&keys, hub.now()).map_err(|e| match e {
        QueryError::TooManyKeys { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
    })?;
    // Cluster mode: what the other nodes hold, in one pipelined round trip.
    let statuses = hub.bus.merge_statuses(&hub, statuses).await;
    // Offline keys this run has forgotten (or never saw): one database query for all of them.
    let unknown: Vec<String> = statuses
        .iter()
        .filter(|s| s.status == Status::Offline && s.last_seen.is_none())
        .map(|s| s.key.to_string())
        .collect();
    let stored = crate::persist::offline_last_seen(&hub, &unknown)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "last_seen query failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::persist::unavailable(&e),
            )
        })?;
    let mut map = BTreeMap::new();
    for s in statuses {
        let last_seen = s
            .last_seen
            .map(|t| hub.to_unix_ms(t))
            .or_else(|| stored.get(s.key.as_str()).copied());
        map.insert(
            s.key.to_string(),
            KeyStatusBody {
                status: s.status.as_str(),
                online: s.status != Status::Offline,
                last_seen,
                connections: s.connections,
            },
        );
    }
    Ok(axum::Json(StatusResponse { statuses: map }))
}

/// The presences of one key in a channel (schema of `presence_state` values).
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceEntry {
    /// One meta per presence (device, tab), each with its `phx_ref`.
    #[schema(value_type = Vec<Object>)]
    pub metas: Vec<serde_json::Value>,
}

/// `?private=` of the channel state endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelQuery {
    /// Read the private channel of that name (needs the access rules); default false.
    #[serde(default)]
    pub private: bool,
}

/// `GET /api/channels/{topic}/presence`: the channel's `presence_state` (`topic` with or
/// without the `realtime:` prefix).
#[utoipa::path(get, path = "/api/channels/{topic}/presence", tag = "presence",
    params(("topic" = String, Path, description = "Channel name, with or without `realtime:`"), ChannelQuery),
    security((), ("bearer" = []), ("apikey" = [])),
    responses(
        (status = 200, description = "presence_state: key → metas", body = BTreeMap<String, PresenceEntry>),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Private channel the token may not read", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn channel_presence(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(topic): Path<String>,
    query: Result<Query<ChannelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if q.private {
        let sub = topic
            .strip_prefix(rollcall_phoenix::event::TOPIC_PREFIX)
            .unwrap_or(&topic);
        require(
            &hub,
            caller.may_use_private(&hub, sub),
            &format!("You do not have permissions to read from this Channel topic: {sub}"),
        )?;
    }
    let topic = topic_for(&topic, q.private);
    let out = hub.bus.channel_state(&hub, topic.as_str()).await;
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /api/presence/{key}/sessions` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// Unix ms; sessions that end before it are left out (default: all time).
    #[param(minimum = 0)]
    pub from: Option<i64>,
    /// Unix ms; sessions that start at or after it are left out (default: all time). A
    /// range with `from` after `to` is empty.
    #[param(minimum = 0)]
    pub to: Option<i64>,
}

/// One online period of a key (a row of the `presence_sessions` table).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionBody {
    /// Row id.
    pub id: i64,
    /// The key.
    pub key: String,
    /// The node the key was connected to.
    pub node_id: String,
    /// Unix ms.
    pub login_at: i64,
    /// Unix ms; null while the session is open.
    pub logout_at: Option<i64>,
    /// `untracked`, `closed`, `timeout`, `shutdown` or `node_restart`; null while open.
    pub logout_reason: Option<String>,
}

/// `GET /api/presence/{key}/sessions` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsResponse {
    /// The key asked about.
    pub key: String,
    /// Its sessions, oldest first.
    pub sessions: Vec<SessionBody>,
}

/// `GET /api/presence/{key}/sessions`: login history, personal data: only the key's own
/// token (`sub` = key) or a `service_role` token may read it.
#[utoipa::path(get, path = "/api/presence/{key}/sessions", tag = "presence",
    params(("key" = String, Path, description = "Presence key"), SessionsQuery),
    security((), ("bearer" = []), ("apikey" = [])),
    responses(
        (status = 200, description = "Sessions overlapping [from, to)", body = SessionsResponse),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Another user's history", body = ErrorBody),
        (status = 404, description = "Persistence is disabled", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn sessions(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(key): Path<String>,
    query: Result<Query<SessionsQuery>, axum::extract::rejection::QueryRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(
        &hub,
        caller.is_service() || caller.sub() == Some(key.as_str()),
        "login history is readable by its own key's token (sub) or service_role only",
    )?;
    let Query(q) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "`from` and `to` must be Unix milliseconds (integers): {}",
                e.body_text()
            ),
        )
    })?;
    if let Some(bad) = [q.from, q.to].into_iter().flatten().find(|v| *v < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`from` and `to` are Unix milliseconds, not negative: {bad}"),
        ));
    }
    if q.from.unwrap_or(0) > q.to.unwrap_or(i64::MAX) {
        // An empty range holds no session.
        return Ok(axum::Json(SessionsResponse {
            key,
            sessions: Vec::new(),
        })
        .into_response());
    }
    let resp = crate::persist::sessions(State(hub), Path(key), Query(params)).await;
    if resp.status().is_success() {
        return Ok(resp);
    }
    // Every error answer of the API has the same shape.
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(ApiError::new(status, detail))
}

/// `POST /api/broadcast` request (Supabase's shape).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BroadcastRequest {
    /// At most [`MAX_BROADCAST_BATCH`] messages.
    pub messages: Vec<BroadcastItem>,
}

/// One REST broadcast message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BroadcastItem {
    /// Channel name without `realtime:`.
    #[schema(min_length = 1)]
    pub topic: String,
    /// Event name.
    #[schema(min_length = 1)]
    pub event: String,
    /// A JSON object; `{}` when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<serde_json::value::RawValue>>,
    /// Deliver to the private channel of that name (needs the access rules).
    #[serde(default)]
    pub private: bool,
    /// Optional id, delivered as `meta.id`.
    #[serde(default)]
    pub id: Option<String>,
}

/// Most messages one REST broadcast may carry.
pub const MAX_BROADCAST_BATCH: usize = 100;

/// `POST /api/broadcast` and `/realtime/v1/api/broadcast`: 202 on success. The batch is all or
/// nothing: if the token may not write to any private topic in it, the answer is 403 listing
/// every refused message, and nothing is delivered.
#[utoipa::path(post, path = "/api/broadcast", tag = "broadcast",
    request_body = BroadcastRequest,
    security((), ("bearer" = []), ("apikey" = [])),
    responses(
        (status = 202, description = "Delivered to every subscriber"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Private topics the token may not write to", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Empty topic or event", body = ErrorBody),
        (status = 429, description = "Rate limited or batch too large", body = ErrorBody),
    ))]
pub async fn broadcast(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    JsonBody(req): JsonBody<BroadcastRequest>,
) -> Result<Response, ApiError> {
    if req.messages.len() > MAX_BROADCAST_BATCH {
        hub.metrics.error("rest_batch_too_large");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many messages to broadcast, please reduce the batch size",
        ));
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.topic.is_empty() || m.event.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("messages[{i}]: topic and event must be non-empty strings"),
            ));
        }
        // As Supabase (a map in its changeset): the payload is a JSON object.
        if m.payload
            .as_deref()
            .is_some_and(|p| !p.get().starts_with('{'))
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("messages[{i}]: payload must be a JSON object"),
            ));
        }
    }
    let refused: Vec<RefusedMessage> = req
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.private && !caller.may_use_private(&hub, &m.topic))
        .map(|(index, m)| RefusedMessage {
            index,
            topic: m.topic.clone(),
            reason: format!(
                "You do not have permissions to write to this Channel topic: {}",
                m.topic
            ),
        })
        .collect();
    if !refused.is_empty() {
        hub.metrics.error("http_forbidden");
        let mut e = ApiError::forbidden(&format!(
            "{} of {} messages may not be sent with this token; none was delivered",
            refused.len(),
            req.messages.len()
        ));
        e.body.refused = refused;
        return Err(e);
    }
    for m in &req.messages {
        let topic = topic_for(&m.topic, m.private);
        let mut payload = String::with_capacity(64);
        payload.push_str("{\"type\":\"broadcast\",\"event\":");
        payload.push_str(&serde_json::to_string(&m.event).unwrap_or_default());
        payload.push_str(",\"payload\":");
        payload.push_str(m.payload.as_deref().map_or("{}", |p| p.get()));
        if let Some(id) = &m.id {
            payload.push_str(",\"meta\":{\"id\":");
            payload.push_str(&serde_json::to_string(id).unwrap_or_default());
            payload.push('}');
        }
        payload.push('}');
        hub.broadcast_json(&topic, rollcall_phoenix::event::BROADCAST, &payload, None);
        Metrics::inc(&hub.metrics.broadcasts);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /metrics`: Prometheus text. With `metrics_auth = token` on the main address it needs
/// a `service_role` token; on `metrics_bind` it is always open.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "metrics_auth = token and no valid token", body = ErrorBody),
        (status = 403, description = "metrics_auth = token and not service_role", body = ErrorBody),
    ))]
pub async fn metrics(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    if hub.cfg.http.metrics_auth == MetricsAuth::Token {
        match authenticate(&hub, &headers) {
            Ok(c) if c.is_service() => {}
            Ok(_) => {
                return ApiError::forbidden("metrics need a service_role token").into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    render_metrics(&hub)
}

/// The metrics text, for the main route and the separate metrics address.
pub fn render_metrics(hub: &Hub) -> Response {
    let mut text = hub.metrics.render(
        hub.engine.stats(),
        hub.sockets.load(Ordering::Relaxed),
        hub.channels.load(Ordering::Relaxed),
    );
    if let Some(p) = hub.persistence.get() {
        p.metrics().render(&mut text);
    }
    hub.bus.render_metrics(&mut text);
    crate::listener::render_metrics(hub, &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `/healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, or `unavailable` when not ready.
    pub status: &'static str,
    /// Per dependency (`database`, `redis`): `ok`, `down` or `off`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// `GET /healthz`: liveness (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthBody)))]
pub async fn healthz() -> axum::Json<HealthBody> {
    axum::Json(HealthBody {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// `GET /readyz`: 200 when the configured database and Redis are reachable, else 503 naming
/// the one that is not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "A configured dependency is down", body = HealthBody),
    ))]
pub async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("database", database_readiness(&hub));
    checks.insert("redis", hub.bus.readiness().await.as_str());
    let ready = checks.values().all(|v| *v != "down");
    let body = HealthBody {
        status: if ready { "ok" } else { "unavailable" },
        checks,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Readiness of the database: `off` without one, `down` until the writer has connected,
/// migrated and recovered and while it is unreachable, else `ok`.
fn database_readiness(hub: &Hub) -> &'static str {
    match (&hub.cfg.database_url, hub.persistence.get()) {
        (None, _) => "off",
        (Some(_), None) => "down",
        (Some(_), Some(p)) if p.db().is_up() => "ok",
        (Some(_), Some(_)) => "down",
    }
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// `GET /`: the live demo page.
pub async fn demo() -> Html<&'static str> {
    Html(include_str!("demo.html"))
}

/// Unknown routes: 404 with a JSON body.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// Wrong method on a known route: 405 with a JSON body.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
