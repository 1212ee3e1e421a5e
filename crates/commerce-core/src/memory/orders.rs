//! In-memory order store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{InMemoryEventLog, lock, page_limit};
use crate::ports::{CasOutcome, ErrorKind, OrderStore, PortError, PortResult};
use crate::{EventEnvelope, Order, OrderId, OrderStatus};

/// An [`OrderStore`] in a `BTreeMap`, committing each write's events to its outbox (an
/// [`InMemoryEventLog`]) inside the same critical section.
#[derive(Debug, Default)]
pub struct InMemoryOrderStore {
    orders: Mutex<BTreeMap<OrderId, Order>>,
    outbox: Arc<InMemoryEventLog>,
}

impl InMemoryOrderStore {
    /// An empty store with an outbox of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store committing its events to `outbox` (share one log between the stores of a
    /// deployment).
    pub fn with_outbox(outbox: Arc<InMemoryEventLog>) -> Self {
        InMemoryOrderStore {
            orders: Mutex::default(),
            outbox,
        }
    }

    /// The log this store commits its events to.
    pub fn outbox(&self) -> &Arc<InMemoryEventLog> {
        &self.outbox
    }

    /// Every order, in id order (for tests and simulation checkers).
    pub fn snapshot(&self) -> Vec<Order> {
        lock(&self.orders).values().cloned().collect()
    }
}

#[async_trait]
impl OrderStore for InMemoryOrderStore {
    async fn insert(&self, order: Order, events: &[EventEnvelope]) -> PortResult<()> {
        let mut orders = lock(&self.orders);
        if orders.contains_key(order.id()) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("order {} exists", order.id()),
            ));
        }
        let _ = self.outbox.append(events);
        orders.insert(order.id().clone(), order);
        Ok(())
    }

    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>> {
        Ok(lock(&self.orders).get(id).cloned())
    }

    async fn update(
        &self,
        order: Order,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
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
        if !order.extends(stored) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!(
                    "order {}: the update does not extend the stored order's history",
                    order.id()
                ),
            ));
        }
        let _ = self.outbox.append(events);
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
