//! Conformance suites for the cart engine's ports, run against the in-memory implementations
//! here and against every adapter later. See `commerce_core::testkit` for how the macros work.

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

pub mod cart_store;
mod faulty;
mod invariants;
pub mod usage_store;

pub use invariants::{check_priced_cart, check_priced_cart_for};
