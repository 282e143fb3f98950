//! `POST /api/broadcast`: Supabase's REST broadcast, all-or-nothing for private topics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::*;
use crate::http_auth::Caller;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::session::topic_for;

/// `POST /api/broadcast` request (Supabase's shape).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BroadcastRequest {
    /// At most [`MAX_BROADCAST_BATCH`] messages.
    pub messages: Vec<BroadcastItem>,
}

/// One REST broadcast message.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BroadcastItem {
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
pub(crate) const MAX_BROADCAST_BATCH: usize = 100;

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
pub(crate) async fn broadcast(
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
