//! Errors, one enum per operation family.

/// Why [`Client::connect`](crate::Client::connect) refused its configuration.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The endpoint is not a `ws://`, `wss://`, `http://` or `https://` URL.
    #[error("endpoint {0:?} must start with ws://, wss://, http:// or https://")]
    BadEndpoint(String),
    /// The serializer version is neither 1.0.0 nor 2.0.0.
    #[error("vsn {0:?} is not supported, use 1.0.0 or 2.0.0")]
    BadVsn(String),
    /// A zero heartbeat interval or an empty reconnect schedule.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

/// Why a channel operation (join, track, untrack, broadcast, leave) failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The server replied with an error; the text is its `reason` (or the whole response).
    #[error("server refused: {0}")]
    Refused(String),
    /// No reply within the push timeout.
    #[error("no reply within {0} ms")]
    TimedOut(u64),
    /// The socket closed before the reply came. A tracked meta is still re-tracked on rejoin.
    #[error("the connection closed before the reply")]
    Disconnected,
    /// The channel is not joined (left, closed by the server, or waiting to rejoin).
    #[error("channel {0} is not joined")]
    NotJoined(String),
    /// This client already has a channel on that topic.
    #[error("channel {0} is already joined on this client")]
    AlreadyJoined(String),
    /// The client was shut down.
    #[error("the client is closed")]
    ClientClosed,
    /// A meta or broadcast payload that cannot be sent (a track meta must be a JSON object).
    #[error("invalid payload: {0}")]
    InvalidPayload(&'static str),
}
