//! The [`ReviewStore`] conformance suite: every implementation (in memory here, a database in
//! the adapters) runs the same cases. See `commerce_core::testkit` for how the macro works.
//! Each case uses products, users, questions and orders of its own, so one database can serve
//! them all; the purchase offset is one per store, and only one case moves it (from wherever
//! it stands).

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

use commerce_core::testkit::{events_with_id as count, t0};
use commerce_core::{
    CasOutcome, ErrorKind, EventEnvelope, EventLog, OrderId, ProductId, Sku, UserId,
};
use futures::future::join_all;

use crate::limits::{BODY_CHARS_MAX, TITLE_CHARS_MAX};
use crate::{
    Answer, AnswerId, Moderation, ProductRating, PurchaseChange, Question, QuestionId, RatingWrite,
    Review, ReviewKey, ReviewStore, Stars,
};

fn pid(id: &str) -> ProductId {
    ProductId::new(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn key(product: &str, author: &str) -> ReviewKey {
    ReviewKey::new(pid(product), uid(author))
}

/// A valid pending review of `product` (SKU `SKU-{product}`) by `author`, at version 1.
///
/// # Panics
/// If an id is invalid or `stars` is outside 1 to 5.
pub fn sample_review(product: &str, author: &str, stars: u8) -> Review {
    Review {
        product_id: pid(product),
        sku: Sku::new(format!("SKU-{product}")).unwrap(),
        author: uid(author),
        stars: Stars::new(stars).unwrap(),
        title: format!("{stars} stars"),
        body: "Does what it says.".into(),
        status: Moderation::Pending,
        moderation_note: None,
        verified_purchase: false,
        submitted_at: t0(),
        edited_at: t0(),
        moderated_at: None,
        version: 1,
    }
}

/// The next version of `r` in `status`.
fn moved(r: &Review, status: Moderation) -> Review {
    Review {
        status,
        moderated_at: Some(t0()),
        version: r.version + 1,
        ..r.clone()
    }
}

/// The rating write (and its event) that follows from `before` → `after` on `current`.
fn follow(
    current: Option<ProductRating>,
    before: Option<&Review>,
    after: Option<&Review>,
) -> (Option<RatingWrite>, Vec<EventEnvelope>) {
    let sku = &after.or(before).unwrap().sku;
    let product = after.or(before).unwrap().product_id.clone();
    let current = current.unwrap_or_else(|| ProductRating::empty(product, sku.clone()));
    match current
        .after_change(
            before.and_then(Review::counted_stars),
            after.and_then(Review::counted_stars),
            sku,
        )
        .unwrap()
    {
        None => (None, Vec::new()),
        Some(rating) => {
            let event = rating.event(t0()).unwrap();
            (
                Some(RatingWrite {
                    rating,
                    expected_seq: current.seq,
                }),
                vec![event],
            )
        }
    }
}

/// Inserts `r` (pending).
async fn insert<S: ReviewStore + ?Sized>(s: &S, r: &Review) {
    assert_eq!(
        s.put_review(r, 0, None, &[]).await.unwrap(),
        CasOutcome::Committed,
        "insert {}",
        r.key()
    );
}

/// Inserts `r` and publishes it with its rating, as the engine would.
async fn insert_published<S: ReviewStore + ?Sized>(s: &S, r: &Review) -> Review {
    assert_eq!(
        s.put_review(r, 0, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    let published = moved(r, Moderation::Published);
    let (rating, events) = follow(
        s.rating(&r.product_id).await.unwrap(),
        Some(r),
        Some(&published),
    );
    assert_eq!(
        s.put_review(&published, r.version, rating.as_ref(), &events)
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    published
}

async fn sum_count<S: ReviewStore + ?Sized>(s: &S, product: &str) -> (u64, u32, u64) {
    s.rating(&pid(product))
        .await
        .unwrap()
        .map_or((0, 0, 0), |r| (r.stars_sum, r.review_count, r.seq))
}

/// An inserted review reads back equal; unknown keys read as `None`, with no rating.
pub async fn put_then_get<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let r = sample_review("rv-a", "u-a1", 4);
    assert_eq!(
        s.put_review(&r, 0, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(r));
    assert_eq!(s.review(&key("rv-a", "u-nobody")).await.unwrap(), None);
    assert_eq!(
        s.rating(&pid("rv-a")).await.unwrap(),
        None,
        "nothing published"
    );
    assert_eq!(s.helpful_votes(&key("rv-a", "u-a1")).await.unwrap(), 0);
}

/// Review writes are compare-and-set on the version; 0 means absent.
pub async fn puts_are_compare_and_set<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let r = sample_review("rv-b", "u-b1", 3);
    assert_eq!(
        s.put_review(&r, 0, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(
        s.put_review(&r, 0, None, &[]).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 },
        "an insert over an existing review"
    );
    let edited = Review {
        title: "Edited".into(),
        version: 2,
        ..r.clone()
    };
    assert_eq!(
        s.put_review(&edited, 1, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    let stale = Review {
        title: "Stale".into(),
        version: 2,
        ..r.clone()
    };
    assert_eq!(
        s.put_review(&stale, 1, None, &[]).await.unwrap(),
        CasOutcome::VersionMismatch { current: 2 }
    );
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(edited));
}

/// Malformed writes are refused as `Invalid` and change nothing: a version that does not
/// follow the expected one, texts out of bounds, a delete expecting version 0.
pub async fn malformed_writes_are_refused<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let r = sample_review("rv-c", "u-c1", 3);
    let skipping = Review {
        version: 3,
        ..r.clone()
    };
    let err = s.put_review(&skipping, 0, None, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
    let long = Review {
        title: "x".repeat(TITLE_CHARS_MAX + 1),
        ..r.clone()
    };
    let err = s.put_review(&long, 0, None, &[]).await.unwrap_err();
    assert_eq!(
        (err.kind, err.field.as_deref()),
        (ErrorKind::Invalid, Some("review.title"))
    );
    assert_eq!(s.review(&r.key()).await.unwrap(), None);
    insert(s, &r).await;
    let err = s.delete_review(&r.key(), 0, None, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(r));
}

/// Publishing writes the review, the rating and its event together.
pub async fn publishing_moves_the_rating_with_the_write<
    S: ReviewStore + ?Sized,
    L: EventLog + ?Sized,
>(
    s: &S,
    log: &L,
) {
    let r = sample_review("rv-d", "u-d1", 4);
    let published = insert_published(s, &r).await;
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(published.clone()));
    assert_eq!(sum_count(s, "rv-d").await, (4, 1, 1));
    let rating = s.rating(&pid("rv-d")).await.unwrap().unwrap();
    assert_eq!(rating.sku.as_str(), "SKU-rv-d");
    assert_eq!(count(log, "rv-d:rating.1").await, 1, "the rating's event");

    // A second review: the rating adds up; rejecting the first takes it out.
    let second = insert_published(s, &sample_review("rv-d", "u-d2", 1)).await;
    assert_eq!(sum_count(s, "rv-d").await, (5, 2, 2));
    let rejected = moved(&published, Moderation::Rejected);
    let (w, events) = follow(
        s.rating(&pid("rv-d")).await.unwrap(),
        Some(&published),
        Some(&rejected),
    );
    assert_eq!(
        s.put_review(&rejected, published.version, w.as_ref(), &events)
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(sum_count(s, "rv-d").await, (1, 1, 3));
    assert_eq!(count(log, "rv-d:rating.3").await, 1);
    assert_eq!(s.review(&second.key()).await.unwrap(), Some(second));
}

/// A write whose rating does not follow from its change is refused and commits nothing: a
/// publish without a rating, a wrong sum, a skipped `seq`, a rating for a change that moves
/// none.
pub async fn ratings_that_do_not_follow_are_refused<
    S: ReviewStore + ?Sized,
    L: EventLog + ?Sized,
>(
    s: &S,
    log: &L,
) {
    let r = sample_review("rv-e", "u-e1", 5);
    insert(s, &r).await;
    let published = moved(&r, Moderation::Published);
    let (good, events) = follow(None, Some(&r), Some(&published));
    let good = good.unwrap();
    let refused = |w: Option<RatingWrite>| {
        let published = published.clone();
        let events = events.clone();
        async move {
            s.put_review(&published, 1, w.as_ref(), &events)
                .await
                .unwrap_err()
        }
    };
    assert_eq!(refused(None).await.kind, ErrorKind::Invalid, "no rating");
    let mut wrong_sum = good.clone();
    wrong_sum.rating.stars_sum = 4;
    assert_eq!(refused(Some(wrong_sum)).await.kind, ErrorKind::Invalid);
    let mut skipped_seq = good.clone();
    skipped_seq.rating.seq = 2;
    assert_eq!(refused(Some(skipped_seq)).await.kind, ErrorKind::Invalid);
    // A title edit of a pending review moves nothing: a rating with it is refused too.
    let edited = Review {
        title: "Edited".into(),
        version: 2,
        ..r.clone()
    };
    let err = s
        .put_review(&edited, 1, Some(&good), &events)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(r));
    assert_eq!(s.rating(&pid("rv-e")).await.unwrap(), None);
    assert_eq!(
        count(log, "rv-e:rating.1").await,
        0,
        "a refused write commits nothing"
    );
}

/// The rating is compare-and-set too: two reviews of one product published from the same
/// rating `seq`: one commits, the other writes nothing (neither review nor rating nor event).
pub async fn rating_writes_are_compare_and_set<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    log: &L,
) {
    let a = sample_review("rv-f", "u-f1", 5);
    let b = sample_review("rv-f", "u-f2", 2);
    insert(s, &a).await;
    insert(s, &b).await;
    let (pa, pb) = (
        moved(&a, Moderation::Published),
        moved(&b, Moderation::Published),
    );
    let (wa, ea) = follow(None, Some(&a), Some(&pa));
    let (wb, eb) = follow(None, Some(&b), Some(&pb));
    assert_eq!(
        s.put_review(&pa, 1, wa.as_ref(), &ea).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(
        s.put_review(&pb, 1, wb.as_ref(), &eb).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 },
        "b's rating was computed from seq 0"
    );
    assert_eq!(s.review(&b.key()).await.unwrap(), Some(b.clone()));
    assert_eq!(sum_count(s, "rv-f").await, (5, 1, 1));
    assert_eq!(count(log, "rv-f:rating.1").await, 1, "a's event only");
    let (wb, eb) = follow(s.rating(&pid("rv-f")).await.unwrap(), Some(&b), Some(&pb));
    assert_eq!(
        s.put_review(&pb, 1, wb.as_ref(), &eb).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(sum_count(s, "rv-f").await, (7, 2, 2));
    assert_eq!(count(log, "rv-f:rating.2").await, 1);
}

/// A lost race commits no event; a retried write naming the same event ids commits each once.
pub async fn events_commit_with_the_write<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    log: &L,
) {
    let r = sample_review("rv-g", "u-g1", 3);
    insert(s, &r).await;
    let edited = Review {
        title: "Edited".into(),
        version: 2,
        ..r.clone()
    };
    assert_eq!(
        s.put_review(&edited, 1, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    // A moderator publishes the version they read: the author's edit won the race.
    let stale = moved(&r, Moderation::Published);
    let (w, events) = follow(None, Some(&r), Some(&stale));
    assert_eq!(
        s.put_review(&stale, 1, w.as_ref(), &events).await.unwrap(),
        CasOutcome::VersionMismatch { current: 2 }
    );
    assert_eq!(
        count(log, "rv-g:rating.1").await,
        0,
        "a lost race commits nothing"
    );
    let published = moved(&edited, Moderation::Published);
    let (w, events) = follow(None, Some(&edited), Some(&published));
    let twice = [events.clone(), events].concat();
    assert_eq!(
        s.put_review(&published, 2, w.as_ref(), &twice)
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(count(log, "rv-g:rating.1").await, 1);
}

/// Deleting a review removes it, its votes and its stars; a delete is compare-and-set.
pub async fn deletes_take_the_votes_and_the_stars<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    log: &L,
) {
    let published = insert_published(s, &sample_review("rv-h", "u-h1", 4)).await;
    let k = published.key();
    assert!(s.add_vote(&k, &uid("u-h2")).await.unwrap());
    let (w, events) = follow(
        s.rating(&pid("rv-h")).await.unwrap(),
        Some(&published),
        None,
    );
    assert_eq!(
        s.delete_review(&k, 1, w.as_ref(), &events).await.unwrap(),
        CasOutcome::VersionMismatch { current: 2 }
    );
    assert_eq!(
        s.delete_review(&k, 2, w.as_ref(), &events).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(s.review(&k).await.unwrap(), None);
    assert_eq!(s.helpful_votes(&k).await.unwrap(), 0);
    assert_eq!(sum_count(s, "rv-h").await, (0, 0, 2));
    assert_eq!(count(log, "rv-h:rating.2").await, 1);
    assert_eq!(
        s.delete_review(&k, 2, None, &[]).await.unwrap(),
        CasOutcome::VersionMismatch { current: 0 },
        "a repeated delete"
    );
    // A new review by the same author starts over at version 1, without the old votes.
    let again = sample_review("rv-h", "u-h1", 2);
    assert_eq!(
        s.put_review(&again, 0, None, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(s.helpful_votes(&k).await.unwrap(), 0);
}

/// Helpful votes are a set per review: a second vote by one voter adds nothing.
pub async fn votes_are_a_set<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let r = sample_review("rv-i", "u-i1", 5);
    insert(s, &r).await;
    let other = sample_review("rv-i", "u-i2", 1);
    insert(s, &other).await;
    assert!(s.add_vote(&r.key(), &uid("u-i3")).await.unwrap());
    assert!(!s.add_vote(&r.key(), &uid("u-i3")).await.unwrap());
    assert!(s.add_vote(&r.key(), &uid("u-i4")).await.unwrap());
    assert_eq!(s.helpful_votes(&r.key()).await.unwrap(), 2);
    assert_eq!(s.helpful_votes(&other.key()).await.unwrap(), 0);
    let err = s
        .add_vote(&key("rv-i", "u-nobody"), &uid("u-i3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let listed = s.list_reviews(&pid("rv-i"), None, None, 10).await.unwrap();
    let votes: Vec<u32> = listed.iter().map(|l| l.helpful_votes).collect();
    assert_eq!(votes, [2, 0]);
}

/// Listings filter by product and state, page in key order strictly after the cursor, and the
/// moderation queue holds only pending reviews.
pub async fn listings_filter_and_page<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    for i in 1..=5 {
        let r = sample_review("rv-j", &format!("u-j{i}"), 3);
        if i % 2 == 0 {
            insert_published(s, &r).await;
        } else {
            insert(s, &r).await;
        }
    }
    // Neighbours whose keys sort on either side.
    insert(s, &sample_review("rv-i0", "u-j0", 2)).await;
    insert(s, &sample_review("rv-j0", "u-j0", 2)).await;
    let mut seen = Vec::new();
    let mut after: Option<UserId> = None;
    loop {
        let page = s
            .list_reviews(&pid("rv-j"), Some(Moderation::Published), after.as_ref(), 1)
            .await
            .unwrap();
        assert!(page.len() <= 1);
        let Some(last) = page.last() else { break };
        after = Some(last.review.author.clone());
        seen.push(last.review.author.to_string());
    }
    assert_eq!(seen, ["u-j2", "u-j4"]);
    let all = s.list_reviews(&pid("rv-j"), None, None, 100).await.unwrap();
    assert_eq!(all.len(), 5, "only rv-j's reviews");
    let mut queue = Vec::new();
    let mut after = Some(key("rv-j", "u-j1"));
    loop {
        let page = s.pending_reviews(after.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.iter().all(|r| r.status == Moderation::Pending));
        after = Some(last.key());
        queue.extend(
            page.iter()
                .filter(|r| r.product_id.as_str().starts_with("rv-j"))
                .map(|r| r.key().to_string()),
        );
    }
    assert_eq!(queue, ["rv-j/u-j3", "rv-j/u-j5", "rv-j0/u-j0"]);
}

/// Of concurrent writes from one version, exactly one commits; of concurrent publishes of
/// different reviews of one product from one rating `seq`, exactly one commits.
pub async fn concurrent_writes_have_one_winner<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let writes = (0..8).map(|i| {
        let r = Review {
            title: format!("writer {i}"),
            ..sample_review("rv-k", "u-k1", 3)
        };
        async move { s.put_review(&r, 0, None, &[]).await }
    });
    let results = join_all(writes).await;
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
        .count();
    assert_eq!(committed, 1, "{results:?}");

    let pending: Vec<Review> = (0..8)
        .map(|i| sample_review("rv-k2", &format!("u-k2-{i}"), 4))
        .collect();
    for r in &pending {
        insert(s, r).await;
    }
    let publishes = pending.iter().map(|r| {
        let published = moved(r, Moderation::Published);
        let (w, events) = follow(None, Some(r), Some(&published));
        async move { s.put_review(&published, 1, w.as_ref(), &events).await }
    });
    let results = join_all(publishes).await;
    let committed = results
        .iter()
        .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
        .count();
    assert_eq!(committed, 1, "{results:?}");
    assert_eq!(sum_count(s, "rv-k2").await, (4, 1, 1));
}

/// Boundary values: texts at their limits (in characters, not bytes), ids at their longest,
/// the lowest and highest stars.
pub async fn boundary_values_round_trip<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    log: &L,
) {
    let product = format!("rv-l{}", "x".repeat(commerce_core::limits::ID_LEN_MAX - 4));
    let author = "u".repeat(commerce_core::limits::ID_LEN_MAX);
    let r = Review {
        product_id: pid(&product),
        sku: Sku::new("S".repeat(commerce_core::limits::SKU_LEN_MAX)).unwrap(),
        author: uid(&author),
        stars: Stars::new(1).unwrap(),
        title: "é".repeat(TITLE_CHARS_MAX),
        body: "ü".repeat(BODY_CHARS_MAX),
        ..sample_review("rv-l", "u-l", 1)
    };
    let published = insert_published(s, &r).await;
    assert_eq!(s.review(&r.key()).await.unwrap(), Some(published));
    assert_eq!(count(log, &format!("{product}:rating.1")).await, 1);
    let five = insert_published(
        s,
        &Review {
            author: uid("u-l2"),
            stars: Stars::new(5).unwrap(),
            ..r.clone()
        },
    )
    .await;
    assert_eq!(five.stars.get(), 5);
    assert_eq!(
        s.rating(&pid(&product)).await.unwrap().unwrap().average(),
        Some(rust_decimal::Decimal::new(300, 2))
    );
}

fn question(id: &str, product: &str) -> Question {
    Question {
        id: QuestionId::new(id).unwrap(),
        product_id: pid(product),
        author: uid("u-q"),
        text: "Is it dishwasher safe?".into(),
        status: Moderation::Pending,
        moderation_note: None,
        asked_at: t0(),
        moderated_at: None,
        version: 1,
    }
}

fn answer(id: &str, question: &Question) -> Answer {
    Answer {
        id: AnswerId::new(id).unwrap(),
        question_id: question.id.clone(),
        product_id: question.product_id.clone(),
        author: uid("u-a"),
        text: "Yes.".into(),
        status: Moderation::Pending,
        moderation_note: None,
        verified_purchase: true,
        answered_at: t0(),
        moderated_at: None,
        version: 1,
    }
}

/// Questions and answers: inserted once, moderated by compare-and-set on the moderation
/// fields only, listed per product or question and state.
pub async fn questions_and_answers<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(s: &S, _log: &L) {
    let q = question("rv-q1", "rv-m");
    s.insert_question(&q).await.unwrap();
    assert_eq!(s.question(&q.id).await.unwrap(), Some(q.clone()));
    assert_eq!(
        s.insert_question(&q).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let blank = Question {
        text: "  ".into(),
        ..question("rv-q-blank", "rv-m")
    };
    assert_eq!(
        s.insert_question(&blank).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    let published = Question {
        status: Moderation::Published,
        moderated_at: Some(t0()),
        version: 2,
        ..q.clone()
    };
    assert_eq!(
        s.update_question(&published, 1).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(
        s.update_question(&published, 1).await.unwrap(),
        CasOutcome::VersionMismatch { current: 2 },
        "a repeated update"
    );
    let rewritten = Question {
        text: "Something else".into(),
        version: 3,
        ..published.clone()
    };
    assert_eq!(
        s.update_question(&rewritten, 2).await.unwrap_err().kind,
        ErrorKind::Invalid,
        "only moderation changes"
    );
    assert_eq!(
        s.update_question(&question("rv-q-missing", "rv-m"), 0)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    s.insert_question(&question("rv-q2", "rv-m")).await.unwrap();
    s.insert_question(&question("rv-q3", "rv-m0"))
        .await
        .unwrap();
    let listed = s
        .list_questions(&pid("rv-m"), Some(Moderation::Published), None, 10)
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&published));
    let all = s
        .list_questions(&pid("rv-m"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let after = s
        .list_questions(&pid("rv-m"), None, Some(&q.id), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id.as_str(), "rv-q2");

    let a = answer("rv-a1", &published);
    s.insert_answer(&a).await.unwrap();
    assert_eq!(s.answer(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.insert_answer(&a).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let orphan = answer("rv-a2", &question("rv-q-missing", "rv-m"));
    assert_eq!(
        s.insert_answer(&orphan).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    let elsewhere = Answer {
        product_id: pid("rv-m0"),
        ..answer("rv-a3", &published)
    };
    assert_eq!(
        s.insert_answer(&elsewhere).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    let rejected = Answer {
        status: Moderation::Rejected,
        moderation_note: Some("off topic".into()),
        version: 2,
        ..a.clone()
    };
    assert_eq!(
        s.update_answer(&rejected, 1).await.unwrap(),
        CasOutcome::Committed
    );
    let stale = Answer {
        status: Moderation::Published,
        version: 2,
        ..a.clone()
    };
    assert_eq!(
        s.update_answer(&stale, 1).await.unwrap(),
        CasOutcome::VersionMismatch { current: 2 }
    );
    s.insert_answer(&answer("rv-a4", &published)).await.unwrap();
    let pending = s
        .list_answers(&published.id, Some(Moderation::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id.as_str(), "rv-a4");
    assert_eq!(
        s.list_answers(&published.id, None, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

fn order(id: &str) -> OrderId {
    OrderId::new(id).unwrap()
}

/// Purchases are recorded with the offset, compare-and-set on it; idempotent by order id; a
/// cancellation ends a purchase, even one whose confirmation arrives after it.
pub async fn purchases_are_idempotent_by_order<S: ReviewStore + ?Sized, L: EventLog + ?Sized>(
    s: &S,
    _log: &L,
) {
    let (user, a, b) = (
        uid("u-rv-p1"),
        Sku::new("SKU-rv-p-a").unwrap(),
        Sku::new("SKU-rv-p-b").unwrap(),
    );
    let confirmed = |id: &str, skus: Vec<Sku>| PurchaseChange::Confirmed {
        order_id: order(id),
        user_id: user.clone(),
        skus,
    };
    let cancelled = |id: &str| PurchaseChange::Cancelled {
        order_id: order(id),
    };
    let from = s.purchase_offset().await.unwrap();
    assert!(!s.has_purchased(&user, &a).await.unwrap());
    assert_eq!(
        s.record_purchases(&[confirmed("rv-o1", vec![a.clone()])], from + 1, from + 2)
            .await
            .unwrap(),
        CasOutcome::VersionMismatch { current: from },
        "the offset is compare-and-set"
    );
    assert!(
        !s.has_purchased(&user, &a).await.unwrap(),
        "nothing applied"
    );
    let batch = [
        confirmed("rv-o1", vec![a.clone()]),
        confirmed("rv-o1", vec![a.clone()]),
        cancelled("rv-o2"),
    ];
    assert_eq!(
        s.record_purchases(&batch, from, from + 3).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(s.purchase_offset().await.unwrap(), from + 3);
    assert!(s.has_purchased(&user, &a).await.unwrap());
    assert!(!s.has_purchased(&user, &b).await.unwrap());
    assert!(!s.has_purchased(&uid("u-rv-p2"), &a).await.unwrap());
    // o2 was cancelled before its confirmation arrived: it never counts.
    let batch = [confirmed("rv-o2", vec![b.clone()])];
    assert_eq!(
        s.record_purchases(&batch, from + 3, from + 4)
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    assert!(!s.has_purchased(&user, &b).await.unwrap());
    // Redelivered, then cancelled, then redelivered again: cancelled stays cancelled.
    let batch = [
        confirmed("rv-o1", vec![a.clone()]),
        cancelled("rv-o1"),
        cancelled("rv-o1"),
        confirmed("rv-o1", vec![a.clone()]),
    ];
    assert_eq!(
        s.record_purchases(&batch, from + 4, from + 8)
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    assert!(!s.has_purchased(&user, &a).await.unwrap());
    assert_eq!(s.purchase_offset().await.unwrap(), from + 8);
    // An offset with nothing to record still moves.
    assert_eq!(
        s.record_purchases(&[], from + 8, from + 10).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(s.purchase_offset().await.unwrap(), from + 10);
    let err = s
        .record_purchases(&[], from + 10, from + 9)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "offsets never go back");
}

/// Runs the [`ReviewStore`] conformance suite against `$make`, which yields `(store, log)`:
/// the store and a shared handle (`Arc`) to the event log its writes commit to.
///
/// ```ignore
/// mod review_store {
///     reviews::review_store_conformance!({
///         let log = std::sync::Arc::new(commerce_core::memory::InMemoryEventLog::new());
///         (reviews::InMemoryReviewStore::with_outbox(log.clone()), log)
///     });
/// }
/// ```
#[macro_export]
macro_rules! review_store_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases_with_log!($make;
            put_then_get => $crate::testkit::put_then_get,
            puts_are_compare_and_set => $crate::testkit::puts_are_compare_and_set,
            malformed_writes_are_refused => $crate::testkit::malformed_writes_are_refused,
            publishing_moves_the_rating_with_the_write => $crate::testkit::publishing_moves_the_rating_with_the_write,
            ratings_that_do_not_follow_are_refused => $crate::testkit::ratings_that_do_not_follow_are_refused,
            rating_writes_are_compare_and_set => $crate::testkit::rating_writes_are_compare_and_set,
            events_commit_with_the_write => $crate::testkit::events_commit_with_the_write,
            deletes_take_the_votes_and_the_stars => $crate::testkit::deletes_take_the_votes_and_the_stars,
            votes_are_a_set => $crate::testkit::votes_are_a_set,
            listings_filter_and_page => $crate::testkit::listings_filter_and_page,
            concurrent_writes_have_one_winner => $crate::testkit::concurrent_writes_have_one_winner,
            boundary_values_round_trip => $crate::testkit::boundary_values_round_trip,
            questions_and_answers => $crate::testkit::questions_and_answers,
            purchases_are_idempotent_by_order => $crate::testkit::purchases_are_idempotent_by_order,
        );
    };
}
