//! Properties of the ALS layer: owned items never come back, lists are bounded, ranked and
//! finite, a saved model answers as the original.

use std::collections::HashSet;

use commerce_core::{Sku, UserId};
use proptest::prelude::*;
use recs::als::{AlsConfig, AlsModel, Weighting};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn recommendations_exclude_owned_items_and_are_ranked(
        raw in prop::collection::vec((0u8..8, 0u8..15, 1u8..4), 1..60),
        k in 0usize..20,
        bm25 in any::<bool>(),
    ) {
        let data: Vec<(UserId, Sku, f32)> = raw.iter()
            .map(|&(u, i, v)| (UserId::new(format!("u{u}")).unwrap(), Sku::new(format!("s{i}")).unwrap(), f32::from(v)))
            .collect();
        let weighting = if bm25 { Weighting::Bm25 { k1: 100.0, b: 0.8 } } else { Weighting::None };
        let config = AlsConfig { factors: 3, iterations: 3, weighting, ..AlsConfig::default() };
        let model = AlsModel::fit(&data, config).unwrap();
        for user in model.users().to_vec() {
            let owned: HashSet<&Sku> = data.iter().filter(|x| x.0 == user).map(|x| &x.1).collect();
            let recs = model.recommend(&user, k).unwrap();
            prop_assert!(recs.len() <= k);
            prop_assert_eq!(recs.len(), k.min(model.items().len() - owned.len()));
            for r in &recs {
                prop_assert!(!owned.contains(&r.sku));
                prop_assert!(r.score.is_finite());
            }
            for w in recs.windows(2) {
                prop_assert!(w[0].score >= w[1].score);
            }
        }
        let back = AlsModel::load(model.save()).unwrap();
        prop_assert_eq!(back, model);
    }
}
