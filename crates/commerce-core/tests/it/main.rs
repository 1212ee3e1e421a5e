//! Integration tests of commerce-core: port conformance for the in-memory implementations,
//! property tests of the invariants, and serde round trips of the public data types.

mod cached_catalog;
mod conformance;
mod props;
mod serde_round_trips;
