//! Error enums, one per operation family. Messages are lowercase and name value and limit.

use crate::ids::ConnId;

/// Why a meta was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The text is not valid JSON.
    #[error("presence meta is not valid json")]
    InvalidJson,
    /// The JSON is valid but not an object.
    #[error("presence meta must be a json object")]
    NotAnObject,
}

/// Why a `track` or `untrack` was refused. Nothing changed when one is returned.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The connection was never connected, or has closed or expired.
    #[error("{0} is not open")]
    UnknownConnection(ConnId),
    /// The meta's JSON text is over `max_meta_bytes`.
    #[error("meta is {len} bytes, the limit is {max}")]
    MetaTooLarge {
        /// Size of the meta's JSON text.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The key is longer than `max_key_bytes`.
    #[error("key is {len} bytes, the limit is {max}")]
    KeyTooLong {
        /// Size of the key in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The key already has `max_presences_per_key` presences in this topic.
    #[error("key has {max} presences in this topic, the limit")]
    TooManyPresences {
        /// The configured limit.
        max: usize,
    },
    /// The topic already holds `max_keys_per_topic` keys.
    #[error("topic has {max} keys, the limit")]
    TooManyKeys {
        /// The configured limit.
        max: usize,
    },
}

/// Why a connection could not be registered.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The id is already registered and open.
    #[error("{0} is already connected")]
    AlreadyConnected(ConnId),
}

/// Why a status query or watch registration was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// More keys than `max_batch_keys` in one call.
    #[error("{len} keys requested, the limit is {max}")]
    TooManyKeys {
        /// Keys in the request.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A key in the request is longer than `max_key_bytes` (no such key can be present).
    #[error("a key is {len} bytes, the limit is {max}")]
    KeyTooLong {
        /// Size of the first over-long key in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// A configuration value outside its allowed range; names the key and what is allowed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config `{key}`: {allowed}")]
pub struct ConfigError {
    /// The configuration key, as spelled in `Config`.
    pub key: &'static str,
    /// What values are allowed.
    pub allowed: &'static str,
}
