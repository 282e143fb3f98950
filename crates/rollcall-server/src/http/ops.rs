//! Operations endpoints: metrics, liveness, readiness, the OpenAPI document, the demo page.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::*;
use crate::http_auth::{MetricsAuth, authenticate};
use crate::hub::Hub;

/// `GET /metrics`: Prometheus text. With `metrics_auth = token` on the main address it needs
/// a `service_role` token; on `metrics_bind` it is always open.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "metrics_auth = token and no valid token", body = ErrorBody),
        (status = 403, description = "metrics_auth = token and not service_role", body = ErrorBody),
    ))]
pub(crate) async fn metrics(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
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
pub(crate) fn render_metrics(hub: &Hub) -> Response {
    let mut text = hub.metrics.render(
        hub.engine.stats(),
        hub.sockets.load(Ordering::Relaxed),
        hub.channels.load(Ordering::Relaxed),
    );
    crate::persist::render_metrics(hub, &mut text);
    hub.bus.render_metrics(&mut text);
    crate::listener::render_metrics(hub, &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `/healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthBody {
    /// `ok`, or `unavailable` when not ready.
    pub status: &'static str,
    /// Per dependency (`database`, `redis`): `ok`, `down` or `off`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// `GET /healthz`: liveness (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthBody)))]
pub(crate) async fn healthz() -> axum::Json<HealthBody> {
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
pub(crate) async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("database", crate::persist::readiness(&hub));
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

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// `GET /`: the live demo page.
pub(crate) async fn demo() -> Html<&'static str> {
    Html(include_str!("../demo.html"))
}
