//! Every in-memory port runs its conformance suite, as every adapter will.

use commerce_core::memory::*;

mod clock {
    commerce_core::clock_conformance!(
        commerce_core::ManualClock::new(commerce_core::testkit::t0())
    );
}

mod catalog_store {
    use super::*;
    commerce_core::catalog_store_conformance!({
        let log = std::sync::Arc::new(InMemoryEventLog::new());
        (InMemoryCatalog::with_outbox(log.clone()), log)
    });
}

mod order_store {
    use super::*;
    commerce_core::order_store_conformance!({
        let log = std::sync::Arc::new(InMemoryEventLog::new());
        (InMemoryOrderStore::with_outbox(log.clone()), log)
    });
}

mod event_log {
    use super::*;
    commerce_core::event_log_conformance!(InMemoryEventLog::new());
}

mod idempotency_store {
    use super::*;
    commerce_core::idempotency_store_conformance!(InMemoryIdempotencyStore::new());
}

mod payment_gateway {
    use super::*;
    commerce_core::payment_gateway_conformance!(InMemoryPaymentGateway::new());
}

mod carrier {
    use super::*;
    commerce_core::carrier_conformance!(InMemoryCarrier::with_standard_services(
        "acme-post",
        commerce_core::Currency::EUR
    ));
}

mod rate_limiter {
    use commerce_core::memory::InMemoryRateLimiter;
    commerce_core::rate_limiter_conformance!(InMemoryRateLimiter::new());
}

mod projection_cache {
    use commerce_core::memory::InMemoryProjectionCache;
    commerce_core::projection_cache_conformance!(InMemoryProjectionCache::new());
}

mod notifier {
    use super::*;
    commerce_core::notifier_conformance!(InMemoryNotifier::new());

    #[tokio::test]
    async fn delivers_once_per_key() {
        use commerce_core::{IdempotencyKey, Notification, NotificationKind, Notifier, UserId};
        let n = InMemoryNotifier::new();
        let note = Notification {
            key: IdempotencyKey::new("k-1").unwrap(),
            recipient: UserId::new("u-1").unwrap(),
            kind: NotificationKind::BackInStock,
            order_id: None,
            sku: None,
        };
        n.send(&note).await.unwrap();
        n.send(&note).await.unwrap();
        assert_eq!(n.sent(), vec![note]);
    }
}

/// Every port is object-safe and usable as `Arc<dyn Port>` across threads.
#[test]
fn ports_are_object_safe_send_and_sync() {
    use commerce_core::*;
    use std::sync::Arc;
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Clock>();
    assert_send_sync::<dyn CatalogStore>();
    assert_send_sync::<dyn OrderStore>();
    assert_send_sync::<dyn EventPublisher>();
    assert_send_sync::<dyn EventLog>();
    assert_send_sync::<dyn PaymentGateway>();
    assert_send_sync::<dyn Carrier>();
    assert_send_sync::<dyn Notifier>();
    assert_send_sync::<dyn IdempotencyStore>();
    let _ports: (
        Arc<dyn CatalogStore>,
        Arc<dyn OrderStore>,
        Arc<dyn PaymentGateway>,
    ) = (
        Arc::new(InMemoryCatalog::new()),
        Arc::new(InMemoryOrderStore::new()),
        Arc::new(InMemoryPaymentGateway::new()),
    );
    assert_send_sync::<Money>();
    assert_send_sync::<Order>();
    assert_send_sync::<Error>();
    assert_send_sync::<PortError>();
}
