//! In-memory implementations of every port, for tests, examples, simulations and embedding.
//!
//! Each one passes its port's conformance suite in [`crate::testkit`], the same suite the
//! database and broker adapters must pass. They keep everything in process memory behind a
//! mutex that is never held across an `.await`.

mod carrier;
mod catalog;
mod events;
mod idempotency;
mod notifier;
mod orders;
mod payment;
mod projection;
mod ratelimit;

pub use carrier::{InMemoryCarrier, PARCEL_WEIGHT_MAX_G, PARCELS_MAX, ServiceLevel};
pub use catalog::InMemoryCatalog;
pub use events::InMemoryEventLog;
pub use idempotency::InMemoryIdempotencyStore;
pub use notifier::InMemoryNotifier;
pub use orders::InMemoryOrderStore;
pub use payment::{DECLINED_TOKEN, InMemoryPaymentGateway};
pub use projection::InMemoryProjectionCache;
pub use ratelimit::InMemoryRateLimiter;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the data if a panicking thread poisoned it: every in-memory store
/// mutates its state only after all checks passed, so the data is consistent either way.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Caps a caller's page size at [`crate::limits::PAGE_SIZE_MAX`].
fn page_limit(limit: usize) -> usize {
    limit.min(crate::limits::PAGE_SIZE_MAX)
}
