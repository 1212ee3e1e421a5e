//! Integration tests of the saga crate: the deterministic simulation of the whole order life,
//! checkout idempotency and crash recovery, the orchestrator's semantics, checkout from a cart,
//! the order lifecycle, and the journal's conformance.

mod admission;
mod conformance;
mod from_cart;
mod idempotency;
mod lifecycle;
mod payments;
mod simulation;
mod world;
