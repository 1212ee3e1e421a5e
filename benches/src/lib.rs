//! Criterion benchmarks of the SDK's hot paths; see `benches/benches/*.rs` and `BENCHMARKS.md`.
