//! Errors of the persistence layer.

use std::path::PathBuf;

/// Why opening, writing or querying the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The URL names no supported backend.
    #[error("unsupported database url {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The URL could not be parsed by the driver.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// The driver reported an error (connection, query, constraint).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The spill file could not be read or written.
    #[error("spill file {path}: {source}")]
    Spill {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A spill file line is not a row this version wrote.
    #[error("spill file {path}: corrupt line: {reason}")]
    SpillCorrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// A statement took longer than the configured timeout.
    #[error("database operation timed out after {0} ms")]
    Timeout(u64),
    /// The writer task has stopped (after shutdown).
    #[error("the writer has stopped")]
    Stopped,
}
