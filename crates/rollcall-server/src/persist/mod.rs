//! Login/logout persistence wiring. Status events reach the store from
//! [`Hub::handle_events`](crate::hub::Hub::handle_events) through [`record`];
//! `POST /api/presence/status` reads `last_seen` through [`offline_last_seen`];
//! `GET /api/presence/{key}/sessions` is [`sessions`].
//!
//! With the `sql` feature (default) the store is `rollcall-sql` (`sql.rs`): the server starts
//! and serves whether or not the database is reachable (unless `require_database`), logins
//! and logouts spill to disk until it is, `/readyz` reports `database: down`, and the
//! endpoints that need it answer 503 at once. Without it (`off.rs`) there is no store: a
//! `database_url` is a config error and the history endpoint answers 404.

#[cfg(not(feature = "sql"))]
mod off;
#[cfg(feature = "sql")]
mod sql;

#[cfg(not(feature = "sql"))]
pub(crate) use off::*;
#[cfg(feature = "sql")]
pub(crate) use sql::*;

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

/// Most sessions one history request returns.
#[cfg(feature = "sql")]
pub(crate) const MAX_SESSIONS: u32 = 1_000;
