//! Merge at login and the abandoned-cart sweep, end to end on the in-memory ports.

use cart_engine::*;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{
    CartId, CasOutcome, Currency, DomainEvent, EventEnvelope, EventLog, PortResult, Product, UserId,
};

fn guest() -> Cart {
    Cart::new(
        CartId::new("guest").unwrap(),
        None,
        Currency::EUR,
        None,
        t0(),
    )
}

fn user() -> Cart {
    Cart::new(
        CartId::new("user-cart").unwrap(),
        Some(UserId::new("u-1").unwrap()),
        Currency::EUR,
        None,
        t0(),
    )
}

fn add(c: &mut Cart, p: &Product, qty: u32) {
    let _ = c
        .execute(
            CartCommand::AddLine {
                product: p,
                quantity: qty,
                gift_wrap: false,
            },
            &Mutation::at(t0()),
        )
        .unwrap();
}

fn quantities(c: &Cart) -> Vec<(String, u32)> {
    c.lines()
        .iter()
        .map(|l| (l.sku.to_string(), l.quantity))
        .collect()
}

#[test]
fn each_strategy_and_merging_twice_changes_nothing() {
    let tee = sample_product("p-1", "TEE");
    let mug = sample_product("p-2", "MUG");
    let cases = [
        (MergeStrategy::SumCapped, 5),
        (MergeStrategy::TakeLarger, 3),
        (MergeStrategy::GuestReplaces, 2),
    ];
    for (strategy, tee_qty) in cases {
        let (mut g, mut u) = (guest(), user());
        add(&mut g, &tee, 2);
        add(&mut g, &mug, 1);
        let _ = g
            .execute(CartCommand::ApplyCode("GUEST".into()), &Mutation::at(t0()))
            .unwrap();
        let _ = g
            .execute(
                CartCommand::SetShippingAddress(sample_address()),
                &Mutation::at(t0()),
            )
            .unwrap();
        add(&mut u, &tee, 3);
        let report = merge(&mut u, &mut g, strategy, t0()).unwrap();
        assert!(report.merged);
        assert_eq!(
            quantities(&u),
            [("TEE".to_owned(), tee_qty), ("MUG".to_owned(), 1)],
            "{strategy:?}"
        );
        assert_eq!(u.codes()[0].as_str(), "GUEST");
        assert!(u.shipping_address().is_some());
        assert_eq!(
            *g.status(),
            CartStatus::Merged {
                into: u.id().clone()
            }
        );
        let (u1, g1) = (u.clone(), g.clone());
        assert!(!merge(&mut u, &mut g, strategy, t0()).unwrap().merged);
        assert_eq!((u, g), (u1, g1), "merging twice changes nothing");
    }
}

#[test]
fn merge_caps_quantities_and_refuses_nonsense() {
    let tee = sample_product("p-1", "TEE");
    let (mut g, mut u) = (guest(), user());
    add(&mut g, &tee, 600);
    add(&mut u, &tee, 600);
    let report = merge(&mut u, &mut g, MergeStrategy::SumCapped, t0()).unwrap();
    assert_eq!(report.capped, vec![tee.sku.clone()]);
    assert_eq!(u.lines()[0].quantity, limits::QUANTITY_PER_LINE_MAX);

    let mut other_user = user();
    let mut u2 = user();
    assert!(matches!(
        merge(&mut u2, &mut other_user, MergeStrategy::default(), t0()),
        Err(Error::Merge(_))
    ));
    let mut usd = Cart::new(CartId::new("usd").unwrap(), None, Currency::USD, None, t0());
    let before = u2.clone();
    assert!(matches!(
        merge(&mut u2, &mut usd, MergeStrategy::default(), t0()),
        Err(Error::Merge(_))
    ));
    assert_eq!(u2, before);
}

#[tokio::test]
async fn the_sweep_emits_one_abandoned_event_per_cart() {
    let store = InMemoryCartStore::new();
    let outbox = store.outbox().clone();
    let tee = sample_product("p-1", "TEE");
    for i in 0..5 {
        let mut c = Cart::new(
            CartId::new(format!("c-{i}")).unwrap(),
            None,
            Currency::EUR,
            None,
            t0(),
        );
        add(&mut c, &tee, 1);
        store.insert(c, &[]).await.unwrap();
    }
    let fresh = Cart::new(
        CartId::new("c-fresh").unwrap(),
        None,
        Currency::EUR,
        None,
        t0() + TimeDelta::days(20),
    );
    store.insert(fresh, &[]).await.unwrap();

    let day_29 = t0() + TimeDelta::days(29);
    assert!(
        sweep_abandoned(&store, day_29, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let day_31 = t0() + TimeDelta::days(31);
    // Two sweeps (as two workers would) and a later one: each cart is reported once.
    let first = sweep_abandoned(&store, day_31, 3).await.unwrap();
    let second = sweep_abandoned(&store, day_31, 3).await.unwrap();
    let third = sweep_abandoned(&store, day_31 + TimeDelta::days(60), 100)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (3, 2, 1));
    let events = outbox.read(0, 100).await.unwrap();
    let mut carts: Vec<String> = events
        .iter()
        .map(|e| match &e.envelope.event {
            DomainEvent::CartAbandoned { cart_id, .. } => cart_id.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    carts.sort();
    assert_eq!(carts, ["c-0", "c-1", "c-2", "c-3", "c-4", "c-fresh"]);
    // Re-running changes nothing.
    assert!(
        sweep_abandoned(&store, day_31 + TimeDelta::days(60), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox.end_offset().await.unwrap(), 6);
}

/// A store whose carts are touched by their shopper right after the sweep lists them: the
/// sweep's mark then loses its compare-and-set.
#[derive(Debug)]
struct TouchedWhileListed(InMemoryCartStore);

#[async_trait::async_trait]
impl CartStore for TouchedWhileListed {
    async fn insert(&self, cart: Cart, events: &[EventEnvelope]) -> PortResult<()> {
        self.0.insert(cart, events).await
    }
    async fn get(&self, id: &CartId) -> PortResult<Option<Cart>> {
        self.0.get(id).await
    }
    async fn get_active_for_user(&self, user: &UserId) -> PortResult<Option<Cart>> {
        self.0.get_active_for_user(user).await
    }
    async fn update(
        &self,
        cart: Cart,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        self.0.update(cart, expected_version, events).await
    }
    async fn list_expired(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Cart>> {
        let listed = self.0.list_expired(now, limit).await?;
        for cart in &listed {
            let mut touched = cart.clone();
            add(&mut touched, &sample_product("p-2", "MUG"), 1);
            let _ = self.0.update(touched, cart.version(), &[]).await?;
        }
        Ok(listed)
    }
}

#[tokio::test]
async fn a_cart_touched_while_the_sweep_runs_is_neither_marked_nor_announced() {
    let store = TouchedWhileListed(InMemoryCartStore::new());
    let mut c = Cart::new(
        CartId::new("c-busy").unwrap(),
        None,
        Currency::EUR,
        None,
        t0(),
    );
    add(&mut c, &sample_product("p-1", "TEE"), 1);
    store.insert(c, &[]).await.unwrap();
    let later = t0() + TimeDelta::days(31);
    assert!(sweep_abandoned(&store, later, 10).await.unwrap().is_empty());
    assert_eq!(
        store.0.outbox().end_offset().await.unwrap(),
        0,
        "no CartAbandoned for a cart that is still in use"
    );
    let cart = store
        .get(&CartId::new("c-busy").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*cart.status(), CartStatus::Active);
}

#[test]
fn a_checked_out_or_foreign_merged_guest_cart_is_not_merged() {
    let tee = sample_product("p-1", "TEE");
    let mut g = guest();
    add(&mut g, &tee, 2);
    g.mark_checked_out().unwrap();
    let mut u = user();
    let before = (u.clone(), g.clone());
    assert!(matches!(
        merge(&mut u, &mut g, MergeStrategy::default(), t0()),
        Err(Error::Merge(_))
    ));
    assert_eq!((u, g), before, "a refused merge changes nothing");

    let mut g = guest();
    add(&mut g, &tee, 2);
    let mut other = Cart::new(
        CartId::new("other-user-cart").unwrap(),
        Some(UserId::new("u-2").unwrap()),
        Currency::EUR,
        None,
        t0(),
    );
    assert!(
        merge(&mut other, &mut g, MergeStrategy::default(), t0())
            .unwrap()
            .merged
    );
    let mut u = user();
    let before = (u.clone(), g.clone());
    assert!(matches!(
        merge(&mut u, &mut g, MergeStrategy::default(), t0()),
        Err(Error::Merge(_))
    ));
    assert_eq!((u, g), before);
}
