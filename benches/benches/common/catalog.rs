//! The synthetic catalog the search benches index (a deterministic, Zipf-skewed product
//! generator), and the WANDS queries they run. Shared by `search` and `http_load`.

#![allow(dead_code, reason = "each bench uses part of it")]

use std::collections::BTreeMap;

use commerce_core::{
    CategoryPath, Currency, Money, PriceScope, PriceTable, ProductId, ProductProjection,
    ProductSignals, ProductStatus, Sku,
};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use rust_decimal::Decimal;

const WANDS: &str = include_str!("../../data/wands-queries.tsv");

/// Deterministic generator of a skewed catalog.
pub(crate) struct Catalog {
    vocab: Vec<String>,
    brands: Vec<String>,
    categories: Vec<String>,
    colours: Vec<&'static str>,
    materials: Vec<&'static str>,
    words: Zipf<f64>,
    brand_dist: Zipf<f64>,
    category_dist: Zipf<f64>,
    small_dist: Zipf<f64>,
}

fn syllable_word(mut n: usize) -> String {
    const C: &[u8] = b"bcdfghjklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut w = String::new();
    loop {
        w.push(C[n % C.len()] as char);
        n /= C.len();
        w.push(V[n % V.len()] as char);
        n /= V.len();
        if n == 0 {
            break;
        }
    }
    w
}

impl Catalog {
    pub(crate) fn new() -> Catalog {
        let mut rng = SmallRng::seed_from_u64(7);
        // Every word of the WANDS queries and their classes, spread through the vocabulary so
        // that some are frequent and most are rare, plus generated filler words.
        let mut real: Vec<String> = WANDS
            .lines()
            .skip(1)
            .flat_map(|l| l.split('\t').skip(1).take(2).collect::<Vec<_>>())
            .flat_map(|t| {
                t.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| w.len() > 1)
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
            .collect();
        real.sort();
        real.dedup();
        let mut vocab: Vec<String> = (0..12_000).map(|i| syllable_word(i + 300)).collect();
        for (i, w) in real.into_iter().enumerate() {
            let at = (i * 7 + rng.random_range(0..7)) % vocab.len();
            vocab.insert(at, w);
        }
        let brands = (0..2_000)
            .map(|i| format!("Brand{}", syllable_word(i + 50)))
            .collect();
        let top = [
            "Furniture",
            "Decor",
            "Lighting",
            "Bedding",
            "Bath",
            "Kitchen",
            "Outdoor",
            "Rugs",
            "Storage",
            "Kids",
        ];
        let mut categories = Vec::new();
        for t in top {
            for m in 0..10 {
                for l in 0..10 {
                    categories.push(format!(
                        "{t}/{}/{}",
                        syllable_word(m + 400),
                        syllable_word(l + 900)
                    ));
                }
            }
        }
        categories.shuffle(&mut rng);
        Catalog {
            words: Zipf::new(vocab.len() as f64, 1.07).expect("zipf"),
            vocab,
            brand_dist: Zipf::new(brands_len(), 1.1).expect("zipf"),
            brands,
            category_dist: Zipf::new(1_000.0, 1.0).expect("zipf"),
            categories,
            colours: vec![
                "black", "white", "grey", "brown", "blue", "green", "red", "beige", "gold",
                "silver", "pink", "yellow", "orange", "purple", "navy", "teal",
            ],
            materials: vec![
                "wood", "metal", "fabric", "glass", "leather", "plastic", "wool", "cotton", "oak",
                "pine", "steel", "velvet",
            ],
            small_dist: Zipf::new(16.0, 1.2).expect("zipf"),
        }
    }

    fn text(&self, rng: &mut SmallRng, n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let k = self.words.sample(rng) as usize - 1;
            s.push_str(&self.vocab[k.min(self.vocab.len() - 1)]);
        }
        s
    }

    /// Product `i` (the same every time it is asked for).
    pub(crate) fn product(&self, i: u64) -> ProductProjection {
        let mut rng = SmallRng::seed_from_u64(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let pick = |rng: &mut SmallRng, d: &Zipf<f64>, len: usize| {
            (d.sample(rng) as usize - 1).min(len - 1)
        };
        let eur = rng.random_range(199..200_000);
        let mut prices = PriceTable::new(Currency::EUR);
        prices
            .set(PriceScope::Default, Money::from_minor(eur, Currency::EUR))
            .expect("price");
        prices
            .set(
                PriceScope::Default,
                Money::from_minor(eur * 11 / 10, Currency::USD),
            )
            .expect("price");
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "colour".to_owned(),
            self.colours[pick(&mut rng, &self.small_dist, self.colours.len())].to_owned(),
        );
        attributes.insert(
            "material".to_owned(),
            self.materials[pick(&mut rng, &self.small_dist, self.materials.len())].to_owned(),
        );
        let title_len = rng.random_range(3..9);
        let desc_len = rng.random_range(15..40);
        ProductProjection {
            sku: Sku::new(format!("SKU-{i:08}")).expect("sku"),
            product_id: ProductId::new(format!("p{i}")).expect("id"),
            title: self.text(&mut rng, title_len),
            description: self.text(&mut rng, desc_len),
            brand: Some(self.brands[pick(&mut rng, &self.brand_dist, self.brands.len())].clone()),
            category: CategoryPath::parse(
                &self.categories[pick(&mut rng, &self.category_dist, self.categories.len())],
            )
            .expect("category"),
            attributes,
            prices,
            primary_image: None,
            status: ProductStatus::Active,
            version: 1,
            signals: ProductSignals {
                rating: rng
                    .random_bool(0.8)
                    .then(|| Decimal::new(rng.random_range(100..=500), 2)),
                review_count: rng.random_range(0..2_000),
                popularity: (self.words.sample(&mut rng) as u64).pow(2),
                sponsored: rng.random_bool(0.02),
                margin_bps: Some(rng.random_range(-500..6_000)),
                stock_pressure_bps: rng.random_range(0..3_000),
            },
            in_stock: Some(rng.random_bool(0.9)),
        }
    }
}

fn brands_len() -> f64 {
    2_000.0
}

/// The WANDS queries (real shoppers' searches).
pub(crate) fn queries() -> Vec<String> {
    WANDS
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(1))
        .map(str::to_owned)
        .collect()
}
