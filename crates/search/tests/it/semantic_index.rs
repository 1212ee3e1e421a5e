//! Semantic search inside a tenant's index: vectors made at commit and kept with their
//! documents, hybrid and vector-only requests honouring filters, similar products, a reopen
//! that does not embed again, and a failing embedder that leaves nothing half-committed.
// Similarities are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic, clippy::cast_precision_loss)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use commerce_core::{Currency, ErrorKind, ProductId, Sku};
use proptest::prelude::*;
use search::{
    Embedder, Error, SearchIndex, SearchRegistry, SearchRequest, Semantic, Storage, TenantConfig,
    TenantId, cosine,
};

use crate::fixtures::{P, config, ids, product, temp_dir};

/// Words of a few concepts, each concept one direction: `couch` and `sofa` are the same to it,
/// `drill` is unrelated. Words it does not know add nothing. Counts the texts it embeds and
/// fails on demand.
struct Concepts {
    model: String,
    embedded: AtomicUsize,
    fail: AtomicBool,
}

const CONCEPTS: [&[&str]; 6] = [
    &["sofa", "couch", "settee", "armchair", "seating"],
    &["drill", "screwdriver", "hammer", "tools"],
    &["lamp", "lantern", "bulb", "lighting"],
    &["mug", "cup", "kettle", "kitchen"],
    &["red", "crimson", "scarlet"],
    &["blue", "navy", "azure"],
];

impl Concepts {
    fn new(model: &str) -> Arc<Concepts> {
        Arc::new(Concepts {
            model: model.to_owned(),
            embedded: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        })
    }
}

impl Embedder for Concepts {
    fn model(&self) -> &str {
        &self.model
    }
    fn dims(&self) -> usize {
        CONCEPTS.len()
    }
    fn embed(&self, texts: &[&str]) -> search::Result<Vec<Vec<f32>>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Embedder("the model is not loaded".into()));
        }
        self.embedded.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0; CONCEPTS.len()];
                for word in t.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                    if let Some(i) = CONCEPTS.iter().position(|c| c.contains(&word)) {
                        v[i] += 1.0;
                    }
                }
                v
            })
            .collect())
    }
}

fn semantic_config(e: &Arc<Concepts>) -> TenantConfig {
    let mut c = config();
    c.embedder = Some(Arc::clone(e) as Arc<dyn Embedder>);
    c
}

fn catalog() -> Vec<P> {
    vec![
        product("sofa-red", "Red sofa")
            .brand("Acme")
            .desc("Three seats."),
        product("couch-blue", "Blue couch").brand("Other"),
        product("settee", "Velvet settee")
            .brand("Acme")
            .stock(Some(false)),
        product("drill", "Cordless drill").brand("Acme"),
        product("lamp", "Desk lamp").brand("Other"),
        product("mug-red", "Red mug").brand("Acme"),
        product("plain", "Gift card"),
    ]
}

fn open(e: &Arc<Concepts>, products: &[P]) -> SearchIndex {
    let index = SearchIndex::create(
        TenantId::new("t").unwrap(),
        semantic_config(e),
        Storage::Ram,
    )
    .unwrap();
    let mut w = index.writer();
    for p in products {
        w.upsert(&p.0).unwrap();
    }
    w.commit(None).unwrap();
    index
}

fn req(text: &str, semantic: Semantic) -> SearchRequest {
    let mut r = SearchRequest::new(text, Currency::EUR);
    r.semantic = semantic;
    r
}

/// A directory index with `config`.
fn dir_index(dir: &std::path::Path, config: TenantConfig) -> SearchIndex {
    SearchIndex::create(
        TenantId::new("t").unwrap(),
        config,
        Storage::Dir(dir.to_path_buf()),
    )
    .unwrap()
}

/// How many products a vector-only search for `text` finds.
fn vector_hits(index: &SearchIndex, text: &str) -> usize {
    index
        .search(&req(text, Semantic::Vector))
        .unwrap()
        .hits
        .len()
}

#[test]
fn hybrid_adds_products_that_mean_the_words() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    // Words only: one product holds "couch".
    let words = index.search(&req("couch", Semantic::Off)).unwrap();
    assert_eq!(ids(&words), ["couch-blue"]);
    // Hybrid: the keyword match first (it ranks first in both lists), then the other seating.
    let hybrid = index.search(&req("couch", Semantic::Hybrid)).unwrap();
    let got = ids(&hybrid);
    assert_eq!(got[0], "couch-blue", "{got:?}");
    let mut rest: Vec<&str> = got[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["settee", "sofa-red"], "only seating means a couch");
    assert!(!hybrid.hits[0].partial && hybrid.hits[1].partial && hybrid.hits[2].partial);
    assert!(hybrid.hits.iter().all(|h| h.similarity.is_some()));
    assert_eq!(
        hybrid.total, 3,
        "the keyword match and the two found by meaning"
    );
    // Vector only: the same three, most similar first (the settee is only seating; the
    // others are also red or blue).
    let vector = index.search(&req("couch", Semantic::Vector)).unwrap();
    assert_eq!(ids(&vector)[0], "settee");
    assert_eq!(vector.hits.len(), 3);
    assert!(vector.hits[0].similarity.unwrap() > 0.99);
    assert!(vector.hits[1].similarity.unwrap() < 0.8);
}

#[test]
fn hybrid_ranks_what_both_lists_agree_on_first() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    // "red" holds two products by word; by meaning the red sofa is nearest "red seating".
    let hybrid = index.search(&req("red seating", Semantic::Hybrid)).unwrap();
    assert_eq!(ids(&hybrid)[0], "sofa-red", "{:?}", ids(&hybrid));
}

#[test]
fn semantic_requests_honour_filters() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    for mode in [Semantic::Hybrid, Semantic::Vector] {
        let mut r = req("couch", mode);
        r.filters.brands.push("Acme".into());
        r.filters.in_stock_only = true;
        let got = index.search(&r).unwrap();
        assert_eq!(ids(&got), ["sofa-red"], "{mode:?}");
    }
}

#[test]
fn a_filter_far_from_the_query_still_fills_the_page() {
    // 300 seating products of brand A, then 5 of brand B whose vectors are farther: the scan
    // widens past the first candidates until the page is full.
    let e = Concepts::new("concepts-1");
    let mut products: Vec<P> = (0..300)
        .map(|i| product(&format!("a{i:03}"), "sofa").brand("A"))
        .collect();
    products.extend((0..5).map(|i| product(&format!("b{i}"), "sofa drill").brand("B")));
    let index = open(&e, &products);
    let mut r = req("sofa", Semantic::Vector);
    r.filters.brands.push("B".into());
    let got = index.search(&r).unwrap();
    assert_eq!(ids(&got), ["b0", "b1", "b2", "b3", "b4"]);
}

#[test]
fn retired_and_deleted_products_leave_the_vectors() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    let mut w = index.writer();
    w.retire(&ProductId::new("settee").unwrap(), 2).unwrap();
    w.delete(&ProductId::new("couch-blue").unwrap()).unwrap();
    // Upserted twice in one batch: one document, the second text.
    let mut sofa = product("sofa-red", "Red sofa").brand("Acme").version(2);
    w.upsert(&sofa.0).unwrap();
    sofa.0.title = "Red armchair".into();
    sofa.0.version = 3;
    w.upsert(&sofa.0).unwrap();
    w.commit(None).unwrap();
    let got = index.search(&req("couch", Semantic::Vector)).unwrap();
    assert_eq!(ids(&got), ["sofa-red"]);
    assert_eq!(got.hits[0].catalog_version, 3);
    assert_eq!(got.hits[0].title, "Red armchair");
}

#[test]
fn a_reopened_index_keeps_its_vectors_and_a_new_model_embeds_again() {
    let dir = temp_dir("vectors-reopen");
    let e = Concepts::new("concepts-1");
    let products = catalog();
    {
        let index = dir_index(&dir, semantic_config(&e));
        let mut w = index.writer();
        for p in &products {
            w.upsert(&p.0).unwrap();
        }
        w.commit(Some(7)).unwrap();
    }
    assert_eq!(e.embedded.load(Ordering::SeqCst), products.len());
    // Same model: the stored vectors are read back, nothing is embedded.
    let again = Concepts::new("concepts-1");
    {
        let index = dir_index(&dir, semantic_config(&again));
        assert_eq!(again.embedded.load(Ordering::SeqCst), 0);
        assert_eq!(vector_hits(&index, "couch"), 3);
        assert_eq!(index.committed_offset(), 7);
    }
    // Another model: every product is embedded again as the index opens, the offset kept.
    let other = Concepts::new("concepts-2");
    let index = dir_index(&dir, semantic_config(&other));
    assert_eq!(other.embedded.load(Ordering::SeqCst), products.len());
    assert_eq!(vector_hits(&index, "couch"), 3);
    assert_eq!(index.committed_offset(), 7);
    assert_eq!(index.num_docs().unwrap(), products.len() as u64);
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_index_built_without_an_embedder_gets_vectors_when_given_one() {
    let dir = temp_dir("vectors-late");
    let products = catalog();
    {
        let index = dir_index(&dir, config());
        let mut w = index.writer();
        for p in &products {
            w.upsert(&p.0).unwrap();
        }
        w.commit(None).unwrap();
        let refused = index.search(&req("couch", Semantic::Hybrid)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Invalid);
        assert_eq!(refused.field(), Some("semantic"));
    }
    let e = Concepts::new("concepts-1");
    let index = dir_index(&dir, semantic_config(&e));
    assert_eq!(e.embedded.load(Ordering::SeqCst), products.len());
    assert_eq!(vector_hits(&index, "couch"), 3);
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_embedder_commits_nothing_and_answers_unavailable() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    e.fail.store(true, Ordering::SeqCst);
    let mut w = index.writer();
    w.upsert(&product("lantern", "Camping lantern").0).unwrap();
    w.retire(&ProductId::new("drill").unwrap(), 2).unwrap();
    let err = w.commit(Some(99)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(index.committed_offset(), 0, "the offset did not move");
    assert_eq!(index.num_docs().unwrap(), 7, "neither change is visible");
    assert_eq!(crate::fixtures::search(&index, "drill").total, 1);
    // A query needing a vector is unavailable too; a words-only query still answers.
    let refused = index.search(&req("lamp", Semantic::Hybrid)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    assert_eq!(index.search(&req("lamp", Semantic::Off)).unwrap().total, 1);
    // Once it answers again, the same batch commits.
    e.fail.store(false, Ordering::SeqCst);
    let mut w = index.writer();
    w.upsert(&product("lantern", "Camping lantern").0).unwrap();
    w.commit(Some(99)).unwrap();
    let got = index.search(&req("lamp", Semantic::Vector)).unwrap();
    let mut got: Vec<&str> = ids(&got);
    got.sort_unstable();
    assert_eq!(got, ["lamp", "lantern"]);
}

#[test]
fn similar_products_by_sku() {
    let e = Concepts::new("concepts-1");
    let index = open(&e, &catalog());
    let r = SearchRequest::new("", Currency::EUR);
    let sku = |id: &str| Sku::new(format!("SKU-{id}").to_uppercase()).unwrap();
    let similar = index.similar(&sku("sofa-red"), &r).unwrap();
    let got = ids(&similar);
    assert!(
        !got.contains(&"sofa-red"),
        "a product is not similar to itself"
    );
    // Seating first (couch, settee), then the other red product.
    let mut head = got[..2].to_vec();
    head.sort_unstable();
    assert_eq!(head, ["couch-blue", "settee"], "{got:?}");
    assert_eq!(got[2], "mug-red");
    assert!(!got.contains(&"drill") && !got.contains(&"plain"));
    // Filters hold.
    let mut acme = r.clone();
    acme.filters.brands.push("Acme".into());
    acme.filters.in_stock_only = true;
    assert_eq!(
        ids(&index.similar(&sku("sofa-red"), &acme).unwrap()),
        ["mug-red"]
    );
    // A product without a direction has no neighbours; an unknown SKU is not found.
    assert!(index.similar(&sku("plain"), &r).unwrap().hits.is_empty());
    let missing = index.similar(&Sku::new("NOPE").unwrap(), &r).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.field(), Some("sku"));
    // Bad input is refused, as for a search.
    let mut deep = r.clone();
    deep.limit = 0;
    assert_eq!(
        index.similar(&sku("sofa-red"), &deep).unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[test]
fn tenants_see_only_their_own_vectors() {
    let e = Concepts::new("concepts-1");
    let registry = SearchRegistry::in_ram();
    let a = registry
        .create(TenantId::new("a").unwrap(), semantic_config(&e))
        .unwrap();
    let b = registry
        .create(TenantId::new("b").unwrap(), semantic_config(&e))
        .unwrap();
    let mut w = a.writer();
    w.upsert(&product("sofa", "Sofa").0).unwrap();
    w.commit(None).unwrap();
    let mut w = b.writer();
    w.upsert(&product("couch", "Couch").0).unwrap();
    w.commit(None).unwrap();
    let got = registry
        .search(
            &TenantId::new("a").unwrap(),
            &req("couch", Semantic::Vector),
        )
        .unwrap();
    assert_eq!(ids(&got), ["sofa"]);
    let got = registry
        .search(&TenantId::new("b").unwrap(), &req("sofa", Semantic::Hybrid))
        .unwrap();
    assert_eq!(ids(&got), ["couch"]);
}

/// Vectors given per title: a product titled `v7` has `table["v7"]`.
struct Table(Mutex<HashMap<String, Vec<f32>>>);

impl Embedder for Table {
    fn model(&self) -> &str {
        "table"
    }
    fn dims(&self) -> usize {
        4
    }
    fn embed(&self, texts: &[&str]) -> search::Result<Vec<Vec<f32>>> {
        let table = self.0.lock().unwrap();
        Ok(texts
            .iter()
            .map(|t| {
                let key = t.split('.').next().unwrap_or("");
                table.get(key).cloned().unwrap_or_else(|| vec![0.0; 4])
            })
            .collect())
    }
}

fn small_vector() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-3i8..=3, 4).prop_map(|v| v.into_iter().map(f32::from).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A vector-only request answers the best products by cosine among those passing its
    /// filters and having a vector: nothing better left out, in order, the page as full as
    /// the passing products allow.
    #[test]
    fn vector_requests_are_the_filtered_top_k(
        products in prop::collection::vec((small_vector(), 0usize..3, any::<bool>()), 1..40),
        query in small_vector(),
        brands in prop::collection::btree_set(0usize..3, 0..3),
        in_stock_only in any::<bool>(),
        limit in 1usize..12,
    ) {
        prop_assume!(query.iter().any(|x| *x != 0.0));
        let mut table: HashMap<String, Vec<f32>> = HashMap::new();
        table.insert("query".into(), query.clone());
        let mut catalog = Vec::new();
        for (i, (v, brand, stocked)) in products.iter().enumerate() {
            table.insert(format!("v{i}"), v.clone());
            catalog.push(
                product(&format!("p{i:02}"), &format!("v{i}"))
                    .brand(&format!("B{brand}"))
                    .stock(Some(*stocked)),
            );
        }
        let mut config = config();
        config.embedder = Some(Arc::new(Table(Mutex::new(table))));
        let index = crate::fixtures::index_with(config, &catalog);
        let mut r = req("query", Semantic::Vector);
        r.limit = limit;
        r.filters.brands = brands.iter().map(|b| format!("B{b}")).collect();
        r.filters.in_stock_only = in_stock_only;
        let got = index.search(&r).unwrap();
        // Only products pointing the query's way (cosine above 0) are near; a cosine within
        // rounding of 0 may go either way.
        let passes_above = |i: usize, floor: f32| {
            let (v, brand, stocked) = &products[i];
            cosine(&query, v) > floor
                && (brands.is_empty() || brands.contains(brand))
                && (!in_stock_only || *stocked)
        };
        let passes = |i: usize| passes_above(i, -1e-5);
        let eligible: Vec<usize> = (0..products.len()).filter(|i| passes(*i)).collect();
        let surely = (0..products.len()).filter(|i| passes_above(*i, 1e-5)).count();
        prop_assert!(got.hits.len() <= eligible.len().min(limit));
        prop_assert!(got.hits.len() >= surely.min(limit));
        let mut last = f32::INFINITY;
        let mut returned = std::collections::HashSet::new();
        for h in &got.hits {
            let i: usize = h.product_id.as_str()[1..].parse().unwrap();
            prop_assert!(passes(i), "{} does not pass", h.product_id);
            let s = cosine(&query, &products[i].0);
            prop_assert!((s - h.similarity.unwrap()).abs() < 1e-5);
            prop_assert!(s <= last + 1e-5, "out of order");
            last = s;
            returned.insert(i);
        }
        if got.hits.len() == limit {
            for i in eligible.iter().filter(|i| !returned.contains(*i)) {
                prop_assert!(cosine(&query, &products[*i].0) <= last + 1e-5, "p{i:02} left out");
            }
        }
    }
}

#[test]
fn a_change_that_keeps_the_text_keeps_the_vector() {
    let e = Concepts::new("concepts-1");
    let products = catalog();
    let index = open(&e, &products);
    let before = e.embedded.load(Ordering::SeqCst);
    // Price, stock and rating churn: the model does not run again, and the vectors hold.
    let mut w = index.writer();
    for p in &products {
        let changed = p
            .clone()
            .eur(4_321)
            .stock(Some(true))
            .rating(450)
            .version(2);
        w.upsert(&changed.0).unwrap();
    }
    w.commit(None).unwrap();
    assert_eq!(
        e.embedded.load(Ordering::SeqCst),
        before,
        "nothing embedded again"
    );
    assert_eq!(vector_hits(&index, "couch"), 3);
    let sofa = index.similar(&Sku::new("SKU-SOFA-RED").unwrap(), &req("", Semantic::Off));
    assert!(!sofa.unwrap().hits.is_empty());
    // A new title is embedded again, once.
    let before = e.embedded.load(Ordering::SeqCst);
    let mut w = index.writer();
    w.upsert(&product("lamp", "Desk lantern").brand("Other").version(3).0)
        .unwrap();
    w.commit(None).unwrap();
    assert_eq!(e.embedded.load(Ordering::SeqCst), before + 1);
    // A product with no direction keeps none after a price change too.
    assert!(
        index
            .similar(&Sku::new("SKU-PLAIN").unwrap(), &req("", Semantic::Off))
            .unwrap()
            .hits
            .is_empty()
    );
}
