//! The indexing pipeline: events from the shared log in, searchable out; exact resume; a
//! redelivered event applied once.

use std::collections::BTreeMap;

use commerce_core::memory::InMemoryEventLog;
use commerce_core::ports::EventLog;
use commerce_core::{
    Currency, DomainEvent, ErrorKind, EventEnvelope, EventId, Money, PriceScope, ProductId,
    ProductProjection,
};
use futures::executor::block_on;
use proptest::prelude::*;
use search::{Error, Indexer, SearchIndex, SearchRequest, Storage, TenantId};

use crate::fixtures::{AtLeastOnceLog, config, product, search, temp_dir};

/// Commits `events` to `log`, numbering their ids after what the log holds.
fn publish(log: &InMemoryEventLog, events: impl IntoIterator<Item = DomainEvent>) {
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let start = block_on(log.end_offset()).unwrap();
    let envelopes: Vec<EventEnvelope> = events
        .into_iter()
        .zip(start..)
        .map(|(e, i)| EventEnvelope::new(EventId::new(format!("evt-{i}")).unwrap(), at, e))
        .collect();
    log.append(&envelopes);
}

fn run_to_end(indexer: &Indexer<'_>, log: &dyn EventLog) -> usize {
    let mut read = 0;
    while block_on(indexer.lag(log)).unwrap() > 0 {
        read += block_on(indexer.run_once(log)).unwrap().read;
    }
    read
}

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
    let log = InMemoryEventLog::new();
    let indexer = Indexer::new(&index, 10);
    publish(
        &log,
        [
            upsert(product("m", "Blue mug").eur(1_000).0),
            price("m", 900, 2),
            price("m", 800, 2), // same version again: skipped
            upsert(product("m", "Old blue mug").version(1).0), // older: skipped
            price("ghost", 100, 5), // unknown product: skipped
            upsert(product("k", "Kettle").0),
        ],
    );
    assert_eq!(block_on(indexer.lag(&log)).unwrap(), 6);
    let report = block_on(indexer.run_once(&log)).unwrap();
    assert_eq!((report.read, report.applied, report.skipped), (6, 3, 3));
    assert_eq!(block_on(indexer.lag(&log)).unwrap(), 0);
    assert_eq!(eur_price(&index, "m"), Some(900));
    assert_eq!(
        search(&index, "mug").hits[0].price,
        Some(Money::from_minor(900, Currency::EUR))
    );
    assert_eq!(search(&index, "mug").hits[0].catalog_version, 2);

    publish(&log, [retire("m", 3)]);
    block_on(indexer.run_once(&log)).unwrap();
    assert_eq!(search(&index, "mug").total, 0);
    assert_eq!(search(&index, "kettle").total, 1);
    // A late price change of the retired product does not bring it back.
    publish(&log, [price("m", 700, 4)]);
    block_on(indexer.run_once(&log)).unwrap();
    assert_eq!(search(&index, "mug").total, 0);
}

#[test]
fn a_running_indexer_waits_for_events_and_stops_on_request() {
    let index = ram_index();
    let log = InMemoryEventLog::new();
    let indexer = Indexer::new(&index, 4);
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    std::thread::scope(|s| {
        let running = s.spawn(|| {
            block_on(indexer.run(&log, async move {
                let _ = stopped.await;
            }))
        });
        for i in 0..50 {
            publish(&log, [upsert(product(&format!("q{i}"), "Cup").0)]);
        }
        // Caught up means the index committed every offset: the indexer is waiting on the log.
        while index.next_offset() < 50 {
            std::thread::yield_now();
        }
        stop.send(()).unwrap();
        running.join().unwrap().unwrap();
    });
    let mut req = SearchRequest::new("cup", Currency::EUR);
    req.limit = 100;
    assert_eq!(index.search(&req).unwrap().total, 50);
}

#[test]
fn a_log_that_dropped_what_the_index_needs_says_so() {
    let log = InMemoryEventLog::new();
    publish(&log, [upsert(product("a", "Mug").0)]);
    log.truncate_before(1);
    let fresh = ram_index();
    let err = block_on(Indexer::new(&fresh, 10).run_once(&log)).unwrap_err();
    assert!(
        matches!(&err, Error::Source(e) if e.kind == ErrorKind::NotFound),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn an_event_redelivered_at_a_later_offset_changes_the_index_once() {
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let env = |id: &str, e: DomainEvent| EventEnvelope::new(EventId::new(id).unwrap(), at, e);
    let first_price = env("evt-price", price("m", 900, 2));
    let log = AtLeastOnceLog::default();
    log.0.lock().unwrap().extend([
        env("evt-up", upsert(product("m", "Blue mug").eur(1_000).0)),
        first_price.clone(),
        env("evt-price-3", price("m", 700, 3)),
        // A relay crashed after publishing and republished an older batch.
        first_price,
    ]);
    let index = ram_index();
    let indexer = Indexer::new(&index, 10);
    let report = block_on(indexer.run_once(&log)).unwrap();
    assert_eq!((report.read, report.applied, report.skipped), (4, 3, 1));
    assert_eq!(
        eur_price(&index, "m"),
        Some(700),
        "the redelivery did not roll back"
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
    prop::collection::vec((0u8..4, 0usize..6, 1u64..8, 1i64..5_000), 1..60).prop_map(|raw| {
        raw.into_iter()
            .map(|(kind, p, version, minor)| {
                let id = format!("p{p}");
                match kind {
                    0 => upsert(product(&id, "Mug").eur(minor).version(version).0),
                    1 => price(&id, minor, version),
                    2 => retire(&id, version),
                    // A rating of minor % 501 hundredths, its seq drawn like a version.
                    _ => rating(&id, minor % 501, version),
                }
            })
            .collect()
    })
}

fn rating(id: &str, centi: i64, seq: u64) -> DomainEvent {
    DomainEvent::ProductRatingChanged {
        product_id: ProductId::new(id).unwrap(),
        sku: commerce_core::Sku::new(format!("SKU-{id}").to_uppercase()).unwrap(),
        rating: Some(rust_decimal::Decimal::new(centi, 2)),
        review_count: u32::try_from(seq).unwrap(),
        seq,
    }
}

/// The rating each product should hold: the one of the highest seq, whatever the product's
/// state when it came (live, retired, or not yet upserted).
fn rating_model(events: &[DomainEvent]) -> BTreeMap<String, (u64, rust_decimal::Decimal)> {
    let mut out: BTreeMap<String, (u64, rust_decimal::Decimal)> = BTreeMap::new();
    for e in events {
        if let DomainEvent::ProductRatingChanged {
            product_id,
            rating: Some(r),
            seq,
            ..
        } = e
            && out
                .get(product_id.as_str())
                .is_none_or(|held| held.0 < *seq)
        {
            out.insert(product_id.to_string(), (*seq, *r));
        }
    }
    out
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
        let signals = index.projection(&pid).unwrap().unwrap().signals;
        let expected = rating_model(events)
            .get(id)
            .map(|(seq, r)| (Some(*r), *seq));
        prop_assert_eq!(
            (signals.rating, u64::from(signals.review_count)),
            expected.unwrap_or((None, 0)),
            "rating of {}",
            id
        );
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
        let log = InMemoryEventLog::new();
        publish(&log, events.iter().cloned());
        {
            let index = SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Dir(dir.clone())).unwrap();
            let indexer = Indexer::new(&index, batch);
            for _ in 0..batches_before {
                block_on(indexer.run_once(&log)).unwrap();
            }
            let pending = block_on(log.read(index.next_offset(), batch)).unwrap();
            let mut writer = index.writer();
            let report = indexer.apply(&mut writer, &pending).unwrap();
            if crash_after_commit {
                writer.commit(Some(report.next_offset)).unwrap();
                // ... and dies before its caller hears of the commit.
            } else {
                drop(writer); // dies mid-batch: nothing staged is committed
            }
        }
        let index = SearchIndex::create(TenantId::new("t").unwrap(), config(), Storage::Dir(dir.clone())).unwrap();
        let indexer = Indexer::new(&index, batch);
        let resumed_from = index.next_offset();
        let read_after_restart = run_to_end(&indexer, &log);
        prop_assert_eq!(read_after_restart as u64, events.len() as u64 - resumed_from);
        check_against_model(&index, &events)?;
        drop(index);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// In memory, any batching of the same events ends in the same state as the model.
    #[test]
    fn any_batching_ends_in_the_models_state(events in event_strategy(), batch in 1usize..20) {
        let index = ram_index();
        let log = InMemoryEventLog::new();
        publish(&log, events.iter().cloned());
        let indexer = Indexer::new(&index, batch);
        run_to_end(&indexer, &log);
        check_against_model(&index, &events)?;
    }

    /// Events spread over partitions by product (as a broker's keys spread them), read with
    /// any batch size: the same state as the model.
    #[test]
    fn any_partitioning_ends_in_the_models_state(
        events in event_strategy(),
        partitions in 1usize..5,
        batch in 1usize..20,
    ) {
        let index = ram_index();
        let logs: Vec<InMemoryEventLog> = (0..partitions).map(|_| InMemoryEventLog::new()).collect();
        for e in &events {
            let key = e.aggregate_id().bytes().map(usize::from).sum::<usize>() % partitions;
            publish(&logs[key], [e.clone()]);
        }
        let parts: Vec<&dyn EventLog> = logs.iter().map(|l| l as &dyn EventLog).collect();
        let indexer = Indexer::new(&index, batch);
        let mut read = 0;
        loop {
            let report = block_on(indexer.run_once_partitions(&parts)).unwrap();
            if report.read == 0 {
                break;
            }
            read += report.read;
        }
        prop_assert_eq!(read, events.len());
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
    let log = InMemoryEventLog::new();
    publish(&log, [upsert(p), price("m", 950, 2)]);
    block_on(Indexer::new(&index, 10).run_once(&log)).unwrap();
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
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let log = InMemoryEventLog::new();
    publish(
        &log,
        [
            upsert(product("m", "Blue mug").0),
            DomainEvent::CartAbandoned {
                cart_id: commerce_core::CartId::new("c-1").unwrap(),
                user_id: None,
                last_activity_at: at,
            },
            price("m", 450, 2),
        ],
    );
    let index = ram_index();
    let indexer = Indexer::new(&index, 2);
    assert_eq!(block_on(indexer.lag(&log)).unwrap(), 3);
    let first = block_on(indexer.run_once(&log)).unwrap();
    assert_eq!((first.read, first.applied, first.skipped), (2, 1, 1));
    block_on(indexer.run_once(&log)).unwrap();
    assert_eq!(block_on(indexer.lag(&log)).unwrap(), 0);
    assert_eq!(index.next_offset(), 3);
    assert_eq!(eur_price(&index, "m"), Some(450));
}

#[test]
fn a_catalog_write_reaches_the_index_through_the_outbox() {
    use commerce_core::memory::InMemoryCatalog;
    use commerce_core::{CatalogStore, testkit::sample_product};
    let log = std::sync::Arc::new(InMemoryEventLog::new());
    let catalog = InMemoryCatalog::with_outbox(log.clone());
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let mut mug = sample_product("p-mug", "MUG-1");
    mug.title = "Enamel camping mug".into();
    let events = mug.change_events(None, at).unwrap();
    assert_eq!(
        block_on(catalog.put(mug.clone(), &events)).unwrap(),
        commerce_core::CasOutcome::Committed
    );
    let mut cheaper = mug.clone();
    cheaper.version = 2;
    cheaper
        .prices
        .set(PriceScope::Default, Money::from_minor(1_250, Currency::EUR))
        .unwrap();
    let events = cheaper.change_events(Some(&mug), at).unwrap();
    assert_eq!(
        block_on(catalog.put(cheaper, &events)).unwrap(),
        commerce_core::CasOutcome::Committed
    );

    let index = ram_index();
    run_to_end(&Indexer::new(&index, 100), &*log);
    let hits = search(&index, "camping mug").hits;
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].catalog_version, eur_price(&index, "p-mug")),
        (2, Some(1_250))
    );
}

/// A log whose offsets skip (every event at an even offset), as a broker partition's do when
/// records were parked: the indexer's next offset is one past the last event.
#[derive(Debug)]
struct Spaced(InMemoryEventLog);

#[async_trait::async_trait]
impl EventLog for Spaced {
    async fn read(
        &self,
        from: u64,
        max: usize,
    ) -> commerce_core::PortResult<Vec<commerce_core::ports::LoggedEvent>> {
        let mut events = self.0.read(from.div_ceil(2), max).await?;
        for e in &mut events {
            e.offset *= 2;
        }
        Ok(events)
    }
    async fn end_offset(&self) -> commerce_core::PortResult<u64> {
        Ok(self.0.end_offset().await? * 2)
    }
    async fn wait(&self, from: u64) -> commerce_core::PortResult<()> {
        self.0.wait(from.div_ceil(2)).await
    }
}

/// A topic's partitions as one log each: one commit records every partition's offset, a
/// reopened index resumes each exactly, gaps are taken as they are, and a product's changes
/// arriving on two partitions in either order end at its last version.
#[test]
fn partitions_are_indexed_with_an_offset_each_and_resume_after_a_reopen() {
    let dir = temp_dir("partitions");
    let logs = [InMemoryEventLog::new(), InMemoryEventLog::new()];
    let spaced = Spaced(InMemoryEventLog::new());
    let p = |id: &str, title: &str, version: u64| {
        let mut p = product(id, title).0;
        p.version = version;
        upsert(p)
    };
    publish(&logs[0], [p("a", "Blue mug", 1), p("b", "Red kettle", 1)]);
    publish(
        &logs[1],
        [p("c", "Green teapot", 1), p("a", "Blue mug large", 3)],
    );
    publish(
        &spaced.0,
        [p("d", "Steel pan", 1), p("a", "Blue mug small", 2)],
    );
    let parts: [&dyn EventLog; 3] = [&logs[0], &logs[1], &spaced];
    {
        let index = SearchIndex::create(
            TenantId::new("t").unwrap(),
            config(),
            Storage::Dir(dir.clone()),
        )
        .unwrap();
        let report = block_on(Indexer::new(&index, 100).run_once_partitions(&parts)).unwrap();
        assert_eq!(report.read, 6);
        assert_eq!(
            report.next_offsets,
            BTreeMap::from([(0, 2), (1, 2), (2, 3)])
        );
        assert_eq!(index.partition_offsets(), report.next_offsets);
        assert_eq!(index.next_offset(), 0, "the single-log offset is untouched");
        // Version 2 of `a` came after version 3 (another partition): skipped.
        assert_eq!(
            index
                .indexed_version(&ProductId::new("a").unwrap())
                .unwrap(),
            Some(3)
        );
        let nothing = block_on(Indexer::new(&index, 100).run_once_partitions(&parts)).unwrap();
        assert_eq!(nothing.read, 0);
    }
    publish(&logs[1], [price("c", 777, 2)]);
    publish(&spaced.0, [p("e", "Copper pot", 1)]);
    let index = SearchIndex::create(
        TenantId::new("t").unwrap(),
        config(),
        Storage::Dir(dir.clone()),
    )
    .unwrap();
    assert_eq!(
        index.partition_offsets(),
        BTreeMap::from([(0, 2), (1, 2), (2, 3)])
    );
    let report = block_on(Indexer::new(&index, 100).run_once_partitions(&parts)).unwrap();
    assert_eq!(report.read, 2, "only what came after the commit");
    assert_eq!(report.next_offsets, BTreeMap::from([(1, 3), (2, 5)]));
    assert_eq!(
        index.partition_offsets(),
        BTreeMap::from([(0, 2), (1, 3), (2, 5)])
    );
    assert_eq!(eur_price(&index, "c"), Some(777));
    assert_eq!(search(&index, "copper pot").total, 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// A batch that goes back before the index's offset is refused whole.
#[test]
fn a_batch_before_the_committed_offset_is_refused() {
    let index = ram_index();
    let log = InMemoryEventLog::new();
    publish(
        &log,
        [
            upsert(product("a", "Blue mug").0),
            upsert(product("b", "Red kettle").0),
        ],
    );
    let indexer = Indexer::new(&index, 100);
    block_on(indexer.run_once(&log)).unwrap();
    let old = block_on(log.read(0, 10)).unwrap();
    let mut writer = index.writer();
    let refused = indexer.apply(&mut writer, &old);
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
}

fn stock_event(i: i64) -> DomainEvent {
    DomainEvent::InventoryChanged {
        sku: commerce_core::Sku::new("SKU-OTHER").unwrap(),
        location: commerce_core::LocationId::new("wh").unwrap(),
        on_hand: i,
        available: i,
    }
}

#[test]
fn batches_that_change_nothing_are_not_committed_until_enough_have_passed() {
    let dir = temp_dir("skipped");
    let log = InMemoryEventLog::new();
    publish(&log, [upsert(product("a", "Mug").0)]);
    publish(&log, (0..5).map(stock_event));
    {
        let index = SearchIndex::create(
            TenantId::new("t").unwrap(),
            config(),
            Storage::Dir(dir.clone()),
        )
        .unwrap();
        let indexer = Indexer::new(&index, 1);
        // The upsert commits; the stock events are read past without a commit.
        assert_eq!(run_to_end(&indexer, &log), 6);
        assert_eq!(index.next_offset(), 6, "read to the log's end");
        assert_eq!(index.committed_offset(), 1, "only the change was committed");
        assert_eq!(block_on(indexer.lag(&log)).unwrap(), 0);
        // A later change commits its offset, past the skipped events.
        publish(&log, [price("a", 450, 2)]);
        assert_eq!(run_to_end(&indexer, &log), 1);
        assert_eq!(index.committed_offset(), 7);
        publish(&log, (0..3).map(stock_event));
        assert_eq!(run_to_end(&indexer, &log), 3);
    }
    // Restarted, it reads the uncommitted events again (nothing to apply) and ends the same.
    let index = SearchIndex::create(
        TenantId::new("t").unwrap(),
        config(),
        Storage::Dir(dir.clone()),
    )
    .unwrap();
    assert_eq!(index.next_offset(), 7);
    let indexer = Indexer::new(&index, 1_000);
    assert_eq!(run_to_end(&indexer, &log), 3);
    assert_eq!(search(&index, "mug").total, 1);

    // Past `SKIPPED_COMMIT_EVERY` events that change nothing, the offset is committed anyway.
    let many = i64::try_from(search::SKIPPED_COMMIT_EVERY).unwrap();
    publish(&log, (0..many).map(stock_event));
    let _ = run_to_end(&indexer, &log);
    assert!(
        index.committed_offset() + search::SKIPPED_COMMIT_EVERY > index.next_offset(),
        "at most SKIPPED_COMMIT_EVERY uncommitted: {} vs {}",
        index.committed_offset(),
        index.next_offset()
    );
    assert!(index.committed_offset() > 10);
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
}
