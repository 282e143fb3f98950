//! Server configuration: command-line flags, `ROLLCALL_*` environment variables and an
//! optional TOML file, merged in that order of precedence into one [`ServerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use rollcall_core::{Config as CoreConfig, Millis};
use serde::Deserialize;

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
    /// This node's id, unique among nodes sharing a database or Redis; letters, digits, `-`
    /// and `_`, at most 64 [default: a random id per start].
    #[arg(long, env = "ROLLCALL_NODE_ID")]
    pub node_id: Option<String>,
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
        }
    }
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
    pub fn from_cli(cli: Cli) -> Result<ServerConfig, ConfigError> {
        let file = match &cli.config {
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
            None => d.node_id.clone(),
            Some(id) if valid_node_id(&id) => id,
            Some(id) => {
                return Err(ConfigError::Invalid {
                    key: "node_id",
                    value: id,
                    allowed: "1 to 64 letters, digits, '-' or '_'",
                });
            }
        };
        Ok(ServerConfig {
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
