//! Conformance cases for [`PaymentGateway`].
//!
//! Cases pay with [`APPROVED_TOKEN`] and expect [`DECLINED_TOKEN`] to be declined; an adapter
//! for a real provider maps these to its sandbox's test cards.

use futures::future::join_all;

use crate::{
    AuthorizeRequest, Currency, ErrorKind, IdempotencyKey, Money, OrderId, Payment, PaymentGateway,
    PaymentStatus,
};

/// A method token every conforming sandbox approves.
pub const APPROVED_TOKEN: &str = "tok_visa";
/// A method token every conforming sandbox declines.
pub const DECLINED_TOKEN: &str = crate::memory::DECLINED_TOKEN;

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

fn request(k: &str, order: &str, minor: i64, capture: bool) -> AuthorizeRequest {
    AuthorizeRequest {
        idempotency_key: key(k),
        order_id: OrderId::new(order).unwrap(),
        amount: eur(minor),
        method_token: APPROVED_TOKEN.into(),
        capture,
    }
}

async fn authorized<G: PaymentGateway + ?Sized>(g: &G, k: &str, minor: i64) -> Payment {
    let p = g
        .authorize(&request(k, &format!("order-{k}"), minor, false))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Authorized);
    assert_eq!(p.authorized, eur(minor));
    assert!(p.captured.is_zero());
    p
}

/// Authorize, capture in two parts, refund: the amounts move as asked.
pub async fn authorize_capture_refund<G: PaymentGateway + ?Sized>(g: &G) {
    let p = authorized(g, "pay-a-auth", 10_000).await;
    let p1 = g
        .capture(&key("pay-a-cap-1"), &p.payment_ref, eur(6_000))
        .await
        .unwrap();
    assert_eq!(
        (p1.status, p1.captured),
        (PaymentStatus::Captured, eur(6_000))
    );
    let p2 = g
        .capture(&key("pay-a-cap-2"), &p.payment_ref, eur(4_000))
        .await
        .unwrap();
    assert_eq!(p2.captured, eur(10_000));
    let p3 = g
        .refund(&key("pay-a-ref-1"), &p.payment_ref, eur(2_500))
        .await
        .unwrap();
    assert_eq!(p3.refunded, eur(2_500));
    // `get` answers the payment as it is now; an unknown reference is `None`.
    assert_eq!(g.get(&p.payment_ref).await.unwrap(), Some(p3));
    let unknown = crate::PaymentRef::new("pay-nobody-made").unwrap();
    assert_eq!(g.get(&unknown).await.unwrap(), None);
    let sale = g
        .authorize(&request("pay-a-sale", "order-pay-a-sale", 500, true))
        .await
        .unwrap();
    assert_eq!(
        (sale.status, sale.captured),
        (PaymentStatus::Captured, eur(500))
    );
}

/// Repeating a call with its key returns the first result and moves no more money; an amount
/// is compared by value (10.00 EUR and 10.000 EUR are the same request).
pub async fn same_key_replays_without_moving_money<G: PaymentGateway + ?Sized>(g: &G) {
    let req = request("pay-b-auth", "order-pay-b", 3_000, false);
    let first = g.authorize(&req).await.unwrap();
    assert_eq!(
        g.authorize(&req).await.unwrap().payment_ref,
        first.payment_ref
    );
    let k = key("pay-b-cap");
    g.capture(&k, &first.payment_ref, eur(1_000)).await.unwrap();
    g.capture(&k, &first.payment_ref, eur(1_000)).await.unwrap();
    // The same amount written with more zeros is the same request, not a conflict.
    let ten = Money::new(rust_decimal::Decimal::new(10_000, 3), Currency::EUR);
    g.capture(&k, &first.payment_ref, ten).await.unwrap();
    let k = key("pay-b-ref");
    g.refund(&k, &first.payment_ref, eur(400)).await.unwrap();
    let last = g.refund(&k, &first.payment_ref, eur(400)).await.unwrap();
    assert_eq!((last.captured, last.refunded), (eur(1_000), eur(400)));
    let now = g.lookup(&key("pay-b-auth")).await.unwrap().unwrap();
    assert_eq!((now.captured, now.refunded), (eur(1_000), eur(400)));
}

/// A key reused with different arguments is `Conflict` and changes nothing.
pub async fn same_key_other_request_conflicts<G: PaymentGateway + ?Sized>(g: &G) {
    let first = g
        .authorize(&request("pay-c-auth", "order-pay-c", 3_000, false))
        .await
        .unwrap();
    let other = request("pay-c-auth", "order-pay-c", 3_001, false);
    assert_eq!(
        g.authorize(&other).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let k = key("pay-c-cap");
    g.capture(&k, &first.payment_ref, eur(1_000)).await.unwrap();
    let err = g
        .capture(&k, &first.payment_ref, eur(2_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        g.lookup(&key("pay-c-auth"))
            .await
            .unwrap()
            .unwrap()
            .captured,
        eur(1_000)
    );
}

/// A decline is `Refused`, replays as `Refused`, and `lookup` finds no effect.
pub async fn decline_is_rejected<G: PaymentGateway + ?Sized>(g: &G) {
    let mut req = request("pay-d-auth", "order-pay-d", 3_000, true);
    req.method_token = DECLINED_TOKEN.into();
    assert_eq!(
        g.authorize(&req).await.unwrap_err().kind,
        ErrorKind::Refused
    );
    assert_eq!(
        g.authorize(&req).await.unwrap_err().kind,
        ErrorKind::Refused
    );
    assert_eq!(g.lookup(&req.idempotency_key).await.unwrap(), None);
}

/// captured ≤ authorized and refunded ≤ captured; a breach is `Conflict`.
pub async fn guards_hold<G: PaymentGateway + ?Sized>(g: &G) {
    let p = authorized(g, "pay-e-auth", 1_000).await;
    let over = g
        .capture(&key("pay-e-cap-over"), &p.payment_ref, eur(1_001))
        .await
        .unwrap_err();
    assert_eq!(over.kind, ErrorKind::Conflict);
    let early = g
        .refund(&key("pay-e-ref-early"), &p.payment_ref, eur(1))
        .await
        .unwrap_err();
    assert_eq!(early.kind, ErrorKind::Conflict);
    g.capture(&key("pay-e-cap"), &p.payment_ref, eur(600))
        .await
        .unwrap();
    let over = g
        .refund(&key("pay-e-ref-over"), &p.payment_ref, eur(601))
        .await
        .unwrap_err();
    assert_eq!(over.kind, ErrorKind::Conflict);
    // A refused call stored nothing: the same key may be used for a valid request.
    g.refund(&key("pay-e-ref-over"), &p.payment_ref, eur(600))
        .await
        .unwrap();
}

/// A void works before capture only, and a voided payment captures nothing.
pub async fn void_only_before_capture<G: PaymentGateway + ?Sized>(g: &G) {
    let p = authorized(g, "pay-f-auth", 1_000).await;
    let v = g.void(&key("pay-f-void"), &p.payment_ref).await.unwrap();
    assert_eq!(v.status, PaymentStatus::Voided);
    let err = g
        .capture(&key("pay-f-cap"), &p.payment_ref, eur(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    let q = authorized(g, "pay-f-auth-2", 1_000).await;
    g.capture(&key("pay-f-cap-2"), &q.payment_ref, eur(1_000))
        .await
        .unwrap();
    let err = g
        .void(&key("pay-f-void-2"), &q.payment_ref)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

/// Bad amounts are `Invalid`; unknown payments are `NotFound`.
pub async fn bad_amounts_and_unknown_payments<G: PaymentGateway + ?Sized>(g: &G) {
    let mut req = request("pay-g-auth", "order-pay-g", 0, false);
    assert_eq!(
        g.authorize(&req).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    req.amount = eur(-100);
    assert_eq!(
        g.authorize(&req).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    let p = authorized(g, "pay-g-auth-ok", 1_000).await;
    let usd = Money::from_minor(100, Currency::USD);
    let err = g
        .capture(&key("pay-g-cap"), &p.payment_ref, usd)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    let ghost = crate::PaymentRef::new("pay-does-not-exist").unwrap();
    let err = g
        .capture(&key("pay-g-ghost"), &ghost, eur(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(g.lookup(&key("pay-g-never-used")).await.unwrap(), None);
}

/// Concurrent captures under different keys can never exceed the authorization.
pub async fn concurrent_captures_never_over_capture<G: PaymentGateway + ?Sized>(g: &G) {
    let p = authorized(g, "pay-h-auth", 10_000).await;
    let keys: Vec<_> = (0..8).map(|i| key(&format!("pay-h-cap-{i}"))).collect();
    let results = join_all(
        keys.iter()
            .map(|k| g.capture(k, &p.payment_ref, eur(6_000))),
    )
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let now = g.lookup(&key("pay-h-auth")).await.unwrap().unwrap();
    assert_eq!(now.captured, eur(6_000));
}

/// `list` pages payments in reference order, each once.
pub async fn list_pages_every_payment<G: PaymentGateway + ?Sized>(g: &G) {
    let mine: Vec<_> = [
        authorized(g, "pay-i-1", 100).await,
        authorized(g, "pay-i-2", 200).await,
    ]
    .into_iter()
    .map(|p| p.payment_ref)
    .collect();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = g.list(after.as_ref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(
            after.as_ref().is_none_or(|a| last.payment_ref > *a),
            "not ascending"
        );
        after = Some(last.payment_ref.clone());
        seen.extend(page.into_iter().map(|p| p.payment_ref));
    }
    for r in mine {
        assert_eq!(
            seen.iter().filter(|s| **s == r).count(),
            1,
            "{r} listed once"
        );
    }
}

/// Runs the [`PaymentGateway`] conformance suite against `$make`.
#[macro_export]
macro_rules! payment_gateway_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            authorize_capture_refund => $crate::testkit::payment_gateway::authorize_capture_refund,
            same_key_replays_without_moving_money => $crate::testkit::payment_gateway::same_key_replays_without_moving_money,
            same_key_other_request_conflicts => $crate::testkit::payment_gateway::same_key_other_request_conflicts,
            decline_is_rejected => $crate::testkit::payment_gateway::decline_is_rejected,
            guards_hold => $crate::testkit::payment_gateway::guards_hold,
            void_only_before_capture => $crate::testkit::payment_gateway::void_only_before_capture,
            bad_amounts_and_unknown_payments => $crate::testkit::payment_gateway::bad_amounts_and_unknown_payments,
            concurrent_captures_never_over_capture => $crate::testkit::payment_gateway::concurrent_captures_never_over_capture,
            list_pages_every_payment => $crate::testkit::payment_gateway::list_pages_every_payment,
        );
    };
}
