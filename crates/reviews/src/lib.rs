//! Product reviews and questions: what customers say about a product, moderated, with an
//! exact rating that search and product pages follow through events.
//!
//! - **Reviews**: one per customer and product ([`ReviewKey`]). [`Reviews::submit`] writes a
//!   new review or a new version of the customer's own (an edit), which waits for moderation;
//!   [`Reviews::moderate`] publishes or rejects it ([`Moderation`]); [`Reviews::delete`]
//!   removes it. Stars are 1 to 5 ([`Stars`]); titles and bodies are bounded ([`limits`]).
//! - **Verified purchases**: [`PurchaseFeed`] reads `OrderConfirmed` and `OrderCancelled` from
//!   the domain event log into the store, idempotently and resumably; a review (or an answer)
//!   is a verified purchase when its author has a confirmed, not cancelled order with the
//!   product's SKU when it is submitted. The SKU is the catalog's: the engine looks the product
//!   up in a [`commerce_core::CatalogStore`].
//! - **Rating**: per product, the exact integer sum of the published reviews' stars and their
//!   count ([`ProductRating`]); the average is derived, rounded half-even to two decimals.
//!   Every write that moves it (publish, reject or edit of a published review, delete) writes
//!   the new rating and commits a `ProductRatingChanged` event with it, numbered by a
//!   per-product `seq` so consumers drop stale and repeated ones. The search indexer applies
//!   it to the product's rating signal.
//! - **Helpful votes**: one per customer and published review, never on one's own
//!   ([`Reviews::vote_helpful`]).
//! - **Questions and answers** per product, both moderated like reviews; an answer is
//!   flagged when its author bought the product ([`Reviews::ask`], [`Reviews::answer`]).
//! - **The store** ([`ReviewStore`]) commits a review, the rating and the rating's event in one
//!   compare-and-set write, and refuses a write whose rating does not follow from the change
//!   ([`rules::check_review_write`]). [`InMemoryReviewStore`] implements it; the conformance
//!   suite (feature `testkit`) is the contract every implementation passes.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use commerce_core::memory::{InMemoryCatalog, InMemoryEventLog};
//! use commerce_core::testkit::{sample_product, t0};
//! use commerce_core::{CatalogStore, DomainEvent, EventLog, UserId};
//! use reviews::*;
//! # futures::executor::block_on(async {
//! let log = Arc::new(InMemoryEventLog::new());
//! let catalog = Arc::new(InMemoryCatalog::with_outbox(log.clone()));
//! let mug = sample_product("mug", "MUG-1");
//! let _ = catalog.put(mug.clone(), &[]).await?;
//! let store = Arc::new(InMemoryReviewStore::with_outbox(log.clone()));
//! let reviews = Reviews::new(store, catalog);
//!
//! let draft = |author: &str, stars| ReviewDraft {
//!     product_id: mug.id.clone(),
//!     author: UserId::new(author).unwrap(),
//!     stars,
//!     title: "Keeps coffee hot".into(),
//!     body: String::new(),
//! };
//! let ada = reviews.submit(draft("ada", 5), t0()).await?;
//! let bob = reviews.submit(draft("bob", 4), t0()).await?;
//! assert_eq!(ada.status, Moderation::Pending);
//! assert!(reviews.submit(draft("cy", 6), t0()).await.is_err());   // stars are 1 to 5
//!
//! reviews.moderate(&ada.key(), &ModerationAction::Publish, t0()).await?;
//! reviews.moderate(&bob.key(), &ModerationAction::Publish, t0()).await?;
//! let rating = reviews.rating(&mug.id).await?;
//! assert_eq!((rating.stars_sum, rating.review_count), (9, 2));
//! assert_eq!(rating.average().unwrap().to_string(), "4.50");
//!
//! // Each change of the rating committed an event, in order, for the search indexer.
//! let last = log.read(0, 10).await?.pop().unwrap().envelope;
//! assert_eq!(last.event_id.as_str(), "mug:rating.2");
//! assert!(matches!(last.event, DomainEvent::ProductRatingChanged { review_count: 2, seq: 2, .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Map
//!
//! | area | types |
//! |---|---|
//! | engine | [`Reviews`], [`ReviewDraft`], [`QuestionDraft`], [`AnswerDraft`], [`ModerationAction`], [`VoteOutcome`] |
//! | records | [`Review`], [`ReviewKey`], [`Stars`], [`Moderation`], [`ProductRating`], [`Question`], [`Answer`], [`QuestionId`], [`AnswerId`], [`ListedReview`] |
//! | store | [`ReviewStore`], [`RatingWrite`], [`rules`], [`InMemoryReviewStore`] |
//! | purchases | [`PurchaseFeed`], [`PurchaseChange`], [`FeedReport`] |
//!
//! # Errors
//! Every refusal is an [`Error`] with a [`commerce_core::ErrorKind`] and, for bad input, the
//! field; a refused operation writes nothing and commits no event.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `testkit` | `testkit`: the [`ReviewStore`] conformance suite (`review_store_conformance!`), which adapters run too. Off by default. |

mod engine;
mod error;
mod ids;
pub mod limits;
mod memory;
mod model;
mod port;
mod purchases;
pub mod rules;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::Reviews;
pub use error::{Error, Result};
pub use ids::{AnswerId, QuestionId};
pub use memory::{InMemoryReviewStore, Purchase, ReviewStoreSnapshot};
pub use model::{
    Answer, AnswerDraft, ListedReview, Moderation, ModerationAction, ProductRating, PurchaseChange,
    Question, QuestionDraft, RatingWrite, Review, ReviewDraft, ReviewKey, Stars, VoteOutcome,
};
pub use port::ReviewStore;
pub use purchases::{FeedReport, PurchaseFeed};
