//! Group commit: the [`Combiner`].

use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use commerce_core::{ErrorKind, PortError};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres as Pg};
use tokio::sync::{mpsc, oneshot};

use super::error;

/// How a database's short write transactions are combined ([`PostgresConfig::group_commit`](super::PostgresConfig::group_commit)).
#[derive(Debug, Clone)]
pub struct GroupCommit {
    /// Whether units share transactions; `false` runs each in a transaction of its own.
    pub enabled: bool,
    /// The most units one transaction carries.
    pub max_batch: usize,
    /// Workers per database, each with its own queue, running one batch at a time on one
    /// connection (held only while there is work queued). Keyed units go to the worker of
    /// their key; unkeyed ones take turns. More workers run batches in parallel; units of two
    /// workers' batches that lock a row both touch wait for each other at most
    /// [`lock_timeout`](GroupCommit::lock_timeout).
    pub workers: usize,
    /// How long a worker waits for more units once it has one: zero (the default) takes only
    /// what is queued already; concurrency alone fills the batches.
    pub linger: Duration,
    /// Whether units without a key ([`Combiner::run`]: writes to rows no other caller waits
    /// for, such as a saga's journal row or a new order) are combined too. Off by default:
    /// PostgreSQL already shares one WAL flush among transactions that commit at once, so
    /// what such a unit gains is less than what funnelling it through a worker costs; keyed
    /// units ([`Combiner::run_keyed`]) gain the row lock held once per batch, not once per
    /// caller. When off, they run alone as with `enabled` off.
    pub combine_unkeyed: bool,
    /// The longest a batch's statement waits for a lock (`SET LOCAL lock_timeout`; zero: the
    /// server's setting). A unit whose wait runs out is rolled back alone and answered
    /// `Unavailable` (the stores run it again): batches waiting for each other's rows, or
    /// for a transaction waiting for theirs, cost this long, not `deadlock_timeout`, and
    /// one slow transaction cannot stall every caller of a batch.
    pub lock_timeout: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            enabled: true,
            max_batch: 64,
            workers: 1,
            linger: Duration::ZERO,
            combine_unkeyed: false,
            lock_timeout: Duration::from_millis(100),
        }
    }
}

impl GroupCommit {
    /// Every unit in its own transaction.
    pub fn disabled() -> Self {
        GroupCommit {
            enabled: false,
            ..GroupCommit::default()
        }
    }
}

/// What a unit wants done with its writes, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitOutcome<T> {
    /// Keep the unit's writes; the caller gets `T` once the batch committed.
    Commit(T),
    /// Roll the unit's writes back (to its savepoint); the caller still gets `T`, once the
    /// batch committed.
    Rollback(T),
}

/// A unit as the combiner runs it: an async closure over the batch's connection.
type UnitFn<T, E> = Box<
    dyn for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>> + Send,
>;

/// Whether a unit's writes stay in the batch.
enum Ran {
    Keep,
    Discard,
}

/// A unit waiting in a batch, its answer kept until the batch's end.
trait Job: Send {
    fn run<'c>(&'c mut self, conn: &'c mut PgConnection) -> BoxFuture<'c, Ran>;
    /// Sends the unit's own answer (the batch committed).
    fn answer(self: Box<Self>);
    /// Sends the batch's failure instead.
    fn fail(self: Box<Self>, e: PortError);
}

struct Typed<T, E> {
    unit: Option<UnitFn<T, E>>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T: Send + 'static, E: From<PortError> + Send + 'static> Job for Typed<T, E> {
    fn run<'c>(&'c mut self, conn: &'c mut PgConnection) -> BoxFuture<'c, Ran> {
        async move {
            let Some(unit) = self.unit.take() else {
                return Ran::Discard;
            };
            let (ran, result) = match unit(conn).await {
                Ok(UnitOutcome::Commit(t)) => (Ran::Keep, Ok(t)),
                Ok(UnitOutcome::Rollback(t)) => (Ran::Discard, Ok(t)),
                Err(e) => (Ran::Discard, Err(e)),
            };
            self.result = Some(result);
            ran
        }
        .boxed()
    }

    fn answer(self: Box<Self>) {
        let result = self.result.unwrap_or_else(|| {
            Err(PortError::new(ErrorKind::Internal, "a unit of the batch did not run").into())
        });
        // A caller that stopped waiting does not want its answer.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, e: PortError) {
        let _ = self.reply.send(Err(e.into()));
    }
}

/// Group commit for one database: short write transactions of concurrent callers share one
/// transaction, and so one WAL flush.
///
/// A durable commit costs a WAL flush, and a flush costs the same for one transaction as for
/// fifty. A [`Combiner`] takes *units* of work (an async closure over a
/// [`PgConnection`](sqlx::PgConnection)) from any number of callers; each of its workers takes
/// whatever is queued (up to [`GroupCommit::max_batch`] units, waiting no longer than
/// [`GroupCommit::linger`] for more), runs them one after another in **one** transaction, each
/// inside its own `SAVEPOINT`, commits once, and only then answers every caller.
///
/// - A unit that fails (or asks to be rolled back, [`UnitOutcome::Rollback`]) is rolled back to
///   its savepoint: its writes are gone, its neighbours' stay, and its caller gets its own
///   answer, after the batch committed.
/// - When the batch itself fails (the connection is lost, the server ends it, the savepoint or
///   the `COMMIT` is refused), nothing of it is committed, or the commit's outcome is unknown:
///   every unit of the batch is answered with the same typed error — `Unavailable` when the
///   batch was rolled back before its `COMMIT` (the caller may run the unit again), or
///   `Indeterminate` when the connection broke during the `COMMIT` (exactly as a lone
///   transaction's commit would be). No unit is ever answered with success before the commit.
/// - A unit that panics fails its batch: the transaction is rolled back and every unit of the
///   batch hears `Internal`.
///
/// Row locks a unit takes are held until the batch commits, so units of one batch that write
/// the same row (a hot SKU's counter row, a promotion's tally) take its lock once per batch
/// instead of once per caller. Units must not `COMMIT` or `ROLLBACK` themselves; a caller that
/// needs a transaction of its own uses the pool ([`Postgres::primary`](super::Postgres::primary))
/// as before.
///
/// Which units are combined: those submitted with [`Combiner::run_keyed`] (units that lock a
/// row other callers wait for — a one-row SKU's counter row, a promotion's tally — routed by
/// that row's key to one worker, so batches of one key never wait for each other), and those
/// submitted with [`Combiner::run`] only when [`GroupCommit::combine_unkeyed`] is on. With
/// [`GroupCommit::enabled`] off, or for an unkeyed unit by default, the unit runs in a
/// transaction of its own (the same answers, one commit per unit). The figures behind these
/// defaults are in `BENCHMARKS.md` ("adapters/postgres").
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use adapters::postgres::{Postgres, UnitOutcome};
/// use commerce_core::PortError;
/// use futures::FutureExt;
///
/// let pg = Postgres::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// // Committed together with whatever other callers submitted meanwhile; answered after the
/// // commit.
/// let rows: u64 = pg
///     .combiner()
///     .run_keyed("SKU-1", |conn| {
///         async move {
///             let done = sqlx::query("UPDATE stock SET on_hand = on_hand + 1 WHERE sku = $1")
///                 .bind("SKU-1")
///                 .execute(&mut *conn)
///                 .await
///                 .map_err(|e| PortError::caused_by(commerce_core::ErrorKind::Internal, e))?;
///             Ok::<_, PortError>(UnitOutcome::Commit(done.rows_affected()))
///         }
///         .boxed()
///     })
///     .await?;
/// # let _ = rows;
/// # Ok(()) }
/// ```
///
/// Cheap to clone: clones share the queue and the workers. A worker starts on the first unit
/// sent to it, on the Tokio runtime of that call, and stops when the last clone is dropped; if
/// that runtime ends first (a handle shared between runtimes, as tests do), the next unit
/// starts a new worker on its own runtime.
#[derive(Clone)]
pub struct Combiner {
    inner: Arc<Shared>,
}

/// A worker's queue of units.
type Queue = mpsc::UnboundedSender<Box<dyn Job>>;

struct Shared {
    pool: PgPool,
    config: GroupCommit,
    /// One queue per worker: `None` until the worker starts, closed once its runtime ended.
    queues: Vec<std::sync::Mutex<Option<Queue>>>,
    /// Where the next unit without a key goes.
    next: AtomicUsize,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Combiner {
    /// A combiner of `pool`'s write transactions, as `config` says.
    pub fn new(pool: PgPool, config: GroupCommit) -> Combiner {
        let queues = (0..config.workers.max(1))
            .map(|_| std::sync::Mutex::new(None))
            .collect();
        Combiner {
            inner: Arc::new(Shared {
                pool,
                config,
                queues,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// How this combiner batches.
    pub fn config(&self) -> &GroupCommit {
        &self.inner.config
    }

    /// Runs `unit` in the next batch of any worker (taking turns) and answers once that
    /// batch committed (or failed) — or, unless [`GroupCommit::combine_unkeyed`] is on, in a
    /// transaction of its own. For a unit that waits for a row other units write too,
    /// [`run_keyed`](Combiner::run_keyed).
    ///
    /// # Errors
    /// As [`run_keyed`](Combiner::run_keyed).
    pub async fn run<T, E, F>(&self, unit: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>>
            + Send
            + 'static,
        T: Send + 'static,
        E: From<PortError> + Send + 'static,
    {
        if !self.inner.config.combine_unkeyed {
            return alone(&self.inner.pool, unit).await;
        }
        let worker = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.queues.len();
        self.submit(worker, unit).await
    }

    /// Runs `unit` in the next batch of the worker `key` belongs to, and answers once that
    /// batch committed (or failed). Units with one key (the contended row they lock: a SKU's
    /// counter rows, a promotion's tally) always share a worker, so two batches never wait
    /// for each other's locks on that row.
    ///
    /// # Errors
    /// The unit's own error (its writes rolled back, its neighbours' kept); or, when the whole
    /// batch failed, `Unavailable` (rolled back: nothing of the unit was written; a lost
    /// connection or a busy pool) or `Indeterminate` (the connection broke while committing),
    /// as `E`.
    pub async fn run_keyed<T, E, F>(&self, key: &(impl Hash + ?Sized), unit: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>>
            + Send
            + 'static,
        T: Send + 'static,
        E: From<PortError> + Send + 'static,
    {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let n = u64::try_from(self.inner.queues.len()).unwrap_or(1).max(1);
        let worker = usize::try_from(h.finish() % n).unwrap_or(0);
        self.submit(worker, unit).await
    }

    async fn submit<T, E, F>(&self, worker: usize, unit: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>>
            + Send
            + 'static,
        T: Send + 'static,
        E: From<PortError> + Send + 'static,
    {
        if !self.inner.config.enabled {
            return alone(&self.inner.pool, unit).await;
        }
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            unit: Some(Box::new(unit)),
            result: None,
            reply,
        });
        // A worker whose runtime ended drops its queue: the send hands the job back, and a
        // new worker starts on this runtime.
        if let Err(mpsc::error::SendError(job)) = self.queue(worker).send(job)
            && self.queue(worker).send(job).is_err()
        {
            return Err(PortError::new(ErrorKind::Unavailable, "group commit stopped").into());
        }
        answer.await.unwrap_or_else(|_| {
            // The worker went away with the unit (its runtime shut down): whether the batch
            // committed is unknown.
            Err(PortError::new(ErrorKind::Indeterminate, "group commit worker stopped").into())
        })
    }

    /// Worker `n`'s queue, starting the worker on the current runtime when it has none or
    /// its runtime has ended.
    fn queue(&self, n: usize) -> Queue {
        let mut slot = match self.inner.queues[n].lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(queue) = slot.as_ref().filter(|q| !q.is_closed()) {
            return queue.clone();
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let (pool, config) = (self.inner.pool.clone(), self.inner.config.clone());
        drop(tokio::spawn(worker(receiver, pool, config)));
        *slot = Some(queue.clone());
        queue
    }
}

/// `f` as a unit: gives a closure kept in a variable the signature units have.
pub(crate) fn unit<T, E, F>(f: F) -> F
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>>,
{
    f
}

/// `unit` in a transaction of its own (group commit off).
pub(crate) async fn alone<T, E, F>(pool: &PgPool, unit: F) -> Result<T, E>
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<UnitOutcome<T>, E>>,
    E: From<PortError>,
{
    let mut tx = pool.begin().await.map_err(error::db)?;
    match unit(&mut tx).await? {
        UnitOutcome::Commit(t) => {
            tx.commit().await.map_err(error::commit)?;
            Ok(t)
        }
        UnitOutcome::Rollback(t) => {
            tx.rollback().await.map_err(error::db)?;
            Ok(t)
        }
    }
}

/// Takes batches off its queue and runs them, until every [`Combiner`] clone is gone.
async fn worker(
    mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>,
    pool: PgPool,
    config: GroupCommit,
) {
    let mut conn: Option<PoolConnection<Pg>> = None;
    let max = config.max_batch.max(1);
    loop {
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Idle: the connection goes back to the pool while there is no work.
                    conn = None;
                    match queue.recv().await {
                        Some(job) => batch.push(job),
                        None => return,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
            if !config.linger.is_zero() && max > 1 {
                tokio::time::sleep(config.linger).await;
            }
            while batch.len() < max {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match pool.acquire().await {
                Ok(c) => c,
                Err(e) => {
                    let e = error::db(e);
                    for job in batch {
                        job.fail(e.clone());
                    }
                    continue;
                }
            },
        };
        let mut c = c;
        let outcome = AssertUnwindSafe(run_batch(&mut c, &mut batch, config.lock_timeout))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(())) => {
                for job in batch {
                    job.answer();
                }
                conn = Some(c);
            }
            Ok(Err(e)) => {
                for job in batch {
                    job.fail(e.clone());
                }
                // The connection may be broken, or mid-transaction: it is not reused.
                c.close_on_drop();
            }
            Err(_) => {
                let e = PortError::new(ErrorKind::Internal, "a unit of the batch panicked");
                for job in batch {
                    job.fail(e.clone());
                }
                c.close_on_drop();
            }
        }
    }
}

/// Runs `batch` in one transaction, a savepoint per unit, and commits. `Err` when the batch as
/// a whole failed (nothing committed, or, for a broken `COMMIT`, unknown).
async fn run_batch(
    conn: &mut PoolConnection<Pg>,
    batch: &mut [Box<dyn Job>],
    lock_timeout: Duration,
) -> Result<(), PortError> {
    let begin = if lock_timeout.is_zero() {
        "BEGIN; SAVEPOINT unit".to_owned()
    } else {
        // A number of milliseconds from the configuration, not input.
        format!(
            "BEGIN; SET LOCAL lock_timeout = {}; SAVEPOINT unit",
            lock_timeout.as_millis().max(1)
        )
    };
    let mut tx = Connection::begin_with(&mut **conn, sqlx::AssertSqlSafe(begin))
        .await
        .map_err(error::db)?;
    // Whether the savepoint holds writes to keep (released before the next unit's).
    let mut kept = false;
    for job in batch.iter_mut() {
        if kept {
            sqlx::raw_sql("RELEASE SAVEPOINT unit; SAVEPOINT unit")
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        match job.run(&mut tx).await {
            Ran::Keep => kept = true,
            Ran::Discard => {
                // The savepoint stays, empty, for the next unit.
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT unit")
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
                kept = false;
            }
        }
    }
    tx.commit().await.map_err(error::commit)
}
