//! The engine's rules: one review per customer and product, moderation, the rating and its
//! events, helpful votes, verified purchases, questions and answers.

use std::sync::Arc;

use chrono::TimeDelta;
use commerce_core::memory::{InMemoryCatalog, InMemoryEventLog};
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{
    CatalogStore, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLine, Money, OrderId,
    Product, ProductId, ProductStatus, UserId,
};
use futures::executor::block_on;
use reviews::{
    AnswerDraft, AnswerId, Error, InMemoryReviewStore, Moderation, ModerationAction, PurchaseFeed,
    QuestionDraft, QuestionId, ReviewDraft, ReviewKey, ReviewStore, Reviews, VoteOutcome,
};
use rust_decimal::Decimal;

pub(crate) struct World {
    pub(crate) log: Arc<InMemoryEventLog>,
    pub(crate) store: Arc<InMemoryReviewStore>,
    pub(crate) reviews: Reviews,
    pub(crate) mug: Product,
}

/// A catalog with active `mug` (SKU `MUG-1`) and `tea` (`TEA-1`) and a retired `old`, a store,
/// one log.
pub(crate) fn world() -> World {
    let log = Arc::new(InMemoryEventLog::new());
    let catalog = Arc::new(InMemoryCatalog::with_outbox(log.clone()));
    let mug = sample_product("mug", "MUG-1");
    let mut old = sample_product("old", "OLD-1");
    old.status = ProductStatus::Retired;
    for p in [&mug, &sample_product("tea", "TEA-1"), &old] {
        let _ = block_on(catalog.put(p.clone(), &[])).unwrap();
    }
    let store = Arc::new(InMemoryReviewStore::with_outbox(log.clone()));
    let reviews = Reviews::new(store.clone(), catalog);
    World {
        log,
        store,
        reviews,
        mug,
    }
}

pub(crate) fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

pub(crate) fn draft(product: &str, author: &str, stars: u8) -> ReviewDraft {
    ReviewDraft {
        product_id: ProductId::new(product).unwrap(),
        author: user(author),
        stars,
        title: format!("{stars} stars"),
        body: "Holds coffee.".into(),
    }
}

pub(crate) fn key(product: &str, author: &str) -> ReviewKey {
    ReviewKey::new(ProductId::new(product).unwrap(), user(author))
}

const PUBLISH: ModerationAction = ModerationAction::Publish;

fn reject() -> ModerationAction {
    ModerationAction::Reject {
        note: "off topic".into(),
    }
}

/// The rating events in the log: (product, rating, count, seq).
pub(crate) fn rating_events(log: &InMemoryEventLog) -> Vec<(String, Option<Decimal>, u32, u64)> {
    log.snapshot()
        .into_iter()
        .filter_map(|e| match e.event {
            DomainEvent::ProductRatingChanged {
                product_id,
                rating,
                review_count,
                seq,
                ..
            } => Some((product_id.to_string(), rating, review_count, seq)),
            _ => None,
        })
        .collect()
}

fn rating_of(w: &World) -> (u64, u32, u64) {
    let r = block_on(w.reviews.rating(&w.mug.id)).unwrap();
    (r.stars_sum, r.review_count, r.seq)
}

#[test]
fn only_published_reviews_count_and_each_change_commits_one_event() {
    let w = world();
    let ada = block_on(w.reviews.submit(draft("mug", "ada", 5), t0())).unwrap();
    let bob = block_on(w.reviews.submit(draft("mug", "bob", 2), t0())).unwrap();
    let cy = block_on(w.reviews.submit(draft("mug", "cy", 4), t0())).unwrap();
    assert_eq!(rating_of(&w), (0, 0, 0), "pending reviews do not count");
    assert!(rating_events(&w.log).is_empty());
    for r in [&ada, &bob, &cy] {
        block_on(w.reviews.moderate(&r.key(), &PUBLISH, t0())).unwrap();
    }
    assert_eq!(rating_of(&w), (11, 3, 3));
    block_on(w.reviews.moderate(&bob.key(), &reject(), t0())).unwrap();
    assert_eq!(rating_of(&w), (9, 2, 4));
    assert!(block_on(w.reviews.delete(&cy.key(), t0())).unwrap());
    assert!(
        !block_on(w.reviews.delete(&cy.key(), t0())).unwrap(),
        "a repeated delete"
    );
    assert_eq!(rating_of(&w), (5, 1, 5));
    block_on(w.reviews.moderate(&ada.key(), &reject(), t0())).unwrap();
    assert_eq!(rating_of(&w), (0, 0, 6));
    let d = |c| Some(Decimal::new(c, 2));
    assert_eq!(
        rating_events(&w.log),
        [
            ("mug".into(), d(500), 1, 1),
            ("mug".into(), d(350), 2, 2),
            ("mug".into(), d(367), 3, 3), // 11 / 3 = 3.666…
            ("mug".into(), d(450), 2, 4),
            ("mug".into(), d(500), 1, 5),
            ("mug".into(), None, 0, 6),
        ]
    );
}

#[test]
fn a_second_submit_edits_the_review_and_sends_it_back_to_moderation() {
    let w = world();
    let first = block_on(w.reviews.submit(draft("mug", "ada", 5), t0())).unwrap();
    block_on(w.reviews.moderate(&first.key(), &PUBLISH, t0())).unwrap();
    assert_eq!(rating_of(&w), (5, 1, 1));
    let later = t0() + TimeDelta::days(3);
    let edited = block_on(w.reviews.submit(draft("mug", "ada", 3), later)).unwrap();
    assert_eq!(
        (edited.status, edited.stars.get(), edited.version),
        (Moderation::Pending, 3, 3)
    );
    assert_eq!((edited.submitted_at, edited.edited_at), (t0(), later));
    assert_eq!(
        rating_of(&w),
        (0, 0, 2),
        "the edit leaves the rating until moderated"
    );
    block_on(w.reviews.moderate(&first.key(), &PUBLISH, later)).unwrap();
    assert_eq!(rating_of(&w), (3, 1, 3));
    let listed = block_on(w.reviews.published_reviews(&w.mug.id, None, 10)).unwrap();
    assert_eq!(listed.len(), 1, "still one review per customer and product");
}

#[test]
fn repeating_an_operation_that_took_effect_changes_nothing() {
    let w = world();
    let first = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    let again = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    assert_eq!(again, first);
    block_on(w.reviews.moderate(&first.key(), &PUBLISH, t0())).unwrap();
    let before = (w.store.snapshot(), w.log.snapshot());
    let published = block_on(w.reviews.moderate(&first.key(), &PUBLISH, t0())).unwrap();
    assert_eq!(published.version, 2);
    let resubmitted = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    assert_eq!(resubmitted.status, Moderation::Published);
    assert_eq!((w.store.snapshot(), w.log.snapshot()), before);
    // Resubmitting a rejected text does not put it back in the queue.
    block_on(w.reviews.moderate(&first.key(), &reject(), t0())).unwrap();
    let same = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    assert_eq!(same.status, Moderation::Rejected);
    assert_eq!(same.moderation_note.as_deref(), Some("off topic"));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let w = world();
    let ada = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    let before = (w.store.snapshot(), w.log.snapshot());
    let refusals = [
        (draft("mug", "bob", 0), ErrorKind::Invalid, Some("stars")),
        (draft("mug", "bob", 6), ErrorKind::Invalid, Some("stars")),
        (
            ReviewDraft {
                title: "x".repeat(reviews::limits::TITLE_CHARS_MAX + 1),
                ..draft("mug", "ada", 4)
            },
            ErrorKind::Invalid,
            Some("review.title"),
        ),
        (
            ReviewDraft {
                body: "y".repeat(reviews::limits::BODY_CHARS_MAX + 1),
                ..draft("mug", "ada", 4)
            },
            ErrorKind::Invalid,
            Some("review.body"),
        ),
        (draft("nope", "bob", 3), ErrorKind::NotFound, None),
        (draft("old", "bob", 3), ErrorKind::Refused, None),
    ];
    for (d, kind, field) in refusals {
        let err = block_on(w.reviews.submit(d.clone(), t0())).unwrap_err();
        assert_eq!((err.kind(), err.field()), (kind, field), "{d:?}: {err}");
    }
    let long_note = ModerationAction::Reject {
        note: "n".repeat(reviews::limits::MODERATION_NOTE_CHARS_MAX + 1),
    };
    let err = block_on(w.reviews.moderate(&ada.key(), &long_note, t0())).unwrap_err();
    assert_eq!(err.field(), Some("moderation.note"));
    let err = block_on(w.reviews.moderate(&key("mug", "zed"), &PUBLISH, t0())).unwrap_err();
    assert!(matches!(err, Error::UnknownReview(_)), "{err}");
    assert_eq!((w.store.snapshot(), w.log.snapshot()), before);
}

#[test]
fn helpful_votes_count_once_per_voter_and_never_the_authors() {
    let w = world();
    let ada = block_on(w.reviews.submit(draft("mug", "ada", 4), t0())).unwrap();
    let vote = |voter: &str| block_on(w.reviews.vote_helpful(&ada.key(), &user(voter)));
    assert!(matches!(
        vote("bob"),
        Err(Error::NotPublished { what: "review" })
    ));
    block_on(w.reviews.moderate(&ada.key(), &PUBLISH, t0())).unwrap();
    assert_eq!(vote("bob").unwrap(), VoteOutcome::Counted);
    assert_eq!(vote("bob").unwrap(), VoteOutcome::AlreadyCounted);
    assert_eq!(vote("cy").unwrap(), VoteOutcome::Counted);
    let own = vote("ada").unwrap_err();
    assert_eq!(
        (own.clone(), own.kind()),
        (Error::OwnReview, ErrorKind::Refused)
    );
    let missing = block_on(w.reviews.vote_helpful(&key("mug", "zed"), &user("bob"))).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let listed = block_on(w.reviews.published_reviews(&w.mug.id, None, 10)).unwrap();
    assert_eq!(listed[0].helpful_votes, 2);
    assert!(
        rating_events(&w.log).len() == 1,
        "votes do not touch the rating"
    );
}

/// Commits an `OrderConfirmed` of `skus` by `user` (and optionally its cancellation) to `log`.
pub(crate) fn order(log: &InMemoryEventLog, id: &str, user_id: &str, skus: &[&str]) {
    let event = DomainEvent::OrderConfirmed {
        order_id: OrderId::new(id).unwrap(),
        user_id: user(user_id),
        grand_total: Money::from_minor(1999, commerce_core::Currency::EUR),
        lines: skus
            .iter()
            .map(|s| EventLine {
                sku: s.parse().unwrap(),
                quantity: 1,
            })
            .collect(),
        settlement: None,
    };
    log.append(&[EventEnvelope::new(
        EventId::new(format!("{id}:confirmed")).unwrap(),
        t0(),
        event,
    )]);
}

pub(crate) fn cancel(log: &InMemoryEventLog, id: &str) {
    log.append(&[EventEnvelope::new(
        EventId::new(format!("{id}:cancelled")).unwrap(),
        t0(),
        DomainEvent::OrderCancelled {
            order_id: OrderId::new(id).unwrap(),
            reason: "changed mind".into(),
        },
    )]);
}

fn catch_up(w: &World) {
    let mut feed = PurchaseFeed::new(w.store.clone(), 100);
    while block_on(feed.lag(&*w.log)).unwrap() > 0 {
        block_on(feed.run_once(&*w.log)).unwrap();
    }
}

#[test]
fn a_review_is_verified_by_a_confirmed_uncancelled_order_of_the_products_sku() {
    let w = world();
    order(&w.log, "o-1", "ada", &["MUG-1", "TEA-1"]);
    order(&w.log, "o-2", "bob", &["TEA-1"]);
    order(&w.log, "o-3", "cy", &["MUG-1"]);
    cancel(&w.log, "o-3");
    catch_up(&w);
    let submit = |author| block_on(w.reviews.submit(draft("mug", author, 4), t0())).unwrap();
    assert!(submit("ada").verified_purchase);
    assert!(!submit("bob").verified_purchase, "another SKU");
    assert!(!submit("cy").verified_purchase, "a cancelled order");
    // A later purchase does not change a stored review; the author's next submit does.
    order(&w.log, "o-4", "bob", &["MUG-1"]);
    catch_up(&w);
    let stored = block_on(w.store.review(&key("mug", "bob")))
        .unwrap()
        .unwrap();
    assert!(!stored.verified_purchase);
    let edited = block_on(w.reviews.submit(draft("mug", "bob", 5), t0())).unwrap();
    assert!(edited.verified_purchase);
}

#[test]
fn questions_and_answers_are_moderated_and_answers_flag_buyers() {
    let w = world();
    order(&w.log, "o-1", "ada", &["MUG-1"]);
    catch_up(&w);
    let ask = |id: &str, text: &str| {
        block_on(w.reviews.ask(
            QuestionDraft {
                id: QuestionId::new(id).unwrap(),
                product_id: w.mug.id.clone(),
                author: user("zed"),
                text: text.into(),
            },
            t0(),
        ))
    };
    let answer = |id: &str, author: &str, text: &str| {
        block_on(w.reviews.answer(
            AnswerDraft {
                id: AnswerId::new(id).unwrap(),
                question_id: QuestionId::new("q-1").unwrap(),
                author: user(author),
                text: text.into(),
            },
            t0(),
        ))
    };
    let q = ask("q-1", "Dishwasher safe?").unwrap();
    assert_eq!(q.status, Moderation::Pending);
    assert_eq!(ask("q-1", "Dishwasher safe?").unwrap(), q, "asked again");
    assert!(matches!(
        ask("q-1", "Microwave safe?"),
        Err(Error::IdTaken {
            what: "question",
            ..
        })
    ));
    assert_eq!(
        ask("q-2", "   ").unwrap_err().field(),
        Some("question.text")
    );
    assert!(matches!(
        answer("a-1", "ada", "Yes"),
        Err(Error::NotPublished { what: "question" })
    ));
    block_on(w.reviews.moderate_question(&q.id, &PUBLISH, t0())).unwrap();
    let from_buyer = answer("a-1", "ada", "Yes").unwrap();
    let from_other = answer("a-2", "bob", "No idea").unwrap();
    assert!(from_buyer.verified_purchase && !from_other.verified_purchase);
    assert_eq!(answer("a-1", "ada", "Yes").unwrap(), from_buyer);
    assert!(matches!(
        answer("a-1", "ada", "Maybe"),
        Err(Error::IdTaken { what: "answer", .. })
    ));
    block_on(w.reviews.moderate_answer(&from_buyer.id, &PUBLISH, t0())).unwrap();
    block_on(w.reviews.moderate_answer(&from_other.id, &reject(), t0())).unwrap();
    let shown = block_on(
        w.store
            .list_answers(&q.id, Some(Moderation::Published), None, 10),
    )
    .unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].id, from_buyer.id);
    let missing = block_on(w.reviews.moderate_answer(
        &AnswerId::new("a-9").unwrap(),
        &PUBLISH,
        t0(),
    ))
    .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

/// Publishes of different reviews of one product race on its rating from several threads:
/// the losers retry from a fresh read, and every review counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_publishes_of_one_product_all_count_once() {
    let w = world();
    let reviews = Arc::new(w.reviews.clone());
    let n = 8u8;
    for i in 0..n {
        reviews
            .submit(draft("mug", &format!("u{i}"), i % 5 + 1), t0())
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let reviews = reviews.clone();
            tokio::spawn(async move {
                reviews
                    .moderate(&key("mug", &format!("u{i}")), &PUBLISH, t0())
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let expected: u64 = (0..n).map(|i| u64::from(i % 5 + 1)).sum();
    let r = reviews.rating(&w.mug.id).await.unwrap();
    assert_eq!(
        (r.stars_sum, r.review_count, r.seq),
        (expected, u32::from(n), u64::from(n))
    );
    let seqs: Vec<u64> = rating_events(&w.log).iter().map(|e| e.3).collect();
    assert_eq!(seqs, (1..=u64::from(n)).collect::<Vec<_>>());
}
