//! The SDK's shared, fast-changing state on Redis (feature `redis`): a single node through a
//! connection manager that reconnects by itself, or a Redis Cluster through the cluster client.
//!
//! Every operation that reads and writes is one Lua script over keys of one hash slot, so it is
//! atomic on a single node and on a cluster alike. Redis does not roll back a script whose
//! command fails, so no script writes before it has checked what could fail: every script
//! starts with `#!lua`, which makes the server refuse it whole when it is out of memory (a
//! script without the line can fail at a write after earlier writes), and scripts over keys of
//! several types check the types before writing. Every key is prefixed with the
//! [`Redis`] handle's namespace, so deployments (and test runs) sharing a server never meet.
//! Redis is never the only copy of anything that must survive: holds and orders live in the
//! database; what is here is either derived (caches, lists) or short-lived by design
//! (rate-limit buckets).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapters::redis::Redis;
//! use commerce_core::{RateDecision, RateLimit, RateLimiter};
//! let redis = Redis::connect("redis://127.0.0.1:6379").await?.with_namespace("shop");
//! let limiter = redis.rate_limiter();
//! let limit = RateLimit { capacity: 20, refill_per_sec: 10 };
//! let now = chrono::DateTime::UNIX_EPOCH;
//! if let RateDecision::Limited { retry_after } = limiter.acquire("ip:203.0.113.9", &limit, 1, now).await? {
//!     println!("429, retry after {retry_after}");
//! }
//! # Ok(()) }
//! ```

mod admission;
mod carts;
mod projection;
mod ratelimit;
mod recs;

use std::time::Duration;

use commerce_core::{ErrorKind, PortError, PortResult};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

pub use admission::RedisAdmissionQueue;
pub use carts::{CART_BUCKETS, CLAIM_GRACE_MS, RedisCartStore, SWEEP_GRACE_MS, cart_bucket};
pub use projection::RedisProjectionCache;
pub use ratelimit::RedisRateLimiter;
pub use recs::{RedisBackInStock, RedisRecentlyViewed, RedisTopKStore};

/// How long a call waits for a reply, and for a connection, before it fails as `Unavailable`
/// (a server that is down refuses at once; this bounds a hung one, and leaves room for a
/// burst of thousands of calls queued on one multiplexed connection).
const TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to a single node or a cluster, cheap to clone (one multiplexed connection per
/// node underneath, shared by every clone).
#[derive(Clone)]
pub struct Redis {
    conn: Conn,
    namespace: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Single(_) => "single node",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("Redis")
            .field("kind", &kind)
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Redis {
    /// A single node (`redis://host:port`). The connection manager reconnects on its own after
    /// the server comes back; while it is down, calls fail fast as `Unavailable`.
    ///
    /// # Errors
    /// `Invalid` for a malformed URL; `Unavailable` when the server cannot be reached.
    pub async fn connect(url: &str) -> PortResult<Redis> {
        let client =
            redis::Client::open(url).map_err(|e| PortError::caused_by(ErrorKind::Invalid, e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(error)?;
        Ok(Redis {
            conn: Conn::Single(manager),
            namespace: String::new(),
        })
    }

    /// A Redis Cluster, from any of its nodes' URLs (the client learns the slot map and follows
    /// `MOVED` and `ASK` redirections while slots move).
    ///
    /// # Errors
    /// `Invalid` for a malformed URL; `Unavailable` when no node can be reached.
    pub async fn connect_cluster(urls: &[&str]) -> PortResult<Redis> {
        let client = redis::cluster::ClusterClient::builder(urls.to_vec())
            .connection_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .retries(3)
            .build()
            .map_err(|e| PortError::caused_by(ErrorKind::Invalid, e))?;
        let conn = client.get_async_connection().await.map_err(error)?;
        Ok(Redis {
            conn: Conn::Cluster(conn),
            namespace: String::new(),
        })
    }

    /// The same connection, with every key under `namespace` (followed by `:`).
    #[must_use]
    pub fn with_namespace(mut self, namespace: &str) -> Redis {
        self.namespace = namespace.to_owned();
        self
    }

    /// The namespace every key of this handle starts with (empty for none).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A key of this namespace: `namespace:kind:name`. `tag` wraps `name` in a hash tag, for
    /// keys a script touches together.
    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        if self.namespace.is_empty() {
            format!("{kind}:{name}")
        } else {
            format!("{}:{kind}:{name}", self.namespace)
        }
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The flash-sale waiting room shared by every instance (see [`RedisAdmissionQueue`]).
    pub fn admission_queue(&self) -> RedisAdmissionQueue {
        RedisAdmissionQueue::new(self.clone())
    }

    /// The recommendations' ranked lists (see [`RedisTopKStore`]).
    pub fn topk_store(&self) -> RedisTopKStore {
        RedisTopKStore::new(self.clone())
    }

    /// Each session's recently viewed products, `capacity` per session (see
    /// [`RedisRecentlyViewed`]).
    pub fn recently_viewed(&self, capacity: usize) -> RedisRecentlyViewed {
        RedisRecentlyViewed::new(self.clone(), capacity)
    }

    /// Back-in-stock watchers and arrivals (see [`RedisBackInStock`]).
    pub fn back_in_stock(&self) -> RedisBackInStock {
        RedisBackInStock::new(self.clone())
    }

    /// Carts, relaying their events to `log` (see [`RedisCartStore`]).
    pub fn cart_store(
        &self,
        log: std::sync::Arc<dyn commerce_core::EventPublisher>,
    ) -> RedisCartStore {
        RedisCartStore::new(self.clone(), log)
    }

    /// The SKU projection cache in front of the catalog (see [`RedisProjectionCache`]; wrap
    /// it in a [`commerce_core::CachedCatalog`]).
    pub fn projection_cache(&self) -> RedisProjectionCache {
        RedisProjectionCache::new(self.clone())
    }

    /// Token buckets shared by every instance on this connection (see [`RedisRateLimiter`]).
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.clone())
    }
}

/// A Redis error as a port error: a server or cluster that cannot be reached, a timeout or a
/// dropped connection is `Unavailable` (the caller may retry or fail open); anything else (a
/// script error, a reply of the wrong type) is `Internal`.
pub(crate) fn error(e: RedisError) -> PortError {
    let kind = if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_cluster_error()
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    };
    PortError::caused_by(kind, e)
}
