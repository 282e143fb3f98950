//! A build without the `sql` feature: no store. Every function here answers as a server
//! with `database_url = none` does.

use axum::http::StatusCode;
use std::collections::HashMap;
use std::convert::Infallible;

use crate::http::ApiError;
use crate::hub::Hub;

/// No store can exist in this build.
#[derive(Debug)]
pub enum Store {}

/// Nothing to attach.
///
/// # Errors
/// Never.
pub(crate) async fn attach(_hub: &Hub) -> Result<(), Infallible> {
    Ok(())
}

/// No durability to wait for.
pub(crate) fn durable_ticket(_hub: &Hub) -> Option<std::future::Ready<bool>> {
    None
}

/// No stored `last_seen`.
///
/// # Errors
/// Never.
pub(crate) async fn offline_last_seen(
    _hub: &Hub,
    _keys: &[String],
) -> Result<HashMap<String, u64>, Infallible> {
    Ok(HashMap::new())
}

/// No login history: 404, as with `database_url = none`.
///
/// # Errors
/// Always that refusal.
pub(crate) async fn sessions(
    _hub: &Hub,
    _key: &str,
    _from: i64,
    _to: i64,
) -> Result<Vec<serde_json::Value>, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "persistence is disabled (built without the `sql` feature)",
    ))
}

/// Unreachable: nothing fails.
pub(crate) fn unavailable(e: &Infallible) -> String {
    match *e {}
}

/// Nothing to record.
pub(crate) fn record(_hub: &Hub, _e: &rollcall_core::StatusEvent, _unix_ms: u64) {}

/// No metrics.
pub(crate) fn render_metrics(_hub: &Hub, _text: &mut String) {}

/// Always `off`.
pub(crate) fn readiness(_hub: &Hub) -> &'static str {
    "off"
}

/// Nothing to flush.
pub(crate) async fn shutdown(_hub: &Hub, _left: std::time::Duration) {}
