//! The in-memory hold registry: 64 shards of hold records by id, each with an expiry index for
//! the sweep and a retention queue of finished holds (kept so retries stay idempotent).

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use super::counters::Part;
use crate::limits::HOLD_RETENTION_SECS;
use crate::{Hold, HoldId, HoldStatus, StockLine};

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
