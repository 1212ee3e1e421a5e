//! Properties of the co-purchase layer: scores in range, minimum support holds, lists are
//! bounded and ranked, incremental updates match a rebuild.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta};
use commerce_core::Sku;
use proptest::prelude::*;
use recs::copurchase::{
    Basket, BasketWeight, CoCounts, CoPurchase, CoPurchaseConfig, Decay, Scorer, Trend,
};
use recs::{ListKey, TopKList};

fn baskets() -> impl Strategy<Value = Vec<Basket>> {
    prop::collection::vec((0i64..100, prop::collection::vec(0u8..12, 1..6)), 0..40).prop_map(
        |raw| {
            raw.into_iter()
                .map(|(day, items)| {
                    let at = DateTime::UNIX_EPOCH + TimeDelta::days(day);
                    Basket::new(
                        at,
                        items
                            .into_iter()
                            .map(|i| Sku::new(format!("S{i}")).unwrap()),
                    )
                    .unwrap()
                })
                .collect()
        },
    )
}

fn scorer() -> impl Strategy<Value = Scorer> {
    prop_oneof![
        Just(Scorer::CoCount),
        Just(Scorer::Jaccard),
        Just(Scorer::Lift),
        Just(Scorer::Cosine),
        (0.0f64..=1.0).prop_map(|alpha| Scorer::AsymmetricCosine { alpha }),
    ]
}

fn sorted(mut lists: Vec<(ListKey, TopKList)>) -> HashMap<ListKey, TopKList> {
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    lists.into_iter().collect()
}

proptest! {
    #[test]
    fn scores_are_in_range_and_lists_bounded(
        b in baskets(), scorer in scorer(), min_support in 1u32..4, top_k in 1usize..8,
    ) {
        let config = CoPurchaseConfig { scorer, min_support, top_k, ..Default::default() };
        let counts = CoCounts::build(&b, config).unwrap();
        for (key, list) in counts.all_lists(3).unwrap() {
            let ListKey::Item(anchor) = key else { unreachable!() };
            prop_assert!(list.len() <= top_k);
            prop_assert_eq!(list.generation(), 3);
            for s in list.items() {
                prop_assert!(s.score.is_finite() && s.score >= 0.0);
                if matches!(scorer, Scorer::Jaccard | Scorer::Cosine | Scorer::AsymmetricCosine { .. }) {
                    prop_assert!(s.score <= 1.0 + 1e-5, "{:?} scored {}", scorer, s.score);
                }
                prop_assert!(s.sku != anchor, "an item is not its own partner");
                prop_assert!(counts.pair_count(&anchor, &s.sku) >= u64::from(min_support));
            }
            for w in list.items().windows(2) {
                prop_assert!(w[0].score >= w[1].score);
            }
        }
    }

    #[test]
    fn incremental_update_matches_a_rebuild(
        b in baskets(), split in 0usize..40, scorer in scorer(), min_support in 1u32..3,
    ) {
        let split = split.min(b.len());
        // Uniform weights without decay: every sum is an exact integer, so lists match bit for bit.
        let config = CoPurchaseConfig {
            scorer, min_support, top_k: 5, basket_weight: BasketWeight::Uniform, ..Default::default()
        };
        let full = CoCounts::build(&b, config).unwrap();
        let mut inc = CoCounts::build(&b[..split], config).unwrap();
        let mut lists = sorted(inc.all_lists(1).unwrap());
        let dirty = inc.add(&b[split..]).unwrap();
        for (k, l) in inc.lists_of(&dirty, 2).unwrap() {
            lists.insert(k, l);
        }
        let expected = sorted(full.all_lists(2).unwrap());
        prop_assert_eq!(lists.len(), expected.len());
        for (k, l) in &expected {
            prop_assert_eq!(lists[k].items(), l.items(), "list of {:?}", k);
        }
    }

    #[test]
    fn weighted_incremental_counts_match_a_rebuild_closely(
        b in baskets(), split in 0usize..40,
    ) {
        let split = split.min(b.len());
        let config = CoPurchaseConfig {
            decay: Some(Decay { half_life: TimeDelta::days(30), reference: DateTime::UNIX_EPOCH + TimeDelta::days(100) }),
            ..Default::default()
        };
        let full = CoCounts::build(&b, config).unwrap();
        let mut inc = CoCounts::build(&b[..split], config).unwrap();
        inc.add(&b[split..]).unwrap();
        for anchor in (0..12).map(|i| Sku::new(format!("S{i}")).unwrap()) {
            let mut x = inc.scores(&anchor);
            let mut y = full.scores(&anchor);
            x.sort_by(|a, b| a.sku.cmp(&b.sku));
            y.sort_by(|a, b| a.sku.cmp(&b.sku));
            prop_assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(&y) {
                prop_assert_eq!(&p.sku, &q.sku);
                prop_assert!((p.score - q.score).abs() <= 1e-4 * q.score.abs().max(1.0));
            }
        }
    }
}

#[test]
fn lists_reach_the_store_and_an_older_build_does_not_overwrite() {
    futures::executor::block_on(async {
        let store = recs::InMemoryTopKStore::new();
        let at = DateTime::UNIX_EPOCH;
        let sku = |s: &str| Sku::new(s).unwrap();
        let b = vec![Basket::new(at, [sku("A"), sku("B")]).unwrap()];
        let counts = CoCounts::build(&b, CoPurchaseConfig::default()).unwrap();
        let lists = counts.all_lists(5).unwrap();
        assert_eq!(
            recs::copurchase::write_lists(&store, &lists).await.unwrap(),
            2
        );
        let older = counts.all_lists(4).unwrap();
        assert_eq!(
            recs::copurchase::write_lists(&store, &older).await.unwrap(),
            0
        );
        let got = store.get_now(&ListKey::Item(sku("A"))).unwrap();
        assert_eq!(got.items()[0].sku, sku("B"));
    });
}

fn customer_baskets() -> impl Strategy<Value = Vec<Basket>> {
    prop::collection::vec(
        (
            0i64..100,
            prop::option::of(0u8..5),
            prop::collection::vec(0u8..12, 1..6),
        ),
        0..40,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(day, customer, items)| {
                let at = DateTime::UNIX_EPOCH + TimeDelta::days(day);
                let b = Basket::new(
                    at,
                    items
                        .into_iter()
                        .map(|i| Sku::new(format!("S{i}")).unwrap()),
                )
                .unwrap();
                match customer {
                    Some(c) => b.bought_by(commerce_core::UserId::new(format!("c{c}")).unwrap()),
                    None => b,
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn the_model_with_customers_updates_incrementally_as_a_rebuild(
        b in customer_baskets(), split in 0usize..40, scorer in scorer(), customer_scorer in scorer(),
        customer_weight in 0.0f64..2.0, customer_min_support in 1u32..3,
    ) {
        let split = split.min(b.len());
        let config = CoPurchaseConfig {
            scorer, customer_scorer, customer_weight, customer_min_support, top_k: 4,
            basket_weight: BasketWeight::Uniform, ..Default::default()
        };
        let full = CoPurchase::build(&b, config).unwrap();
        let mut inc = CoPurchase::build(&b[..split], config).unwrap();
        let mut lists = sorted(inc.all_lists(1).unwrap());
        let dirty = inc.add(&b[split..]).unwrap();
        for (k, l) in inc.lists_of(&dirty, 2).unwrap() {
            lists.insert(k, l);
        }
        let expected = sorted(full.all_lists(2).unwrap());
        prop_assert_eq!(lists.len(), expected.len());
        for (k, l) in &expected {
            prop_assert_eq!(lists[k].items(), l.items(), "list of {:?}", k);
            let trend = config.trend.map_or(0.0, |t| t.weight);
            for s in l.items() {
                prop_assert!(s.score >= 0.0 && f64::from(s.score) <= 1.0 + customer_weight + trend + 1e-6);
            }
        }
    }
}

#[test]
fn order_events_update_the_store_once_per_event() {
    use commerce_core::{
        Currency, DomainEvent, EventEnvelope, EventId, EventLine, Money, OrderId, UserId,
    };
    futures::executor::block_on(async {
        let sku = |s: &str| Sku::new(s).unwrap();
        let order = |n: u32, items: &[&str]| {
            EventEnvelope::new(
                EventId::new(format!("e{n}")).unwrap(),
                DateTime::UNIX_EPOCH,
                DomainEvent::OrderConfirmed {
                    order_id: OrderId::new(format!("o{n}")).unwrap(),
                    user_id: UserId::new(format!("u{n}")).unwrap(),
                    grand_total: Money::from_minor(100, Currency::EUR),
                    lines: items
                        .iter()
                        .map(|s| EventLine {
                            sku: sku(s),
                            quantity: 2,
                        })
                        .collect(),
                    settlement: None,
                },
            )
        };
        let store = recs::InMemoryTopKStore::new();
        let mut model = CoPurchase::build(&[], CoPurchaseConfig::default()).unwrap();
        let first = [order(1, &["A", "B"]), order(2, &["B", "C"])];
        assert_eq!(model.apply(&first, &store, 1).await.unwrap(), 3);
        // A redelivery counts nothing and writes nothing.
        assert_eq!(model.apply(&first, &store, 2).await.unwrap(), 0);
        assert_eq!(model.orders().pair_count(&sku("A"), &sku("B")), 1);
        let b = store.get_now(&ListKey::Item(sku("B"))).unwrap();
        let names: Vec<&str> = b.items().iter().map(|s| s.sku.as_str()).collect();
        assert_eq!(names, ["A", "C"]);
    });
}

proptest! {
    /// Per-order lists with a trend (no customers): an incremental update gives the lists a
    /// rebuild gives, whatever order the days arrive in, and a trend only reorders partners.
    #[test]
    fn trending_lists_update_incrementally_as_a_rebuild(
        b in baskets(), split in 0usize..40, scorer in scorer(), days in 1u32..30,
        weight in 0.0f64..2.0,
    ) {
        let split = split.min(b.len());
        let config = CoPurchaseConfig {
            scorer, customer_weight: 0.0, top_k: 4, basket_weight: BasketWeight::Uniform,
            trend: Some(Trend { days, weight }), ..Default::default()
        };
        let full = CoPurchase::build(&b, config).unwrap();
        let mut inc = CoPurchase::build(&b[..split], config).unwrap();
        let mut lists = sorted(inc.all_lists(1).unwrap());
        let dirty = inc.add(&b[split..]).unwrap();
        for (k, l) in inc.lists_of(&dirty, 2).unwrap() {
            lists.insert(k, l);
        }
        let expected = sorted(full.all_lists(2).unwrap());
        prop_assert_eq!(lists.len(), expected.len());
        for (k, l) in &expected {
            prop_assert_eq!(lists[k].items(), l.items(), "list of {:?}", k);
            let ListKey::Item(anchor) = k else { unreachable!() };
            for s in l.items() {
                prop_assert!(full.orders().pair_count(anchor, &s.sku) >= 1, "only partners");
                prop_assert!(s.score >= 0.0 && f64::from(s.score) <= 1.0 + weight + 1e-6);
            }
        }
    }
}

/// Two partners of a mug: tea, bought with it often long ago, and a spoon, bought with it
/// less often but lately everywhere. The trend lifts the spoon from the next day on.
#[test]
fn a_trending_partner_overtakes_from_the_next_day() {
    let sku = |s: &str| Sku::new(s).unwrap();
    let day = |d: i64| DateTime::UNIX_EPOCH + TimeDelta::days(d) + TimeDelta::hours(12);
    let mut b = Vec::new();
    for d in 0..6 {
        b.push(Basket::new(day(d), [sku("MUG"), sku("TEA")]).unwrap());
    }
    for d in 40..43 {
        b.push(Basket::new(day(d), [sku("MUG"), sku("SPOON")]).unwrap());
        b.push(Basket::new(day(d), [sku("SPOON"), sku("FORK")]).unwrap());
    }
    let config = CoPurchaseConfig {
        customer_weight: 0.0,
        basket_weight: BasketWeight::Uniform,
        trend: Some(Trend {
            days: 14,
            weight: 0.7,
        }),
        ..Default::default()
    };
    let names = |m: &CoPurchase| -> Vec<String> {
        let list = m.top_k(&sku("MUG"), 1).unwrap().unwrap();
        list.items()
            .iter()
            .map(|s| s.sku.as_str().to_owned())
            .collect()
    };
    // The newest day is 42: days 28..=41 count, so the spoon's two baskets of days 40 and 41.
    let mut model = CoPurchase::build(&b, config).unwrap();
    assert_eq!(names(&model), ["SPOON", "TEA"]);
    // Without the trend, the co-count alone: tea (6) before the spoon (3).
    let plain = CoPurchase::build(
        &b,
        CoPurchaseConfig {
            trend: None,
            ..config
        },
    )
    .unwrap();
    assert_eq!(names(&plain), ["TEA", "SPOON"]);
    // FORK is trending too but was never bought with the mug: never in its list.
    assert!(!names(&model).contains(&"FORK".to_owned()));

    // A tea order today changes nothing in the window yet: only the lists the pair touches.
    let today = model
        .add(&[Basket::new(day(42), [sku("TEA")]).unwrap()])
        .unwrap();
    assert_eq!(today, [sku("MUG"), sku("TEA")]);
    // The first order of a new day moves the window: every list may change.
    let tomorrow = model
        .add(&[Basket::new(day(43), [sku("FORK")]).unwrap()])
        .unwrap();
    assert_eq!(tomorrow.len(), 4);
    // Thirty quiet days later the spoon's baskets have left the window: tea leads again.
    model
        .add(&[Basket::new(day(80), [sku("FORK")]).unwrap()])
        .unwrap();
    assert_eq!(names(&model), ["TEA", "SPOON"]);
}

#[test]
fn a_trend_out_of_bounds_is_refused() {
    for trend in [
        Trend {
            days: 0,
            weight: 0.5,
        },
        Trend {
            days: 366,
            weight: 0.5,
        },
        Trend {
            days: 14,
            weight: -0.1,
        },
        Trend {
            days: 14,
            weight: 10.5,
        },
        Trend {
            days: 14,
            weight: f64::NAN,
        },
    ] {
        let config = CoPurchaseConfig {
            trend: Some(trend),
            ..Default::default()
        };
        let err = CoPurchase::build(&[], config).unwrap_err();
        assert!(
            matches!(err, recs::Error::Invalid { .. }),
            "{trend:?}: {err}"
        );
    }
}
