//! Integration tests of the saga crate: the deterministic simulation, idempotency, the
//! orchestrator's semantics, and the journal's conformance.

mod conformance;
mod from_cart;
mod idempotency;
mod lifecycle;
mod simulation;
