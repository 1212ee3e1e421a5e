//! A virtual queue for flash sales: shoppers wait in arrival order and are admitted to
//! checkout in batches at a configured rate; each can see their position.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::UserId;

use crate::{Error, Result};

/// Queue settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Shoppers admitted per second, on average.
    pub admit_per_sec: u32,
    /// How long an admission lasts (time to finish checkout).
    pub admission_ttl: TimeDelta,
    /// Most shoppers waiting at once.
    pub capacity: usize,
}

/// Where a shopper stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// Waiting; `position` 1 is next.
    Waiting {
        /// 1-based place in line.
        position: usize,
    },
    /// Admitted to checkout until `until`.
    Admitted {
        /// When the admission lapses.
        until: DateTime<Utc>,
    },
}

#[derive(Debug)]
struct State {
    waiting: VecDeque<UserId>,
    /// Arrival sequence number of each waiting shopper, and the sequence of the head.
    seq: HashMap<UserId, u64>,
    next_seq: u64,
    head_seq: u64,
    admitted: HashMap<UserId, DateTime<Utc>>,
    /// Admissions earned but not yet used (fractions of a shopper, in thousandths).
    credit_milli: i64,
    last_admit: DateTime<Utc>,
}

/// A fair (first come, first served) admission queue with a rate limit.
///
/// ```
/// use chrono::TimeDelta;
/// use commerce_core::{UserId, testkit::t0};
/// use saga::{QueueConfig, Ticket, VirtualQueue};
///
/// let q = VirtualQueue::new(QueueConfig { admit_per_sec: 2, admission_ttl: TimeDelta::minutes(10), capacity: 1_000 }, t0());
/// for name in ["ann", "ben", "cat"] {
///     q.join(&UserId::new(name)?, t0())?;
/// }
/// assert_eq!(q.ticket(&UserId::new("cat")?, t0()), Some(Ticket::Waiting { position: 3 }));
/// let admitted = q.admit(t0() + TimeDelta::seconds(1)); // 2 per second
/// assert_eq!(admitted.len(), 2);
/// assert_eq!(q.ticket(&UserId::new("cat")?, t0() + TimeDelta::seconds(1)), Some(Ticket::Waiting { position: 1 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct VirtualQueue {
    config: QueueConfig,
    state: Mutex<State>,
}

impl VirtualQueue {
    /// An empty queue that starts admitting from `now`.
    pub fn new(config: QueueConfig, now: DateTime<Utc>) -> Self {
        VirtualQueue {
            config,
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                seq: HashMap::new(),
                next_seq: 0,
                head_seq: 0,
                admitted: HashMap::new(),
                credit_milli: 0,
                last_admit: now,
            }),
        }
    }

    /// Joins the queue (joining again keeps the place).
    ///
    /// # Errors
    /// [`Error::QueueFull`] when the queue is full.
    pub fn join(&self, shopper: &UserId, now: DateTime<Utc>) -> Result<Ticket> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = Self::ticket_locked(&s, shopper, now) {
            return Ok(t);
        }
        if s.waiting.len() >= self.config.capacity {
            return Err(Error::QueueFull {
                capacity: self.config.capacity,
            });
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.seq.insert(shopper.clone(), seq);
        s.waiting.push_back(shopper.clone());
        Ok(Ticket::Waiting {
            position: usize::try_from(seq - s.head_seq + 1).unwrap_or(usize::MAX),
        })
    }

    fn ticket_locked(s: &State, shopper: &UserId, now: DateTime<Utc>) -> Option<Ticket> {
        if let Some(until) = s.admitted.get(shopper).filter(|u| **u > now) {
            return Some(Ticket::Admitted { until: *until });
        }
        s.seq.get(shopper).map(|seq| Ticket::Waiting {
            position: usize::try_from(seq - s.head_seq + 1).unwrap_or(usize::MAX),
        })
    }

    /// A shopper's ticket, if they are in line or admitted.
    pub fn ticket(&self, shopper: &UserId, now: DateTime<Utc>) -> Option<Ticket> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::ticket_locked(&s, shopper, now)
    }

    /// True if `shopper` may check out now.
    pub fn is_admitted(&self, shopper: &UserId, now: DateTime<Utc>) -> bool {
        matches!(self.ticket(shopper, now), Some(Ticket::Admitted { .. }))
    }

    /// Admits the shoppers the rate allows since the last admission, in arrival order.
    pub fn admit(&self, now: DateTime<Utc>) -> Vec<UserId> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed_ms = (now - s.last_admit).num_milliseconds().max(0);
        s.last_admit = s.last_admit.max(now);
        s.credit_milli += elapsed_ms * i64::from(self.config.admit_per_sec);
        // Unused credit does not pile up beyond one second's worth (no burst after a lull).
        s.credit_milli = s
            .credit_milli
            .min(i64::from(self.config.admit_per_sec) * 1_000);
        let mut out = Vec::new();
        while s.credit_milli >= 1_000 {
            let Some(next) = s.waiting.pop_front() else {
                break;
            };
            s.credit_milli -= 1_000;
            s.seq.remove(&next);
            s.head_seq += 1;
            s.admitted
                .insert(next.clone(), now + self.config.admission_ttl);
            out.push(next);
        }
        s.admitted.retain(|_, until| *until > now);
        out
    }

    /// Shoppers waiting.
    pub fn waiting(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .len()
    }
}
