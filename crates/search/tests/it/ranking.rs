//! Business signals reorder near-ties, never bury a clearly better match; learned re-ranking.

use std::sync::Arc;

use proptest::prelude::*;
use search::{BusinessWeights, LinearModel};

use crate::fixtures::{config, ids, index, index_with, product, search};

#[test]
fn business_signals_break_near_ties() {
    let idx = index(&[
        product("plain", "Desk lamp"),
        product("popular", "Desk lamp").popularity(5_000),
    ]);
    assert_eq!(ids(&search(&idx, "desk lamp")), ["popular", "plain"]);
    let idx = index(&[
        product("plain", "Desk lamp"),
        product("sponsored", "Desk lamp").sponsored(),
    ]);
    assert_eq!(ids(&search(&idx, "desk lamp")), ["sponsored", "plain"]);
}

#[test]
fn business_signals_never_bury_a_clearly_better_match() {
    let idx = index(&[
        product(
            "weak",
            "Lamp shade replacement fabric cover for floor and table fittings",
        )
        .popularity(10_000_000)
        .sponsored(),
        product("strong", "Lamp").desc("lamp lamp"),
    ]);
    let r = search(&idx, "lamp ");
    let (strong, weak) = (&r.hits[0], &r.hits[1]);
    assert_eq!(strong.product_id.as_str(), "strong");
    let cap = BusinessWeights::default().cap;
    #[allow(clippy::float_arithmetic)]
    let bound = (1.0 + cap) / (1.0 - cap);
    assert!(
        f64::from(strong.relevance) > bound * f64::from(weak.relevance),
        "the test needs a clear gap: {} vs {}",
        strong.relevance,
        weak.relevance
    );
}

#[test]
fn a_learned_reranker_reorders_within_a_tier_only() {
    let mut cfg = config();
    cfg.reranker = Some(Arc::new(
        LinearModel::from_json(r#"{"bias":0,"weights":{"relevance":0.01,"rating":1.0}}"#).unwrap(),
    ));
    let idx = index_with(
        cfg,
        &[
            product("low", "Oak table").rating(200),
            product("high", "Oak table").rating(480),
            product("typo", "Oak tabel").rating(500),
        ],
    );
    assert_eq!(ids(&search(&idx, "oak table ")), ["high", "low", "typo"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the signals, no hit sits below one whose relevance it beats by more than the
    /// cap allows.
    #[test]
    fn the_business_blend_is_bounded(
        docs in prop::collection::vec((1usize..6, 0usize..12, 0u64..1_000_000, any::<bool>()), 2..25)
    ) {
        let items: Vec<_> = docs
            .iter()
            .enumerate()
            .map(|(i, (hits, filler, pop, sponsored))| {
                let mut title = vec!["lamp"; *hits];
                title.extend(std::iter::repeat_n("oak", *filler));
                let p = product(&format!("p{i}"), &title.join(" ")).popularity(*pop);
                if *sponsored { p.sponsored() } else { p }
            })
            .collect();
        let idx = index(&items);
        let mut req = search::SearchRequest::new("lamp ", commerce_core::Currency::EUR);
        req.limit = 100;
        let r = idx.search(&req).unwrap();
        prop_assert_eq!(r.hits.len(), items.len());
        let cap = BusinessWeights::default().cap;
        #[allow(clippy::float_arithmetic)]
        let bound = (1.0 + cap) / (1.0 - cap) * 1.0001;
        for (i, above) in r.hits.iter().enumerate() {
            for below in &r.hits[i + 1..] {
                #[allow(clippy::float_arithmetic)]
                let buried = f64::from(below.relevance) > bound * f64::from(above.relevance);
                prop_assert!(!buried, "{} ({}) above {} ({})", above.product_id, above.relevance, below.product_id, below.relevance);
            }
        }
    }
}

#[test]
fn a_model_trained_on_logged_features_reorders_to_what_shoppers_bought() {
    use search::{Interaction, LogEvent, TrainConfig, train_linear};
    // Equal text; popularity runs against rating, and shoppers buy the best rated.
    let items: Vec<_> = (0..6u64)
        .map(|i| {
            product(&format!("p{i}"), "Walnut side table")
                .rating(200 + i64::try_from(i).unwrap() * 50)
                .popularity(10_000 - i * 1_500)
        })
        .collect();
    let plain = index(&items);
    let shown = search(&plain, "walnut table");
    assert_eq!(
        shown.hits[0].product_id.as_str(),
        "p0",
        "business order: most popular first"
    );

    // Feature logging: each impression carries the features the ranker saw.
    let mut log = Vec::new();
    for q in 0..20 {
        for hit in &shown.hits {
            log.push(LogEvent {
                query_id: format!("q{q}"),
                product_id: hit.product_id.as_str().to_owned(),
                interaction: Interaction::Impression,
                features: hit.features,
            });
        }
        let bought = ["p5", "p4"][q % 2];
        log.push(LogEvent {
            query_id: format!("q{q}"),
            product_id: bought.to_owned(),
            interaction: Interaction::Purchase,
            features: None,
        });
    }
    let model = train_linear(&log, TrainConfig::default()).unwrap();
    let mut cfg = config();
    cfg.reranker = Some(Arc::new(model));
    let learned = index_with(cfg, &items);
    assert_eq!(ids(&search(&learned, "walnut table"))[..2], ["p5", "p4"]);
}
