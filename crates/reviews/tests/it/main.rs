//! Integration tests of the reviews engine: the store's conformance suite, the engine's rules,
//! the purchase feed, and property tests of the rating against a recomputation.

mod conformance;
mod engine;
mod props;
mod purchases;
