//! Token buckets on Redis: one script per request, over one key.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::ports::check_acquire;
use commerce_core::{ErrorKind, PortError, PortResult, RateDecision, RateLimit, RateLimiter};
use redis::Script;

use super::{Redis, error};

/// `commerce_core::ports::take_tokens`, transcribed: the bucket is a hash of milli-tokens and
/// the millisecond they were counted at; a new bucket is full; elapsed time (never negative)
/// refills it up to the capacity; the cost is taken whole or not at all. Lua numbers are
/// doubles, exact for every integer here (below 2^53). A bucket expires once it would be full
/// again, which is the same as having none.
const TAKE: &str = r"#!lua
local full = tonumber(ARGV[1]) * 1000
local rate = tonumber(ARGV[2])
local need = tonumber(ARGV[3]) * 1000
local now = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at
if not b[1] then
  tokens = full
  at = now
else
  local bt = tonumber(b[1])
  local bat = tonumber(b[2])
  local elapsed = now - bat
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(full, bt + elapsed * rate)
  at = math.max(bat, now)
end
local allowed = 0
local out
if tokens >= need then
  tokens = tokens - need
  allowed = 1
  out = math.floor(tokens / 1000)
else
  out = math.floor((need - tokens + rate - 1) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%d', tokens), 'at', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], math.floor((full - tokens + rate - 1) / rate) + 1000)
return {allowed, out}
";

/// The [`RateLimiter`] on Redis: a bucket per key (`namespace:rl:key`), checked and taken in
/// one script, so every instance of a service shares it and concurrent requests never take
/// more than it holds. On a cluster each bucket lives on the node of its key's slot.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
    script: std::sync::Arc<Script>,
}

impl RedisRateLimiter {
    pub(crate) fn new(redis: Redis) -> Self {
        RedisRateLimiter {
            redis,
            script: std::sync::Arc::new(Script::new(TAKE)),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        limit: &RateLimit,
        cost: u32,
        now: DateTime<Utc>,
    ) -> PortResult<RateDecision> {
        check_acquire(key, limit, cost)?;
        let mut conn = self.redis.conn();
        let (allowed, out): (i64, i64) = self
            .script
            .key(self.redis.key("rl", key))
            .arg(limit.capacity)
            .arg(limit.refill_per_sec)
            .arg(cost)
            .arg(now.timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        match allowed {
            1 => Ok(RateDecision::Allowed {
                remaining: u32::try_from(out).unwrap_or(u32::MAX),
            }),
            0 => Ok(RateDecision::Limited {
                retry_after: TimeDelta::milliseconds(out),
            }),
            other => Err(PortError::new(
                ErrorKind::Internal,
                format!("the bucket script answered {other}"),
            )),
        }
    }
}
