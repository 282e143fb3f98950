//! Client and channel configuration.

use std::time::Duration;

use rollcall_phoenix::Vsn;

use crate::error::ConfigError;

/// How a [`Client`](crate::Client) connects. Build with [`ClientConfig::new`], then set fields.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Realtime endpoint without `/websocket`, e.g. `ws://127.0.0.1:4000/realtime/v1` or
    /// `wss://<project>.supabase.co/realtime/v1` (needs the `tls` feature). `http(s)://` is
    /// rewritten to `ws(s)://`. The socket URL is `<endpoint>/websocket?apikey=..&vsn=..`, as
    /// realtime-js builds it (protocol §1.1).
    pub endpoint: String,
    /// The `apikey` query parameter (a Supabase anon key, or any value for Rollcall without auth).
    pub apikey: String,
    /// A user JWT sent as `access_token` in every join; None: the server uses the apikey.
    pub token: Option<String>,
    /// The serializer. Default 2.0.0 (JSON arrays), as realtime-js ≥ 2.91.
    pub vsn: Vsn,
    /// Period of `phoenix` heartbeats. Default 60 s; must be below the server's idle timeout
    /// (Rollcall: heartbeat interval × missed heartbeats, 180 s by default). A heartbeat still
    /// unanswered when the next is due closes the socket and reconnects, as Phoenix JS does.
    pub heartbeat_interval: Duration,
    /// Delays before reconnect attempts 1, 2, 3…; the last repeats. Default 1, 2, 5, 10 s
    /// (realtime-js's `RECONNECT_INTERVALS`). Must not be empty.
    pub reconnect_after: Vec<Duration>,
    /// Delays before re-joining a channel the server refused or errored; the last repeats.
    /// Default 1, 2, 5, 10 s (Phoenix JS's `rejoinAfterMs`). Must not be empty.
    pub rejoin_after: Vec<Duration>,
    /// How long a join, track, untrack, acked broadcast or leave waits for its reply, and the
    /// WebSocket handshake for its answer. Default 10 s.
    pub push_timeout: Duration,
    /// Events buffered per channel subscriber before the slowest one lags. Default 1024.
    pub event_capacity: usize,
}

impl ClientConfig {
    /// A configuration with the defaults above.
    pub fn new(endpoint: impl Into<String>, apikey: impl Into<String>) -> ClientConfig {
        let secs = |s| Duration::from_secs(s);
        ClientConfig {
            endpoint: endpoint.into(),
            apikey: apikey.into(),
            token: None,
            vsn: Vsn::V2,
            heartbeat_interval: secs(60),
            reconnect_after: vec![secs(1), secs(2), secs(5), secs(10)],
            rejoin_after: vec![secs(1), secs(2), secs(5), secs(10)],
            push_timeout: secs(10),
            event_capacity: 1024,
        }
    }

    /// The WebSocket URL this configuration connects to.
    ///
    /// # Errors
    /// [`ConfigError`] for an endpoint of another scheme, or zero durations and empty schedules.
    pub fn socket_url(&self) -> Result<String, ConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Zero("heartbeat_interval"));
        }
        if self.reconnect_after.is_empty() {
            return Err(ConfigError::Zero("reconnect_after"));
        }
        if self.rejoin_after.is_empty() {
            return Err(ConfigError::Zero("rejoin_after"));
        }
        if self.push_timeout.is_zero() {
            return Err(ConfigError::Zero("push_timeout"));
        }
        let e = self.endpoint.trim_end_matches('/');
        let base = if let Some(rest) = e.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = e.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if e.starts_with("ws://") || e.starts_with("wss://") {
            e.to_owned()
        } else {
            return Err(ConfigError::BadEndpoint(self.endpoint.clone()));
        };
        Ok(format!(
            "{base}/websocket?apikey={}&vsn={}",
            encode_query(&self.apikey),
            self.vsn.as_str()
        ))
    }
}

/// How one channel joins (the `config` of `phx_join`, protocol §3.2).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelConfig {
    /// `presence.key`: the key this client's presences are tracked under. Empty (the default)
    /// makes the server pick a fresh UUID per join.
    pub presence_key: String,
    /// `presence.enabled`: receive `presence_state`, keep a presence map, fire presence events.
    /// Default true here (realtime-js sets it when a presence listener exists).
    pub presence_enabled: bool,
    /// `broadcast.self`: receive this client's own broadcasts. Default false.
    pub broadcast_self: bool,
    /// `broadcast.ack`: the server replies to each broadcast and
    /// [`Channel::broadcast`](crate::Channel::broadcast) waits for it. Default false.
    pub broadcast_ack: bool,
    /// `private`: a private channel (RLS-authorised on Supabase). Default false.
    pub private: bool,
}

impl ChannelConfig {
    /// Presence enabled under `key`; broadcast self and ack off.
    pub fn with_key(key: impl Into<String>) -> ChannelConfig {
        ChannelConfig {
            presence_key: key.into(),
            presence_enabled: true,
            ..ChannelConfig::default()
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The delay before attempt `n` (0-based) of a schedule whose last entry repeats.
pub(crate) fn backoff(schedule: &[Duration], n: usize) -> Duration {
    schedule
        .get(n)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_is_built_as_realtime_js_builds_it() {
        let cfg = ClientConfig::new("http://h:1/realtime/v1/", "a b");
        assert_eq!(
            cfg.socket_url().unwrap(),
            "ws://h:1/realtime/v1/websocket?apikey=a%20b&vsn=2.0.0"
        );
        let mut cfg = ClientConfig::new("wss://x/realtime/v1", "k");
        cfg.vsn = Vsn::V1;
        assert_eq!(
            cfg.socket_url().unwrap(),
            "wss://x/realtime/v1/websocket?apikey=k&vsn=1.0.0"
        );
        let cfg = ClientConfig::new("ftp://x", "k");
        assert_eq!(
            cfg.socket_url(),
            Err(ConfigError::BadEndpoint("ftp://x".into()))
        );
    }

    #[test]
    fn backoff_repeats_the_last_delay() {
        let s = [Duration::from_millis(1), Duration::from_millis(5)];
        assert_eq!(backoff(&s, 0), Duration::from_millis(1));
        assert_eq!(backoff(&s, 7), Duration::from_millis(5));
    }
}
