//! The cart engine's error type.

use commerce_core::{Currency, ErrorKind, PortError, Sku};

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the cart engine can refuse. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A commerce-core value was refused (money arithmetic, ids, price resolution).
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
    /// A port call failed.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
    /// The cart already holds as many lines as its [`crate::CartLimits`] allow.
    #[error("a cart holds at most {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// A line would hold more units than the cart's [`crate::CartLimits`] allow, or zero units
    /// were added.
    #[error("quantity {quantity} of {sku} is outside 1..={max}")]
    QuantityOutOfRange {
        /// The SKU.
        sku: Sku,
        /// The quantity asked for.
        quantity: u64,
        /// The limit.
        max: u32,
    },
    /// The cart has no line for this SKU.
    #[error("no line for {0} in the cart")]
    NoSuchLine(Sku),
    /// The product is retired and cannot be added.
    #[error("{0} is retired")]
    ProductRetired(Sku),
    /// An amount is in another currency than the cart's.
    #[error("the cart is in {cart}, not {other}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: Currency,
        /// The other currency.
        other: Currency,
    },
    /// The cart expired; it cannot change any more.
    #[error("the cart expired")]
    Expired,
    /// A promotion code is empty, too long, or not applied.
    #[error("promotion code {code:?}: {reason}")]
    Code {
        /// The code as given (normalized where possible).
        code: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A request id is empty or too long.
    #[error("invalid request id: {0}")]
    RequestId(&'static str),
    /// A promotion rule document was refused; `path` names the field.
    #[error("invalid promotion rule at {path}: {reason}")]
    InvalidRule {
        /// Where in the document, such as `[2].action.percent`.
        path: String,
        /// Why.
        reason: String,
    },
    /// Merging carts of two owners or two currencies, or a cart into itself.
    #[error("cannot merge: {0}")]
    Merge(&'static str),
    /// The cart belongs to another customer: it cannot be given a new owner.
    #[error("the cart belongs to another customer")]
    OwnedByAnother,
}

impl Error {
    /// The kind of refusal, as callers and the HTTP layer decide on it: bad quantities, codes
    /// and rules are `Invalid`, a missing line `NotFound`, a retired product `Refused`, an
    /// expired cart or an impossible merge `Conflict`; wrapped errors keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Core(e) => e.kind(),
            Error::Port(e) => e.kind,
            Error::TooManyLines { .. }
            | Error::QuantityOutOfRange { .. }
            | Error::CurrencyMismatch { .. }
            | Error::Code { .. }
            | Error::RequestId(_)
            | Error::InvalidRule { .. } => ErrorKind::Invalid,
            Error::NoSuchLine(_) => ErrorKind::NotFound,
            Error::OwnedByAnother => ErrorKind::Refused,
            Error::ProductRetired(_) => ErrorKind::Refused,
            Error::Expired | Error::Merge(_) => ErrorKind::Conflict,
        }
    }

    /// The field the input was refused for, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Core(e) => e.field(),
            Error::Port(e) => e.field.as_deref(),
            Error::TooManyLines { .. } => Some("lines"),
            Error::QuantityOutOfRange { .. } => Some("quantity"),
            Error::CurrencyMismatch { .. } => Some("currency"),
            Error::Code { .. } => Some("code"),
            Error::RequestId(_) => Some("request_id"),
            Error::InvalidRule { path, .. } => Some(path),
            Error::NoSuchLine(_) | Error::ProductRetired(_) => Some("sku"),
            Error::OwnedByAnother => Some("owner"),
            Error::Expired | Error::Merge(_) => None,
        }
    }
}
