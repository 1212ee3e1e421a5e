//! Ports: the traits every engine uses to reach the world outside the process.
//!
//! Each port is an object-safe async trait, `Send + Sync + Debug`, so engines hold
//! `Arc<dyn Port>`. Each has an in-memory implementation in [`crate::memory`] and a conformance
//! suite in [`crate::testkit`] that every implementation, in-memory or adapter, must pass.
//!
//! Failures are [`PortError`]s. Their [`ErrorKind`] is what engines decide on, never a
//! driver's message: in particular [`ErrorKind::Indeterminate`] says the call may have taken
//! effect (a timeout after the request was sent), so the caller must ask before it retries or
//! compensates. Every other kind says it definitely did not take effect.

mod carrier;
mod catalog;
mod clock;
mod events;
mod idempotency;
mod notifier;
mod orders;
mod payment;
mod projection;
mod ratelimit;

use std::fmt;
use std::sync::Arc;

pub use crate::ErrorKind;

pub use carrier::{
    Carrier, Label, Parcel, RateQuote, ShipmentRequest, TrackingEvent, TrackingStatus,
};
pub use catalog::CatalogStore;
pub use clock::{Clock, ManualClock};
pub use events::{EventLog, EventPublisher, LoggedEvent};
pub use idempotency::{Begin, IdempotencyStore, LeaseToken, purge_cutoff};
pub use notifier::{Notification, NotificationKind, Notifier};
pub use orders::OrderStore;
pub use payment::{AuthorizeRequest, Payment, PaymentGateway, PaymentStatus, request_fingerprint};
pub use projection::ProjectionCache;
pub use ratelimit::{Bucket, RateDecision, RateLimit, RateLimiter, check_acquire, take_tokens};

/// A failed port call: an [`ErrorKind`] to decide on, a message for humans, the field it was
/// about when the input was refused, and the underlying error when there is one (a driver's,
/// kept for logs; engines never inspect it).
///
/// ```
/// use commerce_core::{ErrorKind, PortError};
/// let e = PortError::new(ErrorKind::Indeterminate, "timed out after sending");
/// assert!(!e.is_definite());
/// let e = PortError::from(commerce_core::Sku::new("no spaces allowed").unwrap_err());
/// assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::Invalid, Some("sku")));
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct PortError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Details for logs.
    pub message: String,
    /// The field the input was refused for, when the kind is `Invalid` and it is known.
    pub field: Option<String>,
    /// The underlying error, if any.
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for PortError {
    /// Equal when kind, message and field are: the source is for logs.
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message && self.field == other.field
    }
}

impl Eq for PortError {}

impl PortError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
            field: None,
            source: None,
        }
    }

    /// An error of `kind` caused by `source`, whose text becomes the message.
    pub fn caused_by(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        PortError {
            kind,
            message: source.to_string(),
            field: None,
            source: Some(Arc::new(source)),
        }
    }

    /// The same error, naming the field the input was refused for.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// True unless the call may have taken effect.
    pub fn is_definite(&self) -> bool {
        self.kind.is_definite()
    }

    /// True if the same call may succeed later ([`ErrorKind::Unavailable`]). An
    /// indeterminate call is not blindly retriable: resolve it first.
    pub fn is_retriable(&self) -> bool {
        self.kind.is_retriable()
    }
}

impl From<crate::Error> for PortError {
    fn from(e: crate::Error) -> Self {
        let field = e.field().map(str::to_owned);
        PortError {
            field,
            ..PortError::caused_by(e.kind(), e)
        }
    }
}

/// A `Result` whose error is a [`PortError`].
pub type PortResult<T> = std::result::Result<T, PortError>;

/// The outcome of a compare-and-set write. Losing a race is an ordinary value, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// The write was applied.
    Committed,
    /// The stored version was not the expected one; nothing was written.
    VersionMismatch {
        /// The version stored now (0 when absent).
        current: u64,
    },
}

impl fmt::Display for CasOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CasOutcome::Committed => f.write_str("committed"),
            CasOutcome::VersionMismatch { current } => {
                write!(f, "version mismatch (current {current})")
            }
        }
    }
}
