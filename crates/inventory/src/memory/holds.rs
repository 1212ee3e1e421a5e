//! Holds in memory: the registry (64 shards of hold records by id, each with an expiry index for
//! the sweep and a retention queue of finished holds, kept so retries stay idempotent) and the
//! hold operations, each decided by [`rules::decide`] and carried out on the counter shards.

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::DomainEvent;

use super::counters::{Meta, Part, PartState, detach, lock_parts, remove_expiring, row, stocks_of};
use super::sync::{Arc, MutexGuard, Ordering, lock};
use super::{InMemoryStockStore, Origin, shard_of};
use crate::limits::{HOLD_RETENTION_SECS, SWEEP_BATCH_MAX};
use crate::port::Sweep;
use crate::rules::{self, HoldAction, HoldOp};
use crate::{Changes, Error, Hold, HoldId, HoldStatus, Result, StockLine, demand};

/// A hold as the registry keeps it: the public view plus the shard parts its units came from.
#[derive(Debug)]
pub(super) struct HoldRecord {
    pub(super) lines: Vec<StockLine>,
    pub(super) parts: Vec<Part>,
    pub(super) status: HoldStatus,
    pub(super) expires_at: DateTime<Utc>,
    /// The checkout that adopted it, if any.
    pub(super) owner: Option<String>,
}

impl HoldRecord {
    /// What the rules need of the record, borrowed.
    pub(super) fn state<'a>(&'a self, id: &'a HoldId) -> rules::HoldState<'a> {
        rules::HoldState {
            id,
            status: self.status,
            expires_at: self.expires_at,
            owner: self.owner.as_deref(),
        }
    }

    pub(super) fn view(&self, id: &HoldId) -> Hold {
        Hold {
            id: id.clone(),
            lines: self.lines.clone(),
            status: self.status,
            expires_at: self.expires_at,
            owner: self.owner.clone(),
        }
    }
}

/// One shard of the registry.
#[derive(Debug, Default)]
pub(super) struct HoldShard {
    pub(super) holds: HashMap<HoldId, HoldRecord>,
    pub(super) expiry: BTreeSet<(DateTime<Utc>, HoldId)>,
    /// Finished holds (committed, released, expired) by when they finished, kept for
    /// [`HOLD_RETENTION_SECS`] so retries stay idempotent, then dropped by the sweep.
    finished: VecDeque<(DateTime<Utc>, HoldId)>,
}

impl HoldShard {
    /// Moves a hold to a final `status`: off the expiry index, onto the retention queue as
    /// finished at `finished_at`.
    pub(super) fn close(&mut self, id: &HoldId, status: HoldStatus, finished_at: DateTime<Utc>) {
        if let Some(record) = self.holds.get_mut(id) {
            record.status = status;
            self.expiry.remove(&(record.expires_at, id.clone()));
            self.finished.push_back((finished_at, id.clone()));
        }
    }

    /// Drops finished holds older than the retention window.
    pub(super) fn prune(&mut self, now: DateTime<Utc>) {
        let Some(horizon) = now.checked_sub_signed(TimeDelta::seconds(HOLD_RETENTION_SECS)) else {
            return;
        };
        while self.finished.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, id)) = self.finished.pop_front() {
                self.holds.remove(&id);
            }
        }
    }
}

impl InMemoryStockStore {
    pub(super) fn reserve_sync(
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
            let same_lines = existing
                .lines
                .iter()
                .map(|l| (&l.key, l.quantity))
                .eq(demand.iter().map(|(k, q)| (k, *q)));
            let _unchanged =
                rules::decide(existing.state(hold), HoldOp::Reserve { same_lines }, now)?;
            return Ok(existing.view(hold));
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
                Err(sellable) => {
                    for part in &taken {
                        part.stock
                            .give_back(hold, expires_at, &[(part.shard, part.quantity)]);
                    }
                    stock.sold_out.store(true, Ordering::Release);
                    let config = lock(&stock.meta).config;
                    return Err(rules::insufficient(key, *quantity, sellable, &config));
                }
            }
        }
        let lines: Vec<StockLine> = demand
            .into_iter()
            .map(|(key, quantity)| StockLine { key, quantity })
            .collect();
        holds.expiry.insert((expires_at, hold.clone()));
        let record = HoldRecord {
            lines,
            parts: taken,
            status: HoldStatus::Held,
            expires_at,
            owner: None,
        };
        let view = record.view(hold);
        holds.holds.insert(hold.clone(), record);
        Ok(view)
    }

    /// Finalizes a hold's parts: `to_committed` moves held units to committed
    /// ([`rules::commit_held`]), otherwise they go back to free ([`rules::release_held`]). Every
    /// involved shard (and for a commit every involved meta) is locked for the whole step, so
    /// the check and the change are one atomic step. Returns `None`, changing nothing, if
    /// `to_committed` and a part's units were already reclaimed (the hold expired under a later
    /// clock); otherwise the events.
    ///
    /// Giving units back takes no meta lock and builds no events unless the stock was sold out
    /// ([`rules::hold_return_emits`]), so releases and expiries on a hot SKU stay as parallel
    /// as its shards.
    pub(super) fn finish(
        record: &HoldRecord,
        id: &HoldId,
        to_committed: bool,
        now: DateTime<Utc>,
    ) -> Option<Vec<DomainEvent>> {
        let pinned = record.status == HoldStatus::Pinned;
        let stocks = stocks_of(&record.parts);
        let mut events = Vec::new();
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
            // Sold out before: this return may bring it back (`hold_return_emits(0)`).
            for stock in stocks
                .iter()
                .filter(|s| s.sold_out.swap(false, Ordering::AcqRel))
            {
                let meta = lock(&stock.meta);
                events.extend(Self::changed(stock, &meta, 0, now));
            }
            return Some(events);
        }
        let mut metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let before: Vec<i64> = stocks
            .iter()
            .zip(&metas)
            .map(|(s, m)| row(s, m, now).available())
            .collect();
        {
            let mut shards = lock_parts(&record.parts);
            if !pinned && shards.iter().any(|(s, _)| s.reclaimed.contains_key(id)) {
                return None;
            }
            for (s, part) in &mut shards {
                if let PartState::Held = detach(s, id, record.expires_at, part.quantity, pinned) {
                    let delta = rules::commit_held(part.quantity);
                    s.held += delta.held;
                    let k = stocks
                        .iter()
                        .position(|x| Arc::ptr_eq(x, &part.stock))
                        .unwrap_or(0);
                    metas[k].committed += delta.committed;
                }
            }
        }
        for ((stock, meta), before) in stocks.iter().zip(&metas).zip(before) {
            events.extend(Self::changed(stock, meta, before, now));
        }
        Some(events)
    }

    /// Expires `id` if it is `Held` and due at `now`: its units come back and its events are
    /// committed, whichever path noticed (the sweep, an `expire`, or an operation that found
    /// the hold past its time). It finished when it expired, even if noticed later. Returns
    /// the events, or `None` if it was not due.
    pub(super) fn expire_locked(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> Option<Vec<DomainEvent>> {
        let record = shard.holds.get(id)?;
        if record.status != HoldStatus::Held || record.expires_at > now {
            return None;
        }
        let at = record.expires_at;
        let events = Self::finish(record, id, false, now).unwrap_or_default();
        shard.close(id, HoldStatus::Expired, at);
        self.commit_events(Origin::Hold(id, HoldStatus::Expired, at), now, &events);
        Some(events)
    }

    /// Expires a hold whose parts a reservation under a later clock already took back, and
    /// refuses the operation that found it so.
    pub(super) fn expired_under_a_later_clock(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        now: DateTime<Utc>,
    ) -> Error {
        // Expire it at its own time (it is past that for the reservation that took it back).
        let at = shard.holds.get(id).map_or(now, |r| r.expires_at.max(now));
        let _ = self.expire_locked(shard, id, at);
        Error::HoldExpired(id.clone())
    }

    /// Decides `op` on `id` by the rules: `Ok(None)` to go on, `Ok(Some(view))` for an
    /// unchanged hold, an error (after expiring a hold found past its time) otherwise.
    pub(super) fn decide(
        &self,
        shard: &mut HoldShard,
        id: &HoldId,
        op: HoldOp<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Hold>> {
        let record = shard
            .holds
            .get(id)
            .ok_or_else(|| Error::UnknownHold(id.clone()))?;
        match rules::decide(record.state(id), op, now)? {
            HoldAction::Apply => Ok(None),
            HoldAction::Unchanged => Ok(Some(record.view(id))),
            HoldAction::ExpireThenRefuse => {
                let _ = self.expire_locked(shard, id, now);
                Err(Error::HoldExpired(id.clone()))
            }
        }
    }

    /// Pins a hold the rules let pin: its parts leave the expiry bookkeeping.
    pub(super) fn pin_locked(
        &self,
        shard: &mut HoldShard,
        hold: &HoldId,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let at = shard.holds[hold].expires_at;
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                return Err(self.expired_under_a_later_clock(shard, hold, now));
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

    pub(super) fn extend_sync(
        &self,
        hold: &HoldId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Extend { expires_at }, now)? {
            return Ok(view);
        }
        let old = shard.holds[hold].expires_at;
        {
            let record = &shard.holds[hold];
            let mut parts = lock_parts(&record.parts);
            if parts.iter().any(|(s, _)| s.reclaimed.contains_key(hold)) {
                drop(parts);
                return Err(self.expired_under_a_later_clock(&mut shard, hold, now));
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

    pub(super) fn pin_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Pin, now)? {
            return Ok(view);
        }
        self.pin_locked(&mut shard, hold, now)
    }

    pub(super) fn adopt_sync(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let mut shard = self.hold_shard(hold);
        if let Some(view) = self.decide(&mut shard, hold, HoldOp::Adopt { owner }, now)? {
            return Ok(view);
        }
        self.pin_locked(&mut shard, hold, now)?;
        let record = shard
            .holds
            .get_mut(hold)
            .ok_or_else(|| Error::UnknownHold(hold.clone()))?;
        record.owner = Some(owner.to_owned());
        Ok(record.view(hold))
    }

    pub(super) fn commit_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Commit, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        let Some(events) = Self::finish(&shard.holds[hold], hold, true, now) else {
            return Err(self.expired_under_a_later_clock(&mut shard, hold, now));
        };
        shard.close(hold, HoldStatus::Committed, now);
        self.commit_events(Origin::Hold(hold, HoldStatus::Committed, now), now, &events);
        Ok(Changes { events })
    }

    /// Releases a hold the rules let release.
    pub(super) fn release_locked(
        &self,
        shard: &mut HoldShard,
        hold: &HoldId,
        now: DateTime<Utc>,
    ) -> Changes {
        let events = Self::finish(&shard.holds[hold], hold, false, now).unwrap_or_default();
        shard.close(hold, HoldStatus::Released, now);
        self.commit_events(Origin::Hold(hold, HoldStatus::Released, now), now, &events);
        Changes { events }
    }

    pub(super) fn release_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Release, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        Ok(self.release_locked(&mut shard, hold, now))
    }

    pub(super) fn release_owned_sync(
        &self,
        hold: &HoldId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Changes> {
        let mut shard = self.hold_shard(hold);
        if !shard.holds.contains_key(hold) {
            // Never adopted here, or long forgotten: nothing of this owner's to give back.
            return Ok(Changes::default());
        }
        if self
            .decide(&mut shard, hold, HoldOp::ReleaseOwned { owner }, now)?
            .is_some()
        {
            return Ok(Changes::default());
        }
        Ok(self.release_locked(&mut shard, hold, now))
    }

    pub(super) fn expire_sync(&self, hold: &HoldId, now: DateTime<Utc>) -> Result<bool> {
        let mut shard = self.hold_shard(hold);
        if self
            .decide(&mut shard, hold, HoldOp::Expire, now)?
            .is_some()
        {
            return Ok(false);
        }
        Ok(self.expire_locked(&mut shard, hold, now).is_some())
    }

    pub(super) fn sweep_sync(&self, now: DateTime<Utc>, batch: usize) -> Sweep {
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
                if let Some(events) = self.expire_locked(&mut shard, &id, now) {
                    out.changes.events.extend(events);
                    out.expired.push(id);
                }
            }
        }
        out
    }
}
