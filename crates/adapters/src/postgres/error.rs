//! sqlx errors as port errors: the kind decides what a caller does (retry, refuse, ask).

use commerce_core::{ErrorKind, PortError};
use sqlx::error::ErrorKind as SqlKind;

/// SQLSTATEs a caller may retry as they are: the transaction was rolled back whole.
const RETRYABLE: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available
    "57014", // query_canceled (statement_timeout)
];

/// SQLSTATEs of a connection the server ended (`pg_terminate_backend`, a restart).
const CONNECTION_ENDED: &[&str] = &["57P01", "57P02", "57P03"];

/// A failed statement inside a transaction that was not committed: it definitely did not take
/// effect. A lost connection or a busy pool is `Unavailable`, a unique violation `Conflict`, a
/// value the database refuses `Invalid`, anything else `Internal`.
pub(crate) fn db(e: sqlx::Error) -> PortError {
    let kind = match &e {
        sqlx::Error::Database(d) => {
            let code = d.code();
            let code = code.as_deref().unwrap_or("");
            if RETRYABLE.contains(&code) || CONNECTION_ENDED.contains(&code) {
                ErrorKind::Unavailable
            } else {
                match d.kind() {
                    SqlKind::UniqueViolation => ErrorKind::Conflict,
                    SqlKind::ForeignKeyViolation
                    | SqlKind::NotNullViolation
                    | SqlKind::CheckViolation => ErrorKind::Invalid,
                    _ if code.starts_with("22") => ErrorKind::Invalid,
                    _ => ErrorKind::Internal,
                }
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    PortError::caused_by(kind, e)
}

/// A failed `COMMIT`: if the connection broke while committing, the server may or may not have
/// committed, so the outcome is `Indeterminate` (the caller asks before it retries); a commit
/// the server refused (a serialization failure at commit) definitely did not happen.
pub(crate) fn commit(e: sqlx::Error) -> PortError {
    match &e {
        sqlx::Error::Database(d)
            if !CONNECTION_ENDED.contains(&d.code().as_deref().unwrap_or("")) =>
        {
            db(e)
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => db(e),
        _ => PortError::caused_by(ErrorKind::Indeterminate, e),
    }
}

/// Whether a failed transaction may simply be run again (it was rolled back whole).
pub(crate) fn retry(e: &PortError) -> bool {
    e.kind == ErrorKind::Unavailable
}

/// A stored document that no longer reads as what it claims to be: data corruption, never the
/// caller's fault.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(
        ErrorKind::Internal,
        format!("stored {what} does not load: {e}"),
    )
}

/// A value that does not fit its column (a count beyond `i64`).
pub(crate) fn too_large(what: &str) -> PortError {
    PortError::new(ErrorKind::Invalid, format!("{what} too large to store"))
}
