//! Carts on Redis.

use std::sync::Arc;

use async_trait::async_trait;
use cart_engine::{Cart, CartStatus, CartStore};
use chrono::{DateTime, Utc};
use commerce_core::{
    CartId, CasOutcome, ErrorKind, EventEnvelope, EventPublisher, PortError, PortResult, UserId,
};
use redis::{RedisError, Script};

use super::{Redis, error};

/// Carts are spread over this many buckets, each a hash tag of its own: a cart, its bucket's
/// expiry index and its bucket's outbox share a slot, so one script writes all three; the
/// buckets spread over the cluster's masters.
pub const CART_BUCKETS: u32 = 64;

/// Carts whose owner index and expiry listing the sweeper has this long past their expiry
/// before Redis drops them (their TTL is the cart's own time to live plus this).
pub const SWEEP_GRACE_MS: i64 = 7 * 24 * 3_600_000;

/// How long an owner's claim naming a cart not written yet counts as a cart being created
/// (another device's insert in flight, refused as `Conflict`) before it counts as left by a
/// crash and may be replaced.
pub const CLAIM_GRACE_MS: i64 = 10_000;

/// Stores a new cart (KEYS: cart, expiry index, outbox; ARGV: id, version, owner, active,
/// JSON, expiry ms, TTL ms, then event id and envelope pairs) unless the id exists.
///
/// Redis does not roll a script back when a command in it fails, so every write script checks
/// first everything that could make a later command fail: the keys' types (a key of another
/// type would fail `XADD` after `HSET` had written), and, by its `#!lua` line, memory (a
/// script with a shebang is refused before it starts when the server is out of memory, where
/// one without could fail at its first write after its reads).
const INSERT: &str = r"#!lua
local function want(key, kind)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. kind)
  end
end
local bad = want(KEYS[1], 'hash') or want(KEYS[2], 'zset') or want(KEYS[3], 'stream')
if bad then return bad end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'o', ARGV[3], 'a', ARGV[4], 'j', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if ARGV[4] == '1' then redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1]) end
for i = 8, #ARGV, 2 do
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[i], 'e', ARGV[i + 1])
end
return 1
";

/// Compare-and-set on the version (ARGV: id, expected version, version, owner, active, JSON,
/// expiry ms, TTL ms, then events). Answers {'ok', was active} when written, {'mismatch',
/// current version}, {'missing'} or {'owner'} when the owner differs.
const UPDATE: &str = r"#!lua
local function want(key, kind)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. kind)
  end
end
local bad = want(KEYS[1], 'hash') or want(KEYS[2], 'zset') or want(KEYS[3], 'stream')
if bad then return bad end
local r = redis.call('HMGET', KEYS[1], 'v', 'o', 'a')
if not r[1] then return {'missing'} end
if r[1] ~= ARGV[2] then return {'mismatch', r[1]} end
if r[2] ~= ARGV[4] then return {'owner'} end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'a', ARGV[5], 'j', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
for i = 9, #ARGV, 2 do
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[i], 'e', ARGV[i + 1])
end
return {'ok', r[3]}
";

/// Takes an owner's claim (KEYS: claim; ARGV: cart id, the claim value expected or '', or
/// '*' to take it whatever it holds). A claim's value is `cart id|server ms when taken`.
/// Answers {1} when the claim is now this cart's, else {0, the value, its age in ms}.
const CLAIM: &str = r"#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1])
local mine = cur and (cur == ARGV[1] or string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|')
if not cur or mine or cur == ARGV[2] or ARGV[2] == '*' then
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. now)
  return {1}
end
local at = tonumber(string.match(cur, '|(%d+)$') or '0')
return {0, cur, tostring(now - at)}
";

/// Drops a cart's expiry entry (KEYS: cart, expiry index; ARGV: id) when the cart itself is
/// gone (Redis dropped it after its grace), so sweeps do not read it again.
const PRUNE: &str = r"#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
";

/// Deletes an owner's claim (KEYS: claim) if it names cart ARGV[1].
const UNCLAIM: &str = r"#!lua
local cur = redis.call('GET', KEYS[1])
if cur and (cur == ARGV[1] or string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes KEYS[1] if it holds ARGV[1].
const RELEASE: &str = r"#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Deletes relayed outbox entries up to and including ARGV[1] (KEYS: outbox, relay lock;
/// ARGV: last entry id, lock token) while the relay still holds the bucket's lock.
const ACK: &str = r"#!lua
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', ARGV[1])) do
  n = n + redis.call('XDEL', KEYS[1], e[1])
end
return n
";

fn padded(v: u64) -> String {
    format!("{v:020}")
}

/// The bucket of a cart id (FNV-1a of the id, modulo [`CART_BUCKETS`]): the same in every
/// process and version. Its keys carry the hash tag `{NAMESPACE.bNN}` (`NN` the bucket, two
/// digits), so an operator finds a cart's cluster slot with `CLUSTER KEYSLOT "{shop.b07}"`.
///
/// ```
/// use adapters::redis::{CART_BUCKETS, cart_bucket};
/// let id = commerce_core::CartId::new("cart-42")?;
/// assert!(cart_bucket(&id) < CART_BUCKETS);
/// assert_eq!(cart_bucket(&id), cart_bucket(&id));
/// # Ok::<(), commerce_core::Error>(())
/// ```
pub fn cart_bucket(id: &CartId) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(CART_BUCKETS)).unwrap_or(0)
}

/// A write's failure: refused before it was sent is `Unavailable`; a timeout or a connection
/// lost after sending is `Indeterminate` (it may have committed: read the cart again).
fn write_error(e: RedisError) -> PortError {
    if e.is_timeout() || e.is_connection_dropped() {
        PortError::caused_by(ErrorKind::Indeterminate, e)
    } else {
        error(e)
    }
}

/// The [`CartStore`] on Redis, on a single node or a cluster, for carts that must follow a
/// shopper across devices and servers at tens of thousands of writes a second.
///
/// **Layout.** A cart id hashes to one of [`CART_BUCKETS`] buckets ([`cart_bucket`]), each a
/// hash tag `{namespace.bNN}`: `namespace:cart:{namespace.bNN}:c:ID` holds the cart (JSON,
/// version, owner, active flag), `…:exp` the bucket's active carts by expiry, `…:out` the
/// bucket's outbox (a stream). Every write is one script over those three keys: the
/// compare-and-set on the version, the expiry index and the events commit together or not at
/// all.
///
/// **One active cart per owner.** An owner's claim, `namespace:cart:owner:USER`, names their
/// active cart and when it was taken (server time); it lives in another slot, so it is taken
/// before the cart is written and trusted only after checking the cart it names. A claim
/// naming their active cart refuses a second one (`Conflict`); so does a claim naming a cart
/// not written yet, for [`CLAIM_GRACE_MS`] (another device's insert is in flight); after
/// that, or when the cart it names is no longer active, the claim is stale (a crash between
/// the two writes, a cart checked out) and the next cart replaces it by compare-and-set.
///
/// **Expiry, exactly once.** Each cart key lives its time to live plus [`SWEEP_GRACE_MS`]
/// past its last write. The abandoned-cart sweep ([`cart_engine::sweep_abandoned`]) lists
/// expired carts from the buckets' expiry indexes, which Redis never expires, so it finds each
/// cart during that grace week, long before Redis would drop it; the mark is a compare-and-set
/// that commits `CartAbandoned` with it, once. (A cart Redis did drop, with no sweep running for
/// a week, leaves an expiry entry that the next sweep prunes, and an owner claim that the
/// owner's next cart finds stale.)
///
/// **Events.** A write's events land in its bucket's outbox in the same script. The store
/// relays them to the durable event log (the [`EventPublisher`] it was given, which skips an
/// event id it holds) right after the write, and [`RedisCartStore::relay`] drains every bucket
/// (run it on a timer: it delivers what a crash or a busy bucket left behind). Entries are
/// deleted only after the log accepted them, under a per-bucket lock so each bucket is
/// delivered in order.
///
/// Carts are the only copy of a cart, by design: a cart is not an order (checkout writes the
/// order to the database), and Redis persistence (AOF) is the operator's choice for how much
/// a server crash may cost shoppers.
#[derive(Debug, Clone)]
pub struct RedisCartStore {
    redis: Redis,
    log: Arc<dyn EventPublisher>,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    insert: Script,
    update: Script,
    claim: Script,
    unclaim: Script,
    prune: Script,
    release: Script,
    ack: Script,
}

/// How many outbox entries one relay step moves.
const RELAY_BATCH: usize = 256;

impl RedisCartStore {
    pub(crate) fn new(redis: Redis, log: Arc<dyn EventPublisher>) -> Self {
        RedisCartStore {
            redis,
            log,
            scripts: Arc::new(Scripts {
                insert: Script::new(INSERT),
                update: Script::new(UPDATE),
                claim: Script::new(CLAIM),
                unclaim: Script::new(UNCLAIM),
                prune: Script::new(PRUNE),
                release: Script::new(RELEASE),
                ack: Script::new(ACK),
            }),
        }
    }

    /// The hash tag of bucket `b`: the namespace and the bucket, so namespaces sharing a
    /// cluster (test runs, tenants) spread over different slots.
    fn tag(&self, b: u32) -> String {
        format!("{{{}.b{b:02}}}", self.redis.namespace())
    }

    fn cart_key(&self, id: &CartId) -> String {
        self.redis
            .key("cart", &format!("{}:c:{id}", self.tag(cart_bucket(id))))
    }

    fn expiry_key(&self, b: u32) -> String {
        self.redis.key("cart", &format!("{}:exp", self.tag(b)))
    }

    fn outbox_key(&self, b: u32) -> String {
        self.redis.key("cart", &format!("{}:out", self.tag(b)))
    }

    fn lock_key(&self, b: u32) -> String {
        self.redis.key("cart", &format!("{}:relay", self.tag(b)))
    }

    fn claim_key(&self, owner: &UserId) -> String {
        self.redis.key("cart", &format!("owner:{owner}"))
    }

    /// The cart's fields for a script: JSON, expiry in ms, key TTL in ms.
    fn encode(cart: &Cart) -> PortResult<(Vec<u8>, i64, i64)> {
        let json =
            serde_json::to_vec(cart).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        let expires = cart.expires_at().timestamp_millis();
        let ttl = (cart.expires_at() - cart.updated_at())
            .num_milliseconds()
            .max(0)
            .saturating_add(SWEEP_GRACE_MS);
        Ok((json, expires, ttl))
    }

    fn event_args(
        script: &mut redis::ScriptInvocation<'_>,
        events: &[EventEnvelope],
    ) -> PortResult<()> {
        for e in events {
            let body = serde_json::to_string(e)
                .map_err(|err| PortError::caused_by(ErrorKind::Internal, err))?;
            script.arg(e.event_id.as_str()).arg(body);
        }
        Ok(())
    }

    /// Points `owner`'s claim at `id`, replacing a claim whose cart is no longer their active
    /// cart; `Conflict` when it names another active cart of theirs.
    async fn claim(&self, owner: &UserId, id: &CartId) -> PortResult<()> {
        let key = self.claim_key(owner);
        let mut expected = String::new();
        for _ in 0..4 {
            let mut conn = self.redis.conn();
            let answer: Vec<String> = self
                .scripts
                .claim
                .key(&key)
                .arg(id.as_str())
                .arg(&expected)
                .invoke_async(&mut conn)
                .await
                .map_err(error)?;
            let Some(holder) = answer.get(1) else {
                return Ok(());
            };
            let age: i64 = answer
                .get(2)
                .and_then(|a| a.parse().ok())
                .unwrap_or(i64::MAX);
            let holder_id = claimed_cart(holder)?;
            match self.get(&holder_id).await? {
                Some(c) if c.owner() == Some(owner) && *c.status() == CartStatus::Active => {
                    return Err(PortError::new(
                        ErrorKind::Conflict,
                        format!("user {owner} already has an active cart"),
                    ));
                }
                None if age < CLAIM_GRACE_MS => {
                    return Err(PortError::new(
                        ErrorKind::Conflict,
                        format!("user {owner}'s active cart is being created"),
                    ));
                }
                _ => expected = holder.clone(),
            }
        }
        Err(PortError::new(
            ErrorKind::Conflict,
            format!("user {owner}'s active cart is changing; try again"),
        ))
    }

    /// Moves every bucket's pending events to the event log; answers how many it delivered.
    /// Buckets another relay is draining are left to it.
    ///
    /// # Errors
    /// Redis's or the log's error; what was not delivered stays in the outbox for the next
    /// call.
    pub async fn relay(&self) -> PortResult<usize> {
        let mut n = 0;
        for b in 0..CART_BUCKETS {
            n += self.relay_bucket(b).await?;
        }
        Ok(n)
    }

    /// Relays every `every`, forever: spawn it beside the store and abort the task to stop.
    /// A failed pass (Redis or the log down) is retried at the next tick.
    ///
    /// ```no_run
    /// # async fn demo(redis: adapters::redis::Redis, log: std::sync::Arc<commerce_core::memory::InMemoryEventLog>) {
    /// let carts = redis.cart_store(log);
    /// let relay = tokio::spawn({
    ///     let carts = carts.clone();
    ///     async move { carts.relay_every(std::time::Duration::from_millis(200)).await }
    /// });
    /// // ... serve carts ...
    /// relay.abort();
    /// # }
    /// ```
    pub async fn relay_every(&self, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = self.relay().await;
        }
    }

    /// Events waiting in the outboxes (for lag metrics).
    ///
    /// # Errors
    /// Redis's error.
    pub async fn pending(&self) -> PortResult<usize> {
        let mut n = 0;
        for b in 0..CART_BUCKETS {
            let mut conn = self.redis.conn();
            let len: usize = redis::cmd("XLEN")
                .arg(self.outbox_key(b))
                .query_async(&mut conn)
                .await
                .map_err(error)?;
            n += len;
        }
        Ok(n)
    }

    async fn relay_bucket(&self, b: u32) -> PortResult<usize> {
        let lock = self.lock_key(b);
        let token = format!("{}:{}", std::process::id(), uniq());
        let mut conn = self.redis.conn();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        if taken.is_none() {
            return Ok(0);
        }
        let result = self.drain(b, &lock, &token).await;
        let _: i64 = self
            .scripts
            .release
            .key(&lock)
            .arg(&token)
            .invoke_async(&mut conn)
            .await
            .map_err(error)?;
        result
    }

    async fn drain(&self, b: u32, lock: &str, token: &str) -> PortResult<usize> {
        let outbox = self.outbox_key(b);
        let mut delivered = 0;
        loop {
            let mut conn = self.redis.conn();
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&outbox)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(RELAY_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(error)?;
            let Some((last, _)) = entries.last() else {
                return Ok(delivered);
            };
            let last = last.clone();
            let mut events = Vec::with_capacity(entries.len());
            for (_, fields) in &entries {
                let body = fields
                    .iter()
                    .find(|(k, _)| k == "e")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                let event: EventEnvelope = serde_json::from_str(body).map_err(|e| {
                    PortError::new(
                        ErrorKind::Internal,
                        format!("an outbox entry does not load: {e}"),
                    )
                })?;
                events.push(event);
            }
            self.log.publish(&events).await?;
            let acked: i64 = self
                .scripts
                .ack
                .key(&outbox)
                .key(lock)
                .arg(&last)
                .arg(token)
                .invoke_async(&mut conn)
                .await
                .map_err(error)?;
            if acked < 0 {
                // The lock expired under us: another relay owns the bucket now (what we
                // published it will skip by event id).
                return Ok(delivered);
            }
            delivered += events.len();
            if entries.len() < RELAY_BATCH {
                return Ok(delivered);
            }
        }
    }

    /// After a write with events: deliver them now when the bucket is free (best effort; the
    /// timer's [`RedisCartStore::relay`] delivers what this leaves).
    async fn relay_after_write(&self, id: &CartId, events: &[EventEnvelope]) {
        if !events.is_empty() {
            let _ = self.relay_bucket(cart_bucket(id)).await;
        }
    }
}

/// The cart a claim's value names (`cart id|ms`, or a bare id).
fn claimed_cart(value: &str) -> PortResult<CartId> {
    let id = value.rsplit_once('|').map_or(value, |(id, _)| id);
    CartId::new(id).map_err(PortError::from)
}

fn uniq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[async_trait]
impl CartStore for RedisCartStore {
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()> {
        let active = *cart.status() == CartStatus::Active;
        if let Some(owner) = cart.owner()
            && active
        {
            self.claim(owner, cart.id()).await?;
        }
        let (json, expires, ttl) = Self::encode(&cart)?;
        let b = cart_bucket(cart.id());
        let mut script = self.scripts.insert.prepare_invoke();
        script
            .key(self.cart_key(cart.id()))
            .key(self.expiry_key(b))
            .key(self.outbox_key(b))
            .arg(cart.id().as_str())
            .arg(padded(cart.version()))
            .arg(cart.owner().map_or("", UserId::as_str))
            .arg(if active { "1" } else { "0" })
            .arg(json)
            .arg(expires)
            .arg(ttl);
        Self::event_args(&mut script, events)?;
        let mut conn = self.redis.conn();
        let stored: i64 = script.invoke_async(&mut conn).await.map_err(write_error)?;
        if stored == 0 {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("cart {} exists", cart.id()),
            ));
        }
        self.relay_after_write(cart.id(), events).await;
        Ok(())
    }

    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>> {
        let mut conn = self.redis.conn();
        let json: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.cart_key(id))
            .arg("j")
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        json.map(|j| {
            serde_json::from_slice(&j).map_err(|e| {
                PortError::new(
                    ErrorKind::Internal,
                    format!("stored cart {id} does not load: {e}"),
                )
            })
        })
        .transpose()
    }

    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>> {
        let mut conn = self.redis.conn();
        let claimed: Option<String> = redis::cmd("GET")
            .arg(self.claim_key(user))
            .query_async(&mut conn)
            .await
            .map_err(error)?;
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let id = claimed_cart(&claimed)?;
        Ok(self
            .get(&id)
            .await?
            .filter(|c| c.owner() == Some(user) && *c.status() == CartStatus::Active))
    }

    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let active = *cart.status() == CartStatus::Active;
        let (json, expires, ttl) = Self::encode(&cart)?;
        let b = cart_bucket(cart.id());
        let mut script = self.scripts.update.prepare_invoke();
        script
            .key(self.cart_key(cart.id()))
            .key(self.expiry_key(b))
            .key(self.outbox_key(b))
            .arg(cart.id().as_str())
            .arg(padded(expected_version))
            .arg(padded(cart.version()))
            .arg(cart.owner().map_or("", UserId::as_str))
            .arg(if active { "1" } else { "0" })
            .arg(json)
            .arg(expires)
            .arg(ttl);
        Self::event_args(&mut script, events)?;
        let mut conn = self.redis.conn();
        let answer: Vec<String> = script.invoke_async(&mut conn).await.map_err(write_error)?;
        let second = answer.get(1).map_or("", String::as_str);
        match answer.first().map_or("", String::as_str) {
            "ok" => {
                if let Some(owner) = cart.owner() {
                    if !active {
                        // Best effort: a claim left behind is found stale by the next cart.
                        let _: Result<i64, _> = self
                            .scripts
                            .unclaim
                            .key(self.claim_key(owner))
                            .arg(cart.id().as_str())
                            .invoke_async(&mut conn)
                            .await;
                    } else if second != "1" {
                        let _: Result<Vec<String>, _> = self
                            .scripts
                            .claim
                            .key(self.claim_key(owner))
                            .arg(cart.id().as_str())
                            .arg("*")
                            .invoke_async(&mut conn)
                            .await;
                    }
                }
                self.relay_after_write(cart.id(), events).await;
                Ok(CasOutcome::Committed)
            }
            "mismatch" => {
                let current = second.parse().map_err(|_| {
                    PortError::new(
                        ErrorKind::Internal,
                        format!("stored version {second:?} is not a number"),
                    )
                })?;
                Ok(CasOutcome::VersionMismatch { current })
            }
            "missing" => Err(PortError::new(
                ErrorKind::NotFound,
                format!("cart {}", cart.id()),
            )),
            "owner" => Err(PortError::new(
                ErrorKind::Conflict,
                format!("cart {} cannot change owner", cart.id()),
            )),
            other => Err(PortError::new(
                ErrorKind::Internal,
                format!("cart update answered {other:?}"),
            )),
        }
    }

    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>> {
        let limit = limit.min(cart_engine::limits::SWEEP_BATCH_MAX);
        let now_ms = now.timestamp_millis();
        let reads = (0..CART_BUCKETS).map(|b| async move {
            let mut conn = self.redis.conn();
            let ids: Vec<(String, i64)> = redis::cmd("ZRANGE")
                .arg(self.expiry_key(b))
                .arg("-inf")
                .arg(now_ms)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(error)?;
            Ok::<_, PortError>(ids)
        });
        let mut candidates = Vec::new();
        for r in futures::future::join_all(reads).await {
            candidates.extend(r?);
        }
        candidates.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let mut out = Vec::new();
        for (id, _) in candidates {
            if out.len() == limit {
                break;
            }
            let id = CartId::new(id).map_err(PortError::from)?;
            match self.get(&id).await? {
                Some(c) if *c.status() == CartStatus::Active && c.is_expired(now) => out.push(c),
                Some(_) => {}
                None => {
                    let mut conn = self.redis.conn();
                    let _: i64 = self
                        .scripts
                        .prune
                        .key(self.cart_key(&id))
                        .key(self.expiry_key(cart_bucket(&id)))
                        .arg(id.as_str())
                        .invoke_async(&mut conn)
                        .await
                        .map_err(error)?;
                }
            }
        }
        out.sort_by(|a, b| {
            a.expires_at()
                .cmp(&b.expires_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        Ok(out)
    }
}
