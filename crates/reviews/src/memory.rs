//! The in-memory [`ReviewStore`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{
    CasOutcome, ErrorKind, EventEnvelope, OrderId, PortError, PortResult, ProductId, Sku, UserId,
};

use crate::limits::{PAGE_SIZE_MAX, PURCHASE_BATCH_MAX};
use crate::rules::{self, WriteCheck};
use crate::{
    Answer, AnswerId, Error, ListedReview, Moderation, ProductRating, PurchaseChange, Question,
    QuestionId, RatingWrite, Review, ReviewKey, ReviewStore,
};

/// A [`ReviewStore`] in memory, behind one mutex, committing each review write's events to its
/// outbox (an [`InMemoryEventLog`]) inside the same critical section.
#[derive(Debug, Default)]
pub struct InMemoryReviewStore {
    inner: Mutex<Inner>,
    outbox: Arc<InMemoryEventLog>,
}

/// Everything an [`InMemoryReviewStore`] holds, for tests and model checks to compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewStoreSnapshot {
    /// Reviews by key.
    pub reviews: BTreeMap<ReviewKey, Review>,
    /// Helpful voters per review.
    pub votes: BTreeMap<ReviewKey, BTreeSet<UserId>>,
    /// Ratings by product.
    pub ratings: BTreeMap<ProductId, ProductRating>,
    /// Questions by id.
    pub questions: BTreeMap<QuestionId, Question>,
    /// Answers by id.
    pub answers: BTreeMap<AnswerId, Answer>,
    /// Purchases by order.
    pub purchases: BTreeMap<OrderId, Purchase>,
    /// The purchase feed's offset.
    pub purchase_offset: u64,
}

/// One order as the purchase records hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purchase {
    /// The customer, once the confirmation was recorded (a cancellation can come first).
    pub user_id: Option<UserId>,
    /// The SKUs bought.
    pub skus: BTreeSet<Sku>,
    /// Cancelled: it no longer counts.
    pub cancelled: bool,
}

#[derive(Debug, Default)]
struct Inner {
    state: ReviewStoreSnapshot,
    /// Orders per customer, for `has_purchased`.
    orders_by_user: HashMap<UserId, BTreeSet<OrderId>>,
    /// Questions per product, for listings.
    questions_by_product: BTreeSet<(ProductId, QuestionId)>,
    /// Answers per question, for listings.
    answers_by_question: BTreeSet<(QuestionId, AnswerId)>,
}

impl InMemoryReviewStore {
    /// An empty store with an outbox of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store committing its events to `outbox` (share one log between the stores of
    /// a deployment).
    pub fn with_outbox(outbox: Arc<InMemoryEventLog>) -> Self {
        InMemoryReviewStore {
            inner: Mutex::default(),
            outbox,
        }
    }

    /// The log this store commits its events to.
    pub fn outbox(&self) -> &Arc<InMemoryEventLog> {
        &self.outbox
    }

    /// Everything the store holds.
    pub fn snapshot(&self) -> ReviewStoreSnapshot {
        self.lock().state.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every write checks everything before it changes anything, so the data is consistent
        // even if a panicking thread poisoned the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides a review write under the lock; on `Apply`, writes the rating and the events.
    fn review_write(
        &self,
        inner: &mut Inner,
        key: &ReviewKey,
        next: Option<&Review>,
        expected_version: u64,
        rating: Option<&RatingWrite>,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let state = &mut inner.state;
        let check = rules::check_review_write(
            key,
            state.reviews.get(key),
            state.ratings.get(&key.product_id),
            next,
            expected_version,
            rating,
        )?;
        if let WriteCheck::Mismatch { current } = check {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        if let Some(w) = rating {
            state
                .ratings
                .insert(key.product_id.clone(), w.rating.clone());
        }
        match next {
            Some(review) => {
                state.reviews.insert(key.clone(), review.clone());
            }
            None => {
                state.reviews.remove(key);
                state.votes.remove(key);
            }
        }
        let _ = self.outbox.append(events);
        Ok(CasOutcome::Committed)
    }
}

/// A page of the records under `parent` in the secondary index `by_parent`, in id order,
/// strictly after `after`, that `keep` accepts.
fn page<P: Ord + Clone, K: Ord + Clone, V: Clone>(
    by_parent: &BTreeSet<(P, K)>,
    records: &BTreeMap<K, V>,
    parent: &P,
    after: Option<&K>,
    keep: impl Fn(&V) -> bool,
    limit: usize,
) -> Vec<V> {
    let ids: Box<dyn Iterator<Item = &(P, K)>> = match after {
        Some(a) => Box::new(by_parent.range((
            Bound::Excluded((parent.clone(), a.clone())),
            Bound::Unbounded,
        ))),
        None => Box::new(by_parent.iter().skip_while(|(p, _)| p < parent)),
    };
    ids.take_while(|(p, _)| p == parent)
        .filter_map(|(_, id)| records.get(id))
        .filter(|r| keep(r))
        .take(limit.min(PAGE_SIZE_MAX))
        .cloned()
        .collect()
}

fn not_found(what: impl std::fmt::Display) -> PortError {
    PortError::new(ErrorKind::NotFound, what.to_string())
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl ReviewStore for InMemoryReviewStore {
    async fn review(&self, key: &ReviewKey) -> PortResult<Option<Review>> {
        Ok(self.lock().state.reviews.get(key).cloned())
    }

    async fn rating(&self, product: &ProductId) -> PortResult<Option<ProductRating>> {
        Ok(self.lock().state.ratings.get(product).cloned())
    }

    async fn put_review(
        &self,
        review: &Review,
        expected_version: u64,
        rating: Option<&RatingWrite>,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let mut inner = self.lock();
        self.review_write(
            &mut inner,
            &review.key(),
            Some(review),
            expected_version,
            rating,
            events,
        )
    }

    async fn delete_review(
        &self,
        key: &ReviewKey,
        expected_version: u64,
        rating: Option<&RatingWrite>,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome> {
        let mut inner = self.lock();
        self.review_write(&mut inner, key, None, expected_version, rating, events)
    }

    async fn list_reviews(
        &self,
        product: &ProductId,
        status: Option<Moderation>,
        after: Option<&UserId>,
        limit: usize,
    ) -> PortResult<Vec<ListedReview>> {
        let inner = self.lock();
        let state = &inner.state;
        let lower = match after {
            Some(a) => Bound::Excluded(ReviewKey::new(product.clone(), a.clone())),
            None => Bound::Included(ReviewKey::new(product.clone(), min_user())),
        };
        Ok(state
            .reviews
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.product_id == *product)
            .filter(|(_, r)| status.is_none_or(|s| r.status == s))
            .take(limit.min(PAGE_SIZE_MAX))
            .map(|(k, r)| ListedReview {
                review: r.clone(),
                helpful_votes: count(state.votes.get(k).map_or(0, BTreeSet::len)),
            })
            .collect())
    }

    async fn pending_reviews(
        &self,
        after: Option<&ReviewKey>,
        limit: usize,
    ) -> PortResult<Vec<Review>> {
        let inner = self.lock();
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(inner
            .state
            .reviews
            .range((lower, Bound::Unbounded))
            .filter(|(_, r)| r.status == Moderation::Pending)
            .take(limit.min(PAGE_SIZE_MAX))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn add_vote(&self, key: &ReviewKey, voter: &UserId) -> PortResult<bool> {
        let mut inner = self.lock();
        let state = &mut inner.state;
        if !state.reviews.contains_key(key) {
            return Err(not_found(format!("review {key}")));
        }
        Ok(state
            .votes
            .entry(key.clone())
            .or_default()
            .insert(voter.clone()))
    }

    async fn helpful_votes(&self, key: &ReviewKey) -> PortResult<u32> {
        Ok(count(
            self.lock().state.votes.get(key).map_or(0, BTreeSet::len),
        ))
    }

    async fn question(&self, id: &QuestionId) -> PortResult<Option<Question>> {
        Ok(self.lock().state.questions.get(id).cloned())
    }

    async fn insert_question(&self, question: &Question) -> PortResult<()> {
        question.validate()?;
        let mut inner = self.lock();
        let questions = &mut inner.state.questions;
        if questions.contains_key(&question.id) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("question {} exists", question.id),
            ));
        }
        questions.insert(question.id.clone(), question.clone());
        inner
            .questions_by_product
            .insert((question.product_id.clone(), question.id.clone()));
        Ok(())
    }

    async fn update_question(
        &self,
        question: &Question,
        expected_version: u64,
    ) -> PortResult<CasOutcome> {
        let mut inner = self.lock();
        let Some(stored) = inner.state.questions.get_mut(&question.id) else {
            return Err(not_found(format!("question {}", question.id)));
        };
        match rules::check_question_update(stored, question, expected_version)? {
            WriteCheck::Mismatch { current } => Ok(CasOutcome::VersionMismatch { current }),
            WriteCheck::Apply => {
                *stored = question.clone();
                Ok(CasOutcome::Committed)
            }
        }
    }

    async fn list_questions(
        &self,
        product: &ProductId,
        status: Option<Moderation>,
        after: Option<&QuestionId>,
        limit: usize,
    ) -> PortResult<Vec<Question>> {
        let inner = self.lock();
        Ok(page(
            &inner.questions_by_product,
            &inner.state.questions,
            product,
            after,
            |q: &Question| status.is_none_or(|s| q.status == s),
            limit,
        ))
    }

    async fn answer(&self, id: &AnswerId) -> PortResult<Option<Answer>> {
        Ok(self.lock().state.answers.get(id).cloned())
    }

    async fn insert_answer(&self, answer: &Answer) -> PortResult<()> {
        answer.validate()?;
        let mut inner = self.lock();
        let state = &mut inner.state;
        match state.questions.get(&answer.question_id) {
            None => return Err(not_found(format!("question {}", answer.question_id))),
            Some(q) if q.product_id != answer.product_id => {
                return Err(Error::invalid(
                    "answer.product_id",
                    format!("question {} is about {}", q.id, q.product_id),
                )
                .into());
            }
            Some(_) => {}
        }
        if state.answers.contains_key(&answer.id) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("answer {} exists", answer.id),
            ));
        }
        state.answers.insert(answer.id.clone(), answer.clone());
        inner
            .answers_by_question
            .insert((answer.question_id.clone(), answer.id.clone()));
        Ok(())
    }

    async fn update_answer(
        &self,
        answer: &Answer,
        expected_version: u64,
    ) -> PortResult<CasOutcome> {
        let mut inner = self.lock();
        let Some(stored) = inner.state.answers.get_mut(&answer.id) else {
            return Err(not_found(format!("answer {}", answer.id)));
        };
        match rules::check_answer_update(stored, answer, expected_version)? {
            WriteCheck::Mismatch { current } => Ok(CasOutcome::VersionMismatch { current }),
            WriteCheck::Apply => {
                *stored = answer.clone();
                Ok(CasOutcome::Committed)
            }
        }
    }

    async fn list_answers(
        &self,
        question: &QuestionId,
        status: Option<Moderation>,
        after: Option<&AnswerId>,
        limit: usize,
    ) -> PortResult<Vec<Answer>> {
        let inner = self.lock();
        Ok(page(
            &inner.answers_by_question,
            &inner.state.answers,
            question,
            after,
            |a: &Answer| status.is_none_or(|s| a.status == s),
            limit,
        ))
    }

    async fn purchase_offset(&self) -> PortResult<u64> {
        Ok(self.lock().state.purchase_offset)
    }

    async fn record_purchases(
        &self,
        changes: &[PurchaseChange],
        from_offset: u64,
        next_offset: u64,
    ) -> PortResult<CasOutcome> {
        if changes.len() > PURCHASE_BATCH_MAX {
            return Err(Error::invalid(
                "changes",
                format!("more than {PURCHASE_BATCH_MAX} in one batch"),
            )
            .into());
        }
        if next_offset < from_offset {
            return Err(Error::invalid(
                "next_offset",
                format!("{next_offset} is before {from_offset}"),
            )
            .into());
        }
        let mut inner = self.lock();
        let current = inner.state.purchase_offset;
        if current != from_offset {
            return Ok(CasOutcome::VersionMismatch { current });
        }
        for change in changes {
            match change {
                PurchaseChange::Confirmed {
                    order_id,
                    user_id,
                    skus,
                } => {
                    let purchase = inner.state.purchases.entry(order_id.clone()).or_default();
                    if purchase.user_id.is_some() {
                        continue; // recorded before: the first confirmation stands
                    }
                    purchase.user_id = Some(user_id.clone());
                    purchase.skus = skus.iter().cloned().collect();
                    inner
                        .orders_by_user
                        .entry(user_id.clone())
                        .or_default()
                        .insert(order_id.clone());
                }
                PurchaseChange::Cancelled { order_id } => {
                    inner
                        .state
                        .purchases
                        .entry(order_id.clone())
                        .or_default()
                        .cancelled = true;
                }
            }
        }
        inner.state.purchase_offset = next_offset;
        Ok(CasOutcome::Committed)
    }

    async fn has_purchased(&self, user: &UserId, sku: &Sku) -> PortResult<bool> {
        let inner = self.lock();
        Ok(inner.orders_by_user.get(user).is_some_and(|orders| {
            orders.iter().any(|o| {
                inner
                    .state
                    .purchases
                    .get(o)
                    .is_some_and(|p| !p.cancelled && p.skus.contains(sku))
            })
        }))
    }
}

/// The smallest user id: a lower bound for a product's review keys.
fn min_user() -> UserId {
    // "-" is the smallest character ids allow; a one-character id is valid.
    UserId::new("-").unwrap_or_else(|_| unreachable!("\"-\" is a valid user id"))
}
