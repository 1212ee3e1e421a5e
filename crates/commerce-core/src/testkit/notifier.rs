//! Conformance cases for [`Notifier`].

use crate::{ErrorKind, IdempotencyKey, Notification, NotificationKind, Notifier, OrderId, UserId};

fn note(key: &str, kind: NotificationKind) -> Notification {
    Notification {
        key: IdempotencyKey::new(key).unwrap(),
        recipient: UserId::new("user-notify").unwrap(),
        kind,
        order_id: Some(OrderId::new("ord-notify").unwrap()),
        sku: None,
    }
}

/// Sending the same notification twice under one key succeeds both times.
pub async fn resend_with_same_key_is_ok<N: Notifier + ?Sized>(notifier: &N) {
    let n = note("note-a", NotificationKind::OrderConfirmed);
    notifier.send(&n).await.unwrap();
    notifier.send(&n).await.unwrap();
}

/// A key reused for different content is `Conflict`.
pub async fn key_reuse_for_other_content_conflicts<N: Notifier + ?Sized>(notifier: &N) {
    notifier
        .send(&note("note-b", NotificationKind::OrderShipped))
        .await
        .unwrap();
    let err = notifier
        .send(&note("note-b", NotificationKind::OrderDelivered))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

/// Runs the [`Notifier`] conformance suite against `$make`.
#[macro_export]
macro_rules! notifier_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            resend_with_same_key_is_ok => $crate::testkit::notifier::resend_with_same_key_is_ok,
            key_reuse_for_other_content_conflicts => $crate::testkit::notifier::key_reuse_for_other_content_conflicts,
        );
    };
}
