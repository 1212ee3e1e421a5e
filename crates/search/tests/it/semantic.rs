//! Semantic search's building blocks: the vector index against a brute-force scan, reciprocal
//! rank fusion against its definition, and the bundled embedder against the port's conformance
//! cases.
// Similarities are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic, clippy::cast_precision_loss)]

use std::collections::HashMap;

use commerce_core::{ErrorKind, ProductId};
use proptest::prelude::*;
use search::{AnnConfig, HashingEmbedder, Neighbour, VectorIndex, cosine, reciprocal_rank_fusion};

fn pid(i: usize) -> ProductId {
    ProductId::new(format!("p{i:03}")).expect("product id")
}

mod hashing_embedder {
    search::embedder_conformance!(search::HashingEmbedder::new(384).expect("embedder"));
}

/// The best `k` of `model` by cosine to `q`, ties by product id, among `allowed`.
fn brute_force(
    model: &HashMap<ProductId, Vec<f32>>,
    q: &[f32],
    k: usize,
    allowed: impl Fn(&ProductId) -> bool,
) -> Vec<ProductId> {
    let mut all: Vec<(f32, ProductId)> = model
        .iter()
        .filter(|(id, _)| allowed(id))
        .map(|(id, v)| (cosine(q, v), id.clone()))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, id)| id).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(usize, Vec<f32>),
    Remove(usize),
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    // Small integers: ties happen, and cosines compare exactly enough to check the order.
    prop::collection::vec(-3i8..=3, 4).prop_map(|v| v.into_iter().map(f32::from).collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..30, vector()).prop_map(|(i, v)| Op::Upsert(i, v)),
        1 => (0usize..30).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// After any sequence of upserts and removals, the index holds what a map would, and its
    /// filtered nearest neighbours are a brute-force scan's (same products, same order).
    #[test]
    fn nearest_equals_a_brute_force_scan(
        ops in prop::collection::vec(op(), 0..80),
        q in vector(),
        k in 0usize..12,
        modulus in 1usize..4,
    ) {
        let mut index = VectorIndex::new(4).expect("index");
        let mut model: HashMap<ProductId, Vec<f32>> = HashMap::new();
        for op in ops {
            match op {
                Op::Upsert(i, v) => {
                    let r = index.upsert(pid(i), &v);
                    if v.iter().all(|x| *x == 0.0) {
                        prop_assert_eq!(r.expect_err("zero vector").kind(), ErrorKind::Invalid);
                    } else {
                        r.expect("upsert");
                        model.insert(pid(i), v);
                    }
                }
                Op::Remove(i) => {
                    prop_assert_eq!(index.remove(&pid(i)), model.remove(&pid(i)).is_some());
                }
            }
        }
        prop_assert_eq!(index.len(), model.len());
        for (id, v) in &model {
            let stored = index.get(id).expect("held");
            prop_assert!((cosine(stored, v) - 1.0).abs() < 1e-5);
        }
        let allowed = |id: &ProductId| {
            id.as_str()[1..].parse::<usize>().expect("number") % modulus == 0
        };
        if q.iter().all(|x| *x == 0.0) {
            prop_assert!(index.nearest(&q, k, allowed).is_err());
        } else {
            let got: Vec<ProductId> = index
                .nearest(&q, k, allowed)
                .expect("nearest")
                .into_iter()
                .map(|n| n.product_id)
                .collect();
            let want = brute_force(&model, &q, k, allowed);
            // Equal up to float rounding: compare the similarity at each place.
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                let (cg, cw) = (cosine(&q, &model[g]), cosine(&q, &model[w]));
                prop_assert!((cg - cw).abs() < 1e-5, "{} ({}) vs {} ({})", g, cg, w, cw);
            }
        }
    }

    /// The fused score of every item is the sum of `weight / (k + rank)` over the lists that
    /// hold it, tied scores sharing the best rank of their run; the answer is best first.
    #[test]
    fn fusion_follows_its_definition(
        a in prop::collection::vec((0u8..20, 0u8..5), 0..15),
        b in prop::collection::vec((0u8..20, 0u8..5), 0..15),
        wa in 0u8..4,
        wb in 0u8..4,
    ) {
        let list = |raw: &[(u8, u8)]| {
            let mut l: Vec<(u8, f32)> = Vec::new();
            for (item, score) in raw {
                if !l.iter().any(|(i, _)| i == item) {
                    l.push((*item, f32::from(*score)));
                }
            }
            l.sort_by(|x, y| y.1.total_cmp(&x.1));
            l
        };
        let (la, lb) = (list(&a), list(&b));
        let (wa, wb) = (f64::from(wa), f64::from(wb));
        let fused = reciprocal_rank_fusion(&[(&la[..], wa), (&lb[..], wb)], 60.0);
        let expected = |item: u8| -> f64 {
            [(&la, wa), (&lb, wb)]
                .iter()
                .filter_map(|(l, w)| {
                    let score = l.iter().find(|(i, _)| *i == item)?.1;
                    let better = l.iter().filter(|(_, s)| *s > score).count();
                    Some(w / (60.0 + (better + 1) as f64))
                })
                .sum()
        };
        let mut items: Vec<u8> = la.iter().chain(&lb).map(|(i, _)| *i).collect();
        items.sort_unstable();
        items.dedup();
        prop_assert_eq!(fused.len(), items.len());
        for (item, score) in &fused {
            prop_assert!((score - expected(*item)).abs() < 1e-12);
        }
        prop_assert!(fused.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

#[test]
fn a_bad_vector_is_refused_and_changes_nothing() {
    let mut index = VectorIndex::new(3).expect("index");
    index.upsert(pid(1), &[1.0, 0.0, 0.0]).expect("upsert");
    for bad in [
        vec![1.0, 0.0],
        vec![f32::NAN, 0.0, 0.0],
        vec![f32::INFINITY, 1.0, 0.0],
        vec![0.0, 0.0, 0.0],
    ] {
        let e = index.upsert(pid(1), &bad).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert_eq!(e.field(), Some("vector"));
        assert_eq!(index.get(&pid(1)), Some(&[1.0, 0.0, 0.0][..]));
        assert_eq!(index.len(), 1);
    }
    assert_eq!(
        VectorIndex::new(0).expect_err("no dims").kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        HashingEmbedder::new(1_000_000)
            .expect_err("too long")
            .field(),
        Some("dims")
    );
}

#[test]
fn similar_leaves_the_product_out_and_honours_the_filter() {
    let mut index = VectorIndex::new(2).expect("index");
    index.upsert(pid(0), &[1.0, 0.0]).expect("upsert");
    index.upsert(pid(1), &[0.9, 0.1]).expect("upsert");
    index.upsert(pid(2), &[0.8, 0.3]).expect("upsert");
    index.upsert(pid(3), &[0.0, 1.0]).expect("upsert");
    let ids = |n: Vec<Neighbour>| -> Vec<String> {
        n.into_iter().map(|n| n.product_id.to_string()).collect()
    };
    assert_eq!(ids(index.similar(&pid(0), 2, |_| true)), ["p001", "p002"]);
    assert_eq!(
        ids(index.similar(&pid(0), 2, |id| id != &pid(1))),
        ["p002", "p003"]
    );
    assert!(index.similar(&pid(9), 2, |_| true).is_empty());
}

#[test]
fn hashing_embedder_brings_shared_words_and_pieces_together() {
    use search::Embedder;
    let e = HashingEmbedder::new(384).expect("embedder");
    let v = e
        .embed(&["velvet sofas", "velvet sofa", "steel kettle", ""])
        .expect("embed");
    assert!(cosine(&v[0], &v[1]) > 0.5, "{}", cosine(&v[0], &v[1]));
    assert!(cosine(&v[0], &v[2]) < 0.3, "{}", cosine(&v[0], &v[2]));
    assert!(v[3].iter().all(|x| *x == 0.0), "no words, no direction");
    assert_eq!(e.model(), "hashing-v1-384");
}

/// A small deterministic generator (xorshift) for the graph tests' data.
struct Xorshift(u64);

impl Xorshift {
    /// A number in [-1, 1).
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_possible_truncation, reason = "24 bits")]
        let bits = (self.0 >> 40) as u32;
        (bits as f32 / 8_388_608.0) - 1.0
    }
}

/// `n` vectors of `dims` numbers around `centres` random centres (a catalog's products
/// cluster by kind), each centre plus noise.
fn clustered(n: usize, dims: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Xorshift(seed);
    let cs: Vec<Vec<f32>> = (0..centres)
        .map(|_| (0..dims).map(|_| rng.next()).collect())
        .collect();
    (0..n)
        .map(|i| {
            cs[i % centres]
                .iter()
                .map(|c| c + 0.6 * rng.next())
                .collect()
        })
        .collect()
}

#[test]
fn the_graph_finds_nearly_what_the_exact_scan_finds() {
    let (n, dims) = (4_000, 32);
    let data = clustered(n, dims, 40, 7);
    let ann = AnnConfig {
        above: 1_000,
        ..AnnConfig::default()
    };
    let mut graph = VectorIndex::with_ann(dims, ann).expect("index");
    let mut exact = VectorIndex::new(dims).expect("index");
    let items: Vec<(ProductId, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (pid(i), v.as_slice()))
        .collect();
    graph.upsert_many(items.clone()).expect("bulk");
    exact.upsert_many(items).expect("bulk");
    assert!(graph.has_graph() && !exact.has_graph());
    let queries = clustered(100, dims, 40, 99);
    let mut found = 0usize;
    for q in &queries {
        let want: std::collections::HashSet<ProductId> = exact
            .nearest(q, 10, |_| true)
            .expect("exact")
            .into_iter()
            .map(|n| n.product_id)
            .collect();
        let got = graph.nearest(q, 10, |_| true).expect("graph");
        assert_eq!(got.len(), 10);
        found += got.iter().filter(|n| want.contains(&n.product_id)).count();
    }
    let recall = found as f64 / 1_000.0;
    assert!(recall >= 0.9, "recall@10 {recall}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With the graph on (from 4 vectors), whatever the updates: every answer is allowed,
    /// held, exactly scored, once, in order, and the page is as full as the allowed products
    /// allow (the exact scan answers when the graph finds too few).
    #[test]
    fn graph_answers_are_sound_and_full(
        ops in prop::collection::vec(op(), 0..120),
        q in vector(),
        k in 1usize..6,
        modulus in 1usize..5,
    ) {
        prop_assume!(q.iter().any(|x| *x != 0.0));
        let ann = AnnConfig { above: 4, ..AnnConfig::default() };
        let mut index = VectorIndex::with_ann(4, ann).expect("index");
        let mut model: HashMap<ProductId, Vec<f32>> = HashMap::new();
        for op in ops {
            match op {
                Op::Upsert(i, v) => {
                    if index.upsert(pid(i), &v).is_ok() {
                        model.insert(pid(i), v);
                    }
                }
                Op::Remove(i) => {
                    index.remove(&pid(i));
                    model.remove(&pid(i));
                }
            }
        }
        let allowed = |id: &ProductId| {
            id.as_str()[1..].parse::<usize>().expect("number") % modulus == 0
        };
        let got = index.nearest(&q, k, allowed).expect("nearest");
        let eligible = model.keys().filter(|id| allowed(id)).count();
        prop_assert_eq!(got.len(), eligible.min(k));
        let mut seen = std::collections::HashSet::new();
        for (i, n) in got.iter().enumerate() {
            prop_assert!(allowed(&n.product_id));
            prop_assert!(seen.insert(n.product_id.clone()), "{} twice", n.product_id);
            let v = model.get(&n.product_id).expect("a held product");
            prop_assert!((cosine(&q, v) - n.similarity).abs() < 1e-5);
            if i > 0 {
                prop_assert!(got[i - 1].similarity >= n.similarity);
            }
        }
    }
}
