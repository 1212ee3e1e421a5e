//! Idempotency records for requests that arrive more than once.
//!
//! A request handler claims the client's key with [`IdempotencyStore::begin`], does its work,
//! and stores the response with [`IdempotencyStore::complete`] (or gives the key back with
//! [`IdempotencyStore::abandon`] when the work failed without effect). A claim is a *lease*: a
//! handler that crashes holds the key only until its lease ends, and the next `begin` takes
//! the key over. The [`LeaseToken`] that `begin` hands out is what makes the takeover safe: a
//! handler that was merely slow, whose lease ended and was taken over, still holds its old
//! token, and `complete` and `abandon` refuse it, so it can neither overwrite the successor's
//! response nor delete the successor's claim.

use std::fmt::{self, Debug};
use std::num::NonZeroU64;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::IdempotencyKey;

/// Proof of one claim on a key: issued by [`IdempotencyStore::begin`] with
/// [`Begin::Started`], required by [`IdempotencyStore::complete`] and
/// [`IdempotencyStore::abandon`].
///
/// A store never issues the same token twice (not for another key, not for the same key
/// after a takeover or an abandon), so a token names exactly one claim. Tokens are opaque
/// positive numbers; stores build them with [`LeaseToken::new`] from what they persisted.
///
/// ```
/// use commerce_core::LeaseToken;
/// let token = LeaseToken::new(7)?;
/// assert_eq!(token.get(), 7);
/// assert!(LeaseToken::new(0).is_err());
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct LeaseToken(NonZeroU64);

impl LeaseToken {
    /// The token with this number.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] at `lease_token` for zero, which no store issues.
    pub fn new(raw: u64) -> crate::Result<LeaseToken> {
        NonZeroU64::new(raw)
            .map(LeaseToken)
            .ok_or_else(|| crate::Error::invalid("lease_token", "zero"))
    }

    /// The token's number, for storing it.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl TryFrom<u64> for LeaseToken {
    type Error = crate::Error;
    fn try_from(raw: u64) -> crate::Result<LeaseToken> {
        LeaseToken::new(raw)
    }
}

impl From<LeaseToken> for u64 {
    fn from(token: LeaseToken) -> u64 {
        token.get()
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller owns the key now and must `complete` or `abandon` it with `token`.
    Started {
        /// The claim's token, for `complete` or `abandon`.
        token: LeaseToken,
    },
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
/// - The first `begin` of a key is `Started` with a fresh [`LeaseToken`] and takes a lease
///   until `now + lease`.
/// - While the lease runs, `begin` with the same fingerprint is `InProgress`; once it has
///   expired (the owner crashed or is slow), the next `begin` is `Started` again, with a new
///   token, and takes the lease over.
/// - `complete` and `abandon` take the token of the claim they finish. A token that is not the
///   key's current claim (the lease was taken over, or the key abandoned and begun again) is
///   `Conflict` and changes nothing. A current token still works after its lease ended, as
///   long as nobody took the key over.
/// - After `complete`, `begin` with the same fingerprint is `Completed(response)` until the
///   record is purged, which is never within [`IDEMPOTENCY_RETENTION_HOURS_MIN`] hours of
///   its completion.
/// - A different fingerprint for a known key is `Mismatch`.
/// - `abandon` forgets an unfinished key so the request can be tried again from scratch.
/// - `complete` or `abandon` of a key never begun (or purged) is `NotFound`; of a completed
///   key, `Conflict`.
/// - `purge` forgets records completed, or left unfinished with a lease that ended, more than
///   `retention` before `now`, at most `limit` per call; a retention shorter than
///   [`IDEMPOTENCY_RETENTION_HOURS_MIN`] hours is `Invalid`. A purged key begins afresh.
///
/// [`IDEMPOTENCY_RETENTION_HOURS_MIN`]: crate::limits::IDEMPOTENCY_RETENTION_HOURS_MIN
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug {
    /// Claims `key` for a request with `fingerprint`.
    ///
    /// # Errors
    /// `Invalid` for a lease that is not positive or runs past the end of time.
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Begin>;
    /// Stores the response of the claim `token` names, completed at `now`.
    ///
    /// # Errors
    /// `NotFound` for a key never begun; `Conflict` for a completed key or a stale token.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: LeaseToken,
        response: Vec<u8>,
        now: DateTime<Utc>,
    ) -> PortResult<()>;
    /// Forgets the started request `token` names, which failed, so it can run again.
    ///
    /// # Errors
    /// `NotFound` for a key never begun; `Conflict` for a completed key or a stale token.
    async fn abandon(&self, key: &IdempotencyKey, token: LeaseToken) -> PortResult<()>;
    /// Forgets at most `limit` records finished more than `retention` before `now`: completed
    /// ones by their completion time, unfinished ones by the end of their lease. `limit` is
    /// capped at [`PURGE_BATCH_MAX`]. Returns how many it forgot; a purge job calls it until
    /// that is less than `limit`.
    ///
    /// # Errors
    /// `Invalid` for a retention shorter than [`IDEMPOTENCY_RETENTION_HOURS_MIN`] hours.
    ///
    /// [`IDEMPOTENCY_RETENTION_HOURS_MIN`]: crate::limits::IDEMPOTENCY_RETENTION_HOURS_MIN
    /// [`PURGE_BATCH_MAX`]: crate::limits::PURGE_BATCH_MAX
    async fn purge(
        &self,
        now: DateTime<Utc>,
        retention: TimeDelta,
        limit: usize,
    ) -> PortResult<usize>;
}

/// The instant before which finished records may be purged: `now - retention`. Every store
/// checks `purge`'s arguments through this, so the minimum retention
/// ([`IDEMPOTENCY_RETENTION_HOURS_MIN`](crate::limits::IDEMPOTENCY_RETENTION_HOURS_MIN)
/// hours) holds whatever the backend.
///
/// # Errors
/// `Invalid` at `retention` for a retention below the minimum, or one reaching before the
/// beginning of time.
pub fn purge_cutoff(now: DateTime<Utc>, retention: TimeDelta) -> PortResult<DateTime<Utc>> {
    let invalid =
        |reason: String| super::PortError::from(crate::Error::invalid("retention", reason));
    let hours_min = crate::limits::IDEMPOTENCY_RETENTION_HOURS_MIN;
    if retention < TimeDelta::hours(hours_min) {
        return Err(invalid(format!("shorter than {hours_min} hours")));
    }
    now.checked_sub_signed(retention)
        .ok_or_else(|| invalid("reaches before the beginning of time".into()))
}
