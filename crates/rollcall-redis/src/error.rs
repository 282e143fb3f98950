//! Errors of the Redis adapter.

/// The adapter could not be configured.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL does not parse.
    #[error("invalid redis url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What the client library said.
        reason: String,
    },
    /// The key prefix is empty or holds a brace (braces are reserved for hash tags).
    #[error("invalid redis prefix {0:?}: expected 1 to 64 characters without braces")]
    InvalidPrefix(String),
}

/// A Redis operation failed (connection lost, timeout, refused command).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisOpError {
    /// What the client library said.
    #[error("redis: {0}")]
    Redis(String),
}

impl From<redis::RedisError> for RedisOpError {
    fn from(e: redis::RedisError) -> Self {
        RedisOpError::Redis(e.to_string())
    }
}
