//! The order store.

use std::fmt::Debug;

use async_trait::async_trait;

use super::{CasOutcome, PortResult};
use crate::{EventEnvelope, Order, OrderId, OrderStatus};

/// Where orders live, and the outbox their events commit to.
///
/// Contract (checked by `testkit::order_store_conformance!`):
/// - Every write commits the order and the `events` it is given together, all or nothing: a
///   refused or lost write commits no event, and no reader of the event log sees an event
///   before the write that caused it. Events whose ids the log holds are skipped (a retried
///   write commits each once).
/// - `insert` stores a new order; an id that exists is `Conflict` and changes nothing.
/// - `update` is compare-and-set on [`Order::version`] (the ledger length): it writes only if
///   the stored order's version equals `expected_version`, otherwise returns
///   [`CasOutcome::VersionMismatch`]. The new order must extend the stored one
///   ([`Order::extends`]: same order, its ledger plus new entries), otherwise `Conflict`: history
///   is never rewritten. Updating a missing order is `NotFound`.
/// - `list_by_status` pages in ascending order id, strictly after `after`.
#[async_trait]
pub trait OrderStore: Send + Sync + Debug {
    /// Stores a new order and commits `events` with it.
    async fn insert(&self, order: Order, events: &[EventEnvelope]) -> PortResult<()>;
    /// The order with this id.
    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>>;
    /// Replaces the order if the stored version is `expected_version` and the new order
    /// extends it, committing `events` with it.
    async fn update(
        &self,
        order: Order,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome>;
    /// A page of orders in one status, in id order.
    async fn list_by_status(
        &self,
        status: OrderStatus,
        after: Option<&OrderId>,
        limit: usize,
    ) -> PortResult<Vec<Order>>;
}
