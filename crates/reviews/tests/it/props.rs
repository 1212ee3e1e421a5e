//! Property tests: whatever customers and moderators do, the stored rating equals a
//! recomputation from the published reviews, votes count distinct voters, a refused operation
//! changes nothing and commits nothing, and each product's rating events are numbered 1, 2, 3…

use std::collections::{BTreeMap, BTreeSet};

use commerce_core::testkit::t0;
use commerce_core::{DomainEvent, ProductId};
use futures::executor::block_on;
use proptest::prelude::*;
use reviews::{
    Moderation, ModerationAction, ProductRating, ReviewDraft, ReviewKey, ReviewStoreSnapshot,
    VoteOutcome,
};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::engine::{key, user, world};

const PRODUCTS: [&str; 3] = ["mug", "tea", "old"]; // "old" is retired: submits are refused
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];

#[derive(Debug, Clone)]
enum Op {
    /// Stars 0 and 6 are refused; `long` makes the title one character too long.
    Submit {
        product: usize,
        author: usize,
        stars: u8,
        text: u8,
        long: bool,
    },
    Publish {
        product: usize,
        author: usize,
    },
    Reject {
        product: usize,
        author: usize,
    },
    Delete {
        product: usize,
        author: usize,
    },
    Vote {
        product: usize,
        author: usize,
        voter: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PRODUCTS.len();
    let u = 0..USERS.len();
    prop_oneof![
        4 => (p.clone(), u.clone(), 0u8..=6, 0u8..3, prop::bool::weighted(0.05)).prop_map(
            |(product, author, stars, text, long)| Op::Submit { product, author, stars, text, long }
        ),
        3 => (p.clone(), u.clone()).prop_map(|(product, author)| Op::Publish { product, author }),
        2 => (p.clone(), u.clone()).prop_map(|(product, author)| Op::Reject { product, author }),
        1 => (p.clone(), u.clone()).prop_map(|(product, author)| Op::Delete { product, author }),
        3 => (p, u.clone(), u).prop_map(|(product, author, voter)| Op::Vote { product, author, voter }),
    ]
}

/// The rating recomputed from scratch: (sum, count) of the published reviews per product.
fn recompute(snapshot: &ReviewStoreSnapshot) -> BTreeMap<ProductId, (u64, u32)> {
    let mut out: BTreeMap<ProductId, (u64, u32)> = BTreeMap::new();
    for r in snapshot.reviews.values() {
        if r.status == Moderation::Published {
            let e = out.entry(r.product_id.clone()).or_default();
            e.0 += u64::from(r.stars.get());
            e.1 += 1;
        }
    }
    out
}

/// The average by decimal division: an independent check of the integer rounding.
fn decimal_average(sum: u64, count: u32) -> Option<Decimal> {
    (count > 0).then(|| {
        (Decimal::from(sum) / Decimal::from(count))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_rating_is_always_a_recomputation_of_the_published_reviews(
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let w = world();
        let reviews = &w.reviews;
        // Helpful voters per review, as the votes that were counted say.
        let mut voters: BTreeMap<ReviewKey, BTreeSet<String>> = BTreeMap::new();
        for op in &ops {
            let before = (w.store.snapshot(), w.log.snapshot());
            let outcome: Result<(), reviews::Error> = match *op {
                Op::Submit { product, author, stars, text, long } => {
                    let title = if long {
                        "t".repeat(reviews::limits::TITLE_CHARS_MAX + 1)
                    } else {
                        format!("take {text}")
                    };
                    let draft = ReviewDraft {
                        product_id: ProductId::new(PRODUCTS[product]).unwrap(),
                        author: user(USERS[author]),
                        stars,
                        title,
                        body: String::new(),
                    };
                    block_on(reviews.submit(draft, t0())).map(drop)
                }
                Op::Publish { product, author } => block_on(reviews.moderate(
                    &key(PRODUCTS[product], USERS[author]),
                    &ModerationAction::Publish,
                    t0(),
                ))
                .map(drop),
                Op::Reject { product, author } => block_on(reviews.moderate(
                    &key(PRODUCTS[product], USERS[author]),
                    &ModerationAction::Reject { note: String::new() },
                    t0(),
                ))
                .map(drop),
                Op::Delete { product, author } => {
                    let k = key(PRODUCTS[product], USERS[author]);
                    let deleted = block_on(reviews.delete(&k, t0()));
                    if deleted == Ok(true) {
                        voters.remove(&k);
                    }
                    deleted.map(drop)
                }
                Op::Vote { product, author, voter } => {
                    let k = key(PRODUCTS[product], USERS[author]);
                    let outcome = block_on(reviews.vote_helpful(&k, &user(USERS[voter])));
                    if let Ok(o) = outcome {
                        let new = voters.entry(k).or_default().insert(USERS[voter].to_owned());
                        prop_assert_eq!(o == VoteOutcome::Counted, new, "counted iff new");
                    }
                    outcome.map(drop)
                }
            };
            // What the rules say, from the state before: only these refusals happen.
            let stored = |product: usize, author: usize| {
                before.0.reviews.get(&key(PRODUCTS[product], USERS[author]))
            };
            let refused = match *op {
                Op::Submit { product, stars, long, .. } => {
                    !(1..=5).contains(&stars) || long || PRODUCTS[product] == "old"
                }
                Op::Publish { product, author } | Op::Reject { product, author } => {
                    stored(product, author).is_none()
                }
                Op::Delete { .. } => false,
                Op::Vote { product, author, voter } => {
                    author == voter
                        || stored(product, author).is_none_or(|r| r.status != Moderation::Published)
                }
            };
            prop_assert_eq!(outcome.is_err(), refused, "{:?}: {:?}", op, outcome);
            let after = (w.store.snapshot(), w.log.snapshot());
            if outcome.is_err() {
                prop_assert_eq!(&after, &before, "{:?} was refused but changed something", op);
            }
            // At most one event per operation, and one exactly when the rating moved.
            let new_events = after.1.len() - before.1.len();
            let moved = recompute(&after.0) != recompute(&before.0);
            prop_assert_eq!(new_events, usize::from(moved), "{:?}", op);

            // The stored rating is the recomputation, for every product.
            let recomputed = recompute(&after.0);
            for p in PRODUCTS {
                let p = ProductId::new(p).unwrap();
                let stored = after.0.ratings.get(&p).map_or((0, 0), |r| (r.stars_sum, r.review_count));
                let expected = recomputed.get(&p).copied().unwrap_or((0, 0));
                prop_assert_eq!(stored, expected, "rating of {}", p);
                let rating = block_on(reviews.rating(&p)).unwrap();
                prop_assert_eq!(rating.average(), decimal_average(expected.0, expected.1));
            }
            // Votes count distinct voters.
            for (k, vs) in &voters {
                let stored = after.0.votes.get(k).map_or(0, BTreeSet::len);
                prop_assert_eq!(stored, vs.len(), "votes of {}", k);
            }
            prop_assert!(after.0.votes.keys().all(|k| after.0.reviews.contains_key(k)));
        }

        // Each product's rating events: seq 1, 2, 3, … and the last one is the stored rating.
        let mut last: BTreeMap<ProductId, (Option<Decimal>, u32, u64)> = BTreeMap::new();
        for e in w.log.snapshot() {
            if let DomainEvent::ProductRatingChanged { product_id, rating, review_count, seq, .. } = e.event {
                let previous = last.get(&product_id).map_or(0, |l| l.2);
                prop_assert_eq!(seq, previous + 1, "seqs of {}", product_id);
                prop_assert_eq!(e.event_id.as_str(), format!("{product_id}:rating.{seq}"));
                last.insert(product_id, (rating, review_count, seq));
            }
        }
        for (p, stored) in &w.store.snapshot().ratings {
            let ProductRating { stars_sum, review_count, seq, .. } = stored.clone();
            prop_assert_eq!(
                last.get(p).cloned(),
                Some((decimal_average(stars_sum, review_count), review_count, seq))
            );
        }
    }
}
