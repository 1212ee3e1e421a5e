//! The inventory engine's error type.

use commerce_core::{ErrorKind, PortError};

use crate::{HoldId, StockKey};

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the inventory engine can refuse. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not enough stock for a line (the demand of every line for the same SKU and location is
    /// summed before checking). Nothing was reserved.
    #[error("insufficient stock for {key}: requested {requested}, available {available}")]
    InsufficientStock {
        /// The SKU and location.
        key: StockKey,
        /// Units requested in total.
        requested: i64,
        /// Units available when checked.
        available: i64,
    },
    /// The SKU is not stocked at that location.
    #[error("{0} is not stocked")]
    UnknownStock(StockKey),
    /// No hold has this id.
    #[error("no hold {0}")]
    UnknownHold(HoldId),
    /// The hold id was used for different lines.
    #[error("hold {0} exists with other lines")]
    HoldConflict(HoldId),
    /// The hold expired before it was pinned or committed; its stock went back.
    #[error("hold {0} expired")]
    HoldExpired(HoldId),
    /// The operation does not apply to a hold in this state (commit after release, release
    /// after commit, extend a pinned hold).
    #[error("hold {hold} is {state}: cannot {operation}")]
    HoldState {
        /// The hold.
        hold: HoldId,
        /// Its state.
        state: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// Bad input: a zero or negative quantity, too many lines, an expiry out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was refused.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A commerce-core value was refused.
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
    /// A port call failed.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
}

impl Error {
    /// The kind of refusal: not enough stock is `Refused`, an unknown stock key or hold
    /// `NotFound`, a hold in the wrong state (expired, committed, another owner's, reused for
    /// other lines) `Conflict`, bad input `Invalid`; wrapped errors keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InsufficientStock { .. } => ErrorKind::Refused,
            Error::UnknownStock(_) | Error::UnknownHold(_) => ErrorKind::NotFound,
            Error::HoldConflict(_) | Error::HoldExpired(_) | Error::HoldState { .. } => {
                ErrorKind::Conflict
            }
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Core(e) => e.kind(),
            Error::Port(e) => e.kind,
        }
    }

    /// The field the input was refused for, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::Core(e) => e.field(),
            Error::Port(e) => e.field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
