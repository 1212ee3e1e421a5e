//! Search, filters and facets against a brute-force scan of random catalogs.

use std::collections::{BTreeMap, BTreeSet};

use commerce_core::{CategoryPath, Currency, Money, ProductProjection};
use proptest::prelude::*;
use rust_decimal::Decimal;
use search::{FacetRequest, Filters, PriceRange, SearchIndex, SearchRequest};

use crate::fixtures::product;

/// Low, so that in catalogs of a few dozen products some words are common enough to match
/// exactly only.
const LOOSE_BELOW: u64 = 4;

const WORDS: &[&str] = &[
    "oak", "table", "chair", "lamp", "velvet", "sofa", "garden", "kettle", "blender", "mirror",
    "cushion", "walnut", "shelves", "shelf", "x200", "warden", "settle",
];
const BRANDS: &[&str] = &["Acme", "Bolt", "Cosy", "Dune"];
const CATEGORIES: &[&str] = &[
    "Home",
    "Home/Kitchen",
    "Home/Kitchen/Knives",
    "Home/Living",
    "Garden",
    "Garden/Tools",
];
const COLOURS: &[&str] = &["red", "blue", "green"];
const SIZES: &[&str] = &["s", "m", "l"];

#[derive(Debug, Clone)]
struct Doc {
    title: Vec<usize>,
    description: Vec<usize>,
    brand: Option<usize>,
    category: Option<usize>,
    colour: Option<usize>,
    size: Option<usize>,
    price: Option<i64>,
    rating: Option<i64>,
    in_stock: Option<bool>,
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec(0..WORDS.len(), 1..4),
        prop::collection::vec(0..WORDS.len(), 0..4),
        prop::option::of(0..BRANDS.len()),
        prop::option::of(0..CATEGORIES.len()),
        prop::option::of(0..COLOURS.len()),
        prop::option::of(0..SIZES.len()),
        prop::option::of(1i64..20_000),
        prop::option::of(0i64..=500),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(title, description, brand, category, colour, size, price, rating, in_stock)| Doc {
                title,
                description,
                brand,
                category,
                colour,
                size,
                price,
                rating,
                in_stock,
            },
        )
}

#[derive(Debug, Clone)]
struct Ask {
    words: Vec<(usize, bool)>, // word, with a typo (last letter dropped)
    trailing_space: bool,
    brands: Vec<usize>,
    category: Option<usize>,
    colours: Vec<usize>,
    sizes: Vec<usize>,
    price: Option<(Option<i64>, Option<i64>)>,
    min_rating: Option<i64>, // tenths of a star
    in_stock_only: bool,
    buckets: Vec<i64>,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        prop::collection::vec((0..WORDS.len(), prop::bool::weighted(0.2)), 0..3),
        any::<bool>(),
        prop::collection::vec(0..BRANDS.len(), 0..3),
        prop::option::of(0..CATEGORIES.len()),
        prop::collection::vec(0..COLOURS.len(), 0..2),
        prop::collection::vec(0..SIZES.len(), 0..2),
        prop::option::of((
            prop::option::of(0i64..20_000),
            prop::option::of(0i64..20_000),
        )),
        prop::option::of(0i64..=50),
        any::<bool>(),
        prop::collection::btree_set(1i64..20_000, 0..4),
    )
        .prop_map(
            |(
                words,
                trailing_space,
                brands,
                category,
                colours,
                sizes,
                price,
                min_rating,
                in_stock_only,
                buckets,
            )| Ask {
                words,
                trailing_space,
                brands,
                category,
                colours,
                sizes,
                price,
                min_rating,
                in_stock_only,
                buckets: buckets.into_iter().collect(),
            },
        )
}

fn projection(i: usize, d: &Doc) -> ProductProjection {
    let words = |v: &[usize]| v.iter().map(|w| WORDS[*w]).collect::<Vec<_>>().join(" ");
    let mut p = product(&format!("p{i}"), &words(&d.title))
        .desc(&words(&d.description))
        .stock(d.in_stock);
    if let Some(b) = d.brand {
        p = p.brand(BRANDS[b]);
    }
    if let Some(c) = d.category {
        p = p.category(CATEGORIES[c]);
    }
    if let Some(c) = d.colour {
        p = p.attr("colour", COLOURS[c]);
    }
    if let Some(s) = d.size {
        p = p.attr("size", SIZES[s]);
    }
    let mut p = p.0;
    p.prices = match d.price {
        Some(minor) => commerce_core::PriceTable::single(Money::from_minor(minor, Currency::EUR)),
        // Priced in dollars only: no euro price to filter or bucket on.
        None => commerce_core::PriceTable::single(Money::from_minor(100, Currency::USD)),
    };
    p.signals.rating = d.rating.map(|r| Decimal::new(r, 2));
    p
}

/// Optimal string alignment distance (adjacent transpositions cost one).
fn osa(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn budget(w: &str) -> usize {
    if w.chars().any(|c| c.is_ascii_digit()) {
        0
    } else {
        match w.chars().count() {
            0..=4 => 0,
            5..=8 => 1,
            _ => 2,
        }
    }
}

struct Analyzed {
    exact: BTreeSet<String>,
    loose: BTreeSet<String>, // title and keywords
}

fn analyzed(index: &SearchIndex, p: &ProductProjection) -> Analyzed {
    let mut keywords = p.brand.clone().unwrap_or_default();
    for s in p.category.segments() {
        keywords.push(' ');
        keywords.push_str(s);
    }
    for v in p.attributes.values() {
        keywords.push(' ');
        keywords.push_str(v);
    }
    let title: BTreeSet<String> = index.analyze(&p.title).into_iter().collect();
    let kw: BTreeSet<String> = index.analyze(&keywords).into_iter().collect();
    let desc: BTreeSet<String> = index.analyze(&p.description).into_iter().collect();
    // Typos and prefixes are matched against the words as written (lowercased, unstemmed).
    let raw = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let loose: BTreeSet<String> = raw(&p.title).into_iter().chain(raw(&keywords)).collect();
    Analyzed {
        exact: title.union(&kw).cloned().chain(desc).collect(),
        loose,
    }
}

/// Whether the word may match loosely: found in the titles or keywords of fewer products than
/// the threshold.
fn may_be_loose(all: &[Analyzed], w: &str) -> bool {
    let known = all.iter().filter(|a| a.loose.contains(w)).count();
    (known as u64) < LOOSE_BELOW
}

fn word_matches(a: &Analyzed, w: &str, typed: &str, prefix: bool, loose: bool) -> bool {
    a.exact.contains(w)
        || (loose && budget(typed) > 0 && a.loose.iter().any(|t| osa(t, typed) <= budget(typed)))
        || (loose && prefix && a.loose.iter().any(|t| t.starts_with(typed)))
}

fn query_text(ask: &Ask) -> String {
    let mut words: Vec<String> = ask
        .words
        .iter()
        .map(|(w, typo)| {
            let w = WORDS[*w];
            if *typo {
                w[..w.len() - 1].to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    if ask.trailing_space && !words.is_empty() {
        words.push(String::new());
    }
    words.join(" ")
}

fn request(ask: &Ask) -> SearchRequest {
    let eur = |m: i64| Money::from_minor(m, Currency::EUR);
    let mut req = SearchRequest::new(&query_text(ask), Currency::EUR);
    req.limit = 100;
    req.filters = Filters {
        brands: ask.brands.iter().map(|b| BRANDS[*b].to_owned()).collect(),
        category: ask
            .category
            .map(|c| CategoryPath::parse(CATEGORIES[c]).unwrap()),
        price: ask.price.map(|(lo, hi)| PriceRange {
            min: lo.map(eur),
            max: hi.map(eur),
        }),
        min_rating: ask.min_rating.map(|r| Decimal::new(r, 1)),
        attributes: [
            ("colour", &ask.colours, COLOURS),
            ("size", &ask.sizes, SIZES),
        ]
        .into_iter()
        .filter(|(_, sel, _)| !sel.is_empty())
        .map(|(k, sel, names)| {
            (
                k.to_owned(),
                sel.iter().map(|i| names[*i].to_owned()).collect(),
            )
        })
        .collect(),
        in_stock_only: ask.in_stock_only,
    };
    req.facets = FacetRequest {
        brand: true,
        category: true,
        attributes: vec!["colour".into(), "size".into()],
        price_buckets: (!ask.buckets.is_empty())
            .then(|| ask.buckets.iter().map(|b| eur(*b)).collect()),
        rating: true,
        top_k: 1_000,
    };
    req
}

/// Which filter dimensions a product fails: brand, category, price, rating, colour, size.
fn failures(d: &Doc, ask: &Ask) -> Option<[bool; 6]> {
    if ask.in_stock_only && d.in_stock != Some(true) {
        return None;
    }
    let brand = !ask.brands.is_empty() && !d.brand.is_some_and(|b| ask.brands.contains(&b));
    let category = ask.category.is_some_and(|sel| {
        !d.category.is_some_and(|c| {
            CategoryPath::parse(CATEGORIES[c])
                .unwrap()
                .is_within(&CategoryPath::parse(CATEGORIES[sel]).unwrap())
        })
    });
    let price = ask.price.is_some_and(|(lo, hi)| {
        !d.price
            .is_some_and(|p| lo.is_none_or(|lo| p >= lo) && hi.is_none_or(|hi| p < hi))
    });
    let rating = ask
        .min_rating
        .is_some_and(|min| d.rating.is_none_or(|r| r < min * 10));
    let colour = !ask.colours.is_empty() && !d.colour.is_some_and(|c| ask.colours.contains(&c));
    let size = !ask.sizes.is_empty() && !d.size.is_some_and(|s| ask.sizes.contains(&s));
    Some([brand, category, price, rating, colour, size])
}

#[derive(Debug, Default, PartialEq)]
struct Expected {
    ids: BTreeSet<String>,
    brand: BTreeMap<String, u64>,
    category: BTreeMap<String, u64>,
    colour: BTreeMap<String, u64>,
    size: BTreeMap<String, u64>,
    price: Vec<u64>,
    rating: Vec<u64>,
}

fn expected(index: &SearchIndex, docs: &[Doc], ask: &Ask) -> Expected {
    let text = query_text(ask);
    let words = index.analyze(&text);
    let words: Vec<String> = words.into_iter().take(search::QUERY_TOKENS_MAX).collect();
    // The typo budget follows the word as typed, before stemming.
    let typed: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let prefix_last = !text.ends_with(' ') && words.last().is_some_and(|w| w.chars().count() >= 2);
    let analyzed: Vec<Analyzed> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| analyzed(index, &projection(i, d)))
        .collect();
    let loose: Vec<bool> = typed.iter().map(|w| may_be_loose(&analyzed, w)).collect();
    // `word_match(i, k)`: product i matches word k (as a prefix only when it is the query's
    // last word, still being typed).
    let word_match = |i: usize, k: usize| {
        let prefix = prefix_last && k == words.len() - 1;
        word_matches(&analyzed[i], &words[k], &typed[k], prefix, loose[k])
    };
    let sku_hit = |i: usize| format!("sku-p{i}") == text.trim().to_lowercase();
    // Fewer products than the page (100) hold every word in these catalogs, so with two words
    // or more the page is filled with products holding any of them (every word is rare
    // here, so every word is in the gate).
    let text_match = |i: usize| {
        if words.is_empty() {
            return true;
        }
        sku_hit(i)
            || if words.len() > 1 {
                (0..words.len()).any(|k| word_match(i, k))
            } else {
                word_match(i, 0)
            }
    };
    let mut e = Expected {
        price: vec![
            0;
            if ask.buckets.is_empty() {
                0
            } else {
                ask.buckets.len() + 1
            }
        ],
        rating: vec![0; 4],
        ..Expected::default()
    };
    let sel_cat = ask.category.map(|c| CATEGORIES[c]);
    for (i, d) in docs.iter().enumerate() {
        if !text_match(i) {
            continue;
        }
        let Some(f) = failures(d, ask) else { continue };
        let failed = f.iter().filter(|x| **x).count();
        let counts = |dim: usize| failed == 0 || (failed == 1 && f[dim]);
        if failed == 0 {
            e.ids.insert(format!("p{i}"));
        }
        if counts(0)
            && let Some(b) = d.brand
        {
            *e.brand.entry(BRANDS[b].to_owned()).or_default() += 1;
        }
        if counts(1)
            && let Some(c) = d.category
        {
            let path = CATEGORIES[c];
            let segs: Vec<&str> = path.split('/').collect();
            for depth in 1..=segs.len() {
                let prefix = segs[..depth].join("/");
                let is_child = match sel_cat {
                    None => depth == 1,
                    Some(sel) => {
                        prefix.starts_with(&format!("{sel}/"))
                            && depth == sel.split('/').count() + 1
                    }
                };
                if is_child {
                    *e.category.entry(prefix).or_default() += 1;
                }
            }
        }
        if counts(2)
            && !ask.buckets.is_empty()
            && let Some(p) = d.price
        {
            e.price[ask.buckets.partition_point(|b| *b <= p)] += 1;
        }
        if counts(3)
            && let Some(r) = d.rating
        {
            for (slot, stars) in (1..=4i64).rev().enumerate() {
                if r >= stars * 100 {
                    e.rating[slot] += 1;
                }
            }
        }
        if counts(4)
            && let Some(c) = d.colour
        {
            *e.colour.entry(COLOURS[c].to_owned()).or_default() += 1;
        }
        if counts(5)
            && let Some(s) = d.size
        {
            *e.size.entry(SIZES[s].to_owned()).or_default() += 1;
        }
    }
    e
}

fn actual(r: &search::SearchResults) -> Expected {
    let map = |v: &[search::FacetCount]| v.iter().map(|f| (f.value.clone(), f.count)).collect();
    Expected {
        ids: r
            .hits
            .iter()
            .map(|h| h.product_id.as_str().to_owned())
            .collect(),
        brand: map(&r.facets.brand),
        category: map(&r.facets.category),
        colour: map(&r.facets.attributes["colour"]),
        size: map(&r.facets.attributes["size"]),
        price: r.facets.price.iter().map(|b| b.count).collect(),
        rating: r.facets.rating.iter().map(|b| b.count).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn search_filters_and_facets_equal_a_brute_force_scan(
        docs in prop::collection::vec(doc(), 1..60),
        asks in prop::collection::vec(ask(), 1..6),
    ) {
        let items: Vec<_> = docs.iter().enumerate().map(|(i, d)| crate::fixtures::P(projection(i, d))).collect();
        let mut config = crate::fixtures::config();
        config.loose_match_below = LOOSE_BELOW;
        let idx = crate::fixtures::index_with(config, &items);
        for a in &asks {
            let got = idx.search(&request(a)).unwrap();
            let want = expected(&idx, &docs, a);
            prop_assert_eq!(got.total, want.ids.len() as u64, "total for {:?}", query_text(a));
            prop_assert_eq!(actual(&got), want, "query {:?}", query_text(a));
        }
    }
}
