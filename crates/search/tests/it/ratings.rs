//! Ratings from the reviews engine: `ProductRatingChanged` sets the rating signal, stale and
//! redelivered ones change nothing, catalog upserts keep it, and a rating that overtakes its
//! product waits for it.

use std::sync::Arc;

use commerce_core::memory::{InMemoryCatalog, InMemoryEventLog};
use commerce_core::ports::EventLog;
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{
    CatalogStore, Currency, DomainEvent, EventEnvelope, EventId, ProductId, ProductStatus, Sku,
    UserId,
};
use futures::executor::block_on;
use reviews::{InMemoryReviewStore, ModerationAction, ReviewDraft, ReviewKey, Reviews};
use rust_decimal::Decimal;
use search::{Indexer, SearchIndex, SearchRequest, Storage, TenantId, reconcile};

use crate::fixtures::{AtLeastOnceLog, config, product};

fn ram_index() -> SearchIndex {
    SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Ram).unwrap()
}

fn rating(id: &str, centi: Option<i64>, count: u32, seq: u64) -> DomainEvent {
    DomainEvent::ProductRatingChanged {
        product_id: ProductId::new(id).unwrap(),
        sku: Sku::new(format!("SKU-{id}").to_uppercase()).unwrap(),
        rating: centi.map(|c| Decimal::new(c, 2)),
        review_count: count,
        seq,
    }
}

fn upsert(p: crate::fixtures::P) -> DomainEvent {
    DomainEvent::ProductUpserted {
        projection: Box::new(p.0),
    }
}

fn publish(log: &InMemoryEventLog, events: impl IntoIterator<Item = DomainEvent>) {
    let start = block_on(log.end_offset()).unwrap();
    let envelopes: Vec<EventEnvelope> = events
        .into_iter()
        .zip(start..)
        .map(|(e, i)| EventEnvelope::new(EventId::new(format!("evt-{i}")).unwrap(), t0(), e))
        .collect();
    log.append(&envelopes);
}

fn run_to_end(index: &SearchIndex, log: &dyn EventLog, batch: usize) {
    let indexer = Indexer::new(index, batch);
    while block_on(indexer.lag(log)).unwrap() > 0 {
        block_on(indexer.run_once(log)).unwrap();
    }
}

/// The indexed (rating, review count) of a product.
fn indexed_rating(index: &SearchIndex, id: &str) -> Option<(Option<Decimal>, u32)> {
    index
        .projection(&ProductId::new(id).unwrap())
        .unwrap()
        .map(|p| (p.signals.rating, p.signals.review_count))
}

/// Product ids browsing finds with a minimum rating.
fn rated_at_least(index: &SearchIndex, centi: i64) -> Vec<String> {
    let mut req = SearchRequest::new("", Currency::EUR);
    req.filters.min_rating = Some(Decimal::new(centi, 2));
    req.limit = 50;
    let mut ids: Vec<String> = index
        .search(&req)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.product_id.to_string())
        .collect();
    ids.sort();
    ids
}

fn d(centi: i64) -> Option<Decimal> {
    Some(Decimal::new(centi, 2))
}

#[test]
fn a_rating_event_sets_the_signal_and_an_older_or_repeated_one_is_skipped() {
    for batch in [1, 10] {
        let index = ram_index();
        let log = InMemoryEventLog::new();
        publish(
            &log,
            [
                upsert(product("m", "Mug")),
                upsert(product("k", "Kettle")),
                rating("m", Some(450), 2, 2),
                rating("m", Some(300), 1, 1), // older: skipped
                rating("m", Some(100), 9, 2), // same seq again: skipped
                rating("k", Some(380), 5, 1),
            ],
        );
        run_to_end(&index, &log, batch);
        assert_eq!(
            indexed_rating(&index, "m"),
            Some((d(450), 2)),
            "batch {batch}"
        );
        assert_eq!(indexed_rating(&index, "k"), Some((d(380), 5)));
        assert_eq!(rated_at_least(&index, 400), ["m"]);
        assert_eq!(rated_at_least(&index, 300), ["k", "m"]);
        // The rating empties when the last published review goes.
        publish(&log, [rating("m", None, 0, 3)]);
        run_to_end(&index, &log, batch);
        assert_eq!(indexed_rating(&index, "m"), Some((None, 0)));
        assert_eq!(rated_at_least(&index, 100), ["k"]);
    }
}

#[test]
fn catalog_changes_keep_the_rating_a_rating_event_set() {
    for batch in [1, 10] {
        let index = ram_index();
        let log = InMemoryEventLog::new();
        publish(
            &log,
            [
                upsert(product("m", "Mug")),
                rating("m", Some(400), 3, 1),
                // The catalog's projection carries empty signals.
                upsert(product("m", "Blue mug").version(2)),
                DomainEvent::PriceChanged {
                    product_id: ProductId::new("m").unwrap(),
                    sku: Sku::new("SKU-M").unwrap(),
                    old: None,
                    new: commerce_core::Money::from_minor(900, Currency::EUR),
                    version: 3,
                },
            ],
        );
        run_to_end(&index, &log, batch);
        let stored = index
            .projection(&ProductId::new("m").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((stored.title.as_str(), stored.version), ("Blue mug", 3));
        assert_eq!(
            indexed_rating(&index, "m"),
            Some((d(400), 3)),
            "batch {batch}"
        );
        // Before any rating event, an upsert's own signals are taken as given.
        publish(&log, [upsert(product("k", "Kettle").rating(250))]);
        run_to_end(&index, &log, batch);
        assert_eq!(indexed_rating(&index, "k"), Some((d(250), 0)));
        publish(&log, [rating("k", Some(500), 1, 1)]);
        run_to_end(&index, &log, batch);
        assert_eq!(indexed_rating(&index, "k"), Some((d(500), 1)));
    }
}

#[test]
fn a_rating_that_overtakes_its_product_waits_for_it() {
    for batch in [1, 10] {
        let index = ram_index();
        let log = InMemoryEventLog::new();
        publish(
            &log,
            [rating("m", Some(420), 4, 2), rating("m", Some(100), 1, 1)],
        );
        run_to_end(&index, &log, batch);
        assert_eq!(index.num_docs().unwrap(), 0, "nothing searchable yet");
        assert_eq!(
            index.projection(&ProductId::new("m").unwrap()).unwrap(),
            None
        );
        assert!(rated_at_least(&index, 100).is_empty());
        assert_eq!(
            index
                .search(&SearchRequest::new("m", Currency::EUR))
                .unwrap()
                .total,
            0
        );
        assert!(index.indexed_versions().unwrap().is_empty());
        // A price change or retirement of a product not yet upserted is still skipped.
        publish(
            &log,
            [DomainEvent::ProductRetired {
                product_id: ProductId::new("m").unwrap(),
                sku: Sku::new("SKU-M").unwrap(),
                version: 5,
            }],
        );
        publish(&log, [upsert(product("m", "Mug"))]);
        run_to_end(&index, &log, batch);
        assert_eq!(
            indexed_rating(&index, "m"),
            Some((d(420), 4)),
            "batch {batch}"
        );
        assert_eq!(rated_at_least(&index, 400), ["m"]);
        publish(&log, [rating("m", Some(300), 3, 2)]);
        run_to_end(&index, &log, batch);
        assert_eq!(
            indexed_rating(&index, "m"),
            Some((d(420), 4)),
            "seq 2 was applied"
        );
    }
}

#[test]
fn a_retired_product_keeps_its_rating_for_when_it_comes_back() {
    let index = ram_index();
    let log = InMemoryEventLog::new();
    publish(
        &log,
        [
            upsert(product("m", "Mug")),
            rating("m", Some(400), 1, 1),
            DomainEvent::ProductRetired {
                product_id: ProductId::new("m").unwrap(),
                sku: Sku::new("SKU-M").unwrap(),
                version: 2,
            },
            rating("m", Some(450), 2, 2), // lands on the tombstone
            rating("m", Some(100), 1, 1), // stale: skipped
        ],
    );
    run_to_end(&index, &log, 2);
    assert!(rated_at_least(&index, 100).is_empty(), "retired");
    publish(&log, [upsert(product("m", "Mug").version(3))]);
    run_to_end(&index, &log, 2);
    assert_eq!(indexed_rating(&index, "m"), Some((d(450), 2)));
}

#[test]
fn reconciliation_keeps_ratings_including_one_awaiting_its_product() {
    let index = ram_index();
    let log = InMemoryEventLog::new();
    publish(&log, [rating("p-1", Some(350), 2, 1)]);
    run_to_end(&index, &log, 10);
    // The catalog has the product, but its upsert never reached the index.
    let catalog = InMemoryCatalog::new();
    let _ = block_on(catalog.put(sample_product("p-1", "SKU-P-1"), &[])).unwrap();
    let report = block_on(reconcile(&index, &catalog, true)).unwrap();
    assert_eq!(report.missing, [ProductId::new("p-1").unwrap()]);
    assert_eq!(indexed_rating(&index, "p-1"), Some((d(350), 2)));
    // The rating event's seq survived the repair: an older one is still skipped.
    publish(&log, [rating("p-1", Some(100), 1, 1)]);
    run_to_end(&index, &log, 10);
    assert_eq!(indexed_rating(&index, "p-1"), Some((d(350), 2)));
    // A catalog retirement the index missed leaves a tombstone with the rating.
    let mut retired = sample_product("p-1", "SKU-P-1");
    (retired.status, retired.version) = (ProductStatus::Retired, 2);
    let _ = block_on(catalog.put(retired, &[])).unwrap();
    let report = block_on(reconcile(&index, &catalog, true)).unwrap();
    assert_eq!(report.orphaned, [ProductId::new("p-1").unwrap()]);
    let mut back = sample_product("p-1", "SKU-P-1");
    back.version = 3;
    publish(
        &log,
        [DomainEvent::ProductUpserted {
            projection: Box::new(commerce_core::ProductProjection::from_product(&back)),
        }],
    );
    run_to_end(&index, &log, 10);
    assert_eq!(indexed_rating(&index, "p-1"), Some((d(350), 2)));
}

/// The whole path: the catalog and the reviews store commit to one log, the indexer follows
/// it, and a shopper's "4+ stars" filter sees the exact average.
#[test]
fn reviews_published_through_the_engine_reach_the_rating_filter_exactly() {
    let log = Arc::new(InMemoryEventLog::new());
    let catalog = Arc::new(InMemoryCatalog::with_outbox(log.clone()));
    for (id, sku) in [("mug", "MUG-1"), ("pot", "POT-1")] {
        let p = sample_product(id, sku);
        let events = p.change_events(None, t0()).unwrap();
        let _ = block_on(catalog.put(p, &events)).unwrap();
    }
    let store = Arc::new(InMemoryReviewStore::with_outbox(log.clone()));
    let reviews = Reviews::new(store, catalog);
    let mug = ProductId::new("mug").unwrap();
    let review = |author: &str, stars| {
        let key = ReviewKey::new(mug.clone(), UserId::new(author).unwrap());
        let draft = ReviewDraft {
            product_id: mug.clone(),
            author: key.author.clone(),
            stars,
            title: String::new(),
            body: String::new(),
        };
        block_on(reviews.submit(draft, t0())).unwrap();
        block_on(reviews.moderate(&key, &ModerationAction::Publish, t0())).unwrap();
        key
    };
    let five = review("ada", 5);
    review("bob", 4);
    review("cy", 4);
    let index = ram_index();
    run_to_end(&index, &*log, 3);
    assert_eq!(indexed_rating(&index, "mug"), Some((d(433), 3)), "13 / 3");
    assert_eq!(rated_at_least(&index, 433), ["mug"]);
    assert!(rated_at_least(&index, 434).is_empty());
    let mut req = SearchRequest::new("", Currency::EUR);
    req.facets.rating = true;
    let facets = index.search(&req).unwrap().facets.rating;
    let four_up = facets.iter().find(|b| b.at_least == 4).unwrap();
    assert_eq!(four_up.count, 1, "{facets:?}");

    // A rejection lowers the rating: 8 / 2.
    block_on(reviews.moderate(
        &five,
        &ModerationAction::Reject {
            note: "not about the mug".into(),
        },
        t0(),
    ))
    .unwrap();
    run_to_end(&index, &*log, 3);
    assert_eq!(indexed_rating(&index, "mug"), Some((d(400), 2)));
    assert!(rated_at_least(&index, 401).is_empty());
    assert_eq!(rated_at_least(&index, 400), ["mug"]);

    // A relay redelivers the whole log at later offsets: nothing changes.
    let redelivered = AtLeastOnceLog::default();
    let events = log.snapshot();
    redelivered
        .0
        .lock()
        .unwrap()
        .extend(events.iter().chain(events.iter()).cloned());
    let before = index.projection(&mug).unwrap();
    let indexer = Indexer::new(&index, 100);
    while block_on(indexer.lag(&redelivered)).unwrap() > 0 {
        let report = block_on(indexer.run_once(&redelivered)).unwrap();
        assert_eq!(report.applied, 0, "{report:?}");
    }
    assert_eq!(index.projection(&mug).unwrap(), before);
    assert_eq!(indexed_rating(&index, "mug"), Some((d(400), 2)));
}
