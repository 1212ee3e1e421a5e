//! The order store.

use std::fmt::Debug;

use async_trait::async_trait;

use super::{CasOutcome, PortResult};
use crate::{Order, OrderId, OrderStatus};

/// Where orders live.
///
/// Contract (checked by `testkit::order_store_conformance!`):
/// - `insert` stores a new order; an id that exists is `Conflict` and changes nothing.
/// - `update` is compare-and-set on [`Order::version`] (the ledger length): it writes only if
///   the stored order's version equals `expected_version`, otherwise returns
///   [`CasOutcome::VersionMismatch`]. Updating a missing order is `NotFound`.
/// - `list_by_status` pages in ascending order id, strictly after `after`.
#[async_trait]
pub trait OrderStore: Send + Sync + Debug {
    /// Stores a new order.
    async fn insert(&self, order: Order) -> PortResult<()>;
    /// The order with this id.
    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>>;
    /// Replaces the order if the stored version is `expected_version`.
    async fn update(&self, order: Order, expected_version: u64) -> PortResult<CasOutcome>;
    /// A page of orders in one status, in id order.
    async fn list_by_status(
        &self,
        status: OrderStatus,
        after: Option<&OrderId>,
        limit: usize,
    ) -> PortResult<Vec<Order>>;
}
