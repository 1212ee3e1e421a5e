//! Integration tests of the saga crate: the deterministic simulation, idempotency, the
//! orchestrator's semantics, and the journal's conformance.

mod idempotency;
mod lifecycle;
mod simulation;
