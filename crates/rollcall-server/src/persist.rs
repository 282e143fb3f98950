//! Login/logout persistence wiring: opens `rollcall-sql` for the hub, and serves
//! `GET /api/presence/{key}/sessions`. Status events reach the writer from
//! [`Hub::handle_events`]; `POST /api/presence/status` reads `last_seen` through
//! [`offline_last_seen`].
//!
//! The server starts and serves whether or not the database is reachable (unless
//! `require_database`): logins and logouts spill to disk until it is, `/readyz` reports
//! `database: down`, and the endpoints that need it answer 503 at once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall_sql::{DbConfig, DbState, Persistence, SqlError};
use serde_json::json;

use crate::hub::Hub;

/// When a track that logs a key in is acknowledged (`login_durability`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum LoginDurability {
    /// At once; the login row is committed, or fsynced to the spill file, within the
    /// write-behind window (100 ms). A crash may lose the logins of that last window.
    #[default]
    WriteBehind,
    /// Once every status row queued before the reply is committed, or (database slow or
    /// down) fsynced to the spill file: a crash loses no acknowledged login. Costs the
    /// track reply one batch interval plus a commit (or at most the window).
    Commit,
}

/// The database settings besides its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatabaseSettings {
    /// Refuse to start while the database is unreachable (today's fail-fast) instead of
    /// serving and spilling to disk. Default false.
    pub require: bool,
    /// See [`LoginDurability`]. Default write-behind.
    pub login_durability: LoginDurability,
}

/// How long a start waits for the database's first attempt before serving without it.
pub const FIRST_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Attaches the configured database (if any, and if none is attached yet). The writer
/// connects in the background: migrations, replay of a leftover spill file and closing the
/// sessions a crash left open happen once it is reachable. With `require_database`, waits
/// for that and fails instead.
///
/// # Errors
/// The URL or the spill file is unusable; with `require_database`, also the database is
/// unreachable or its migrations failed.
pub async fn attach(hub: &Hub) -> Result<(), SqlError> {
    let Some(url) = hub.cfg.database_url.as_deref() else {
        return Ok(());
    };
    if hub.persistence.get().is_some() {
        return Ok(());
    }
    let cfg = db_config(hub, url);
    let p = if hub.cfg.database.require {
        Persistence::open(cfg).await?
    } else {
        let p = Persistence::start(cfg)?;
        // A reachable database is usually up within milliseconds: give its first attempt
        // up to FIRST_ATTEMPT before serving, so a normal start answers history queries at
        // once. An unreachable one fails fast or hits this bound; either way the server
        // serves (`/readyz` says `database: down` until the background retries succeed).
        match p.first_attempt(Some(FIRST_ATTEMPT)).await {
            DbState::Up => {}
            DbState::Down(why) => {
                tracing::warn!(error = %why, "database unreachable at start: serving anyway, logins spill to disk until it is back");
            }
            DbState::Starting => {
                tracing::warn!(
                    "database not up yet: serving anyway, logins spill to disk until it is"
                );
            }
        }
        p
    };
    tracing::info!(backend = ?p.db().backend(), node_id = %hub.cfg.node_id, durability = ?hub.cfg.database.login_durability, "persistence on");
    let _ = hub.persistence.set(p);
    Ok(())
}

/// In `commit` durability mode with a database: a future that resolves (true) once every
/// status row recorded so far is durable, or false if the writer stopped. `None` otherwise.
pub fn durable_ticket(hub: &Hub) -> Option<impl std::future::Future<Output = bool> + use<>> {
    if hub.cfg.database.login_durability != LoginDurability::Commit {
        return None;
    }
    let wait = hub.persistence.get()?.writer().durable();
    Some(async move { wait.await.is_ok() })
}

/// `last_seen` (engine clock → Unix ms) of `keys` from the database, in one query; empty
/// without a database.
///
/// # Errors
/// The database is down ([`SqlError::Unavailable`], at once) or the query failed.
pub async fn offline_last_seen(
    hub: &Hub,
    keys: &[String],
) -> Result<HashMap<String, u64>, SqlError> {
    let Some(p) = hub.persistence.get() else {
        return Ok(HashMap::new());
    };
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let m = p.db().last_seen(keys).await?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.last_seen.max(0) as u64))
        .collect())
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
            error(StatusCode::SERVICE_UNAVAILABLE, unavailable(&e))
        }
    }
}

/// The 503 message for a failed database query.
pub fn unavailable(e: &SqlError) -> String {
    match e {
        SqlError::Unavailable(why) => {
            format!("database unavailable (down: {why}); retry later")
        }
        other => format!("database unavailable: {other}"),
    }
}
