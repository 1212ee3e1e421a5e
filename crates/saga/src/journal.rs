//! The saga journal: the durable record of every saga's steps, which recovery reads instead of
//! replaying code.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{CasOutcome, ErrorKind, PortError, PortResult};
use serde::{Deserialize, Serialize};

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Moving forward.
    Running,
    /// A step failed before the pivot; compensations are running in reverse order.
    Compensating,
    /// Every step is done. Terminal.
    Completed,
    /// Every registered compensation is done. Terminal.
    Compensated,
}

impl SagaStatus {
    /// True for `Completed` and `Compensated`.
    pub fn is_finished(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Compensated)
    }
}

/// Where one step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    /// The forward call was (or is about to be) made: its compensation is registered, because a
    /// call that timed out may still have taken effect.
    Started,
    /// The forward call took effect, with this output (the definition's typed output, as JSON).
    Done {
        /// The step's output, for later steps.
        output: Vec<u8>,
    },
    /// The compensation took effect.
    Compensated,
}

/// One step as the journal holds it: the step's name (checked against the definition on every
/// drive, so a changed definition never misreads an old saga) and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntry {
    /// The step's name in its definition.
    pub name: String,
    /// Where it is.
    pub state: StepState,
}

/// Why a saga compensated: the step that failed and the definition's typed reason, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The step that failed.
    pub step: String,
    /// The definition's failure, as JSON.
    pub reason: Vec<u8>,
}

/// A saga as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// The saga id (for checkout: the client's idempotency key).
    pub id: String,
    /// Which saga definition drives it.
    pub kind: String,
    /// The encoded input (JSON).
    pub input: Vec<u8>,
    /// Status.
    pub status: SagaStatus,
    /// One entry per step reached, in step order.
    pub steps: Vec<StepEntry>,
    /// Why it is compensating, if it is.
    pub failure: Option<FailureRecord>,
    /// Compare-and-set version: +1 per write.
    pub version: u64,
    /// Who drives it, until when.
    pub lease: Option<(String, DateTime<Utc>)>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// After this, a saga that has not passed its pivot compensates instead of going on.
    pub deadline: DateTime<Utc>,
}

/// The journal port.
///
/// Contract (checked by `saga::saga_journal_conformance!`): `create` is idempotent by id (it
/// returns the existing record); `update` is compare-and-set on `version` and bumps it;
/// `acquire` grants a lease only if none is held or the held one has expired (so two workers
/// never drive one saga); `unfinished` lists one kind's sagas that are neither completed nor
/// compensated, oldest first.
#[async_trait]
pub trait SagaJournal: Send + Sync + Debug {
    /// Stores a new saga, or returns the one with the same id.
    async fn create(&self, record: SagaRecord) -> PortResult<SagaRecord>;
    /// The saga with this id.
    async fn load(&self, id: &str) -> PortResult<Option<SagaRecord>>;
    /// Replaces a saga if its stored version is `record.version`; the stored copy gets
    /// `version + 1`.
    async fn update(&self, record: &SagaRecord) -> PortResult<CasOutcome>;
    /// Takes the lease on a saga for `owner` until `until`, if free or expired at `now`.
    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>>;
    /// Unfinished sagas of `kind`, oldest first.
    async fn unfinished(&self, kind: &str, limit: usize) -> PortResult<Vec<SagaRecord>>;
}

/// A [`SagaJournal`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryJournal {
    sagas: Mutex<BTreeMap<String, SagaRecord>>,
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every saga (for checkers).
    pub fn snapshot(&self) -> Vec<SagaRecord> {
        self.sagas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl SagaJournal for InMemoryJournal {
    async fn create(&self, record: SagaRecord) -> PortResult<SagaRecord> {
        let mut sagas = self.sagas.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sagas.entry(record.id.clone()).or_insert(record).clone())
    }

    async fn load(&self, id: &str) -> PortResult<Option<SagaRecord>> {
        Ok(self
            .sagas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }

    async fn update(&self, record: &SagaRecord) -> PortResult<CasOutcome> {
        let mut sagas = self.sagas.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = sagas
            .get_mut(&record.id)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("saga {}", record.id)))?;
        if stored.version != record.version {
            return Ok(CasOutcome::VersionMismatch {
                current: stored.version,
            });
        }
        *stored = record.clone();
        stored.version += 1;
        Ok(CasOutcome::Committed)
    }

    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>> {
        let mut sagas = self.sagas.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = sagas
            .get_mut(id)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("saga {id}")))?;
        let free = match &stored.lease {
            None => true,
            Some((holder, expires)) => holder == owner || *expires <= now,
        };
        if !free {
            return Ok(None);
        }
        stored.lease = Some((owner.to_owned(), until));
        stored.version += 1;
        Ok(Some(stored.clone()))
    }

    async fn unfinished(&self, kind: &str, limit: usize) -> PortResult<Vec<SagaRecord>> {
        let sagas = self.sagas.lock().unwrap_or_else(PoisonError::into_inner);
        let mut open: Vec<SagaRecord> = sagas
            .values()
            .filter(|s| s.kind == kind && !s.status.is_finished())
            .cloned()
            .collect();
        open.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        open.truncate(limit);
        Ok(open)
    }
}
