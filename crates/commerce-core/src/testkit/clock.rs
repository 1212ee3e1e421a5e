//! Conformance cases for [`Clock`].

use crate::Clock;

/// Successive readings never go backwards.
pub async fn never_goes_backwards<C: Clock + ?Sized>(clock: &C) {
    let mut last = clock.now();
    for _ in 0..1_000 {
        let now = clock.now();
        assert!(now >= last, "clock went backwards: {now} < {last}");
        last = now;
    }
}

/// Runs the [`Clock`] conformance suite against `$make`.
#[macro_export]
macro_rules! clock_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            never_goes_backwards => $crate::testkit::clock::never_goes_backwards,
        );
    };
}
