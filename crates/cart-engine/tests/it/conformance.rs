//! The in-memory ports run their conformance suites, as every adapter will.

mod cart_store {
    cart_engine::cart_store_conformance!({
        let log = std::sync::Arc::new(commerce_core::memory::InMemoryEventLog::new());
        (
            cart_engine::InMemoryCartStore::with_outbox(log.clone()),
            log,
        )
    });
}

mod usage_store {
    cart_engine::usage_store_conformance!(cart_engine::InMemoryUsageStore::new());
}

/// A code with a limit of 10 and 20 claims on 20 OS threads at once: exactly 10 succeed.
#[test]
fn twenty_threads_claim_a_code_limited_to_ten() {
    use std::sync::{Arc, Barrier};

    use cart_engine::*;
    use commerce_core::{Currency, IdempotencyKey, Money, UserId};

    for round in 0..20 {
        let store = Arc::new(InMemoryUsageStore::new());
        let barrier = Arc::new(Barrier::new(20));
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let request = ClaimRequest {
                        claim_id: IdempotencyKey::new(format!("order-{round}-{i}:promo")).unwrap(),
                        promotion_id: PromotionId::new("limited").unwrap(),
                        customer: Some(UserId::new(format!("u-{i}")).unwrap()),
                        discount: Money::from_minor(500, Currency::EUR),
                        limits: UsageLimits {
                            total: Some(10),
                            ..UsageLimits::default()
                        },
                    };
                    barrier.wait();
                    futures::executor::block_on(store.reserve(&request)).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let reserved = outcomes
            .iter()
            .filter(|o| **o == ClaimOutcome::Reserved)
            .count();
        assert_eq!(reserved, 10, "round {round}: {outcomes:?}");
        let usage = futures::executor::block_on(store.usage(&PromotionId::new("limited").unwrap()))
            .unwrap();
        assert_eq!(usage.uses, 10);
    }
}
