//! Product search: a projection of the catalog into tantivy.
//!
//! **Status: skeleton.** This crate will own the index schema built from
//! `commerce_core::ProductProjection`, a near-real-time indexing pipeline fed by catalog events
//! with resumable offsets, free-text queries with typo tolerance and synonyms, disjunctive facets,
//! bounded business re-ranking, and per-tenant indices. The catalog port stays the source of truth.
