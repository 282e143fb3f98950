//! Who is calling the HTTP API, and what they may do.
//!
//! When the server verifies tokens (a secret, public key or JWKS is configured) every REST
//! endpoint except `/healthz`, `/readyz`, `/openapi.json` and the demo page needs a token, taken
//! as Supabase does: `Authorization: Bearer <jwt>` when present, else the `apikey` header
//! (realtime-js' `httpSend` sends both). A missing or invalid token is a 401, a valid token that
//! may not do the thing a 403; both with Supabase's `{"message": ...}` shape plus our
//! `{"error": ...}` detail. In open mode (nothing to verify with) every caller is [`Caller::Open`]
//! and everything is allowed, as on the socket.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Claims};
use crate::http::ApiError;
use crate::hub::Hub;

/// The caller of an HTTP request, as established by its token.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The server runs open: no token is verified, everything is allowed.
    Open,
    /// A verified token.
    Token(Claims),
}

/// The role that may do anything over HTTP (Supabase's service key role).
pub(crate) const SERVICE_ROLE: &str = "service_role";

/// Who may read the status of arbitrary keys over HTTP (`status_read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum StatusRead {
    /// Any valid token (Supabase's model: presence of a public channel is visible to every
    /// member, and a contact list needs the status of other users).
    #[default]
    Any,
    /// Only `role = service_role` tokens (a backend asks on the users' behalf).
    ServiceRole,
}

/// Who may scrape `GET /metrics` on the main address (`metrics_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum MetricsAuth {
    /// Anyone who can reach the address (the Prometheus convention).
    #[default]
    Open,
    /// A valid `service_role` token, as for the rest of the API.
    Token,
}

impl Caller {
    /// True for open mode and for `service_role` tokens.
    pub(crate) fn is_service(&self) -> bool {
        match self {
            Caller::Open => true,
            Caller::Token(c) => c.role == SERVICE_ROLE,
        }
    }

    /// The token's `sub`, if any.
    pub(crate) fn sub(&self) -> Option<&str> {
        match self {
            Caller::Open => None,
            Caller::Token(c) => c.sub.as_deref(),
        }
    }

    /// May this caller read or write the private channel with subtopic `sub`? The same
    /// `[[access]]` rules as a private-channel join; `service_role` may always.
    pub(crate) fn may_use_private(&self, hub: &Hub, subtopic: &str) -> bool {
        match self {
            Caller::Open => true,
            Caller::Token(c) => {
                c.role == SERVICE_ROLE || hub.cfg.auth.may_join_private(subtopic, c)
            }
        }
    }
}

/// The token of a request: `Authorization: Bearer …` first, else the `apikey` header.
pub(crate) fn request_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        headers
            .get("apikey")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

/// Establishes the caller of a request against `hub`'s verifier.
///
/// # Errors
/// 401 when tokens are verified and the request has none or an invalid one.
pub(crate) fn authenticate(hub: &Hub, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if !hub.cfg.auth.enabled() {
        return Ok(Caller::Open);
    }
    let Some(token) = request_token(headers) else {
        hub.metrics.error("http_unauthorized");
        return Err(ApiError::unauthorized(&AuthError::Missing));
    };
    match hub.cfg.auth.verify(token, hub.clock.unix_secs()) {
        Ok(claims) => Ok(Caller::Token(claims)),
        Err(e) => {
            hub.metrics.error("http_unauthorized");
            Err(ApiError::unauthorized(&e))
        }
    }
}

impl FromRequestParts<Arc<Hub>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        authenticate(hub, &parts.headers)
    }
}

/// Refuses with 403 unless `allowed`.
///
/// # Errors
/// The 403 naming `what` the token may not do.
pub(crate) fn require(hub: &Hub, allowed: bool, what: &str) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        hub.metrics.error("http_forbidden");
        Err(ApiError::forbidden(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_wins_over_apikey_and_blank_values_are_absent() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h), None);
        h.insert("apikey", HeaderValue::from_static("key-token"));
        assert_eq!(request_token(&h), Some("key-token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  user-token "),
        );
        assert_eq!(request_token(&h), Some("user-token"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(request_token(&h), Some("key-token"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer "));
        h.insert("apikey", HeaderValue::from_static(" "));
        assert_eq!(request_token(&h), None);
    }
}
