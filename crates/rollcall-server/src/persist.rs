//! Login/logout persistence wiring: opens `rollcall-sql` for the hub, and serves
//! `GET /api/presence/{key}/sessions`. Status events reach the writer from
//! [`Hub::handle_events`]; `POST /api/presence/status` reads `last_seen` through
//! [`offline_last_seen`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall_sql::{DbConfig, Persistence, SqlError};
use serde_json::json;

use crate::hub::Hub;

/// Most sessions one history request returns.
pub const MAX_SESSIONS: u32 = 1_000;

/// The `rollcall-sql` settings for `url` on this node. With SQLite the spill file sits
/// beside the database file (`rollcall.db-spill-<node>.jsonl`); otherwise in the working
/// directory.
pub fn db_config(hub: &Hub, url: &str) -> DbConfig {
    let node = hub.cfg.node_id.clone();
    let mut cfg = DbConfig::new(url, node.clone());
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if !path.is_empty() && path != ":memory:" {
            cfg.spill_path = format!("{path}-spill-{node}.jsonl").into();
        }
    }
    cfg
}

/// Opens the configured database (if any, and if none is attached yet), replays a leftover
/// spill file, closes sessions a crash left open, and attaches it to the hub.
///
/// # Errors
/// The database is unreachable or its migrations failed.
pub async fn attach(hub: &Hub) -> Result<(), SqlError> {
    let Some(url) = hub.cfg.database_url.as_deref() else {
        return Ok(());
    };
    if hub.persistence.get().is_some() {
        return Ok(());
    }
    let p = Persistence::open(db_config(hub, url)).await?;
    tracing::info!(backend = ?p.db().backend(), node_id = %hub.cfg.node_id, "persistence on");
    let _ = hub.persistence.set(p);
    Ok(())
}

/// `last_seen` (engine clock → Unix ms) of `keys` from the database, in one query. Errors are
/// logged and yield an empty map: the status endpoint still answers from memory.
pub async fn offline_last_seen(hub: &Hub, keys: &[String]) -> HashMap<String, u64> {
    let Some(p) = hub.persistence.get() else {
        return HashMap::new();
    };
    if keys.is_empty() {
        return HashMap::new();
    }
    match p.db().last_seen(keys).await {
        Ok(m) => m
            .into_iter()
            .map(|(k, v)| (k, v.last_seen.max(0) as u64))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "last_seen query failed");
            HashMap::new()
        }
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

fn millis(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, String> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("`{name}` must be Unix milliseconds (an integer), got {v:?}")),
    }
}

/// `GET /api/presence/{key}/sessions?from=&to=`: the key's online periods overlapping
/// `[from, to)` (Unix ms; default: all time), oldest first, at most [`MAX_SESSIONS`].
pub async fn sessions(
    State(hub): State<Arc<Hub>>,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(p) = hub.persistence.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "persistence is disabled (--database-url none)",
        );
    };
    let (from, to) = match (millis(&params, "from"), millis(&params, "to")) {
        (Ok(f), Ok(t)) => (f.unwrap_or(0), t.unwrap_or(i64::MAX)),
        (Err(msg), _) | (_, Err(msg)) => return error(StatusCode::BAD_REQUEST, msg),
    };
    if from > to {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`from` ({from}) is after `to` ({to})"),
        );
    }
    match p.db().sessions(&key, from, to, MAX_SESSIONS).await {
        Ok(list) => axum::Json(json!({ "key": key, "sessions": list })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "sessions query failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
