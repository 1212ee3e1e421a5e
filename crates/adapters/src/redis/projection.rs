//! The SKU projection cache on Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_core::ports::ProjectionCache;
use commerce_core::{ErrorKind, PortError, PortResult, ProductId, ProductProjection, Sku};
use redis::Script;

use super::{Redis, error};

/// Versions are 20-digit zero-padded strings: Lua numbers do not hold every `u64`, strings
/// compare exactly.
///
/// Stores a projection (ARGV: version, product, JSON, TTL ms) unless the SKU's floor for the
/// product is above it or the SKU holds a newer version of the same product.
const FILL: &str = r"#!lua
local f = redis.call('HGET', KEYS[1], 'f:' .. ARGV[2])
if f and f > ARGV[1] then return 0 end
local r = redis.call('HMGET', KEYS[1], 'v', 'p')
if r[2] == ARGV[2] and r[1] and r[1] > ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2], 'j', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Raises the SKU's floor for a product (ARGV: version, product, TTL ms) and drops a held
/// projection of that product below it.
const INVALIDATE: &str = r"#!lua
local k = 'f:' .. ARGV[2]
local f = redis.call('HGET', KEYS[1], k)
if not f or f < ARGV[1] then redis.call('HSET', KEYS[1], k, ARGV[1]) end
local r = redis.call('HMGET', KEYS[1], 'v', 'p')
if r[2] == ARGV[2] and r[1] and r[1] < ARGV[1] then redis.call('HDEL', KEYS[1], 'v', 'p', 'j') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Raises a product's floor (ARGV: version, TTL ms) and answers the SKUs recorded for it.
const RAISE: &str = r"#!lua
local f = redis.call('HGET', KEYS[1], 'f')
if not f or f < ARGV[1] then redis.call('HSET', KEYS[1], 'f', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local out = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(k, 1, 2) == 's:' then out[#out + 1] = string.sub(k, 3) end
end
return out
";

/// Sets the applied offset to ARGV[1] unless it is already higher.
const SET_OFFSET: &str = r"#!lua
local o = redis.call('GET', KEYS[1])
if o and o >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

fn padded(v: u64) -> String {
    format!("{v:020}")
}

fn parse_padded(s: &str) -> PortResult<u64> {
    s.parse().map_err(|_| {
        PortError::new(
            ErrorKind::Internal,
            format!("stored version {s:?} is not a number"),
        )
    })
}

/// The [`ProjectionCache`] on Redis, for [`commerce_core::CachedCatalog`]. Keys spread over the
/// cluster, one script per call, each over one key:
///
/// - `namespace:proj:s:SKU`, a hash: the projection as JSON with its version and product, and
///   a floor per product that ever held the SKU;
/// - `namespace:proj:p:PRODUCT`, a hash: the product's floor and the SKUs it was cached under;
/// - `namespace:proj:offset`: the event log offset applied so far, without expiry (lost only
///   with everything else, when the server loses its data).
///
/// Every entry lives `ttl` past its last write (one hour unless set), a safety net: freshness
/// comes from the events. A projection that no longer decodes (written by another version of
/// the SDK) reads as a miss, and the fill that follows replaces it. The catalog database is
/// the source of truth; nothing here is the only copy of anything.
#[derive(Debug, Clone)]
pub struct RedisProjectionCache {
    redis: Redis,
    ttl_ms: u64,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    fill: Script,
    invalidate: Script,
    raise: Script,
    set_offset: Script,
}

impl RedisProjectionCache {
    pub(crate) fn new(redis: Redis) -> Self {
        RedisProjectionCache {
            redis,
            ttl_ms: 3_600_000,
            scripts: Arc::new(Scripts {
                fill: Script::new(FILL),
                invalidate: Script::new(INVALIDATE),
                raise: Script::new(RAISE),
                set_offset: Script::new(SET_OFFSET),
            }),
        }
    }

    /// The same cache with entries living `ttl` past their last write (at least a second).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1_000);
        self
    }

    fn sku_key(&self, sku: &Sku) -> String {
        self.redis.key("proj", &format!("s:{sku}"))
    }

    fn product_key(&self, product: &ProductId) -> String {
        self.redis.key("proj", &format!("p:{product}"))
    }
}

#[async_trait]
impl ProjectionCache for RedisProjectionCache {
    async fn get(&self, sku: &Sku) -> PortResult<Option<ProductProjection>> {
        // One plain read: a held projection is never below its floor (an invalidation drops
        // it in the script that raises the floor, and a fill below the floor is refused).
        let mut conn = self.redis.conn();
        let json: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.sku_key(sku))
            .arg("j")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(json.and_then(|j| serde_json::from_slice(&j).ok()))
    }

    async fn fill(&self, projection: &ProductProjection) -> PortResult<bool> {
        let json = serde_json::to_string(projection)
            .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        let mut conn = self.redis.conn();
        let product_key = self.product_key(&projection.product_id);
        let () = redis::pipe()
            .hset(&product_key, format!("s:{}", projection.sku), 1)
            .ignore()
            .pexpire(&product_key, i64::try_from(self.ttl_ms).unwrap_or(i64::MAX))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        let stored: i64 = self
            .scripts
            .fill
            .key(self.sku_key(&projection.sku))
            .arg(padded(projection.version))
            .arg(projection.product_id.as_str())
            .arg(json)
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(stored == 1)
    }

    async fn invalidate(&self, sku: &Sku, product: &ProductId, version: u64) -> PortResult<()> {
        let mut conn = self.redis.conn();
        let _: i64 = self
            .scripts
            .invalidate
            .key(self.sku_key(sku))
            .arg(padded(version))
            .arg(product.as_str())
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn raise_product_floor(&self, product: &ProductId, version: u64) -> PortResult<Vec<Sku>> {
        let mut conn = self.redis.conn();
        let skus: Vec<String> = self
            .scripts
            .raise
            .key(self.product_key(product))
            .arg(padded(version))
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        skus.into_iter()
            .map(|s| Sku::new(s).map_err(PortError::from))
            .collect()
    }

    async fn product_floor(&self, product: &ProductId) -> PortResult<u64> {
        let mut conn = self.redis.conn();
        let floor: Option<String> = redis::cmd("HGET")
            .arg(self.product_key(product))
            .arg("f")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        floor.map_or(Ok(0), |f| parse_padded(&f))
    }

    async fn applied_offset(&self) -> PortResult<Option<u64>> {
        let mut conn = self.redis.conn();
        let offset: Option<String> = redis::cmd("GET")
            .arg(self.redis.key("proj", "offset"))
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        offset.map(|o| parse_padded(&o)).transpose()
    }

    async fn set_applied_offset(&self, offset: u64) -> PortResult<()> {
        let mut conn = self.redis.conn();
        let _: i64 = self
            .scripts
            .set_offset
            .key(self.redis.key("proj", "offset"))
            .arg(padded(offset))
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        Ok(())
    }
}
