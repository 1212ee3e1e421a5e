//! Properties of the blend: scores in range, filters hold, weights respected, caps hold; and
//! the product page composed from the stores.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use commerce_core::{SessionId, Sku, UserId};
use proptest::prelude::*;
use recs::blend::{BlendConfig, Layer, PageRequest, ProductFacts, blend, product_page};
use recs::{
    InMemoryRecentlyViewed, InMemoryTopKStore, ListKey, RecentlyViewedStore, Scored, TopKList,
    TopKStore, Viewed,
};

fn sku(i: u8) -> Sku {
    Sku::new(format!("P{i}")).unwrap()
}

fn facts() -> impl Strategy<Value = HashMap<Sku, ProductFacts>> {
    prop::collection::vec(
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(-5_000i32..10_000),
            0u16..10_000,
            0u8..3,
            0u8..3,
        ),
        20,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(
                |(i, (in_stock, retired, margin_bps, stock_pressure_bps, brand, cat))| {
                    let s = sku(u8::try_from(i).unwrap());
                    (
                        s.clone(),
                        ProductFacts {
                            sku: s,
                            brand: Some(format!("brand-{brand}")),
                            category: Some(format!("cat-{cat}")),
                            in_stock: in_stock || i % 3 == 0,
                            retired: retired && i % 2 == 0,
                            margin_bps,
                            stock_pressure_bps,
                        },
                    )
                },
            )
            .collect()
    })
}

fn list() -> impl Strategy<Value = Vec<Scored>> {
    prop::collection::vec((0u8..24, -100.0f32..100.0), 0..15)
        .prop_map(|v| v.into_iter().map(|(i, s)| Scored::new(sku(i), s)).collect())
}

proptest! {
    #[test]
    fn blend_filters_ranges_weights_and_caps(
        facts in facts(), co in list(), personal in list(),
        excluded in prop::collection::hash_set(0u8..24, 0..5),
        wr in 0.0f32..1.0, wb in 0.0f32..1.0, brand_max in prop::option::of(1usize..3), k in 1usize..12,
    ) {
        prop_assume!(wr + wb > 0.01);
        let exclude: HashSet<Sku> = excluded.into_iter().map(sku).collect();
        let config = BlendConfig {
            relevance_weight: wr, business_weight: wb, brand_max, category_max: Some(2), k,
            ..BlendConfig::default()
        };
        let recs = blend(&[(Layer::CoPurchase, &co[..]), (Layer::Personalized, &personal[..])], &facts, &exclude, &config).unwrap();
        prop_assert!(recs.len() <= k);
        let mut brands: HashMap<String, usize> = HashMap::new();
        let mut cats: HashMap<String, usize> = HashMap::new();
        let mut seen = HashSet::new();
        for r in &recs {
            prop_assert!(seen.insert(r.sku.clone()), "each product once");
            let f = &facts[&r.sku];
            prop_assert!(f.in_stock && !f.retired && !exclude.contains(&r.sku));
            prop_assert!((0.0..=1.0).contains(&r.score));
            let e = &r.explanation;
            for v in [e.relevance, e.business, e.margin, e.stock_pressure] {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            let expected = (wr * e.relevance + wb * e.business) / (wr + wb);
            prop_assert!((r.score - expected).abs() < 1e-6, "weights respected");
            prop_assert!(!e.layers.is_empty());
            *brands.entry(f.brand.clone().unwrap()).or_default() += 1;
            *cats.entry(f.category.clone().unwrap()).or_default() += 1;
        }
        if let Some(m) = brand_max {
            prop_assert!(brands.values().all(|&n| n <= m));
        }
        prop_assert!(cats.values().all(|&n| n <= 2));
        for w in recs.windows(2) {
            prop_assert!(w[0].score >= w[1].score);
        }
    }

    #[test]
    fn relevance_only_ranks_by_relevance_and_business_only_by_business(
        facts in facts(), co in list(),
    ) {
        for (wr, wb) in [(1.0, 0.0), (0.0, 1.0)] {
            let config = BlendConfig {
                relevance_weight: wr, business_weight: wb, brand_max: None, k: 50, ..BlendConfig::default()
            };
            let recs = blend(&[(Layer::CoPurchase, &co[..])], &facts, &HashSet::new(), &config).unwrap();
            for w in recs.windows(2) {
                let key = |r: &recs::blend::Recommendation| if wr > 0.0 { r.explanation.relevance } else { r.explanation.business };
                prop_assert!(key(&w[0]) >= key(&w[1]));
            }
        }
    }
}

#[test]
fn bad_weights_are_refused() {
    let facts = HashMap::new();
    let none = HashSet::new();
    for config in [
        BlendConfig {
            relevance_weight: -1.0,
            ..BlendConfig::default()
        },
        BlendConfig {
            relevance_weight: 0.0,
            business_weight: 0.0,
            ..BlendConfig::default()
        },
        BlendConfig {
            k: 0,
            ..BlendConfig::default()
        },
    ] {
        assert!(blend(&[], &facts, &none, &config).is_err());
    }
}

#[tokio::test]
async fn the_product_page_composes_co_purchase_personal_and_recent() {
    let lists = InMemoryTopKStore::new();
    let views = InMemoryRecentlyViewed::new(10);
    let (user, session) = (UserId::new("ada").unwrap(), SessionId::new("s1").unwrap());
    let co = TopKList::new(
        1,
        vec![
            Scored::new(sku(1), 9.0),
            Scored::new(sku(2), 3.0),
            Scored::new(sku(0), 1.0),
        ],
    )
    .unwrap();
    let personal =
        TopKList::new(1, vec![Scored::new(sku(3), 0.8), Scored::new(sku(1), 0.1)]).unwrap();
    lists
        .put(&[
            (ListKey::Item(sku(0)), co),
            (ListKey::User(user.clone()), personal),
        ])
        .await
        .unwrap();
    views
        .record(
            &session,
            &Viewed {
                sku: sku(4),
                at: DateTime::UNIX_EPOCH,
            },
        )
        .await
        .unwrap();
    views
        .record(
            &session,
            &Viewed {
                sku: sku(0),
                at: DateTime::UNIX_EPOCH,
            },
        )
        .await
        .unwrap();
    let facts: HashMap<Sku, ProductFacts> = (0..6u8)
        .map(|i| {
            (
                sku(i),
                ProductFacts {
                    sku: sku(i),
                    brand: None,
                    category: None,
                    in_stock: true,
                    retired: false,
                    margin_bps: Some(2_000),
                    stock_pressure_bps: 0,
                },
            )
        })
        .collect();
    let request = PageRequest {
        anchor: sku(0),
        session,
        user: Some(user),
        exclude: HashSet::from([sku(2)]),
    };
    let recs = product_page(&request, &lists, &views, &facts, &BlendConfig::default())
        .await
        .unwrap();
    let order: Vec<Sku> = recs.iter().map(|r| r.sku.clone()).collect();
    // P1 is in both lists; P2 is in the cart; P0 is the anchor.
    assert_eq!(order[0], sku(1));
    assert!(!order.contains(&sku(0)) && !order.contains(&sku(2)));
    assert!(order.contains(&sku(3)) && order.contains(&sku(4)));
    let layers: Vec<Layer> = recs[0].explanation.layers.iter().map(|l| l.layer).collect();
    assert_eq!(layers, [Layer::CoPurchase, Layer::Personalized]);
}
