//! The in-memory stock store, built for concurrency: sharded registries, one mutex per counter
//! shard, and no lock held across another shard's.
//!
//! # Layout
//! - `stocks`: 64 registry shards of `StockKey → Arc<Stock>` behind read-write locks.
//! - A `Stock` has a `meta` mutex (on hand, committed, configuration) and 1 to `shards_max`
//!   counter shards. Each shard owns a slice of the free units and the holds taken from it:
//!   `free`, `held`, the live holds by expiry, and the parts of expired holds it already took
//!   back (`reclaimed`).
//! - `holds`: 64 shards of `HoldId → HoldRecord`, each with an expiry index for the sweeper.
//!
//! # Lock order
//! hold shard → stock meta → counter shards in ascending index. Reservations never take `meta`
//! and hold one counter shard at a time, so a hot SKU's shards work in parallel.
//!
//! # Invariant
//! For every stock, `Σ free − deficit = on_hand − committed − Σ held − safety_stock +
//! backorder_limit`, where `held` counts live, pinned and expired-but-not-yet-reclaimed parts.
//! A shard's `free` is never negative; units promised beyond stock (a count below what is
//! promised, an accepted shortfall) are the `deficit`, paid off by the next units that come
//! back before any shard holds free units again. A reservation only takes what `free` holds:
//! there is no path that promises a unit twice.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, TryLockError};

// Under `--cfg inventory_loom` the synchronization primitives are loom's, so its model checker can
// explore every interleaving of the counter shards, the deficit and the hold registry
// (`tests/loom.rs`).
#[cfg(inventory_loom)]
use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
#[cfg(inventory_loom)]
use loom::sync::{Arc, Mutex, MutexGuard, RwLock};
#[cfg(not(inventory_loom))]
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(inventory_loom))]
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{DomainEvent, IdempotencyKey};

use crate::limits::{CONTENTION_PROMOTE_AFTER, HOLD_RETENTION_SECS, QUANTITY_MAX, SWEEP_BATCH_MAX};
use crate::port::{Movement, Sweep};
use crate::{
    Changes, DirectCommit, Error, Hold, HoldId, HoldStatus, Result, Shortfall, ShortfallPolicy,
    StockConfig, StockKey, StockLevel, StockLine, StockStore, demand,
};

#[cfg(not(inventory_loom))]
const REGISTRY_SHARDS: usize = 64;
#[cfg(inventory_loom)]
const REGISTRY_SHARDS: usize = 1;

/// One shard of the stock registry.
type Registry = RwLock<HashMap<StockKey, Arc<Stock>>>;
#[cfg(not(inventory_loom))]
const HOLD_SHARDS: usize = 64;
#[cfg(inventory_loom)]
const HOLD_SHARDS: usize = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shard_of(h: &impl Hash, n: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    h.hash(&mut hasher);
    // The modulo keeps the value below `n`, so the cast back cannot truncate.
    usize::try_from(hasher.finish() % n as u64).unwrap_or(0)
}

/// One counter shard of a stock.
#[derive(Debug, Default)]
struct Shard {
    free: i64,
    held: i64,
    /// Live (not pinned) hold parts by expiry.
    expiring: BTreeMap<(DateTime<Utc>, HoldId), i64>,
    /// Parts of expired holds whose units this shard already took back, awaiting the sweep.
    reclaimed: HashMap<HoldId, i64>,
}

impl Shard {
    /// Units held by expired parts not yet reclaimed.
    fn expired(&self, now: DateTime<Utc>) -> i64 {
        match self.expiring.first_key_value() {
            Some(((at, _), _)) if *at <= now => self
                .expiring
                .iter()
                .take_while(|((at, _), _)| *at <= now)
                .map(|(_, q)| *q)
                .sum(),
            _ => 0,
        }
    }

    /// Takes expired parts' units back (paying any deficit first).
    fn reclaim(&mut self, now: DateTime<Utc>, deficit: &AtomicI64) {
        while let Some(entry) = self.expiring.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, hold), q) = entry.remove_entry();
            self.credit(q, deficit);
            self.held -= q;
            *self.reclaimed.entry(hold).or_insert(0) += q;
        }
    }

    /// Adds `q` units to `free`, paying the stock's deficit first: while units are owed, no
    /// shard may hold free units another reservation could take.
    fn credit(&mut self, q: i64, deficit: &AtomicI64) {
        self.free += q - pay_deficit(deficit, q);
    }
}

#[derive(Debug)]
struct Meta {
    on_hand: i64,
    committed: i64,
    config: StockConfig,
}

#[derive(Debug)]
struct Stock {
    key: StockKey,
    meta: Mutex<Meta>,
    shards: Box<[Mutex<Shard>]>,
    active: AtomicUsize,
    contention: AtomicU64,
    /// A copy of `meta.config.backorder_limit`, for the lock-free read path.
    backorder: AtomicI64,
    /// Set when the stock was last seen with nothing available (a failed reservation, an event
    /// snapshot); the next return of units checks for `BackInStock`.
    sold_out: AtomicBool,
    /// Units promised beyond what the shards hold (after a count below what is promised, or an
    /// accepted shortfall). While it is positive every shard's `free` is zero: returning units
    /// pay it off before they can be reserved again.
    deficit: AtomicI64,
}

/// Takes up to `q` units off `deficit`; returns how many it took.
fn pay_deficit(deficit: &AtomicI64, q: i64) -> i64 {
    let mut paid = 0;
    let _ = deficit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
        paid = d.min(q).max(0);
        Some(d - paid)
    });
    paid
}

/// One part of a hold: units taken from one shard of one stock.
#[derive(Debug, Clone)]
struct Part {
    stock: Arc<Stock>,
    shard: usize,
    quantity: i64,
}

#[derive(Debug)]
struct HoldRecord {
    lines: Vec<StockLine>,
    parts: Vec<Part>,
    status: HoldStatus,
    expires_at: DateTime<Utc>,
    /// The checkout that adopted it, if any.
    owner: Option<String>,
}

impl HoldRecord {
    fn view(&self, id: &HoldId) -> Hold {
        Hold {
            id: id.clone(),
            lines: self.lines.clone(),
            status: self.status,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Debug, Default)]
struct HoldShard {
    holds: HashMap<HoldId, HoldRecord>,
    expiry: BTreeSet<(DateTime<Utc>, HoldId)>,
    /// Finished holds (committed, released, expired) by when they finished, kept for
    /// [`HOLD_RETENTION_SECS`] so retries stay idempotent, then dropped by the sweep.
    finished: std::collections::VecDeque<(DateTime<Utc>, HoldId)>,
}

impl HoldShard {
    /// Moves a hold to a final `status`: off the expiry index, onto the retention queue as
    /// finished at `finished_at`.
    fn close(&mut self, id: &HoldId, status: HoldStatus, finished_at: DateTime<Utc>) {
        if let Some(record) = self.holds.get_mut(id) {
            record.status = status;
            self.expiry.remove(&(record.expires_at, id.clone()));
            self.finished.push_back((finished_at, id.clone()));
        }
    }

    /// Drops finished holds older than the retention window.
    fn prune(&mut self, now: DateTime<Utc>) {
        let Some(horizon) = now.checked_sub_signed(chrono::TimeDelta::seconds(HOLD_RETENTION_SECS))
        else {
            return;
        };
        while self.finished.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, id)) = self.finished.pop_front() {
                self.holds.remove(&id);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Movements {
    applied: HashMap<IdempotencyKey, String>,
    log: Vec<Movement>,
}

/// A [`StockStore`] in memory, safe and fast under many threads. Besides the async port it
/// offers synchronous methods with the same names and semantics, for embedding and for hot
/// loops that should not pay for a future.
///
/// ```
/// use chrono::TimeDelta;
/// use commerce_core::{IdempotencyKey, LocationId, Sku, testkit::t0};
/// use inventory::{HoldId, InMemoryStockStore, StockConfig, StockKey, StockLine, Error};
///
/// let store = InMemoryStockStore::new();
/// let key = StockKey::new(Sku::new("TEE")?, LocationId::new("wh-1")?);
/// store.configure_now(&key, StockConfig::default())?;
/// let _ = store.receive_now(&IdempotencyKey::new("po-1")?, &key, 1, t0())?;
///
/// let line = StockLine { key: key.clone(), quantity: 1 };
/// let expires = t0() + TimeDelta::minutes(15);
/// store.reserve_now(&HoldId::new("cart-a")?, &[line.clone()], expires, t0())?;
/// let second = store.reserve_now(&HoldId::new("cart-b")?, &[line], expires, t0());
/// assert!(matches!(second, Err(Error::InsufficientStock { .. }))); // the last unit is taken
///
/// // After the hold's time, the unit is free again, before any sweeper runs.
/// assert_eq!(store.available_now(&key, expires)?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct InMemoryStockStore {
    stocks: Box<[Registry]>,
    holds: Box<[Mutex<HoldShard>]>,
    movements: Mutex<Movements>,
}

impl Default for InMemoryStockStore {
    fn default() -> Self {
        InMemoryStockStore {
            stocks: (0..REGISTRY_SHARDS)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
            holds: (0..HOLD_SHARDS)
                .map(|_| Mutex::new(HoldShard::default()))
                .collect(),
            movements: Mutex::new(Movements::default()),
        }
    }
}

/// A snapshot taken under the stock's meta lock and every shard lock.
fn snapshot(stock: &Stock, meta: &Meta, now: DateTime<Utc>) -> StockLevel {
    let shards: Vec<MutexGuard<'_, Shard>> = stock.shards.iter().map(lock).collect();
    let deficit = stock.deficit.load(Ordering::Acquire);
    debug_assert!(
        deficit == 0 || shards.iter().all(|s| s.free <= 0),
        "{}: a shard holds free units while {deficit} are owed",
        stock.key
    );
    let free: i64 = shards.iter().map(|s| s.free).sum::<i64>() - deficit;
    let held: i64 = shards.iter().map(|s| s.held).sum();
    let expired: i64 = shards.iter().map(|s| s.expired(now)).sum();
    let c = meta.config;
    let level = StockLevel {
        on_hand: meta.on_hand,
        held: held - expired,
        committed: meta.committed,
        safety_stock: c.safety_stock,
        backorder_limit: c.backorder_limit,
        available: free + expired - c.backorder_limit,
        shards: stock.active.load(Ordering::Acquire),
    };
    debug_assert_eq!(
        meta.on_hand,
        level.available + level.held + level.committed + c.safety_stock,
        "conservation broken for {}",
        stock.key
    );
    level
}

fn changed(
    stock: &Stock,
    meta: &Meta,
    before_available: i64,
    now: DateTime<Utc>,
    events: &mut Vec<DomainEvent>,
) {
    let level = snapshot(stock, meta, now);
    stock
        .sold_out
        .store(level.available <= 0, Ordering::Release);
    events.push(DomainEvent::InventoryChanged {
        sku: stock.key.sku.clone(),
        location: stock.key.location.clone(),
        on_hand: level.on_hand,
        available: level.available,
    });
    if before_available <= 0 && level.available > 0 {
        events.push(DomainEvent::BackInStock {
            sku: stock.key.sku.clone(),
            available: level.available,
        });
    }
}

impl Stock {
    fn new(key: StockKey, config: StockConfig) -> Stock {
        let shards: Box<[Mutex<Shard>]> = (0..config.shards_max)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        let opening = config.backorder_limit - config.safety_stock;
        lock(&shards[0]).free = opening.max(0);
        Stock {
            key,
            meta: Mutex::new(Meta {
                on_hand: 0,
                committed: 0,
                config,
            }),
            shards,
            active: AtomicUsize::new(config.shards),
            contention: AtomicU64::new(0),
            backorder: AtomicI64::new(config.backorder_limit),
            deficit: AtomicI64::new((-opening).max(0)),
            sold_out: AtomicBool::new(true),
        }
    }

    /// Available units at `now` without the meta lock: Σ free + expired − backorder allowance.
    fn available(&self, now: DateTime<Utc>, backorder_limit: i64) -> i64 {
        let active = self.active.load(Ordering::Acquire);
        let mut total = 0;
        for shard in &self.shards[..active] {
            let s = lock(shard);
            total += s.free + s.expired(now);
        }
        total - self.deficit.load(Ordering::Acquire) - backorder_limit
    }

    /// Adds `delta` free units (negative: removes them), spreading over active shards.
    fn adjust_free(&self, delta: i64) {
        let active = i64::try_from(self.active.load(Ordering::Acquire))
            .unwrap_or(1)
            .max(1);
        if delta >= 0 {
            let (each, rest) = (delta / active, delta % active);
            for (i, shard) in self
                .shards
                .iter()
                .take(usize::try_from(active).unwrap_or(1))
                .enumerate()
            {
                let extra = i64::from(i64::try_from(i).unwrap_or(0) < rest);
                // Each shard pays what is owed before it holds anything free.
                lock(shard).credit(each + extra, &self.deficit);
            }
        } else {
            // Owe the whole amount first, then pay it from the shards' free units. A unit that
            // comes back meanwhile pays the debt before it is free, so no shard ever holds free
            // units while anything is owed.
            self.deficit.fetch_add(-delta, Ordering::AcqRel);
            for shard in &self.shards {
                let mut s = lock(shard);
                if s.free > 0 {
                    let paid = pay_deficit(&self.deficit, s.free);
                    s.free -= paid;
                }
            }
        }
    }

    /// Takes up to `quantity` free units (reclaiming expired parts on the way) without making a
    /// hold; returns how many it took.
    fn take_free(&self, quantity: i64, now: DateTime<Utc>) -> i64 {
        let active = self.active.load(Ordering::Acquire);
        let mut need = quantity;
        for shard in &self.shards[..active] {
            let mut s = lock(shard);
            if s.free < need {
                s.reclaim(now, &self.deficit);
            }
            let take = need.min(s.free.max(0));
            s.free -= take;
            need -= take;
            if need == 0 {
                break;
            }
        }
        quantity - need
    }

    /// Grows to `shards_max` shards and spreads free units evenly (locks every shard).
    fn promote(&self) {
        let target = self.shards.len();
        let mut guards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        if self.active.load(Ordering::Acquire) >= target {
            return;
        }
        let free: i64 = guards.iter().map(|g| g.free).sum();
        let n = i64::try_from(target).unwrap_or(1);
        for (i, g) in guards.iter_mut().enumerate() {
            let extra = if i64::try_from(i).unwrap_or(0) < free.rem_euclid(n) {
                1
            } else {
                0
            };
            g.free = free.div_euclid(n) + extra;
        }
        self.active.store(target, Ordering::Release);
    }

    /// Locks shard `i`, counting contention on a single-shard stock and promoting it to its
    /// configured maximum once contention is seen often enough.
    fn lock_shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        match self.shards[i].try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let seen = self.contention.fetch_add(1, Ordering::Relaxed) + 1;
                if seen == CONTENTION_PROMOTE_AFTER
                    && self.active.load(Ordering::Acquire) < self.shards.len()
                {
                    self.promote();
                }
                lock(&self.shards[i])
            }
        }
    }

    /// Takes `quantity` units for `hold` from the shards, starting at `start` and borrowing
    /// from the others; all or nothing. Expired parts are reclaimed on the way.
    fn take(
        &self,
        hold: &HoldId,
        quantity: i64,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        start: usize,
    ) -> std::result::Result<Vec<(usize, i64)>, i64> {
        let active = self.active.load(Ordering::Acquire);
        let mut parts = Vec::new();
        let mut need = quantity;
        let mut seen = 0;
        for k in 0..active {
            let i = (start + k) % active;
            let mut s = self.lock_shard(i);
            if s.free < need {
                s.reclaim(now, &self.deficit);
            }
            seen += s.free.max(0);
            let take = need.min(s.free.max(0));
            if take > 0 {
                s.free -= take;
                s.held += take;
                *s.expiring.entry((expires_at, hold.clone())).or_insert(0) += take;
                parts.push((i, take));
                need -= take;
            }
            if need == 0 {
                return Ok(parts);
            }
        }
        self.give_back(hold, expires_at, &parts);
        Err(seen)
    }

    /// Returns parts taken by [`Stock::take`] that will not become a hold. A part that a
    /// reservation under a later clock already reclaimed has had its units returned: only its
    /// bookkeeping is cleared.
    fn give_back(&self, hold: &HoldId, expires_at: DateTime<Utc>, parts: &[(usize, i64)]) {
        for (i, q) in parts {
            let mut s = lock(&self.shards[*i]);
            if let PartState::Held = detach(&mut s, hold, expires_at, *q, false) {
                s.credit(*q, &self.deficit);
                s.held -= q;
            }
        }
    }
}

fn remove_expiring(s: &mut Shard, expires_at: DateTime<Utc>, hold: &HoldId, q: i64) {
    let key = (expires_at, hold.clone());
    if let Some(v) = s.expiring.get_mut(&key) {
        *v -= q;
        if *v <= 0 {
            s.expiring.remove(&key);
        }
    }
}

/// The distinct stocks of a hold's parts, in key order (the lock order).
fn stocks_of(parts: &[Part]) -> Vec<Arc<Stock>> {
    let mut stocks: Vec<Arc<Stock>> = Vec::new();
    for p in parts {
        if !stocks.iter().any(|s| Arc::ptr_eq(s, &p.stock)) {
            stocks.push(p.stock.clone());
        }
    }
    stocks.sort_by(|a, b| a.key.cmp(&b.key));
    stocks
}

/// Locks every shard a hold's parts live in, in (key, shard) order.
fn lock_parts(parts: &[Part]) -> Vec<(MutexGuard<'_, Shard>, &Part)> {
    let mut ordered: Vec<&Part> = parts.iter().collect();
    ordered.sort_by(|a, b| a.stock.key.cmp(&b.stock.key).then(a.shard.cmp(&b.shard)));
    ordered
        .into_iter()
        .map(|p| (lock(&p.stock.shards[p.shard]), p))
        .collect()
}

/// What happened to one part when a hold was finalized or pinned.
enum PartState {
    /// It was live (or pinned): its units were still held.
    Held,
    /// Its units were already taken back by a reservation on the same shard.
    Reclaimed,
}

/// Detaches a part from its shard's expiry bookkeeping, reporting whether its units were still
/// held.
fn detach(
    s: &mut Shard,
    hold: &HoldId,
    expires_at: DateTime<Utc>,
    q: i64,
    pinned: bool,
) -> PartState {
    if !pinned && let Some(r) = s.reclaimed.get_mut(hold) {
        *r -= q;
        if *r <= 0 {
            s.reclaimed.remove(hold);
        }
        return PartState::Reclaimed;
    }
    if !pinned {
        remove_expiring(s, expires_at, hold, q);
    }
    PartState::Held
}

impl InMemoryStockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn stock(&self, key: &StockKey) -> Result<Arc<Stock>> {
        let shard = &self.stocks[shard_of(key, REGISTRY_SHARDS)];
        shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| Error::UnknownStock(key.clone()))
    }

    fn hold_shard(&self, id: &HoldId) -> MutexGuard<'_, HoldShard> {
        lock(&self.holds[shard_of(id, HOLD_SHARDS)])
    }

    /// Sync [`StockStore::configure`]. Reconfiguring keeps the stock and its holds; the number
    /// of shards can grow up to the existing `shards_max` (reconfigure before creating holds to
    /// change `shards_max`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad configuration.
    pub fn configure_now(&self, key: &StockKey, config: StockConfig) -> Result<()> {
        config.validate()?;
        let registry = &self.stocks[shard_of(key, REGISTRY_SHARDS)];
        let mut map = registry.write().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            None => {
                map.insert(key.clone(), Arc::new(Stock::new(key.clone(), config)));
            }
            Some(stock) => {
                let mut meta = lock(&stock.meta);
                if config.shards_max != meta.config.shards_max {
                    return Err(Error::invalid(
                        "shards_max",
                        "is fixed once the stock exists",
                    ));
                }
                let delta = (config.backorder_limit - meta.config.backorder_limit)
                    - (config.safety_stock - meta.config.safety_stock);
                meta.config = config;
                stock
                    .backorder
                    .store(config.backorder_limit, Ordering::Release);
                if config.shards > stock.active.load(Ordering::Acquire) {
                    stock.promote();
                }
                stock.adjust_free(delta);
            }
        }
        Ok(())
    }

    /// Claims a movement key in one step: true if it was applied (or is being applied) before
    /// with the same fingerprint, false if this call now owns it. A caller that then fails calls
    /// [`InMemoryStockStore::abort_movement`], so a concurrent duplicate never applies twice.
    fn movement_seen(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<bool> {
        let mut m = lock(&self.movements);
        match m.applied.get(key) {
            Some(f) if f == fingerprint => Ok(true),
            Some(_) => Err(Error::invalid(
                "movement",
                format!("key {key} was used for another movement"),
            )),
            None => {
                m.applied.insert(key.clone(), fingerprint.to_owned());
                Ok(false)
            }
        }
    }

    /// Forgets a claimed movement key whose movement was refused.
    fn abort_movement(&self, key: &IdempotencyKey) {
        lock(&self.movements).applied.remove(key);
    }

    fn record(&self, _key: &IdempotencyKey, _fingerprint: String, entries: Vec<Movement>) {
        lock(&self.movements).log.extend(entries);
    }

    /// Sync [`StockStore::receive`].
    ///
    /// # Errors
    /// [`Error::UnknownStock`], [`Error::Invalid`].
    pub fn receive_now(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        if !(1..=QUANTITY_MAX).contains(&quantity) {
            return Err(Error::invalid("quantity", "outside 1..=QUANTITY_MAX"));
        }
        let fingerprint = format!("receive|{key}|{quantity}");
        let stock = self.stock(key)?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(Changes::default());
        }
        let mut meta = lock(&stock.meta);
        let before = snapshot(&stock, &meta, now).available;
        meta.on_hand += quantity;
        stock.adjust_free(quantity);
        let mut events = Vec::new();
        changed(&stock, &meta, before, now, &mut events);
        self.record(
            movement,
            fingerprint,
            vec![Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: quantity,
                committed_delta: 0,
                reason: "receive".into(),
                at: now,
            }],
        );
        Ok(Changes { events })
    }

    /// Sync [`StockStore::set_on_hand`].
    ///
    /// # Errors
    /// [`Error::UnknownStock`], [`Error::Invalid`].
    pub fn set_on_hand_now(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        counted: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        if !(0..=QUANTITY_MAX).contains(&counted) {
            return Err(Error::invalid("counted", "outside 0..=QUANTITY_MAX"));
        }
        let fingerprint = format!("set_on_hand|{key}|{counted}|{reason}");
        let stock = self.stock(key)?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(Changes::default());
        }
        let mut meta = lock(&stock.meta);
        let before = snapshot(&stock, &meta, now).available;
        let delta = counted - meta.on_hand;
        meta.on_hand = counted;
        stock.adjust_free(delta);
        let mut events = Vec::new();
        changed(&stock, &meta, before, now, &mut events);
        self.record(
            movement,
            fingerprint,
            vec![Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: delta,
                committed_delta: 0,
                reason: format!("correction: {reason}"),
                at: now,
            }],
        );
        Ok(Changes { events })
    }

    /// Sync [`StockStore::reserve`].
    ///
    /// # Errors
    /// [`Error::InsufficientStock`] (nothing reserved), [`Error::HoldConflict`],
    /// [`Error::HoldState`] for an id already used by a finished hold, [`Error::UnknownStock`],
    /// [`Error::Invalid`].
    pub fn reserve_now(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let demand = demand(lines)?;
        if expires_at <= now {
            return Err(Error::invalid("expires_at", "must be after now"));
        }
        let mut holds = self.hold_shard(hold);
        if let Some(existing) = holds.holds.get(hold) {
            let same = existing
                .lines
                .iter()
                .map(|l| (&l.key, l.quantity))
                .eq(demand.iter().map(|(k, q)| (k, *q)));
            if !same {
                return Err(Error::HoldConflict(hold.clone()));
            }
            return match existing.status {
                HoldStatus::Held | HoldStatus::Pinned | HoldStatus::Committed => {
                    Ok(existing.view(hold))
                }
                other => Err(Error::HoldState {
                    hold: hold.clone(),
                    state: other.as_str(),
                    operation: "reserve again",
                }),
            };
        }
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        let start = shard_of(hold, usize::MAX);
        let mut taken: Vec<Part> = Vec::new();
        for ((key, quantity), stock) in demand.iter().zip(&stocks) {
            let first = start % stock.active.load(Ordering::Acquire).max(1);
            match stock.take(hold, *quantity, expires_at, now, first) {
                Ok(parts) => taken.extend(parts.into_iter().map(|(shard, q)| Part {
                    stock: stock.clone(),
                    shard,
                    quantity: q,
                })),
                Err(seen) => {
                    for part in &taken {
                        part.stock
                            .give_back(hold, expires_at, &[(part.shard, part.quantity)]);
                    }
                    stock.sold_out.store(true, Ordering::Release);
                    let backorder = lock(&stock.meta).config.backorder_limit;
                    return Err(Error::InsufficientStock {
                        key: key.clone(),
                        requested: *quantity,
                        available: seen - backorder,
                    });
                }
            }
        }
        let lines: Vec<StockLine> = demand
            .into_iter()
            .map(|(key, quantity)| StockLine { key, quantity })
            .collect();
        holds.expiry.insert((expires_at, hold.clone()));
        holds.holds.insert(
            hold.clone(),
            HoldRecord {
                lines,
                parts: taken,
                status: HoldStatus::Held,
                expires_at,
                owner: None,
            },
        );
        Ok(holds.holds[hold].view(hold))
    }

    /// Finalizes a hold's parts: `to_committed` moves held units to committed, otherwise they
    /// go back to free. Every involved shard (and for a commit every involved meta) is locked
    /// for the whole step, so the check and the change are one atomic step. Returns false,
    /// changing nothing, if `to_committed` and a part's units were already reclaimed (the hold
    /// expired under a later clock).
    ///
    /// Giving units back takes no meta lock and computes no snapshot unless the stock was sold
    /// out, so releases and expiries on a hot SKU stay as parallel as its shards.
    fn finish(
        record: &HoldRecord,
        id: &HoldId,
        to_committed: bool,
        now: DateTime<Utc>,
        events: Option<&mut Vec<DomainEvent>>,
    ) -> bool {
        let pinned = record.status == HoldStatus::Pinned;
        let stocks = stocks_of(&record.parts);
        if !to_committed {
            {
                let mut shards = lock_parts(&record.parts);
                for (s, part) in &mut shards {
                    if let PartState::Held = detach(s, id, record.expires_at, part.quantity, pinned)
                    {
                        s.held -= part.quantity;
                        s.credit(part.quantity, &part.stock.deficit);
                    }
                }
            }
            if let Some(events) = events {
                for stock in stocks
                    .iter()
                    .filter(|s| s.sold_out.swap(false, Ordering::AcqRel))
                {
                    let meta = lock(&stock.meta);
                    changed(stock, &meta, 0, now, events);
                }
            }
            return true;
        }
        let mut metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let before: Option<Vec<i64>> = events.as_ref().map(|_| {
            stocks
                .iter()
                .zip(&metas)
                .map(|(s, m)| snapshot(s, m, now).available)
                .collect()
        });
        {
            let mut shards = lock_parts(&record.parts);
            if !pinned && shards.iter().any(|(s, _)| s.reclaimed.contains_key(id)) {
                return false;
            }
            for (s, part) in &mut shards {
                if let PartState::Held = detach(s, id, record.expires_at, part.quantity, pinned) {
                    s.held -= part.quantity;
                    let k = stocks
                        .iter()
                        .position(|x| Arc::ptr_eq(x, &part.stock))
                        .unwrap_or(0);
                    metas[k].committed += part.quantity;
                }
            }
        }
        if let (Some(events), Some(before)) = (events, before) {
            for ((stock, meta), before) in stocks.iter().zip(&metas).zip(before) {
                changed(stock, meta, before, now, events);
            }
        }
        true
    }

    fn expire_locked(
        shard: &mut HoldShard,
        id: &HoldId,
        now: DateTime<Utc>,
        events: Option<&mut Vec<DomainEvent>>,
    ) -> bool {
        let Some(record) = shard.holds.get_mut(id) else {
            return false;
        };
        if record.status != HoldStatus::Held || record.expires_at > now {
            return false;
        }
        Self::finish(record, id, false, now, events);
        // It finished when it expired (even if noticed later).
        let at = record.expires_at;
        shard.close(id, HoldStatus::Expired, at);
        true
    }

    /// Sync [`StockStore::extend`].
    ///
    /// # Errors
    /// [`Error::UnknownHold`], [`Error::HoldExpired`], [`Error::HoldState`] (pinned or
    /// finished), [`Error::Invalid`] for an earlier expiry.
    pub fn extend_now(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        self.check_live(&mut shard, hold, now, "extend")?;
        let old = shard.holds[hold].expires_at;
        if expires_at < old {
            return Err(Error::invalid(
                "expires_at",
                "an extension cannot move expiry earlier",
            ));
        }
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                Self::expire_locked(&mut shard, hold, DateTime::<Utc>::MAX_UTC, None);
                return Err(Error::HoldExpired(hold.clone()));
            }
            for (s, p) in &mut parts {
                remove_expiring(s, old, hold, p.quantity);
                *s.expiring.entry((expires_at, hold.clone())).or_insert(0) += p.quantity;
            }
        }
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.expires_at = expires_at;
        let view = record.view(hold);
        shard.expiry.remove(&(old, hold.clone()));
        shard.expiry.insert((expires_at, hold.clone()));
        Ok(view)
    }

    /// Refuses anything but a live `Held` hold, expiring it if its time has passed.
    fn check_live(
        &self,
        shard: &mut HoldShard,
        hold: &HoldId,
        now: DateTime<Utc>,
        operation: &'static str,
    ) -> Result<()> {
        let record = shard
            .holds
            .get(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        match record.status {
            HoldStatus::Held if record.expires_at <= now => {
                Self::expire_locked(shard, hold, now, None);
                Err(Error::HoldExpired(hold.clone()))
            }
            HoldStatus::Held => Ok(()),
            HoldStatus::Expired => Err(Error::HoldExpired(hold.clone())),
            other => Err(Error::HoldState {
                hold: hold.clone(),
                state: other.as_str(),
                operation,
            }),
        }
    }

    /// Sync [`StockStore::pin`]. Pinning a pinned hold is a no-op.
    ///
    /// # Errors
    /// [`Error::UnknownHold`], [`Error::HoldExpired`], [`Error::HoldState`].
    pub fn pin_now(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        self.pin_locked(&mut shard, hold, now)
    }

    /// Sync [`StockStore::adopt`].
    ///
    /// # Errors
    /// [`Error::UnknownHold`], [`Error::HoldExpired`], [`Error::HoldState`] when another owner
    /// adopted it, or it was pinned, committed or released outside an adoption.
    pub fn adopt_now(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        let record = shard
            .holds
            .get(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        match (&record.owner, record.status) {
            (Some(o), HoldStatus::Pinned | HoldStatus::Committed) if o == owner => {
                return Ok(record.view(hold));
            }
            (Some(_), _) => {
                return Err(Error::HoldState {
                    hold: hold.clone(),
                    state: "adopted by another owner",
                    operation: "adopt",
                });
            }
            (None, HoldStatus::Held) => {}
            (None, HoldStatus::Expired) => return Err(Error::HoldExpired(hold.clone())),
            (None, other) => {
                return Err(Error::HoldState {
                    hold: hold.clone(),
                    state: other.as_str(),
                    operation: "adopt",
                });
            }
        }
        let view = self.pin_locked(&mut shard, hold, now)?;
        if let Some(r) = shard.holds.get_mut(hold) {
            r.owner = Some(owner.to_owned());
        }
        Ok(view)
    }

    /// Sync [`StockStore::release_owned`].
    ///
    /// # Errors
    /// [`Error::HoldState`] if the hold is committed.
    pub fn release_owned_now(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        match shard.holds.get(hold) {
            Some(r) if r.owner.as_deref() == Some(owner) => {
                Self::release_locked(&mut shard, hold, now)
            }
            _ => Ok(Changes::default()),
        }
    }

    fn pin_locked(
        &self,
        shard: &mut MutexGuard<'_, HoldShard>,
        hold: &HoldId,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        if shard
            .holds
            .get(hold)
            .is_some_and(|r| r.status == HoldStatus::Pinned)
        {
            return Ok(shard.holds[hold].view(hold));
        }
        self.check_live(shard, hold, now, "pin")?;
        let at = shard.holds[hold].expires_at;
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                Self::expire_locked(shard, hold, DateTime::<Utc>::MAX_UTC, None);
                return Err(Error::HoldExpired(hold.clone()));
            }
            for (s, p) in &mut parts {
                remove_expiring(s, at, hold, p.quantity);
            }
        }
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.status = HoldStatus::Pinned;
        let view = record.view(hold);
        shard.expiry.remove(&(at, hold.clone()));
        Ok(view)
    }

    /// Sync [`StockStore::commit`]. Committing a committed hold is a no-op.
    ///
    /// # Errors
    /// [`Error::UnknownHold`], [`Error::HoldExpired`], [`Error::HoldState`] (released).
    pub fn commit_now(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        let status = shard
            .holds
            .get(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?
            .status;
        match status {
            HoldStatus::Committed => return Ok(Changes::default()),
            HoldStatus::Pinned => {}
            _ => self.check_live(&mut shard, hold, now, "commit")?,
        }
        let mut events = Vec::new();
        let record = &shard.holds[hold];
        if !Self::finish(record, hold, true, now, Some(&mut events)) {
            Self::expire_locked(&mut shard, hold, DateTime::<Utc>::MAX_UTC, None);
            return Err(Error::HoldExpired(hold.clone()));
        }
        shard.close(hold, HoldStatus::Committed, now);
        Ok(Changes { events })
    }

    /// Sync [`StockStore::release`]. Releasing a released or expired hold is a no-op.
    ///
    /// # Errors
    /// [`Error::UnknownHold`], [`Error::HoldState`] (committed).
    pub fn release_now(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        Self::release_locked(&mut shard, hold, now)
    }

    fn release_locked(
        shard: &mut MutexGuard<'_, HoldShard>,
        hold: &HoldId,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let record = shard
            .holds
            .get(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        match record.status {
            HoldStatus::Released | HoldStatus::Expired => return Ok(Changes::default()),
            HoldStatus::Committed => {
                return Err(Error::HoldState {
                    hold: hold.clone(),
                    state: "committed",
                    operation: "release",
                });
            }
            HoldStatus::Held | HoldStatus::Pinned => {}
        }
        let mut events = Vec::new();
        Self::finish(record, hold, false, now, Some(&mut events));
        shard.close(hold, HoldStatus::Released, now);
        Ok(Changes { events })
    }

    /// Sync [`StockStore::expire`].
    ///
    /// # Errors
    /// [`Error::UnknownHold`].
    pub fn expire_now(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        let mut shard = self.hold_shard(hold);
        if !shard.holds.contains_key(hold) {
            return Err(Error::UnknownHold(hold.clone()));
        }
        Ok(Self::expire_locked(&mut shard, hold, now, None))
    }

    /// Sync [`StockStore::sweep`].
    ///
    /// # Errors
    /// Never in memory; the signature matches the port.
    pub fn sweep_now(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep> {
        let batch = batch.min(SWEEP_BATCH_MAX);
        let mut out = Sweep::default();
        for shard in self.holds.iter() {
            if out.expired.len() >= batch {
                break;
            }
            let mut shard = lock(shard);
            shard.prune(now);
            let due: Vec<HoldId> = shard
                .expiry
                .iter()
                .take_while(|(at, _)| *at <= now)
                .take(batch - out.expired.len())
                .map(|(_, id)| id.clone())
                .collect();
            for id in due {
                if Self::expire_locked(&mut shard, &id, now, Some(&mut out.changes.events)) {
                    out.expired.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Sync [`StockStore::commit_direct`].
    ///
    /// # Errors
    /// [`Error::InsufficientStock`] under [`ShortfallPolicy::Refuse`] (nothing changed),
    /// [`Error::UnknownStock`], [`Error::Invalid`].
    pub fn commit_direct_now(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        let demand = demand(lines)?;
        let fingerprint = format!("commit_direct|{demand:?}|{policy:?}");
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(DirectCommit::default());
        }
        // Lock every stock's meta (in key order: `demand` is sorted) so the check and the
        // decrement are one atomic step across lines.
        let metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let befores: Vec<i64> = stocks
            .iter()
            .zip(&metas)
            .map(|(s, m)| snapshot(s, m, now).available)
            .collect();
        // Take the units from the shards (as a reservation would), so a concurrent reservation
        // can never get the same unit; every line or none under `Refuse`.
        let mut taken: Vec<i64> = Vec::with_capacity(demand.len());
        let mut shortfalls = Vec::new();
        for ((key, q), stock) in demand.iter().zip(&stocks) {
            let got = stock.take_free(*q, now);
            taken.push(got);
            if got < *q {
                if policy == ShortfallPolicy::Refuse {
                    for (s, t) in stocks.iter().zip(&taken) {
                        s.adjust_free(*t);
                    }
                    self.abort_movement(movement);
                    let backorder = stock.backorder.load(Ordering::Acquire);
                    return Err(Error::InsufficientStock {
                        key: key.clone(),
                        requested: *q,
                        available: got - backorder,
                    });
                }
                shortfalls.push(Shortfall {
                    key: key.clone(),
                    units: q - got,
                });
            }
        }
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((((key, q), stock), mut meta), (got, before)) in demand
            .iter()
            .zip(&stocks)
            .zip(metas)
            .zip(taken.iter().zip(befores))
        {
            meta.committed += q;
            if *got < *q {
                // Accepted: the rest is owed, visible as availability below the allowance.
                stock.deficit.fetch_add(q - got, Ordering::AcqRel);
            }
            changed(stock, &meta, before, now, &mut events);
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: 0,
                committed_delta: *q,
                reason: "commit_direct".into(),
                at: now,
            });
        }
        self.record(movement, fingerprint, log);
        Ok(DirectCommit {
            shortfalls,
            changes: Changes { events },
            applied: true,
        })
    }

    /// Sync [`StockStore::ship`].
    ///
    /// # Errors
    /// [`Error::Invalid`] if a line ships more than is committed; [`Error::UnknownStock`].
    pub fn ship_now(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "ship", now, |_, meta, q| {
            meta.on_hand -= q;
            -q
        })
    }

    /// Sync [`StockStore::uncommit`].
    ///
    /// # Errors
    /// [`Error::Invalid`] if a line gives back more than is committed; [`Error::UnknownStock`].
    pub fn uncommit_now(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.move_committed(movement, lines, "uncommit", now, |stock, _, q| {
            stock.adjust_free(q);
            0
        })
    }

    /// Takes committed units off every line (all or none, once per movement key); `then` says
    /// where they go (out of the building, or back to sale) and returns the on-hand change.
    fn move_committed(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &'static str,
        now: DateTime<Utc>,
        then: impl Fn(&Stock, &mut Meta, i64) -> i64,
    ) -> Result<Changes> {
        let demand = demand(lines)?;
        let fingerprint = format!("{op}|{demand:?}");
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(Changes::default());
        }
        let metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        for ((key, q), meta) in demand.iter().zip(&metas) {
            if meta.committed < *q {
                self.abort_movement(movement);
                return Err(Error::invalid(
                    op,
                    format!("{key} has {} committed, not {q}", meta.committed),
                ));
            }
        }
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((key, q), (stock, mut meta)) in demand.iter().zip(stocks.iter().zip(metas)) {
            let before = snapshot(stock, &meta, now).available;
            meta.committed -= q;
            let on_hand_delta = then(stock, &mut meta, *q);
            changed(stock, &meta, before, now, &mut events);
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta,
                committed_delta: -q,
                reason: op.into(),
                at: now,
            });
        }
        self.record(movement, fingerprint, log);
        Ok(Changes { events })
    }

    /// Sync [`StockStore::level`].
    ///
    /// # Errors
    /// [`Error::UnknownStock`].
    pub fn level_now(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
        let stock = self.stock(key)?;
        let meta = lock(&stock.meta);
        Ok(snapshot(&stock, &meta, now))
    }

    /// Sync [`StockStore::available`]: the hot read path (no meta lock, one short lock per
    /// shard).
    ///
    /// # Errors
    /// [`Error::UnknownStock`].
    pub fn available_now(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
        let registry = self.stocks[shard_of(key, REGISTRY_SHARDS)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let stock = registry
            .get(key)
            .ok_or_else(|| Error::UnknownStock(key.clone()))?;
        // The backorder allowance only changes under reconfiguration; a racing read may see the
        // old or the new one, either of which was true at some instant.
        Ok(stock.available(now, stock.backorder.load(Ordering::Acquire)))
    }

    /// Sync [`StockStore::hold`].
    pub fn hold_now(&self, hold: &HoldId) -> Option<Hold> {
        self.hold_shard(hold).holds.get(hold).map(|r| r.view(hold))
    }

    /// Every stock key.
    pub fn keys_now(&self) -> Vec<StockKey> {
        let mut keys: Vec<StockKey> = self
            .stocks
            .iter()
            .flat_map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl StockStore for InMemoryStockStore {
    async fn configure(&self, key: &StockKey, config: StockConfig) -> Result<()> {
        self.configure_now(key, config)
    }
    async fn receive(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.receive_now(movement, key, quantity, now)
    }
    async fn set_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        counted: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.set_on_hand_now(movement, key, counted, reason, now)
    }
    async fn reserve(
        &self,
        hold: &HoldId,
        lines: &[StockLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        self.reserve_now(hold, lines, expires_at, now)
    }
    async fn extend(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        self.extend_now(hold, expires_at, now)
    }
    async fn pin(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        self.pin_now(hold, now)
    }
    async fn adopt(&self, hold: &HoldId, owner: &str, now: DateTime<Utc>) -> Result<Hold> {
        self.adopt_now(hold, owner, now)
    }
    async fn release_owned(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.release_owned_now(hold, owner, now)
    }
    async fn commit(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        self.commit_now(hold, now)
    }
    async fn release(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        self.release_now(hold, now)
    }
    async fn expire(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        self.expire_now(hold, now)
    }
    async fn sweep(&self, now: DateTime<Utc>, batch: usize) -> Result<Sweep> {
        self.sweep_now(now, batch)
    }
    async fn commit_direct(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        self.commit_direct_now(movement, lines, policy, now)
    }
    async fn ship(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.ship_now(movement, lines, now)
    }
    async fn uncommit(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        self.uncommit_now(movement, lines, now)
    }
    async fn level(&self, key: &StockKey, now: DateTime<Utc>) -> Result<StockLevel> {
        self.level_now(key, now)
    }
    async fn available(&self, key: &StockKey, now: DateTime<Utc>) -> Result<i64> {
        self.available_now(key, now)
    }
    async fn hold(&self, hold: &HoldId) -> Result<Option<Hold>> {
        Ok(self.hold_now(hold))
    }
    async fn movements(&self, key: &StockKey) -> Result<Vec<Movement>> {
        Ok(lock(&self.movements)
            .log
            .iter()
            .filter(|m| m.stock == *key)
            .cloned()
            .collect())
    }
    async fn keys(&self) -> Result<Vec<StockKey>> {
        Ok(self.keys_now())
    }
}
