//! The SQL backend of persistence (feature `sql`): opens `rollcall-sql` for the hub and
//! serves `GET /api/presence/{key}/sessions`.

use std::collections::HashMap;

use axum::http::StatusCode;
use rollcall_sql::{DbConfig, DbState, Persistence, SqlError};

use super::{LoginDurability, MAX_SESSIONS};
use crate::http::ApiError;
use crate::hub::Hub;

/// The attached store.
pub(crate) type Store = Persistence;

/// How long a start waits for the database's first attempt before serving without it.
pub(crate) const FIRST_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(1);

/// The `rollcall-sql` settings for `url` on this node. With SQLite the spill file sits
/// beside the database file (`rollcall.db-spill-<node>.jsonl`); otherwise in the working
/// directory.
pub(crate) fn db_config(hub: &Hub, url: &str) -> DbConfig {
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
pub(crate) async fn attach(hub: &Hub) -> Result<(), SqlError> {
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
pub(crate) fn durable_ticket(hub: &Hub) -> Option<impl std::future::Future<Output = bool> + use<>> {
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
pub(crate) async fn offline_last_seen(
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

/// The key's online periods overlapping `[from, to)` (Unix ms), oldest first, at most
/// [`MAX_SESSIONS`]: 404 without a database, 503 (at once while it is known down) when the
/// query fails.
///
/// # Errors
/// The refusal to answer with.
pub(crate) async fn sessions(
    hub: &Hub,
    key: &str,
    from: i64,
    to: i64,
) -> Result<Vec<rollcall_sql::Session>, ApiError> {
    let Some(p) = hub.persistence.get() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "persistence is disabled (--database-url none)",
        ));
    };
    p.db()
        .sessions(key, from, to, MAX_SESSIONS)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "sessions query failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, unavailable(&e))
        })
}

/// The 503 message for a failed database query.
pub(crate) fn unavailable(e: &SqlError) -> String {
    match e {
        SqlError::Unavailable(why) => {
            format!("database unavailable (down: {why}); retry later")
        }
        other => format!("database unavailable: {other}"),
    }
}

/// Hands a status event to the writer (a channel send: never blocks).
pub(crate) fn record(hub: &Hub, e: &rollcall_core::StatusEvent, unix_ms: u64) {
    if let Some(p) = hub.persistence.get() {
        p.record(e, unix_ms);
    }
}

/// Appends the writer's metrics to `/metrics`.
pub(crate) fn render_metrics(hub: &Hub, text: &mut String) {
    if let Some(p) = hub.persistence.get() {
        p.metrics().render(text);
    }
}

/// Readiness of the database: `off` without one, `down` until the writer has connected,
/// migrated and recovered and while it is unreachable, else `ok`.
pub(crate) fn readiness(hub: &Hub) -> &'static str {
    match (&hub.cfg.database_url, hub.persistence.get()) {
        (None, _) => "off",
        (Some(_), None) => "down",
        (Some(_), Some(p)) if p.db().is_up() => "ok",
        (Some(_), Some(_)) => "down",
    }
}

/// On shutdown: flushes what is queued within `left` (the rest stays in the spill file).
pub(crate) async fn shutdown(hub: &Hub, left: std::time::Duration) {
    if let Some(p) = hub.persistence.get() {
        p.shutdown(left).await;
    }
}
