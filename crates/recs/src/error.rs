//! The recommendations engine's error type.

use commerce_core::{ErrorKind, PortError, Sku, UserId};

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the recommendations engine can refuse. A refused call changes nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a weight out of range, a list too long, a score that is not finite, an
    /// empty experiment, a basket over its bound.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was refused.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A user the model was not trained on (fold the user's history in instead).
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    /// An item the model or index does not know.
    #[error("unknown item {0}")]
    UnknownItem(Sku),
    /// Saved model bytes that this release cannot read: a wrong magic, an unknown format
    /// version, a truncated or inconsistent payload.
    #[error("unreadable model: {0}")]
    ModelFormat(String),
    /// A commerce-core value was refused.
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
    /// A port call failed.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
}

impl Error {
    /// The kind of refusal: bad input and unreadable model bytes are `Invalid`, an unknown user
    /// or item `NotFound`; wrapped errors keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } | Error::ModelFormat(_) => ErrorKind::Invalid,
            Error::UnknownUser(_) | Error::UnknownItem(_) => ErrorKind::NotFound,
            Error::Core(e) => e.kind(),
            Error::Port(e) => e.kind,
        }
    }

    /// The field the input was refused for, where there is one (`model` for unreadable
    /// model bytes).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::ModelFormat(_) => Some("model"),
            Error::Core(e) => e.field(),
            Error::Port(e) => e.field.as_deref(),
            Error::UnknownUser(_) | Error::UnknownItem(_) => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<Error> for PortError {
    /// A refusal as a port error of the same kind, naming the same field (for stores that
    /// validate with the engine's rules).
    fn from(e: Error) -> PortError {
        let field = e.field().map(str::to_owned);
        let mut p = PortError::new(e.kind(), e.to_string());
        if let Some(f) = field {
            p = p.with_field(f);
        }
        p
    }
}
