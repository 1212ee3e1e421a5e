//! The indexing pipeline: events in, searchable out; exact resume; backpressure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use commerce_core::{Currency, DomainEvent, Money, PriceScope, ProductId, ProductProjection};
use proptest::prelude::*;
use search::{
    ChangeSource, Error, Indexer, MemoryChangeLog, SearchIndex, SearchRequest, Storage, TenantId,
};

use crate::fixtures::{config, product, search, temp_dir};

fn upsert(p: ProductProjection) -> DomainEvent {
    DomainEvent::ProductUpserted {
        projection: Box::new(p),
    }
}

fn price(id: &str, minor: i64, version: u64) -> DomainEvent {
    DomainEvent::PriceChanged {
        product_id: ProductId::new(id).unwrap(),
        sku: commerce_core::Sku::new(format!("SKU-{id}").to_uppercase()).unwrap(),
        old: None,
        new: Money::from_minor(minor, Currency::EUR),
        version,
    }
}

fn retire(id: &str, version: u64) -> DomainEvent {
    DomainEvent::ProductRetired {
        product_id: ProductId::new(id).unwrap(),
        sku: commerce_core::Sku::new(format!("SKU-{id}").to_uppercase()).unwrap(),
        version,
    }
}

fn ram_index() -> SearchIndex {
    SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Ram).unwrap()
}

fn eur_price(index: &SearchIndex, id: &str) -> Option<i64> {
    index
        .projection(&ProductId::new(id).unwrap())
        .unwrap()
        .map(|p| {
            p.prices
                .resolve(Currency::EUR, None, None)
                .unwrap()
                .to_minor()
                .unwrap()
        })
}

#[test]
fn catalog_events_become_searchable_and_stale_ones_are_skipped() {
    let index = ram_index();
    let log = MemoryChangeLog::new(100);
    let indexer = Indexer::new(&index, 10);
    log.append(upsert(product("m", "Blue mug").eur(1_000).0))
        .unwrap();
    log.append(price("m", 900, 2)).unwrap();
    log.append(price("m", 800, 2)).unwrap(); // same version again: skipped
    log.append(upsert(product("m", "Old blue mug").version(1).0))
        .unwrap(); // older: skipped
    log.append(price("ghost", 100, 5)).unwrap(); // unknown product: skipped
    log.append(upsert(product("k", "Kettle").0)).unwrap();
    assert_eq!(indexer.lag(&log), 6);
    let report = indexer.run_once(&log).unwrap();
    assert_eq!((report.read, report.applied, report.skipped), (6, 3, 3));
    assert_eq!(indexer.lag(&log), 0);
    assert_eq!(log.lag(), 0);
    assert_eq!(eur_price(&index, "m"), Some(900));
    assert_eq!(
        search(&index, "mug").hits[0].price,
        Some(Money::from_minor(900, Currency::EUR))
    );
    assert_eq!(search(&index, "mug").hits[0].catalog_version, 2);

    log.append(retire("m", 3)).unwrap();
    indexer.run_once(&log).unwrap();
    assert_eq!(search(&index, "mug").total, 0);
    assert_eq!(search(&index, "kettle").total, 1);
    // A late price change of the retired product does not bring it back.
    log.append(price("m", 700, 4)).unwrap();
    indexer.run_once(&log).unwrap();
    assert_eq!(search(&index, "mug").total, 0);
}

#[test]
fn a_full_log_pushes_back_until_the_indexer_catches_up() {
    let index = ram_index();
    let log = Arc::new(MemoryChangeLog::new(10));
    for i in 0..10 {
        log.append(upsert(product(&format!("p{i}"), "Mug").0))
            .unwrap();
    }
    let full = log.append(upsert(product("x", "Mug").0));
    assert!(matches!(
        full,
        Err(Error::Backpressure {
            lag: 10,
            capacity: 10
        })
    ));
    let indexer = Indexer::new(&index, 4);
    indexer.run_once(&*log).unwrap();
    assert_eq!(indexer.lag(&*log), 6);
    log.append(upsert(product("x", "Mug").0)).unwrap();

    // A blocking producer waits for the indexer instead of failing.
    let producer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..50 {
                log.append_blocking(upsert(product(&format!("q{i}"), "Cup").0));
            }
        })
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !producer.is_finished() || indexer.lag(&*log) > 0 {
                indexer.run_once(&*log).unwrap();
                log.wait_for(index.next_offset(), Duration::from_millis(20));
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
        });
    });
    assert_eq!(index.num_docs().unwrap(), 61);
    let mut req = SearchRequest::new("cup", Currency::EUR);
    req.limit = 100;
    assert_eq!(index.search(&req).unwrap().total, 50);
}

#[test]
fn a_log_that_dropped_what_the_index_needs_says_so() {
    let log = MemoryChangeLog::new(10);
    log.append(upsert(product("a", "Mug").0)).unwrap();
    log.acknowledge(1);
    let fresh = ram_index();
    let err = Indexer::new(&fresh, 10).run_once(&log).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetOutOfRange {
                asked: 0,
                first: 1,
                ..
            }
        ),
        "{err}"
    );
}

/// The state the events should leave: live product → (version, EUR price in minor units).
fn model(events: &[DomainEvent]) -> BTreeMap<String, (u64, i64)> {
    let mut live: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut gone: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        match e {
            DomainEvent::ProductUpserted { projection: p } => {
                let id = p.product_id.as_str().to_owned();
                let cur = live.get(&id).map(|x| x.0).or(gone.get(&id).copied());
                if cur.is_none_or(|v| v < p.version) {
                    let minor = p
                        .prices
                        .resolve(Currency::EUR, None, None)
                        .unwrap()
                        .to_minor()
                        .unwrap();
                    gone.remove(&id);
                    live.insert(id, (p.version, minor));
                }
            }
            DomainEvent::PriceChanged {
                product_id,
                new,
                version,
                ..
            } => {
                if let Some(x) = live.get_mut(product_id.as_str())
                    && x.0 < *version
                {
                    *x = (*version, new.to_minor().unwrap());
                }
            }
            DomainEvent::ProductRetired {
                product_id,
                version,
                ..
            } => {
                // Retiring at v makes anything up to v stale, whether the product was live
                // or already retired at an older version.
                let id = product_id.as_str().to_owned();
                if live.get(&id).is_some_and(|x| x.0 < *version) {
                    live.remove(&id);
                    gone.insert(id, *version);
                } else if let Some(g) = gone.get_mut(&id)
                    && *g < *version
                {
                    *g = *version;
                }
            }
            _ => {}
        }
    }
    live
}

fn event_strategy() -> impl Strategy<Value = Vec<DomainEvent>> {
    prop::collection::vec((0u8..3, 0usize..6, 1u64..8, 1i64..5_000), 1..60).prop_map(|raw| {
        raw.into_iter()
            .map(|(kind, p, version, minor)| {
                let id = format!("p{p}");
                match kind {
                    0 => upsert(product(&id, "Mug").eur(minor).version(version).0),
                    1 => price(&id, minor, version),
                    _ => retire(&id, version),
                }
            })
            .collect()
    })
}

fn check_against_model(index: &SearchIndex, events: &[DomainEvent]) -> Result<(), TestCaseError> {
    let expected = model(events);
    let indexed = index.indexed_versions().unwrap();
    prop_assert_eq!(
        index.num_docs().unwrap(),
        expected.len() as u64,
        "duplicates or losses"
    );
    for (id, (version, minor)) in &expected {
        let pid = ProductId::new(id).unwrap();
        prop_assert_eq!(indexed.get(&pid), Some(version), "version of {}", id);
        prop_assert_eq!(eur_price(index, id), Some(*minor), "price of {}", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Kill the indexer mid-batch (staged, not committed) or between its commit and its
    /// acknowledgement; reopen the directory and run to the end: the index equals a model that
    /// applied every event exactly once.
    #[test]
    fn an_indexer_killed_anywhere_resumes_without_loss_or_duplication(
        events in event_strategy(),
        batch in 1usize..8,
        batches_before in 0usize..5,
        crash_after_commit in any::<bool>(),
    ) {
        let dir = temp_dir("resume");
        let log = MemoryChangeLog::new(1_000);
        for e in &events {
            log.append(e.clone()).unwrap();
        }
        {
            let index = SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Dir(dir.clone())).unwrap();
            let indexer = Indexer::new(&index, batch);
            for _ in 0..batches_before {
                indexer.run_once(&log).unwrap();
            }
            let pending = log.read(index.next_offset(), batch).unwrap();
            let mut writer = index.writer();
            let report = indexer.apply(&mut writer, &pending).unwrap();
            if crash_after_commit {
                writer.commit(Some(report.next_offset)).unwrap();
                // ... and dies before acknowledging the source.
            } else {
                drop(writer); // dies mid-batch: nothing staged is committed
            }
        }
        let index = SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Dir(dir.clone())).unwrap();
        let indexer = Indexer::new(&index, batch);
        let resumed_from = index.next_offset();
        let mut read_after_restart = 0;
        while indexer.lag(&log) > 0 {
            read_after_restart += indexer.run_once(&log).unwrap().read;
        }
        prop_assert_eq!(read_after_restart as u64, events.len() as u64 - resumed_from);
        check_against_model(&index, &events)?;
        drop(index);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// In memory, any batching of the same events ends in the same state as the model.
    #[test]
    fn any_batching_ends_in_the_models_state(events in event_strategy(), batch in 1usize..20) {
        let index = ram_index();
        let log = MemoryChangeLog::new(1_000);
        for e in &events {
            log.append(e.clone()).unwrap();
        }
        let indexer = Indexer::new(&index, batch);
        while indexer.lag(&log) > 0 {
            indexer.run_once(&log).unwrap();
        }
        check_against_model(&index, &events)?;
    }
}

#[test]
fn the_price_scope_set_by_a_price_change_is_the_default_one() {
    // A product with a locale price keeps it; the event sets the currency's default price.
    let index = ram_index();
    let mut p = product("m", "Mug").eur(1_000).0;
    p.prices
        .set(
            PriceScope::Locale(commerce_core::Locale::new("de-AT").unwrap()),
            Money::from_minor(1_100, Currency::EUR),
        )
        .unwrap();
    let log = MemoryChangeLog::new(10);
    log.append(upsert(p)).unwrap();
    log.append(price("m", 950, 2)).unwrap();
    Indexer::new(&index, 10).run_once(&log).unwrap();
    let stored = index
        .projection(&ProductId::new("m").unwrap())
        .unwrap()
        .unwrap();
    let at = commerce_core::Locale::new("de-AT").unwrap();
    assert_eq!(
        stored
            .prices
            .resolve(Currency::EUR, Some(&at), None)
            .unwrap()
            .to_minor()
            .unwrap(),
        1_100
    );
    assert_eq!(eur_price(&index, "m"), Some(950));
}

#[test]
fn the_indexer_follows_the_shared_domain_log_and_skips_other_events() {
    use commerce_core::memory::InMemoryEventLog;
    use commerce_core::ports::EventPublisher;
    use commerce_core::{EventEnvelope, EventId};
    use futures::executor::block_on;

    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let envelope = |i: u32, event: DomainEvent| {
        EventEnvelope::new(EventId::new(format!("evt-{i}")).unwrap(), at, event)
    };
    let log = InMemoryEventLog::new();
    block_on(log.publish(&[
        envelope(0, upsert(product("m", "Blue mug").0)),
        envelope(
            1,
            DomainEvent::CartAbandoned {
                cart_id: commerce_core::CartId::new("c-1").unwrap(),
                user_id: None,
                last_activity_at: at,
            },
        ),
        envelope(2, price("m", 450, 2)),
    ]))
    .unwrap();
    let index = ram_index();
    let indexer = Indexer::new(&index, 2);
    assert_eq!(block_on(indexer.lag_in_log(&log)).unwrap(), 3);
    let first = block_on(indexer.run_once_from_log(&log)).unwrap();
    assert_eq!((first.read, first.applied, first.skipped), (2, 1, 1));
    block_on(indexer.run_once_from_log(&log)).unwrap();
    assert_eq!(block_on(indexer.lag_in_log(&log)).unwrap(), 0);
    assert_eq!(index.next_offset(), 3);
    assert_eq!(eur_price(&index, "m"), Some(450));
}
