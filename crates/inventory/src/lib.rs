//! Stock, holds and hot-SKU counters: the part of the SDK that must never oversell.
//!
//! - Stock is counted per [`StockKey`] (SKU × location): on hand, held, committed, safety
//!   stock; `available = on_hand − held − committed − safety_stock` (and may dip into a
//!   configured backorder allowance, never further).
//! - **Holds** ([`HoldStore::reserve`]) take stock for a time to live, for several SKUs all or
//!   nothing, summing demand per key first. They are extended, pinned (no expiry while a
//!   charge is in flight), committed (the order was placed), released, or they expire. An
//!   expired hold counts as free at once; [`HoldStore::sweep`] (or the first call that notices)
//!   finalizes it, exactly once. Every operation is idempotent by hold id.
//! - **Optimistic mode** ([`StockMode::Optimistic`]): no holds; [`StockMovements::commit_direct`]
//!   decrements at order placement and reports any over-promise as a [`Shortfall`].
//! - **Sharded counters**: a hot SKU's free stock is split over shards
//!   ([`StockConfig::sharded`]); a reservation starts at one shard and borrows from the others,
//!   so no unit is stranded, and availability sums the shards. A single-shard SKU that sees
//!   lock contention is promoted to its `shards_max`.
//! - [`reconcile`] compares physical counts with the system, reports drift, alerts above a
//!   threshold, and applies corrections as movements.
//! - Events: `InventoryChanged` when on-hand or committed stock changes, and `BackInStock` (with
//!   an `InventoryChanged`) when a sold-out SKU gets stock back, by receipt, correction,
//!   release or expiry. Reservations and releases on a SKU that has stock emit nothing (a
//!   flash sale would flood the bus and serialize the shards); read availability live. Every
//!   store commits a write's events to its outbox together with the write.
//! - [`rules`] holds the rules every store calls: the hold state machine, what each movement
//!   changes on a stock row, which events a change causes.
//!
//! # Example
//!
//! ```
//! use chrono::TimeDelta;
//! use commerce_core::{IdempotencyKey, LocationId, Sku, testkit::t0};
//! use inventory::*;
//! # futures::executor::block_on(async {
//! let store = InMemoryStockStore::new();
//! let tee = StockKey::new(Sku::new("TEE")?, LocationId::new("wh-1")?);
//! store.configure(&tee, StockConfig::default()).await?;
//! let _ = store.receive(&IdempotencyKey::new("po-7")?, &tee, 3, t0()).await?;
//!
//! // Two lines of the same SKU are summed before checking: 2 + 2 > 3 reserves nothing.
//! let two = StockLine { key: tee.clone(), quantity: 2 };
//! let expires = t0() + TimeDelta::minutes(15);
//! let err = store.reserve(&HoldId::new("h-1")?, &[two.clone(), two.clone()], expires, t0()).await;
//! assert!(matches!(err, Err(Error::InsufficientStock { requested: 4, .. })));
//!
//! let hold = store.reserve(&HoldId::new("h-2")?, &[two], expires, t0()).await?;
//! store.pin(&hold.id, t0()).await?;              // the charge is in flight
//! let _ = store.commit(&hold.id, t0()).await?;   // the order is placed
//! let level = store.level(&tee, t0()).await?;
//! assert_eq!((level.on_hand, level.committed, level.available), (3, 2, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod error;
pub mod limits;
mod memory;
mod model;
mod port;
mod reconcile;
pub mod rules;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, Result};
pub use memory::InMemoryStockStore;
pub use model::{
    Changes, DirectCommit, Hold, HoldId, HoldStatus, Shortfall, ShortfallPolicy, StockConfig,
    StockKey, StockLevel, StockLine, StockMode, demand,
};
pub use port::{HoldStore, Movement, StockLevels, StockMovements, StockStore, Sweep};
pub use reconcile::{Drift, PhysicalCount, ReconcileConfig, Reconciliation, reconcile};
