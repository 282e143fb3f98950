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
    /// The database is known to be down (or not ready yet); answered at once, without
    /// waiting for a connection.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The writer task has stopped (after shutdown).
    #[error("the writer has stopped")]
    Stopped,
}

impl SqlError {
    /// True when the error means the database cannot be reached or used at all (connection,
    /// I/O, pool or timeout errors, Postgres' connection and shutdown classes, SQLite's
    /// cannot-open and I/O errors), as opposed to a problem with one statement.
    pub fn is_outage(&self) -> bool {
        match self {
            SqlError::Unavailable(_) | SqlError::Timeout(_) => true,
            SqlError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => {
                    let sqlite = d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
                    d.code().is_some_and(|c| {
                        if sqlite {
                            // 5 BUSY, 10 IOERR, 14 CANTOPEN (extended codes keep the low byte).
                            matches!(c.parse::<u32>().map(|n| n & 0xff), Ok(5 | 10 | 14))
                        } else {
                            // 08 connection exception, 57P shutdown, 53300 too many connections.
                            c.starts_with("08") || c.starts_with("57P") || c == "53300"
                        }
                    })
                }
                _ => false,
            },
            _ => false,
        }
    }
}
