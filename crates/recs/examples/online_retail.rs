//! Co-purchase hit rate on UCI Online Retail (the protocol of the recs issue): train on the
//! invoices before 2011-10-01; for every later basket with at least two items seen in training
//! and every such item x in it, the top 10 by score(x, ·) hit if they hold any other item of
//! that basket; HR@10 and P@10 averaged over (basket, x) pairs.
//!
//! Run: `cargo run --release -p recs --example online_retail` (reads
//! `../shared/data/online-retail/online_retail_2011.tsv.gz`, or the path in `ONLINE_RETAIL`;
//! skips with a reason when the file is missing).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::disallowed_methods,
    reason = "a measurement program that prints its figures"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::process::Command;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use commerce_core::Sku;
use recs::copurchase::{Basket, BasketWeight, CoPurchase, CoPurchaseConfig, Decay, Scorer};

const NON_PRODUCTS: [&str; 11] = [
    "POST",
    "DOT",
    "M",
    "BANK CHARGES",
    "AMAZONFEE",
    "C2",
    "S",
    "PADS",
    "B",
    "CRUK",
    "D",
];

/// When, by whom (if known), which items.
type Invoice = (DateTime<Utc>, Option<String>, Vec<Sku>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("ONLINE_RETAIL").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/online-retail/online_retail_2011.tsv.gz"
        )
        .to_owned()
    });
    if !std::path::Path::new(&path).exists() {
        println!("skipped: {path} is missing");
        return Ok(());
    }
    let mut child = Command::new("gzip")
        .args(["-dc", &path])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut text = String::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut text)?;
    child.wait()?;

    // Invoice -> (time, items).
    let mut invoices: BTreeMap<String, Invoice> = BTreeMap::new();
    // (customer, item, time) for the personalized protocol.
    let mut purchases: Vec<(String, Sku, DateTime<Utc>)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [invoice, code, _desc, _qty, date, price, customer, ..] = f[..] else {
            continue;
        };
        if NON_PRODUCTS.contains(&code) {
            continue;
        }
        let Ok(price) = price.parse::<f64>() else {
            continue;
        };
        if price <= 0.0 || invoice.starts_with('C') {
            continue;
        }
        let at = NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S")?.and_utc();
        let Ok(sku) = Sku::new(code.replace(' ', "_")) else {
            continue;
        };
        if !customer.is_empty() {
            purchases.push((customer.to_owned(), sku.clone(), at));
        }
        invoices
            .entry(invoice.to_owned())
            .or_insert_with(|| {
                (
                    at,
                    (!customer.is_empty()).then(|| customer.to_owned()),
                    Vec::new(),
                )
            })
            .2
            .push(sku);
    }
    let cut = NaiveDateTime::parse_from_str("2011-10-01 00:00:00", "%Y-%m-%d %H:%M:%S")?.and_utc();
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut refused = 0;
    for (at, customer, items) in invoices.into_values() {
        // An invoice over the basket bound is refused, as the engine refuses the order.
        let Ok(mut b) = Basket::new(at, items) else {
            refused += 1;
            continue;
        };
        if let Some(c) = customer {
            b = b.bought_by(commerce_core::UserId::new(c)?);
        }
        if at < cut {
            train.push(b)
        } else {
            test.push(b)
        }
    }
    println!(
        "train {} invoices, test {} invoices, {refused} over the basket bound skipped",
        train.len(),
        test.len()
    );

    let decay = |days| {
        Some(Decay {
            half_life: TimeDelta::days(days),
            reference: cut,
        })
    };
    // Uniform baskets unless a case says otherwise, so the scorers compare as in the issue.
    let base = CoPurchaseConfig {
        top_k: 10,
        basket_weight: BasketWeight::Uniform,
        customer_weight: 0.0,
        ..Default::default()
    };
    let cases: Vec<(&str, CoPurchaseConfig)> = vec![
        (
            "co-count",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                ..base
            },
        ),
        (
            "asymmetric cosine a=0.8",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.8 },
                ..base
            },
        ),
        (
            "asymmetric cosine a=0.9",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                ..base
            },
        ),
        (
            "asymmetric cosine a=0.95",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.95 },
                ..base
            },
        ),
        (
            "jaccard",
            CoPurchaseConfig {
                scorer: Scorer::Jaccard,
                ..base
            },
        ),
        (
            "cosine",
            CoPurchaseConfig {
                scorer: Scorer::Cosine,
                ..base
            },
        ),
        (
            "lift, support >= 5",
            CoPurchaseConfig {
                scorer: Scorer::Lift,
                min_support: 5,
                ..base
            },
        ),
        (
            "co-count, inverse-log-size baskets",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseLogSize,
                ..base
            },
        ),
        (
            "asym a=0.9, inverse-log-size",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                basket_weight: BasketWeight::InverseLogSize,
                ..base
            },
        ),
        (
            "co-count, half-life 90 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                decay: decay(90),
                ..base
            },
        ),
        (
            "co-count, half-life 30 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                decay: decay(30),
                ..base
            },
        ),
        (
            "asym a=0.9, half-life 60 d",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                decay: decay(60),
                ..base
            },
        ),
        (
            "asym a=0.9, half-life 60 d, inverse-log-size",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                decay: decay(60),
                basket_weight: BasketWeight::InverseLogSize,
                ..base
            },
        ),
        (
            "co-count, size^-0.5",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.5 },
                ..base
            },
        ),
        (
            "co-count, size^-0.75",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.75 },
                ..base
            },
        ),
        (
            "co-count, size^-1",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.0 },
                ..base
            },
        ),
        (
            "co-count, size^-1.5",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.5 },
                ..base
            },
        ),
        (
            "asym a=0.9, size^-1",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.0 },
                ..base
            },
        ),
        (
            "asym a=0.95, size^-1",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.95 },
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.0 },
                ..base
            },
        ),
        (
            "asym a=0.8, size^-1",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.8 },
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.0 },
                ..base
            },
        ),
        (
            "co-count, size^-1, half-life 180 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 1.0 },
                decay: decay(180),
                ..base
            },
        ),
        (
            "co-count, size^-0.75, half-life 90 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.75 },
                decay: decay(90),
                ..base
            },
        ),
        (
            "co-count, size^-0.75, half-life 180 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.75 },
                decay: decay(180),
                ..base
            },
        ),
        (
            "co-count, size^-0.6, half-life 120 d",
            CoPurchaseConfig {
                scorer: Scorer::CoCount,
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.6 },
                decay: decay(120),
                ..base
            },
        ),
        (
            "asym a=0.95, size^-0.6",
            CoPurchaseConfig {
                scorer: Scorer::AsymmetricCosine { alpha: 0.95 },
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.6 },
                ..base
            },
        ),
        (
            "co-count, size^-0.75 + 0.3 x customer co-count",
            CoPurchaseConfig {
                basket_weight: BasketWeight::DEFAULT,
                customer_weight: 0.3,
                ..base
            },
        ),
        (
            "co-count, size^-0.75 + 1.0 x customer co-count",
            CoPurchaseConfig {
                basket_weight: BasketWeight::DEFAULT,
                customer_weight: 1.0,
                ..base
            },
        ),
        (
            "co-count, size^-0.6 + 0.5 x customer co-count",
            CoPurchaseConfig {
                basket_weight: BasketWeight::InverseSizePower { exponent: 0.6 },
                customer_weight: 0.5,
                ..base
            },
        ),
        (
            "co-count + 0.5 x customer co-count",
            CoPurchaseConfig {
                customer_weight: 0.5,
                ..base
            },
        ),
        (
            "co-count, size^-0.75 + 0.5 x customer asym a=0.9",
            CoPurchaseConfig {
                basket_weight: BasketWeight::DEFAULT,
                customer_weight: 0.5,
                customer_scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
                ..base
            },
        ),
        (
            "default",
            CoPurchaseConfig {
                top_k: 10,
                ..Default::default()
            },
        ),
    ];
    for (name, config) in cases {
        let start = std::time::Instant::now();
        let counts = CoPurchase::build(&train, config)?;
        let lists: HashMap<Sku, Vec<Sku>> = counts
            .all_lists(0)?
            .into_iter()
            .filter_map(|(k, l)| match k {
                recs::ListKey::Item(s) => {
                    Some((s, l.items().iter().map(|x| x.sku.clone()).collect()))
                }
                recs::ListKey::User(_) => None,
            })
            .collect();
        let built = start.elapsed();
        let (mut pairs, mut hits, mut prec) = (0u64, 0u64, 0.0f64);
        for basket in &test {
            let known: Vec<&Sku> = basket
                .items()
                .iter()
                .filter(|s| lists.contains_key(*s))
                .collect();
            if known.len() < 2 {
                continue;
            }
            let all: HashSet<&Sku> = basket.items().iter().collect();
            for x in &known {
                pairs += 1;
                let top = &lists[*x];
                let h = top.iter().filter(|y| *y != *x && all.contains(y)).count();
                if h > 0 {
                    hits += 1;
                }
                prec += h as f64 / 10.0;
            }
        }
        println!(
            "{name:<48} HR@10 {:.4}  P@10 {:.4}  pairs {pairs}  build {:.2?}",
            hits as f64 / pairs as f64,
            prec / pairs as f64,
            built
        );
    }
    personalized(&purchases, cut)?;
    Ok(())
}

/// ALS on customers: train on each customer's distinct items before the cut; test on the
/// items they bought after it that they had not bought before; top 10 excluding train items;
/// MS metric definitions.
fn personalized(
    purchases: &[(String, Sku, DateTime<Utc>)],
    cut: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    use commerce_core::UserId;
    use recs::als::{AlsConfig, AlsModel, Weighting};
    let (before, after) = recs::eval::split_by_time(purchases, |p| p.2, cut);
    let mut lines: BTreeMap<(String, Sku), f32> = BTreeMap::new();
    for (c, s, _) in &before {
        *lines.entry((c.clone(), s.clone())).or_default() += 1.0;
    }
    let owned: HashSet<(String, Sku)> = lines.keys().cloned().collect();
    let known_items: HashSet<&Sku> = lines.keys().map(|k| &k.1).collect();
    let mut test: HashMap<UserId, HashSet<Sku>> = HashMap::new();
    let trained: HashSet<&String> = lines.keys().map(|k| &k.0).collect();
    for (c, s, _) in &after {
        if trained.contains(c)
            && known_items.contains(s)
            && !owned.contains(&(c.clone(), s.clone()))
        {
            test.entry(UserId::new(c)?).or_default().insert(s.clone());
        }
    }
    let binary: Vec<(UserId, Sku, f32)> = lines
        .keys()
        .map(|(c, s)| Ok((UserId::new(c)?, s.clone(), 1.0)))
        .collect::<Result<_, commerce_core::Error>>()?;
    let counts: Vec<(UserId, Sku, f32)> = lines
        .iter()
        .map(|((c, s), n)| Ok((UserId::new(c)?, s.clone(), *n)))
        .collect::<Result<_, commerce_core::Error>>()?;
    println!(
        "personalized: {} train pairs, {} test users, {} test pairs",
        binary.len(),
        test.len(),
        test.values().map(HashSet::len).sum::<usize>()
    );
    let bm25 = Weighting::Bm25 { k1: 100.0, b: 0.8 };
    let cases = [
        (
            "ALS binary f=64 reg 0.05 a=10",
            &binary,
            AlsConfig {
                factors: 64,
                regularization: 0.05,
                alpha: 10.0,
                weighting: Weighting::None,
                ..AlsConfig::default()
            },
        ),
        (
            "ALS BM25(line counts) f=64 reg 0.05 a=1",
            &counts,
            AlsConfig {
                factors: 64,
                regularization: 0.05,
                alpha: 1.0,
                weighting: bm25,
                ..AlsConfig::default()
            },
        ),
        (
            "ALS BM25(line counts) f=32 reg 0.05 a=2",
            &counts,
            AlsConfig {
                factors: 32,
                regularization: 0.05,
                alpha: 2.0,
                weighting: bm25,
                ..AlsConfig::default()
            },
        ),
        ("ALS default", &counts, AlsConfig::default()),
    ];
    for (name, data, config) in cases {
        let start = std::time::Instant::now();
        let model = AlsModel::fit(data, config)?;
        let fit = start.elapsed();
        let ranked: HashMap<UserId, Vec<Sku>> = test
            .keys()
            .filter_map(|u| {
                Some((
                    u.clone(),
                    model
                        .recommend(u, 10)
                        .ok()?
                        .into_iter()
                        .map(|r| r.sku)
                        .collect(),
                ))
            })
            .collect();
        let m = recs::eval::evaluate(&ranked, &test, 10);
        println!(
            "{name:<48} P@10 {:.4}  R@10 {:.4}  nDCG@10 {:.4}  MAP {:.4}  users {}  fit {:.2?}",
            m.precision, m.recall, m.ndcg, m.map, m.users, fit
        );
    }
    Ok(())
}
