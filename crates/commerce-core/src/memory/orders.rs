//! In-memory order store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, page_limit};
use crate::ports::{CasOutcome, ErrorKind, OrderStore, PortError, PortResult};
use crate::{Order, OrderId, OrderStatus};

/// An [`OrderStore`] in a `BTreeMap`.
#[derive(Debug, Default)]
pub struct InMemoryOrderStore {
    orders: Mutex<BTreeMap<OrderId, Order>>,
}

impl InMemoryOrderStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every order, in id order (for tests and simulation checkers).
    pub fn snapshot(&self) -> Vec<Order> {
        lock(&self.orders).values().cloned().collect()
    }
}

#[async_trait]
impl OrderStore for InMemoryOrderStore {
    async fn insert(&self, order: Order) -> PortResult<()> {
        let mut orders = lock(&self.orders);
        if orders.contains_key(order.id()) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("order {} exists", order.id()),
            ));
        }
        orders.insert(order.id().clone(), order);
        Ok(())
    }

    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>> {
        Ok(lock(&self.orders).get(id).cloned())
    }

    async fn update(&self, order: Order, expected_version: u64) -> PortResult<CasOutcome> {
        let mut orders = lock(&self.orders);
        let Some(stored) = orders.get_mut(order.id()) else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("order {}", order.id()),
            ));
        };
        if stored.version() != expected_version {
            return Ok(CasOutcome::VersionMismatch {
                current: stored.version(),
            });
        }
        *stored = order;
        Ok(CasOutcome::Committed)
    }

    async fn list_by_status(
        &self,
        status: OrderStatus,
        after: Option<&OrderId>,
        limit: usize,
    ) -> PortResult<Vec<Order>> {
        let orders = lock(&self.orders);
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(orders
            .range((lower, Bound::Unbounded))
            .filter(|(_, o)| o.status() == status)
            .take(page_limit(limit))
            .map(|(_, o)| o.clone())
            .collect())
    }
}
