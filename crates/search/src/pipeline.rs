//! Near-real-time indexing from the domain event log.
//!
//! The [`Indexer`] reads events from the shared [`EventLog`] (the log the catalog's outbox
//! feeds; in production a broker partition behind the same port) in batches, applies the
//! catalog changes among them as upserts or retirements, and commits each batch together with
//! the offset of the next event in the commit itself. A restart reads that offset back from
//! the index, so a crash anywhere (mid-batch, right after a commit) neither loses nor doubles
//! a change. Every change carries its catalog version, and a change not newer than what the
//! index holds is skipped: that is this consumer's dedupe, stronger than remembering event ids,
//! because it also drops a redelivered or reordered older change. Events that are not catalog
//! changes are read and skipped, so the committed offset is the log's own.
//!
//! Ratings (`ProductRatingChanged`, from the reviews engine) set a product's rating signal
//! and review count. They carry their own per-product `seq`, which the index stores with the
//! rating: an event not newer than the `seq` held is skipped, so a redelivered or reordered
//! older rating changes nothing. A catalog upsert keeps the rating a rating event set (the
//! catalog's projection carries empty signals; before any rating event, its own signals are
//! taken as given); a tombstone keeps it too, for a product that comes back. A rating for a
//! product the index does not have yet is kept, in a document that matches no query, until
//! the product's first upsert takes it over: the reviews store and the catalog may sit behind
//! different outboxes, so a rating can overtake its product.
//!
//! The log is never told to wait for the index: it is durable and shared, so a slow index
//! shows as lag ([`Indexer::lag`]), not as back-pressure on the catalog.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;

use commerce_core::ports::{EventLog, LoggedEvent};
use commerce_core::{DomainEvent, PriceScope, ProductId, ProductStatus};
use futures::future::{Either, FutureExt, select};

use crate::index::{IndexWriterGuard, Indexed, SearchIndex};
use crate::schema::RatingState;
use crate::{Error, Result};

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchReport {
    /// Changes read.
    pub read: usize,
    /// Changes that changed the index.
    pub applied: usize,
    /// Changes skipped: not newer than the indexed copy (a version or a rating `seq`), a price
    /// change or retirement of an unknown product, or not a catalog or rating change.
    pub skipped: usize,
    /// The offset committed: the next change to read.
    pub next_offset: u64,
}

/// What one batch over the partitions of a partitioned log did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionsReport {
    /// Changes read, over every partition.
    pub read: usize,
    /// Changes that changed the index.
    pub applied: usize,
    /// Changes skipped (as in [`BatchReport::skipped`]).
    pub skipped: usize,
    /// The offsets committed, for the partitions this batch read.
    pub next_offsets: std::collections::BTreeMap<u32, u64>,
}

/// How many events that changed nothing [`Indexer::run_once`] lets pass before it commits the
/// offset anyway.
pub const SKIPPED_COMMIT_EVERY: u64 = 10_000;

/// Applies catalog changes from a source to one index. One indexer per index: it takes the
/// index's writer for each batch.
#[derive(Debug)]
pub struct Indexer<'a> {
    index: &'a SearchIndex,
    max_batch: usize,
}

impl<'a> Indexer<'a> {
    /// An indexer committing at most `max_batch` (at least 1) changes per commit.
    pub fn new(index: &'a SearchIndex, max_batch: usize) -> Indexer<'a> {
        Indexer {
            index,
            max_batch: max_batch.max(1),
        }
    }

    /// How many events the log holds that the index has not committed.
    ///
    /// # Errors
    /// [`Error::Source`] when the log cannot be read.
    pub async fn lag(&self, log: &dyn EventLog) -> Result<u64> {
        let end = log.end_offset().await.map_err(Error::Source)?;
        Ok(end.saturating_sub(self.index.next_offset()))
    }

    /// Reads one batch from where the index stands, applies it, and commits it with its end
    /// offset. An empty read commits nothing. The commit (and, on a directory, its fsync)
    /// blocks: run the indexer where blocking is fine (a thread of its own, or the runtime's
    /// blocking pool).
    ///
    /// # Errors
    /// [`Error::Source`] when the log cannot be read (a log truncated past the index's offset is
    /// a `NotFound` source error); an index error. Nothing is committed then, and the next call
    /// retries the batch.
    pub async fn run_once(&self, log: &dyn EventLog) -> Result<BatchReport> {
        let from = self.index.next_offset();
        let batch = log
            .read(from, self.max_batch)
            .await
            .map_err(Error::Source)?;
        if batch.is_empty() {
            return Ok(BatchReport {
                next_offset: from,
                ..BatchReport::default()
            });
        }
        let mut writer = self.index.writer();
        let report = self.apply(&mut writer, &batch)?;
        // A batch that changed nothing is not committed (a commit writes and syncs the
        // index's metadata) until `SKIPPED_COMMIT_EVERY` such events have passed since the
        // last commit: a restart reads at most that many again.
        let uncommitted = report
            .next_offset
            .saturating_sub(self.index.committed_offset());
        if report.applied == 0 && uncommitted < SKIPPED_COMMIT_EVERY {
            drop(writer);
            self.index.read_through(report.next_offset);
            return Ok(report);
        }
        writer.commit(Some(report.next_offset))?;
        Ok(report)
    }

    /// Runs batches until `stop` completes, waiting on the log ([`EventLog::wait`]) whenever the
    /// index has caught up. Stopping between batches loses nothing: every committed batch is in
    /// the index with its offset.
    ///
    /// # Errors
    /// The first failing batch's error.
    pub async fn run(&self, log: &dyn EventLog, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = pin!(stop.fuse());
        loop {
            let report = match select(stop.as_mut(), pin!(self.run_once(log))).await {
                Either::Left(((), _)) => return Ok(()),
                Either::Right((report, _)) => report?,
            };
            if report.read == 0 {
                match select(stop.as_mut(), pin!(log.wait(report.next_offset))).await {
                    Either::Left(((), _)) => return Ok(()),
                    Either::Right((waited, _)) => waited.map_err(Error::Source)?,
                }
            }
        }
    }

    /// Stages `batch` (events read from the log) on `writer` without committing.
    /// [`Indexer::run_once`] is the usual entry; this is public so a caller can stage, inspect
    /// and then commit or drop (roll back).
    ///
    /// Offsets must continue from the index's: ascending, none below the committed one. A log
    /// may skip offsets (a broker partition leaves out a record it parked), so a gap is taken
    /// as it is and the next offset is one past the last event.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the batch goes back before the index's offset or is out of
    /// order.
    pub fn apply(
        &self,
        writer: &mut IndexWriterGuard<'_>,
        batch: &[LoggedEvent],
    ) -> Result<BatchReport> {
        let mut pending: HashMap<ProductId, Indexed> = HashMap::new();
        self.apply_from(writer, &mut pending, batch, self.index.next_offset())
    }

    /// Stages `batch`, which must continue from `expected`.
    fn apply_from(
        &self,
        writer: &mut IndexWriterGuard<'_>,
        pending: &mut HashMap<ProductId, Indexed>,
        batch: &[LoggedEvent],
        mut expected: u64,
    ) -> Result<BatchReport> {
        let mut report = BatchReport {
            read: batch.len(),
            ..BatchReport::default()
        };
        for change in batch {
            if change.offset < expected {
                return Err(Error::invalid(
                    "batch",
                    format!("offset {} where {expected} or later was due", change.offset),
                ));
            }
            expected = change.offset + 1;
            let applied = self.apply_one(writer, pending, &change.envelope.event)?;
            if applied {
                report.applied += 1;
            } else {
                report.skipped += 1;
            }
        }
        report.next_offset = expected;
        Ok(report)
    }

    /// Reads one batch from every partition of a partitioned log (`logs[i]` is partition `i`,
    /// a broker topic's partitions behind the [`EventLog`] port), each from the offset the
    /// index committed for it, applies them and commits them in one index commit that records
    /// every partition's new offset. Partitions are read concurrently; a product's changes are
    /// versioned, so the order between partitions does not matter.
    ///
    /// # Errors
    /// As [`Indexer::run_once`]; nothing is committed then.
    pub async fn run_once_partitions(&self, logs: &[&dyn EventLog]) -> Result<PartitionsReport> {
        let committed = self.index.partition_offsets();
        let per = (self.max_batch / logs.len().max(1)).max(1);
        let froms: Vec<u64> = (0..logs.len())
            .map(|p| {
                let p = u32::try_from(p).unwrap_or(u32::MAX);
                committed.get(&p).copied().unwrap_or(0)
            })
            .collect();
        let reads = logs
            .iter()
            .zip(&froms)
            .map(|(log, from)| log.read(*from, per));
        let batches = futures::future::join_all(reads).await;
        let mut report = PartitionsReport::default();
        let mut writer: Option<IndexWriterGuard<'_>> = None;
        let mut pending: HashMap<ProductId, Indexed> = HashMap::new();
        for (p, (batch, from)) in batches.into_iter().zip(&froms).enumerate() {
            let batch = batch.map_err(Error::Source)?;
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            if batch.is_empty() {
                continue;
            }
            let w = writer.get_or_insert_with(|| self.index.writer());
            let one = self.apply_from(w, &mut pending, &batch, *from)?;
            report.read += one.read;
            report.applied += one.applied;
            report.skipped += one.skipped;
            report.next_offsets.insert(p, one.next_offset);
        }
        if let Some(writer) = writer {
            writer.commit_partitions(&report.next_offsets)?;
        }
        Ok(report)
    }

    /// Runs [`Indexer::run_once_partitions`] until `stop` completes, waiting on every
    /// partition at once whenever the index has caught up.
    ///
    /// # Errors
    /// The first failing batch's error.
    pub async fn run_partitions(
        &self,
        logs: &[&dyn EventLog],
        stop: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut stop = pin!(stop.fuse());
        loop {
            let report = match select(stop.as_mut(), pin!(self.run_once_partitions(logs))).await {
                Either::Left(((), _)) => return Ok(()),
                Either::Right((report, _)) => report?,
            };
            if report.read == 0 {
                let committed = self.index.partition_offsets();
                let waits = logs.iter().enumerate().map(|(p, log)| {
                    let p = u32::try_from(p).unwrap_or(u32::MAX);
                    log.wait(committed.get(&p).copied().unwrap_or(0))
                });
                let any = futures::future::select_all(waits);
                match select(stop.as_mut(), any).await {
                    Either::Left(((), _)) => return Ok(()),
                    Either::Right(((waited, _, _), _)) => waited.map_err(Error::Source)?,
                }
            }
        }
    }

    /// What the batch staged for `id`, else what the index committed.
    fn current(
        &self,
        pending: &HashMap<ProductId, Indexed>,
        id: &ProductId,
    ) -> Result<Option<Indexed>> {
        match pending.get(id) {
            Some(staged) => Ok(Some(staged.clone())),
            None => self.index.indexed(id),
        }
    }

    fn apply_one(
        &self,
        writer: &mut IndexWriterGuard<'_>,
        pending: &mut HashMap<ProductId, Indexed>,
        event: &DomainEvent,
    ) -> Result<bool> {
        match event {
            DomainEvent::ProductUpserted { projection } => {
                let id = &projection.product_id;
                let current = self.current(pending, id)?;
                if current
                    .as_ref()
                    .and_then(Indexed::version)
                    .is_some_and(|v| v >= projection.version)
                {
                    return Ok(false);
                }
                // Once a rating event set the rating, only rating events change it.
                let rating = current
                    .as_ref()
                    .map(Indexed::rating)
                    .filter(|r| r.seq > 0)
                    .unwrap_or(RatingState {
                        rating: projection.signals.rating,
                        review_count: projection.signals.review_count,
                        seq: 0,
                    });
                if projection.status == ProductStatus::Retired {
                    writer.retire_rated(id, projection.version, &rating)?;
                    pending.insert(
                        id.clone(),
                        Indexed::Retired {
                            version: projection.version,
                            rating,
                        },
                    );
                } else {
                    let mut p = projection.clone();
                    p.signals.rating = rating.rating;
                    p.signals.review_count = rating.review_count;
                    writer.upsert_rated(&p, rating.seq)?;
                    pending.insert(
                        id.clone(),
                        Indexed::Live {
                            projection: p,
                            rating_seq: rating.seq,
                        },
                    );
                }
                Ok(true)
            }
            DomainEvent::PriceChanged {
                product_id,
                new,
                version,
                ..
            } => {
                let Some(Indexed::Live {
                    projection: mut p,
                    rating_seq,
                }) = self.current(pending, product_id)?
                else {
                    // Unknown or retired here: reconciliation repairs a product we never saw.
                    return Ok(false);
                };
                if p.version >= *version || p.prices.set(PriceScope::Default, *new).is_err() {
                    return Ok(false);
                }
                p.version = *version;
                writer.upsert_rated(&p, rating_seq)?;
                pending.insert(
                    product_id.clone(),
                    Indexed::Live {
                        projection: p,
                        rating_seq,
                    },
                );
                Ok(true)
            }
            DomainEvent::ProductRetired {
                product_id,
                version,
                ..
            } => {
                let current = self.current(pending, product_id)?;
                let Some(held) = current.as_ref().and_then(Indexed::version) else {
                    return Ok(false);
                };
                if held >= *version {
                    return Ok(false);
                }
                let rating = current.as_ref().map(Indexed::rating).unwrap_or_default();
                writer.retire_rated(product_id, *version, &rating)?;
                pending.insert(
                    product_id.clone(),
                    Indexed::Retired {
                        version: *version,
                        rating,
                    },
                );
                Ok(true)
            }
            DomainEvent::ProductRatingChanged {
                product_id,
                rating,
                review_count,
                seq,
                ..
            } => {
                let current = self.current(pending, product_id)?;
                if current.as_ref().map_or(0, |c| c.rating().seq) >= *seq {
                    return Ok(false);
                }
                let rating = RatingState {
                    rating: *rating,
                    review_count: *review_count,
                    seq: *seq,
                };
                let next = match current {
                    Some(Indexed::Live {
                        projection: mut p, ..
                    }) => {
                        p.signals.rating = rating.rating;
                        p.signals.review_count = rating.review_count;
                        writer.upsert_rated(&p, rating.seq)?;
                        Indexed::Live {
                            projection: p,
                            rating_seq: rating.seq,
                        }
                    }
                    Some(Indexed::Retired { version, .. }) => {
                        writer.retire_rated(product_id, version, &rating)?;
                        Indexed::Retired { version, rating }
                    }
                    None | Some(Indexed::Awaiting(_)) => {
                        writer.await_product(product_id, &rating)?;
                        Indexed::Awaiting(rating)
                    }
                };
                pending.insert(product_id.clone(), next);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
