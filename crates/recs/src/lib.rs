//! Recommendations: co-purchase, personalized (implicit matrix factorization) and real-time
//! signals, and their blending.
//!
//! (Crate docs are completed with the layers.)

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
