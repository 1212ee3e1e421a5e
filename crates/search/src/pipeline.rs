//! Near-real-time indexing from catalog change events.
//!
//! The [`Indexer`] reads catalog events from a [`ChangeSource`] (a partition of a log such as
//! Kafka, or the in-memory [`MemoryChangeLog`]) in batches, applies each as an upsert or delete,
//! and commits the batch together with the offset of the next event in the commit itself. A
//! restart reads that offset back from the index, not from the source's acknowledgements, so a
//! crash anywhere (mid-batch, after the commit but before the acknowledgement) neither loses nor
//! doubles a change. Every change carries the catalog version, and a change not newer than what
//! the index holds is skipped, so replays are harmless too.
//!
//! Backpressure: the source holds at most `capacity` unindexed changes; past that, producers
//! get [`Error::Backpressure`] (or wait), and [`Indexer::lag`] tells how far behind the index is.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use commerce_core::ports::EventLog;
use commerce_core::{DomainEvent, PriceScope, ProductId, ProductProjection, ProductStatus};

use crate::index::{IndexWriterGuard, SearchIndex};
use crate::{Error, Result};

/// A change and its position in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// Position in the source; consecutive.
    pub offset: u64,
    /// The change.
    pub event: DomainEvent,
}

/// Where catalog changes come from: one ordered partition.
pub trait ChangeSource: Send + Sync {
    /// Up to `max` changes from offset `from` on, in order.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when `from` was already dropped.
    fn read(&self, from: u64, max: usize) -> Result<Vec<Sourced>>;
    /// The offset the next appended change will get.
    fn head(&self) -> u64;
    /// Everything below `offset` is committed to the index; the source may drop it.
    fn acknowledge(&self, offset: u64);
    /// Waits until a change at `from` or later exists, or `timeout` passes.
    fn wait_for(&self, from: u64, timeout: Duration);
}

struct LogInner {
    first: u64,
    entries: VecDeque<DomainEvent>,
    acked: u64,
}

/// An in-memory change log with a capacity: the embedded default, and the test double of a
/// broker partition. Producers [`MemoryChangeLog::append`]; the indexer reads and acknowledges.
///
/// ```
/// use commerce_core::{DomainEvent, ProductId, Sku};
/// use search::{ChangeSource, MemoryChangeLog};
/// let log = MemoryChangeLog::new(1);
/// let retire = DomainEvent::ProductRetired {
///     product_id: ProductId::new("p-1").unwrap(), sku: Sku::new("S-1").unwrap(), version: 2,
/// };
/// assert_eq!(log.append(retire.clone())?, 0);
/// assert!(matches!(log.append(retire.clone()), Err(search::Error::Backpressure { lag: 1, .. })));
/// log.acknowledge(1);
/// assert_eq!(log.append(retire)?, 1);
/// # Ok::<(), search::Error>(())
/// ```
pub struct MemoryChangeLog {
    inner: Mutex<LogInner>,
    changed: Condvar,
    capacity: u64,
}

impl std::fmt::Debug for MemoryChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryChangeLog")
            .field("capacity", &self.capacity)
            .field("lag", &self.lag())
            .finish()
    }
}

impl MemoryChangeLog {
    /// A log holding at most `capacity` (at least 1) unacknowledged changes.
    pub fn new(capacity: u64) -> MemoryChangeLog {
        MemoryChangeLog {
            inner: Mutex::new(LogInner {
                first: 0,
                entries: VecDeque::new(),
                acked: 0,
            }),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        crate::lock(&self.inner)
    }

    /// Appends a change, returning its offset.
    ///
    /// # Errors
    /// [`Error::Backpressure`] when `capacity` changes wait unindexed; nothing is appended.
    pub fn append(&self, event: DomainEvent) -> Result<u64> {
        let mut inner = self.lock();
        let head = inner.first + inner.entries.len() as u64;
        let lag = head - inner.acked;
        if lag >= self.capacity {
            return Err(Error::Backpressure {
                lag,
                capacity: self.capacity,
            });
        }
        inner.entries.push_back(event);
        self.changed.notify_all();
        Ok(head)
    }

    /// Appends a change, waiting while the log is full.
    pub fn append_blocking(&self, event: DomainEvent) -> u64 {
        let mut inner = self.lock();
        loop {
            let head = inner.first + inner.entries.len() as u64;
            if head - inner.acked < self.capacity {
                inner.entries.push_back(event);
                self.changed.notify_all();
                return head;
            }
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Changes appended but not yet acknowledged by the indexer.
    pub fn lag(&self) -> u64 {
        let inner = self.lock();
        inner.first + inner.entries.len() as u64 - inner.acked
    }
}

impl ChangeSource for MemoryChangeLog {
    fn read(&self, from: u64, max: usize) -> Result<Vec<Sourced>> {
        let inner = self.lock();
        let next = inner.first + inner.entries.len() as u64;
        if from < inner.first || from > next {
            return Err(Error::OffsetOutOfRange {
                asked: from,
                first: inner.first,
                next,
            });
        }
        let skip = usize::try_from(from - inner.first).unwrap_or(usize::MAX);
        Ok(inner
            .entries
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, e)| Sourced {
                offset: from + i as u64,
                event: e.clone(),
            })
            .collect())
    }

    fn head(&self) -> u64 {
        let inner = self.lock();
        inner.first + inner.entries.len() as u64
    }

    fn acknowledge(&self, offset: u64) {
        let mut inner = self.lock();
        let next = inner.first + inner.entries.len() as u64;
        let offset = offset.min(next);
        if offset > inner.acked {
            inner.acked = offset;
        }
        while inner.first < inner.acked {
            inner.entries.pop_front();
            inner.first += 1;
        }
        self.changed.notify_all();
    }

    fn wait_for(&self, from: u64, timeout: Duration) {
        let inner = self.lock();
        if inner.first + (inner.entries.len() as u64) > from {
            return;
        }
        let _ = self
            .changed
            .wait_timeout(inner, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchReport {
    /// Changes read.
    pub read: usize,
    /// Changes that changed the index.
    pub applied: usize,
    /// Changes skipped: not newer than the indexed copy, about an unknown product, or not a
    /// catalog change.
    pub skipped: usize,
    /// The offset committed: the next change to read.
    pub next_offset: u64,
}

/// The state of a product within a batch.
enum Pending {
    Live(Box<ProductProjection>),
    Gone(u64),
}

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

    /// How many changes the source holds that the index has not committed.
    pub fn lag(&self, source: &dyn ChangeSource) -> u64 {
        source.head().saturating_sub(self.index.next_offset())
    }

    /// Reads one batch from where the index stands, applies it, commits it with its end offset
    /// and acknowledges the source. An empty read commits nothing.
    ///
    /// # Errors
    /// A source or index error; the batch is then not committed and the next call retries it.
    pub fn run_once(&self, source: &dyn ChangeSource) -> Result<BatchReport> {
        let from = self.index.next_offset();
        let batch = source.read(from, self.max_batch)?;
        let report = self.commit_batch(from, &batch)?;
        if report.read > 0 {
            source.acknowledge(report.next_offset);
        }
        Ok(report)
    }

    /// Applies `batch` (read from `from`) and commits it with its end offset.
    fn commit_batch(&self, from: u64, batch: &[Sourced]) -> Result<BatchReport> {
        if batch.is_empty() {
            return Ok(BatchReport {
                next_offset: from,
                ..BatchReport::default()
            });
        }
        let mut writer = self.index.writer();
        let report = self.apply(&mut writer, batch)?;
        writer.commit(Some(report.next_offset))?;
        Ok(report)
    }

    /// [`Indexer::run_once`] from the shared domain event log ([`EventLog`], the outbox every
    /// engine publishes to): events other than catalog changes are read and skipped, so the
    /// committed offset is the log's own. The log keeps its events (it has no acknowledgement);
    /// the commit is blocking work, so run this where blocking is fine.
    ///
    /// # Errors
    /// [`Error::Source`] when the log cannot be read; otherwise as [`Indexer::run_once`].
    pub async fn run_once_from_log(&self, log: &dyn EventLog) -> Result<BatchReport> {
        let from = self.index.next_offset();
        let batch: Vec<Sourced> = log
            .read(from, self.max_batch)
            .await
            .map_err(Error::Source)?
            .into_iter()
            .map(|(offset, envelope)| Sourced {
                offset,
                event: envelope.event,
            })
            .collect();
        self.commit_batch(from, &batch)
    }

    /// How many events the domain log holds that the index has not committed.
    ///
    /// # Errors
    /// [`Error::Source`] when the log cannot be read.
    pub async fn lag_in_log(&self, log: &dyn EventLog) -> Result<u64> {
        let end = log.end_offset().await.map_err(Error::Source)?;
        Ok(end.saturating_sub(self.index.next_offset()))
    }

    /// Runs batches until `stop` is set, waiting up to `idle` for changes when caught up.
    ///
    /// # Errors
    /// The first failing batch's error.
    pub fn run(&self, source: &dyn ChangeSource, stop: &AtomicBool, idle: Duration) -> Result<()> {
        while !stop.load(Ordering::Acquire) {
            let report = self.run_once(source)?;
            if report.read == 0 {
                source.wait_for(report.next_offset, idle);
            }
        }
        Ok(())
    }

    /// Stages `batch` on `writer` without committing. [`Indexer::run_once`] is the usual entry;
    /// this is public so a caller can stage, inspect and then commit or drop (roll back).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the batch does not continue from the index's offset.
    pub fn apply(
        &self,
        writer: &mut IndexWriterGuard<'_>,
        batch: &[Sourced],
    ) -> Result<BatchReport> {
        let mut expected = self.index.next_offset();
        let mut pending: HashMap<ProductId, Pending> = HashMap::new();
        let mut report = BatchReport {
            read: batch.len(),
            ..BatchReport::default()
        };
        for change in batch {
            if change.offset != expected {
                return Err(Error::invalid(
                    "batch",
                    format!("offset {} where {expected} was due", change.offset),
                ));
            }
            expected += 1;
            let applied = self.apply_one(writer, &mut pending, &change.event)?;
            if applied {
                report.applied += 1;
            } else {
                report.skipped += 1;
            }
        }
        report.next_offset = expected;
        Ok(report)
    }

    fn current_version(
        &self,
        pending: &HashMap<ProductId, Pending>,
        id: &ProductId,
    ) -> Result<Option<u64>> {
        Ok(match pending.get(id) {
            Some(Pending::Live(p)) => Some(p.version),
            Some(Pending::Gone(v)) => Some(*v),
            None => self.index.indexed_version(id)?,
        })
    }

    fn apply_one(
        &self,
        writer: &mut IndexWriterGuard<'_>,
        pending: &mut HashMap<ProductId, Pending>,
        event: &DomainEvent,
    ) -> Result<bool> {
        match event {
            DomainEvent::ProductUpserted { projection } => {
                let id = &projection.product_id;
                if self
                    .current_version(pending, id)?
                    .is_some_and(|v| v >= projection.version)
                {
                    return Ok(false);
                }
                if projection.status == ProductStatus::Retired {
                    writer.retire(id, projection.version)?;
                    pending.insert(id.clone(), Pending::Gone(projection.version));
                } else {
                    writer.upsert(projection)?;
                    pending.insert(id.clone(), Pending::Live(projection.clone()));
                }
                Ok(true)
            }
            DomainEvent::PriceChanged {
                product_id,
                new,
                version,
                ..
            } => {
                let base = match pending.get(product_id) {
                    Some(Pending::Live(p)) => Some((**p).clone()),
                    Some(Pending::Gone(_)) => None,
                    None => self.index.projection(product_id)?,
                };
                let Some(mut p) = base else {
                    // Unknown or retired here: reconciliation repairs a product we never saw.
                    return Ok(false);
                };
                if p.version >= *version || p.prices.set(PriceScope::Default, *new).is_err() {
                    return Ok(false);
                }
                p.version = *version;
                writer.upsert(&p)?;
                pending.insert(product_id.clone(), Pending::Live(Box::new(p)));
                Ok(true)
            }
            DomainEvent::ProductRetired {
                product_id,
                version,
                ..
            } => {
                if self
                    .current_version(pending, product_id)?
                    .is_none_or(|v| v >= *version)
                {
                    return Ok(false);
                }
                writer.retire(product_id, *version)?;
                pending.insert(product_id.clone(), Pending::Gone(*version));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
