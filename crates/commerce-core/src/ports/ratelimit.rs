//! The rate limiter port: token buckets a gateway shares between its instances.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::{PortError, PortResult};
use crate::ErrorKind;

/// A token bucket's shape: it holds at most `capacity` tokens and gains `refill_per_sec` a
/// second; a request takes its cost in tokens or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Most tokens the bucket holds (the burst), 1 to 1,000,000.
    pub capacity: u32,
    /// Tokens added per second, 1 to 1,000,000.
    pub refill_per_sec: u32,
}

impl RateLimit {
    /// Checks the bounds.
    ///
    /// # Errors
    /// `Invalid` for a capacity or rate outside `1..=1_000_000`.
    pub fn validate(&self) -> PortResult<()> {
        for (field, v) in [
            ("capacity", self.capacity),
            ("refill_per_sec", self.refill_per_sec),
        ] {
            if !(1..=1_000_000).contains(&v) {
                return Err(PortError::new(
                    ErrorKind::Invalid,
                    format!("{field} {v} is outside 1..=1000000"),
                )
                .with_field(field));
            }
        }
        Ok(())
    }
}

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Taken; `remaining` whole tokens are left.
    Allowed {
        /// Whole tokens left in the bucket.
        remaining: u32,
    },
    /// Not enough tokens: nothing was taken; try again after `retry_after`.
    Limited {
        /// When the bucket will hold the cost (rounded up to the millisecond).
        retry_after: TimeDelta,
    },
}

/// A bucket's stored state: milli-tokens, and the millisecond they were counted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens × 1000.
    pub milli_tokens: i64,
    /// Unix milliseconds of the last count.
    pub at_ms: i64,
}

/// The token-bucket rule, in integers (every implementation computes exactly this; the Redis
/// script is its transcription): the bucket (full if new) gains `refill_per_sec` milli-tokens
/// per elapsed millisecond up to the capacity — time that runs backwards (another instance's
/// clock) adds nothing — then gives `cost` tokens or refuses with the wait until it could.
///
/// ```
/// use commerce_core::ports::{take_tokens, RateDecision, RateLimit};
/// let limit = RateLimit { capacity: 2, refill_per_sec: 1 };
/// let (b, d) = take_tokens(None, &limit, 2, 0);
/// assert_eq!(d, RateDecision::Allowed { remaining: 0 });
/// let (b, d) = take_tokens(Some(b), &limit, 1, 400);
/// assert_eq!(d, RateDecision::Limited { retry_after: chrono::TimeDelta::milliseconds(600) });
/// let (_, d) = take_tokens(Some(b), &limit, 1, 1_000);
/// assert_eq!(d, RateDecision::Allowed { remaining: 0 });
/// ```
pub fn take_tokens(
    bucket: Option<Bucket>,
    limit: &RateLimit,
    cost: u32,
    now_ms: i64,
) -> (Bucket, RateDecision) {
    let full = i64::from(limit.capacity) * 1_000;
    let rate = i64::from(limit.refill_per_sec);
    let (tokens, at) = match bucket {
        None => (full, now_ms),
        Some(b) => {
            let elapsed = (now_ms - b.at_ms).max(0);
            let gained = elapsed.saturating_mul(rate);
            (
                b.milli_tokens.saturating_add(gained).min(full),
                b.at_ms.max(now_ms),
            )
        }
    };
    let need = i64::from(cost) * 1_000;
    if tokens >= need {
        let left = tokens - need;
        let remaining = u32::try_from(left / 1_000).unwrap_or(u32::MAX);
        (
            Bucket {
                milli_tokens: left,
                at_ms: at,
            },
            RateDecision::Allowed { remaining },
        )
    } else {
        // Ceiling of the missing milli-tokens over the rate per millisecond.
        let wait = (need - tokens + rate - 1) / rate;
        (
            Bucket {
                milli_tokens: tokens,
                at_ms: at,
            },
            RateDecision::Limited {
                retry_after: TimeDelta::milliseconds(wait),
            },
        )
    }
}

/// Token buckets by key, shared by every instance of a service: the gateway's throttle (per
/// customer, per IP, per API key). One call checks and takes atomically; a refused call takes
/// nothing.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug {
    /// Takes `cost` tokens (1 to `limit.capacity`) from `key`'s bucket at `now`, or refuses.
    ///
    /// # Errors
    /// `Invalid` for a bad limit, a cost of 0 or above the capacity, or a key that is empty or
    /// over 512 bytes; `Unavailable` when the store cannot be reached (callers choose to fail
    /// open or closed).
    async fn acquire(
        &self,
        key: &str,
        limit: &RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> PortResult<RateDecision>;
}

/// The checks every [`RateLimiter`] makes before it counts.
///
/// # Errors
/// As [`RateLimiter::acquire`].
pub fn check_acquire(key: &str, limit: &RateLimit, cost: u32) -> PortResult<()> {
    limit.validate()?;
    if key.is_empty() || key.len() > 512 {
        return Err(
            PortError::new(ErrorKind::Invalid, "a rate key is 1 to 512 bytes").with_field("key"),
        );
    }
    if cost == 0 || cost > limit.capacity {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!("cost {cost} is outside 1..={}", limit.capacity),
        )
        .with_field("cost"));
    }
    Ok(())
}
