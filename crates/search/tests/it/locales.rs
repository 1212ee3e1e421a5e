//! Per-locale analysis: each language's stemmer, stop words and accents, compounds in German
//! and Dutch, and synonyms per locale index, each on a small catalog in that language.

use commerce_core::Currency;
use search::{
    Error, Locale, SearchIndex, SearchRegistry, SearchResults, Synonyms, TenantConfig, TenantId,
};

use crate::fixtures::{P, ids, index_with, product, search, temp_dir};

fn in_locale(locale: Locale, synonyms: &[&[&str]], items: &[P]) -> SearchIndex {
    let mut config = TenantConfig::new(&[Currency::EUR]);
    config.locale = locale;
    let mut syn = Synonyms::default();
    for words in synonyms {
        syn.equivalent(words);
    }
    config.synonyms = syn;
    index_with(config, items)
}

/// The hits holding every word of the query, in order.
fn full(r: &SearchResults) -> Vec<&str> {
    r.hits
        .iter()
        .filter(|h| !h.partial)
        .map(|h| h.product_id.as_str())
        .collect()
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

#[test]
fn german_stems_folds_and_finds_the_heads_of_compounds() {
    let idx = in_locale(
        Locale::German,
        &[&["sofa", "couch"]],
        &[
            product("kinder", "Kinderschreibtisch aus Buche"),
            product("lampe", "Schreibtischlampe mit Klemme"),
            product("buero", "Bürostuhl, schwarz"),
            product("garten", "Stühle für den Garten, 4 Stück"),
            product("set", "Stuhl und Schreibtisch im Set"),
            product("sofa", "Sofa mit Schlaffunktion"),
        ],
    );
    // A word finds the compounds it ends, not those it starts: a Schreibtischlampe is a lamp.
    assert_eq!(
        sorted(full(&search(&idx, "schreibtisch "))),
        ["kinder", "set"]
    );
    // Plural, umlaut and compound head meet: Stühle, Stuhl, Bürostuhl.
    assert_eq!(
        sorted(full(&search(&idx, "stuhl "))),
        ["buero", "garten", "set"]
    );
    assert_eq!(
        sorted(full(&search(&idx, "Stühle "))),
        ["buero", "garten", "set"]
    );
    assert_eq!(full(&search(&idx, "burostuhl ")), ["buero"]);
    // Stop words are not required.
    assert_eq!(full(&search(&idx, "stühle für den garten ")), ["garten"]);
    // A compound the catalog lacks is split into words it holds.
    assert_eq!(full(&search(&idx, "schreibtischstuhl ")), ["set"]);
    assert_eq!(full(&search(&idx, "couch ")), ["sofa"]);
}

#[test]
fn dutch_finds_the_heads_of_compounds() {
    let idx = in_locale(
        Locale::Dutch,
        &[],
        &[
            product("bureau", "Bureaustoel, zwart"),
            product("tuin", "Tuinstoelen, set van 2"),
            product("tafel", "Eettafel van eikenhout"),
        ],
    );
    assert_eq!(sorted(full(&search(&idx, "stoel "))), ["bureau", "tuin"]);
    assert_eq!(sorted(full(&search(&idx, "stoelen "))), ["bureau", "tuin"]);
    assert_eq!(full(&search(&idx, "tafel van eikenhout ")), ["tafel"]);
}

#[test]
fn french_stems_folds_and_drops_elisions_and_stop_words() {
    let idx = in_locale(
        Locale::French,
        &[&["canapé", "sofa"]],
        &[
            product("canape", "Canapé d'angle en velours"),
            product("chevet", "Lampe de chevet"),
            product("chaises", "Chaises de jardin"),
        ],
    );
    assert_eq!(full(&search(&idx, "canape ")), ["canape"]);
    assert_eq!(full(&search(&idx, "chaise ")), ["chaises"]);
    assert_eq!(full(&search(&idx, "lampe de chevet ")), ["chevet"]);
    assert_eq!(full(&search(&idx, "l'angle ")), ["canape"]);
    assert_eq!(full(&search(&idx, "sofa ")), ["canape"]);
}

#[test]
fn spanish_and_italian_stem_and_fold() {
    let es = in_locale(
        Locale::Spanish,
        &[],
        &[
            product("sillas", "Sillas de comedor"),
            product("lampara", "Lámpara de mesa"),
        ],
    );
    assert_eq!(full(&search(&es, "silla ")), ["sillas"]);
    assert_eq!(full(&search(&es, "lampara ")), ["lampara"]);
    assert_eq!(full(&search(&es, "lámparas de mesa ")), ["lampara"]);
    let it = in_locale(
        Locale::Italian,
        &[],
        &[
            product("sedie", "Sedie da giardino"),
            product("ombrellone", "L'ombrellone da spiaggia"),
        ],
    );
    assert_eq!(full(&search(&it, "sedia ")), ["sedie"]);
    assert_eq!(full(&search(&it, "ombrelloni ")), ["ombrellone"]);
    assert_eq!(full(&search(&it, "sedie da giardino ")), ["sedie"]);
}

#[test]
fn english_words_do_not_match_inside_other_words() {
    let idx = in_locale(Locale::English, &[], &[product("clamp", "Desk clamp")]);
    assert_eq!(search(&idx, "lamp ").total, 0);
    assert_eq!(ids(&search(&idx, "clamps ")), ["clamp"]);
}

#[test]
fn an_index_keeps_the_locale_it_was_built_in() {
    let root = temp_dir("locale");
    let t = TenantId::new("shop").unwrap();
    let german = || {
        let mut c = TenantConfig::new(&[Currency::EUR]);
        c.locale = Locale::German;
        c
    };
    {
        let registry = SearchRegistry::in_dir(&root);
        let index = registry.create(t.clone(), german()).unwrap();
        let mut w = index.writer();
        w.upsert(&product("p1", "Bürostuhl").0).unwrap();
        w.commit(Some(1)).unwrap();
    }
    let err = SearchRegistry::in_dir(&root)
        .create(t.clone(), TenantConfig::new(&[Currency::EUR]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "config.locale",
                ..
            }
        ),
        "{err}"
    );
    let index = SearchRegistry::in_dir(&root).create(t, german()).unwrap();
    assert_eq!(ids(&search(&index, "stuhl ")), ["p1"]);
    let _ = std::fs::remove_dir_all(root);
}
