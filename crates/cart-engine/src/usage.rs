//! Promotion usage: limits in total, per customer, and campaign budgets, claimed as
//! reserve-then-commit so concurrent checkouts can never exceed them.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use commerce_core::{ErrorKind, IdempotencyKey, Money, PortError, PortResult, UserId};
use serde::{Deserialize, Serialize};

use crate::promo::{PromotionId, UsageLimits};

/// A request to claim one use of a promotion for one checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The claim's id (derive it from the order id and promotion id); claims are idempotent by it.
    pub claim_id: IdempotencyKey,
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The customer, for per-customer limits.
    pub customer: Option<UserId>,
    /// The discount this use gives, for budgets.
    pub discount: Money,
    /// The promotion's limits.
    pub limits: UsageLimits,
}

/// Which limit stopped a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitReached {
    /// Uses in total.
    Total,
    /// Uses by this customer.
    PerCustomer,
    /// The campaign budget.
    Budget,
    /// The promotion has a per-customer limit and the shopper is anonymous.
    CustomerRequired,
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// The use is reserved (counted against the limits) until committed or released.
    Reserved,
    /// A limit would be exceeded; nothing was reserved.
    LimitReached(LimitReached),
}

/// Counts of one promotion's uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Reserved or committed uses.
    pub uses: u32,
    /// Reserved or committed discount, if any use was claimed.
    pub spent: Option<Money>,
}

/// Where promotion usage is counted.
///
/// Contract (checked by `cart_engine::usage_store_conformance!`):
/// - `reserve` counts the use against every limit atomically: concurrent reservations can never
///   exceed a limit. Reserved and committed uses both count.
/// - `reserve` is idempotent by `claim_id`: repeating a reserved claim returns `Reserved` and
///   counts once; the same id with another request is `Conflict`. A refused claim stores
///   nothing, and a released one may be reserved again (it is checked against the limits anew).
/// - `commit` makes a reservation permanent; `release` gives a reserved or committed use back
///   (a cancelled checkout, a cancelled order). Both are idempotent; an unknown claim is
///   `NotFound`.
#[async_trait]
pub trait PromotionUsageStore: Send + Sync + Debug {
    /// Reserves one use.
    async fn reserve(&self, request: &ClaimRequest) -> PortResult<ClaimOutcome>;
    /// Makes a reservation permanent.
    async fn commit(&self, claim_id: &IdempotencyKey) -> PortResult<()>;
    /// Gives a use back.
    async fn release(&self, claim_id: &IdempotencyKey) -> PortResult<()>;
    /// Current usage of a promotion.
    async fn usage(&self, promotion_id: &PromotionId) -> PortResult<Usage>;
}

/// A [`PromotionUsageStore`] in memory, behind one mutex, with a running tally per promotion
/// so every call costs the same however many claims exist.
#[derive(Debug, Default)]
pub struct InMemoryUsageStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    claims: HashMap<IdempotencyKey, Claim>,
    tallies: HashMap<PromotionId, Tally>,
}

/// Counted (reserved or committed) uses of one promotion.
#[derive(Debug, Default)]
struct Tally {
    uses: u32,
    spent: Option<Money>,
    per_customer: HashMap<UserId, u32>,
}

#[derive(Debug, Clone)]
struct Claim {
    request: ClaimRequest,
    state: ClaimState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimState {
    Reserved,
    Committed,
    Released,
}

impl InMemoryUsageStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Tally {
    fn add(&mut self, request: &ClaimRequest) -> PortResult<()> {
        // Compute everything that can fail before changing anything.
        let spent = match self.spent {
            None => request.discount,
            Some(s) => s.checked_add(&request.discount).map_err(PortError::from)?,
        };
        self.uses += 1;
        self.spent = Some(spent);
        if let Some(c) = &request.customer {
            *self.per_customer.entry(c.clone()).or_insert(0) += 1;
        }
        Ok(())
    }

    fn remove(&mut self, request: &ClaimRequest) {
        self.uses = self.uses.saturating_sub(1);
        self.spent = self
            .spent
            .and_then(|s| s.checked_sub(&request.discount).ok());
        if let Some(c) = &request.customer
            && let Some(n) = self.per_customer.get_mut(c)
        {
            *n = n.saturating_sub(1);
        }
    }
}

#[async_trait]
impl PromotionUsageStore for InMemoryUsageStore {
    async fn reserve(&self, request: &ClaimRequest) -> PortResult<ClaimOutcome> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(claim) = inner.claims.get(&request.claim_id) {
            if claim.state == ClaimState::Released {
                // Given back earlier: a retried checkout claims afresh, against the limits.
                inner.claims.remove(&request.claim_id);
            } else if claim.request != *request {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    format!("claim {} was made for another request", request.claim_id),
                ));
            } else {
                return Ok(ClaimOutcome::Reserved);
            }
        }
        if request.discount.is_negative() {
            return Err(PortError::new(ErrorKind::Invalid, "negative discount"));
        }
        let limits = &request.limits;
        let tally = inner
            .tallies
            .entry(request.promotion_id.clone())
            .or_default();
        let outcome = if limits.total.is_some_and(|t| tally.uses >= t) {
            ClaimOutcome::LimitReached(LimitReached::Total)
        } else if limits.per_customer.is_some() && request.customer.is_none() {
            ClaimOutcome::LimitReached(LimitReached::CustomerRequired)
        } else if limits.per_customer.is_some_and(|per| {
            request
                .customer
                .as_ref()
                .and_then(|c| tally.per_customer.get(c))
                .copied()
                .unwrap_or(0)
                >= per
        }) {
            ClaimOutcome::LimitReached(LimitReached::PerCustomer)
        } else if let Some(budget) = &limits.budget {
            let spent = tally
                .spent
                .unwrap_or_else(|| Money::zero(budget.currency()))
                .checked_add(&request.discount)
                .map_err(PortError::from)?;
            if spent.amount() > budget.amount() {
                ClaimOutcome::LimitReached(LimitReached::Budget)
            } else {
                ClaimOutcome::Reserved
            }
        } else {
            ClaimOutcome::Reserved
        };
        // A refusal is not stored: the same claim may succeed once another is released.
        if outcome == ClaimOutcome::Reserved {
            tally.add(request)?;
            inner.claims.insert(
                request.claim_id.clone(),
                Claim {
                    request: request.clone(),
                    state: ClaimState::Reserved,
                },
            );
        }
        Ok(outcome)
    }

    async fn commit(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let claim = inner
            .claims
            .get_mut(claim_id)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("claim {claim_id}")))?;
        match claim.state {
            ClaimState::Reserved | ClaimState::Committed => {
                claim.state = ClaimState::Committed;
                Ok(())
            }
            ClaimState::Released => Err(PortError::new(
                ErrorKind::Conflict,
                format!("claim {claim_id} was released"),
            )),
        }
    }

    async fn release(&self, claim_id: &IdempotencyKey) -> PortResult<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { claims, tallies } = &mut *inner;
        let claim = claims
            .get_mut(claim_id)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("claim {claim_id}")))?;
        if claim.state != ClaimState::Released {
            claim.state = ClaimState::Released;
            if let Some(t) = tallies.get_mut(&claim.request.promotion_id) {
                t.remove(&claim.request);
            }
        }
        Ok(())
    }

    async fn usage(&self, promotion_id: &PromotionId) -> PortResult<Usage> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inner.tallies.get(promotion_id).map_or(
            Usage {
                uses: 0,
                spent: None,
            },
            |t| Usage {
                uses: t.uses,
                spent: t.spent.filter(|s| !s.is_zero() || t.uses > 0),
            },
        ))
    }
}
