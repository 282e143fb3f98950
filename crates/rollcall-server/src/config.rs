//! Server configuration: command-line flags, `ROLLCALL_*` environment variables and an
//! optional TOML file, merged in that order of precedence into one [`ServerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use clap::Parser;
use rollcall_core::{Config as CoreConfig, Millis};
use serde::Deserialize;

use crate::auth::{AccessRule, Auth, PresenceKeySource};
use crate::http_auth::{MetricsAuth, StatusRead};

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
        allowed: &'static str,
    },
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Command-line flags. Every flag also reads `ROLLCALL_<NAME>` from the environment, and
/// every flag except `--config` can be set in the TOML file under its snake_case name.
#[derive(Debug, Default, Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Presence server speaking the Supabase Realtime protocol"
)]
pub struct Cli {
    /// TOML file with any of the settings below (flags and env vars override it).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4000].
    #[arg(long, env = "ROLLCALL_BIND")]
    pub bind: Option<String>,
    /// Expected client heartbeat period, e.g. 60s, 500ms [default: 60s].
    #[arg(long, env = "ROLLCALL_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// A connection silent for interval × this many beats is dropped [default: 3].
    #[arg(long, env = "ROLLCALL_MISSED_HEARTBEATS")]
    pub missed_heartbeats: Option<String>,
    /// Delay before a user whose last presence left is logged out, e.g. 10s [default: 10s].
    #[arg(long, env = "ROLLCALL_OFFLINE_GRACE")]
    pub offline_grace: Option<String>,
    /// Inactivity after which a user is idle, or "off" [default: 5m].
    #[arg(long, env = "ROLLCALL_IDLE_AFTER")]
    pub idle_after: Option<String>,
    /// Window over which a channel's presence diffs are coalesced; 0 sends each at once
    /// [default: 0ms].
    #[arg(long, env = "ROLLCALL_DIFF_BATCH_WINDOW")]
    pub diff_batch_window: Option<String>,
    /// Most channels one connection may join [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_CHANNELS_PER_CONNECTION")]
    pub max_channels_per_connection: Option<String>,
    /// Largest presence meta (JSON bytes) accepted by track [default: 32768].
    #[arg(long, env = "ROLLCALL_MAX_META_BYTES")]
    pub max_meta_bytes: Option<String>,
    /// Largest inbound WebSocket message in bytes [default: 1048576].
    #[arg(long, env = "ROLLCALL_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<String>,
    /// Outbound messages queued per connection before it is closed as a slow consumer
    /// [default: 1024].
    #[arg(long, env = "ROLLCALL_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<String>,
    /// Most keys in one batch status request [default: 10000].
    #[arg(long, env = "ROLLCALL_MAX_BATCH_KEYS")]
    pub max_batch_keys: Option<String>,
    /// Seconds to drain connections on SIGTERM/SIGINT [default: 10s].
    #[arg(long, env = "ROLLCALL_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Log format: text or json [default: text]. Levels come from RUST_LOG.
    #[arg(long, env = "ROLLCALL_LOG_FORMAT")]
    pub log_format: Option<String>,
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
    pub presence_key: Option<String>,
    /// Most open WebSocket connections on this node; more get HTTP 429 [default: 50000].
    #[arg(long, env = "ROLLCALL_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Most channel joins per second on one connection [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_JOINS_PER_SECOND")]
    pub max_joins_per_second: Option<String>,
    /// Most inbound messages per second on one connection, heartbeats excluded [default: 100].
    #[arg(long, env = "ROLLCALL_MAX_EVENTS_PER_SECOND")]
    pub max_events_per_second: Option<String>,
    /// Most heartbeats per second on one connection; more get an error reply [default: 10].
    #[arg(long, env = "ROLLCALL_MAX_HEARTBEATS_PER_SECOND")]
    pub max_heartbeats_per_second: Option<String>,
    /// Most presence track/untrack calls per channel within `presence_window` [default: 30].
    #[arg(long, env = "ROLLCALL_PRESENCE_CALLS")]
    pub presence_calls: Option<String>,
    /// The window for `presence_calls` [default: 30s].
    #[arg(long, env = "ROLLCALL_PRESENCE_WINDOW")]
    pub presence_window: Option<String>,
    /// Most distinct presence keys in one channel [default: 100000].
    #[arg(long, env = "ROLLCALL_MAX_KEYS_PER_TOPIC")]
    pub max_keys_per_topic: Option<String>,
    /// Most presences of one key in one channel (devices/tabs) [default: 256].
    #[arg(long, env = "ROLLCALL_MAX_PRESENCES_PER_KEY")]
    pub max_presences_per_key: Option<String>,
    /// Longest presence key in bytes; longer keys are refused at join and track
    /// [default: 255].
    #[arg(long, env = "ROLLCALL_MAX_KEY_BYTES")]
    pub max_key_bytes: Option<String>,
    /// Most offline keys whose last_seen is remembered in memory; the oldest is forgotten
    /// first beyond it [default: 1000000].
    #[arg(long, env = "ROLLCALL_MAX_OFFLINE_KEYS")]
    pub max_offline_keys: Option<String>,
    /// Longest topic name in bytes [default: 255].
    #[arg(long, env = "ROLLCALL_MAX_TOPIC_BYTES")]
    pub max_topic_bytes: Option<String>,
    /// Bytes queued for one connection before it is closed as a slow consumer
    /// [default: 1048576].
    #[arg(long, env = "ROLLCALL_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<String>,
    /// A connection that joins no channel within this time is closed [default: 2m].
    #[arg(long, env = "ROLLCALL_JOIN_TIMEOUT")]
    pub join_timeout: Option<String>,
    /// This node's id, unique among nodes sharing a database or Redis; letters, digits, `-`
    /// and `_`, at most 64 [default: `<hostname>-<port>`; a random id when the port is 0].
    #[arg(long, env = "ROLLCALL_NODE_ID")]
    pub node_id: Option<String>,
    /// Where logins and logouts are stored: `sqlite://PATH` (created if missing),
    /// `postgres://...`, or `none` to keep nothing [default: sqlite://rollcall.db].
    #[arg(long, env = "ROLLCALL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL (`redis://host:port/db`): run as one node of a cluster sharing presence,
    /// broadcasts and status through Redis [default: none, a single in-memory node].
    #[arg(long, env = "ROLLCALL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel; nodes of one cluster share it [default: rc].
    #[arg(long, env = "ROLLCALL_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// A cluster node silent this long is dead and its presences leave, e.g. 15s
    /// [default: 15s, at least 400ms].
    #[arg(long, env = "ROLLCALL_NODE_TIMEOUT")]
    pub node_timeout: Option<String>,
    /// Who may read the status of arbitrary keys over HTTP when tokens are verified: `any`
    /// (any valid token) or `service_role` [default: any].
    #[arg(long, env = "ROLLCALL_STATUS_READ")]
    pub status_read: Option<String>,
    /// `GET /metrics` on the main address: `open` (Prometheus convention) or `token` (a
    /// service_role token) [default: open].
    #[arg(long, env = "ROLLCALL_METRICS_AUTH")]
    pub metrics_auth: Option<String>,
    /// Serve `/metrics` (open) on this separate address instead of the main one, e.g.
    /// 127.0.0.1:9100 [default: none].
    #[arg(long, env = "ROLLCALL_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Origins allowed to call the REST API from a browser, comma-separated, or `*` for any
    /// [default: none, no cross-origin calls].
    #[arg(long, env = "ROLLCALL_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Largest HTTP request body in bytes; larger gets 413 [default: 1048576].
    #[arg(long, env = "ROLLCALL_MAX_HTTP_BODY_BYTES")]
    pub max_http_body_bytes: Option<String>,
    /// REST requests per second from one client address; more get 429 [default: 100].
    #[arg(long, env = "ROLLCALL_HTTP_REQUESTS_PER_SECOND")]
    pub http_requests_per_second: Option<String>,
    /// Time a connection has to send a complete request head (new or keep-alive)
    /// [default: 10s].
    #[arg(long, env = "ROLLCALL_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// Time a request has to send its whole body [default: 10s].
    #[arg(long, env = "ROLLCALL_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<String>,
    /// Most HTTP connections open and not upgraded to WebSocket; more are closed at accept
    /// [default: 1024].
    #[arg(long, env = "ROLLCALL_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<String>,
}

/// The same settings as they appear in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    heartbeat_interval: Option<String>,
    missed_heartbeats: Option<u64>,
    offline_grace: Option<String>,
    idle_after: Option<String>,
    diff_batch_window: Option<String>,
    max_channels_per_connection: Option<u64>,
    max_meta_bytes: Option<u64>,
    max_frame_bytes: Option<u64>,
    outbound_queue: Option<u64>,
    max_batch_keys: Option<u64>,
    shutdown_timeout: Option<String>,
    log_format: Option<String>,
    node_id: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    node_timeout: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<PathBuf>,
    jwt_jwks: Option<PathBuf>,
    presence_key: Option<String>,
    max_connections: Option<u64>,
    max_joins_per_second: Option<u64>,
    max_events_per_second: Option<u64>,
    max_heartbeats_per_second: Option<u64>,
    presence_calls: Option<u64>,
    presence_window: Option<String>,
    max_keys_per_topic: Option<u64>,
    max_presences_per_key: Option<u64>,
    max_topic_bytes: Option<u64>,
    max_key_bytes: Option<u64>,
    max_offline_keys: Option<u64>,
    outbound_queue_bytes: Option<u64>,
    join_timeout: Option<String>,
    status_read: Option<String>,
    metrics_auth: Option<String>,
    metrics_bind: Option<String>,
    cors_origins: Option<CorsOrigins>,
    max_http_body_bytes: Option<u64>,
    http_requests_per_second: Option<u64>,
    http_header_timeout: Option<String>,
    http_body_timeout: Option<String>,
    max_http_connections: Option<u64>,
    #[serde(default)]
    access: Vec<AccessRule>,
}

/// `cors_origins` in TOML: a list, or one comma-separated string as on the command line.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CorsOrigins {
    List(Vec<String>),
    Text(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
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
    pub redis: Option<crate::cluster::RedisSettings>,
    /// Login/logout persistence (see `--database-url`); `None` keeps nothing. The default
    /// for a config built in code is `None`; `from_cli` defaults to `sqlite://rollcall.db`.
    pub database_url: Option<String>,
    /// Token verification, access rules and the presence-key source.
    pub auth: Arc<Auth>,
    /// Per-connection and per-node limits.
    pub limits: Limits,
    /// The HTTP side: API access, CORS, body and connection limits.
    pub http: HttpSettings,
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

impl HttpSettings {
    /// Reads the HTTP settings from flags/env over the file over the defaults.
    fn from_sources(cli: &mut Cli, file: &mut FileConfig) -> Result<HttpSettings, ConfigError> {
        let d = HttpSettings::default();
        let status_read = match pick(cli.status_read.take(), file.status_read.take()).as_deref() {
            None | Some("any") => StatusRead::Any,
            Some("service_role") => StatusRead::ServiceRole,
            Some(other) => return Err(invalid("status_read", other, "any or service_role")),
        };
        let metrics_auth = match pick(cli.metrics_auth.take(), file.metrics_auth.take()).as_deref()
        {
            None | Some("open") => MetricsAuth::Open,
            Some("token") => MetricsAuth::Token,
            Some(other) => return Err(invalid("metrics_auth", other, "open or token")),
        };
        let metrics_bind =
            match pick(cli.metrics_bind.take(), file.metrics_bind.take()) {
                None => None,
                Some(s) => Some(s.trim().parse().map_err(|_| {
                    invalid("metrics_bind", &s, "an address such as 127.0.0.1:9100")
                })?),
            };
        let origins: Vec<String> = match (cli.cors_origins.take(), file.cors_origins.take()) {
            (Some(s), _) | (None, Some(CorsOrigins::Text(s))) => {
                s.split(',').map(|o| o.trim().to_string()).collect()
            }
            (None, Some(CorsOrigins::List(l))) => l,
            (None, None) => Vec::new(),
        };
        let origins: Vec<String> = origins.into_iter().filter(|o| !o.is_empty()).collect();
        if let Some(bad) = origins
            .iter()
            .find(|o| !crate::http_limits::valid_origin(o))
        {
            return Err(invalid(
                "cors_origins",
                bad,
                "`*` or origins such as https://app.example.com (scheme://host[:port])",
            ));
        }
        Ok(HttpSettings {
            status_read,
            metrics_auth,
            metrics_bind,
            cors_origins: origins,
            max_body_bytes: number(
                "max_http_body_bytes",
                cli.max_http_body_bytes.take(),
                file.max_http_body_bytes,
                d.max_body_bytes,
                64,
            )?,
            requests_per_second: number32(
                "http_requests_per_second",
                cli.http_requests_per_second.take(),
                file.http_requests_per_second,
                d.requests_per_second,
            )?,
            header_timeout: positive(
                duration(
                    "http_header_timeout",
                    pick(
                        cli.http_header_timeout.take(),
                        file.http_header_timeout.take(),
                    ),
                    d.header_timeout,
                )?,
                "http_header_timeout",
            )?,
            body_timeout: positive(
                duration(
                    "http_body_timeout",
                    pick(cli.http_body_timeout.take(), file.http_body_timeout.take()),
                    d.body_timeout,
                )?,
                "http_body_timeout",
            )?,
            max_connections: number(
                "max_http_connections",
                cli.max_http_connections.take(),
                file.max_http_connections,
                d.max_connections,
                1,
            )?,
        })
    }
}

fn invalid(key: &'static str, value: &str, allowed: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        allowed,
    }
}

fn positive(m: Millis, key: &'static str) -> Result<Millis, ConfigError> {
    if m > Millis::ZERO {
        Ok(m)
    } else {
        Err(invalid(key, "0", "a duration above zero, such as 10s"))
    }
}

/// A whole number from 1 to `u32::MAX` (no silent truncation).
fn number32(
    key: &'static str,
    cli: Option<String>,
    file: Option<u64>,
    default: u32,
) -> Result<u32, ConfigError> {
    let n = number(key, cli, file, default as usize, 1)?;
    u32::try_from(n)
        .map_err(|_| invalid(key, &n.to_string(), "a whole number from 1 to 4294967295"))
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
            auth: Arc::new(Auth::default()),
            limits: Limits::default(),
            http: HttpSettings::default(),
        }
    }
}

/// The default `--database-url`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rollcall.db";

/// Validates `--database-url`: `none`/`off` disables persistence.
fn database_url(v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v.as_deref().map(str::trim) {
        None => Ok(Some(DEFAULT_DATABASE_URL.to_string())),
        Some("none" | "off" | "") => Ok(None),
        Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => Ok(Some(u.to_string())),
        Some(u) => Err(ConfigError::Invalid {
            key: "database_url",
            value: u.to_string(),
            allowed: "sqlite://PATH, postgres://USER@HOST/DB, or none",
        }),
    }
}

/// The default node id: `<hostname>-<port>`, stable across restarts (so crash recovery finds
/// this node's sessions) and distinct for nodes on one host.
pub fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "rollcall".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let host = if host.is_empty() {
        "rollcall".to_string()
    } else {
        host
    };
    format!("{host}-{port}")
}

/// A fresh random node id such as `node-3f2a9c1e`.
pub fn random_node_id() -> String {
    format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a duration such as `250ms`, `10s`, `5m`, `1h` (a bare number is milliseconds).
pub fn parse_duration(s: &str) -> Option<Millis> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor).map(Millis)
}

fn pick<T>(cli: Option<T>, file: Option<T>) -> Option<T> {
    cli.or(file)
}

fn duration(key: &'static str, v: Option<String>, default: Millis) -> Result<Millis, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(&s).ok_or(ConfigError::Invalid {
            key,
            value: s,
            allowed: "a duration such as 500ms, 10s, 5m or 1h",
        }),
    }
}

fn number(
    key: &'static str,
    cli: Option<String>,
    file: Option<u64>,
    default: usize,
    min: usize,
) -> Result<usize, ConfigError> {
    let (value, text) = match (cli, file) {
        (Some(s), _) => (s.trim().parse::<usize>().ok(), s),
        (None, Some(n)) => (usize::try_from(n).ok(), n.to_string()),
        (None, None) => return Ok(default),
    };
    match value {
        Some(n) if n >= min => Ok(n),
        _ => Err(ConfigError::Invalid {
            key,
            value: text,
            allowed: if min == 0 {
                "a whole number"
            } else {
                "a whole number of at least 1"
            },
        }),
    }
}

impl ServerConfig {
    /// Merges flags/env over the optional file over the defaults, and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key.
    pub fn from_cli(mut cli: Cli) -> Result<ServerConfig, ConfigError> {
        let mut file: FileConfig = match &cli.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let d = ServerConfig::default();
        let http = HttpSettings::from_sources(&mut cli, &mut file)?;
        let bind_text = pick(cli.bind, file.bind);
        let bind = match bind_text {
            None => d.bind,
            Some(s) => s.parse().map_err(|_| ConfigError::Invalid {
                key: "bind",
                value: s,
                allowed: "an address such as 127.0.0.1:4000",
            })?,
        };
        let mut core = d.core.clone();
        core.heartbeat_interval = duration(
            "heartbeat_interval",
            pick(cli.heartbeat_interval, file.heartbeat_interval),
            core.heartbeat_interval,
        )?;
        core.missed_heartbeats = number(
            "missed_heartbeats",
            cli.missed_heartbeats,
            file.missed_heartbeats,
            3,
            1,
        )? as u32;
        core.offline_grace = duration(
            "offline_grace",
            pick(cli.offline_grace, file.offline_grace),
            core.offline_grace,
        )?;
        core.idle_after = match pick(cli.idle_after, file.idle_after) {
            Some(s) if s.trim() == "off" => None,
            other => Some(duration("idle_after", other, Millis::from_secs(300))?),
        };
        core.diff_batch_window = duration(
            "diff_batch_window",
            pick(cli.diff_batch_window, file.diff_batch_window),
            core.diff_batch_window,
        )?;
        core.max_meta_bytes = number(
            "max_meta_bytes",
            cli.max_meta_bytes,
            file.max_meta_bytes,
            core.max_meta_bytes,
            2,
        )?;
        core.max_batch_keys = number(
            "max_batch_keys",
            cli.max_batch_keys,
            file.max_batch_keys,
            core.max_batch_keys,
            1,
        )?;
        // Timers need a resolution finer than the shortest period they measure.
        let shortest = [
            Some(core.heartbeat_interval),
            Some(core.offline_grace),
            Some(core.diff_batch_window),
        ]
        .into_iter()
        .flatten()
        .filter(|m| *m > Millis::ZERO)
        .min()
        .unwrap_or(Millis(100));
        core.timer_granularity = Millis((shortest.0 / 10).clamp(1, 100));
        core.ref_seed = uuid::Uuid::new_v4().as_u64_pair().0;
        core.validate().map_err(|e| ConfigError::Invalid {
            key: e.key,
            value: String::new(),
            allowed: e.allowed,
        })?;
        let log_format = match pick(cli.log_format, file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "log_format",
                    value: other.to_string(),
                    allowed: "text or json",
                });
            }
        };
        let node_id = match pick(cli.node_id, file.node_id) {
            // port 0 (an OS-chosen port) cannot name a node stably: use a random id
            None if bind.port() == 0 => random_node_id(),
            None => default_node_id(bind.port()),
            Some(id) if valid_node_id(&id) => id,
            Some(id) => {
                return Err(ConfigError::Invalid {
                    key: "node_id",
                    value: id,
                    allowed: "1 to 64 letters, digits, '-' or '_'",
                });
            }
        };
        core.max_keys_per_topic = number(
            "max_keys_per_topic",
            cli.max_keys_per_topic,
            file.max_keys_per_topic,
            core.max_keys_per_topic,
            1,
        )?;
        core.max_presences_per_key = number(
            "max_presences_per_key",
            cli.max_presences_per_key,
            file.max_presences_per_key,
            core.max_presences_per_key,
            1,
        )?;
        core.max_key_bytes = number(
            "max_key_bytes",
            cli.max_key_bytes.take(),
            file.max_key_bytes,
            core.max_key_bytes,
            1,
        )?;
        core.max_offline_keys = number(
            "max_offline_keys",
            cli.max_offline_keys.take(),
            file.max_offline_keys,
            core.max_offline_keys,
            0,
        )?;
        let dl = Limits::default();
        let limits = Limits {
            max_connections: number(
                "max_connections",
                cli.max_connections,
                file.max_connections,
                dl.max_connections,
                1,
            )?,
            max_joins_per_second: number(
                "max_joins_per_second",
                cli.max_joins_per_second,
                file.max_joins_per_second,
                dl.max_joins_per_second as usize,
                1,
            )? as u32,
            max_events_per_second: number(
                "max_events_per_second",
                cli.max_events_per_second,
                file.max_events_per_second,
                dl.max_events_per_second as usize,
                1,
            )? as u32,
            max_heartbeats_per_second: u32::try_from(number(
                "max_heartbeats_per_second",
                cli.max_heartbeats_per_second,
                file.max_heartbeats_per_second,
                dl.max_heartbeats_per_second as usize,
                1,
            )?)
            .unwrap_or(u32::MAX),
            presence_calls: number(
                "presence_calls",
                cli.presence_calls,
                file.presence_calls,
                dl.presence_calls as usize,
                1,
            )? as u32,
            presence_window: duration(
                "presence_window",
                pick(cli.presence_window, file.presence_window),
                dl.presence_window,
            )?,
            max_topic_bytes: number(
                "max_topic_bytes",
                cli.max_topic_bytes,
                file.max_topic_bytes,
                dl.max_topic_bytes,
                10,
            )?,
            outbound_queue_bytes: number(
                "outbound_queue_bytes",
                cli.outbound_queue_bytes,
                file.outbound_queue_bytes,
                dl.outbound_queue_bytes,
                1024,
            )?,
            join_timeout: duration(
                "join_timeout",
                pick(cli.join_timeout, file.join_timeout),
                dl.join_timeout,
            )?,
        };
        let read =
            |key: &'static str, path: Option<PathBuf>| -> Result<Option<Vec<u8>>, ConfigError> {
                path.map(|p| {
                    std::fs::read(&p).map_err(|e| ConfigError::Invalid {
                        key,
                        value: p.display().to_string(),
                        allowed: if e.kind() == std::io::ErrorKind::NotFound {
                            "a path to an existing, readable file (not found)"
                        } else {
                            "a path to an existing, readable file"
                        },
                    })
                })
                .transpose()
            };
        let public_key = read(
            "jwt_public_key",
            pick(cli.jwt_public_key, file.jwt_public_key),
        )?;
        let jwks = read("jwt_jwks", pick(cli.jwt_jwks, file.jwt_jwks))?;
        let jwks = jwks
            .map(String::from_utf8)
            .transpose()
            .map_err(|_| ConfigError::Invalid {
                key: "jwt_jwks",
                value: String::new(),
                allowed: "a UTF-8 JSON Web Key Set file",
            })?;
        let secret = pick(cli.jwt_secret, file.jwt_secret).filter(|s| !s.is_empty());
        let mut auth = Auth::new(secret.as_deref(), public_key.as_deref(), jwks.as_deref())
            .map_err(|e| ConfigError::File {
                path: PathBuf::from(e.key),
                reason: e.reason,
            })?;
        auth.presence_key = match pick(cli.presence_key, file.presence_key).as_deref() {
            None | Some("client") => PresenceKeySource::Client,
            Some("sub") => PresenceKeySource::Sub,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "presence_key",
                    value: other.to_string(),
                    allowed: "client or sub",
                });
            }
        };
        auth.rules = file.access;
        Ok(ServerConfig {
            http,
            database_url: database_url(pick(cli.database_url, file.database_url))?,
            auth: Arc::new(auth),
            limits,
            redis: crate::cluster::settings(
                pick(cli.redis_url, file.redis_url),
                pick(cli.redis_prefix, file.redis_prefix),
                pick(cli.node_timeout, file.node_timeout),
            )?,
            node_id,
            bind,
            core,
            max_channels_per_connection: number(
                "max_channels_per_connection",
                cli.max_channels_per_connection,
                file.max_channels_per_connection,
                d.max_channels_per_connection,
                1,
            )?,
            max_frame_bytes: number(
                "max_frame_bytes",
                cli.max_frame_bytes,
                file.max_frame_bytes,
                d.max_frame_bytes,
                64,
            )?,
            outbound_queue: number(
                "outbound_queue",
                cli.outbound_queue,
                file.outbound_queue,
                d.outbound_queue,
                1,
            )?,
            shutdown_timeout: duration(
                "shutdown_timeout",
                pick(cli.shutdown_timeout, file.shutdown_timeout),
                d.shutdown_timeout,
            )?,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("250ms"), Some(Millis(250)));
        assert_eq!(parse_duration("10s"), Some(Millis(10_000)));
        assert_eq!(parse_duration("5m"), Some(Millis(300_000)));
        assert_eq!(parse_duration("7"), Some(Millis(7)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = ServerConfig::from_cli(Cli::default()).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:4000");
        assert_eq!(c.core.heartbeat_interval, Millis::from_secs(60));
        assert_eq!(c.core.missed_heartbeats, 3);
        assert_eq!(c.max_channels_per_connection, 100);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let cli = Cli {
            missed_heartbeats: Some("0".into()),
            ..Cli::default()
        };
        let e = ServerConfig::from_cli(cli).unwrap_err().to_string();
        assert!(e.contains("missed_heartbeats"), "{e}");
        let cli = Cli {
            heartbeat_interval: Some("soon".into()),
            ..Cli::default()
        };
        let e = ServerConfig::from_cli(cli).unwrap_err().to_string();
        assert!(
            e.contains("heartbeat_interval") && e.contains("500ms"),
            "{e}"
        );
    }

    #[test]
    fn file_values_apply_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("rollcall-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rollcall.toml");
        std::fs::write(
            &path,
            "heartbeat_interval = \"2s\"\nmissed_heartbeats = 5\nidle_after = \"off\"\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            missed_heartbeats: Some("4".into()),
            ..Cli::default()
        };
        let c = ServerConfig::from_cli(cli).unwrap();
        assert_eq!(c.core.heartbeat_interval, Millis(2000));
        assert_eq!(c.core.missed_heartbeats, 4);
        assert_eq!(c.core.idle_after, None);
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        let cli = Cli {
            config: Some(path),
            ..Cli::default()
        };
        let e = ServerConfig::from_cli(cli).unwrap_err().to_string();
        assert!(e.contains("bogus_key"), "{e}");
    }
}
