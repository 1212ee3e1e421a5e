//! Ports: the traits every engine uses to reach the world outside the process.
//!
//! Each port is an object-safe async trait, `Send + Sync + Debug`, so engines hold
//! `Arc<dyn Port>`. Each has an in-memory implementation in [`crate::memory`] and a conformance
//! suite in [`crate::testkit`] that every implementation, in-memory or adapter, must pass.
//!
//! Failures are [`PortError`]s. Their [`PortErrorKind`] is what engines decide on, never a
//! driver's message: in particular [`PortErrorKind::Indeterminate`] says the call may have taken
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

use std::fmt;

pub use carrier::{
    Carrier, Label, Parcel, RateQuote, ShipmentRequest, TrackingEvent, TrackingStatus,
};
pub use catalog::CatalogStore;
pub use clock::{Clock, ManualClock};
pub use events::{EventLog, EventPublisher};
pub use idempotency::{Begin, IdempotencyStore};
pub use notifier::{Notification, NotificationKind, Notifier};
pub use orders::OrderStore;
pub use payment::{AuthorizeRequest, Payment, PaymentGateway, PaymentStatus};

/// Why a port call failed, as engines need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortErrorKind {
    /// The thing asked for does not exist. Definite.
    NotFound,
    /// The call conflicts with the current state (a duplicate id, the same idempotency key with
    /// a different request, a guard such as "capture more than authorized"). Definite.
    Conflict,
    /// The request was malformed or failed validation. Definite.
    Invalid,
    /// The provider refused for a business reason (card declined, address undeliverable).
    /// Definite.
    Rejected,
    /// The backend could not be reached or refused before doing anything. Definite: safe to
    /// retry.
    Unavailable,
    /// The outcome is unknown: the request may have taken effect (a timeout after sending, a
    /// dropped connection mid-call). Ask the backend (by idempotency key) before retrying or
    /// compensating.
    Indeterminate,
    /// A bug or a broken invariant in the backend. Definite.
    Internal,
}

/// A failed port call: a [`PortErrorKind`] to decide on and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct PortError {
    /// What kind of failure.
    pub kind: PortErrorKind,
    /// Details for logs.
    pub message: String,
}

impl PortError {
    /// A new error.
    pub fn new(kind: PortErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
        }
    }

    /// True unless the call may have taken effect.
    pub fn is_definite(&self) -> bool {
        self.kind != PortErrorKind::Indeterminate
    }

    /// True if the same call may succeed later ([`PortErrorKind::Unavailable`]). An
    /// indeterminate call is not blindly retriable: resolve it first.
    pub fn is_retriable(&self) -> bool {
        self.kind == PortErrorKind::Unavailable
    }
}

impl From<crate::Error> for PortError {
    fn from(e: crate::Error) -> Self {
        PortError::new(PortErrorKind::Invalid, e.to_string())
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
