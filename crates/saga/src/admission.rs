//! Flash-sale admission shared by every server instance: a waiting room whose crowd present at
//! the opening is shuffled once (a lottery, so arriving a millisecond earlier or scripting the
//! join buys nothing), then first come, first served; admissions at the rate checkout can
//! take, never more than the sale's spots; and a closed sign once they are gone.
//!
//! The port ([`AdmissionQueue`]) has an in-memory implementation here and a Redis one in the
//! adapters; both place shoppers with [`lottery_rank`], so they admit in the same order.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{ErrorKind, PortError, PortResult, UserId};

/// Scores of shoppers who arrive after the lottery start at this (ranks stay below it): 2^52,
/// so every score is an integer a double holds exactly (a Redis sorted-set score).
pub const LATE_BASE: u64 = 1 << 52;

/// A sale's waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleConfig {
    /// When admissions start. Everyone who joined before is in the lottery: their order is a
    /// shuffle; everyone after queues behind them in arrival order.
    pub starts_at: DateTime<Utc>,
    /// Shoppers admitted in total (the units on sale, or the checkouts it can take).
    pub spots: u32,
    /// Admissions per second once it starts.
    pub admit_per_sec: u32,
    /// How long an admission lasts (time to check out).
    pub admission_ttl: TimeDelta,
    /// The lottery's secret: with it the shuffle is reproducible (every instance, every
    /// implementation, a later audit), without it unpredictable.
    pub seed: u64,
}

impl SaleConfig {
    /// Checks the bounds.
    ///
    /// # Errors
    /// `Invalid` for no spots, a rate of 0 or above 1,000,000/s, a TTL outside 1 s..=1 day.
    pub fn validate(&self) -> PortResult<()> {
        if self.spots == 0 {
            return Err(invalid("spots", "at least 1"));
        }
        if !(1..=1_000_000).contains(&self.admit_per_sec) {
            return Err(invalid("admit_per_sec", "1 to 1000000"));
        }
        if self.admission_ttl < TimeDelta::seconds(1) || self.admission_ttl > TimeDelta::days(1) {
            return Err(invalid("admission_ttl", "1 second to 1 day"));
        }
        Ok(())
    }

    /// Admissions earned by `now`: the rate times the time since the start, at most the spots.
    pub fn earned(&self, now: DateTime<Utc>) -> u32 {
        let elapsed = (now - self.starts_at).num_milliseconds().max(0);
        let n = elapsed.saturating_mul(i64::from(self.admit_per_sec)) / 1_000;
        u32::try_from(n).unwrap_or(u32::MAX).min(self.spots)
    }
}

fn invalid(field: &str, reason: &str) -> PortError {
    PortError::new(ErrorKind::Invalid, format!("{field}: {reason}")).with_field(field)
}

/// Checks a sale id: 1 to 64 of `[A-Za-z0-9._-]`.
///
/// # Errors
/// `Invalid`.
pub fn check_sale(sale: &str) -> PortResult<()> {
    let ok = !sale.is_empty()
        && sale.len() <= 64
        && sale
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid("sale", "1 to 64 of [A-Za-z0-9._-]"))
    }
}

/// Where a shopper stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// In the room; `position` 1 is next. Before the start, positions are the lottery's draw so
    /// far (a later arrival may be drawn ahead).
    Waiting {
        /// 1-based place among those waiting.
        position: u64,
    },
    /// Admitted: may check out until `until`.
    Admitted {
        /// When the admission lapses.
        until: DateTime<Utc>,
    },
    /// Every spot is taken: the sale is over for this shopper.
    Closed,
}

/// A shopper's place in the lottery: a keyed mix of the seed and the shopper id, below
/// [`LATE_BASE`]. Deterministic, uniform, and unknowable without the seed.
///
/// ```
/// use saga::{lottery_rank, LATE_BASE};
/// use commerce_core::UserId;
/// let ada = UserId::new("ada")?;
/// assert_eq!(lottery_rank(7, &ada), lottery_rank(7, &ada));
/// assert_ne!(lottery_rank(7, &ada), lottery_rank(8, &ada));
/// assert!(lottery_rank(7, &ada) < LATE_BASE);
/// # Ok::<(), commerce_core::Error>(())
/// ```
pub fn lottery_rank(seed: u64, shopper: &UserId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in shopper.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 of the id's hash keyed by the seed.
    let mut z = h ^ seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z >> 12
}

/// The waiting room of flash sales, shared by every instance. Joining is idempotent per
/// shopper; `admit` is called by a ticker (any instance, any number of times) and admits what
/// the rate has earned since the start, in lottery-then-arrival order, never more than the
/// spots in total.
#[async_trait]
pub trait AdmissionQueue: Send + Sync + Debug {
    /// Opens `sale` (idempotent with the same configuration).
    ///
    /// # Errors
    /// `Invalid` for a bad id or configuration; `Conflict` if the sale exists with another.
    async fn open(&self, sale: &str, config: &SaleConfig) -> PortResult<()>;

    /// `shopper` joins `sale` at `now` (again: where they stand).
    ///
    /// # Errors
    /// `NotFound` for a sale never opened; `Invalid` for a bad id.
    async fn join(&self, sale: &str, shopper: &UserId, now: DateTime<Utc>)
    -> PortResult<Admission>;

    /// Where `shopper` stands, if they joined.
    ///
    /// # Errors
    /// `NotFound` for a sale never opened.
    async fn status(&self, sale: &str, shopper: &UserId) -> PortResult<Option<Admission>>;

    /// Admits those the rate has earned by `now`; returns them in admission order.
    ///
    /// # Errors
    /// `NotFound` for a sale never opened.
    async fn admit(&self, sale: &str, now: DateTime<Utc>) -> PortResult<Vec<UserId>>;
}

#[derive(Debug)]
struct Sale {
    config: SaleConfig,
    /// (score, shopper), lowest first; equal scores (a lottery collision, one in 2^52) in id
    /// byte order, as a Redis sorted set orders them.
    waiting: BTreeSet<(u64, UserId)>,
    score_of: HashMap<UserId, u64>,
    admitted: HashMap<UserId, DateTime<Utc>>,
    count: u32,
    seq: u64,
}

/// An [`AdmissionQueue`] in memory, for one instance and for tests.
///
/// ```
/// use chrono::TimeDelta;
/// use commerce_core::{UserId, testkit::t0};
/// use saga::{Admission, AdmissionQueue, InMemoryAdmissionQueue, SaleConfig};
/// # futures::executor::block_on(async {
/// let q = InMemoryAdmissionQueue::new();
/// let config = SaleConfig { starts_at: t0(), spots: 1, admit_per_sec: 10,
///                           admission_ttl: TimeDelta::minutes(10), seed: 42 };
/// q.open("sneaker-drop", &config).await?;
/// for name in ["ann", "ben"] {
///     q.join("sneaker-drop", &UserId::new(name)?, t0() - TimeDelta::seconds(5)).await?;
/// }
/// let admitted = q.admit("sneaker-drop", t0() + TimeDelta::seconds(1)).await?;
/// assert_eq!(admitted.len(), 1);                     // one spot, drawn by lottery
/// let late = q.join("sneaker-drop", &UserId::new("cat")?, t0() + TimeDelta::seconds(2)).await?;
/// assert_eq!(late, Admission::Closed);               // sold out: say so
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryAdmissionQueue {
    sales: Mutex<HashMap<String, Sale>>,
}

impl InMemoryAdmissionQueue {
    /// No sales yet.
    pub fn new() -> Self {
        Self::default()
    }
}

fn unknown(sale: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, format!("sale {sale}"))
}

impl Sale {
    fn standing(&self, shopper: &UserId) -> Option<Admission> {
        if let Some(until) = self.admitted.get(shopper) {
            return Some(Admission::Admitted { until: *until });
        }
        let score = self.score_of.get(shopper)?;
        if self.count >= self.config.spots {
            return Some(Admission::Closed);
        }
        let ahead = self.waiting.range(..(*score, shopper.clone())).count();
        Some(Admission::Waiting {
            position: u64::try_from(ahead).unwrap_or(u64::MAX) + 1,
        })
    }
}

#[async_trait]
impl AdmissionQueue for InMemoryAdmissionQueue {
    async fn open(&self, sale: &str, config: &SaleConfig) -> PortResult<()> {
        check_sale(sale)?;
        config.validate()?;
        let mut sales = self.sales.lock().unwrap_or_else(PoisonError::into_inner);
        match sales.get(sale) {
            Some(s) if s.config == *config => Ok(()),
            Some(_) => Err(PortError::new(
                ErrorKind::Conflict,
                format!("sale {sale} is open with another configuration"),
            )),
            None => {
                sales.insert(
                    sale.to_owned(),
                    Sale {
                        config: *config,
                        waiting: BTreeSet::new(),
                        score_of: HashMap::new(),
                        admitted: HashMap::new(),
                        count: 0,
                        seq: 0,
                    },
                );
                Ok(())
            }
        }
    }

    async fn join(
        &self,
        sale: &str,
        shopper: &UserId,
        now: DateTime<Utc>,
    ) -> PortResult<Admission> {
        check_sale(sale)?;
        let mut sales = self.sales.lock().unwrap_or_else(PoisonError::into_inner);
        let s = sales.get_mut(sale).ok_or_else(|| unknown(sale))?;
        if let Some(standing) = s.standing(shopper) {
            return Ok(standing);
        }
        if s.count >= s.config.spots {
            return Ok(Admission::Closed);
        }
        let score = if now < s.config.starts_at {
            lottery_rank(s.config.seed, shopper)
        } else {
            s.seq += 1;
            LATE_BASE + s.seq
        };
        s.waiting.insert((score, shopper.clone()));
        s.score_of.insert(shopper.clone(), score);
        Ok(s.standing(shopper).unwrap_or(Admission::Closed))
    }

    async fn status(&self, sale: &str, shopper: &UserId) -> PortResult<Option<Admission>> {
        check_sale(sale)?;
        let sales = self.sales.lock().unwrap_or_else(PoisonError::into_inner);
        let s = sales.get(sale).ok_or_else(|| unknown(sale))?;
        Ok(s.standing(shopper))
    }

    async fn admit(&self, sale: &str, now: DateTime<Utc>) -> PortResult<Vec<UserId>> {
        check_sale(sale)?;
        let mut sales = self.sales.lock().unwrap_or_else(PoisonError::into_inner);
        let s = sales.get_mut(sale).ok_or_else(|| unknown(sale))?;
        let due = s.config.earned(now).saturating_sub(s.count);
        let mut out = Vec::new();
        while out.len() < usize::try_from(due).unwrap_or(usize::MAX) {
            let Some((_, shopper)) = s.waiting.pop_first() else {
                break;
            };
            s.score_of.remove(&shopper);
            s.admitted
                .insert(shopper.clone(), now + s.config.admission_ttl);
            out.push(shopper);
        }
        s.count += u32::try_from(out.len()).unwrap_or(u32::MAX);
        Ok(out)
    }
}
