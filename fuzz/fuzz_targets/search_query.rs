//! Any query text, or any JSON search request, against a small catalog: either a typed refusal
//! (a bound, an unknown currency) or results that keep their promises: no more hits than asked,
//! no product twice, prices in the request's currency, facet counts no larger than what they
//! could count.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use commerce_core::{
    CategoryPath, Currency, Money, PriceScope, PriceTable, ProductId, ProductProjection,
    ProductSignals, ProductStatus, Sku,
};
use libfuzzer_sys::fuzz_target;
use search::{Error, FacetRequest, SearchIndex, SearchRequest, Storage, TenantConfig, TenantId};

const WORDS: &[&str] = &[
    "oak", "table", "chair", "lamp", "velvet", "sofa", "garden", "kettle", "x200", "blender",
    "for", "the", "mirror", "cushion",
];

fn index() -> &'static SearchIndex {
    static INDEX: OnceLock<SearchIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut config = TenantConfig::new(&[Currency::EUR, Currency::USD]);
        config.synonyms.equivalent(&["sofa", "couch"]);
        let index = SearchIndex::create(TenantId::new("fuzz").expect("tenant"), config, Storage::Ram)
            .expect("index");
        let mut w = index.writer();
        for i in 0..60usize {
            let word = |k: usize| WORDS[(i * 7 + k * 3) % WORDS.len()];
            let mut prices = PriceTable::new(Currency::EUR);
            let minor = i64::try_from(100 + i * 37).expect("price");
            prices
                .set(PriceScope::Default, Money::from_minor(minor, Currency::EUR))
                .expect("price");
            let p = ProductProjection {
                sku: Sku::new(format!("SKU-{i}")).expect("sku"),
                product_id: ProductId::new(format!("p{i}")).expect("id"),
                title: format!("{} {} {}", word(0), word(1), word(2)),
                description: format!("{} {}", word(3), word(4)),
                brand: Some(["Acme", "Bolt", "Cosy"][i % 3].to_owned()),
                category: CategoryPath::parse(["Home/Kitchen", "Home/Living", "Garden"][i % 3])
                    .expect("category"),
                attributes: [("colour".to_owned(), ["red", "blue"][i % 2].to_owned())].into(),
                prices,
                primary_image: None,
                status: ProductStatus::Active,
                version: 1,
                signals: ProductSignals {
                    popularity: u64::try_from(i).expect("popularity"),
                    ..ProductSignals::default()
                },
                in_stock: Some(i % 4 != 0),
            };
            w.upsert(&p).expect("upsert");
        }
        w.commit(None).expect("commit");
        index
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let req = if text.starts_with('{') {
        match serde_json::from_str::<SearchRequest>(text) {
            Ok(r) => r,
            Err(_) => return,
        }
    } else {
        let mut r = SearchRequest::new(text, Currency::EUR);
        r.limit = 100;
        r.highlight = true;
        r.facets = FacetRequest {
            brand: true,
            category: true,
            attributes: vec!["colour".into()],
            price_buckets: Some(vec![Money::from_minor(1_000, Currency::EUR)]),
            rating: true,
            top_k: 10,
        };
        r
    };
    match index().search(&req) {
        Ok(r) => {
            assert!(r.hits.len() <= req.limit);
            let mut seen = HashSet::new();
            for h in &r.hits {
                assert!(seen.insert(h.product_id.clone()), "a product twice");
                if let Some(p) = h.price {
                    assert_eq!(p.currency(), req.currency);
                }
            }
            for f in r.facets.brand.iter().chain(&r.facets.category) {
                assert!(f.count <= 60);
            }
            assert!(r.total <= 60);
        }
        Err(Error::Invalid { .. } | Error::CurrencyNotIndexed(_)) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
});
