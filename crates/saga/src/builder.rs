//! Wiring a saga service (checkout, the order lifecycle): its ports, its time, its journal.

use std::sync::Arc;

use commerce_core::Clock;

use crate::journal::{InMemoryJournal, SagaJournal};
use crate::orchestrator::{RetryPolicy, Sleeper};

/// Builds a saga service over ports `P`: ports, a clock and a sleeper are required; the journal
/// defaults to an in-memory one, the worker name to the service's, the retry jitter seed to 0.
/// [`crate::Checkout::builder`] and [`crate::Lifecycle::builder`] start one.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build`"]
pub struct ServiceBuilder<P> {
    pub(crate) ports: P,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sleeper: Arc<dyn Sleeper>,
    journal: Option<Arc<dyn SagaJournal>>,
    pub(crate) worker: String,
    pub(crate) seed: u64,
    pub(crate) policy: RetryPolicy,
}

impl<P> ServiceBuilder<P> {
    pub(crate) fn new(
        ports: P,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        worker: &str,
    ) -> Self {
        ServiceBuilder {
            ports,
            clock,
            sleeper,
            journal: None,
            worker: worker.to_owned(),
            seed: 0,
            policy: RetryPolicy::default(),
        }
    }

    /// The journal the sagas are recorded in (a durable one in production).
    pub fn journal(mut self, journal: Arc<dyn SagaJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The name this worker holds saga leases under.
    pub fn worker(mut self, name: impl Into<String>) -> Self {
        self.worker = name.into();
        self
    }

    /// The seed of the retry jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Retries, step timeouts and the lease a driver holds on a saga (default
    /// [`RetryPolicy::default`]). A shorter lease lets another worker (or the same service
    /// restarted after a crash) take over an abandoned saga sooner; it must stay longer than a
    /// step's worst case.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn journal_or_in_memory(&mut self) -> Arc<dyn SagaJournal> {
        self.journal
            .take()
            .unwrap_or_else(|| Arc::new(InMemoryJournal::new()))
    }
}
