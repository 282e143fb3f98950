//! The one settings schema. Every setting is a field here, once: clap reads it from a flag
//! and its `ROLLCALL_*` environment variable, serde from the TOML file under the same
//! snake_case name, and [`Settings::merged_with_file`] lays flags/env over the file. Defaults
//! and validation live in `build.rs` (the core's defaults come from `rollcall_core::Config`).
//! A new setting is one field here, one line in `build.rs` and a row in docs/configuration.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::values::{Duration, DurationOrOff, Origins};
use super::{ConfigError, LogFormat};
use crate::auth::{AccessRule, PresenceKeySource};
use crate::http_auth::{MetricsAuth, StatusRead};
use crate::persist::LoginDurability;

/// Every setting, as given (unset fields are `None` and take their default when the config
/// is built). Flags override environment variables, which override the TOML file.
#[derive(Debug, Default, Clone, Parser, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[command(
    name = "rollcall",
    version,
    about = "Presence server speaking the Supabase Realtime protocol"
)]
// The field docs are also `--help` text, whose `[default: …]` notes are not intra-doc links.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct Settings {
    /// TOML file with any of the settings below (flags and env vars override it).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4000].
    #[arg(long, env = "ROLLCALL_BIND")]
    pub bind: Option<SocketAddr>,
    /// Expected client heartbeat period, e.g. 60s, 500ms [default: 60s].
    #[arg(long, env = "ROLLCALL_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<Duration>,
    /// A connection silent for interval × this many beats is dropped [default: 3].
    #[arg(long, env = "ROLLCALL_MISSED_HEARTBEATS")]
    pub missed_heartbeats: Option<u32>,
    /// Delay before a user whose last presence left is logged out, e.g. 10s [default: 10s].
    #[arg(long, env = "ROLLCALL_OFFLINE_GRACE")]
    pub offline_grace: Option<Duration>,
    /// Inactivity after which a user is idle, or "off" [default: 5m].
    #[arg(long, env = "ROLLCALL_IDLE_AFTER")]
    pub idle_after: Option<DurationOrOff>,
    /// Window over which a channel's presence diffs are coalesced; 0 sends each at once
    /// [default: 0ms].
    #[arg(long, env = "ROLLCALL_DIFF_BATCH_WINDOW")]
    pub diff_batch_window: Option<Duration>,
    /// Most channels one connection may join [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_CHANNELS_PER_CONNECTION")]
    pub max_channels_per_connection: Option<usize>,
    /// Largest presence meta (JSON bytes) accepted by track [default: 32768].
    #[arg(long, env = "ROLLCALL_MAX_META_BYTES")]
    pub max_meta_bytes: Option<usize>,
    /// Largest inbound WebSocket message in bytes [default: 1048576].
    #[arg(long, env = "ROLLCALL_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Outbound messages queued per connection before it is closed as a slow consumer
    /// [default: 1024].
    #[arg(long, env = "ROLLCALL_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<usize>,
    /// Most keys in one batch status request [default: 10000].
    #[arg(long, env = "ROLLCALL_MAX_BATCH_KEYS")]
    pub max_batch_keys: Option<usize>,
    /// Seconds to drain connections on SIGTERM/SIGINT [default: 10s].
    #[arg(long, env = "ROLLCALL_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Duration>,
    /// Log format: text or json [default: text]. Levels come from RUST_LOG.
    #[arg(long, env = "ROLLCALL_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// HS256/384/512 secret for verifying JWTs (apikey and access tokens). Unset (and no
    /// public key or JWKS): the server runs open and logs a warning.
    #[arg(long, env = "ROLLCALL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with an RSA (RS256) or EC P-256 (ES256) public key for verifying JWTs.
    #[arg(long, env = "ROLLCALL_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS JSON file with public keys (matched by `kid`) for verifying JWTs.
    #[arg(long, env = "ROLLCALL_JWT_JWKS")]
    pub jwt_jwks: Option<PathBuf>,
    /// Where presence keys come from: `client` (the join's config, as Supabase) or `sub` (the
    /// token's sub claim, so nobody can appear online as someone else) [default: client].
    #[arg(long, env = "ROLLCALL_PRESENCE_KEY")]
    pub presence_key: Option<PresenceKeySource>,
    /// Most open WebSocket connections on this node; more get HTTP 429 [default: 50000].
    #[arg(long, env = "ROLLCALL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most channel joins per second on one connection [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_JOINS_PER_SECOND")]
    pub max_joins_per_second: Option<u32>,
    /// Most inbound messages per second on one connection, heartbeats excluded [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_EVENTS_PER_SECOND")]
    pub max_events_per_second: Option<u32>,
    /// Most heartbeats per second on one connection; more get an error reply [default: 10].
    #[arg(long, env = "ROLLCALL_MAX_HEARTBEATS_PER_SECOND")]
    pub max_heartbeats_per_second: Option<u32>,
    /// Most presence track/untrack calls per channel within `presence_window` [default: 30].
    #[arg(long, env = "ROLLCALL_PRESENCE_CALLS")]
    pub presence_calls: Option<u32>,
    /// The window for `presence_calls` [default: 30s].
    #[arg(long, env = "ROLLCALL_PRESENCE_WINDOW")]
    pub presence_window: Option<Duration>,
    /// Most distinct presence keys in one channel [default: 100000].
    #[arg(long, env = "ROLLCALL_MAX_KEYS_PER_TOPIC")]
    pub max_keys_per_topic: Option<usize>,
    /// Most presences of one key in one channel (devices/tabs) [default: 256].
    #[arg(long, env = "ROLLCALL_MAX_PRESENCES_PER_KEY")]
    pub max_presences_per_key: Option<usize>,
    /// Longest presence key in bytes; longer keys are refused at join and track
    /// [default: 255].
    #[arg(long, env = "ROLLCALL_MAX_KEY_BYTES")]
    pub max_key_bytes: Option<usize>,
    /// Most offline keys whose last_seen is remembered in memory; the oldest is forgotten
    /// first beyond it [default: 1000000].
    #[arg(long, env = "ROLLCALL_MAX_OFFLINE_KEYS")]
    pub max_offline_keys: Option<usize>,
    /// Longest topic name in bytes [default: 255].
    #[arg(long, env = "ROLLCALL_MAX_TOPIC_BYTES")]
    pub max_topic_bytes: Option<usize>,
    /// Bytes queued for one connection before it is closed as a slow consumer
    /// [default: 1048576].
    #[arg(long, env = "ROLLCALL_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// A connection that joins no channel within this time is closed [default: 2m].
    #[arg(long, env = "ROLLCALL_JOIN_TIMEOUT")]
    pub join_timeout: Option<Duration>,
    /// Most distinct keys one socket may watch on `realtime:rollcall:status`; at most
    /// `max_batch_keys` [default: 1000].
    #[arg(long, env = "ROLLCALL_MAX_WATCHED_KEYS")]
    pub max_watched_keys: Option<usize>,
    /// This node's id, unique among nodes sharing a database or Redis; letters, digits, `-`
    /// and `_`, at most 64 [default: `<hostname>-<port>`, or a random id when the port is 0].
    #[arg(long, env = "ROLLCALL_NODE_ID")]
    pub node_id: Option<String>,
    /// Where logins and logouts are stored: `sqlite://PATH` (created if missing),
    /// `postgres://...`, or `none` to keep nothing [default: sqlite://rollcall.db].
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Refuse to start when the database is unreachable (exit 1) instead of serving and
    /// spilling logins to disk until it is back: `--require-database` or `=true|false`
    /// [default: false].
    #[arg(long, env = "ROLLCALL_REQUIRE_DATABASE", num_args = 0..=1, default_missing_value = "true")]
    pub require_database: Option<bool>,
    /// When a track that logs a user in is acknowledged: `write_behind` (at once; the login
    /// row is durable within 100 ms) or `commit` (once it is committed, or fsynced to the
    /// spill file while the database is down) [default: write_behind].
    #[arg(long, env = "ROLLCALL_LOGIN_DURABILITY")]
    pub login_durability: Option<LoginDurability>,
    /// Redis URL (`redis://host:port/db`): run as one node of a cluster sharing presence,
    /// broadcasts and status through Redis [default: none, a single in-memory node].
    #[arg(long, env = "ROLLCALL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// `redis_url` names a Redis Cluster (Redis 7 or later): list some of its nodes, separated
    /// by commas; keys are routed by slot and topics use sharded pub/sub: `--redis-cluster`
    /// or `=true|false` [default: false].
    #[arg(long, env = "ROLLCALL_REDIS_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
    pub redis_cluster: Option<bool>,
    /// Prefix of every Redis key and channel; nodes of one cluster share it [default: rc].
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// A cluster node silent this long is dead and its presences leave, e.g. 15s
    /// [default: 15s, at least 400ms].
    #[arg(long, env = "ROLLCALL_NODE_TIMEOUT")]
    pub node_timeout: Option<Duration>,
    /// Who may read the status of arbitrary keys over HTTP when tokens are verified: `any`
    /// (any valid token) or `service_role` [default: any].
    #[arg(long, env = "ROLLCALL_STATUS_READ")]
    pub status_read: Option<StatusRead>,
    /// `GET /metrics` on the main address: `open` (Prometheus convention) or `token` (a
    /// service_role token) [default: open].
    #[arg(long, env = "ROLLCALL_METRICS_AUTH")]
    pub metrics_auth: Option<MetricsAuth>,
    /// Serve `/metrics` (open) on this separate address instead of the main one, e.g.
    /// 127.0.0.1:9100 [default: none].
    #[arg(long, env = "ROLLCALL_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// Origins allowed to call the REST API from a browser, comma-separated, or `*` for any
    /// [default: none, no cross-origin calls].
    #[arg(long, env = "ROLLCALL_CORS_ORIGINS")]
    pub cors_origins: Option<Origins>,
    /// Largest HTTP request body in bytes; larger gets 413 [default: 1048576].
    #[arg(long, env = "ROLLCALL_MAX_HTTP_BODY_BYTES")]
    pub max_http_body_bytes: Option<usize>,
    /// REST requests per second from one client address; more get 429 [default: 100].
    #[arg(long, env = "ROLLCALL_HTTP_REQUESTS_PER_SECOND")]
    pub http_requests_per_second: Option<u32>,
    /// Time a connection has to send a complete request head (new or keep-alive)
    /// [default: 10s].
    #[arg(long, env = "ROLLCALL_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<Duration>,
    /// Time a request has to send its whole body [default: 10s].
    #[arg(long, env = "ROLLCALL_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<Duration>,
    /// Most HTTP connections open and not upgraded to WebSocket; more are closed at accept
    /// [default: 1024].
    #[arg(long, env = "ROLLCALL_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<usize>,
    /// Private-channel access rules (`[[access]]` tables; TOML only, see docs/security.md).
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub access: Vec<AccessRule>,
}

impl Settings {
    /// Reads the TOML file named by `config` (if any) and lays these settings over it: a
    /// field set here (flag or environment) wins over the file's.
    ///
    /// # Errors
    /// [`ConfigError::File`] when the file cannot be read or parsed (unknown keys included).
    pub fn merged_with_file(self) -> Result<Settings, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file_error = |reason: String| ConfigError::File {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(e.to_string()))?;
        let file: Settings = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
        let access = if self.access.is_empty() {
            file.access.clone()
        } else {
            self.access.clone()
        };
        let mut merged = serde_json::to_value(&file).map_err(|e| file_error(e.to_string()))?;
        let given = serde_json::to_value(&self).map_err(|e| file_error(e.to_string()))?;
        if let (Some(merged), serde_json::Value::Object(given)) = (merged.as_object_mut(), given) {
            for (k, v) in given {
                if !v.is_null() {
                    merged.insert(k, v);
                }
            }
        }
        let mut out: Settings =
            serde_json::from_value(merged).map_err(|e| file_error(e.to_string()))?;
        out.access = access;
        out.config = Some(path);
        Ok(out)
    }
}
