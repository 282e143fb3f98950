//! The HTTP API: batch status, channel state, REST broadcast, metrics, health and the demo.
//! Every error is a 4xx with a JSON body `{"error": "..."}` naming what was wrong.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rollcall_core::{Key, QueryError, Status};
use serde::Deserialize;
use serde_json::json;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::session::topic_for;

/// A refusal with its status and message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into())
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct StatusRequest {
    keys: Vec<String>,
}

/// `POST /api/presence/status` `{"keys":[...]}` → per key `{status, last_seen, connections}`.
/// `last_seen` is Unix milliseconds (null for a key never seen); `now` while online.
pub async fn status(State(hub): State<Arc<Hub>>, body: Bytes) -> Result<Response, ApiError> {
    let req: StatusRequest = parse_json(&body)?;
    let keys: Vec<Key> = req.keys.iter().map(|k| Key::new(k)).collect();
    let statuses = hub.engine.statuses(&keys, hub.now()).map_err(|e| match e {
        QueryError::TooManyKeys { .. } => bad(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        other => bad(StatusCode::BAD_REQUEST, other.to_string()),
    })?;
    // Cluster mode: what the other nodes hold, in one pipelined round trip.
    let statuses = crate::cluster::merge_statuses(&hub, statuses).await;
    // Offline keys this run has forgotten (or never saw): one database query for all of them.
    let unknown: Vec<String> = statuses
        .iter()
        .filter(|s| s.status == Status::Offline && s.last_seen.is_none())
        .map(|s| s.key.to_string())
        .collect();
    let stored = crate::persist::offline_last_seen(&hub, &unknown).await;
    let mut map = serde_json::Map::with_capacity(statuses.len());
    for s in statuses {
        let last_seen = s
            .last_seen
            .map(|t| hub.to_unix_ms(t))
            .or_else(|| stored.get(s.key.as_str()).copied());
        map.insert(
            s.key.to_string(),
            json!({
                "status": s.status.as_str(),
                "online": s.status != Status::Offline,
                "last_seen": last_seen,
                "connections": s.connections,
            }),
        );
    }
    Ok(axum::Json(json!({ "statuses": map })).into_response())
}

/// `GET /api/channels/{topic}/presence`: the channel's `presence_state` (`topic` with or
/// without the `realtime:` prefix).
pub async fn channel_presence(State(hub): State<Arc<Hub>>, Path(topic): Path<String>) -> Response {
    let topic = topic_for(&topic, false);
    let mut out = Vec::with_capacity(256);
    crate::cluster::write_channel_state(&hub, &topic, &mut out).await;
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

#[derive(Deserialize)]
struct BroadcastRequest {
    messages: Vec<BroadcastItem>,
}

#[derive(Deserialize)]
struct BroadcastItem {
    topic: String,
    event: String,
    #[serde(default)]
    payload: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    id: Option<String>,
}

/// Most messages one REST broadcast may carry.
pub const MAX_BROADCAST_BATCH: usize = 100;

/// `POST /api/broadcast` and `/realtime/v1/api/broadcast` (Supabase's shape): 202 on success.
pub async fn broadcast(State(hub): State<Arc<Hub>>, body: Bytes) -> Result<Response, ApiError> {
    let req: BroadcastRequest = parse_json(&body)?;
    if req.messages.len() > MAX_BROADCAST_BATCH {
        hub.metrics.error("rest_batch_too_large");
        return Err(bad(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many messages to broadcast, please reduce the batch size",
        ));
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.topic.is_empty() || m.event.is_empty() {
            return Err(bad(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("messages[{i}]: topic and event must be non-empty strings"),
            ));
        }
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

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let mut text = hub.metrics.render(
        hub.engine.stats(),
        hub.sockets.load(Ordering::Relaxed),
        hub.channels.load(Ordering::Relaxed),
    );
    if let Some(p) = hub.persistence.get() {
        p.metrics().render(&mut text);
    }
    crate::cluster::render_metrics(&hub, &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /`: the live demo page.
pub async fn demo() -> Html<&'static str> {
    Html(include_str!("demo.html"))
}

/// Unknown routes: 404 with a JSON body.
pub async fn not_found() -> ApiError {
    bad(StatusCode::NOT_FOUND, "no such route")
}
