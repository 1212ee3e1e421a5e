//! Conformance cases for [`PromotionUsageStore`].

use commerce_core::{Currency, ErrorKind, IdempotencyKey, Money, UserId};
use futures::future::join_all;

use crate::{
    ClaimOutcome, ClaimRequest, LimitReached, PromotionId, PromotionUsageStore, UsageLimits,
};

fn claim(
    id: &str,
    promo: &str,
    customer: Option<&str>,
    cents: i64,
    limits: UsageLimits,
) -> ClaimRequest {
    ClaimRequest {
        claim_id: IdempotencyKey::new(id).unwrap(),
        promotion_id: PromotionId::new(promo).unwrap(),
        customer: customer.map(|c| UserId::new(c).unwrap()),
        discount: Money::from_minor(cents, Currency::EUR),
        limits,
    }
}

fn total(n: u32) -> UsageLimits {
    UsageLimits {
        total: Some(n),
        ..UsageLimits::default()
    }
}

/// Uses count up to the total limit; the next claim is refused until one is released.
pub async fn total_limit_holds_and_release_gives_back<S: PromotionUsageStore + ?Sized>(store: &S) {
    let p = "us-a";
    assert_eq!(
        store
            .reserve(&claim("us-a-1", p, None, 100, total(2)))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    assert_eq!(
        store
            .reserve(&claim("us-a-2", p, None, 100, total(2)))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    let third = claim("us-a-3", p, None, 100, total(2));
    assert_eq!(
        store.reserve(&third).await.unwrap(),
        ClaimOutcome::LimitReached(LimitReached::Total)
    );
    store
        .commit(&IdempotencyKey::new("us-a-1").unwrap())
        .await
        .unwrap();
    store
        .release(&IdempotencyKey::new("us-a-2").unwrap())
        .await
        .unwrap();
    assert_eq!(store.reserve(&third).await.unwrap(), ClaimOutcome::Reserved);
    assert_eq!(
        store
            .usage(&PromotionId::new(p).unwrap())
            .await
            .unwrap()
            .uses,
        2
    );
}

/// Repeating a reservation counts it once; the same claim id for another request is `Conflict`.
pub async fn reserve_is_idempotent<S: PromotionUsageStore + ?Sized>(store: &S) {
    let c = claim("us-b-1", "us-b", None, 100, total(5));
    for _ in 0..3 {
        assert_eq!(store.reserve(&c).await.unwrap(), ClaimOutcome::Reserved);
    }
    assert_eq!(store.usage(&c.promotion_id).await.unwrap().uses, 1);
    let other = claim("us-b-1", "us-b", None, 200, total(5));
    assert_eq!(
        store.reserve(&other).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    store.commit(&c.claim_id).await.unwrap();
    store.commit(&c.claim_id).await.unwrap();
    store.release(&c.claim_id).await.unwrap();
    store.release(&c.claim_id).await.unwrap();
    assert_eq!(store.usage(&c.promotion_id).await.unwrap().uses, 0);
    let ghost = IdempotencyKey::new("us-b-ghost").unwrap();
    assert_eq!(
        store.commit(&ghost).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        store.release(&ghost).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// Per-customer limits count per customer, and need a customer.
pub async fn per_customer_limit<S: PromotionUsageStore + ?Sized>(store: &S) {
    let once = UsageLimits {
        per_customer: Some(1),
        ..UsageLimits::default()
    };
    let p = "us-c";
    assert_eq!(
        store
            .reserve(&claim("us-c-1", p, Some("ann"), 100, once.clone()))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    assert_eq!(
        store
            .reserve(&claim("us-c-2", p, Some("ann"), 100, once.clone()))
            .await
            .unwrap(),
        ClaimOutcome::LimitReached(LimitReached::PerCustomer)
    );
    assert_eq!(
        store
            .reserve(&claim("us-c-3", p, Some("ben"), 100, once.clone()))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    assert_eq!(
        store
            .reserve(&claim("us-c-4", p, None, 100, once))
            .await
            .unwrap(),
        ClaimOutcome::LimitReached(LimitReached::CustomerRequired)
    );
}

/// A campaign budget in money is never overspent.
pub async fn budget_is_never_overspent<S: PromotionUsageStore + ?Sized>(store: &S) {
    let budget = UsageLimits {
        budget: Some(Money::from_minor(1_000, Currency::EUR)),
        ..UsageLimits::default()
    };
    let p = "us-d";
    assert_eq!(
        store
            .reserve(&claim("us-d-1", p, None, 600, budget.clone()))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    assert_eq!(
        store
            .reserve(&claim("us-d-2", p, None, 401, budget.clone()))
            .await
            .unwrap(),
        ClaimOutcome::LimitReached(LimitReached::Budget)
    );
    assert_eq!(
        store
            .reserve(&claim("us-d-3", p, None, 400, budget))
            .await
            .unwrap(),
        ClaimOutcome::Reserved
    );
    let usage = store.usage(&PromotionId::new(p).unwrap()).await.unwrap();
    assert_eq!(usage.spent, Some(Money::from_minor(1_000, Currency::EUR)));
}

/// Twenty concurrent claims on a limit of ten: exactly ten are reserved.
pub async fn concurrent_claims_never_exceed_the_limit<S: PromotionUsageStore + ?Sized>(store: &S) {
    let claims: Vec<_> = (0..20)
        .map(|i| claim(&format!("us-e-{i}"), "us-e", None, 100, total(10)))
        .collect();
    let results = join_all(claims.iter().map(|c| store.reserve(c))).await;
    let reserved = results
        .iter()
        .filter(|r| matches!(r, Ok(ClaimOutcome::Reserved)))
        .count();
    assert_eq!(reserved, 10, "{results:?}");
    assert_eq!(
        store
            .usage(&PromotionId::new("us-e").unwrap())
            .await
            .unwrap()
            .uses,
        10
    );
}

/// Runs the [`PromotionUsageStore`] conformance suite against `$make`.
#[macro_export]
macro_rules! usage_store_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            total_limit_holds_and_release_gives_back => $crate::testkit::usage_store::total_limit_holds_and_release_gives_back,
            reserve_is_idempotent => $crate::testkit::usage_store::reserve_is_idempotent,
            per_customer_limit => $crate::testkit::usage_store::per_customer_limit,
            budget_is_never_overspent => $crate::testkit::usage_store::budget_is_never_overspent,
            concurrent_claims_never_exceed_the_limit => $crate::testkit::usage_store::concurrent_claims_never_exceed_the_limit,
        );
    };
}
