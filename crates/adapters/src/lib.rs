//! Bindings of `commerce_core`'s ports to the world outside the process.
//!
//! Pure crates never depend on this one; binaries and services wire it in. Everything here is
//! behind a feature, except [`SystemClock`], the one place the SDK reads the wall clock.
//!
//! | feature    | what it binds                          | status          |
//! |------------|----------------------------------------|-----------------|
//! | (none)     | [`SystemClock`]                        | ready           |
//! | `postgres` | stores on PostgreSQL through sqlx ([`postgres`]), [`TokioSleeper`] | ready |
//! | `redis`    | stores and caches on Redis ([`redis`]) | ready |
//! | `kafka`    | the event bus on a Kafka-protocol broker ([`kafka`]) | ready |
//! | `http`     | one axum router per engine, problem+json errors, idempotency keys, tokens ([`http`]) | ready |
//! | `smtp`     | e-mail notifications over SMTP with templates, retries and once-per-key delivery ([`smtp`]) | ready |
//!
//! Every adapter must pass the same conformance suite as the in-memory implementation of its
//! port (see `commerce_core::testkit`).
//!
//! ```
//! use commerce_core::Clock;
//! let clock = adapters::SystemClock;
//! let a = clock.now();
//! assert!(clock.now() >= a);
//! ```

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "smtp")]
pub mod smtp;

use chrono::{DateTime, Utc};

/// The production [`saga::Sleeper`]: waits on the tokio timer (retry backoff, step timeouts).
/// Tests and simulations use `saga::ClockSleeper`, which advances a manual clock instead.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl saga::Sleeper for TokioSleeper {
    async fn sleep(&self, delay: chrono::TimeDelta) {
        tokio::time::sleep(delay.to_std().unwrap_or_default()).await;
    }
}

/// The wall clock, for production wiring. Tests and simulations use
/// `commerce_core::ManualClock` instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl commerce_core::Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "this adapter is the one place that reads the system clock"
    )]
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}
