//! Presence reads over HTTP: batch status, a channel's presence state, a key's login history.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_core::{Key, QueryError, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::http_auth::{Caller, StatusRead, require};
use crate::hub::Hub;
use crate::session::topic_for;

/// `POST /api/presence/status` request.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct StatusRequest {
    /// Presence keys to look up (at most `max_batch_keys`).
    pub keys: Vec<String>,
}

/// One key's status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyStatusBody {
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
pub(crate) struct StatusResponse {
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
pub(crate) async fn status(
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
pub(crate) struct PresenceEntry {
    /// One meta per presence (device, tab), each with its `phx_ref`.
    #[schema(value_type = Vec<Object>)]
    pub metas: Vec<serde_json::Value>,
}

/// `?private=` of the channel state endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChannelQuery {
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
        (status = 503, description = "Cluster mode and Redis unreachable: the other nodes' presences cannot be read", body = ErrorBody),
    ))]
pub(crate) async fn channel_presence(
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
    let out = hub
        .bus
        .channel_state(&hub, topic.as_str())
        .await
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /api/presence/{key}/sessions` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionsQuery {
    /// Unix ms; sessions that end before it are left out (default: all time).
    #[param(minimum = 0)]
    pub from: Option<i64>,
    /// Unix ms; sessions that start at or after it are left out (default: all time). A
    /// range with `from` after `to` is empty.
    #[param(minimum = 0)]
    pub to: Option<i64>,
}

/// One online period of a key.
#[cfg(feature = "sql")]
pub(crate) type SessionBody = rollcall_sql::Session;
/// One online period of a key (never returned by a build without the `sql` feature).
#[cfg(not(feature = "sql"))]
pub(crate) type SessionBody = serde_json::Value;

/// `GET /api/presence/{key}/sessions` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionsResponse {
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
pub(crate) async fn sessions(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(key): Path<String>,
    query: Result<Query<SessionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<SessionsResponse>, ApiError> {
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
    let (from, to) = (q.from.unwrap_or(0), q.to.unwrap_or(i64::MAX));
    // An empty range holds no session.
    let sessions = if from > to {
        Vec::new()
    } else {
        crate::persist::sessions(&hub, &key, from, to).await?
    };
    Ok(axum::Json(SessionsResponse { key, sessions }))
}
