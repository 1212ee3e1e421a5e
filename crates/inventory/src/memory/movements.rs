//! Stock movements in memory: configuration, receipts, counts, optimistic commits, shipments
//! and units given back to sale. Each is claimed by its key once, applied under the metas of
//! every stock it touches (in key order), and committed with its events.

use chrono::{DateTime, Utc};
use commerce_core::IdempotencyKey;

use super::counters::{Meta, Stock, row};
use std::sync::PoisonError;

use super::sync::{Arc, MutexGuard, Ordering, lock};
use super::{InMemoryStockStore, Origin, REGISTRY_SHARDS, shard_of};
use crate::port::Movement;
use crate::rules;
use crate::{
    Changes, DirectCommit, Error, Result, Shortfall, ShortfallPolicy, StockConfig, StockKey,
    StockLine, demand,
};

/// A claimed multi-line movement: the demand per key and the stocks, side by side.
type Claimed = (Vec<(StockKey, i64)>, Vec<Arc<Stock>>);

impl InMemoryStockStore {
    /// Claims a movement key in one step: true if it was applied (or is being applied) before
    /// with the same fingerprint, false if this call now owns it. A caller that then fails calls
    /// [`InMemoryStockStore::abort_movement`], so a concurrent duplicate never applies twice.
    pub(super) fn movement_seen(&self, key: &IdempotencyKey, fingerprint: &str) -> Result<bool> {
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

    /// Sums a multi-line movement's demand, finds its stocks (in key order, the lock order)
    /// and claims its key: `None` if the key was applied before with the same lines.
    pub(super) fn claim_lines(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &str,
    ) -> Result<Option<Claimed>> {
        let demand = demand(lines)?;
        let stocks = demand
            .iter()
            .map(|(k, _)| self.stock(k))
            .collect::<Result<Vec<_>>>()?;
        if self.movement_seen(movement, &format!("{op}|{demand:?}"))? {
            return Ok(None);
        }
        Ok(Some((demand, stocks)))
    }

    /// Forgets a claimed movement key whose movement was refused.
    pub(super) fn abort_movement(&self, key: &IdempotencyKey) {
        lock(&self.movements).applied.remove(key);
    }

    pub(super) fn record(&self, entries: Vec<Movement>) {
        lock(&self.movements).log.extend(entries);
    }

    /// Applies a movement that changes on hand only (a receipt, a count) to one key.
    pub(super) fn move_on_hand(
        &self,
        movement: &IdempotencyKey,
        key: &StockKey,
        fingerprint: String,
        reason: String,
        now: DateTime<Utc>,
        delta: impl FnOnce(&rules::StockRow) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        let stock = self.stock(key)?;
        if self.movement_seen(movement, &fingerprint)? {
            return Ok(Changes::default());
        }
        let mut meta = lock(&stock.meta);
        let before = row(&stock, &meta, now);
        let delta = match delta(&before) {
            Ok(d) => d,
            Err(e) => {
                self.abort_movement(movement);
                return Err(e);
            }
        };
        meta.on_hand += delta.on_hand;
        stock.adjust_free(delta.free());
        let events = Self::changed(&stock, &meta, before.available(), now);
        self.record(vec![Movement {
            key: movement.clone(),
            stock: key.clone(),
            on_hand_delta: delta.on_hand,
            committed_delta: 0,
            reason,
            at: now,
        }]);
        self.commit_events(Origin::Movement(movement), now, &events);
        Ok(Changes { events })
    }

    pub(super) fn configure_sync(&self, key: &StockKey, config: StockConfig) -> Result<()> {
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

    pub(super) fn commit_direct_sync(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        policy: ShortfallPolicy,
        now: DateTime<Utc>,
    ) -> Result<DirectCommit> {
        let Some((demand, stocks)) =
            self.claim_lines(movement, lines, &format!("commit_direct|{policy:?}"))?
        else {
            return Ok(DirectCommit::default());
        };
        // Lock every stock's meta (in key order: `demand` is sorted) so the check and the
        // decrement are one atomic step across lines.
        let metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let befores: Vec<i64> = stocks
            .iter()
            .zip(&metas)
            .map(|(s, m)| row(s, m, now).available())
            .collect();
        // `rules::commit_direct` on the split row: take the units from the shards (as a
        // reservation would, so a concurrent reservation never gets the same unit); what they
        // could not give is the shortfall. Every line or none under `Refuse`.
        let mut taken: Vec<i64> = Vec::with_capacity(demand.len());
        let mut shortfalls = Vec::new();
        for (((key, q), stock), meta) in demand.iter().zip(&stocks).zip(&metas) {
            let got = stock.take_free(*q, now);
            taken.push(got);
            if got < *q {
                if policy == ShortfallPolicy::Refuse {
                    for (s, t) in stocks.iter().zip(&taken) {
                        s.adjust_free(*t);
                    }
                    self.abort_movement(movement);
                    return Err(rules::insufficient(key, *q, got, &meta.config));
                }
                shortfalls.push(Shortfall {
                    key: key.clone(),
                    units: q - got,
                });
            }
        }
        let mut metas = metas;
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((((key, q), stock), meta), (got, before)) in demand
            .iter()
            .zip(&stocks)
            .zip(metas.iter_mut())
            .zip(taken.iter().zip(befores))
        {
            meta.committed += q;
            if *got < *q {
                // Accepted: the rest is owed, visible as availability below the allowance.
                stock.deficit.fetch_add(q - got, Ordering::AcqRel);
            }
            events.extend(Self::changed(stock, meta, before, now));
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: 0,
                committed_delta: *q,
                reason: "commit_direct".into(),
                at: now,
            });
        }
        self.record(log);
        self.commit_events(Origin::Movement(movement), now, &events);
        drop(metas);
        Ok(DirectCommit {
            shortfalls,
            changes: Changes { events },
            applied: true,
        })
    }

    /// Takes committed units off every line (all or none, once per movement key) by the rule
    /// `op` ([`rules::ship`] or [`rules::uncommit`]).
    pub(super) fn move_committed(
        &self,
        movement: &IdempotencyKey,
        lines: &[StockLine],
        op: &'static str,
        now: DateTime<Utc>,
        rule: fn(&rules::StockRow, i64) -> Result<rules::Delta>,
    ) -> Result<Changes> {
        let Some((demand, stocks)) = self.claim_lines(movement, lines, op)? else {
            return Ok(Changes::default());
        };
        let mut metas: Vec<MutexGuard<'_, Meta>> = stocks.iter().map(|s| lock(&s.meta)).collect();
        let mut planned = Vec::with_capacity(demand.len());
        for (((key, q), stock), meta) in demand.iter().zip(&stocks).zip(&metas) {
            let before = row(stock, meta, now);
            match rule(&before, *q) {
                Ok(delta) => planned.push((before.available(), delta)),
                Err(e) => {
                    self.abort_movement(movement);
                    return Err(match e {
                        Error::Invalid { field, reason } => Error::Invalid {
                            field,
                            reason: format!("{key}: {reason}"),
                        },
                        other => other,
                    });
                }
            }
        }
        let mut events = Vec::new();
        let mut log = Vec::new();
        for ((key, stock), (meta, (before, delta))) in demand
            .iter()
            .map(|(k, _)| k)
            .zip(&stocks)
            .zip(metas.iter_mut().zip(planned))
        {
            meta.on_hand += delta.on_hand;
            meta.committed += delta.committed;
            stock.adjust_free(delta.free());
            events.extend(Self::changed(stock, meta, before, now));
            log.push(Movement {
                key: movement.clone(),
                stock: key.clone(),
                on_hand_delta: delta.on_hand,
                committed_delta: delta.committed,
                reason: op.into(),
                at: now,
            });
        }
        self.record(log);
        self.commit_events(Origin::Movement(movement), now, &events);
        Ok(Changes { events })
    }
}
