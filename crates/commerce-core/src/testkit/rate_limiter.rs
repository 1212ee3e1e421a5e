//! Conformance cases for [`RateLimiter`]. Each case uses keys of its own, so one server can
//! serve them all (a Redis limiter under test also gets a namespace of its own per run).

use chrono::TimeDelta;

use crate::ErrorKind;
use crate::ports::{RateDecision, RateLimit, RateLimiter};
use crate::testkit::t0;

const LIMIT: RateLimit = RateLimit {
    capacity: 3,
    refill_per_sec: 2,
};

fn ms(n: i64) -> chrono::DateTime<chrono::Utc> {
    t0() + TimeDelta::milliseconds(n)
}

/// A new bucket is full: its capacity passes at once, the next request waits for a refill.
pub async fn a_burst_up_to_capacity_then_a_wait<R: RateLimiter + ?Sized>(r: &R) {
    for left in [2, 1, 0] {
        assert_eq!(
            r.acquire("burst", &LIMIT, 1, ms(0)).await.unwrap(),
            RateDecision::Allowed { remaining: left }
        );
    }
    assert_eq!(
        r.acquire("burst", &LIMIT, 1, ms(100)).await.unwrap(),
        RateDecision::Limited {
            retry_after: TimeDelta::milliseconds(400)
        },
        "2 tokens a second: the next one at 500 ms"
    );
    assert_eq!(
        r.acquire("burst", &LIMIT, 1, ms(500)).await.unwrap(),
        RateDecision::Allowed { remaining: 0 }
    );
}

/// Idle time refills no further than the capacity.
pub async fn refill_stops_at_capacity<R: RateLimiter + ?Sized>(r: &R) {
    let _ = r.acquire("idle", &LIMIT, 3, ms(0)).await.unwrap();
    assert_eq!(
        r.acquire("idle", &LIMIT, 1, ms(3_600_000)).await.unwrap(),
        RateDecision::Allowed { remaining: 2 }
    );
}

/// A refused request takes nothing: a smaller one right after it passes.
pub async fn a_refusal_takes_nothing<R: RateLimiter + ?Sized>(r: &R) {
    let _ = r.acquire("refused", &LIMIT, 2, ms(0)).await.unwrap();
    assert!(matches!(
        r.acquire("refused", &LIMIT, 2, ms(0)).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        r.acquire("refused", &LIMIT, 1, ms(0)).await.unwrap(),
        RateDecision::Allowed { remaining: 0 }
    );
}

/// A clock behind the last count (another instance's) adds no tokens and loses none.
pub async fn time_running_backwards_adds_nothing<R: RateLimiter + ?Sized>(r: &R) {
    let _ = r.acquire("skew", &LIMIT, 3, ms(10_000)).await.unwrap();
    assert!(matches!(
        r.acquire("skew", &LIMIT, 1, ms(0)).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        r.acquire("skew", &LIMIT, 1, ms(10_500)).await.unwrap(),
        RateDecision::Allowed { remaining: 0 }
    );
}

/// Keys are separate buckets, whatever their text.
pub async fn keys_are_separate_buckets<R: RateLimiter + ?Sized>(r: &R) {
    let keys = [
        "user:ada",
        "user:ada ",
        "user:ada\nline",
        "ip:2001:db8::1",
        "clé-ü-🧦",
        &"k".repeat(512),
    ];
    for k in keys {
        assert_eq!(
            r.acquire(k, &LIMIT, 3, ms(0)).await.unwrap(),
            RateDecision::Allowed { remaining: 0 },
            "{k:?} starts full"
        );
    }
}

/// Concurrent requests at one instant never take more than the bucket holds.
pub async fn concurrent_requests_never_exceed_the_capacity<R: RateLimiter + ?Sized>(r: &R) {
    let limit = RateLimit {
        capacity: 10,
        refill_per_sec: 1,
    };
    let calls = (0..50).map(|_| r.acquire("crowd", &limit, 1, ms(0)));
    let allowed = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|d| matches!(d, Ok(RateDecision::Allowed { .. })))
        .count();
    assert_eq!(allowed, 10);
}

/// Bad input is `Invalid` and counts nothing.
pub async fn bad_input_is_invalid<R: RateLimiter + ?Sized>(r: &R) {
    let zero = RateLimit {
        capacity: 0,
        refill_per_sec: 1,
    };
    for (key, limit, cost) in [
        ("bad", LIMIT, 0),
        ("bad", LIMIT, 4),
        ("", LIMIT, 1),
        ("bad", zero, 1),
    ] {
        let err = r.acquire(key, &limit, cost, ms(0)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "{key:?} {limit:?} {cost}");
    }
    let long = "k".repeat(513);
    assert_eq!(
        r.acquire(&long, &LIMIT, 1, ms(0)).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    assert_eq!(
        r.acquire("bad", &LIMIT, 3, ms(0)).await.unwrap(),
        RateDecision::Allowed { remaining: 0 },
        "the refused calls took nothing"
    );
}

/// Runs the [`RateLimiter`] conformance suite against `$make`.
#[macro_export]
macro_rules! rate_limiter_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            a_burst_up_to_capacity_then_a_wait => $crate::testkit::rate_limiter::a_burst_up_to_capacity_then_a_wait,
            refill_stops_at_capacity => $crate::testkit::rate_limiter::refill_stops_at_capacity,
            a_refusal_takes_nothing => $crate::testkit::rate_limiter::a_refusal_takes_nothing,
            time_running_backwards_adds_nothing => $crate::testkit::rate_limiter::time_running_backwards_adds_nothing,
            keys_are_separate_buckets => $crate::testkit::rate_limiter::keys_are_separate_buckets,
            concurrent_requests_never_exceed_the_capacity => $crate::testkit::rate_limiter::concurrent_requests_never_exceed_the_capacity,
            bad_input_is_invalid => $crate::testkit::rate_limiter::bad_input_is_invalid,
        );
    };
}
