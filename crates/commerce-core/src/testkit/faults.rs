//! Seeded fault injection for simulations: any port behind [`Faulty`] sees its calls succeed,
//! fail definitely, time out without effect, take effect and then time out — or the whole
//! simulated process crash before or after a call, as a SIGKILL would.
//!
//! A *process* in a simulation is a set of wrapped ports (and a sleeper) sharing one
//! [`CrashSwitch`]. Armed, the switch counts the process's calls down; at zero the process dies
//! at that call, either before it reaches the store (nothing happened) or after it took effect
//! (the caller never hears). From then on every call of that process never returns, so the
//! simulation, polling the process's future, sees it stop and drops it mid-flight — exactly
//! what a killed process leaves behind. The stores themselves (shared with the other
//! processes) keep whatever was committed.
//!
//! Everything is driven by seeds: the same seed replays the same run.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{
    AuthorizeRequest, Carrier, CasOutcome, CatalogStore, EventLog, EventPublisher, Label,
    LoggedEvent, Notification, Notifier, OrderStore, Payment, PaymentGateway, PortError,
    PortResult, RateQuote, ShipmentRequest, TrackingEvent,
};
use crate::{
    ErrorKind, EventEnvelope, IdempotencyKey, Money, Order, OrderId, OrderStatus, PaymentRef,
    Product, ProductId, Sku,
};

/// A deterministic random source (xorshift64*), seeded per simulation run.
#[derive(Debug)]
pub struct SeededRng(Mutex<u64>);

impl SeededRng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }

    /// The next value below `n` (`n > 0`).
    pub fn below(&self, n: u64) -> u64 {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// What happens to one call of a simulated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tick {
    /// The call runs.
    Go,
    /// The process dies before the call reaches the store.
    CrashBefore,
    /// The call takes effect, then the process dies before hearing.
    CrashAfter,
    /// The process is dead: the call never returns.
    Dead,
}

/// Where a crash falls relative to the call that triggers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before the call reaches the store: nothing happened.
    Before,
    /// After the call took effect: the process never heard.
    After,
}

/// The life of one simulated process: shared by every port wrapper (and the sleeper) of one
/// worker. See the module docs.
#[derive(Debug)]
pub struct CrashSwitch {
    /// Calls left before the crash; 0 when disarmed.
    countdown: AtomicU64,
    /// Where the armed crash falls; drawn from `rng` when not forced.
    point: Mutex<Option<CrashPoint>>,
    crashed: AtomicBool,
    crashes: AtomicU64,
    rng: SeededRng,
}

impl CrashSwitch {
    /// A disarmed switch; `seed` decides whether each crash falls before or after its call.
    pub fn new(seed: u64) -> Arc<CrashSwitch> {
        Arc::new(CrashSwitch {
            countdown: AtomicU64::new(0),
            point: Mutex::new(None),
            crashed: AtomicBool::new(false),
            crashes: AtomicU64::new(0),
            rng: SeededRng::new(seed),
        })
    }

    /// Crashes the process at its `calls`-th call from now (at least the first), before or
    /// after that call as the seed decides.
    pub fn arm(&self, calls: u64) {
        *self
            .point
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.countdown.store(calls.max(1), Ordering::SeqCst);
    }

    /// Crashes the process at its `calls`-th call from now, at `point`.
    pub fn arm_at(&self, calls: u64, point: CrashPoint) {
        *self
            .point
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(point);
        self.countdown.store(calls.max(1), Ordering::SeqCst);
    }

    /// The process restarted: alive again, disarmed.
    pub fn revive(&self) {
        self.countdown.store(0, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// True once the process has died.
    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// How many times this process died.
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }

    fn tick(&self) -> Tick {
        if self.is_crashed() {
            return Tick::Dead;
        }
        let left = self.countdown.load(Ordering::SeqCst);
        if left == 0 {
            return Tick::Go;
        }
        self.countdown.store(left - 1, Ordering::SeqCst);
        if left > 1 {
            return Tick::Go;
        }
        self.crashed.store(true, Ordering::SeqCst);
        self.crashes.fetch_add(1, Ordering::SeqCst);
        let forced = *self
            .point
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let point = forced.unwrap_or(if self.rng.below(2) == 0 {
            CrashPoint::Before
        } else {
            CrashPoint::After
        });
        match point {
            CrashPoint::Before => Tick::CrashBefore,
            CrashPoint::After => Tick::CrashAfter,
        }
    }

    /// Runs `call` as the process's next call: it may never return (the process died before
    /// or after it).
    pub async fn call<T>(&self, call: impl Future<Output = T>) -> T {
        match self.tick() {
            Tick::Go => call.await,
            Tick::CrashBefore | Tick::Dead => std::future::pending().await,
            Tick::CrashAfter => {
                let _ = call.await;
                std::future::pending().await
            }
        }
    }
}

/// Faults injected so far, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Injected {
    /// Calls refused before doing anything (`Unavailable`).
    pub unavailable: u64,
    /// Calls that timed out before reaching the backend (`Indeterminate`, no effect).
    pub timeout_before: u64,
    /// Calls that took effect and then timed out (`Indeterminate`, effect happened).
    pub timeout_after: u64,
}

#[derive(Debug)]
struct FaultState {
    rng: SeededRng,
    percent: u64,
    crash: Option<Arc<CrashSwitch>>,
    injected: [AtomicU64; 3],
}

/// How a wrapped port misbehaves: out of 100 writes, `percent` fail, spread evenly over the
/// three kinds of fault; reads fail (only as `Unavailable`) half as often. Optionally part of
/// a process that can crash. Cheap to clone: clones share their state.
#[derive(Debug, Clone)]
pub struct Faults(Arc<FaultState>);

impl Faults {
    /// Faults from `seed`, `percent` of writes faulty.
    pub fn new(seed: u64, percent: u64) -> Faults {
        Faults(Arc::new(FaultState {
            rng: SeededRng::new(seed),
            percent: percent.min(100),
            crash: None,
            injected: Default::default(),
        }))
    }

    /// No faults (a port that only crashes with its process, or not at all).
    pub fn none() -> Faults {
        Faults::new(1, 0)
    }

    /// The same faults, in a process that dies with `switch`.
    #[must_use]
    pub fn in_process(self, switch: Arc<CrashSwitch>) -> Faults {
        Faults(Arc::new(FaultState {
            rng: SeededRng::new(self.0.rng.below(u64::MAX)),
            percent: self.0.percent,
            crash: Some(switch),
            injected: Default::default(),
        }))
    }

    /// Faults injected so far.
    pub fn injected(&self) -> Injected {
        let get = |i: usize| self.0.injected[i].load(Ordering::Relaxed);
        Injected {
            unavailable: get(0),
            timeout_before: get(1),
            timeout_after: get(2),
        }
    }

    fn count(&self, i: usize) {
        self.0.injected[i].fetch_add(1, Ordering::Relaxed);
    }

    async fn run<T>(&self, call: impl Future<Output = T>) -> T {
        match &self.0.crash {
            Some(switch) => switch.call(call).await,
            None => call.await,
        }
    }

    /// Runs a call that may change state: it succeeds, fails before doing anything
    /// (`Unavailable`), times out before reaching the backend, or takes effect and then times
    /// out (both `Indeterminate`) — unless the process dies around it.
    pub async fn write<T, E: From<PortError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let roll = self.0.rng.below(100);
        if roll >= self.0.percent {
            return self.run(call).await;
        }
        match self.0.rng.below(3) {
            0 => {
                self.count(0);
                self.run(async {
                    Err(PortError::new(ErrorKind::Unavailable, "injected: unavailable").into())
                })
                .await
            }
            1 => {
                self.count(1);
                self.run(async {
                    Err(PortError::new(
                        ErrorKind::Indeterminate,
                        "injected: timeout before sending",
                    )
                    .into())
                })
                .await
            }
            _ => {
                self.count(2);
                self.run(async {
                    let _ = call.await;
                    Err(PortError::new(
                        ErrorKind::Indeterminate,
                        "injected: timeout after the effect",
                    )
                    .into())
                })
                .await
            }
        }
    }

    /// Runs a read: it succeeds or fails as `Unavailable` (half as often as writes fail) —
    /// unless the process dies first.
    pub async fn read<T, E: From<PortError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if self.0.rng.below(200) < self.0.percent {
            self.count(0);
            return self
                .run(async {
                    Err(PortError::new(ErrorKind::Unavailable, "injected: unavailable").into())
                })
                .await;
        }
        self.run(call).await
    }
}

/// A port behind [`Faults`]: implements the port it wraps (every port of this crate here;
/// the engines implement theirs in their own testkits).
#[derive(Debug)]
pub struct Faulty<P: ?Sized> {
    inner: Arc<P>,
    faults: Faults,
}

impl<P: ?Sized> Faulty<P> {
    /// `inner` behind `faults`.
    pub fn new(inner: Arc<P>, faults: Faults) -> Faulty<P> {
        Faulty { inner, faults }
    }

    /// The wrapped port (for checkers).
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The faults it injects.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

#[async_trait]
impl<P: OrderStore + ?Sized> OrderStore for Faulty<P> {
    async fn insert(&self, order: Order, events: &[EventEnvelope]) -> PortResult<()> {
        self.faults.write(self.inner.insert(order, events)).await
    }
    async fn get(&self, id: &OrderId) -> PortResult<Option<Order>> {
        self.faults.read(self.inner.get(id)).await
    }
    async fn update(
        &self,
        order: Order,
        expected_version: u64,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        self.faults
            .write(self.inner.update(order, expected_version, events))
            .await
    }
    async fn list_by_status(
        &self,
        status: OrderStatus,
        after: Option<&OrderId>,
        limit: usize,
    ) -> PortResult<Vec<Order>> {
        self.faults
            .read(self.inner.list_by_status(status, after, limit))
            .await
    }
}

#[async_trait]
impl<P: CatalogStore + ?Sized> CatalogStore for Faulty<P> {
    async fn get(&self, id: &ProductId) -> PortResult<Option<Product>> {
        self.faults.read(self.inner.get(id)).await
    }
    async fn get_by_sku(&self, sku: &Sku) -> PortResult<Option<Product>> {
        self.faults.read(self.inner.get_by_sku(sku)).await
    }
    async fn put(&self, product: Product, events: &[EventEnvelope]) -> PortResult<CasOutcome> {
        self.faults.write(self.inner.put(product, events)).await
    }
    async fn list(&self, after: Option<&ProductId>, limit: usize) -> PortResult<Vec<Product>> {
        self.faults.read(self.inner.list(after, limit)).await
    }
}

#[async_trait]
impl<P: EventPublisher + ?Sized> EventPublisher for Faulty<P> {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        self.faults.write(self.inner.publish(events)).await
    }
}

#[async_trait]
impl<P: EventLog + ?Sized> EventLog for Faulty<P> {
    async fn read(&self, from: u64, max: usize) -> PortResult<Vec<LoggedEvent>> {
        self.faults.read(self.inner.read(from, max)).await
    }
    async fn end_offset(&self) -> PortResult<u64> {
        self.faults.read(self.inner.end_offset()).await
    }
    async fn wait(&self, from: u64) -> PortResult<()> {
        self.faults.read(self.inner.wait(from)).await
    }
}

#[async_trait]
impl<P: PaymentGateway + ?Sized> PaymentGateway for Faulty<P> {
    async fn authorize(&self, request: &AuthorizeRequest) -> PortResult<Payment> {
        self.faults.write(self.inner.authorize(request)).await
    }
    async fn capture(
        &self,
        key: &IdempotencyKey,
        payment: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        self.faults
            .write(self.inner.capture(key, payment, amount))
            .await
    }
    async fn refund(
        &self,
        key: &IdempotencyKey,
        payment: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        self.faults
            .write(self.inner.refund(key, payment, amount))
            .await
    }
    async fn void(&self, key: &IdempotencyKey, payment: &PaymentRef) -> PortResult<Payment> {
        self.faults.write(self.inner.void(key, payment)).await
    }
    async fn lookup(&self, key: &IdempotencyKey) -> PortResult<Option<Payment>> {
        self.faults.read(self.inner.lookup(key)).await
    }
    async fn get(&self, payment: &PaymentRef) -> PortResult<Option<Payment>> {
        self.faults.read(self.inner.get(payment)).await
    }
    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>> {
        self.faults.read(self.inner.list(after, limit)).await
    }
}

#[async_trait]
impl<P: Carrier + ?Sized> Carrier for Faulty<P> {
    async fn quote(&self, request: &ShipmentRequest) -> PortResult<Vec<RateQuote>> {
        self.faults.read(self.inner.quote(request)).await
    }
    async fn create_label(
        &self,
        key: &IdempotencyKey,
        request: &ShipmentRequest,
        service: &str,
    ) -> PortResult<Label> {
        self.faults
            .write(self.inner.create_label(key, request, service))
            .await
    }
    async fn track(&self, tracking_number: &str) -> PortResult<Vec<TrackingEvent>> {
        self.faults.read(self.inner.track(tracking_number)).await
    }
    async fn void_label(&self, key: &IdempotencyKey, tracking_number: &str) -> PortResult<()> {
        self.faults
            .write(self.inner.void_label(key, tracking_number))
            .await
    }
}

#[async_trait]
impl<P: Notifier + ?Sized> Notifier for Faulty<P> {
    async fn send(&self, notification: &Notification) -> PortResult<()> {
        self.faults.write(self.inner.send(notification)).await
    }
}
