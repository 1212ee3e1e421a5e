//! Criterion benchmarks of the SDK's hot paths; see `benches/benches/*.rs` and `BENCHMARKS.md`.

use std::future::Future;

use futures::FutureExt;

/// The result of an in-memory port call, which completes on its first poll: polled once, with
/// no executor, so a benchmark measures the call and not a runtime.
///
/// # Panics
/// If the call does not complete at once (a port that really waits).
pub fn ready<T>(call: impl Future<Output = T>) -> T {
    #[allow(
        clippy::expect_used,
        reason = "only in-memory ports are benchmarked this way"
    )]
    call.now_or_never()
        .expect("an in-memory call completes at once")
}
