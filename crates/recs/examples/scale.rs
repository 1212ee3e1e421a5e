//! Scale figures: the co-purchase build on 1 M generated orders (20,000 SKUs, 1 to 8 items
//! each, popularity skewed, 200,000 customers with 5 orders each), and a blended top 10 for a
//! product page.
//!
//! Run: `cargo run --release -p recs --example scale --features progress`.

#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::disallowed_methods,
    reason = "a measurement program that prints its figures and times its runs"
)]

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use chrono::{DateTime, TimeDelta};
use commerce_core::Sku;
use recs::Scored;
use recs::blend::{BlendConfig, Layer, ProductFacts, blend};
use recs::copurchase::{Basket, CoCounts, CoPurchase, CoPurchaseConfig};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / 9_007_199_254_740_992.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items = 20_000usize;
    let orders = 1_000_000usize;
    let skus: Vec<Sku> = (0..items)
        .map(|i| Sku::new(format!("SKU-{i}")))
        .collect::<Result<_, _>>()?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let start = Instant::now();
    let baskets: Vec<Basket> = (0..orders)
        .map(|n| {
            let size = 1 + (rng.next() % 8) as usize;
            // Popularity skew: index = items · u³ favours low indices.
            let picks: Vec<Sku> = (0..size)
                .map(|_| {
                    let u = rng.unit();
                    skus[((items as f64) * u * u * u) as usize % items].clone()
                })
                .collect();
            Basket::new(DateTime::UNIX_EPOCH + TimeDelta::seconds(n as i64), picks).and_then(|b| {
                Ok(b.bought_by(commerce_core::UserId::new(format!("c{}", n % 200_000))?))
            })
        })
        .collect::<Result<_, _>>()?;
    println!("generated {orders} orders in {:.2?}", start.elapsed());

    let start = Instant::now();
    let counts = CoCounts::build(&baskets, CoPurchaseConfig::default())?;
    let counted = start.elapsed();
    let lists = counts.all_lists(1)?;
    println!(
        "per-order co-purchase build: {} items, counts {:.2?}, top-K lists {:.2?} (total {:.2?}), threads {}",
        counts.items_len(),
        counted,
        start.elapsed() - counted,
        start.elapsed(),
        rayon::current_num_threads()
    );

    let start = Instant::now();
    let model = CoPurchase::build(&baskets, CoPurchaseConfig::default())?;
    let built = start.elapsed();
    let all = model.all_lists(1)?;
    let total = start.elapsed();
    // A fingerprint of every list (items and f32 score bits), to check that a faster build
    // gives the same lists.
    let mut sorted: Vec<_> = all.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = std::hash::DefaultHasher::new();
    for (k, l) in &sorted {
        k.hash(&mut h);
        for s in l.items() {
            s.sku.hash(&mut h);
            s.score.to_bits().hash(&mut h);
        }
    }
    println!(
        "default model (orders + 200,000 customers): build {:.2?}, {} lists {:.2?} (total {:.2?}), fingerprint {:016x}",
        built,
        all.len(),
        total - built,
        total,
        h.finish()
    );

    // A product page: 20 co-purchase and 20 personalized candidates, 10 recently viewed.
    let facts: HashMap<Sku, ProductFacts> = skus
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                s.clone(),
                ProductFacts {
                    sku: s.clone(),
                    brand: Some(format!("brand-{}", i % 50)),
                    category: Some(format!("cat-{}", i % 20)),
                    in_stock: i % 13 != 0,
                    retired: false,
                    margin_bps: Some((i % 5_000) as i32),
                    stock_pressure_bps: (i % 10_000) as u16,
                },
            )
        })
        .collect();
    let co: Vec<Scored> = lists
        .iter()
        .find(|(_, l)| l.len() == 20)
        .map(|(_, l)| l.items().to_vec())
        .unwrap_or_default();
    let personal: Vec<Scored> = (100..120)
        .map(|i| Scored::new(skus[i].clone(), 1.0 / i as f32))
        .collect();
    let recent: Vec<Scored> = (200..210)
        .map(|i| Scored::new(skus[i].clone(), i as f32))
        .collect();
    let exclude: HashSet<Sku> = skus[..3].iter().cloned().collect();
    let config = BlendConfig::default();
    let sources = [
        (Layer::CoPurchase, &co[..]),
        (Layer::Personalized, &personal[..]),
        (Layer::RecentlyViewed, &recent[..]),
    ];
    let runs = 100_000u32;
    let mut shown = 0;
    let start = Instant::now();
    for _ in 0..runs {
        shown += blend(&sources, &facts, &exclude, &config)?.len();
    }
    println!(
        "blended top 10 of {} candidates: {:.2?} per page ({} shown on average)",
        co.len() + personal.len() + recent.len(),
        start.elapsed() / runs,
        shown / runs as usize
    );

    // The whole product page: the two lists and the session's views read from the in-memory
    // stores, then blended.
    use recs::blend::{PageRequest, product_page};
    use recs::{
        InMemoryRecentlyViewed, InMemoryTopKStore, ListKey, RecentlyViewedStore, TopKList,
        TopKStore, Viewed,
    };
    let store = InMemoryTopKStore::new();
    let views = InMemoryRecentlyViewed::new(20);
    let anchor = lists
        .iter()
        .find(|(_, l)| l.len() == 20)
        .map(|(k, _)| k.clone())
        .ok_or("no full list")?;
    let ListKey::Item(anchor) = anchor else {
        return Err("not an item".into());
    };
    let user = commerce_core::UserId::new("ada")?;
    let session = commerce_core::SessionId::new("s-1")?;
    futures::executor::block_on(async {
        store
            .put(&[
                (ListKey::Item(anchor.clone()), TopKList::new(1, co.clone())?),
                (
                    ListKey::User(user.clone()),
                    TopKList::new(1, personal.clone())?,
                ),
            ])
            .await?;
        for (n, s) in recent.iter().enumerate() {
            let at = DateTime::UNIX_EPOCH + TimeDelta::seconds(n as i64);
            views
                .record(
                    &session,
                    &Viewed {
                        sku: s.sku.clone(),
                        at,
                    },
                )
                .await?;
        }
        let request = PageRequest {
            anchor,
            session,
            user: Some(user),
            exclude,
        };
        let start = Instant::now();
        let mut shown = 0;
        for _ in 0..runs {
            shown += product_page(&request, &store, &views, &facts, &config)
                .await?
                .len();
        }
        println!(
            "product page (stores read + blend): {:.2?} per page ({} shown on average)",
            start.elapsed() / runs,
            shown / runs as usize
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
