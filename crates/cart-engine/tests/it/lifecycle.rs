//! Merge at login and the abandoned-cart sweep, end to end on the in-memory ports.

use cart_engine::*;
use chrono::TimeDelta;
use commerce_core::memory::InMemoryEventLog;
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{CartId, Currency, DomainEvent, EventLog, Product, UserId};

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
    let outbox = InMemoryEventLog::new();
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
        store.insert(c).await.unwrap();
    }
    let fresh = Cart::new(
        CartId::new("c-fresh").unwrap(),
        None,
        Currency::EUR,
        None,
        t0() + TimeDelta::days(20),
    );
    store.insert(fresh).await.unwrap();

    let day_29 = t0() + TimeDelta::days(29);
    assert!(
        sweep_abandoned(&store, &outbox, day_29, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let day_31 = t0() + TimeDelta::days(31);
    // Two sweeps (as two workers would) and a later one: each cart is reported once.
    let first = sweep_abandoned(&store, &outbox, day_31, 3).await.unwrap();
    let second = sweep_abandoned(&store, &outbox, day_31, 3).await.unwrap();
    let third = sweep_abandoned(&store, &outbox, day_31 + TimeDelta::days(60), 100)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (3, 2, 1));
    let events = outbox.read(0, 100).await.unwrap();
    let mut carts: Vec<String> = events
        .iter()
        .map(|(_, e)| match &e.event {
            DomainEvent::CartAbandoned { cart_id, .. } => cart_id.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    carts.sort();
    assert_eq!(carts, ["c-0", "c-1", "c-2", "c-3", "c-4", "c-fresh"]);
    // Re-running changes nothing.
    assert!(
        sweep_abandoned(&store, &outbox, day_31 + TimeDelta::days(60), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox.end_offset().await.unwrap(), 6);
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
