//! Integration tests of the inventory engine: conformance, a model-based property test, a
//! multi-threaded stress test with a checker, the last-unit race, sharding and reconciliation.

mod conformance;
mod model;
mod races;
mod reconcile;
mod rules;
