//! Integration tests of the recommendations engine: the stores' conformance suites, the
//! layers on small worlds, and property tests.

#![allow(clippy::float_arithmetic, reason = "tests compare float scores")]

mod ab;
mod als;
mod blend;
mod conformance;
mod copurchase;
mod eval;
mod movielens;
mod realtime;

/// The engine's public types can be shared across threads (a server holds them in an `Arc`).
#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<recs::copurchase::CoPurchase>();
    check::<recs::copurchase::CoCounts>();
    check::<recs::als::AlsModel>();
    check::<recs::realtime::RealtimeFeed>();
    check::<recs::ab::Experiment>();
    check::<recs::blend::Recommendation>();
    check::<recs::Error>();
}
