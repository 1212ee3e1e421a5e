//! The orchestrator: drives a saga's steps from its journal, with retries, compensation, lease
//! and recovery. No user code is replayed: every decision is made from the journal.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{CasOutcome, Clock};
use serde::{Deserialize, Serialize};

use crate::journal::{SagaJournal, SagaRecord, SagaStatus, StepState};
use crate::{Error, Result};

/// What kind of step, in Richardson's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Before the point of no return: a failure compensates every completed step.
    Compensatable,
    /// The point of no return (the charge): once done, the saga only goes forward.
    Pivot,
    /// After the pivot: retried until done; may not fail for a business reason.
    Retriable,
}

/// A step of a saga definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    /// The step's name, for logs and diagnostics.
    pub name: &'static str,
    /// Its kind.
    pub kind: StepKind,
}

/// Why a step's call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// It definitely did not take effect and may succeed later (unavailable, conflict lost).
    Retryable(String),
    /// It definitely did not take effect and never will (declined, out of stock).
    Terminal(String),
    /// It may have taken effect (a timeout after sending): the orchestrator asks
    /// [`SagaDefinition::resolve`] before anything else.
    Indeterminate(String),
    /// It waits for an external signal (a payment webhook, 3-D Secure), delivered by
    /// [`Orchestrator::complete`].
    Pending,
}

impl From<commerce_core::PortError> for StepError {
    fn from(e: commerce_core::PortError) -> Self {
        use commerce_core::ErrorKind as K;
        match e.kind {
            K::Unavailable => StepError::Retryable(e.to_string()),
            K::Indeterminate => StepError::Indeterminate(e.to_string()),
            _ => StepError::Terminal(e.to_string()),
        }
    }
}

/// What a step sees.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The saga id.
    pub saga_id: &'a str,
    /// The step index.
    pub step: usize,
    /// The encoded input.
    pub input: &'a [u8],
    /// The journal's step entries so far (earlier steps' outputs).
    pub steps: &'a [StepState],
    /// Now, from the orchestrator's clock.
    pub now: DateTime<Utc>,
}

impl StepContext<'_> {
    /// The output of an earlier step, if it is done.
    pub fn output(&self, step: usize) -> Option<&[u8]> {
        match self.steps.get(step) {
            Some(StepState::Done { output }) => Some(output),
            _ => None,
        }
    }
}

/// A saga: its steps and how to act, resolve and compensate each. Every call must be
/// idempotent (it may run more than once: after a crash, a timeout, a retry).
#[async_trait]
pub trait SagaDefinition: Send + Sync + Debug {
    /// A name stored in the journal.
    fn kind(&self) -> &'static str;
    /// The steps, in order.
    fn steps(&self) -> &'static [StepSpec];
    /// Runs step `ctx.step` forward.
    async fn act(&self, ctx: &StepContext<'_>) -> std::result::Result<Vec<u8>, StepError>;
    /// After an indeterminate outcome (or a crash while the step was started): did step
    /// `ctx.step` take effect? `Some(output)` if it did, `None` if it definitely did not.
    async fn resolve(
        &self,
        ctx: &StepContext<'_>,
    ) -> std::result::Result<Option<Vec<u8>>, StepError>;
    /// Undoes step `ctx.step` (which may or may not have taken effect).
    async fn compensate(&self, ctx: &StepContext<'_>) -> std::result::Result<(), StepError>;
}

/// Waits between retries. The simulation's sleeper advances a manual clock; a service's
/// sleeper sleeps on its runtime.
#[async_trait]
pub trait Sleeper: Send + Sync + Debug {
    /// Waits `delay`.
    async fn sleep(&self, delay: TimeDelta);
}

/// A sleeper that advances a [`commerce_core::ManualClock`] instead of waiting.
#[derive(Debug, Clone)]
pub struct ClockSleeper(pub Arc<commerce_core::ManualClock>);

#[async_trait]
impl Sleeper for ClockSleeper {
    async fn sleep(&self, delay: TimeDelta) {
        self.0.advance(delay);
    }
}

/// Retry policy: exponential backoff with jitter, bounded attempts per drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per step per drive; a step still failing retryably afterwards is left for the
    /// next drive (`recover`).
    pub attempts_max: u32,
    /// First delay.
    pub backoff_initial: TimeDelta,
    /// Largest delay.
    pub backoff_max: TimeDelta,
    /// Lease a driver holds on a saga.
    pub lease: TimeDelta,
    /// Longest a single step call (act, resolve, compensate) may take; a call that takes
    /// longer counts as indeterminate (it may still have taken effect) and is resolved.
    pub step_timeout: TimeDelta,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms doubling to 5 s, jitter on half the delay, 10 s per step call, and a
    /// 300 s lease: longer than a step's worst case (5 attempts × (resolve + act) × 10 s + the
    /// backoffs), and renewed before every step.
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 5,
            backoff_initial: TimeDelta::milliseconds(100),
            backoff_max: TimeDelta::seconds(5),
            lease: TimeDelta::seconds(300),
            step_timeout: TimeDelta::seconds(10),
        }
    }
}

/// Where a drive left a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drive {
    /// Every step done.
    Completed(SagaRecord),
    /// Compensated after a failure.
    Compensated(SagaRecord),
    /// Another driver holds the lease.
    InProgress,
    /// A step waits for an external signal.
    Waiting {
        /// The step.
        step: usize,
    },
    /// A step keeps failing retryably (or a compensation does); `recover` will go on.
    Stalled {
        /// The step.
        step: usize,
        /// The last error.
        error: String,
    },
    /// The simulation's crash budget ran out: the driver "died" before this journal write.
    Crashed,
}

/// Drives sagas of one definition.
#[derive(Debug)]
pub struct Orchestrator<D> {
    definition: D,
    journal: Arc<dyn SagaJournal>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    owner: String,
    policy: RetryPolicy,
    jitter: Mutex<u64>,
    /// Numbers each drive, so every drive holds its own lease (two concurrent drives in one
    /// process never both get a saga).
    drives: std::sync::atomic::AtomicU64,
}

enum StepRun {
    Done(Vec<u8>),
    Failed(String),
    Waiting,
    Stalled(String),
}

impl<D: SagaDefinition> Orchestrator<D> {
    /// An orchestrator identified as `owner` (for leases); `seed` drives the retry jitter.
    pub fn new(
        definition: D,
        journal: Arc<dyn SagaJournal>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        owner: impl Into<String>,
        policy: RetryPolicy,
        seed: u64,
    ) -> Self {
        Orchestrator {
            definition,
            journal,
            clock,
            sleeper,
            owner: owner.into(),
            policy,
            jitter: Mutex::new(seed | 1),
            drives: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The definition.
    pub fn definition(&self) -> &D {
        &self.definition
    }

    /// Starts saga `id` with `input` (or finds it, if it exists with the same input) and drives
    /// it. Starting the same id again returns its outcome, or `InProgress` while another driver
    /// runs it.
    ///
    /// # Errors
    /// [`Error::InputMismatch`] if `id` exists with another input; journal errors.
    pub async fn start(&self, id: &str, input: Vec<u8>, deadline: DateTime<Utc>) -> Result<Drive> {
        self.start_with_budget(id, input, deadline, &mut u32::MAX.clone())
            .await
    }

    /// [`Orchestrator::start`] that "crashes" after `budget` journal writes (simulation).
    ///
    /// # Errors
    /// As [`Orchestrator::start`].
    pub async fn start_with_budget(
        &self,
        id: &str,
        input: Vec<u8>,
        deadline: DateTime<Utc>,
        budget: &mut u32,
    ) -> Result<Drive> {
        let now = self.clock.now();
        let record = SagaRecord {
            id: id.to_owned(),
            kind: self.definition.kind().to_owned(),
            input,
            status: SagaStatus::Running,
            steps: Vec::new(),
            failure: None,
            version: 0,
            lease: None,
            created_at: now,
            deadline,
        };
        let stored = self.journal.create(record.clone()).await?;
        if stored.input != record.input || stored.kind != record.kind {
            return Err(Error::InputMismatch(id.to_owned()));
        }
        self.drive_with_budget(id, budget).await
    }

    /// Drives saga `id` as far as it can go now.
    ///
    /// # Errors
    /// Journal errors; a saga that does not exist is `Port(NotFound)`.
    pub async fn drive(&self, id: &str) -> Result<Drive> {
        self.drive_with_budget(id, &mut u32::MAX.clone()).await
    }

    /// Delivers an external signal for a waiting step: `Ok(output)` completes it, `Err(reason)`
    /// fails it (and the saga compensates); then drives on.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn complete(
        &self,
        id: &str,
        step: usize,
        result: std::result::Result<Vec<u8>, String>,
    ) -> Result<Drive> {
        let token = self.token();
        let Some(mut rec) = self.lease(id, &token).await? else {
            return Ok(Drive::InProgress);
        };
        if rec.status == SagaStatus::Running
            && step < self.definition.steps().len()
            && rec.steps.len() == step.saturating_add(1)
            && rec.steps[step] == StepState::Started
        {
            match result {
                Ok(output) => rec.steps[step] = StepState::Done { output },
                Err(reason) if self.definition.steps()[step].kind != StepKind::Retriable => {
                    rec.status = SagaStatus::Compensating;
                    rec.failure = Some(reason);
                }
                Err(_) => {}
            }
            rec.lease = None;
            if !self.write(&mut rec, &mut u32::MAX.clone()).await? {
                return Ok(Drive::InProgress);
            }
        } else if rec
            .lease
            .as_ref()
            .is_some_and(|(holder, _)| *holder == token)
        {
            // Not a signal this saga waits for: hand the lease back untouched.
            rec.lease = None;
            let _ = self.write(&mut rec, &mut u32::MAX.clone()).await?;
        }
        self.drive(id).await
    }

    /// Drives up to `limit` unfinished sagas (oldest first) whose lease is free or expired.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn recover(&self, limit: usize) -> Result<Vec<(String, Drive)>> {
        let mut out = Vec::new();
        for rec in self.journal.unfinished(limit).await? {
            let drive = self.drive(&rec.id).await?;
            out.push((rec.id, drive));
        }
        Ok(out)
    }

    /// Takes the saga's lease under `token`, or `None` while another drive holds it.
    async fn lease(&self, id: &str, token: &str) -> Result<Option<SagaRecord>> {
        let now = self.clock.now();
        Ok(self
            .journal
            .acquire(id, token, now, now + self.policy.lease)
            .await?)
    }

    fn token(&self) -> String {
        let n = self
            .drives
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}#{n}", self.owner)
    }

    /// Renews this drive's lease; false if another driver holds the saga now.
    async fn renew(&self, rec: &mut SagaRecord, token: &str) -> Result<bool> {
        match self.lease(&rec.id, token).await? {
            Some(stored) if stored.version == rec.version + 1 => {
                rec.version = stored.version;
                rec.lease = stored.lease;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes `rec` (compare-and-set); false if another driver took it over. Spends one unit of
    /// the crash budget.
    async fn write(&self, rec: &mut SagaRecord, budget: &mut u32) -> Result<bool> {
        if *budget == 0 {
            return Ok(false);
        }
        *budget -= 1;
        match self.journal.update(rec).await? {
            CasOutcome::Committed => {
                rec.version += 1;
                Ok(true)
            }
            CasOutcome::VersionMismatch { .. } => Ok(false),
        }
    }

    /// Runs a step call under the per-step timeout: if the sleeper's timer fires first, the
    /// call is abandoned and reported as indeterminate.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, StepError>>,
    ) -> std::result::Result<T, StepError> {
        let call = std::pin::pin!(call);
        let timer = std::pin::pin!(self.sleeper.sleep(self.policy.step_timeout));
        match futures::future::select(call, timer).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), _)) => {
                Err(StepError::Indeterminate("step timed out".into()))
            }
        }
    }

    fn backoff(&self, attempt: u32) -> TimeDelta {
        let base = self.policy.backoff_initial.num_milliseconds().max(1);
        let exp = base.saturating_mul(1i64 << attempt.min(20).saturating_sub(1));
        let capped = exp.min(self.policy.backoff_max.num_milliseconds().max(base));
        // xorshift64: deterministic jitter from the seed.
        let mut state = self.jitter.lock().unwrap_or_else(PoisonError::into_inner);
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let half = (capped / 2).max(1);
        let jitter = i64::try_from(*state % u64::try_from(half).unwrap_or(1)).unwrap_or(0);
        TimeDelta::milliseconds(capped - half + jitter)
    }

    /// Drives saga `id`, "crashing" after `budget` journal writes (simulation).
    ///
    /// # Errors
    /// Journal errors.
    pub async fn drive_with_budget(&self, id: &str, budget: &mut u32) -> Result<Drive> {
        // A finished saga answers without taking a lease, so any worker can read its outcome.
        match self.journal.load(id).await? {
            Some(rec) if rec.status == SagaStatus::Completed => return Ok(Drive::Completed(rec)),
            Some(rec) if rec.status == SagaStatus::Compensated => {
                return Ok(Drive::Compensated(rec));
            }
            _ => {}
        }
        let token = self.token();
        let Some(mut rec) = self.lease(id, &token).await? else {
            return Ok(Drive::InProgress);
        };
        let steps = self.definition.steps();
        macro_rules! write {
            () => {
                if *budget == 0 {
                    return Ok(Drive::Crashed);
                }
                if !self.write(&mut rec, budget).await? {
                    return Ok(Drive::InProgress);
                }
            };
        }
        loop {
            match rec.status {
                SagaStatus::Completed => return Ok(Drive::Completed(rec)),
                SagaStatus::Compensated => return Ok(Drive::Compensated(rec)),
                SagaStatus::Running => {
                    let i = rec
                        .steps
                        .iter()
                        .position(|s| !matches!(s, StepState::Done { .. }))
                        .unwrap_or(rec.steps.len());
                    if i == steps.len() {
                        rec.status = SagaStatus::Completed;
                        rec.lease = None;
                        write!();
                        continue;
                    }
                    let kind = steps[i].kind;
                    let resuming = i < rec.steps.len();
                    if !resuming
                        && kind == StepKind::Compensatable
                        && self.clock.now() > rec.deadline
                    {
                        rec.status = SagaStatus::Compensating;
                        rec.failure =
                            Some(format!("deadline passed before step {}", steps[i].name));
                        write!();
                        continue;
                    }
                    if !resuming {
                        // Register the step (and so its compensation) before the forward call.
                        rec.steps.push(StepState::Started);
                        write!();
                    }
                    if !self.renew(&mut rec, &token).await? {
                        return Ok(Drive::InProgress);
                    }
                    match self.run_step(&rec, i, kind, resuming).await {
                        StepRun::Done(output) => {
                            rec.steps[i] = StepState::Done { output };
                            write!();
                        }
                        StepRun::Failed(reason) => {
                            rec.status = SagaStatus::Compensating;
                            rec.failure = Some(format!("{}: {reason}", steps[i].name));
                            write!();
                        }
                        StepRun::Waiting => {
                            // Hand the lease back: the signal may arrive at another worker.
                            rec.lease = None;
                            write!();
                            return Ok(Drive::Waiting { step: i });
                        }
                        StepRun::Stalled(error) => return Ok(Drive::Stalled { step: i, error }),
                    }
                }
                SagaStatus::Compensating => {
                    let Some(j) = rec
                        .steps
                        .iter()
                        .rposition(|s| !matches!(s, StepState::Compensated))
                    else {
                        rec.status = SagaStatus::Compensated;
                        rec.lease = None;
                        write!();
                        continue;
                    };
                    if !self.renew(&mut rec, &token).await? {
                        return Ok(Drive::InProgress);
                    }
                    match self.compensate_step(&rec, j).await {
                        Ok(()) => {
                            rec.steps[j] = StepState::Compensated;
                            write!();
                        }
                        Err(error) => return Ok(Drive::Stalled { step: j, error }),
                    }
                }
            }
        }
    }

    async fn run_step(
        &self,
        rec: &SagaRecord,
        i: usize,
        kind: StepKind,
        resuming: bool,
    ) -> StepRun {
        // A step found started may have taken effect before a crash: ask first.
        let mut ask_first = resuming;
        let mut last = String::new();
        for attempt in 1..=self.policy.attempts_max {
            let ctx = StepContext {
                saga_id: &rec.id,
                step: i,
                input: &rec.input,
                steps: &rec.steps,
                now: self.clock.now(),
            };
            let result = if ask_first {
                match self.timed(self.definition.resolve(&ctx)).await {
                    Ok(Some(output)) => Ok(output),
                    Ok(None) => {
                        ask_first = false;
                        self.timed(self.definition.act(&ctx)).await
                    }
                    // Without an answer nothing is decided: the step neither failed nor
                    // succeeded, so keep asking (never fail it on a lookup error).
                    Err(
                        StepError::Terminal(e)
                        | StepError::Retryable(e)
                        | StepError::Indeterminate(e),
                    ) => Err(StepError::Indeterminate(format!("could not resolve: {e}"))),
                    Err(StepError::Pending) => Err(StepError::Pending),
                }
            } else {
                self.timed(self.definition.act(&ctx)).await
            };
            match result {
                Ok(output) => return StepRun::Done(output),
                Err(StepError::Pending) => return StepRun::Waiting,
                Err(StepError::Indeterminate(e)) => {
                    ask_first = true;
                    last = e;
                }
                Err(StepError::Terminal(e)) if kind != StepKind::Retriable => {
                    return StepRun::Failed(e);
                }
                Err(StepError::Terminal(e) | StepError::Retryable(e)) => last = e,
            }
            if kind != StepKind::Retriable && !ask_first && self.clock.now() > rec.deadline {
                return StepRun::Failed(format!("deadline passed: {last}"));
            }
            if attempt < self.policy.attempts_max {
                self.sleeper.sleep(self.backoff(attempt)).await;
            }
        }
        StepRun::Stalled(last)
    }

    async fn compensate_step(&self, rec: &SagaRecord, j: usize) -> std::result::Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=self.policy.attempts_max {
            let ctx = StepContext {
                saga_id: &rec.id,
                step: j,
                input: &rec.input,
                steps: &rec.steps,
                now: self.clock.now(),
            };
            match self.timed(self.definition.compensate(&ctx)).await {
                Ok(()) => return Ok(()),
                Err(
                    StepError::Retryable(e) | StepError::Terminal(e) | StepError::Indeterminate(e),
                ) => last = e,
                Err(StepError::Pending) => last = "compensation pending".into(),
            }
            if attempt < self.policy.attempts_max {
                self.sleeper.sleep(self.backoff(attempt)).await;
            }
        }
        Err(last)
    }
}
