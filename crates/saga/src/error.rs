//! The saga crate's error type.

use commerce_core::{ErrorKind, PortError};

use crate::checkout::CheckoutFailure;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the orchestrator, checkout and the order lifecycle can refuse or fail with. Every
/// variant has a [`kind`](Error::kind), so a caller (and the HTTP layer) decides on the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A journal or other port call failed; the kind is the port's.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
    /// The stock store refused or failed; the kind is the inventory error's.
    #[error("stock: {0}")]
    Stock(#[from] inventory::Error),
    /// What was asked for does not exist (an order, a saga).
    #[error("no {what} {id}")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A saga id (for checkout: the client's idempotency key) was reused with another input.
    #[error("saga {saga_id} exists with another input")]
    InputMismatch {
        /// The saga id.
        saga_id: String,
    },
    /// A journaled saga's steps are not the definition's (the code changed under a running
    /// saga); it is left as it is for an operator.
    #[error(
        "saga {saga_id} was journaled with steps {journaled:?}, which the definition does not have"
    )]
    DefinitionChanged {
        /// The saga id.
        saga_id: String,
        /// The step names in the journal.
        journaled: Vec<String>,
    },
    /// A journaled value could not be encoded or decoded.
    #[error("saga codec: {0}")]
    Codec(String),
    /// Checkout was refused before it started (the cart is not ready), with the same typed
    /// reason a failed checkout reports.
    #[error("checkout refused: {0:?}")]
    CheckoutRefused(CheckoutFailure),
    /// Bad input; `field` names what was wrong.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The flash-sale queue is full: come back later.
    #[error("the queue is full ({capacity} waiting)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// A commerce-core value was refused.
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
}

impl Error {
    /// The kind of failure: wrapped errors keep theirs; a missing order or saga is `NotFound`,
    /// a reused key `Conflict`, a refused checkout its failure's kind, a full queue
    /// `Unavailable`, a codec or definition mismatch `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Port(e) => e.kind,
            Error::Stock(e) => e.kind(),
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InputMismatch { .. } => ErrorKind::Conflict,
            Error::DefinitionChanged { .. } | Error::Codec(_) => ErrorKind::Internal,
            Error::CheckoutRefused(f) => f.kind(),
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::QueueFull { .. } => ErrorKind::Unavailable,
            Error::Core(e) => e.kind(),
        }
    }

    /// The field the input was refused for, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::Port(e) => e.field.as_deref(),
            Error::Stock(e) => e.field(),
            Error::Core(e) => e.field(),
            _ => None,
        }
    }
}
