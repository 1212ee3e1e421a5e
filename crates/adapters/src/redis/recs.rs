//! The recommendations engine's hot stores on Redis: ranked lists by key, and each shopping
//! session's recently viewed products.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{ErrorKind, PortError, PortResult, SessionId, Sku};
use recs::limits::{RECENTLY_VIEWED_MAX, TOPK_BATCH_MAX};
use recs::{ListKey, RecentlyViewedStore, TopKList, TopKStore, Viewed};
use redis::Script;

use super::{Redis, error};

/// Writes a list unless the stored one has a higher generation. Generations are compared as
/// 20-digit zero-padded strings (a `u64` does not fit a Lua number exactly).
const PUT: &str = r"#!lua
local g = redis.call('HGET', KEYS[1], 'g')
if g and g > ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'b', ARGV[2])
return 1
";

/// Deletes a list whose generation is at most ARGV[1].
const REMOVE: &str = r"#!lua
local g = redis.call('HGET', KEYS[1], 'g')
if not g or g > ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

fn generation(g: u64) -> String {
    format!("{g:020}")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(
        ErrorKind::Internal,
        format!("stored {what} does not load: {e}"),
    )
}

/// The [`TopKStore`] on Redis: one hash per list (`namespace:topk:item:SKU` or `…:user:ID`)
/// holding its generation and the list as JSON (scores round-trip bit for bit). A write is one
/// script that keeps the newer generation; reads of many lists go to their nodes at once.
#[derive(Debug, Clone)]
pub struct RedisTopKStore {
    redis: Redis,
    put: std::sync::Arc<(Script, Script)>,
}

impl RedisTopKStore {
    pub(crate) fn new(redis: Redis) -> Self {
        RedisTopKStore {
            redis,
            put: std::sync::Arc::new((Script::new(PUT), Script::new(REMOVE))),
        }
    }

    fn key(&self, key: &ListKey) -> String {
        self.redis.key("topk", &key.storage_key())
    }
}

fn batch_bound(n: usize) -> PortResult<()> {
    if n > TOPK_BATCH_MAX {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!("{n} lists in one call, at most {TOPK_BATCH_MAX}"),
        )
        .with_field("topk"));
    }
    Ok(())
}

#[async_trait]
impl TopKStore for RedisTopKStore {
    async fn put(&self, lists: &[(ListKey, TopKList)]) -> PortResult<usize> {
        batch_bound(lists.len())?;
        let writes = lists.iter().map(|(key, list)| async move {
            let body = serde_json::to_string(list)
                .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
            let mut conn = self.redis.conn();
            let wrote: i64 = self
                .put
                .0
                .key(self.key(key))
                .arg(generation(list.generation()))
                .arg(body)
                .invoke_async(&mut conn)
                .await
                .map_err(error)?;
            Ok::<_, PortError>(usize::from(wrote == 1))
        });
        let mut n = 0;
        for w in futures::future::join_all(writes).await {
            n += w?;
        }
        Ok(n)
    }

    async fn get(&self, key: &ListKey) -> PortResult<Option<TopKList>> {
        let mut conn = self.redis.conn();
        let body: Option<String> = redis::cmd("HGET")
            .arg(self.key(key))
            .arg("b")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("top-K list", e)))
            .transpose()
    }

    async fn get_many(&self, keys: &[ListKey]) -> PortResult<Vec<Option<TopKList>>> {
        batch_bound(keys.len())?;
        futures::future::join_all(keys.iter().map(|k| self.get(k)))
            .await
            .into_iter()
            .collect()
    }

    async fn remove(&self, key: &ListKey, generation_max: u64) -> PortResult<bool> {
        let mut conn = self.redis.conn();
        let removed: i64 = self
            .put
            .1
            .key(self.key(key))
            .arg(generation(generation_max))
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(removed == 1)
    }
}

/// Records a view: the SKU's score is its latest view in milliseconds (an older, redelivered
/// view changes nothing); then the session keeps only its `capacity` greatest `(at, sku)` and
/// lives `ttl` milliseconds past its last view.
const RECORD: &str = r"#!lua
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// The [`RecentlyViewedStore`] on Redis: a sorted set per session (`namespace:rv:SESSION`),
/// member the SKU, score the time of its latest view in milliseconds, so the set holds each
/// SKU once and orders by `(at, sku)` exactly as the contract does. A stream (`XADD … MAXLEN
/// ~`) was the first idea; it appends a repeated view as a second entry and trims only
/// approximately, where the port promises each SKU once, at its latest view, and exactly
/// `capacity` of them. A session idle for the store's TTL (seven days by default) is forgotten.
#[derive(Debug, Clone)]
pub struct RedisRecentlyViewed {
    redis: Redis,
    capacity: usize,
    ttl_ms: i64,
    record: std::sync::Arc<Script>,
}

impl RedisRecentlyViewed {
    pub(crate) fn new(redis: Redis, capacity: usize) -> Self {
        RedisRecentlyViewed {
            redis,
            capacity: capacity.clamp(1, RECENTLY_VIEWED_MAX),
            ttl_ms: 7 * 24 * 3_600 * 1_000,
            record: std::sync::Arc::new(Script::new(RECORD)),
        }
    }

    /// The same store forgetting sessions idle for `ttl` (at least a second).
    #[must_use]
    pub fn with_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl_ms = i64::try_from(ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1_000);
        self
    }

    fn key(&self, session: &SessionId) -> String {
        self.redis.key("rv", session.as_str())
    }
}

#[async_trait]
impl RecentlyViewedStore for RedisRecentlyViewed {
    fn capacity(&self) -> usize {
        self.capacity
    }

    async fn record(&self, session: &SessionId, view: &Viewed) -> PortResult<()> {
        let mut conn = self.redis.conn();
        let _: i64 = self
            .record
            .key(self.key(session))
            .arg(view.sku.as_str())
            .arg(view.at.timestamp_millis())
            .arg(self.capacity)
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn recent(&self, session: &SessionId, limit: usize) -> PortResult<Vec<Viewed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = isize::try_from(limit.min(self.capacity)).unwrap_or(isize::MAX) - 1;
        let mut conn = self.redis.conn();
        let rows: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(self.key(session))
            .arg(0)
            .arg(last)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        rows_to_viewed(rows)
    }

    async fn clear(&self, session: &SessionId) -> PortResult<()> {
        let mut conn = self.redis.conn();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(session))
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(())
    }
}

/// `user` (ARGV[1]) watches `sku` (ARGV[2]): 1 new, 0 already, -1 the user watches too many,
/// -2 the SKU has too many watchers.
const WATCH: &str = r"#!lua
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return -2 end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
";

/// `sku` is back at ARGV[1] (ms): every watcher gets the arrival (the latest per SKU, the
/// newest ARGV[2] kept) and stops watching; returns them in ascending id order. Users' keys
/// are named from ARGV[3] (the store's prefix, inside the hash tag every key shares).
const BACK: &str = r"#!lua
local users = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, u in ipairs(users) do
  local a = ARGV[3] .. 'a:' .. u
  local old = redis.call('ZSCORE', a, ARGV[4])
  if not old or tonumber(old) < tonumber(ARGV[1]) then
    redis.call('ZADD', a, ARGV[1], ARGV[4])
  end
  redis.call('ZREMRANGEBYRANK', a, 0, -tonumber(ARGV[2]) - 1)
  redis.call('SREM', ARGV[3] .. 'u:' .. u, ARGV[4])
end
redis.call('DEL', KEYS[1])
return users
";

/// The [`BackInStockStore`](recs::BackInStockStore) on Redis. `back_in_stock` moves every watcher of a SKU to their
/// arrivals atomically, which touches every watcher's keys in one script; so the whole store
/// lives in one hash slot (`{bis}`), on one node of a cluster. That bounds it to one node's
/// memory and throughput (watchers and arrivals are small and bounded per user and per SKU),
/// and keeps the promise that a watcher is handed out by exactly one call.
#[derive(Debug, Clone)]
pub struct RedisBackInStock {
    redis: Redis,
    scripts: std::sync::Arc<(Script, Script)>,
}

impl RedisBackInStock {
    pub(crate) fn new(redis: Redis) -> Self {
        RedisBackInStock {
            redis,
            scripts: std::sync::Arc::new((Script::new(WATCH), Script::new(BACK))),
        }
    }

    /// The prefix of every key of the store, hash tag included.
    fn prefix(&self) -> String {
        self.redis.key("bis", "{bis}:")
    }

    fn watchers_key(&self, sku: &Sku) -> String {
        format!("{}w:{sku}", self.prefix())
    }

    fn watching_key(&self, user: &commerce_core::UserId) -> String {
        format!("{}u:{user}", self.prefix())
    }

    fn arrivals_key(&self, user: &commerce_core::UserId) -> String {
        format!("{}a:{user}", self.prefix())
    }
}

fn rows_to_viewed(rows: Vec<(String, f64)>) -> PortResult<Vec<Viewed>> {
    rows.into_iter()
        .map(|(sku, at)| {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "scores are whole milliseconds, exact in a double"
            )]
            let ms = at as i64;
            Ok(Viewed {
                sku: Sku::new(&sku).map_err(|e| corrupt("sku", e))?,
                at: DateTime::<Utc>::from_timestamp_millis(ms)
                    .ok_or_else(|| corrupt("arrival time", ms))?,
            })
        })
        .collect()
}

#[async_trait]
impl recs::BackInStockStore for RedisBackInStock {
    async fn watch(&self, user: &commerce_core::UserId, sku: &Sku) -> PortResult<bool> {
        let mut conn = self.redis.conn();
        let answer: i64 = self
            .scripts
            .0
            .key(self.watchers_key(sku))
            .key(self.watching_key(user))
            .arg(user.as_str())
            .arg(sku.as_str())
            .arg(recs::limits::WATCHES_PER_USER_MAX)
            .arg(recs::limits::WATCHERS_PER_SKU_MAX)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        match answer {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(PortError::new(
                ErrorKind::Refused,
                format!("{user} watches the most SKUs allowed"),
            )),
            _ => Err(PortError::new(
                ErrorKind::Refused,
                format!("{sku} has the most watchers allowed"),
            )),
        }
    }

    async fn unwatch(&self, user: &commerce_core::UserId, sku: &Sku) -> PortResult<bool> {
        let mut conn = self.redis.conn();
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.watchers_key(sku))
            .arg(user.as_str())
            .cmd("SREM")
            .arg(self.watching_key(user))
            .arg(sku.as_str())
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(removed == 1)
    }

    async fn watchers(&self, sku: &Sku, limit: usize) -> PortResult<Vec<commerce_core::UserId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.conn();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.watchers_key(sku))
            .arg(0)
            .arg(isize::try_from(limit).unwrap_or(isize::MAX) - 1)
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        ids.iter()
            .map(|u| commerce_core::UserId::new(u).map_err(|e| corrupt("user id", e)))
            .collect()
    }

    async fn back_in_stock(
        &self,
        sku: &Sku,
        at: DateTime<Utc>,
    ) -> PortResult<Vec<commerce_core::UserId>> {
        let mut conn = self.redis.conn();
        let ids: Vec<String> = self
            .scripts
            .1
            .key(self.watchers_key(sku))
            .arg(at.timestamp_millis())
            .arg(recs::limits::ARRIVALS_PER_USER_MAX)
            .arg(self.prefix())
            .arg(sku.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        ids.iter()
            .map(|u| commerce_core::UserId::new(u).map_err(|e| corrupt("user id", e)))
            .collect()
    }

    async fn arrivals(
        &self,
        user: &commerce_core::UserId,
        limit: usize,
    ) -> PortResult<Vec<Viewed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.conn();
        let rows: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(self.arrivals_key(user))
            .arg(0)
            .arg(isize::try_from(limit).unwrap_or(isize::MAX) - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        rows_to_viewed(rows)
    }

    async fn dismiss(&self, user: &commerce_core::UserId, sku: &Sku) -> PortResult<bool> {
        let mut conn = self.redis.conn();
        let removed: i64 = redis::cmd("ZREM")
            .arg(self.arrivals_key(user))
            .arg(sku.as_str())
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(removed == 1)
    }
}
