//! The records of the reviews engine: reviews and their keys, stars, moderation, the product's
//! rating, questions and answers, purchases.

use std::fmt;

use chrono::{DateTime, Utc};
use commerce_core::{DomainEvent, EventEnvelope, EventId, OrderId, ProductId, Sku, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::limits::{
    ANSWER_CHARS_MAX, BODY_CHARS_MAX, MODERATION_NOTE_CHARS_MAX, QUESTION_CHARS_MAX, STARS_MAX,
    STARS_MIN, TITLE_CHARS_MAX,
};
use crate::{AnswerId, Error, QuestionId, Result};

/// A review's stars: an integer from [`STARS_MIN`] to [`STARS_MAX`].
///
/// ```
/// use reviews::Stars;
/// assert_eq!(Stars::new(4)?.get(), 4);
/// assert!(Stars::new(0).is_err() && Stars::new(6).is_err());
/// # Ok::<(), reviews::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Stars(u8);

impl Stars {
    /// Validates a number of stars.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `stars`) outside 1 to 5.
    pub fn new(stars: u8) -> Result<Stars> {
        if (STARS_MIN..=STARS_MAX).contains(&stars) {
            Ok(Stars(stars))
        } else {
            Err(Error::invalid(
                "stars",
                format!("{stars} is outside {STARS_MIN} to {STARS_MAX}"),
            ))
        }
    }

    /// The number of stars.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Stars {
    type Error = Error;
    fn try_from(n: u8) -> Result<Stars> {
        Stars::new(n)
    }
}

impl From<Stars> for u8 {
    fn from(s: Stars) -> u8 {
        s.0
    }
}

/// Where a review, question or answer stands in moderation. Only published ones are shown, and
/// only published reviews count toward the product's rating.
///
/// The moves ([`Moderation::after`]): a moderator publishes or rejects; publishing a rejected
/// one reverses the rejection, rejecting a published one takes it down; asking for the state
/// something is already in changes nothing. Only the author's edit of a review sends it back
/// to `Pending`.
///
/// | from | publish | reject |
/// |---|---|---|
/// | `Pending` | `Published` | `Rejected` |
/// | `Published` | unchanged | `Rejected` |
/// | `Rejected` | `Published` | unchanged |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moderation {
    /// Waiting for a moderator (every new or edited review, question and answer).
    Pending,
    /// Shown; a published review counts toward the rating.
    Published,
    /// Not shown.
    Rejected,
}

impl Moderation {
    /// The state after a moderator's `action`.
    pub fn after(self, action: &ModerationAction) -> Moderation {
        match action {
            ModerationAction::Publish => Moderation::Published,
            ModerationAction::Reject { .. } => Moderation::Rejected,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Moderation::Pending => "pending",
            Moderation::Published => "published",
            Moderation::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Moderation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a moderator decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    /// Show it.
    Publish,
    /// Do not show it; `note` says why (for the author; up to
    /// [`MODERATION_NOTE_CHARS_MAX`] characters, may be empty).
    Reject {
        /// Why.
        note: String,
    },
}

impl ModerationAction {
    /// Checks the note's length.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `moderation.note`).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModerationAction::Publish => Ok(()),
            ModerationAction::Reject { note } => check_text(
                "moderation.note",
                note,
                MODERATION_NOTE_CHARS_MAX,
                Blank::Allowed,
            ),
        }
    }

    /// The note a record keeps after this action.
    pub(crate) fn note(&self) -> Option<String> {
        match self {
            ModerationAction::Publish => None,
            ModerationAction::Reject { note } => Some(note.clone()),
        }
    }
}

/// Whether a text field may be empty or white space only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blank {
    Allowed,
    Refused,
}

/// Checks a free-text field: at most `chars_max` characters, no NUL (which databases refuse),
/// and something besides white space when `blank` is refused.
fn check_text(field: &'static str, text: &str, chars_max: usize, blank: Blank) -> Result<()> {
    if text.chars().count() > chars_max {
        return Err(Error::invalid(
            field,
            format!("longer than {chars_max} characters"),
        ));
    }
    if text.contains('\0') {
        return Err(Error::invalid(field, "contains NUL"));
    }
    if blank == Blank::Refused && text.trim().is_empty() {
        return Err(Error::invalid(field, "empty"));
    }
    Ok(())
}

/// What names a review: a customer has at most one review per product.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReviewKey {
    /// The product reviewed.
    pub product_id: ProductId,
    /// The customer who wrote it.
    pub author: UserId,
}

impl ReviewKey {
    /// The key of `author`'s review of `product_id`.
    pub fn new(product_id: ProductId, author: UserId) -> ReviewKey {
        ReviewKey { product_id, author }
    }
}

impl fmt::Display for ReviewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.product_id, self.author)
    }
}

/// A customer's review of a product, as stored.
///
/// It changes only through the engine ([`crate::Reviews`]): a submit writes it as `Pending`,
/// a moderator publishes or rejects it, the author edits (submits again) or deletes it. Every
/// write adds one to `version`, the store's compare-and-set token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The product reviewed.
    pub product_id: ProductId,
    /// The product's SKU when the review was last submitted (what a purchase is matched on).
    pub sku: Sku,
    /// The customer.
    pub author: UserId,
    /// The stars given.
    pub stars: Stars,
    /// A title, possibly empty.
    pub title: String,
    /// The text, possibly empty.
    pub body: String,
    /// Where the review stands in moderation.
    pub status: Moderation,
    /// Why it was rejected, when it was.
    pub moderation_note: Option<String>,
    /// The author had a confirmed, not cancelled order of the SKU when the review was last
    /// submitted.
    pub verified_purchase: bool,
    /// When it was first submitted.
    pub submitted_at: DateTime<Utc>,
    /// When its content was last submitted (the first submit or the latest edit).
    pub edited_at: DateTime<Utc>,
    /// When a moderator last published or rejected it.
    pub moderated_at: Option<DateTime<Utc>>,
    /// 1 for the first write, one more for each write after.
    pub version: u64,
}

impl Review {
    /// Its key.
    pub fn key(&self) -> ReviewKey {
        ReviewKey::new(self.product_id.clone(), self.author.clone())
    }

    /// The stars it adds to the product's rating: its stars when published, nothing
    /// otherwise.
    pub fn counted_stars(&self) -> Option<Stars> {
        (self.status == Moderation::Published).then_some(self.stars)
    }

    /// Checks the bounds of every field (stores call it on every write).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_text("review.title", &self.title, TITLE_CHARS_MAX, Blank::Allowed)?;
        check_text("review.body", &self.body, BODY_CHARS_MAX, Blank::Allowed)?;
        if let Some(note) = &self.moderation_note {
            check_text(
                "review.moderation_note",
                note,
                MODERATION_NOTE_CHARS_MAX,
                Blank::Allowed,
            )?;
        }
        if self.version == 0 {
            return Err(Error::invalid("review.version", "versions start at 1"));
        }
        Ok(())
    }
}

/// What a customer submits: a new review, or a new version of theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDraft {
    /// The product.
    pub product_id: ProductId,
    /// The customer.
    pub author: UserId,
    /// Stars, 1 to 5 (checked on submit).
    pub stars: u8,
    /// A title, up to [`TITLE_CHARS_MAX`] characters, possibly empty.
    pub title: String,
    /// The text, up to [`BODY_CHARS_MAX`] characters, possibly empty.
    pub body: String,
}

impl ReviewDraft {
    /// Checks every field; returns the stars.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<Stars> {
        let stars = Stars::new(self.stars)?;
        check_text("review.title", &self.title, TITLE_CHARS_MAX, Blank::Allowed)?;
        check_text("review.body", &self.body, BODY_CHARS_MAX, Blank::Allowed)?;
        Ok(stars)
    }
}

/// A review with its helpful votes, as listings return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedReview {
    /// The review.
    pub review: Review,
    /// Customers who found it helpful (each counted once).
    pub helpful_votes: u32,
}

/// What a helpful vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum VoteOutcome {
    /// The vote counts.
    Counted,
    /// The voter had voted on this review already: nothing changed.
    AlreadyCounted,
}

/// A product's rating: the exact integer sum of its published reviews' stars and their count.
/// The average is derived ([`ProductRating::average`]), never stored.
///
/// `seq` counts the rating's changes: each change that moves the sum or the count adds one and
/// commits a [`DomainEvent::ProductRatingChanged`] carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRating {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU as of the last change.
    pub sku: Sku,
    /// Stars of the published reviews, summed.
    pub stars_sum: u64,
    /// Published reviews.
    pub review_count: u32,
    /// Changes so far: 0 for a product never rated.
    pub seq: u64,
}

impl ProductRating {
    /// The rating of a product without a published review, never changed.
    pub fn empty(product_id: ProductId, sku: Sku) -> ProductRating {
        ProductRating {
            product_id,
            sku,
            stars_sum: 0,
            review_count: 0,
            seq: 0,
        }
    }

    /// The average of the published reviews' stars, rounded half-even to two decimals
    /// (`None` without a published review). Exact: integer arithmetic, no float.
    ///
    /// ```
    /// use reviews::ProductRating;
    /// # let mut r = ProductRating::empty("p-1".parse()?, "SKU-1".parse()?);
    /// (r.stars_sum, r.review_count) = (13, 3);   // 5 + 4 + 4
    /// assert_eq!(r.average().unwrap().to_string(), "4.33");
    /// (r.stars_sum, r.review_count) = (37, 8);   // 4.625: the tie goes to the even digit
    /// assert_eq!(r.average().unwrap().to_string(), "4.62");
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    pub fn average(&self) -> Option<Decimal> {
        average(self.stars_sum, self.review_count)
    }

    /// The rating after a review's counted stars go from `before` to `after` (each `None` when
    /// the review is not published, or absent), as the next change (`seq + 1`) with `sku`;
    /// `None` when sum and count do not move.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the sum or the count would go below zero or overflow: the stored
    /// rating does not match the reviews.
    pub fn after_change(
        &self,
        before: Option<Stars>,
        after: Option<Stars>,
        sku: &Sku,
    ) -> Result<Option<ProductRating>> {
        let corrupt = || {
            Error::Corrupt(format!(
                "rating of {} (sum {}, count {}) cannot take {before:?} → {after:?}",
                self.product_id, self.stars_sum, self.review_count
            ))
        };
        let stars = |s: Option<Stars>| s.map_or(0, |s| u64::from(s.get()));
        let count = |s: Option<Stars>| u32::from(s.is_some());
        let stars_sum = self
            .stars_sum
            .checked_sub(stars(before))
            .and_then(|s| s.checked_add(stars(after)))
            .ok_or_else(corrupt)?;
        let review_count = self
            .review_count
            .checked_sub(count(before))
            .and_then(|c| c.checked_add(count(after)))
            .ok_or_else(corrupt)?;
        if (stars_sum, review_count) == (self.stars_sum, self.review_count) {
            return Ok(None);
        }
        Ok(Some(ProductRating {
            product_id: self.product_id.clone(),
            sku: sku.clone(),
            stars_sum,
            review_count,
            seq: self.seq.checked_add(1).ok_or_else(corrupt)?,
        }))
    }

    /// The event announcing this rating, with an id derived from the product and `seq`
    /// (`{product}:rating.{seq}`), so a retried write commits it once.
    ///
    /// # Errors
    /// [`Error::Core`] if the id does not fit (it always does for valid product ids).
    pub fn event(&self, at: DateTime<Utc>) -> Result<EventEnvelope> {
        let id = EventId::derive(self.product_id.as_str(), &format!("rating.{}", self.seq))?;
        Ok(EventEnvelope::new(
            id,
            at,
            DomainEvent::ProductRatingChanged {
                product_id: self.product_id.clone(),
                sku: self.sku.clone(),
                rating: self.average(),
                review_count: self.review_count,
                seq: self.seq,
            },
        ))
    }
}

/// `stars_sum / review_count` rounded half-even to two decimals, in integer arithmetic.
fn average(stars_sum: u64, review_count: u32) -> Option<Decimal> {
    if review_count == 0 {
        return None;
    }
    let count = u128::from(review_count);
    let scaled = u128::from(stars_sum) * 100;
    let (quotient, remainder) = (scaled / count, scaled % count);
    let hundredths = match (2 * remainder).cmp(&count) {
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
        std::cmp::Ordering::Less => quotient,
    };
    let hundredths = i128::try_from(hundredths).ok()?;
    Decimal::try_from_i128_with_scale(hundredths, 2).ok()
}

/// A new rating to write with a review change, and the rating's `seq` the write expects to
/// replace (0 when the store holds none): the store compares and sets both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingWrite {
    /// The rating after the write (its `seq` is `expected_seq + 1`).
    pub rating: ProductRating,
    /// The `seq` of the stored rating the write replaces.
    pub expected_seq: u64,
}

/// A customer's question about a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its id (the caller's).
    pub id: QuestionId,
    /// The product asked about.
    pub product_id: ProductId,
    /// Who asked.
    pub author: UserId,
    /// The question, 1 to [`QUESTION_CHARS_MAX`] characters.
    pub text: String,
    /// Where it stands in moderation: only a published question is shown and answered.
    pub status: Moderation,
    /// Why it was rejected, when it was.
    pub moderation_note: Option<String>,
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
    /// When a moderator last published or rejected it.
    pub moderated_at: Option<DateTime<Utc>>,
    /// 1 when asked, one more for each write after.
    pub version: u64,
}

impl Question {
    /// Checks the bounds of every field (stores call it on every write).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_text(
            "question.text",
            &self.text,
            QUESTION_CHARS_MAX,
            Blank::Refused,
        )?;
        if let Some(note) = &self.moderation_note {
            check_text(
                "question.moderation_note",
                note,
                MODERATION_NOTE_CHARS_MAX,
                Blank::Allowed,
            )?;
        }
        if self.version == 0 {
            return Err(Error::invalid("question.version", "versions start at 1"));
        }
        Ok(())
    }
}

/// An answer to a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Its id (the caller's).
    pub id: AnswerId,
    /// The question it answers.
    pub question_id: QuestionId,
    /// The product the question is about.
    pub product_id: ProductId,
    /// Who answered.
    pub author: UserId,
    /// The answer, 1 to [`ANSWER_CHARS_MAX`] characters.
    pub text: String,
    /// Where it stands in moderation: answers are moderated like reviews and questions.
    pub status: Moderation,
    /// Why it was rejected, when it was.
    pub moderation_note: Option<String>,
    /// The answerer had a confirmed, not cancelled order of the product's SKU when answering.
    pub verified_purchase: bool,
    /// When it was written.
    pub answered_at: DateTime<Utc>,
    /// When a moderator last published or rejected it.
    pub moderated_at: Option<DateTime<Utc>>,
    /// 1 when written, one more for each write after.
    pub version: u64,
}

impl Answer {
    /// Checks the bounds of every field (stores call it on every write).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check_text("answer.text", &self.text, ANSWER_CHARS_MAX, Blank::Refused)?;
        if let Some(note) = &self.moderation_note {
            check_text(
                "answer.moderation_note",
                note,
                MODERATION_NOTE_CHARS_MAX,
                Blank::Allowed,
            )?;
        }
        if self.version == 0 {
            return Err(Error::invalid("answer.version", "versions start at 1"));
        }
        Ok(())
    }
}

/// What a customer asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionDraft {
    /// The question's id (the caller's; asking again with the same id and text changes nothing).
    pub id: QuestionId,
    /// The product.
    pub product_id: ProductId,
    /// Who asks.
    pub author: UserId,
    /// The question.
    pub text: String,
}

/// What a customer answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerDraft {
    /// The answer's id (the caller's; answering again with the same id and text changes
    /// nothing).
    pub id: AnswerId,
    /// The question answered.
    pub question_id: QuestionId,
    /// Who answers.
    pub author: UserId,
    /// The answer.
    pub text: String,
}

/// A change to what customers bought, as the purchase feed reads it from the order events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseChange {
    /// An order was confirmed (`OrderConfirmed`): its customer bought its SKUs.
    Confirmed {
        /// The order.
        order_id: OrderId,
        /// The customer.
        user_id: UserId,
        /// The SKUs on its lines.
        skus: Vec<Sku>,
    },
    /// An order was cancelled (`OrderCancelled`): it no longer counts as a purchase.
    Cancelled {
        /// The order.
        order_id: OrderId,
    },
}

impl PurchaseChange {
    /// The purchase change an event is, if it is one.
    pub fn from_event(event: &DomainEvent) -> Option<PurchaseChange> {
        match event {
            DomainEvent::OrderConfirmed {
                order_id,
                user_id,
                lines,
                ..
            } => Some(PurchaseChange::Confirmed {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                skus: lines.iter().map(|l| l.sku.clone()).collect(),
            }),
            DomainEvent::OrderCancelled { order_id, .. } => Some(PurchaseChange::Cancelled {
                order_id: order_id.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(sum: u64, count: u32) -> ProductRating {
        ProductRating {
            stars_sum: sum,
            review_count: count,
            ..ProductRating::empty(ProductId::new("p").unwrap(), Sku::new("S").unwrap())
        }
    }

    #[test]
    fn the_average_rounds_half_to_even_at_two_decimals() {
        let avg = |sum, count| average(sum, count).map(|d| d.to_string());
        assert_eq!(avg(0, 0), None);
        assert_eq!(avg(5, 1).as_deref(), Some("5.00"));
        assert_eq!(avg(13, 3).as_deref(), Some("4.33"));
        assert_eq!(avg(14, 3).as_deref(), Some("4.67"));
        assert_eq!(avg(37, 8).as_deref(), Some("4.62")); // 4.625 → even
        assert_eq!(avg(39, 8).as_deref(), Some("4.88")); // 4.875 → even
        assert_eq!(avg(9, 8).as_deref(), Some("1.12")); // 1.125 → even
        assert_eq!(avg(11, 8).as_deref(), Some("1.38")); // 1.375 → even
    }

    #[test]
    fn a_change_moves_sum_count_and_seq_or_nothing() {
        let s = |n| Some(Stars::new(n).unwrap());
        let sku = Sku::new("S2").unwrap();
        let r = rating(9, 2);
        let up = r.after_change(None, s(3), &sku).unwrap().unwrap();
        assert_eq!(
            (up.stars_sum, up.review_count, up.seq, up.sku.as_str()),
            (12, 3, 1, "S2")
        );
        let down = r.after_change(s(4), None, &sku).unwrap().unwrap();
        assert_eq!((down.stars_sum, down.review_count, down.seq), (5, 1, 1));
        assert_eq!(r.after_change(None, None, &sku).unwrap(), None);
        assert_eq!(r.after_change(s(2), s(2), &sku).unwrap(), None);
        assert!(matches!(
            rating(0, 0).after_change(s(1), None, &sku),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn the_rating_event_is_named_after_the_product_and_seq() {
        let mut r = rating(13, 3);
        r.seq = 7;
        let e = r.event(commerce_core::testkit::t0()).unwrap();
        assert_eq!(e.event_id.as_str(), "p:rating.7");
        assert_eq!(e.partition_key, "p");
        assert_eq!(
            e.event,
            DomainEvent::ProductRatingChanged {
                product_id: r.product_id.clone(),
                sku: r.sku.clone(),
                rating: Some(Decimal::new(433, 2)),
                review_count: 3,
                seq: 7,
            }
        );
    }

    #[test]
    fn texts_are_bounded_and_questions_need_words() {
        let draft = ReviewDraft {
            product_id: ProductId::new("p").unwrap(),
            author: UserId::new("u").unwrap(),
            stars: 5,
            title: String::new(),
            body: String::new(),
        };
        assert_eq!(draft.validate().unwrap().get(), 5);
        let long = ReviewDraft {
            title: "é".repeat(TITLE_CHARS_MAX + 1),
            ..draft.clone()
        };
        assert_eq!(long.validate().unwrap_err().field(), Some("review.title"));
        let nul = ReviewDraft {
            body: "a\0b".into(),
            ..draft.clone()
        };
        assert_eq!(nul.validate().unwrap_err().field(), Some("review.body"));
        let zero = ReviewDraft { stars: 0, ..draft };
        assert_eq!(zero.validate().unwrap_err().field(), Some("stars"));
        assert!(
            ModerationAction::Reject {
                note: "x".repeat(MODERATION_NOTE_CHARS_MAX + 1)
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn moderation_follows_its_table() {
        use Moderation::*;
        let publish = ModerationAction::Publish;
        let reject = ModerationAction::Reject {
            note: String::new(),
        };
        for (from, on_publish, on_reject) in [
            (Pending, Published, Rejected),
            (Published, Published, Rejected),
            (Rejected, Published, Rejected),
        ] {
            assert_eq!(from.after(&publish), on_publish);
            assert_eq!(from.after(&reject), on_reject);
        }
    }
}
