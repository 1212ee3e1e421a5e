//! The store port: reviews with the product ratings they add up to, helpful votes, questions
//! and answers, and the purchases that make a review verified.

use std::fmt::Debug;

use async_trait::async_trait;
use commerce_core::{CasOutcome, EventEnvelope, PortResult, ProductId, Sku, UserId};

use crate::{
    Answer, AnswerId, ListedReview, Moderation, ProductRating, PurchaseChange, Question,
    QuestionId, RatingWrite, Review, ReviewKey,
};

/// Where reviews, ratings, votes, questions, answers and purchases live, and the outbox the
/// rating events commit to.
///
/// Contract (checked by `reviews::review_store_conformance!`):
/// - **Reviews.** `put_review` and `delete_review` are compare-and-set on the review's
///   `version` (0 when absent: `put_review` at 0 inserts) and, when they carry a
///   [`RatingWrite`], on the product rating's `seq` as well. They decide with
///   [`crate::rules::check_review_write`]: a malformed write is refused with its error (kind
///   `Invalid`), a lost race is [`CasOutcome::VersionMismatch`] (`current` is the stored
///   review's version), and a write whose rating does not follow exactly from the change of
///   the review's counted stars is refused. So the stored rating always equals the sum and
///   count of the product's published reviews.
/// - Every review write commits the review, the rating and the `events` it is given together,
///   all or nothing: a refused or lost write commits no event, and no reader of the event log
///   sees an event before the write that caused it. Events whose ids the log holds are
///   skipped (a retried write commits each once).
/// - Deleting a review deletes its helpful votes.
/// - **Votes.** `add_vote` adds a voter to a review's set of helpful votes: `true` when the
///   vote is new, `false` when the voter had voted (nothing changes); a missing review is
///   `NotFound`. The store keeps no other vote rule: the engine checks them.
/// - **Questions and answers.** `insert_*` stores a new record (an id that exists is `Conflict`;
///   an answer to a missing question is `NotFound`); `update_*` is compare-and-set on
///   `version` (the new record's version is the expected one plus one) and may change only
///   the moderation fields; a missing record is `NotFound`. Records are validated on every
///   write.
/// - **Purchases.** `record_purchases` applies a batch of purchase changes and moves the
///   purchase offset from `from_offset` to `next_offset` together, compare-and-set on the
///   offset; changes are idempotent by order id (a confirmation already recorded changes
///   nothing; a cancellation is remembered even before its confirmation arrives, and a
///   cancelled order stays cancelled). `has_purchased` is true when the user has a
///   confirmed, not cancelled order with the SKU.
/// - Listings page in ascending key order (author for reviews, id for questions and answers,
///   (product, author) for the moderation queue), strictly after the cursor, at most
///   `min(limit, limits::PAGE_SIZE_MAX)`.
#[async_trait]
pub trait ReviewStore: Send + Sync + Debug {
    /// The review under `key`.
    async fn review(&self, key: &ReviewKey) -> PortResult<Option<Review>>;

    /// The product's rating; `None` when none was ever written.
    async fn rating(&self, product: &ProductId) -> PortResult<Option<ProductRating>>;

    /// Writes `review` over the stored version `expected_version` (0 inserts), with the new
    /// rating when the write moves it, committing `events` with it.
    async fn put_review(
        &self,
        review: &Review,
        expected_version: u64,
        rating: Option<&RatingWrite>,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome>;

    /// Deletes the review at `expected_version` and its votes, with the new rating when the
    /// delete moves it, committing `events` with it.
    async fn delete_review(
        &self,
        key: &ReviewKey,
        expected_version: u64,
        rating: Option<&RatingWrite>,
        events: &[EventEnvelope],
    ) -> PortResult<CasOutcome>;

    /// A page of a product's reviews with their helpful votes, in author order, optionally
    /// only those in one moderation state.
    async fn list_reviews(
        &self,
        product: &ProductId,
        status: Option<Moderation>,
        after: Option<&UserId>,
        limit: usize,
    ) -> PortResult<Vec<ListedReview>>;

    /// A page of the reviews waiting for moderation, across products, in key order.
    async fn pending_reviews(
        &self,
        after: Option<&ReviewKey>,
        limit: usize,
    ) -> PortResult<Vec<Review>>;

    /// Adds `voter`'s helpful vote to the review; `false` if it was there.
    async fn add_vote(&self, key: &ReviewKey, voter: &UserId) -> PortResult<bool>;

    /// The review's helpful votes (0 for a missing review).
    async fn helpful_votes(&self, key: &ReviewKey) -> PortResult<u32>;

    /// The question with this id.
    async fn question(&self, id: &QuestionId) -> PortResult<Option<Question>>;

    /// Stores a new question.
    async fn insert_question(&self, question: &Question) -> PortResult<()>;

    /// Replaces a question's moderation if its stored version is `expected_version`.
    async fn update_question(
        &self,
        question: &Question,
        expected_version: u64,
    ) -> PortResult<CasOutcome>;

    /// A page of a product's questions in id order, optionally only one moderation state.
    async fn list_questions(
        &self,
        product: &ProductId,
        status: Option<Moderation>,
        after: Option<&QuestionId>,
        limit: usize,
    ) -> PortResult<Vec<Question>>;

    /// The answer with this id.
    async fn answer(&self, id: &AnswerId) -> PortResult<Option<Answer>>;

    /// Stores a new answer to a stored question.
    async fn insert_answer(&self, answer: &Answer) -> PortResult<()>;

    /// Replaces an answer's moderation if its stored version is `expected_version`.
    async fn update_answer(&self, answer: &Answer, expected_version: u64)
    -> PortResult<CasOutcome>;

    /// A page of a question's answers in id order, optionally only one moderation state.
    async fn list_answers(
        &self,
        question: &QuestionId,
        status: Option<Moderation>,
        after: Option<&AnswerId>,
        limit: usize,
    ) -> PortResult<Vec<Answer>>;

    /// The offset of the next order event the purchase feed reads (0 at first).
    async fn purchase_offset(&self) -> PortResult<u64>;

    /// Applies `changes` and moves the purchase offset from `from_offset` to `next_offset`,
    /// both or neither.
    async fn record_purchases(
        &self,
        changes: &[PurchaseChange],
        from_offset: u64,
        next_offset: u64,
    ) -> PortResult<CasOutcome>;

    /// True when `user` has a confirmed, not cancelled order with `sku`.
    async fn has_purchased(&self, user: &UserId, sku: &Sku) -> PortResult<bool>;
}
