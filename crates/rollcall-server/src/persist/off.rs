//! A build without the `sql` feature: no store. Every function here answers as a server
//! with `database_url = none` does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::hub::Hub;

/// No store can exist in this build.
#[derive(Debug)]
pub enum Store {}

/// No store operation can fail in this build.
pub type StoreError = Infallible;

/// Nothing to attach.
///
/// # Errors
/// Never.
pub async fn attach(_hub: &Hub) -> Result<(), Infallible> {
    Ok(())
}

/// No durability to wait for.
pub fn durable_ticket(_hub: &Hub) -> Option<std::future::Ready<bool>> {
    None
}

/// No stored `last_seen`.
///
/// # Errors
/// Never.
pub async fn offline_last_seen(
    _hub: &Hub,
    _keys: &[String],
) -> Result<HashMap<String, u64>, Infallible> {
    Ok(HashMap::new())
}

/// `GET /api/presence/{key}/sessions`: 404, as with `database_url = none`.
pub async fn sessions(
    State(_hub): State<Arc<Hub>>,
    Path(_key): Path<String>,
    Query(_params): Query<HashMap<String, String>>,
) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "persistence is disabled (built without the `sql` feature)"
        })),
    )
        .into_response()
}

/// Unreachable: nothing fails.
pub fn unavailable(e: &Infallible) -> String {
    match *e {}
}

/// Nothing to record.
pub fn record(_hub: &Hub, _e: &rollcall_core::StatusEvent, _unix_ms: u64) {}

/// No metrics.
pub fn render_metrics(_hub: &Hub, _text: &mut String) {}

/// Always `off`.
pub fn readiness(_hub: &Hub) -> &'static str {
    "off"
}

/// Nothing to flush.
pub async fn shutdown(_hub: &Hub, _left: std::time::Duration) {}
