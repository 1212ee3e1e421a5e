//! [`Reviews`]: the operations customers and moderators call, each a bounded
//! read–decide–compare-and-set loop over the [`ReviewStore`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use commerce_core::{
    CasOutcome, CatalogStore, ErrorKind, Product, ProductId, ProductStatus, UserId,
};

use crate::limits::CAS_ATTEMPTS_MAX;
use crate::{
    Answer, AnswerDraft, AnswerId, Error, ListedReview, Moderation, ModerationAction,
    ProductRating, Question, QuestionDraft, QuestionId, RatingWrite, Result, Review, ReviewDraft,
    ReviewKey, ReviewStore, VoteOutcome,
};

/// The reviews and Q&A engine over a [`ReviewStore`] and the [`CatalogStore`] it looks
/// products up in.
///
/// Every write is one atomic store write (a review, the product's rating when the write moves
/// it, and the rating event), retried from a fresh read when it loses a compare-and-set race,
/// at most [`CAS_ATTEMPTS_MAX`] times. Repeating an operation that took effect changes
/// nothing: a submit identical to the stored review, a moderation to the state the review is
/// in, a second helpful vote, a question or answer asked again under its id.
#[derive(Debug, Clone)]
pub struct Reviews {
    store: Arc<dyn ReviewStore>,
    catalog: Arc<dyn CatalogStore>,
}

impl Reviews {
    /// An engine over `store`, reading products from `catalog`.
    pub fn new(store: Arc<dyn ReviewStore>, catalog: Arc<dyn CatalogStore>) -> Reviews {
        Reviews { store, catalog }
    }

    /// The store, for reads this engine does not wrap.
    pub fn store(&self) -> &Arc<dyn ReviewStore> {
        &self.store
    }

    /// The product, which must exist and be active.
    async fn active_product(&self, id: &ProductId) -> Result<Product> {
        match self.catalog.get(id).await? {
            None => Err(Error::UnknownProduct(id.clone())),
            Some(p) if p.status == ProductStatus::Retired => Err(Error::ProductRetired(id.clone())),
            Some(p) => Ok(p),
        }
    }

    /// Submits a customer's review of a product: a new review, or a new version of theirs
    /// (one review per customer and product). Either way it waits for moderation (`Pending`);
    /// an edit of a published review takes it out of the rating until it is published again.
    /// A submit identical to the stored review (stars, title, body) changes nothing, whatever
    /// its state: a retry writes nothing twice, and resubmitting a rejected text does not
    /// put it back in the queue.
    ///
    /// The review's SKU is the catalog's for the product now, and it is a verified purchase
    /// when the author has a confirmed, not cancelled order with that SKU now; both are
    /// evaluated on every submit that writes (later purchases or cancellations do not change a
    /// stored review until its author submits again).
    ///
    /// # Errors
    /// [`Error::Invalid`] for stars outside 1 to 5 or texts out of bounds;
    /// [`Error::UnknownProduct`], [`Error::ProductRetired`]; [`Error::Contended`]; a port's
    /// error. Nothing is written then.
    pub async fn submit(&self, draft: ReviewDraft, now: DateTime<Utc>) -> Result<Review> {
        let stars = draft.validate()?;
        let product = self.active_product(&draft.product_id).await?;
        let key = ReviewKey::new(draft.product_id.clone(), draft.author.clone());
        for _ in 0..CAS_ATTEMPTS_MAX {
            let stored = self.store.review(&key).await?;
            if let Some(r) = &stored
                && (r.stars, &r.title, &r.body) == (stars, &draft.title, &draft.body)
            {
                return Ok(r.clone());
            }
            let verified_purchase = self.store.has_purchased(&key.author, &product.sku).await?;
            let next = Review {
                product_id: key.product_id.clone(),
                sku: product.sku.clone(),
                author: key.author.clone(),
                stars,
                title: draft.title.clone(),
                body: draft.body.clone(),
                status: Moderation::Pending,
                moderation_note: None,
                verified_purchase,
                submitted_at: stored.as_ref().map_or(now, |r| r.submitted_at),
                edited_at: now,
                moderated_at: stored.as_ref().and_then(|r| r.moderated_at),
                version: stored.as_ref().map_or(0, |r| r.version) + 1,
            };
            if self.write(&key, stored.as_ref(), Some(&next), now).await? == CasOutcome::Committed {
                return Ok(next);
            }
        }
        Err(Error::Contended {
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// Publishes or rejects a review ([`Moderation::after`]). Publishing adds its stars to
    /// the product's rating, rejecting a published review takes them out; either commits a
    /// `ProductRatingChanged` with the write. Asking for the state it is in changes nothing.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a note too long; [`Error::UnknownReview`]; [`Error::Contended`];
    /// a port's error.
    pub async fn moderate(
        &self,
        key: &ReviewKey,
        action: &ModerationAction,
        now: DateTime<Utc>,
    ) -> Result<Review> {
        action.validate()?;
        for _ in 0..CAS_ATTEMPTS_MAX {
            let stored = self
                .store
                .review(key)
                .await?
                .ok_or_else(|| Error::UnknownReview(key.clone()))?;
            let status = stored.status.after(action);
            if status == stored.status {
                return Ok(stored);
            }
            let next = Review {
                status,
                moderation_note: action.note(),
                moderated_at: Some(now),
                version: stored.version + 1,
                ..stored.clone()
            };
            if self.write(key, Some(&stored), Some(&next), now).await? == CasOutcome::Committed {
                return Ok(next);
            }
        }
        Err(Error::Contended {
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// Deletes a review and its helpful votes (the author's or an operator's decision: the
    /// caller authorizes). A published review leaves the rating, with a
    /// `ProductRatingChanged`. `false` when there was no review (a repeated delete).
    ///
    /// # Errors
    /// [`Error::Contended`]; a port's error.
    pub async fn delete(&self, key: &ReviewKey, now: DateTime<Utc>) -> Result<bool> {
        for _ in 0..CAS_ATTEMPTS_MAX {
            let Some(stored) = self.store.review(key).await? else {
                return Ok(false);
            };
            if self.write(key, Some(&stored), None, now).await? == CasOutcome::Committed {
                return Ok(true);
            }
        }
        Err(Error::Contended {
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// One compare-and-set write of a review change, with the rating and its event when the
    /// change moves the product's rating.
    async fn write(
        &self,
        key: &ReviewKey,
        stored: Option<&Review>,
        next: Option<&Review>,
        now: DateTime<Utc>,
    ) -> Result<CasOutcome> {
        let expected_version = stored.map_or(0, |r| r.version);
        let before = stored.and_then(Review::counted_stars);
        let after = next.and_then(Review::counted_stars);
        let mut rating = None;
        let mut events = Vec::new();
        if before != after
            && let Some(sku) = next.or(stored).map(|r| &r.sku)
        {
            let current = match self.store.rating(&key.product_id).await? {
                Some(r) => r,
                None => ProductRating::empty(key.product_id.clone(), sku.clone()),
            };
            if let Some(changed) = current.after_change(before, after, sku)? {
                events.push(changed.event(now)?);
                rating = Some(RatingWrite {
                    rating: changed,
                    expected_seq: current.seq,
                });
            }
        }
        Ok(match next {
            Some(review) => {
                self.store
                    .put_review(review, expected_version, rating.as_ref(), &events)
                    .await?
            }
            None => {
                self.store
                    .delete_review(key, expected_version, rating.as_ref(), &events)
                    .await?
            }
        })
    }

    /// Counts `voter`'s helpful vote on a published review, once: a second vote is
    /// [`VoteOutcome::AlreadyCounted`] and changes nothing.
    ///
    /// # Errors
    /// [`Error::OwnReview`] when the voter wrote it; [`Error::NotPublished`];
    /// [`Error::UnknownReview`]; a port's error.
    pub async fn vote_helpful(&self, key: &ReviewKey, voter: &UserId) -> Result<VoteOutcome> {
        if *voter == key.author {
            return Err(Error::OwnReview);
        }
        let stored = self
            .store
            .review(key)
            .await?
            .ok_or_else(|| Error::UnknownReview(key.clone()))?;
        if stored.status != Moderation::Published {
            return Err(Error::NotPublished { what: "review" });
        }
        match self.store.add_vote(key, voter).await {
            Ok(true) => Ok(VoteOutcome::Counted),
            Ok(false) => Ok(VoteOutcome::AlreadyCounted),
            // Deleted since it was read.
            Err(e) if e.kind == ErrorKind::NotFound => Err(Error::UnknownReview(key.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// The product's rating (empty when it has no published review).
    ///
    /// # Errors
    /// [`Error::UnknownProduct`] for a product the catalog does not have; a port's error.
    pub async fn rating(&self, product_id: &ProductId) -> Result<ProductRating> {
        if let Some(r) = self.store.rating(product_id).await? {
            return Ok(r);
        }
        let product = self
            .catalog
            .get(product_id)
            .await?
            .ok_or_else(|| Error::UnknownProduct(product_id.clone()))?;
        Ok(ProductRating::empty(product.id, product.sku))
    }

    /// A page of a product's published reviews with their helpful votes, in author order
    /// after `after` (what a product page shows).
    ///
    /// # Errors
    /// A port's error.
    pub async fn published_reviews(
        &self,
        product_id: &ProductId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<ListedReview>> {
        Ok(self
            .store
            .list_reviews(product_id, Some(Moderation::Published), after, limit)
            .await?)
    }

    /// Asks a question about an active product; it waits for moderation. Asking again with
    /// the same id, product, author and text returns the stored question.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank or too long text; [`Error::UnknownProduct`],
    /// [`Error::ProductRetired`]; [`Error::IdTaken`] when the id names another question; a
    /// port's error.
    pub async fn ask(&self, draft: QuestionDraft, now: DateTime<Utc>) -> Result<Question> {
        let question = Question {
            id: draft.id,
            product_id: draft.product_id,
            author: draft.author,
            text: draft.text,
            status: Moderation::Pending,
            moderation_note: None,
            asked_at: now,
            moderated_at: None,
            version: 1,
        };
        question.validate()?;
        self.active_product(&question.product_id).await?;
        match self.store.insert_question(&question).await {
            Ok(()) => Ok(question),
            Err(e) if e.kind == ErrorKind::Conflict => {
                let same = |q: &Question| {
                    (&q.product_id, &q.author, &q.text)
                        == (&question.product_id, &question.author, &question.text)
                };
                match self.store.question(&question.id).await? {
                    Some(stored) if same(&stored) => Ok(stored),
                    _ => Err(Error::IdTaken {
                        what: "question",
                        id: question.id.to_string(),
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Answers a published question; the answer waits for moderation, and is flagged a
    /// verified purchase when the answerer has a confirmed, not cancelled order with the
    /// product's SKU now. Answering again with the same id, author and text returns the stored
    /// answer.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank or too long text; [`Error::UnknownQuestion`],
    /// [`Error::NotPublished`]; [`Error::UnknownProduct`], [`Error::ProductRetired`];
    /// [`Error::IdTaken`] when the id names another answer; a port's error.
    pub async fn answer(&self, draft: AnswerDraft, now: DateTime<Utc>) -> Result<Answer> {
        let question = self
            .store
            .question(&draft.question_id)
            .await?
            .ok_or_else(|| Error::UnknownQuestion(draft.question_id.clone()))?;
        let mut answer = Answer {
            id: draft.id,
            question_id: draft.question_id,
            product_id: question.product_id.clone(),
            author: draft.author,
            text: draft.text,
            status: Moderation::Pending,
            moderation_note: None,
            verified_purchase: false,
            answered_at: now,
            moderated_at: None,
            version: 1,
        };
        answer.validate()?;
        let same = |a: &Answer| {
            (&a.question_id, &a.author, &a.text)
                == (&answer.question_id, &answer.author, &answer.text)
        };
        if let Some(stored) = self.store.answer(&answer.id).await? {
            return if same(&stored) {
                Ok(stored)
            } else {
                Err(Error::IdTaken {
                    what: "answer",
                    id: answer.id.to_string(),
                })
            };
        }
        if question.status != Moderation::Published {
            return Err(Error::NotPublished { what: "question" });
        }
        let product = self.active_product(&question.product_id).await?;
        answer.verified_purchase = self
            .store
            .has_purchased(&answer.author, &product.sku)
            .await?;
        match self.store.insert_answer(&answer).await {
            Ok(()) => Ok(answer),
            Err(e) if e.kind == ErrorKind::Conflict => match self.store.answer(&answer.id).await? {
                Some(stored) if same(&stored) => Ok(stored),
                _ => Err(Error::IdTaken {
                    what: "answer",
                    id: answer.id.to_string(),
                }),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes or rejects a question, as [`Reviews::moderate`] does a review (no rating is
    /// involved). A rejected question keeps its answers, which are no longer shown with it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a note too long; [`Error::UnknownQuestion`];
    /// [`Error::Contended`]; a port's error.
    pub async fn moderate_question(
        &self,
        id: &QuestionId,
        action: &ModerationAction,
        now: DateTime<Utc>,
    ) -> Result<Question> {
        action.validate()?;
        for _ in 0..CAS_ATTEMPTS_MAX {
            let stored = self
                .store
                .question(id)
                .await?
                .ok_or_else(|| Error::UnknownQuestion(id.clone()))?;
            let status = stored.status.after(action);
            if status == stored.status {
                return Ok(stored);
            }
            let next = Question {
                status,
                moderation_note: action.note(),
                moderated_at: Some(now),
                version: stored.version + 1,
                ..stored.clone()
            };
            if self.store.update_question(&next, stored.version).await? == CasOutcome::Committed {
                return Ok(next);
            }
        }
        Err(Error::Contended {
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// Publishes or rejects an answer, as [`Reviews::moderate`] does a review.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a note too long; [`Error::UnknownAnswer`]; [`Error::Contended`];
    /// a port's error.
    pub async fn moderate_answer(
        &self,
        id: &AnswerId,
        action: &ModerationAction,
        now: DateTime<Utc>,
    ) -> Result<Answer> {
        action.validate()?;
        for _ in 0..CAS_ATTEMPTS_MAX {
            let stored = self
                .store
                .answer(id)
                .await?
                .ok_or_else(|| Error::UnknownAnswer(id.clone()))?;
            let status = stored.status.after(action);
            if status == stored.status {
                return Ok(stored);
            }
            let next = Answer {
                status,
                moderation_note: action.note(),
                moderated_at: Some(now),
                version: stored.version + 1,
                ..stored.clone()
            };
            if self.store.update_answer(&next, stored.version).await? == CasOutcome::Committed {
                return Ok(next);
            }
        }
        Err(Error::Contended {
            attempts: CAS_ATTEMPTS_MAX,
        })
    }
}
