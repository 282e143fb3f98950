//! The SQL, written once and expanded per backend.
//!
//! Every statement is built with `QueryBuilder`, which writes each backend's placeholders
//! (`?` or `$n`); the SQL itself is the common subset of SQLite (3.35+) and PostgreSQL:
//! multi-row `VALUES`, `INSERT .. ON CONFLICT`, and `WITH .. UPDATE .. FROM`. Only the
//! key-list lookup differs (`json_each` vs `= ANY`), so it lives outside the macro.

use crate::row::Batch;

/// Most rows in one multi-row statement: 7 binds each stays under SQLite's 32,766 and
/// Postgres's 65,535 bind limits.
const ROWS_PER_STATEMENT: usize = 4_000;

/// Statements and rows written by one call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) statements: u64,
    pub(crate) rows: u64,
}

/// A session as stored.
pub(crate) type SessionTuple = (i64, String, String, i64, Option<i64>, Option<String>);

macro_rules! backend {
    ($name:ident, $db:ty, $pool:ty) => {
        pub(crate) mod $name {
            use sqlx::{Acquire, QueryBuilder};

            use super::{Batch, ROWS_PER_STATEMENT, SessionTuple, Written};

            type Db = $db;

            /// Writes one compacted batch in one transaction.
            pub(crate) async fn write_batch(
                pool: &$pool,
                node_id: &str,
                b: &Batch,
                now: i64,
            ) -> Result<Written, sqlx::Error> {
                let mut w = Written::default();
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin().await?;
                for chunk in b.closes.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<Db>::new("WITH v(run_id, seq, at, reason) AS (");
                    q.push_values(chunk, |mut r, c| {
                        r.push_bind(c.run)
                            .push_bind(c.seq)
                            .push_bind(c.at)
                            .push_bind(c.reason.clone());
                    });
                    q.push(
                        ") UPDATE presence_sessions SET logout_at = v.at, logout_reason = v.reason \
                         FROM v WHERE presence_sessions.node_id = ",
                    );
                    q.push_bind(node_id.to_string());
                    q.push(
                        " AND presence_sessions.run_id = v.run_id \
                         AND presence_sessions.seq = v.seq AND presence_sessions.logout_at IS NULL",
                    );
                    w.rows += q.build().execute(&mut *tx).await?.rows_affected();
                    w.statements += 1;
                }
                for chunk in b.inserts.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO presence_sessions \
                         (key, node_id, run_id, seq, login_at, logout_at, logout_reason) ",
                    );
                    q.push_values(chunk, |mut r, s| {
                        r.push_bind(s.key.clone())
                            .push_bind(node_id.to_string())
                            .push_bind(s.run)
                            .push_bind(s.seq)
                            .push_bind(s.login_at)
                            .push_bind(s.logout_at)
                            .push_bind(s.reason.clone());
                    });
                    q.push(" ON CONFLICT (node_id, run_id, seq) DO NOTHING");
                    w.rows += q.build().execute(&mut *tx).await?.rows_affected();
                    w.statements += 1;
                }
                for chunk in b.seen.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO presence_last_seen (key, status, last_seen, node_id, updated_at) ",
                    );
                    q.push_values(chunk, |mut r, s| {
                        r.push_bind(s.key.clone())
                            .push_bind(s.status)
                            .push_bind(s.at)
                            .push_bind(node_id.to_string())
                            .push_bind(now);
                    });
                    q.push(
                        " ON CONFLICT (key) DO UPDATE SET status = excluded.status, \
                         last_seen = excluded.last_seen, node_id = excluded.node_id, \
                         updated_at = excluded.updated_at \
                         WHERE excluded.last_seen >= presence_last_seen.last_seen",
                    );
                    w.rows += q.build().execute(&mut *tx).await?.rows_affected();
                    w.statements += 1;
                }
                tx.commit().await?;
                Ok(w)
            }

            /// Closes the sessions `node_id` left open (`reason`, dated `at` or their login
            /// if later), marks its keys offline and records the node's new run.
            pub(crate) async fn close_node(
                pool: &$pool,
                node_id: &str,
                at: i64,
                reason: &str,
                new_run: Option<(i64, i64)>,
            ) -> Result<u64, sqlx::Error> {
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin().await?;
                let mut q = QueryBuilder::<Db>::new(
                    "UPDATE presence_sessions SET logout_at = CASE WHEN login_at > ",
                );
                q.push_bind(at)
                    .push(" THEN login_at ELSE ")
                    .push_bind(at)
                    .push(" END, logout_reason = ")
                    .push_bind(reason.to_string())
                    .push(" WHERE node_id = ")
                    .push_bind(node_id.to_string())
                    .push(" AND logout_at IS NULL");
                let closed = q.build().execute(&mut *tx).await?.rows_affected();
                let mut q = QueryBuilder::<Db>::new(
                    "UPDATE presence_last_seen SET status = 'offline', last_seen = CASE WHEN last_seen > ",
                );
                q.push_bind(at)
                    .push(" THEN last_seen ELSE ")
                    .push_bind(at)
                    .push(" END, updated_at = ")
                    .push_bind(super::super::unix_now_ms())
                    .push(" WHERE node_id = ")
                    .push_bind(node_id.to_string())
                    .push(" AND status <> 'offline'");
                q.build().execute(&mut *tx).await?;
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO presence_nodes (node_id, run_id, started_at, last_beat) VALUES (",
                );
                let (run, started) = new_run.unwrap_or((0, at));
                q.push_bind(node_id.to_string())
                    .push(", ")
                    .push_bind(run)
                    .push(", ")
                    .push_bind(started)
                    .push(", ")
                    .push_bind(at)
                    .push(") ON CONFLICT (node_id) DO UPDATE SET last_beat = excluded.last_beat");
                if new_run.is_some() {
                    q.push(", run_id = excluded.run_id, started_at = excluded.started_at");
                }
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(closed)
            }

            /// The node's last beat, if it has a row.
            pub(crate) async fn last_beat(
                pool: &$pool,
                node_id: &str,
            ) -> Result<Option<i64>, sqlx::Error> {
                let mut q = QueryBuilder::<Db>::new(
                    "SELECT last_beat FROM presence_nodes WHERE node_id = ",
                );
                q.push_bind(node_id.to_string());
                q.build_query_scalar::<i64>().fetch_optional(pool).await
            }

            /// Refreshes the node's `last_beat`.
            pub(crate) async fn beat(
                pool: &$pool,
                node_id: &str,
                now: i64,
            ) -> Result<(), sqlx::Error> {
                let mut q = QueryBuilder::<Db>::new("UPDATE presence_nodes SET last_beat = ");
                q.push_bind(now)
                    .push(" WHERE node_id = ")
                    .push_bind(node_id.to_string());
                q.build().execute(pool).await?;
                Ok(())
            }

            /// Sessions of `key` overlapping `[from, to)`, oldest first.
            pub(crate) async fn sessions(
                pool: &$pool,
                key: &str,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<SessionTuple>, sqlx::Error> {
                let mut q = QueryBuilder::<Db>::new(
                    "SELECT id, key, node_id, login_at, logout_at, logout_reason \
                     FROM presence_sessions WHERE key = ",
                );
                q.push_bind(key.to_string())
                    .push(" AND login_at < ")
                    .push_bind(to)
                    .push(" AND (logout_at IS NULL OR logout_at >= ")
                    .push_bind(from)
                    .push(") ORDER BY login_at, id LIMIT ")
                    .push_bind(limit);
                q.build_query_as::<SessionTuple>().fetch_all(pool).await
            }
        }
    };
}

backend!(sqlite, sqlx::Sqlite, sqlx::SqlitePool);
backend!(pg, sqlx::Postgres, sqlx::PgPool);
