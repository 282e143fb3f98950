//! [`Db`]: the connection pool, migrations, crash recovery and the query API.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr, SqlitePool};

use crate::config::DbConfig;
use crate::error::SqlError;
use crate::health::{DbState, Health};
use crate::metrics::DbMetrics;
use crate::row::Batch;
use crate::sql::{self, Written};

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "presence",
    include_str!("../migrations/sqlite/0001_presence.sql"),
)];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "presence",
    include_str!("../migrations/postgres/0001_presence.sql"),
)];

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A key's last known status, from `presence_last_seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastSeen {
    /// `online`, `idle` or `offline`.
    pub status: String,
    /// Unix ms of the event that set the status (the logout, for an offline key).
    pub last_seen: i64,
}

/// One online period of a key (a row of the `presence_sessions` table; also the body of the
/// server's login-history endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Row id.
    pub id: i64,
    /// The key.
    pub key: String,
    /// The node the key was connected to.
    pub node_id: String,
    /// Unix ms.
    pub login_at: i64,
    /// Unix ms; null while the session is open.
    pub logout_at: Option<i64>,
    /// `untracked`, `closed`, `timeout`, `shutdown` or `node_restart`; null while open.
    pub logout_reason: Option<String>,
}

/// A connected, migrated database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    node_id: Arc<str>,
    metrics: Arc<DbMetrics>,
    health: Arc<Health>,
    pg_schema: Option<String>,
}

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    Cow::Borrowed(*d),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

impl Db {
    /// Connects to `cfg.url` and runs the migrations for its backend; the returned `Db` is
    /// up.
    ///
    /// # Errors
    /// See [`SqlError`].
    pub async fn connect(cfg: &DbConfig, metrics: Arc<DbMetrics>) -> Result<Db, SqlError> {
        let db = Db::lazy(cfg, metrics)?;
        db.migrate().await?;
        db.health.set_up();
        Ok(db)
    }

    /// A `Db` for `cfg.url` whose connections open on first use: no I/O here, so it works
    /// while the database is unreachable. Its state is [`DbState::Starting`] until the
    /// writer (or [`Db::connect`]) marks it up; queries fail at once until then.
    ///
    /// # Errors
    /// The URL names no supported backend or does not parse.
    pub fn lazy(cfg: &DbConfig, metrics: Arc<DbMetrics>) -> Result<Db, SqlError> {
        let url = cfg.url.as_str();
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| SqlError::InvalidUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(cfg.op_timeout);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(cfg.max_connections.max(1))
                    .acquire_timeout(cfg.op_timeout)
                    .connect_lazy_with(opts),
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut opts =
                PgConnectOptions::from_str(url).map_err(|e| SqlError::InvalidUrl(e.to_string()))?;
            if let Some(schema) = &cfg.pg_schema {
                let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
                opts = opts.options([("search_path", quoted.as_str())]);
            }
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(cfg.max_connections.max(1))
                    .acquire_timeout(cfg.op_timeout)
                    .connect_lazy_with(opts),
            )
        } else {
            return Err(SqlError::UnsupportedUrl(url.to_string()));
        };
        Ok(Db {
            pool,
            node_id: cfg.node_id.as_str().into(),
            metrics,
            health: Arc::new(Health::new(DbState::Starting)),
            pg_schema: cfg.pg_schema.clone(),
        })
    }

    /// Creates the Postgres schema (if one is configured) and runs the migrations.
    ///
    /// # Errors
    /// The database is unreachable or a migration failed.
    pub async fn migrate(&self) -> Result<(), SqlError> {
        match &self.pool {
            Pool::Sqlite(p) => migrator(SQLITE_MIGRATIONS).run(p).await?,
            Pool::Postgres(p) => {
                if let Some(schema) = &self.pg_schema {
                    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS {quoted}"
                    )))
                    .execute(p)
                    .await?;
                }
                migrator(POSTGRES_MIGRATIONS).run(p).await?;
            }
        }
        Ok(())
    }

    /// The database as the writer last saw it.
    pub fn state(&self) -> DbState {
        self.health.get()
    }

    /// True when the database is up (migrated, recovered, last attempt succeeded).
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// Fails at once while the database is not up; otherwise runs `q` and marks the
    /// database down if it fails for lack of a database.
    async fn gated<T>(
        &self,
        q: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, SqlError> {
        match self.health.get() {
            DbState::Up => {}
            DbState::Starting => {
                DbMetrics::add(&self.metrics.queries_refused, 1);
                return Err(SqlError::Unavailable("not connected yet".into()));
            }
            DbState::Down(why) => {
                DbMetrics::add(&self.metrics.queries_refused, 1);
                return Err(SqlError::Unavailable(why));
            }
        }
        let r = q.await.map_err(SqlError::from);
        if let Err(e) = &r
            && e.is_outage()
        {
            self.health.set_down(&e.to_string());
        }
        r
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The write counters.
    pub fn metrics(&self) -> &DbMetrics {
        &self.metrics
    }

    /// Last known status of each of `keys` that has one, in one query.
    ///
    /// # Errors
    /// The database failed.
    pub async fn last_seen(&self, keys: &[String]) -> Result<HashMap<String, LastSeen>, SqlError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, i64)> = match &self.pool {
            Pool::Sqlite(p) => {
                let list = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
                self.gated(
                    sqlx::query_as(
                        "SELECT key, status, last_seen FROM presence_last_seen \
                         WHERE key IN (SELECT value FROM json_each(?))",
                    )
                    .bind(list)
                    .fetch_all(p),
                )
                .await?
            }
            Pool::Postgres(p) => {
                self.gated(
                    sqlx::query_as(
                        "SELECT key, status, last_seen FROM presence_last_seen WHERE key = ANY($1)",
                    )
                    .bind(keys)
                    .fetch_all(p),
                )
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(key, status, last_seen)| (key, LastSeen { status, last_seen }))
            .collect())
    }

    /// Sessions of `key` that overlap `[from, to)` (Unix ms), oldest first, at most `limit`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn sessions(
        &self,
        key: &str,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<Session>, SqlError> {
        let limit = i64::from(limit);
        let rows = match &self.pool {
            Pool::Sqlite(p) => {
                self.gated(sql::sqlite::sessions(p, key, from, to, limit))
                    .await?
            }
            Pool::Postgres(p) => {
                self.gated(sql::pg::sessions(p, key, from, to, limit))
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(
                |(id, key, node_id, login_at, logout_at, logout_reason)| Session {
                    id,
                    key,
                    node_id,
                    login_at,
                    logout_at,
                    logout_reason,
                },
            )
            .collect())
    }

    /// Closes every session this node left open by a previous run with `node_restart`,
    /// dated by the node's last beat (or the login, if later), and records the new run.
    /// Returns how many sessions it closed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn recover(&self, run_id: i64) -> Result<u64, SqlError> {
        let now = crate::unix_now_ms();
        let beat = match &self.pool {
            Pool::Sqlite(p) => sql::sqlite::last_beat(p, &self.node_id).await?,
            Pool::Postgres(p) => sql::pg::last_beat(p, &self.node_id).await?,
        };
        // No beat row means the node never ran here: nothing can be open, date them at login.
        let at = beat.unwrap_or(0);
        let run = Some((run_id, now));
        let closed = match &self.pool {
            Pool::Sqlite(p) => {
                sql::sqlite::close_node(p, &self.node_id, at, "node_restart", run).await?
            }
            Pool::Postgres(p) => {
                sql::pg::close_node(p, &self.node_id, at, "node_restart", run).await?
            }
        };
        // The node row now says "beat at `at`"; bring it to now.
        self.beat().await?;
        Ok(closed)
    }

    /// Closes this node's open sessions with `reason` at `at` (graceful shutdown).
    ///
    /// # Errors
    /// The database failed.
    pub async fn close_open_sessions(&self, at: i64, reason: &str) -> Result<u64, SqlError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => sql::sqlite::close_node(p, &self.node_id, at, reason, None).await?,
            Pool::Postgres(p) => sql::pg::close_node(p, &self.node_id, at, reason, None).await?,
        })
    }

    /// Refreshes this node's `presence_nodes.last_beat` to now.
    ///
    /// # Errors
    /// The database failed.
    pub async fn beat(&self) -> Result<(), SqlError> {
        let now = crate::unix_now_ms();
        match &self.pool {
            Pool::Sqlite(p) => sql::sqlite::beat(p, &self.node_id, now).await?,
            Pool::Postgres(p) => sql::pg::beat(p, &self.node_id, now).await?,
        }
        DbMetrics::add(&self.metrics.beats, 1);
        Ok(())
    }

    /// Writes one compacted batch in one transaction and counts it.
    pub(crate) async fn write(&self, b: &Batch) -> Result<Written, SqlError> {
        let now = crate::unix_now_ms();
        let w = match &self.pool {
            Pool::Sqlite(p) => sql::sqlite::write_batch(p, &self.node_id, b, now).await?,
            Pool::Postgres(p) => sql::pg::write_batch(p, &self.node_id, b, now).await?,
        };
        DbMetrics::add(&self.metrics.writes, w.statements);
        DbMetrics::add(&self.metrics.rows_written, w.rows);
        DbMetrics::add(&self.metrics.events_written, b.events as u64);
        DbMetrics::add(&self.metrics.batches, 1);
        Ok(w)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}
