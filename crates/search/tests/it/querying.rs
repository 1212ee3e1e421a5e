//! What a shopper's query finds, and in which order.

use commerce_core::{Currency, Money, Sku};
use search::{Error, MerchRule, Placement, SearchRequest, Synonyms};

use crate::fixtures::{config, ids, index, index_with, product, search};

#[test]
fn an_exact_match_ranks_above_a_typo_match_whatever_its_signals() {
    let idx = index(&[
        product("typo", "Steel blander blander")
            .popularity(1_000_000)
            .sponsored(),
        product(
            "exact",
            "Steel blender with a very long title that dilutes the score",
        ),
    ]);
    let r = search(&idx, "blender");
    assert_eq!(ids(&r), ["exact", "typo"]);
}

#[test]
fn a_title_match_ranks_above_a_description_match() {
    let idx = index(&[
        product("desc", "Reading light").desc("A lamp for the bedside table"),
        product("title", "Bedside lamp").desc("Warm light"),
    ]);
    assert_eq!(ids(&search(&idx, "lamp")), ["title", "desc"]);
}

#[test]
fn the_typo_budget_grows_with_word_length() {
    let mut cfg = config();
    cfg.stemming = false;
    let idx = index_with(
        cfg,
        &[
            product("mug", "mug"),
            product("chair", "chair"),
            product("tv", "television"),
        ],
    );
    // Under five letters: no typo allowed.
    assert_eq!(search(&idx, "mig ").total, 0);
    // Five to eight letters: one (a transposition counts as one).
    assert_eq!(ids(&search(&idx, "chiar ")), ["chair"]);
    assert_eq!(search(&idx, "chxiar ").total, 0);
    // Nine and more: two.
    assert_eq!(ids(&search(&idx, "tilevisoin ")), ["tv"]);
    assert_eq!(search(&idx, "tilevxisoin ").total, 0);
}

#[test]
fn words_with_digits_get_no_typos() {
    let mut cfg = config();
    cfg.stemming = false;
    let idx = index_with(cfg, &[product("x200", "Router x200 dualband")]);
    assert_eq!(search(&idx, "x201 ").total, 0);
    assert_eq!(search(&idx, "x200 ").total, 1);
    // The same edit on a word without digits is forgiven.
    assert_eq!(search(&idx, "dualbnad ").total, 1);
}

#[test]
fn the_last_word_matches_as_a_prefix_while_typing() {
    let idx = index(&[product("b", "Glass blender"), product("g", "Glass bowl")]);
    let typing = search(&idx, "glass blen");
    assert_eq!(ids(&typing), ["b", "g"]);
    let partial: Vec<bool> = typing.hits.iter().map(|h| h.partial).collect();
    assert_eq!(partial, [false, true], "the bowl only fills the page");
    // A trailing space means the word is finished: no product has both words, so both are
    // partial matches of the first.
    let finished = search(&idx, "glass blen ");
    assert!(finished.relaxed);
    assert_eq!(finished.total, 2);
    assert!(finished.hits.iter().all(|h| h.partial));
    // Only the last word is a prefix: "gla" matches nothing, the bowl only "bowl".
    let r = search(&idx, "gla bowl");
    assert_eq!(ids(&r), ["g"]);
    assert!(r.hits[0].partial);
}

#[test]
fn stemming_finds_plurals() {
    let idx = index(&[product("c", "Oak chair")]);
    assert_eq!(ids(&search(&idx, "chairs ")), ["c"]);
}

#[test]
fn synonyms_expand_at_query_time_per_tenant() {
    let mut cfg = config();
    let mut syn = Synonyms::default();
    syn.equivalent(&["sofa", "couch"]);
    syn.one_way("tv", &["television"]);
    syn.one_way("tee", &["t shirt"]);
    cfg.synonyms = syn;
    let items = [
        product("sofa", "Grey sofa"),
        product("tele", "Television 55 inch"),
        product("mount", "TV wall mount"),
        product("shirt", "Cotton t shirt"),
    ];
    let idx = index_with(cfg, &items);
    assert_eq!(ids(&search(&idx, "couch ")), ["sofa"]);
    let mut tv = ids(&search(&idx, "tv "))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    tv.sort();
    assert_eq!(tv, ["mount", "tele"]);
    // One-way: television does not mean tv.
    assert_eq!(ids(&search(&idx, "television ")), ["tele"]);
    assert_eq!(ids(&search(&idx, "tee ")), ["shirt"]);
    // Another tenant without the synonyms does not expand.
    let plain = index(&items);
    assert_eq!(search(&plain, "couch ").total, 0);
}

#[test]
fn an_exact_sku_query_finds_that_product_first() {
    let idx = index(&[
        product("noise", "ab 1234 x ab 1234 x ab 1234 x").popularity(1_000_000),
        product("target", "Desk organiser").sku("AB-1234-X"),
    ]);
    let r = search(&idx, "ab-1234-x");
    assert_eq!(r.hits[0].product_id.as_str(), "target");
    assert_eq!(
        search(&idx, "AB-1234-X").hits[0].product_id.as_str(),
        "target"
    );
}

#[test]
fn partial_matches_fill_the_page_by_coverage_not_by_word_order() {
    // The last word is the product type: nothing holds every word but one product, and
    // dropping words from the end would find "8 ounce" (gloves, perfume) before jars.
    let idx = index(&[
        product("gloves", "Boxing gloves 8 ounce"),
        product("perfume", "Perfume 8 ounce"),
        product("jars", "Mason jars, pack of 12"),
        product("glass", "Glass jars"),
        product("all", "Mason jars 8 ounce"),
    ]);
    let r = search(&idx, "8 ounce mason jars ");
    assert!(r.relaxed);
    assert_eq!(r.total, 5);
    let found = ids(&r);
    assert_eq!(&found[..2], ["all", "jars"], "{found:?}");
    let partial: Vec<bool> = r.hits.iter().map(|h| h.partial).collect();
    assert_eq!(partial, [false, true, true, true, true]);
    // A page of products holding every word needs no partial matches.
    let mut req = SearchRequest::new("mason jars ", Currency::EUR);
    req.limit = 2;
    let full = idx.search(&req).unwrap();
    assert!(!full.relaxed);
    assert_eq!(full.total, 2);
    assert!(full.hits.iter().all(|h| !h.partial));
    // A word matching nothing does not empty the results, wherever it is.
    let r = search(&idx, "unicorn mason jars ");
    let mut first = ids(&r)[..2].to_vec();
    first.sort_unstable();
    assert_eq!(first, ["all", "jars"]);
    assert!(r.hits.iter().all(|h| h.partial));
}

#[test]
fn a_rare_decisive_word_outweighs_common_ones() {
    let mut items: Vec<_> = (0..30)
        .map(|i| product(&format!("s{i:02}"), "Bathroom sink faucet").popularity(1_000 + i))
        .collect();
    items.push(product("touchless", "Touchless faucet"));
    let idx = index(&items);
    let mut req = SearchRequest::new("touchless sink faucet bathroom ", Currency::EUR);
    req.limit = 40;
    let r = idx.search(&req).unwrap();
    assert_eq!(ids(&r)[0], "touchless", "{:?}", ids(&r));
    // The page is filled with what holds the common words.
    assert_eq!(r.total, 31);
    assert!(r.relaxed);
}

#[test]
fn a_product_type_outranks_a_rare_modifier() {
    // Nothing holds every word. "emerald" is the rarest word, but "sofa" names a category:
    // velvet sofas come before the emerald velvet cushion, however popular.
    let mut items: Vec<_> = (0..6)
        .map(|i| product(&format!("s{i}"), "Grey sofa").category("Furniture/Sofas"))
        .collect();
    items.push(product("velvet", "Green velvet sofa").category("Furniture/Sofas"));
    items.push(
        product("cushion", "Emerald velvet cushion")
            .category("Decor/Cushions")
            .popularity(1_000_000),
    );
    let idx = index(&items);
    let r = search(&idx, "emerald velvet sofa ");
    assert_eq!(ids(&r)[0], "velvet", "{:?}", ids(&r));
    assert!(r.hits.iter().all(|h| h.partial));
    let cushion = ids(&r).iter().position(|i| *i == "cushion").unwrap();
    assert_eq!(cushion, ids(&r).len() - 1, "{:?}", ids(&r));
}

#[test]
fn sizes_meet_however_they_are_written() {
    let idx = index(&[
        product("shelf", "Oak shelf, 6 inch deep"),
        product("board", "Pine board 2x4, 8 ft"),
        product("pipe", r#"PVC elbow 3/4""#),
        product("jar", "Spice jar 4oz"),
        product("six", "Six piece knife set 6"),
    ]);
    for q in [
        "6in shelf",
        "6 in shelf",
        r#"6" shelf"#,
        "6-inch shelf",
        "shelf 6 inches",
    ] {
        let r = search(&idx, q);
        assert_eq!(ids(&r)[0], "shelf", "{q}");
        assert!(!r.hits[0].partial, "{q}");
    }
    for q in ["2 x 4", "2x4", r#"2" x 4""#] {
        assert_eq!(ids(&search(&idx, q)), ["board"], "{q}");
    }
    assert_eq!(ids(&search(&idx, "8 feet board")), ["board"]);
    assert_eq!(ids(&search(&idx, "3/4 inch elbow")), ["pipe"]);
    assert_eq!(ids(&search(&idx, "4 ounce jar")), ["jar"]);
    // A bare number is not a size: "6" alone finds the set, not the six-inch shelf.
    assert_eq!(ids(&search(&idx, "6")), ["six"]);
}

#[test]
fn a_glued_word_the_catalog_can_split_is_found() {
    let idx = index(&[
        product("battery", "Black and Decker battery 18 V"),
        product("drill", "Black and Decker drill"),
        product("other", "Battery charger"),
    ]);
    let r = search(&idx, "deckerbattery");
    assert_eq!(ids(&r)[0], "battery", "{:?}", ids(&r));
    assert!(!r.hits[0].partial);
    // A word found nowhere that splits into nothing the catalog holds finds nothing.
    assert_eq!(search(&idx, "zzzqqqxxx").total, 0);
}

#[test]
fn the_word_as_typed_ranks_above_a_stem_only_match() {
    let idx = index(&[
        product("lamp", "Marble glass lamp").popularity(1_000_000),
        product("marbles", "Glass marbles"),
    ]);
    assert_eq!(ids(&search(&idx, "glass marbles ")), ["marbles", "lamp"]);
    let idx = index(&[
        product("block", "Terminal block").popularity(1_000_000),
        product("figure", "Terminator figure"),
    ]);
    assert_eq!(ids(&search(&idx, "terminator ")), ["figure", "block"]);
    // Stemming still finds the other forms.
    assert_eq!(search(&idx, "terminal ").total, 2);
}

#[test]
fn stop_words_are_not_required() {
    let idx = index(&[product("d", "Desk").desc("A desk kids love")]);
    let r = search(&idx, "desk for kids");
    assert_eq!((ids(&r), r.relaxed), (vec!["d"], false));
    // A query of stop words only is searched as typed.
    let idx = index(&[product("w", "The Who poster")]);
    assert_eq!(ids(&search(&idx, "the who")), ["w"]);
}

#[test]
fn pages_are_consistent_and_capped() {
    let items: Vec<_> = (0..40)
        .map(|i| product(&format!("p{i:02}"), "Plain mug").popularity(i))
        .collect();
    let idx = index(&items);
    let mut req = SearchRequest::new("mug", Currency::EUR);
    req.limit = 20;
    let all = ids(&idx.search(&req).unwrap()).join(",");
    req.limit = 10;
    let first = idx.search(&req).unwrap();
    req.offset = 10;
    let second = idx.search(&req).unwrap();
    assert_eq!(
        format!("{},{}", ids(&first).join(","), ids(&second).join(",")),
        all
    );
    assert_eq!(first.total, 40);

    req.offset = 995;
    assert!(matches!(
        idx.search(&req),
        Err(Error::Invalid {
            field: "offset",
            ..
        })
    ));
    req.offset = 0;
    req.limit = 0;
    assert!(matches!(
        idx.search(&req),
        Err(Error::Invalid { field: "limit", .. })
    ));
    req.limit = 101;
    assert!(idx.search(&req).is_err());
}

#[test]
fn browsing_without_text_orders_by_business_signals() {
    let idx = index(&[
        product("low", "Mug").popularity(1),
        product("high", "Cup").popularity(5_000),
    ]);
    let r = search(&idx, "");
    assert_eq!(ids(&r), ["high", "low"]);
    assert_eq!(r.total, 2);
}

#[test]
fn snippets_highlight_the_query_words() {
    let idx = index(&[product("l", "Bedside lamp").desc("A small lamp with a warm <glow>")]);
    let mut req = SearchRequest::new("lamp", Currency::EUR);
    req.highlight = true;
    let hit = &idx.search(&req).unwrap().hits[0];
    assert_eq!(hit.title_snippet.as_deref(), Some("Bedside <b>lamp</b>"));
    let desc = hit.description_snippet.as_deref().unwrap();
    assert!(desc.contains("<b>lamp</b>"), "{desc}");
    assert!(desc.contains("&lt;glow"), "not escaped: {desc}");
    // Without the flag, no snippets.
    assert!(search(&idx, "lamp").hits[0].title_snippet.is_none());
}

#[test]
fn prices_come_in_the_shoppers_currency_and_unknown_currencies_are_refused() {
    let idx = index(&[product("m", "Mug").eur(1_250).usd(1_399)]);
    let usd = idx
        .search(&SearchRequest::new("mug", Currency::USD))
        .unwrap();
    assert_eq!(
        usd.hits[0].price,
        Some(Money::from_minor(1_399, Currency::USD))
    );
    let gbp = idx.search(&SearchRequest::new("mug", Currency::GBP));
    assert!(matches!(gbp, Err(Error::CurrencyNotIndexed(_))));
    // A price filter in another currency than the request's is refused.
    let mut req = SearchRequest::new("mug", Currency::EUR);
    req.filters.price = Some(search::PriceRange {
        min: Some(Money::from_minor(1, Currency::USD)),
        max: None,
    });
    assert!(matches!(idx.search(&req), Err(Error::Invalid { .. })));
}

#[test]
fn merchandising_pins_and_hides_per_query() {
    let mut cfg = config();
    cfg.merch.set(
        "Lamp",
        MerchRule {
            pins: vec![
                (Sku::new("PROMO").unwrap(), 0),
                (Sku::new("FILTERED").unwrap(), 1),
            ],
            hides: vec![Sku::new("SKU-BAD").unwrap()],
        },
    );
    let idx = index_with(
        cfg,
        &[
            product("a", "Desk lamp").popularity(100),
            product("bad", "Broken lamp").popularity(1_000),
            product("promo", "Light bulb pack").sku("PROMO"),
            product("filtered", "Light bulb")
                .sku("FILTERED")
                .stock(Some(false)),
        ],
    );
    let mut req = SearchRequest::new("lamp", Currency::EUR);
    req.filters.in_stock_only = true;
    let r = idx.search(&req).unwrap();
    assert_eq!(ids(&r), ["promo", "a"]);
    assert_eq!(r.hits[0].placement, Placement::Pinned);
    assert_eq!(r.hits[1].placement, Placement::Ranked);
    // Another query is untouched (the other lamp fills the page as a partial match).
    assert_eq!(ids(&search(&idx, "broken lamp")), ["bad", "a"]);
}

#[test]
fn disjunctive_facets_keep_the_other_values_of_a_selected_facet() {
    let idx = index(&[
        product("a1", "Mug").brand("Acme").attr("colour", "red"),
        product("a2", "Mug").brand("Acme").attr("colour", "blue"),
        product("b1", "Mug").brand("Bolt").attr("colour", "red"),
    ]);
    let mut req = SearchRequest::new("mug", Currency::EUR);
    req.filters.brands = vec!["Acme".into()];
    req.facets.brand = true;
    req.facets.attributes = vec!["colour".into()];
    let r = idx.search(&req).unwrap();
    assert_eq!(r.total, 2);
    let brands: Vec<_> = r
        .facets
        .brand
        .iter()
        .map(|f| (f.value.as_str(), f.count))
        .collect();
    assert_eq!(brands, [("Acme", 2), ("Bolt", 1)]);
    // Colour counts follow the brand filter.
    let colours: Vec<_> = r.facets.attributes["colour"]
        .iter()
        .map(|f| (f.value.as_str(), f.count))
        .collect();
    assert_eq!(colours, [("blue", 1), ("red", 1)]);
}

#[test]
fn parallel_segment_search_returns_what_one_thread_does() {
    use search::{SearchIndex, Storage, TenantId};
    let build = |threads: usize| {
        let mut cfg = config();
        cfg.query_threads = threads;
        let idx = SearchIndex::create(TenantId::new("t").unwrap(), cfg, Storage::Ram).unwrap();
        // One commit per slice: several segments.
        for part in 0..4 {
            let mut w = idx.writer();
            for i in 0..25 {
                let n = part * 25 + i;
                let p = product(
                    &format!("p{n}"),
                    if n % 3 == 0 { "Oak table" } else { "Oak chair" },
                )
                .brand(["Acme", "Bolt", "Cosy"][n % 3])
                .eur(100 + i64::try_from(n).unwrap() * 10)
                .popularity(u64::try_from(n).unwrap());
                w.upsert(&p.0).unwrap();
            }
            w.commit(None).unwrap();
        }
        idx
    };
    let (one, two) = (build(1), build(2));
    assert!(two.segment_count() > 1);
    for text in ["oak", "oak table", "chair", ""] {
        let mut req = SearchRequest::new(text, Currency::EUR);
        req.limit = 30;
        req.facets.brand = true;
        req.facets.price_buckets = Some(vec![Money::from_minor(500, Currency::EUR)]);
        let (a, b) = (one.search(&req).unwrap(), two.search(&req).unwrap());
        assert_eq!(ids(&a), ids(&b), "{text:?}");
        assert_eq!((a.total, &a.facets), (b.total, &b.facets), "{text:?}");
    }
}

#[test]
fn a_search_request_reads_from_json() {
    // The fuzz target's seed: what an HTTP front end would pass through.
    let req: SearchRequest = serde_json::from_str(include_str!(
        "../../../../fuzz/seeds/search_query/filters.json"
    ))
    .unwrap();
    assert_eq!(req.filters.brands, ["Acme", "Bolt"]);
    assert_eq!(req.facets.top_k, 5);
    let idx = index(&[product("t", "Oak table")
        .brand("Acme")
        .category("Home/Kitchen")
        .attr("colour", "red")
        .eur(1_500)
        .rating(400)]);
    let r = idx.search(&req).unwrap();
    assert_eq!(ids(&r), ["t"]);
    assert_eq!(r.facets.brand[0].count, 1);
}

#[test]
fn a_brand_word_does_not_outrank_the_title_words() {
    // "mason" is also a word of the cookie jar's brand; the jars whose titles say "mason jars"
    // come first, however short the cookie jar's title (keywords weigh as the description).
    let idx = index(&[
        product("cookie", "Ceramic cookie jar").brand("Mason Cash"),
        product("half", "Mason jars half pint, 12 pack"),
        product("wide", "Mason jars wide mouth, set of 12"),
    ]);
    let r = search(&idx, "mason jars");
    assert_eq!(r.total, 3);
    assert_eq!(ids(&r)[2], "cookie", "{:?}", ids(&r));
    // Words the stemmer leaves alone count as typed: the reel the shopper named outranks the
    // expandable hose, though the last matched word is rarer there.
    let idx = index(&[
        product("garden", "Garden hose, expandable").popularity(2_000),
        product("reel", "Hose reel cart"),
    ]);
    assert_eq!(ids(&search(&idx, "expandable hose reel"))[0], "reel");
}
