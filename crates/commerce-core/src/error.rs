//! The crate's error type, and [`ErrorKind`]: the kinds every error of the SDK falls into.
//!
//! Port implementations report failures with [`crate::PortError`] instead, whose kind tells an
//! engine whether a call definitely did not happen or might have happened.

use serde::{Deserialize, Serialize};

use crate::money::Currency;
use crate::order::{OrderStatus, TransitionKind};

/// What kind of failure an error is. Every error type of the SDK answers `kind()`, so a
/// caller (an engine deciding whether to retry, the HTTP layer choosing a status) decides on
/// the kind, never on a message. `ARCHITECTURE.md` has the table of what each kind asks of
/// the caller.
///
/// Every kind but [`ErrorKind::Indeterminate`] is *definite*: the call did not take effect.
///
/// ```
/// use commerce_core::{Error, ErrorKind, Money};
/// let err = "1.5 JPY".parse::<Money>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Invalid);
/// assert!(err.kind().is_definite() && !err.kind().is_retriable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing named does not exist (an order, a hold, a stock key, a saga).
    NotFound,
    /// The request conflicts with the current state: a lost compare-and-set race, a
    /// duplicate id, an idempotency key in use or used for another request, a transition
    /// the state machine does not allow from here.
    Conflict,
    /// The input is malformed or out of bounds; the error names the field where it can.
    Invalid,
    /// A business rule refused the request: out of stock, a promotion's limit, a declined
    /// card, a price that changed, an address the carrier does not serve.
    Refused,
    /// A backend could not be reached, or refused before doing anything (down, overloaded,
    /// timed out before sending). Retrying later may succeed.
    Unavailable,
    /// The outcome is unknown: the request may have taken effect (a timeout after sending).
    /// Resolve it (ask by idempotency key) before retrying or compensating.
    Indeterminate,
    /// A bug or a broken invariant.
    Internal,
}

impl ErrorKind {
    /// False only for [`ErrorKind::Indeterminate`]: every other kind says the call did not
    /// take effect.
    pub fn is_definite(self) -> bool {
        self != ErrorKind::Indeterminate
    }

    /// True for [`ErrorKind::Unavailable`]: the same call may succeed later. An indeterminate
    /// call is not blindly retriable (resolve it first), and a conflict needs a fresh read.
    pub fn is_retriable(self) -> bool {
        self == ErrorKind::Unavailable
    }

    /// The snake_case name (`not_found`, `conflict`, ...), as logs and problem documents
    /// carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Refused => "refused",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Indeterminate => "indeterminate",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything commerce-core can refuse. Each refusal leaves its inputs unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// An arithmetic result does not fit the decimal representation.
    #[error("arithmetic overflow in {operation}")]
    Overflow {
        /// The operation that overflowed, such as `add` or `allocate`.
        operation: &'static str,
    },
    /// A division by zero was asked for (an FX rate of zero, for example).
    #[error("division by zero in {operation}")]
    DivisionByZero {
        /// The operation that would have divided by zero.
        operation: &'static str,
    },
    /// The code is not an ISO 4217 currency this crate knows.
    #[error("unknown currency code {code:?}")]
    UnknownCurrency {
        /// The code as given.
        code: String,
    },
    /// An amount has more decimal places than its currency's minor unit allows, where a
    /// minor-unit amount was required.
    #[error("amount {amount} has more decimals than {currency} allows ({exponent})")]
    NotInMinorUnits {
        /// The amount as given.
        amount: String,
        /// Its currency.
        currency: Currency,
        /// The currency's minor-unit exponent.
        exponent: u8,
    },
    /// Text could not be parsed as the named type.
    #[error("cannot parse {input:?} as {what}: {reason}")]
    Parse {
        /// The type that was being parsed, such as `money` or `sku`.
        what: &'static str,
        /// The input, truncated to a bounded length.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Allocation weights were unusable.
    #[error("invalid allocation weights: {reason}")]
    InvalidWeights {
        /// Why the weights were refused.
        reason: &'static str,
    },
    /// No FX rate is known for the currency on or before the date asked for.
    #[error("no fx rate for {currency} on or before {on}")]
    FxRateMissing {
        /// The currency without a rate.
        currency: Currency,
        /// The date the conversion was asked for.
        on: chrono::NaiveDate,
    },
    /// The newest FX rate for the currency is older than the policy allows.
    #[error("fx rate for {currency} is from {as_of}, older than {max_age_days} days before {on}")]
    FxRateStale {
        /// The currency whose rate is stale.
        currency: Currency,
        /// The date of the newest known rate.
        as_of: chrono::NaiveDate,
        /// The date the conversion was asked for.
        on: chrono::NaiveDate,
        /// The policy's maximum age.
        max_age_days: u32,
    },
    /// An FX rate was zero or negative.
    #[error("fx rate for {currency} must be positive, got {rate}")]
    InvalidFxRate {
        /// The currency of the rate.
        currency: Currency,
        /// The rate as given.
        rate: String,
    },
    /// No price resolves for the currency and locale asked for.
    #[error("no price in {currency} for locale {locale}")]
    PriceNotFound {
        /// The currency asked for.
        currency: Currency,
        /// The locale asked for, or `-` for none.
        locale: String,
    },
    /// A value failed validation; `field` names what was wrong.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field or type that was refused, such as `sku` or `order.lines`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The order state machine has no such transition from the current status.
    #[error("illegal order transition {transition} from {from}")]
    IllegalTransition {
        /// The status the order was in (and still is).
        from: OrderStatus,
        /// The transition that was refused.
        transition: TransitionKind,
    },
}

impl Error {
    /// The kind of refusal: money, FX and parsing refusals are `Invalid`, a missing price or
    /// FX rate `NotFound`, a stale FX rate `Unavailable` (the rates feed is behind), an
    /// illegal order transition `Conflict`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::FxRateMissing { .. } | Error::PriceNotFound { .. } => ErrorKind::NotFound,
            Error::FxRateStale { .. } => ErrorKind::Unavailable,
            Error::IllegalTransition { .. } => ErrorKind::Conflict,
            Error::CurrencyMismatch { .. }
            | Error::Overflow { .. }
            | Error::DivisionByZero { .. }
            | Error::UnknownCurrency { .. }
            | Error::NotInMinorUnits { .. }
            | Error::Parse { .. }
            | Error::InvalidWeights { .. }
            | Error::InvalidFxRate { .. }
            | Error::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    /// The field or type the input was refused for, where the error names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::Parse { what, .. } => Some(what),
            Error::UnknownCurrency { .. } => Some("currency"),
            Error::NotInMinorUnits { .. } => Some("amount"),
            Error::InvalidWeights { .. } => Some("weights"),
            _ => None,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Parse`]; the input is truncated so errors stay small.
    pub(crate) fn parse(what: &'static str, input: &str, reason: &'static str) -> Self {
        Error::Parse {
            what,
            input: input
                .chars()
                .take(crate::limits::ERROR_INPUT_CHARS_MAX)
                .collect(),
            reason,
        }
    }
}
