//! Settings → [`ServerConfig`]: defaults for what is unset (the core's from
//! `rollcall_core::Config::default()`, the server's from its `Default` impls), range checks,
//! and errors that name the key.

use std::path::PathBuf;
use std::sync::Arc;

use rollcall_core::Millis;

use super::values::{random_node_id, valid_node_id};
use super::{
    ConfigError, DEFAULT_DATABASE_URL, HttpSettings, Limits, RedisSettings, ServerConfig, Settings,
    default_node_id,
};
use crate::auth::Auth;

fn invalid(key: &'static str, value: impl ToString, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// `v` (or `default` when unset), refused below `min`.
fn at_least<T: PartialOrd + Copy + ToString>(
    key: &'static str,
    v: Option<T>,
    default: T,
    min: T,
) -> Result<T, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min {
        return Err(invalid(
            key,
            v,
            format!("a whole number of at least {}", min.to_string()),
        ));
    }
    Ok(v)
}

/// A duration (or `default`) that must be above zero.
fn positive(
    key: &'static str,
    v: Option<super::Duration>,
    default: Millis,
) -> Result<Millis, ConfigError> {
    let m = v.map_or(default, |d| d.0);
    if m == Millis::ZERO {
        return Err(invalid(key, "0", "a duration above zero, such as 10s"));
    }
    Ok(m)
}

fn duration(v: Option<super::Duration>, default: Millis) -> Millis {
    v.map_or(default, |d| d.0)
}

impl ServerConfig {
    /// Reads the TOML file the settings name (if any), lays the settings over it, fills in
    /// the defaults and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key, or the file that could not be read.
    pub fn from_settings(s: Settings) -> Result<ServerConfig, ConfigError> {
        let s = s.merged_with_file()?;
        let d = ServerConfig::default();
        let bind = s.bind.unwrap_or(d.bind);
        let core = core_config(&s)?;
        let node_id = match s.node_id.clone() {
            // port 0 (an OS-chosen port) cannot name a node stably: use a random id
            None if bind.port() == 0 => random_node_id(),
            None => default_node_id(bind.port()),
            Some(id) if valid_node_id(&id) => id,
            Some(id) => {
                return Err(invalid(
                    "node_id",
                    id,
                    "1 to 64 letters, digits, '-' or '_'",
                ));
            }
        };
        Ok(ServerConfig {
            http: http_settings(&s)?,
            limits: limits(&s, &core)?,
            database_url: database_url(s.database_url.as_deref())?,
            database: crate::persist::DatabaseSettings {
                require: s.require_database.unwrap_or(false),
                login_durability: s.login_durability.unwrap_or_default(),
            },
            redis: redis_settings(&s)?,
            auth: Arc::new(auth(&s)?),
            node_id,
            bind,
            core,
            max_channels_per_connection: at_least(
                "max_channels_per_connection",
                s.max_channels_per_connection,
                d.max_channels_per_connection,
                1,
            )?,
            max_frame_bytes: at_least("max_frame_bytes", s.max_frame_bytes, d.max_frame_bytes, 64)?,
            outbound_queue: at_least("outbound_queue", s.outbound_queue, d.outbound_queue, 1)?,
            shutdown_timeout: duration(s.shutdown_timeout, d.shutdown_timeout),
            log_format: s.log_format.unwrap_or(d.log_format),
        })
    }
}

fn core_config(s: &Settings) -> Result<rollcall_core::Config, ConfigError> {
    let mut core = rollcall_core::Config::default();
    core.heartbeat_interval = duration(s.heartbeat_interval, core.heartbeat_interval);
    core.missed_heartbeats = at_least(
        "missed_heartbeats",
        s.missed_heartbeats,
        core.missed_heartbeats,
        1,
    )?;
    core.offline_grace = duration(s.offline_grace, core.offline_grace);
    if let Some(idle) = s.idle_after {
        core.idle_after = idle.0;
    }
    core.diff_batch_window = duration(s.diff_batch_window, core.diff_batch_window);
    core.max_meta_bytes = at_least("max_meta_bytes", s.max_meta_bytes, core.max_meta_bytes, 2)?;
    core.max_batch_keys = at_least("max_batch_keys", s.max_batch_keys, core.max_batch_keys, 1)?;
    core.max_keys_per_topic = at_least(
        "max_keys_per_topic",
        s.max_keys_per_topic,
        core.max_keys_per_topic,
        1,
    )?;
    core.max_presences_per_key = at_least(
        "max_presences_per_key",
        s.max_presences_per_key,
        core.max_presences_per_key,
        1,
    )?;
    core.max_key_bytes = at_least("max_key_bytes", s.max_key_bytes, core.max_key_bytes, 1)?;
    core.max_offline_keys = s.max_offline_keys.unwrap_or(core.max_offline_keys);
    // Timers need a resolution finer than the shortest period they measure.
    let shortest = [
        core.heartbeat_interval,
        core.offline_grace,
        core.diff_batch_window,
    ]
    .into_iter()
    .filter(|m| *m > Millis::ZERO)
    .min()
    .unwrap_or(Millis(100));
    core.timer_granularity = Millis((shortest.0 / 10).clamp(1, 100));
    core.ref_seed = uuid::Uuid::new_v4().as_u64_pair().0;
    core.validate().map_err(|e| invalid(e.key, "", e.allowed))?;
    Ok(core)
}

fn limits(s: &Settings, core: &rollcall_core::Config) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let max_watched_keys = at_least(
        "max_watched_keys",
        s.max_watched_keys,
        d.max_watched_keys,
        1,
    )?;
    if max_watched_keys > core.max_batch_keys {
        return Err(invalid(
            "max_watched_keys",
            max_watched_keys,
            format!("at most max_batch_keys ({})", core.max_batch_keys),
        ));
    }
    Ok(Limits {
        max_connections: at_least("max_connections", s.max_connections, d.max_connections, 1)?,
        max_joins_per_second: at_least(
            "max_joins_per_second",
            s.max_joins_per_second,
            d.max_joins_per_second,
            1,
        )?,
        max_events_per_second: at_least(
            "max_events_per_second",
            s.max_events_per_second,
            d.max_events_per_second,
            1,
        )?,
        max_heartbeats_per_second: at_least(
            "max_heartbeats_per_second",
            s.max_heartbeats_per_second,
            d.max_heartbeats_per_second,
            1,
        )?,
        presence_calls: at_least("presence_calls", s.presence_calls, d.presence_calls, 1)?,
        presence_window: positive("presence_window", s.presence_window, d.presence_window)?,
        max_topic_bytes: at_least("max_topic_bytes", s.max_topic_bytes, d.max_topic_bytes, 10)?,
        outbound_queue_bytes: at_least(
            "outbound_queue_bytes",
            s.outbound_queue_bytes,
            d.outbound_queue_bytes,
            1024,
        )?,
        join_timeout: positive("join_timeout", s.join_timeout, d.join_timeout)?,
        max_watched_keys,
    })
}

fn http_settings(s: &Settings) -> Result<HttpSettings, ConfigError> {
    let d = HttpSettings::default();
    let origins = s.cors_origins.clone().unwrap_or_default().0;
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
        status_read: s.status_read.unwrap_or(d.status_read),
        metrics_auth: s.metrics_auth.unwrap_or(d.metrics_auth),
        metrics_bind: s.metrics_bind,
        cors_origins: origins,
        max_body_bytes: at_least(
            "max_http_body_bytes",
            s.max_http_body_bytes,
            d.max_body_bytes,
            64,
        )?,
        requests_per_second: at_least(
            "http_requests_per_second",
            s.http_requests_per_second,
            d.requests_per_second,
            1,
        )?,
        header_timeout: positive(
            "http_header_timeout",
            s.http_header_timeout,
            d.header_timeout,
        )?,
        body_timeout: positive("http_body_timeout", s.http_body_timeout, d.body_timeout)?,
        max_connections: at_least(
            "max_http_connections",
            s.max_http_connections,
            d.max_connections,
            1,
        )?,
    })
}

/// `database_url`: unset is the SQLite default; `none`/`off`/empty disables persistence.
/// A build without the `sql` feature has no default and refuses a URL.
fn database_url(v: Option<&str>) -> Result<Option<String>, ConfigError> {
    if cfg!(not(feature = "sql")) {
        return match v.map(str::trim) {
            None | Some("none" | "off" | "") => Ok(None),
            Some(u) => Err(invalid(
                "database_url",
                u,
                "none: this build has no database support (cargo feature `sql`)",
            )),
        };
    }
    match v.map(str::trim) {
        None => Ok(Some(DEFAULT_DATABASE_URL.to_string())),
        Some("none" | "off" | "") => Ok(None),
        Some(u) if u.starts_with("sqlite:") || u.starts_with("postgres") => Ok(Some(u.to_string())),
        Some(u) => Err(invalid(
            "database_url",
            u,
            "sqlite://PATH, postgres://USER@HOST/DB, or none",
        )),
    }
}

fn redis_settings(s: &Settings) -> Result<Option<RedisSettings>, ConfigError> {
    let Some(url) = s.redis_url.clone().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if cfg!(not(feature = "redis")) {
        return Err(invalid(
            "redis_url",
            url,
            "none: this build has no Redis support (cargo feature `redis`)",
        ));
    }
    let node_timeout = s.node_timeout.map_or(Millis::from_secs(15), |d| d.0);
    if node_timeout < Millis(400) {
        return Err(invalid(
            "node_timeout",
            format!("{}ms", node_timeout.0),
            "a duration of at least 400ms, such as 15s",
        ));
    }
    let prefix = s.redis_prefix.clone().unwrap_or_else(|| "rc".to_string());
    let cluster = s.redis_cluster.unwrap_or(false);
    redis_client_accepts(&url, cluster, &prefix)?;
    Ok(Some(RedisSettings {
        url,
        cluster,
        prefix,
        node_timeout,
    }))
}

/// The Redis adapter's own checks of the URL and prefix, run here so the error names the key.
#[cfg(feature = "redis")]
fn redis_client_accepts(url: &str, cluster: bool, prefix: &str) -> Result<(), ConfigError> {
    let mut probe = rollcall_redis::ClusterConfig::new(url, "probe");
    probe.prefix = prefix.to_string();
    probe.redis_cluster = cluster;
    match rollcall_redis::Cluster::new(probe) {
        Ok(_) => Ok(()),
        Err(rollcall_redis::ClusterError::InvalidPrefix(p)) => Err(invalid(
            "redis_prefix",
            p,
            "1 to 64 characters without braces",
        )),
        Err(_) if cluster => Err(invalid(
            "redis_url",
            url,
            "seed URLs separated by commas, such as redis://10.0.0.1:6379,redis://10.0.0.2:6379",
        )),
        Err(_) => Err(invalid(
            "redis_url",
            url,
            "a URL such as redis://127.0.0.1:6379",
        )),
    }
}

#[cfg(not(feature = "redis"))]
fn redis_client_accepts(_url: &str, _cluster: bool, _prefix: &str) -> Result<(), ConfigError> {
    Ok(())
}

fn auth(s: &Settings) -> Result<Auth, ConfigError> {
    let read =
        |key: &'static str, path: &Option<PathBuf>| -> Result<Option<Vec<u8>>, ConfigError> {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| {
                        invalid(
                            key,
                            p.display(),
                            if e.kind() == std::io::ErrorKind::NotFound {
                                "a path to an existing, readable file (not found)"
                            } else {
                                "a path to an existing, readable file"
                            },
                        )
                    })
                })
                .transpose()
        };
    let public_key = read("jwt_public_key", &s.jwt_public_key)?;
    let jwks = read("jwt_jwks", &s.jwt_jwks)?
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| invalid("jwt_jwks", "", "a UTF-8 JSON Web Key Set file"))?;
    let secret = s.jwt_secret.as_deref().filter(|x| !x.is_empty());
    let mut auth = Auth::new(secret, public_key.as_deref(), jwks.as_deref()).map_err(|e| {
        ConfigError::File {
            path: PathBuf::from(e.key),
            reason: e.reason,
        }
    })?;
    auth.presence_key = s.presence_key.unwrap_or_default();
    auth.rules = s.access.clone();
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, String> {
        let mut argv = vec!["rollcall"];
        argv.extend_from_slice(args);
        let s = Settings::try_parse_from(argv).map_err(|e| e.to_string())?;
        ServerConfig::from_settings(s).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_documented_ones_and_the_core() {
        let c = parse(&[]).unwrap();
        let core = rollcall_core::Config::default();
        assert_eq!(c.bind.to_string(), "127.0.0.1:4000");
        assert_eq!(c.core.heartbeat_interval, Millis::from_secs(60));
        assert_eq!(c.core.missed_heartbeats, 3);
        assert_eq!(c.core.idle_after, core.idle_after);
        assert_eq!(c.core.max_offline_keys, core.max_offline_keys);
        assert_eq!(c.max_channels_per_connection, 100);
        assert_eq!(c.database_url.as_deref(), Some(DEFAULT_DATABASE_URL));
        assert!(c.node_id.ends_with("-4000"), "{}", c.node_id);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = parse(&["--missed-heartbeats", "0"]).unwrap_err();
        assert!(e.contains("missed_heartbeats"), "{e}");
        let e = parse(&["--heartbeat-interval", "soon"]).unwrap_err();
        assert!(
            e.contains("--heartbeat-interval") && e.contains("500ms"),
            "{e}"
        );
        // No silent truncation: a rate beyond u32 is refused, not wrapped.
        let e = parse(&["--max-events-per-second", "4294967296"]).unwrap_err();
        assert!(e.contains("--max-events-per-second"), "{e}");
        let e = parse(&["--status-read", "everyone"]).unwrap_err();
        assert!(e.contains("service_role"), "{e}");
        let e = parse(&["--cors-origins", "app.example.com"]).unwrap_err();
        assert!(e.contains("cors_origins"), "{e}");
        let e = parse(&["--redis-url", "redis://x", "--node-timeout", "100ms"]).unwrap_err();
        assert!(e.contains("node_timeout"), "{e}");
        let e = parse(&["--max-watched-keys", "20000"]).unwrap_err();
        assert!(e.contains("max_watched_keys") && e.contains("10000"), "{e}");
        assert_eq!(
            parse(&["--max-watched-keys", "5"])
                .unwrap()
                .limits
                .max_watched_keys,
            5
        );
        let e = parse(&["--redis-url", "http://x"]).unwrap_err();
        assert!(e.contains("redis_url"), "{e}");
        #[cfg(feature = "redis")]
        {
            let e = parse(&["--redis-url", "redis://a:7000,http://b", "--redis-cluster"]);
            let e = e.unwrap_err();
            assert!(
                e.contains("redis_url") && e.contains("separated by commas"),
                "{e}"
            );
            let ok = parse(&[
                "--redis-url",
                "redis://a:7000,redis://b:7001",
                "--redis-cluster",
            ]);
            assert!(ok.unwrap().redis.is_some_and(|r| r.cluster));
        }
    }

    #[test]
    fn file_values_apply_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("rollcall-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rollcall.toml");
        std::fs::write(
            &path,
            "heartbeat_interval = \"2s\"\nmissed_heartbeats = 5\nidle_after = \"off\"\n\
             cors_origins = [\"https://a.example\"]\nstatus_read = \"service_role\"\n\
             [[access]]\ntopic = \"room:*\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = parse(&["--config", p, "--missed-heartbeats", "4"]).unwrap();
        assert_eq!(c.core.heartbeat_interval, Millis(2000));
        assert_eq!(c.core.missed_heartbeats, 4);
        assert_eq!(c.core.idle_after, None);
        assert_eq!(c.http.cors_origins, vec!["https://a.example".to_string()]);
        assert_eq!(
            c.http.status_read,
            crate::http_auth::StatusRead::ServiceRole
        );
        assert_eq!(c.auth.rules.len(), 1);
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        let e = parse(&["--config", p]).unwrap_err();
        assert!(e.contains("bogus_key"), "{e}");
        std::fs::write(&path, "max_connections = -1\n").unwrap();
        let e = parse(&["--config", p]).unwrap_err();
        assert!(e.contains("max_connections"), "{e}");
    }
}
