//! Offline evaluation: ranking metrics at `k` and seeded train/test splits.
//!
//! Definitions (those of Microsoft Recommenders' `python_evaluation`, so figures compare with
//! its published tables). For one user with the ranked list `L` (first `k` items) and the
//! relevant set `R` (non-empty), `hit(i)` is 1 when the item at rank `i` (1-based) is in `R`:
//!
//! | metric | per user |
//! |---|---|
//! | precision@k | `Σ hit(i) / k` (divided by `k` even when `L` is shorter) |
//! | recall@k | `Σ hit(i) / |R|` |
//! | hit rate@k | 1 if any `hit(i)`, else 0 |
//! | NDCG@k | `DCG / IDCG`, `DCG = Σ hit(i) / log2(1 + i)`, IDCG the DCG of `min(k, |R|)` hits |
//! | MAP@k | `Σ_{i: hit(i)} (hits in ranks 1..=i) / i`, divided by `|R|` (MS `map`, not `map_at_k`) |
//!
//! [`evaluate`] averages each over the users that have both relevant items and a list.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::als::SplitMix;

/// Mean ranking metrics over users.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// The cut-off.
    pub k: usize,
    /// Users averaged over.
    pub users: usize,
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Mean average precision (MS `map`).
    pub map: f64,
    /// Share of users with at least one hit.
    pub hit_rate: f64,
}

/// The metrics of one ranked list against one relevant set (all 0 for an empty set or
/// `k` 0).
///
/// ```
/// use std::collections::HashSet;
/// use recs::eval::user_metrics;
/// let relevant: HashSet<&str> = ["a", "c"].into_iter().collect();
/// let m = user_metrics(&["a", "b", "c"], &relevant, 3);
/// assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(m.recall, 1.0);
/// assert_eq!(m.hit_rate, 1.0);
/// assert!((m.map - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
/// let idcg = 1.0 + 1.0 / 3f64.log2();
/// assert!((m.ndcg - (1.0 + 1.0 / 4f64.log2()) / idcg).abs() < 1e-12);
/// ```
#[allow(clippy::cast_precision_loss, reason = "list lengths far below 2^53")]
pub fn user_metrics<I: Eq + Hash>(ranked: &[I], relevant: &HashSet<I>, k: usize) -> Metrics {
    if relevant.is_empty() || k == 0 {
        return Metrics {
            k,
            ..Metrics::default()
        };
    }
    let mut hits = 0usize;
    let mut dcg = 0.0;
    let mut ap = 0.0;
    for (i, item) in ranked.iter().take(k).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            let rank = (i + 1) as f64;
            dcg += 1.0 / (1.0 + rank).log2();
            ap += hits as f64 / rank;
        }
    }
    let ideal = k.min(relevant.len());
    let idcg: f64 = (1..=ideal).map(|r| 1.0 / (1.0 + r as f64).log2()).sum();
    let r = relevant.len() as f64;
    Metrics {
        k,
        users: 1,
        precision: hits as f64 / k as f64,
        recall: hits as f64 / r,
        ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
        map: ap / r,
        hit_rate: if hits > 0 { 1.0 } else { 0.0 },
    }
}

/// Mean metrics over the users present in both `ranked` and `relevant` with a non-empty
/// relevant set.
#[allow(clippy::cast_precision_loss, reason = "user counts far below 2^53")]
pub fn evaluate<U: Eq + Hash, I: Eq + Hash>(
    ranked: &HashMap<U, Vec<I>>,
    relevant: &HashMap<U, HashSet<I>>,
    k: usize,
) -> Metrics {
    let mut sum = Metrics {
        k,
        ..Metrics::default()
    };
    for (user, rel) in relevant {
        let Some(list) = ranked.get(user) else {
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let m = user_metrics(list, rel, k);
        sum.users += 1;
        sum.precision += m.precision;
        sum.recall += m.recall;
        sum.ndcg += m.ndcg;
        sum.map += m.map;
        sum.hit_rate += m.hit_rate;
    }
    if sum.users > 0 {
        let n = sum.users as f64;
        sum.precision /= n;
        sum.recall /= n;
        sum.ndcg /= n;
        sum.map /= n;
        sum.hit_rate /= n;
    }
    sum
}

/// A seeded per-user random split: each user's interactions are shuffled (by `seed`) and
/// the first `round_half_even(ratio · n)` go to train, the rest to test; the order within
/// each side is the input order. The same seed and input give the same split.
///
/// ```
/// use recs::eval::split_per_user;
/// let rows: Vec<(u32, u32)> = (0..100).map(|i| (i % 4, i)).collect();
/// let (train, test) = split_per_user(&rows, |r| r.0, 0.75, 7);
/// assert_eq!((train.len(), test.len()), (76, 24)); // 25 each: round(18.75) = 19 in train
/// assert_eq!(split_per_user(&rows, |r| r.0, 0.75, 7), (train, test));
/// ```
pub fn split_per_user<T: Clone, U: Eq + Hash>(
    rows: &[T],
    user_of: impl Fn(&T) -> U,
    ratio: f64,
    seed: u64,
) -> (Vec<T>, Vec<T>) {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut rng = SplitMix(seed);
    let draws: Vec<f64> = rows.iter().map(|_| rng.next_f64()).collect();
    let mut groups: HashMap<U, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        groups.entry(user_of(row)).or_default().push(i);
    }
    let mut in_train = vec![false; rows.len()];
    for idx in groups.values_mut() {
        idx.sort_by(|&a, &b| {
            let (da, db) = (
                draws.get(a).copied().unwrap_or(0.0),
                draws.get(b).copied().unwrap_or(0.0),
            );
            da.total_cmp(&db).then(a.cmp(&b))
        });
        #[allow(clippy::cast_precision_loss, reason = "group sizes far below 2^53")]
        let want = (ratio * idx.len() as f64).round_ties_even();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative count no larger than the group"
        )]
        let want = want as usize;
        for &i in idx.iter().take(want) {
            if let Some(t) = in_train.get_mut(i) {
                *t = true;
            }
        }
    }
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (row, t) in rows.iter().zip(in_train) {
        if t {
            train.push(row.clone())
        } else {
            test.push(row.clone())
        }
    }
    (train, test)
}

/// A split by time: rows strictly before `cut` train, the rest test, each in input order.
///
/// ```
/// use recs::eval::split_by_time;
/// let (train, test) = split_by_time(&[1, 5, 3, 9], |t| *t, 5);
/// assert_eq!((train, test), (vec![1, 3], vec![5, 9]));
/// ```
pub fn split_by_time<T: Clone, K: Ord>(
    rows: &[T],
    time_of: impl Fn(&T) -> K,
    cut: K,
) -> (Vec<T>, Vec<T>) {
    rows.iter().cloned().partition(|r| time_of(r) < cut)
}
