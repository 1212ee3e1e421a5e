//! Seeded fault injection for simulations: a payment gateway whose calls succeed, fail
//! definitely, time out without effect, or take effect and then time out.

use std::sync::Mutex;

use async_trait::async_trait;
use commerce_core::{
    AuthorizeRequest, ErrorKind, IdempotencyKey, Money, Payment, PaymentGateway, PaymentRef,
    PortError, PortResult,
};

/// What one call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Succeeds.
    None,
    /// Fails before doing anything (`Unavailable`).
    Unavailable,
    /// Times out before reaching the provider (`Indeterminate`, no effect).
    TimeoutBefore,
    /// Takes effect, then times out (`Indeterminate`, effect happened).
    TimeoutAfter,
}

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

/// Wraps a gateway and injects a [`Fault`] into each money-moving call: out of 100 calls,
/// `percent_faulty` fail, spread evenly over the three kinds of fault. `lookup` and `list`
/// fail only as `Unavailable`, half as often.
#[derive(Debug)]
pub struct FaultyPaymentGateway<G> {
    inner: G,
    rng: SeededRng,
    percent_faulty: u64,
    /// Faults injected so far: unavailable, timeout before, timeout after.
    injected: [std::sync::atomic::AtomicU64; 3],
}

impl<G: PaymentGateway> FaultyPaymentGateway<G> {
    /// Wraps `inner`.
    pub fn new(inner: G, seed: u64, percent_faulty: u64) -> Self {
        FaultyPaymentGateway {
            inner,
            rng: SeededRng::new(seed),
            percent_faulty,
            injected: Default::default(),
        }
    }

    /// The wrapped gateway (for checkers).
    pub fn inner(&self) -> &G {
        &self.inner
    }

    /// Faults injected so far: (unavailable, timeout before sending, timeout after the effect).
    pub fn injected(&self) -> (u64, u64, u64) {
        let get = |i: usize| self.injected[i].load(std::sync::atomic::Ordering::Relaxed);
        (get(0), get(1), get(2))
    }

    fn roll(&self) -> Fault {
        let r = self.rng.below(100);
        if r >= self.percent_faulty {
            return Fault::None;
        }
        let kind = self.rng.below(3);
        self.injected[usize::try_from(kind).unwrap_or(0)]
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match kind {
            0 => Fault::Unavailable,
            1 => Fault::TimeoutBefore,
            _ => Fault::TimeoutAfter,
        }
    }

    async fn call<T>(&self, f: impl std::future::Future<Output = PortResult<T>>) -> PortResult<T> {
        match self.roll() {
            Fault::None => f.await,
            Fault::Unavailable => Err(PortError::new(
                ErrorKind::Unavailable,
                "injected: unavailable",
            )),
            Fault::TimeoutBefore => Err(PortError::new(
                ErrorKind::Indeterminate,
                "injected: timeout before sending",
            )),
            Fault::TimeoutAfter => {
                let _ = f.await;
                Err(PortError::new(
                    ErrorKind::Indeterminate,
                    "injected: timeout after the effect",
                ))
            }
        }
    }

    fn read_fault(&self) -> PortResult<()> {
        if self.rng.below(200) < self.percent_faulty {
            Err(PortError::new(
                ErrorKind::Unavailable,
                "injected: unavailable",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<G: PaymentGateway> PaymentGateway for FaultyPaymentGateway<G> {
    async fn authorize(&self, request: &AuthorizeRequest) -> PortResult<Payment> {
        self.call(self.inner.authorize(request)).await
    }
    async fn capture(
        &self,
        key: &IdempotencyKey,
        r: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        self.call(self.inner.capture(key, r, amount)).await
    }
    async fn refund(
        &self,
        key: &IdempotencyKey,
        r: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        self.call(self.inner.refund(key, r, amount)).await
    }
    async fn void(&self, key: &IdempotencyKey, r: &PaymentRef) -> PortResult<Payment> {
        self.call(self.inner.void(key, r)).await
    }
    async fn lookup(&self, key: &IdempotencyKey) -> PortResult<Option<Payment>> {
        self.read_fault()?;
        self.inner.lookup(key).await
    }
    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>> {
        self.read_fault()?;
        self.inner.list(after, limit).await
    }
}

/// Wraps a carrier and injects a [`Fault`] into each label purchase; quotes and tracking fail
/// only as `Unavailable`, half as often.
#[derive(Debug)]
pub struct FaultyCarrier<C> {
    inner: C,
    rng: SeededRng,
    percent_faulty: u64,
}

impl<C: commerce_core::Carrier> FaultyCarrier<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, seed: u64, percent_faulty: u64) -> Self {
        FaultyCarrier {
            inner,
            rng: SeededRng::new(seed),
            percent_faulty,
        }
    }

    /// The wrapped carrier.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn read_fault(&self) -> PortResult<()> {
        if self.rng.below(200) < self.percent_faulty {
            Err(PortError::new(
                ErrorKind::Unavailable,
                "injected: unavailable",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<C: commerce_core::Carrier> commerce_core::Carrier for FaultyCarrier<C> {
    async fn quote(
        &self,
        request: &commerce_core::ShipmentRequest,
    ) -> PortResult<Vec<commerce_core::RateQuote>> {
        self.read_fault()?;
        self.inner.quote(request).await
    }
    async fn create_label(
        &self,
        key: &IdempotencyKey,
        request: &commerce_core::ShipmentRequest,
        service: &str,
    ) -> PortResult<commerce_core::Label> {
        if self.rng.below(100) >= self.percent_faulty {
            return self.inner.create_label(key, request, service).await;
        }
        match self.rng.below(3) {
            0 => Err(PortError::new(
                ErrorKind::Unavailable,
                "injected: unavailable",
            )),
            1 => Err(PortError::new(
                ErrorKind::Indeterminate,
                "injected: timeout before sending",
            )),
            _ => {
                let _ = self.inner.create_label(key, request, service).await;
                Err(PortError::new(
                    ErrorKind::Indeterminate,
                    "injected: timeout after the effect",
                ))
            }
        }
    }
    async fn track(&self, tracking_number: &str) -> PortResult<Vec<commerce_core::TrackingEvent>> {
        self.read_fault()?;
        self.inner.track(tracking_number).await
    }
}
