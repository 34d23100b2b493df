//! The crate's one error type. Core code returns `Result<T>`; only `py/errors.rs` turns an
//! `Error` into a Python exception.

use std::fmt;

/// Everything the engine and the storage can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened or is not usable (bad path, foreign file,
    /// damaged file, read-only location).
    #[error("cannot use database {path:?}: {cause}")]
    Open { path: String, cause: String },

    /// The database was created by a newer version of taskito.
    #[error(
        "database {path:?} has schema version {found}, newer than this taskito understands ({known}); upgrade taskito"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },

    /// An option given by the user is out of range.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },

    /// No job (or dead letter) carries this id.
    #[error("no {kind} with id {id:?}")]
    NotFound { kind: &'static str, id: String },

    /// A feature this backend does not offer yet; nothing was stored.
    #[error("{feature} are not supported on the {backend} backend yet")]
    Unsupported {
        backend: &'static str,
        feature: &'static str,
    },

    /// `max_pending` of the queue would be exceeded; nothing was stored.
    #[error("queue {queue:?} is full: max_pending is {limit}")]
    QueueFull { queue: String, limit: i64 },

    /// SQLite failed in a way retrying did not fix.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// PostgreSQL could not be reached or refused the login; `target` is `host:port/db`
    /// (never the password).
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },

    /// PostgreSQL failed a statement (or the connection broke during one).
    #[error("PostgreSQL error: {0}")]
    Postgres(String),

    /// The engine could not start (thread or runtime creation failed).
    #[error("worker could not start: {0}")]
    Start(String),
}

/// The crate-wide result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for an invalid-option error.
    pub fn invalid(option: &'static str, reason: impl fmt::Display) -> Self {
        Error::InvalidOption {
            option,
            reason: reason.to_string(),
        }
    }

    /// Whether the store could not be reached at all: PostgreSQL refusing connections, or a
    /// connection lost mid-statement (a server restart). Never a verdict on the values
    /// written, so such a write waits for the store instead of failing its job.
    pub fn is_unavailable(&self) -> bool {
        const CONNECTION_LOST: [&str; 5] = [
            "connection closed",
            "error communicating with the server",
            "terminating connection",
            "the database system is",
            // A lock or statement timeout (see `postgres::settings::TIMED_OUT`): it rolled
            // back, and trying again once the lock is gone succeeds.
            "timed out waiting for the server; retried",
        ];
        match self {
            Error::Connect { .. } => true,
            Error::Postgres(m) => CONNECTION_LOST.iter().any(|t| m.contains(t)),
            _ => false,
        }
    }

    /// Whether this is SQLite reporting lock contention (worth retrying).
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Sqlite(e) => is_busy(e),
            _ => false,
        }
    }
}

/// Whether a rusqlite error is lock contention (`SQLITE_BUSY` / `SQLITE_LOCKED`).
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
    )
}
