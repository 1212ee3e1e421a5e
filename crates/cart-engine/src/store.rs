//! The cart store port and its in-memory implementation.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{CartId, CasOutcome, ErrorKind, EventEnvelope, PortError, PortResult, UserId};

use crate::cart::{Cart, CartStatus};
use crate::limits::SWEEP_BATCH_MAX;

/// Where carts live, and the outbox their events commit to.
///
/// Contract (checked by `cart_engine::cart_store_conformance!`):
/// - Every write commits the cart and the `events` it is given together, all or nothing (a
///   refused or lost write commits none; event ids the log holds are skipped).
/// - `insert` stores a new cart; an existing id is `Conflict`. A user has at most one active
///   cart: inserting a second active cart for the same owner is `Conflict`.
/// - `update` is compare-and-set on [`Cart::version`]: it writes only over `expected_version`,
///   else [`CasOutcome::VersionMismatch`]. A missing cart is `NotFound`; changing a cart's owner
///   is `Conflict` (owners never change; anonymous carts merge instead).
/// - `get_active_for_user` returns that user's active cart and never another owner's.
/// - `list_expired` returns active carts whose expiry is at or before `now`, oldest expiry first,
///   at most `limit`.
#[async_trait]
pub trait CartStore: Send + Sync + Debug {
    /// Stores a new cart, committing `events` with it.
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()>;
    /// The cart with this id.
    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>>;
    /// The user's active cart.
    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>>;
    /// Replaces a cart if the stored version is `expected_version`, committing `events` with it.
    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome>;
    /// Active carts expired at `now`.
    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>>;
}

/// A [`CartStore`] in memory, committing each write's events to its outbox inside the same
/// critical section.
#[derive(Debug, Default)]
pub struct InMemoryCartStore {
    inner: Mutex<Inner>,
    outbox: Arc<InMemoryEventLog>,
}

#[derive(Debug, Default)]
struct Inner {
    carts: BTreeMap<CartId, Cart>,
    active_by_user: HashMap<UserId, CartId>,
}

impl InMemoryCartStore {
    /// An empty store with an outbox of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store committing its events to `outbox`.
    pub fn with_outbox(outbox: Arc<InMemoryEventLog>) -> Self {
        InMemoryCartStore {
            inner: Mutex::default(),
            outbox,
        }
    }

    /// The log this store commits its events to.
    pub fn outbox(&self) -> &Arc<InMemoryEventLog> {
        &self.outbox
    }
}

fn conflict(message: String) -> PortError {
    PortError::new(ErrorKind::Conflict, message)
}

#[async_trait]
impl CartStore for InMemoryCartStore {
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.carts.contains_key(cart.id()) {
            return Err(conflict(format!("cart {} exists", cart.id())));
        }
        let active = *cart.status() == CartStatus::Active;
        if let Some(owner) = cart.owner()
            && active
        {
            if inner.active_by_user.contains_key(owner) {
                return Err(conflict(format!("user {owner} already has an active cart")));
            }
            inner
                .active_by_user
                .insert(owner.clone(), cart.id().clone());
        }
        let _ = self.outbox.append(events);
        inner.carts.insert(cart.id().clone(), cart);
        Ok(())
    }

    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inner.carts.get(id).cloned())
    }

    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inner
            .active_by_user
            .get(user)
            .and_then(|id| inner.carts.get(id))
            .filter(|c| c.owner() == Some(user) && *c.status() == CartStatus::Active)
            .cloned())
    }

    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(stored) = inner.carts.get(cart.id()) else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("cart {}", cart.id()),
            ));
        };
        if stored.version() != expected_version {
            return Ok(CasOutcome::VersionMismatch {
                current: stored.version(),
            });
        }
        if stored.owner() != cart.owner() {
            return Err(conflict(format!("cart {} cannot change owner", cart.id())));
        }
        if let Some(owner) = cart.owner() {
            if *cart.status() == CartStatus::Active {
                inner
                    .active_by_user
                    .insert(owner.clone(), cart.id().clone());
            } else if inner.active_by_user.get(owner) == Some(cart.id()) {
                inner.active_by_user.remove(owner);
            }
        }
        let _ = self.outbox.append(events);
        inner.carts.insert(cart.id().clone(), cart);
        Ok(CasOutcome::Committed)
    }

    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut expired: Vec<Cart> = inner
            .carts
            .values()
            .filter(|c| *c.status() == CartStatus::Active && c.is_expired(now))
            .cloned()
            .collect();
        expired.sort_by(|a, b| {
            a.expires_at()
                .cmp(&b.expires_at())
                .then_with(|| a.id().cmp(b.id()))
        });
        expired.truncate(limit.min(SWEEP_BATCH_MAX));
        Ok(expired)
    }
}
