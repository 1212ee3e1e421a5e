//! Recommendations: co-purchase, personalized (implicit matrix factorization) and real-time
//! signals, blended with business signals, A/B-tested and measured offline. Pure logic: it
//! reads events and catalog facts it is given and talks to storage only through its ports.
//!
//! # Example
//!
//! Orders become "bought together" lists in a [`TopKStore`]; a product page blends them with
//! the session's recently viewed products and the products' margins.
//!
//! ```
//! use std::collections::{HashMap, HashSet};
//! use std::sync::Arc;
//! use chrono::DateTime;
//! use commerce_core::{DomainEvent, EventEnvelope, EventId, EventLine, Money, Currency,
//!                     OrderId, SessionId, Sku, UserId};
//! use recs::blend::{product_page, BlendConfig, PageRequest, ProductFacts};
//! use recs::copurchase::{baskets_of, write_lists, CoPurchase, CoPurchaseConfig};
//! use recs::realtime::RealtimeFeed;
//! use recs::{InMemoryBackInStock, InMemoryRecentlyViewed, InMemoryTopKStore};
//! # futures::executor::block_on(async {
//! let sku = |s: &str| Sku::new(s).unwrap();
//! let at = DateTime::UNIX_EPOCH;
//! let order = |n: u32, items: &[&str]| EventEnvelope::new(
//!     EventId::new(format!("order-{n}")).unwrap(), at,
//!     DomainEvent::OrderConfirmed {
//!         order_id: OrderId::new(format!("o-{n}")).unwrap(),
//!         user_id: UserId::new("ada").unwrap(),
//!         grand_total: Money::from_minor(1_000, Currency::EUR),
//!         lines: items.iter().map(|s| EventLine { sku: sku(s), quantity: 1 }).collect(),
//!         settlement: None,
//!     });
//! let log = [order(1, &["MUG", "TEA"]), order(2, &["MUG", "TEA", "SPOON"]), order(3, &["MUG", "SPOON"])];
//!
//! // Offline: the co-purchase build writes each item's top K.
//! let lists = InMemoryTopKStore::new();
//! let mut model = CoPurchase::build(&baskets_of(&log)?, CoPurchaseConfig::default())?;
//! write_lists(&lists, &model.all_lists(1)?).await?;
//! // Later orders update the lists they change (a redelivered event counts once).
//! model.apply(&[order(4, &["TEA", "SPOON"])], &lists, 2).await?;
//!
//! // Real time: views from the event log.
//! let views = Arc::new(InMemoryRecentlyViewed::new(20));
//! let mut feed = RealtimeFeed::new(views.clone(), Arc::new(InMemoryBackInStock::new()));
//! let session = SessionId::new("s-1")?;
//! feed.apply(&[EventEnvelope::new(EventId::new("s-1:view:1")?, at, DomainEvent::ProductViewed {
//!     session: session.clone(), user: None, sku: sku("KETTLE") })]).await?;
//!
//! // The product page of MUG: 70 % relevance, 30 % business (margin, stock pressure).
//! let facts: HashMap<Sku, ProductFacts> = [("TEA", 1_500), ("SPOON", 4_000), ("KETTLE", 2_500), ("MUG", 3_000)]
//!     .into_iter()
//!     .map(|(s, margin)| (sku(s), ProductFacts {
//!         sku: sku(s), brand: None, category: None, in_stock: true, retired: false,
//!         margin_bps: Some(margin), stock_pressure_bps: 0,
//!     }))
//!     .collect();
//! let request = PageRequest { anchor: sku("MUG"), session, user: None, exclude: HashSet::new() };
//! let recs = product_page(&request, &lists, views.as_ref(), &facts, &BlendConfig::default()).await?;
//! let shown: Vec<&str> = recs.iter().map(|r| r.sku.as_str()).collect();
//! assert_eq!(shown, ["SPOON", "TEA", "KETTLE"]);
//! assert!(recs.iter().all(|r| (0.0..=1.0).contains(&r.score)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Map
//!
//! | module | what |
//! |---|---|
//! | [`copurchase`] | co-occurrence counts over order baskets and customers, five scorers, minimum support, time decay, basket weights; parallel batch build, incremental update from `OrderConfirmed` events; top-K lists |
//! | [`als`] | implicit ALS (Hu–Koren–Volinsky, conjugate gradient), BM25/TF-IDF weighting, recommend, similar items, fold-in, versioned save/load |
//! | [`realtime`] | the feed from `ProductViewed` and `BackInStock` events to the real-time stores |
//! | [`blend`] | filters, `0.7 × relevance + 0.3 × business`, diversity caps, explanations; the product page |
//! | [`ab`] | stable assignment, exposure and outcome logging, evaluation with Wilson intervals |
//! | [`eval`] | precision, recall, NDCG, MAP, hit rate @k; seeded per-user and time splits |
//! | ports | [`TopKStore`], [`RecentlyViewedStore`], [`BackInStockStore`], [`ExperimentLog`], in memory in [`memory`] |
//!
//! The co-purchase defaults were chosen on a validation split of UCI Online Retail's training
//! period (train before 2011-09-01, validate on September), then scored once on the test
//! period (train before 2011-10-01, HR@10 over later (basket, anchor) pairs; `cargo run
//! --release -p recs --example online_retail`): per-order co-counts with baskets weighted
//! `1/m^0.5` plus the customer-level asymmetric cosine (α 0.9) score 0.8193, the raw co-count
//! 0.799, asymmetric cosine (α 0.8) 0.793, Jaccard 0.729 (table in [`copurchase`]). The ALS
//! defaults were chosen likewise on a validation split of MovieLens-100k's training part:
//! P@10 0.433 on its test split (`--example movielens`).
//!
//! # Features
//!
//! | feature | what |
//! |---|---|
//! | `progress` | a terminal progress bar (indicatif) for long co-purchase builds |
//! | `testkit` | the conformance suites of the store ports |

#![allow(
    clippy::float_arithmetic,
    reason = "recommendation scores are floats; no money is computed here"
)]

pub mod ab;
pub mod als;
pub mod blend;
pub mod copurchase;
mod error;
pub mod eval;
mod ids;
pub mod limits;
pub mod memory;
pub mod realtime;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, Result};
pub use ids::{ArmName, ExperimentId};
pub use memory::{
    InMemoryBackInStock, InMemoryExperimentLog, InMemoryRecentlyViewed, InMemoryTopKStore,
};
pub use store::{
    BackInStockStore, ExperimentEvent, ExperimentLog, ExperimentRecord, ListKey, LoggedRecord,
    RecentlyViewedStore, Scored, TopKList, TopKStore, Viewed,
};
