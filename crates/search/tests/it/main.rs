//! Integration tests of the search crate.

mod brute_force;
mod fixtures;
mod locales;
#[cfg(feature = "minilm")]
mod minilm;
mod pipeline;
mod querying;
mod ranking;
mod ratings;
mod relevance;
mod semantic;
mod semantic_index;
mod stale;
mod tenants;
