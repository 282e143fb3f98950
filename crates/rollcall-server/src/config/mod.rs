//! Server configuration: one settings schema ([`Settings`], filled by flags, `ROLLCALL_*`
//! environment variables and an optional TOML file, in that order of precedence), validated
//! into the [`ServerConfig`] the server runs with.
//!
//! Layout: `settings.rs` (the schema), `values.rs` (durations, origins, node ids),
//! `build.rs` (defaults and validation), this file (the validated types).

mod build;
mod settings;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rollcall_core::{Config as CoreConfig, Millis};
use serde::{Deserialize, Serialize};

pub use crate::auth::{AccessRule, Auth, KeyError, PresenceKeySource};
pub use crate::http_auth::{MetricsAuth, StatusRead};
pub use crate::persist::{DatabaseSettings, LoginDurability};

pub use settings::Settings;
pub use values::{
    DURATION_HELP, Duration, DurationOrOff, Origins, default_node_id, parse_duration,
    random_node_id,
};

/// A configuration value that is missing, malformed or out of range. The binary prints it
/// and exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value failed to parse or is outside its allowed range.
    #[error("invalid config `{key}` = {value:?}: expected {allowed}")]
    Invalid {
        /// The key, as spelled in the TOML file (flags use the same name with dashes).
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The TOML file (or a file a setting names) could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Engine settings (heartbeat, grace, idle, batching, limits).
    pub core: CoreConfig,
    /// Most channels per connection (Supabase's default is 100).
    pub max_channels_per_connection: usize,
    /// Largest inbound WebSocket message.
    pub max_frame_bytes: usize,
    /// Outbound queue bound per connection, in messages.
    pub outbound_queue: usize,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Millis,
    /// Log format.
    pub log_format: LogFormat,
    /// This node's id (see `--node-id`).
    pub node_id: String,
    /// Cluster mode (see `--redis-url`); `None` runs a single in-memory node.
    pub redis: Option<RedisSettings>,
    /// Login/logout persistence (see `--database-url`); `None` keeps nothing. The default
    /// for a config built in code is `None`; from settings it is `sqlite://rollcall.db`.
    pub database_url: Option<String>,
    /// Database settings beyond the URL: fail-fast start and login durability.
    pub database: crate::persist::DatabaseSettings,
    /// Token verification, access rules and the presence-key source.
    pub auth: Arc<Auth>,
    /// Per-connection and per-node limits.
    pub limits: Limits,
    /// The HTTP side: API access, CORS, body and connection limits.
    pub http: HttpSettings,
}

/// Cluster settings (see `--redis-url`, `--redis-cluster`, `--redis-prefix`, `--node-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The Redis URL; for a Redis Cluster, seed URLs separated by commas.
    pub url: String,
    /// `url` names a Redis Cluster (slot routing, sharded pub/sub) [default: false].
    pub cluster: bool,
    /// Key and channel prefix [default: `rc`].
    pub prefix: String,
    /// A node silent this long is dead [default: 15 s, at least 400 ms].
    pub node_timeout: Millis,
}

/// Settings of the HTTP server and REST API (see docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Who may read arbitrary keys' status when tokens are verified.
    pub status_read: StatusRead,
    /// Who may read `/metrics` on the main address.
    pub metrics_auth: MetricsAuth,
    /// A separate, open address for `/metrics` (then the main address does not serve it).
    pub metrics_bind: Option<SocketAddr>,
    /// Origins allowed cross-origin (`*` = any); empty: none.
    pub cors_origins: Vec<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// REST requests per second per client address.
    pub requests_per_second: u32,
    /// Time to send a complete request head.
    pub header_timeout: Millis,
    /// Time to send a request body.
    pub body_timeout: Millis,
    /// HTTP connections open and not upgraded.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            status_read: StatusRead::Any,
            metrics_auth: MetricsAuth::Open,
            metrics_bind: None,
            cors_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            requests_per_second: 100,
            header_timeout: Millis::from_secs(10),
            body_timeout: Millis::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Abuse limits. Unlike Supabase's (per tenant), these are per connection or per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections on this node.
    pub max_connections: usize,
    /// Joins per second on one connection.
    pub max_joins_per_second: u32,
    /// Inbound messages per second on one connection, malformed frames included (heartbeats
    /// have their own budget).
    pub max_events_per_second: u32,
    /// Heartbeats per second on one connection (a client sends one every 25 s).
    pub max_heartbeats_per_second: u32,
    /// Presence calls per channel per `presence_window`.
    pub presence_calls: u32,
    /// Window of `presence_calls`.
    pub presence_window: Millis,
    /// Longest topic name.
    pub max_topic_bytes: usize,
    /// Outbound bytes queued per connection.
    pub outbound_queue_bytes: usize,
    /// Time allowed before the first join.
    pub join_timeout: Millis,
    /// Distinct keys one socket may watch on the status topic (at most `max_batch_keys`).
    pub max_watched_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 50_000,
            max_joins_per_second: 100,
            max_events_per_second: 100,
            max_heartbeats_per_second: 10,
            presence_calls: 30,
            presence_window: Millis::from_secs(30),
            max_topic_bytes: 255,
            outbound_queue_bytes: 1 << 20,
            join_timeout: Millis::from_secs(120),
            max_watched_keys: 1000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 4000)),
            core: CoreConfig::default(),
            max_channels_per_connection: 100,
            max_frame_bytes: 1 << 20,
            outbound_queue: 1024,
            shutdown_timeout: Millis::from_secs(10),
            log_format: LogFormat::Text,
            node_id: random_node_id(),
            redis: None,
            database_url: None,
            database: crate::persist::DatabaseSettings::default(),
            auth: Arc::new(Auth::default()),
            limits: Limits::default(),
            http: HttpSettings::default(),
        }
    }
}

/// The default `--database-url`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rollcall.db";
