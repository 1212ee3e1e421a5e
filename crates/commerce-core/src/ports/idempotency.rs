//! Idempotency records for requests that arrive more than once.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::PortResult;
use crate::IdempotencyKey;

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller owns the key now and must `complete` or `abandon` it.
    Started,
    /// Another caller holds the key and its lease has not expired: answer "in progress".
    InProgress,
    /// The request was completed before; here is the stored response.
    Completed(Vec<u8>),
    /// The key was used with a different request fingerprint: refuse.
    Mismatch,
}

/// Remembers which requests were seen, so a retried request returns the first answer.
///
/// Contract (checked by `testkit::idempotency_store_conformance!`):
/// - The first `begin` of a key is `Started` and takes a lease until `now + lease`.
/// - While the lease runs, `begin` with the same fingerprint is `InProgress`; once it has
///   expired (the owner crashed), the next `begin` is `Started` again and takes the lease over.
/// - After `complete`, `begin` with the same fingerprint is `Completed(response)` forever.
/// - A different fingerprint for a known key is `Mismatch`.
/// - `abandon` forgets an unfinished key so the request can be tried again from scratch.
/// - `complete` or `abandon` of a key that is not in progress is `NotFound` or `Conflict`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug {
    /// Claims `key` for a request with `fingerprint`.
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Begin>;
    /// Stores the response of a started request.
    async fn complete(&self, key: &IdempotencyKey, response: Vec<u8>) -> PortResult<()>;
    /// Forgets a started request that failed, so it can run again.
    async fn abandon(&self, key: &IdempotencyKey) -> PortResult<()>;
}
