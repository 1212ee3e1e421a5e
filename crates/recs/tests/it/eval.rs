//! Properties of the evaluation metrics and splits.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use recs::eval::{evaluate, split_by_time, split_per_user, user_metrics};

proptest! {
    #[test]
    fn metrics_are_in_range_and_consistent(
        ranked in prop::collection::vec(0u8..30, 0..20),
        relevant in prop::collection::hash_set(0u8..30, 0..10),
        k in 0usize..15,
    ) {
        let mut seen = HashSet::new();
        let ranked: Vec<u8> = ranked.into_iter().filter(|x| seen.insert(*x)).collect();
        let m = user_metrics(&ranked, &relevant, k);
        for v in [m.precision, m.recall, m.ndcg, m.map, m.hit_rate] {
            prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{m:?}");
        }
        prop_assert_eq!(m.hit_rate > 0.0, m.precision > 0.0);
        prop_assert_eq!(m.hit_rate > 0.0, m.ndcg > 0.0);
        // A perfect list scores 1 on NDCG and hit rate.
        if !relevant.is_empty() && k > 0 {
            let perfect: Vec<u8> = relevant.iter().copied().collect();
            let p = user_metrics(&perfect, &relevant, k);
            prop_assert!((p.ndcg - 1.0).abs() < 1e-9);
            prop_assert_eq!(p.hit_rate, 1.0);
            prop_assert!(p.ndcg >= m.ndcg - 1e-9);
        }
    }

    #[test]
    fn per_user_split_keeps_every_row_once_and_the_ratio_per_user(
        rows in prop::collection::vec((0u8..6, any::<u32>()), 0..100), seed in any::<u64>(),
    ) {
        let (train, test) = split_per_user(&rows, |r| r.0, 0.75, seed);
        prop_assert_eq!(train.len() + test.len(), rows.len());
        for u in 0..6u8 {
            let n = rows.iter().filter(|r| r.0 == u).count();
            let t = train.iter().filter(|r| r.0 == u).count();
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let want = (0.75 * n as f64).round_ties_even() as usize;
            prop_assert_eq!(t, want);
        }
        prop_assert_eq!(split_per_user(&rows, |r| r.0, 0.75, seed), (train, test));
    }

    #[test]
    fn time_split_puts_everything_before_the_cut_in_train(rows in prop::collection::vec(any::<i32>(), 0..50), cut in any::<i32>()) {
        let (train, test) = split_by_time(&rows, |t| *t, cut);
        prop_assert!(train.iter().all(|t| *t < cut) && test.iter().all(|t| *t >= cut));
        prop_assert_eq!(train.len() + test.len(), rows.len());
    }
}

#[test]
fn evaluate_averages_over_users_with_both_a_list_and_relevant_items() {
    let ranked: HashMap<&str, Vec<u8>> = [("a", vec![1, 2]), ("b", vec![3, 4]), ("c", vec![5])]
        .into_iter()
        .collect();
    let relevant: HashMap<&str, HashSet<u8>> = [
        ("a", HashSet::from([1])),
        ("b", HashSet::from([9])),
        ("d", HashSet::from([1])),
        ("c", HashSet::new()),
    ]
    .into_iter()
    .collect();
    let m = evaluate(&ranked, &relevant, 2);
    assert_eq!(m.users, 2);
    assert_eq!(m.hit_rate, 0.5);
    assert_eq!(m.precision, 0.25);
    assert_eq!(m.recall, 0.5);
}
