//! The cart engine's ports behind seeded faults and a process that can crash, for simulations
//! (see `commerce_core::testkit::faults`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::testkit::faults::Faulty;
use commerce_core::{CartId, CasOutcome, EventEnvelope, IdempotencyKey, PortResult, UserId};

use crate::{Cart, CartStore, ClaimOutcome, ClaimRequest, PromotionId, PromotionUsageStore, Usage};

#[async_trait]
impl<P: PromotionUsageStore + ?Sized> PromotionUsageStore for Faulty<P> {
    async fn reserve(&self, request: &ClaimRequest) -> PortResult<ClaimOutcome> {
        self.faults().write(self.inner().reserve(request)).await
    }
    async fn commit(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        self.faults().write(self.inner().commit(claim_id)).await
    }
    async fn release(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        self.faults().write(self.inner().release(claim_id)).await
    }
    async fn usage(&self, promotion_id: &PromotionId) -> PortResult<Usage> {
        self.faults().read(self.inner().usage(promotion_id)).await
    }
}

#[async_trait]
impl<P: CartStore + ?Sized> CartStore for Faulty<P> {
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()> {
        self.faults().write(self.inner().insert(cart, events)).await
    }
    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>> {
        self.faults().read(self.inner().get(id)).await
    }
    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>> {
        self.faults()
            .read(self.inner().get_active_for_user(user))
            .await
    }
    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        self.faults()
            .write(self.inner().update(cart, expected_version, events))
            .await
    }
    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>> {
        self.faults()
            .read(self.inner().list_expired(now, limit))
            .await
    }
}
