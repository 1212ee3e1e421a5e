//! Checkout from a real cart: step 1's verification, and reuse of a hold the cart took.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cart_engine::PromotionUsageStore;
use cart_engine::{
    Cart, CartCommand, FlatRateTax, Mutation, PricingConfig, PricingContext, ShippingMethod,
    load_promotions, price,
};
use chrono::TimeDelta;
use commerce_core::testkit::{sample_address, sample_product};
use commerce_core::{
    AuthorizeRequest, CartId, Clock, Currency, IdempotencyKey, LocationId, Money, Payment,
    PaymentGateway, PaymentRef, PortResult, PriceScope, PriceTable, UserId,
};
use futures::executor::block_on;
use inventory::{HoldId, HoldStatus, HoldStore, StockKey, StockLevels, StockLine};
use saga::*;

use crate::world::{World, input, limited_promo};

fn ready_cart(world: &World) -> (Cart, cart_engine::PricedCart, Vec<cart_engine::Promotion>) {
    let now = world.clock.now();
    let mut cart = Cart::new(
        CartId::new("c-1").unwrap(),
        Some(UserId::new("u-1").unwrap()),
        Currency::EUR,
        None,
        now,
    );
    let mut p = sample_product("p-0", world.skus[0].sku.as_str());
    p.prices = PriceTable::single(Money::from_minor(1_000, Currency::EUR));
    let m = Mutation::at(now);
    let _ = cart
        .execute(
            CartCommand::AddLine {
                product: &p,
                quantity: 2,
                gift_wrap: false,
            },
            &m,
        )
        .unwrap();
    let _ = cart
        .execute(CartCommand::SetShippingAddress(sample_address()), &m)
        .unwrap();
    let method = ShippingMethod {
        id: "std".into(),
        name: "Standard".into(),
        price: Money::from_minor(490, Currency::EUR),
    };
    let _ = cart
        .execute(CartCommand::SetShippingMethod(method), &m)
        .unwrap();
    let promos = load_promotions(
        r#"[{"id": "launch", "name": "10 %", "limits": {"total": 5}, "action": {"percent_off": {"percent": "10"}}}]"#,
    )
    .unwrap();
    let config = PricingConfig::default();
    let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO).unwrap();
    let priced = price(
        &cart,
        &promos,
        &PricingContext {
            now,
            customer: None,
            config: &config,
            tax: &tax,
        },
    )
    .unwrap();
    (cart, priced, promos)
}

#[test]
fn a_ready_cart_checks_out_and_an_unacknowledged_price_change_is_refused() {
    let world = World::new(10);
    let (mut cart, priced, promos) = ready_cart(&world);
    let key = IdempotencyKey::new("cart-checkout-1").unwrap();
    let loc = world.skus[0].location.clone();
    let input = CheckoutInput::from_cart(&cart, &priced, &promos, world.clock.now())
        .unwrap()
        .order_id(&key)
        .ship_from(loc.clone())
        .payment_method("tok_visa")
        .build()
        .unwrap();
    assert_eq!(input.claims.len(), 1, "the limited promotion is claimed");
    assert_eq!(
        input.order.user_id.as_str(),
        "u-1",
        "the cart's owner by default"
    );
    assert_eq!(input.order.lines[0].location, loc);
    let outcome = block_on(world.checkout("w", 1).checkout(&input)).unwrap();
    assert!(matches!(outcome, CheckoutOutcome::Confirmed { .. }));
    let order = world.orders.snapshot().pop().unwrap();
    assert_eq!(
        order.totals().grand_total,
        priced.totals.total,
        "the order charges what the cart showed"
    );

    // The catalog price moves; until the shopper acknowledges it, checkout is refused.
    let mut p = sample_product("p-0", world.skus[0].sku.as_str());
    p.prices
        .set(PriceScope::Default, Money::from_minor(1_200, Currency::EUR))
        .unwrap();
    let _ = cart.reprice(|_| Some(&p), world.clock.now());
    // The old pricing is of an older version of the cart: refused, whatever else holds.
    let stale = CheckoutInput::from_cart(&cart, &priced, &promos, world.clock.now());
    assert!(
        matches!(&stale, Err(e) if e.field() == Some("priced") && e.kind() == commerce_core::ErrorKind::Invalid),
        "{stale:?}"
    );
    let config = PricingConfig::default();
    let tax = FlatRateTax::new(rust_decimal::Decimal::ZERO).unwrap();
    let repriced = price(
        &cart,
        &promos,
        &PricingContext::new(world.clock.now(), &config, &tax),
    )
    .unwrap();
    let refused = CheckoutInput::from_cart(&cart, &repriced, &promos, world.clock.now());
    match refused {
        Err(Error::CheckoutRefused(CheckoutFailure::CartNotReady { blockers, .. })) => {
            assert!(
                matches!(&blockers[..], [cart_engine::Blocker::PriceChanged(c)] if c.sku == world.skus[0].sku),
                "{blockers:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hold_taken_by_the_cart_is_pinned_and_committed() {
    let world = World::new(10);
    let now = world.clock.now();
    let line = StockLine {
        key: StockKey::new(world.skus[1].sku.clone(), LocationId::new("wh").unwrap()),
        quantity: 1,
    };
    let cart_hold = HoldId::new("cart-c9").unwrap();
    let _ = block_on(world.stock.reserve(
        &cart_hold,
        std::slice::from_ref(&line),
        now + TimeDelta::minutes(15),
        now,
    ))
    .unwrap();
    let mut input = input(&world, "reuse-1", &[(1, 1)], false, "tok_visa");
    input.cart_hold = Some(cart_hold.clone());
    assert!(matches!(
        block_on(world.checkout("w", 1).checkout(&input)).unwrap(),
        CheckoutOutcome::Confirmed { .. }
    ));
    let hold = |id: &HoldId| block_on(world.stock.hold(id)).unwrap();
    assert_eq!(hold(&cart_hold).unwrap().status, HoldStatus::Committed);
    assert_eq!(
        hold(&HoldId::new("reuse-1:hold").unwrap()),
        None,
        "no second hold"
    );
    let committed = |at| {
        block_on(world.stock.level(&world.skus[1], at))
            .unwrap()
            .committed
    };
    assert_eq!(committed(now), 1);

    // An expired cart hold is replaced by a fresh one.
    let old = HoldId::new("cart-c10").unwrap();
    let _ = block_on(
        world
            .stock
            .reserve(&old, &[line], now + TimeDelta::minutes(1), now),
    )
    .unwrap();
    world.clock.advance(TimeDelta::minutes(2));
    let mut input = crate::world::input(&world, "reuse-2", &[(1, 1)], false, "tok_visa");
    input.cart_hold = Some(old);
    assert!(matches!(
        block_on(world.checkout("w", 1).checkout(&input)).unwrap(),
        CheckoutOutcome::Confirmed { .. }
    ));
    assert_eq!(
        hold(&HoldId::new("reuse-2:hold").unwrap()).unwrap().status,
        HoldStatus::Committed
    );
    assert_eq!(committed(world.clock.now()), 2);
}

#[test]
fn two_checkouts_of_one_cart_never_share_its_hold() {
    let world = World::new(1); // one unit of each SKU
    let now = world.clock.now();
    let line = StockLine {
        key: StockKey::new(world.skus[2].sku.clone(), LocationId::new("wh").unwrap()),
        quantity: 1,
    };
    let cart_hold = HoldId::new("cart-shared").unwrap();
    let _ = block_on(
        world
            .stock
            .reserve(&cart_hold, &[line], now + TimeDelta::minutes(15), now),
    )
    .unwrap();
    let mut first = input(&world, "dbl-1", &[(2, 1)], false, "tok_visa");
    first.cart_hold = Some(cart_hold.clone());
    let mut second = input(&world, "dbl-2", &[(2, 1)], false, "tok_decline");
    second.cart_hold = Some(cart_hold.clone());
    // The declined one runs first: it adopts the hold, fails, and gives back only what it owns.
    let checkout = world.checkout("w", 1);
    assert!(matches!(
        block_on(checkout.checkout(&second)).unwrap(),
        CheckoutOutcome::Failed { .. }
    ));
    assert!(matches!(
        block_on(checkout.checkout(&first)).unwrap(),
        CheckoutOutcome::Confirmed { .. }
    ));
    let level = block_on(world.stock.level(&world.skus[2], world.clock.now())).unwrap();
    assert_eq!(
        (level.committed, level.held, level.available),
        (1, 0, 0),
        "one unit, sold once"
    );
    assert_eq!(
        world
            .payments
            .snapshot()
            .iter()
            .filter(|p| p.captured.is_positive())
            .count(),
        1
    );
}

type Hook = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// A gateway that lets something happen just before the first charge reaches the provider.
struct BeforeCharge {
    inner: Arc<commerce_core::memory::InMemoryPaymentGateway>,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for BeforeCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeCharge")
    }
}

#[async_trait]
impl PaymentGateway for BeforeCharge {
    async fn authorize(&self, request: &AuthorizeRequest) -> PortResult<Payment> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.authorize(request).await
    }
    async fn capture(&self, k: &IdempotencyKey, p: &PaymentRef, a: Money) -> PortResult<Payment> {
        self.inner.capture(k, p, a).await
    }
    async fn refund(&self, k: &IdempotencyKey, p: &PaymentRef, a: Money) -> PortResult<Payment> {
        self.inner.refund(k, p, a).await
    }
    async fn void(&self, k: &IdempotencyKey, p: &PaymentRef) -> PortResult<Payment> {
        self.inner.void(k, p).await
    }
    async fn lookup(&self, k: &IdempotencyKey) -> PortResult<Option<Payment>> {
        self.inner.lookup(k).await
    }
    async fn get(&self, p: &PaymentRef) -> PortResult<Option<Payment>> {
        self.inner.get(p).await
    }
    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>> {
        self.inner.list(after, limit).await
    }
}

#[test]
fn an_order_cancelled_while_the_charge_is_in_flight_is_refunded_not_confirmed() {
    let world = World::new(10);
    let order = input(&world, "cancel-race", &[(0, 2)], true, "tok_visa");
    // The customer cancels while the charge is on its way to the provider.
    let lifecycle = Arc::new(world.lifecycle("customer-service", 5));
    let id = order.order.id.clone();
    let hook: Hook = Box::new(move || {
        Box::pin(async move {
            let applied = lifecycle.cancel(&id, "changed my mind").await.unwrap();
            assert!(matches!(applied, Applied::Moved(_)), "{applied:?}");
        })
    });
    let payments = Arc::new(BeforeCharge {
        inner: world.payments.clone(),
        hook: Mutex::new(Some(hook)),
    });
    let checkout = Checkout::new(
        CheckoutPorts {
            usage: world.usage.clone(),
            stock: world.stock.clone(),
            orders: world.orders.clone(),
            payments,
            notifier: world.notifier.clone(),
        },
        world.journal.clone(),
        world.clock.clone(),
        Arc::new(ClockSleeper(world.clock.clone())),
        "w",
        1,
    );
    let outcome = block_on(checkout.checkout(&order)).unwrap();
    assert!(
        matches!(
            &outcome,
            CheckoutOutcome::Failed {
                reason: CheckoutFailure::OrderCancelled,
                ..
            }
        ),
        "{outcome:?}"
    );
    let paid = world.payments.snapshot();
    assert_eq!(paid.len(), 1, "the charge went through");
    assert!(
        paid.iter().all(|p| p.refunded == p.captured),
        "refunded: {paid:?}"
    );
    let events = world.outbox.snapshot();
    assert!(events.iter().all(|e| e.event_type != "OrderConfirmed"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "OrderCancelled")
            .count(),
        1
    );
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!((level.committed, level.held), (0, 0));
    assert_eq!(
        block_on(world.usage.usage(&limited_promo().promotion_id))
            .unwrap()
            .uses,
        0
    );
}
