//! The [`SagaJournal`] conformance suite, for the in-memory journal here and the Postgres one
//! later (see `commerce_core::testkit` for how the macro works); the journal and the sleeper
//! behind seeded faults and a process that can crash, for simulations.

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

pub mod admission;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::faults::{CrashSwitch, Faulty};
use commerce_core::testkit::t0;
use commerce_core::{CasOutcome, PortResult};

use crate::{SagaJournal, SagaRecord, SagaStatus, Sleeper, StepEntry, StepState};

#[async_trait]
impl<P: SagaJournal + ?Sized> SagaJournal for Faulty<P> {
    async fn create(&self, record: SagaRecord) -> PortResult<SagaRecord> {
        self.faults().write(self.inner().create(record)).await
    }
    async fn load(&self, id: &str) -> PortResult<Option<SagaRecord>> {
        self.faults().read(self.inner().load(id)).await
    }
    async fn update(&self, record: &SagaRecord) -> PortResult<CasOutcome> {
        self.faults().write(self.inner().update(record)).await
    }
    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> PortResult<Option<SagaRecord>> {
        self.faults()
            .write(self.inner().acquire(id, owner, now, until))
            .await
    }
    async fn unfinished(&self, kind: &str, limit: usize) -> PortResult<Vec<SagaRecord>> {
        self.faults()
            .read(self.inner().unfinished(kind, limit))
            .await
    }
}

/// A sleeper in a simulated process: it sleeps like `inner` while the process lives, and
/// never wakes once it has died.
#[derive(Debug)]
pub struct CrashingSleeper<S> {
    inner: S,
    switch: Arc<CrashSwitch>,
}

impl<S: Sleeper> CrashingSleeper<S> {
    /// `inner`, in the process of `switch`.
    pub fn new(inner: S, switch: Arc<CrashSwitch>) -> Self {
        CrashingSleeper { inner, switch }
    }
}

#[async_trait]
impl<S: Sleeper> Sleeper for CrashingSleeper<S> {
    async fn sleep(&self, delay: TimeDelta) {
        if self.switch.is_crashed() {
            std::future::pending::<()>().await;
        }
        self.inner.sleep(delay).await;
    }
}

fn record(id: &str, input: &[u8]) -> SagaRecord {
    SagaRecord {
        id: id.to_owned(),
        kind: "conformance".into(),
        input: input.to_vec(),
        status: SagaStatus::Running,
        steps: Vec::new(),
        failure: None,
        version: 0,
        lease: None,
        created_at: t0(),
        deadline: t0() + TimeDelta::minutes(15),
    }
}

/// `create` stores once; a second create returns the first record unchanged.
pub async fn create_is_idempotent<J: SagaJournal + ?Sized>(j: &J) {
    let first = j.create(record("sj-a", b"one")).await.unwrap();
    let again = j.create(record("sj-a", b"two")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(again.input, b"one");
    assert_eq!(j.load("sj-a").await.unwrap(), Some(first));
    assert_eq!(j.load("sj-missing").await.unwrap(), None);
}

/// `update` is compare-and-set on the version and bumps it.
pub async fn update_is_compare_and_set<J: SagaJournal + ?Sized>(j: &J) {
    let mut r = j.create(record("sj-b", b"x")).await.unwrap();
    r.steps.push(StepEntry {
        name: "first".into(),
        state: StepState::Started,
    });
    assert_eq!(j.update(&r).await.unwrap(), CasOutcome::Committed);
    let stored = j.load("sj-b").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.steps.len()), (r.version + 1, 1));
    assert_eq!(
        j.update(&r).await.unwrap(),
        CasOutcome::VersionMismatch {
            current: r.version + 1
        },
        "a stale write is refused"
    );
}

/// A lease is exclusive until it expires; its holder may renew it.
pub async fn leases_are_exclusive_until_they_expire<J: SagaJournal + ?Sized>(j: &J) {
    let _ = j.create(record("sj-c", b"x")).await.unwrap();
    let until = t0() + TimeDelta::seconds(60);
    assert!(
        j.acquire("sj-c", "w1", t0(), until)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        j.acquire("sj-c", "w2", t0() + TimeDelta::seconds(30), until)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        j.acquire(
            "sj-c",
            "w1",
            t0() + TimeDelta::seconds(30),
            until + TimeDelta::seconds(30)
        )
        .await
        .unwrap()
        .is_some(),
        "renewal"
    );
    let taken = j
        .acquire(
            "sj-c",
            "w2",
            t0() + TimeDelta::seconds(91),
            t0() + TimeDelta::seconds(151),
        )
        .await
        .unwrap();
    assert_eq!(
        taken.unwrap().lease.map(|l| l.0),
        Some("w2".to_owned()),
        "taken over after expiry"
    );
}

/// `unfinished` lists one kind's running and compensating sagas, oldest first, and never
/// finished ones or another kind's.
pub async fn unfinished_lists_open_sagas<J: SagaJournal + ?Sized>(j: &J) {
    let mut done = j.create(record("sj-d-1", b"x")).await.unwrap();
    done.status = SagaStatus::Completed;
    assert_eq!(j.update(&done).await.unwrap(), CasOutcome::Committed);
    let mut later = record("sj-d-2", b"x");
    later.created_at = t0() + TimeDelta::seconds(5);
    let _ = j.create(later).await.unwrap();
    let _ = j.create(record("sj-d-3", b"x")).await.unwrap();
    let mut other = record("sj-d-4", b"x");
    other.kind = "another-kind".into();
    let _ = j.create(other).await.unwrap();
    let ids: Vec<String> = j
        .unfinished("conformance", 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .filter(|id| id.starts_with("sj-d-"))
        .collect();
    assert_eq!(ids, ["sj-d-3", "sj-d-2"]);
}

/// Runs the [`SagaJournal`] conformance suite against `$make`.
#[macro_export]
macro_rules! saga_journal_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            create_is_idempotent => $crate::testkit::create_is_idempotent,
            update_is_compare_and_set => $crate::testkit::update_is_compare_and_set,
            leases_are_exclusive_until_they_expire => $crate::testkit::leases_are_exclusive_until_they_expire,
            unfinished_lists_open_sagas => $crate::testkit::unfinished_lists_open_sagas,
        );
    };
}
