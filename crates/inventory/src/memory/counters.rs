//! One stock key's counters in memory: a meta row (on hand, committed, configuration) and up
//! to `shards_max` counter shards that split the free units, so reservations of a hot SKU lock
//! one shard each and run in parallel.
//!
//! # Invariant
//! `Σ free − deficit = on_hand − committed − Σ held − safety_stock + backorder_limit`, where
//! `held` counts live, pinned and expired-but-not-yet-reclaimed parts: the shards are a split of
//! [`StockRow::sellable`] and nothing else. A shard's `free` is never negative; units promised
//! beyond stock (a count below what is promised, an accepted shortfall) are the `deficit`, paid
//! off by the next units that come back before any shard holds free units again. A reservation
//! only takes what `free` holds: there is no path that promises a unit twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::TryLockError;

use chrono::{DateTime, Utc};

use super::sync::{
    Arc, AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, lock,
};
use crate::limits::CONTENTION_PROMOTE_AFTER;
use crate::rules::StockRow;
use crate::{HoldId, StockConfig, StockKey};

/// One counter shard of a stock.
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) free: i64,
    pub(super) held: i64,
    /// Live (not pinned) hold parts by expiry.
    pub(super) expiring: BTreeMap<(DateTime<Utc>, HoldId), i64>,
    /// Parts of expired holds whose units this shard already took back, awaiting the sweep.
    pub(super) reclaimed: HashMap<HoldId, i64>,
}

impl Shard {
    /// Units held by expired parts not yet reclaimed.
    pub(super) fn expired(&self, now: DateTime<Utc>) -> i64 {
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
    pub(super) fn credit(&mut self, q: i64, deficit: &AtomicI64) {
        self.free += q - pay_deficit(deficit, q);
    }
}

/// The meta row: what only changes under the meta lock.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) on_hand: i64,
    pub(super) committed: i64,
    pub(super) config: StockConfig,
}

/// One stock key's counters.
#[derive(Debug)]
pub(super) struct Stock {
    pub(super) key: StockKey,
    pub(super) meta: Mutex<Meta>,
    pub(super) shards: Box<[Mutex<Shard>]>,
    pub(super) active: AtomicUsize,
    contention: AtomicU64,
    /// A copy of `meta.config.backorder_limit`, for the lock-free read path.
    pub(super) backorder: AtomicI64,
    /// Set when the stock was last seen with nothing available (a failed reservation, an event
    /// snapshot); the next return of units checks for `BackInStock`.
    pub(super) sold_out: AtomicBool,
    /// Units promised beyond what the shards hold (after a count below what is promised, or an
    /// accepted shortfall). While it is positive every shard's `free` is zero: returning units
    /// pay it off before they can be reserved again.
    pub(super) deficit: AtomicI64,
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

/// The row of `stock` at `now`, read under its meta lock (`meta`) and every shard lock: the
/// rules' view of the counters. Checks (debug) that the shards hold exactly the row's
/// sellable units.
pub(super) fn row(stock: &Stock, meta: &Meta, now: DateTime<Utc>) -> StockRow {
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
    let row = StockRow {
        on_hand: meta.on_hand,
        held: held - expired,
        committed: meta.committed,
        config: meta.config,
    };
    debug_assert_eq!(
        row.available() + meta.config.backorder_limit,
        free + expired,
        "conservation broken for {}",
        stock.key
    );
    row
}

impl Stock {
    pub(super) fn new(key: StockKey, config: StockConfig) -> Stock {
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
    pub(super) fn available(&self, now: DateTime<Utc>, backorder_limit: i64) -> i64 {
        let active = self.active.load(Ordering::Acquire);
        let mut total = 0;
        for shard in &self.shards[..active] {
            let s = lock(shard);
            total += s.free + s.expired(now);
        }
        total - self.deficit.load(Ordering::Acquire) - backorder_limit
    }

    /// Adds `delta` free units (negative: removes them), spreading over active shards.
    pub(super) fn adjust_free(&self, delta: i64) {
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
    pub(super) fn take_free(&self, quantity: i64, now: DateTime<Utc>) -> i64 {
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
    pub(super) fn promote(&self) {
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
    /// from the others; all or nothing. Expired parts are reclaimed on the way. This is
    /// [`crate::rules::reserve`] on a split row: a shard gives only units it holds free, and
    /// the sum of what the shards hold free is the row's sellable units. Refused, it returns
    /// the units it saw free.
    pub(super) fn take(
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
    pub(super) fn give_back(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        parts: &[(usize, i64)],
    ) {
        for (i, q) in parts {
            let mut s = lock(&self.shards[*i]);
            if let PartState::Held = detach(&mut s, hold, expires_at, *q, false) {
                s.credit(*q, &self.deficit);
                s.held -= q;
            }
        }
    }
}

pub(super) fn remove_expiring(s: &mut Shard, expires_at: DateTime<Utc>, hold: &HoldId, q: i64) {
    let key = (expires_at, hold.clone());
    if let Some(v) = s.expiring.get_mut(&key) {
        *v -= q;
        if *v <= 0 {
            s.expiring.remove(&key);
        }
    }
}

/// What happened to one part when a hold was finalized or pinned.
pub(super) enum PartState {
    /// It was live (or pinned): its units were still held.
    Held,
    /// Its units were already taken back by a reservation on the same shard.
    Reclaimed,
}

/// Detaches a part from its shard's expiry bookkeeping, reporting whether its units were still
/// held.
pub(super) fn detach(
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

/// A part of a hold: units taken from one shard of one stock.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) stock: Arc<Stock>,
    pub(super) shard: usize,
    pub(super) quantity: i64,
}

/// The distinct stocks of a hold's parts, in key order (the lock order).
pub(super) fn stocks_of(parts: &[Part]) -> Vec<Arc<Stock>> {
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
pub(super) fn lock_parts(parts: &[Part]) -> Vec<(MutexGuard<'_, Shard>, &Part)> {
    let mut ordered: Vec<&Part> = parts.iter().collect();
    ordered.sort_by(|a, b| a.stock.key.cmp(&b.stock.key).then(a.shard.cmp(&b.shard)));
    ordered
        .into_iter()
        .map(|p| (lock(&p.stock.shards[p.shard]), p))
        .collect()
}
