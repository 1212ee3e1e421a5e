//! The orchestrator: drives a saga's steps from its journal, with retries, compensation, lease
//! and recovery. No user code is replayed: every decision is made from the journal.
//!
//! A saga is a [`SagaDefinition`]: an enum of steps ([`Step`]), a typed input, a typed output
//! per step and a typed failure, all serde, so the journal stores JSON a human (and the admin
//! CLI) can read, and the steps read earlier outputs by step, not by number.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{CasOutcome, Clock, ErrorKind, PortError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::journal::{FailureRecord, SagaJournal, SagaRecord, SagaStatus, StepEntry, StepState};
use crate::{Error, Result};

/// What kind of step, in Richardson's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Before the point of no return: a failure compensates every completed step.
    Compensatable,
    /// The point of no return (the charge): once done, the saga only goes forward.
    Pivot,
    /// After the pivot: retried until done; may not fail for a business reason.
    Retriable,
}

/// The steps of a saga: an enum whose variants are the steps, in the order they run.
pub trait Step: Copy + Eq + Debug + Send + Sync + 'static {
    /// Every step, in order.
    const ALL: &'static [Self];
    /// The name the journal records.
    fn name(self) -> &'static str;
    /// Compensatable, pivot or retriable.
    fn kind(self) -> StepKind;
}

/// Why a step's call did not succeed, with the error's kind kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError<F> {
    /// It definitely did not take effect and may succeed later (a backend unavailable, a lost
    /// compare-and-set race).
    Retry(PortError),
    /// It may have taken effect (a timeout after sending): the orchestrator asks
    /// [`SagaDefinition::resolve`] before anything else.
    Indeterminate(PortError),
    /// It definitely did not take effect and never will (declined, out of stock): before the
    /// pivot the saga compensates with this reason; after it, the step is retried anyway (a
    /// retriable step may not fail).
    Fail(F),
    /// It waits for an external signal (a payment webhook, 3-D Secure), delivered by
    /// [`Orchestrator::complete`].
    Pending,
}

impl<F> StepError<F> {
    /// Classifies a failed port call by its kind: unavailable is retried, indeterminate is
    /// resolved, anything else is definite and becomes the saga's failure through `fail`.
    pub fn from_port(error: PortError, fail: impl FnOnce(PortError) -> F) -> Self {
        match error.kind {
            ErrorKind::Unavailable => StepError::Retry(error),
            ErrorKind::Indeterminate => StepError::Indeterminate(error),
            _ => StepError::Fail(fail(error)),
        }
    }

    /// A definite failure that may go away (a lost race, a record not there yet).
    pub fn retry(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError::Retry(PortError::new(kind, message))
    }
}

/// A saga: its steps and how to act, resolve and compensate each. Every call must be
/// idempotent (it may run more than once: after a crash, a timeout, a retry), which the
/// definitions achieve with keys derived from the saga id.
#[async_trait]
pub trait SagaDefinition: Send + Sync + Debug + 'static {
    /// The kind stored in the journal (one kind per definition).
    const KIND: &'static str;
    /// What the saga is started with.
    type Input: Serialize + DeserializeOwned + Send + Sync + Debug;
    /// The steps.
    type Step: Step;
    /// What a step reports when it is done (one enum for all steps).
    type Output: Serialize + DeserializeOwned + Send + Sync + Clone + Debug;
    /// Why the saga failed.
    type Failure: Serialize + DeserializeOwned + Send + Sync + Clone + Debug;

    /// Runs `ctx.step` forward.
    async fn act(
        &self,
        ctx: &StepContext<'_, Self>,
    ) -> std::result::Result<Self::Output, StepError<Self::Failure>>;

    /// After an indeterminate outcome (or a crash while the step was started): did `ctx.step`
    /// take effect? `Some(output)` if it did, `None` if it definitely did not. The default
    /// answers `None`: the step is idempotent by its keys, so running it again is the answer.
    async fn resolve(
        &self,
        _ctx: &StepContext<'_, Self>,
    ) -> std::result::Result<Option<Self::Output>, StepError<Self::Failure>> {
        Ok(None)
    }

    /// Undoes `ctx.step` (which may or may not have taken effect). The default has nothing to
    /// undo.
    async fn compensate(
        &self,
        _ctx: &StepContext<'_, Self>,
    ) -> std::result::Result<(), StepError<Self::Failure>> {
        Ok(())
    }

    /// The failure recorded when the saga's deadline passes before `step` (a compensatable
    /// step or the pivot) could run.
    fn deadline_passed(&self, step: Self::Step) -> Self::Failure;
}

/// What a step sees: the saga's id and input, the outputs of the steps done before it, and now.
#[derive(Debug)]
pub struct StepContext<'a, D: SagaDefinition + ?Sized> {
    /// The saga id.
    pub saga_id: &'a str,
    /// The step.
    pub step: D::Step,
    /// The input.
    pub input: &'a D::Input,
    /// Now, from the orchestrator's clock.
    pub now: DateTime<Utc>,
    outputs: &'a [Option<D::Output>],
}

impl<D: SagaDefinition + ?Sized> StepContext<'_, D> {
    /// The output of an earlier step, if it is done.
    pub fn output(&self, step: D::Step) -> Option<&D::Output> {
        let i = D::Step::ALL.iter().position(|s| *s == step)?;
        self.outputs.get(i).and_then(Option::as_ref)
    }
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
    /// backoffs), and renewed with every step's journal write.
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

/// How a saga failed: the step that failed and the definition's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed<D: SagaDefinition + ?Sized> {
    /// The step that failed.
    pub step: D::Step,
    /// Why.
    pub reason: D::Failure,
}

/// Where a drive left a saga.
#[derive(Debug)]
pub enum Drive<D: SagaDefinition + ?Sized> {
    /// Every step done; the outputs, one per step.
    Completed(Vec<D::Output>),
    /// Compensated after a failure.
    Compensated(Failed<D>),
    /// Another driver holds the lease.
    InProgress,
    /// A step waits for an external signal.
    Waiting(D::Step),
    /// A step keeps failing retryably (or a compensation does); `recover` will go on.
    Stalled {
        /// The step.
        step: D::Step,
        /// The last error.
        error: String,
    },
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
    drives: AtomicU64,
}

/// A saga being driven: its record and its decoded input and outputs.
struct Live<D: SagaDefinition> {
    rec: SagaRecord,
    input: D::Input,
    outputs: Vec<Option<D::Output>>,
}

enum StepRun<D: SagaDefinition> {
    Done(D::Output),
    Failed(D::Failure),
    Waiting,
    Stalled(String),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Codec(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Codec(e.to_string()))
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
            drives: AtomicU64::new(0),
        }
    }

    /// The definition.
    pub fn definition(&self) -> &D {
        &self.definition
    }

    /// The journal the sagas are recorded in.
    pub fn journal(&self) -> &Arc<dyn SagaJournal> {
        &self.journal
    }

    /// Starts saga `id` with `input` (or finds it, if it exists with the same input) and drives
    /// it. Starting the same id again returns its outcome, or `InProgress` while another driver
    /// runs it.
    ///
    /// # Errors
    /// [`Error::InputMismatch`] if `id` exists with another input or kind; journal errors.
    pub async fn start(
        &self,
        id: &str,
        input: &D::Input,
        deadline: DateTime<Utc>,
    ) -> Result<Drive<D>> {
        // Created with this drive's lease, so a new saga needs no acquire before its first
        // step; a saga that existed keeps its own lease and is driven as any other.
        let token = self.token();
        let now = self.clock.now();
        let record = SagaRecord {
            id: id.to_owned(),
            kind: D::KIND.to_owned(),
            input: encode(input)?,
            status: SagaStatus::Running,
            steps: Vec::new(),
            failure: None,
            version: 0,
            lease: Some((token.clone(), now + self.policy.lease)),
            created_at: now,
            deadline,
        };
        let stored = self.journal.create(record.clone()).await?;
        if stored.input != record.input || stored.kind != record.kind {
            return Err(Error::InputMismatch {
                saga_id: id.to_owned(),
            });
        }
        if stored.version == 0 && stored.lease.as_ref().is_some_and(|(h, _)| *h == token) {
            return self.run_leased(stored, &token).await;
        }
        self.drive(id).await
    }

    /// Drives saga `id` as far as it can go now.
    ///
    /// # Errors
    /// Journal errors; [`Error::NotFound`] for an unknown saga; [`Error::DefinitionChanged`] for
    /// a saga journaled by a definition whose steps differ from this one's.
    pub async fn drive(&self, id: &str) -> Result<Drive<D>> {
        // A finished saga answers without taking a lease, so any worker can read its outcome.
        let Some(stored) = self.journal.load(id).await? else {
            return Err(Error::NotFound {
                what: "saga",
                id: id.to_owned(),
            });
        };
        if stored.status.is_finished() {
            return self.finished(&self.live(stored)?);
        }
        // A record this definition cannot read is left untouched, lease and all.
        check_steps::<D>(&stored)?;
        let token = self.token();
        let Some(rec) = self.lease(id, &token).await? else {
            return Ok(Drive::InProgress);
        };
        self.run_leased(rec, &token).await
    }

    /// Runs `rec`, whose lease this drive holds under `token`.
    async fn run_leased(&self, rec: SagaRecord, token: &str) -> Result<Drive<D>> {
        let id = rec.id.clone();
        let mut live = self.live(rec)?;
        let drive = self.run(&mut live, token).await;
        if matches!(drive, Err(_) | Ok(Drive::Stalled { .. })) {
            // Stopped by a port that failed: hand the lease back (if the journal lets us) so
            // the next attempt, here or on another worker, need not wait for it to lapse.
            self.release(&id, token).await;
        }
        drive
    }

    /// Gives up this drive's lease, if it still holds it; best effort (a journal that is down
    /// leaves it to lapse).
    async fn release(&self, id: &str, token: &str) {
        let Ok(Some(mut rec)) = self.journal.load(id).await else {
            return;
        };
        if rec
            .lease
            .as_ref()
            .is_some_and(|(holder, _)| holder == token)
        {
            rec.lease = None;
            let _ = self.journal.update(&rec).await;
        }
    }

    /// The outcome of a finished saga.
    fn finished(&self, live: &Live<D>) -> Result<Drive<D>> {
        match live.rec.status {
            SagaStatus::Completed => Ok(Drive::Completed(
                live.outputs.iter().flatten().cloned().collect(),
            )),
            _ => Ok(Drive::Compensated(self.failure(&live.rec)?)),
        }
    }

    /// Decodes a record's failure.
    fn failure(&self, rec: &SagaRecord) -> Result<Failed<D>> {
        let record = rec.failure.as_ref().ok_or_else(|| {
            Error::Codec(format!("saga {} compensated without a failure", rec.id))
        })?;
        Ok(Failed {
            step: step_named::<D>(&rec.id, &record.step)?,
            reason: decode(&record.reason)?,
        })
    }

    /// Checks a record against this definition and decodes it.
    fn live(&self, rec: SagaRecord) -> Result<Live<D>> {
        check_steps::<D>(&rec)?;
        let input = decode(&rec.input)?;
        let outputs = rec
            .steps
            .iter()
            .map(|entry| match &entry.state {
                StepState::Done { output } => decode(output).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Live {
            rec,
            input,
            outputs,
        })
    }

    /// Delivers an external signal for a waiting step: `Ok(output)` completes it, `Err(reason)`
    /// fails it (and the saga compensates); then drives on.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn complete(
        &self,
        id: &str,
        step: D::Step,
        result: std::result::Result<D::Output, D::Failure>,
    ) -> Result<Drive<D>> {
        let token = self.token();
        let Some(rec) = self.lease(id, &token).await? else {
            return Ok(Drive::InProgress);
        };
        let mut live = self.live(rec)?;
        let i = index_of::<D>(step);
        let waiting = live.rec.status == SagaStatus::Running
            && live.rec.steps.len().checked_sub(1) == Some(i)
            && live.rec.steps[i].state == StepState::Started;
        if waiting {
            match result {
                Ok(output) => {
                    live.rec.steps[i].state = StepState::Done {
                        output: encode(&output)?,
                    };
                    live.outputs[i] = Some(output);
                }
                Err(reason) if step.kind() != StepKind::Retriable => {
                    live.rec.status = SagaStatus::Compensating;
                    live.rec.failure = Some(FailureRecord {
                        step: step.name().to_owned(),
                        reason: encode(&reason)?,
                    });
                }
                Err(_) => {}
            }
        }
        // Hand the lease back whatever happened: the drive below takes its own.
        live.rec.lease = None;
        if !self.write(&mut live.rec).await? {
            return Ok(Drive::InProgress);
        }
        self.drive(id).await
    }

    /// Drives up to `limit` unfinished sagas of this kind (oldest first) whose lease is free or
    /// expired.
    ///
    /// # Errors
    /// Journal errors.
    pub async fn recover(&self, limit: usize) -> Result<Vec<(String, Drive<D>)>> {
        let mut out = Vec::new();
        for rec in self.journal.unfinished(D::KIND, limit).await? {
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
        let n = self.drives.fetch_add(1, Ordering::Relaxed);
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

    /// Writes `rec` (compare-and-set); false if another driver took it over.
    async fn write(&self, rec: &mut SagaRecord) -> Result<bool> {
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
        call: impl std::future::Future<Output = std::result::Result<T, StepError<D::Failure>>>,
    ) -> std::result::Result<T, StepError<D::Failure>> {
        let call = std::pin::pin!(call);
        let timer = std::pin::pin!(self.sleeper.sleep(self.policy.step_timeout));
        match futures::future::select(call, timer).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), _)) => Err(StepError::Indeterminate(
                PortError::new(ErrorKind::Indeterminate, "step timed out"),
            )),
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

    /// The drive loop: forward while running, backward while compensating, a journal write
    /// after every decision. A lost write means another driver took the saga over.
    async fn run(&self, live: &mut Live<D>, token: &str) -> Result<Drive<D>> {
        let steps = D::Step::ALL;
        loop {
            match live.rec.status {
                SagaStatus::Completed | SagaStatus::Compensated => return self.finished(live),
                SagaStatus::Running => {
                    let i = live
                        .rec
                        .steps
                        .iter()
                        .position(|s| !matches!(s.state, StepState::Done { .. }))
                        .unwrap_or(live.rec.steps.len());
                    if i == steps.len() {
                        live.rec.status = SagaStatus::Completed;
                        live.rec.lease = None;
                        if !self.write(&mut live.rec).await? {
                            return Ok(Drive::InProgress);
                        }
                        continue;
                    }
                    let step = steps[i];
                    let resuming = i < live.rec.steps.len();
                    if !resuming
                        && step.kind() != StepKind::Retriable
                        && self.clock.now() > live.rec.deadline
                    {
                        self.fail(live, step, self.definition.deadline_passed(step))?;
                        if !self.write(&mut live.rec).await? {
                            return Ok(Drive::InProgress);
                        }
                        continue;
                    }
                    if resuming {
                        if !self.renew(&mut live.rec, token).await? {
                            return Ok(Drive::InProgress);
                        }
                    } else {
                        // Register the step (and so its compensation) before the forward call,
                        // in one write with the previous step's result and a renewed lease (a
                        // takeover bumps the version, so the compare-and-set still fails if
                        // another driver holds the saga).
                        live.rec.steps.push(StepEntry {
                            name: step.name().to_owned(),
                            state: StepState::Started,
                        });
                        live.outputs.push(None);
                        live.rec.lease =
                            Some((token.to_owned(), self.clock.now() + self.policy.lease));
                        if !self.write(&mut live.rec).await? {
                            return Ok(Drive::InProgress);
                        }
                    }
                    match self.run_step(live, step, resuming).await {
                        StepRun::Done(output) => {
                            live.rec.steps[i].state = StepState::Done {
                                output: encode(&output)?,
                            };
                            live.outputs[i] = Some(output);
                            // Recorded by the next write (the next step's start, the saga's
                            // completion or failure): a crash before it finds this step
                            // started, and recovery asks the step for its outcome first.
                            continue;
                        }
                        StepRun::Failed(reason) => self.fail(live, step, reason)?,
                        StepRun::Waiting => {
                            // Hand the lease back: the signal may arrive at another worker.
                            live.rec.lease = None;
                            if !self.write(&mut live.rec).await? {
                                return Ok(Drive::InProgress);
                            }
                            return Ok(Drive::Waiting(step));
                        }
                        StepRun::Stalled(error) => return Ok(Drive::Stalled { step, error }),
                    }
                    if !self.write(&mut live.rec).await? {
                        return Ok(Drive::InProgress);
                    }
                }
                SagaStatus::Compensating => {
                    let Some(j) = live
                        .rec
                        .steps
                        .iter()
                        .rposition(|s| !matches!(s.state, StepState::Compensated))
                    else {
                        live.rec.status = SagaStatus::Compensated;
                        live.rec.lease = None;
                        if !self.write(&mut live.rec).await? {
                            return Ok(Drive::InProgress);
                        }
                        continue;
                    };
                    if !self.renew(&mut live.rec, token).await? {
                        return Ok(Drive::InProgress);
                    }
                    match self.compensate_step(live, steps[j]).await {
                        Ok(()) => {
                            live.rec.steps[j].state = StepState::Compensated;
                            if !self.write(&mut live.rec).await? {
                                return Ok(Drive::InProgress);
                            }
                        }
                        Err(error) => {
                            return Ok(Drive::Stalled {
                                step: steps[j],
                                error,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Records that `step` failed with `reason`: the saga compensates.
    fn fail(&self, live: &mut Live<D>, step: D::Step, reason: D::Failure) -> Result<()> {
        live.rec.status = SagaStatus::Compensating;
        live.rec.failure = Some(FailureRecord {
            step: step.name().to_owned(),
            reason: encode(&reason)?,
        });
        Ok(())
    }

    fn context<'a>(&self, live: &'a Live<D>, step: D::Step) -> StepContext<'a, D> {
        StepContext {
            saga_id: &live.rec.id,
            step,
            input: &live.input,
            now: self.clock.now(),
            outputs: &live.outputs,
        }
    }

    async fn run_step(&self, live: &Live<D>, step: D::Step, resuming: bool) -> StepRun<D> {
        let kind = step.kind();
        // A step found started may have taken effect before a crash: ask first.
        let mut ask_first = resuming;
        // Whether an earlier call of this step may have taken effect. A pivot that may have
        // taken effect is never failed (it has no compensation: the saga must go forward);
        // a compensatable step may be, since its compensation undoes whatever happened.
        let mut maybe_effected = resuming;
        let mut last = String::new();
        for attempt in 1..=self.policy.attempts_max {
            let ctx = self.context(live, step);
            let result = if ask_first {
                match self.timed(self.definition.resolve(&ctx)).await {
                    Ok(Some(output)) => Ok(output),
                    Ok(None) => {
                        ask_first = false;
                        self.timed(self.definition.act(&ctx)).await
                    }
                    // Without an answer nothing is decided: the step neither failed nor
                    // succeeded, so keep asking (never fail it on a lookup error).
                    Err(StepError::Pending) => Err(StepError::Pending),
                    Err(e) => Err(StepError::Indeterminate(PortError::new(
                        ErrorKind::Indeterminate,
                        format!("could not resolve: {}", describe(&e)),
                    ))),
                }
            } else {
                self.timed(self.definition.act(&ctx)).await
            };
            match result {
                Ok(output) => return StepRun::Done(output),
                Err(StepError::Pending) => return StepRun::Waiting,
                Err(StepError::Indeterminate(e)) => {
                    ask_first = true;
                    maybe_effected = true;
                    last = e.to_string();
                }
                Err(StepError::Fail(reason)) if kind != StepKind::Retriable => {
                    return StepRun::Failed(reason);
                }
                Err(e) => last = describe(&e),
            }
            let may_fail = match kind {
                StepKind::Compensatable => true,
                StepKind::Pivot => !maybe_effected,
                StepKind::Retriable => false,
            };
            if may_fail && !ask_first && self.clock.now() > live.rec.deadline {
                return StepRun::Failed(self.definition.deadline_passed(step));
            }
            if attempt < self.policy.attempts_max {
                self.sleeper.sleep(self.backoff(attempt)).await;
            }
        }
        StepRun::Stalled(last)
    }

    async fn compensate_step(
        &self,
        live: &Live<D>,
        step: D::Step,
    ) -> std::result::Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=self.policy.attempts_max {
            let ctx = self.context(live, step);
            match self.timed(self.definition.compensate(&ctx)).await {
                Ok(()) => return Ok(()),
                Err(e) => last = describe(&e),
            }
            if attempt < self.policy.attempts_max {
                self.sleeper.sleep(self.backoff(attempt)).await;
            }
        }
        Err(last)
    }
}

/// A step error for logs and `Drive::Stalled`.
fn describe<F: Debug>(e: &StepError<F>) -> String {
    match e {
        StepError::Retry(p) | StepError::Indeterminate(p) => p.to_string(),
        StepError::Fail(f) => format!("{f:?}"),
        StepError::Pending => "pending".into(),
    }
}

/// Refuses a record of another kind, or whose journaled steps are not this definition's.
fn check_steps<D: SagaDefinition>(rec: &SagaRecord) -> Result<()> {
    if rec.kind != D::KIND {
        return Err(Error::InputMismatch {
            saga_id: rec.id.clone(),
        });
    }
    let steps = D::Step::ALL;
    let matches = rec.steps.len() <= steps.len()
        && rec
            .steps
            .iter()
            .zip(steps)
            .all(|(entry, step)| entry.name == step.name());
    if matches {
        Ok(())
    } else {
        Err(Error::DefinitionChanged {
            saga_id: rec.id.clone(),
            journaled: rec.steps.iter().map(|s| s.name.clone()).collect(),
        })
    }
}

fn index_of<D: SagaDefinition>(step: D::Step) -> usize {
    D::Step::ALL
        .iter()
        .position(|s| *s == step)
        .unwrap_or(usize::MAX)
}

fn step_named<D: SagaDefinition>(saga_id: &str, name: &str) -> Result<D::Step> {
    D::Step::ALL
        .iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| Error::DefinitionChanged {
            saga_id: saga_id.to_owned(),
            journaled: vec![name.to_owned()],
        })
}
