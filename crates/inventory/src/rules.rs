//! The inventory rules as pure functions over one stock row and one hold: what an operation may
//! do, what it changes, and which events it causes. Every [`crate::StockStore`] calls them — the
//! in-memory store, whose counters are split into shards for concurrency, and the database
//! stores, which keep one row per stock key — so no store re-derives the rules from the
//! conformance suite.
//!
//! A store's job is then only storage and atomicity: read the row and the hold, ask these
//! functions, apply the [`Delta`] and record the events, all in one step (a critical section,
//! a transaction, a script).
//!
//! ```
//! use commerce_core::{LocationId, Sku};
//! use inventory::rules::{self, StockRow};
//! use inventory::{ShortfallPolicy, StockConfig, StockKey};
//!
//! let tee = StockKey::new(Sku::new("TEE")?, LocationId::new("wh")?);
//! let mut row = StockRow::new(StockConfig::default());
//! row.apply(rules::receive(3)?);
//! row.apply(rules::reserve(&tee, &row, 2)?);       // a hold of 2
//! assert_eq!((row.available(), row.sellable()), (1, 1));
//! assert!(rules::reserve(&tee, &row, 2).is_err()); // nothing promised twice
//! row.apply(rules::commit_held(2));                // the order was placed
//! let (delta, shortfall) = rules::commit_direct(&tee, &row, 3, ShortfallPolicy::Accept)?;
//! row.apply(delta);
//! assert_eq!((row.committed, row.available(), shortfall), (5, -2, 2)); // an accepted over-promise
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Utc};
use commerce_core::DomainEvent;

use crate::limits::QUANTITY_MAX;
use crate::{
    Error, Hold, HoldId, HoldStatus, Result, ShortfallPolicy, StockConfig, StockKey, StockLevel,
};

/// One stock key's counts: the row a database store keeps, and the sum of the in-memory store's
/// shards.
///
/// `available = on_hand − held − committed − safety_stock`; it may go below zero into the
/// backorder allowance, and below that only through reported exceptions (a count below what is
/// promised, an accepted shortfall): units owed, paid back first by the next units that return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockRow {
    /// Units physically there, per the system.
    pub on_hand: i64,
    /// Units held by live holds.
    pub held: i64,
    /// Units promised to placed orders, not yet shipped.
    pub committed: i64,
    /// The key's configuration.
    pub config: StockConfig,
}

/// What an operation changes on a [`StockRow`]; a store adds it to its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Delta {
    /// Change of on-hand units.
    pub on_hand: i64,
    /// Change of held units.
    pub held: i64,
    /// Change of committed units.
    pub committed: i64,
}

impl Delta {
    /// The change of units free to promise: `on_hand − held − committed`.
    pub fn free(self) -> i64 {
        self.on_hand - self.held - self.committed
    }
}

impl StockRow {
    /// A new key's row: nothing on hand.
    pub fn new(config: StockConfig) -> StockRow {
        StockRow {
            on_hand: 0,
            held: 0,
            committed: 0,
            config,
        }
    }

    /// Units that can be promised now: `on_hand − held − committed − safety_stock`.
    pub fn available(&self) -> i64 {
        self.on_hand - self.held - self.committed - self.config.safety_stock
    }

    /// Units a hold may take: what is available plus the backorder allowance (never below 0).
    pub fn sellable(&self) -> i64 {
        (self.available() + self.config.backorder_limit).max(0)
    }

    /// Adds `delta` to the counts.
    pub fn apply(&mut self, delta: Delta) {
        self.on_hand += delta.on_hand;
        self.held += delta.held;
        self.committed += delta.committed;
    }

    /// The level a caller reads.
    pub fn level(&self, shards: usize) -> StockLevel {
        StockLevel {
            on_hand: self.on_hand,
            held: self.held,
            committed: self.committed,
            safety_stock: self.config.safety_stock,
            backorder_limit: self.config.backorder_limit,
            available: self.available(),
            shards,
        }
    }
}

/// Receiving `quantity` units.
///
/// # Errors
/// [`Error::Invalid`] for a quantity outside `1..=QUANTITY_MAX`.
pub fn receive(quantity: i64) -> Result<Delta> {
    if !(1..=QUANTITY_MAX).contains(&quantity) {
        return Err(Error::invalid("quantity", "outside 1..=QUANTITY_MAX"));
    }
    Ok(Delta {
        on_hand: quantity,
        ..Delta::default()
    })
}

/// A physical count of `counted` units: on hand becomes the count; the difference is the
/// correction. A count below what is promised leaves units owed (availability below the
/// allowance), reported, never hidden.
///
/// # Errors
/// [`Error::Invalid`] for a count outside `0..=QUANTITY_MAX`.
pub fn set_on_hand(row: &StockRow, counted: i64) -> Result<Delta> {
    if !(0..=QUANTITY_MAX).contains(&counted) {
        return Err(Error::invalid("counted", "outside 0..=QUANTITY_MAX"));
    }
    Ok(Delta {
        on_hand: counted - row.on_hand,
        ..Delta::default()
    })
}

/// Holding `quantity` units of `key` (one key of a reservation; a reservation checks every key
/// before applying any).
///
/// # Errors
/// [`Error::InsufficientStock`] when fewer are sellable.
pub fn reserve(key: &StockKey, row: &StockRow, quantity: i64) -> Result<Delta> {
    if row.sellable() < quantity {
        return Err(insufficient(key, quantity, row.sellable(), &row.config));
    }
    Ok(Delta {
        held: quantity,
        ..Delta::default()
    })
}

/// The refusal of `requested` units of `key` when `sellable` were free to take (the
/// backorder allowance included): the error reports what was available.
pub fn insufficient(key: &StockKey, requested: i64, sellable: i64, config: &StockConfig) -> Error {
    Error::InsufficientStock {
        key: key.clone(),
        requested,
        available: sellable - config.backorder_limit,
    }
}

/// Converting `quantity` held units into committed ones (the order was placed).
pub fn commit_held(quantity: i64) -> Delta {
    Delta {
        held: -quantity,
        committed: quantity,
        ..Delta::default()
    }
}

/// Giving `quantity` held units back (a release or an expiry).
pub fn release_held(quantity: i64) -> Delta {
    Delta {
        held: -quantity,
        ..Delta::default()
    }
}

/// An optimistic commit of `quantity` units of `key`: they are committed whatever is
/// sellable; the part beyond it is the shortfall, refused under [`ShortfallPolicy::Refuse`]
/// and returned (to report) under [`ShortfallPolicy::Accept`].
///
/// # Errors
/// [`Error::InsufficientStock`] under `Refuse` when the shortfall is not 0.
pub fn commit_direct(
    key: &StockKey,
    row: &StockRow,
    quantity: i64,
    policy: ShortfallPolicy,
) -> Result<(Delta, i64)> {
    let shortfall = (quantity - row.sellable()).max(0);
    if shortfall > 0 && policy == ShortfallPolicy::Refuse {
        return Err(insufficient(key, quantity, row.sellable(), &row.config));
    }
    Ok((
        Delta {
            committed: quantity,
            ..Delta::default()
        },
        shortfall,
    ))
}

/// Shipping `quantity` committed units: they leave on hand and committed. Shipping records what
/// left the building, so it is never refused for lack of on-hand units: units sold on backorder
/// can ship before their receipt is recorded, and on hand then dips below zero until it is
/// (drift that reconciliation reports).
///
/// # Errors
/// [`Error::Invalid`] when fewer are committed.
pub fn ship(row: &StockRow, quantity: i64) -> Result<Delta> {
    take_committed(row, quantity, "ship")?;
    Ok(Delta {
        on_hand: -quantity,
        committed: -quantity,
        ..Delta::default()
    })
}

/// Giving `quantity` committed units back to sale (an order cancelled before it shipped).
///
/// # Errors
/// [`Error::Invalid`] when fewer are committed.
pub fn uncommit(row: &StockRow, quantity: i64) -> Result<Delta> {
    take_committed(row, quantity, "uncommit")?;
    Ok(Delta {
        committed: -quantity,
        ..Delta::default()
    })
}

fn take_committed(row: &StockRow, quantity: i64, op: &'static str) -> Result<()> {
    if row.committed < quantity {
        return Err(Error::invalid(
            op,
            format!("{} committed, not {quantity}", row.committed),
        ));
    }
    Ok(())
}

/// The events a change of `key` from `available_before` to `after` causes: `InventoryChanged`,
/// and `BackInStock` when availability went from zero or less to positive.
pub fn events(key: &StockKey, available_before: i64, after: &StockRow) -> Vec<DomainEvent> {
    let available = after.available();
    let mut events = vec![DomainEvent::InventoryChanged {
        sku: key.sku.clone(),
        location: key.location.clone(),
        on_hand: after.on_hand,
        available,
    }];
    if available_before <= 0 && available > 0 {
        events.push(DomainEvent::BackInStock {
            sku: key.sku.clone(),
            available,
        });
    }
    events
}

/// Whether units coming back from a hold (a release, an expiry) cause events: only when they
/// bring the key back from sold out. Holds come and go by the thousand in a flash sale; every
/// other change of availability is read live, not broadcast.
pub fn hold_return_emits(available_before: i64) -> bool {
    available_before <= 0
}

/// What an operation on an existing hold is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOp<'a> {
    /// Reserve again under the same id, with these (summed) lines.
    Reserve {
        /// Same lines as the hold's: an idempotent repeat.
        same_lines: bool,
    },
    /// Move the expiry of a live hold to `expires_at`.
    Extend {
        /// The new expiry.
        expires_at: DateTime<Utc>,
    },
    /// Pin a live hold (checkout is charging).
    Pin,
    /// Pin a live hold on behalf of `owner`, exclusively.
    Adopt {
        /// The adopting checkout.
        owner: &'a str,
    },
    /// Convert into committed stock.
    Commit,
    /// Give the units back.
    Release,
    /// Give the units back only if `owner` adopted the hold.
    ReleaseOwned {
        /// The owner asking.
        owner: &'a str,
    },
    /// Expire the hold if its time has passed.
    Expire,
}

/// What [`decide`] needs of a hold: borrowed, so a store asks without copying the hold's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldState<'a> {
    /// The hold's id (named in errors).
    pub id: &'a HoldId,
    /// Its status.
    pub status: HoldStatus,
    /// When it expires while `Held`.
    pub expires_at: DateTime<Utc>,
    /// The checkout that adopted it, if any.
    pub owner: Option<&'a str>,
}

impl Hold {
    /// The hold as [`decide`] reads it.
    pub fn state(&self) -> HoldState<'_> {
        HoldState {
            id: &self.id,
            status: self.status,
            expires_at: self.expires_at,
            owner: self.owner.as_deref(),
        }
    }
}

/// What a store does with a hold, as [`decide`] rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum HoldAction {
    /// Apply the operation: the hold moves to [`status_after`] the operation.
    Apply,
    /// Change nothing and answer with the hold as it is: an idempotent repeat (commit of a
    /// committed hold), a release of a hold already given back, an expiry not yet due, a
    /// release by someone who does not own the hold.
    Unchanged,
    /// The hold's time passed while it was held: expire it now (its units come back, its events
    /// are recorded, exactly as a sweep would), then refuse with [`Error::HoldExpired`].
    ExpireThenRefuse,
}

/// Decides what `op` does to `hold` at `now`. The state machine of a hold, in one place:
///
/// - `Held` until `expires_at`; after that it counts as free at once (lazy expiry) and every
///   operation but a release sees it as expired.
/// - `Pinned` (and adopted) holds never expire. Only one owner adopts a hold.
/// - `Committed`, `Released`, `Expired` are final; repeating what led there changes nothing,
///   and the opposite move is refused ([`Error::HoldState`]).
///
/// # Errors
/// [`Error::HoldConflict`] for a reserve with other lines; [`Error::HoldExpired`] for a hold
/// that already expired; [`Error::HoldState`] for an operation the status forbids;
/// [`Error::Invalid`] for an extension that moves the expiry earlier.
pub fn decide(hold: HoldState<'_>, op: HoldOp<'_>, now: DateTime<Utc>) -> Result<HoldAction> {
    let due = hold.status == HoldStatus::Held && hold.expires_at <= now;
    let state_error = |operation: &'static str| Error::HoldState {
        hold: hold.id.clone(),
        state: hold.status.as_str(),
        operation,
    };
    // A live `Held` hold for the operations that need one.
    let live = |operation: &'static str| -> Result<HoldAction> {
        match hold.status {
            HoldStatus::Held if due => Ok(HoldAction::ExpireThenRefuse),
            HoldStatus::Held => Ok(HoldAction::Apply),
            HoldStatus::Expired => Err(Error::HoldExpired(hold.id.clone())),
            _ => Err(state_error(operation)),
        }
    };
    match op {
        HoldOp::Reserve { same_lines } => {
            if !same_lines {
                return Err(Error::HoldConflict(hold.id.clone()));
            }
            match hold.status {
                HoldStatus::Held | HoldStatus::Pinned | HoldStatus::Committed => {
                    Ok(HoldAction::Unchanged)
                }
                HoldStatus::Expired => Err(Error::HoldExpired(hold.id.clone())),
                HoldStatus::Released => Err(state_error("reserve again")),
            }
        }
        HoldOp::Extend { expires_at } => {
            let action = live("extend")?;
            if action == HoldAction::Apply && expires_at < hold.expires_at {
                return Err(Error::invalid(
                    "expires_at",
                    "an extension cannot move expiry earlier",
                ));
            }
            Ok(action)
        }
        HoldOp::Pin => match hold.status {
            HoldStatus::Pinned => Ok(HoldAction::Unchanged),
            _ => live("pin"),
        },
        HoldOp::Adopt { owner } => match (hold.owner, hold.status) {
            (Some(o), HoldStatus::Pinned | HoldStatus::Committed) if o == owner => {
                Ok(HoldAction::Unchanged)
            }
            (Some(_), _) => Err(Error::HoldState {
                hold: hold.id.clone(),
                state: "adopted by another owner",
                operation: "adopt",
            }),
            (None, _) => live("adopt"),
        },
        HoldOp::Commit => match hold.status {
            HoldStatus::Committed => Ok(HoldAction::Unchanged),
            HoldStatus::Pinned => Ok(HoldAction::Apply),
            _ => live("commit"),
        },
        HoldOp::Release => match hold.status {
            HoldStatus::Released | HoldStatus::Expired => Ok(HoldAction::Unchanged),
            HoldStatus::Committed => Err(state_error("release")),
            HoldStatus::Held | HoldStatus::Pinned => Ok(HoldAction::Apply),
        },
        HoldOp::ReleaseOwned { owner } => {
            if hold.owner == Some(owner) {
                decide(hold, HoldOp::Release, now)
            } else {
                Ok(HoldAction::Unchanged)
            }
        }
        HoldOp::Expire => Ok(if due {
            HoldAction::Apply
        } else {
            HoldAction::Unchanged
        }),
    }
}

/// The status an applied `op` leaves a hold in.
pub fn status_after(op: HoldOp<'_>) -> HoldStatus {
    match op {
        HoldOp::Reserve { .. } | HoldOp::Extend { .. } => HoldStatus::Held,
        HoldOp::Pin | HoldOp::Adopt { .. } => HoldStatus::Pinned,
        HoldOp::Commit => HoldStatus::Committed,
        HoldOp::Release | HoldOp::ReleaseOwned { .. } => HoldStatus::Released,
        HoldOp::Expire => HoldStatus::Expired,
    }
}
