//! The ledger's error type.

use std::sync::Arc;

/// What can go wrong when writing to or reading from the ledger.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// Another command changed the aggregate first (optimistic concurrency): reload and retry.
    #[error("conflict: {aggregate_type}/{aggregate_id} is at version {actual}, the command expected {expected}")]
    Conflict {
        /// Aggregate type.
        aggregate_type: String,
        /// Aggregate id.
        aggregate_id: String,
        /// The version the command was decided on.
        expected: u64,
        /// The version the ledger holds.
        actual: u64,
    },
    /// The batch itself is not appendable (empty, versions not consecutive, too large).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The database URL is not one the ledger understands.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database failed; the batch was not committed (or, if the connection broke during
    /// COMMIT, its outcome is unknown and a retry will surface as a conflict).
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(Arc<sqlx::migrate::MigrateError>),
    /// A stored row is not a valid ledger row (e.g. a hash of the wrong length).
    #[error("corrupt ledger row at position {position}: {reason}")]
    Corrupt {
        /// Position of the row.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Internal to the writer: a command was decided on a version its aggregate never
    /// reached; the group is redone with stored versions, which turns it into a `Conflict`.
    #[error("a command was decided on a version its aggregate never reached")]
    VersionGap,
    /// The ledger's writer task has stopped (the process is shutting down).
    #[error("the ledger writer has stopped")]
    WriterStopped,
}

impl From<sqlx::Error> for LedgerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

impl From<sqlx::migrate::MigrateError> for LedgerError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migration(Arc::new(error))
    }
}
