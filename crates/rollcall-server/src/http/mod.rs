//! The HTTP API: batch status, channel state, login history, REST broadcast, metrics, health,
//! readiness and the demo page. Every refusal is a 4xx/5xx with a JSON body
//! `{"message": …, "error": …}` ([`ErrorBody`]); who may call what is in [`crate::http_auth`].
//! The request and response types here are the ones the OpenAPI document is generated from
//! ([`crate::openapi`]), so the document cannot drift from the handlers.

//!
//! Layout: this file (errors, the JSON body extractor, fallbacks), `presence.rs` (status,
//! channel state, login history), `broadcast.rs` (REST broadcast), `ops.rs` (metrics, health,
//! readiness, OpenAPI, demo page).

mod broadcast;
mod ops;
mod presence;

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::hub::Hub;

pub(crate) use broadcast::*;
pub(crate) use ops::*;
pub(crate) use presence::*;

/// The JSON body of every error answer: Supabase's `message` plus a specific `error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ErrorBody {
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
pub(crate) struct RefusedMessage {
    /// Index in `messages`.
    pub index: usize,
    /// The message's topic.
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
}

/// A refusal: its status and body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// A refusal with `status`; `message` is the status' reason phrase.
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
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
    pub(crate) fn unauthorized(e: &AuthError) -> ApiError {
        ApiError::refused(&crate::refusal::Refusal::Token(e.clone()))
    }

    /// A [`crate::refusal::Refusal`] with its status and text.
    pub(crate) fn refused(why: &crate::refusal::Refusal) -> ApiError {
        ApiError::new(why.http_status(), why.http_message())
    }

    /// 403: the token is valid but may not do `what`.
    pub(crate) fn forbidden(what: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, what)
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
pub(crate) struct JsonBody<T>(pub T);

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

/// Unknown routes: 404 with a JSON body.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// Wrong method on a known route: 405 with a JSON body.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
