//! Token buckets in memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{
    Bucket, PortResult, RateDecision, RateLimit, RateLimiter, check_acquire, take_tokens,
};

/// A [`RateLimiter`] in one process's memory: for tests and single-instance deployments (a
/// fleet shares its buckets through the Redis adapter's limiter).
///
/// ```
/// use commerce_core::memory::InMemoryRateLimiter;
/// use commerce_core::ports::{RateDecision, RateLimit, RateLimiter};
/// use commerce_core::testkit::t0;
/// # futures::executor::block_on(async {
/// let limiter = InMemoryRateLimiter::new();
/// let limit = RateLimit { capacity: 1, refill_per_sec: 1 };
/// assert!(matches!(limiter.acquire("ip:10.0.0.1", &limit, 1, t0()).await?, RateDecision::Allowed { .. }));
/// assert!(matches!(limiter.acquire("ip:10.0.0.1", &limit, 1, t0()).await?, RateDecision::Limited { .. }));
/// # Ok::<(), commerce_core::PortError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryRateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl InMemoryRateLimiter {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        limit: &RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> PortResult<RateDecision> {
        check_acquire(key, limit, cost)?;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (bucket, decision) = take_tokens(
            buckets.get(key).copied(),
            limit,
            cost,
            now.timestamp_millis(),
        );
        buckets.insert(key.to_owned(), bucket);
        Ok(decision)
    }
}
