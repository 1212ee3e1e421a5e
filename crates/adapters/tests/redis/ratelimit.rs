//! The rate limiter on a single node and on the cluster: the conformance suite, the script
//! against the rule it transcribes, concurrency, and a server killed and restarted.

use std::sync::Arc;
use std::time::Duration;

use adapters::redis::Redis;
use chrono::TimeDelta;
use commerce_core::ports::{Bucket, take_tokens};
use commerce_core::testkit::t0;
use commerce_core::{ErrorKind, RateDecision, RateLimit, RateLimiter};

use crate::harness::{cluster, server, single, until_up};

mod single_node {
    use super::*;
    commerce_core::rate_limiter_conformance!({
        let Some(r) = single().await else { return };
        r.rate_limiter()
    });
}

mod on_cluster {
    use super::*;
    commerce_core::rate_limiter_conformance!({
        let Some(r) = cluster().await else { return };
        r.rate_limiter()
    });
}

/// xorshift64*: a seeded, reproducible stream.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The script decides exactly as `take_tokens`, the rule it transcribes, over seeded runs of
/// costs, limits and clocks (jumps forward, backwards, large and small).
async fn script_matches_the_rule(redis: Redis) {
    let limiter = redis.rate_limiter();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for run in 0..20 {
        let limit = RateLimit {
            capacity: u32::try_from(1 + rng(&mut seed) % 1_000).unwrap(),
            refill_per_sec: u32::try_from(1 + rng(&mut seed) % 100_000).unwrap(),
        };
        let key = format!("rule-{run}");
        let mut bucket: Option<Bucket> = None;
        let mut now = t0().timestamp_millis();
        for step in 0..100 {
            now += i64::try_from(rng(&mut seed) % 3_000).unwrap() - 500;
            let cost = u32::try_from(1 + rng(&mut seed) % u64::from(limit.capacity)).unwrap();
            let (next, expected) = take_tokens(bucket, &limit, cost, now);
            let at = chrono::DateTime::from_timestamp_millis(now).unwrap();
            let got = limiter.acquire(&key, &limit, cost, at).await.unwrap();
            assert_eq!(
                got, expected,
                "run {run}, step {step}, {limit:?}, cost {cost}"
            );
            bucket = Some(next);
        }
    }
}

#[tokio::test]
async fn the_script_matches_the_rule_on_a_single_node() {
    let Some(r) = single().await else { return };
    script_matches_the_rule(r).await;
}

#[tokio::test]
async fn the_script_matches_the_rule_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    script_matches_the_rule(r).await;
}

/// Many instances' requests at once, spread over keys on every node: each bucket gives exactly
/// its capacity.
async fn crowds_get_exactly_the_capacity(redis: Redis) {
    let limit = RateLimit {
        capacity: 100,
        refill_per_sec: 1,
    };
    let limiter = Arc::new(redis.rate_limiter());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut allowed = vec![0u32; 8];
                for i in 0..200 {
                    let k = (t + i) % 8;
                    let d = limiter
                        .acquire(&format!("crowd-{k}"), &limit, 1, t0())
                        .await
                        .unwrap();
                    if matches!(d, RateDecision::Allowed { .. }) {
                        allowed[k] += 1;
                    }
                }
                allowed
            })
        })
        .collect();
    let mut total = vec![0u32; 8];
    for t in tasks {
        for (k, n) in t.await.unwrap().into_iter().enumerate() {
            total[k] += n;
        }
    }
    assert_eq!(total, vec![100; 8], "3,200 requests over 8 buckets of 100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crowds_get_exactly_the_capacity_on_a_single_node() {
    let Some(r) = single().await else { return };
    crowds_get_exactly_the_capacity(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crowds_get_exactly_the_capacity_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    crowds_get_exactly_the_capacity(r).await;
}

/// The server dies (SIGKILL) and comes back: calls in between fail as `Unavailable` — quickly,
/// never hanging — and the same handle works again once it is back, with no restart of the
/// caller.
#[tokio::test]
async fn a_killed_server_is_unavailable_then_used_again_when_back() {
    let port = 7_011;
    let Some(mut first) = server(port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let redis = until_up(&url).await;
    let limiter = redis.rate_limiter();
    let limit = RateLimit {
        capacity: 5,
        refill_per_sec: 1,
    };
    assert!(matches!(
        limiter.acquire("k", &limit, 1, t0()).await.unwrap(),
        RateDecision::Allowed { remaining: 4 }
    ));
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    for _ in 0..3 {
        let err = limiter.acquire("k", &limit, 1, t0()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    }
    let mut second = server(port).unwrap();
    let _probe = until_up(&url).await;
    // The old handle reconnects on its own (the new server starts empty: a full bucket).
    let mut answer = None;
    for _ in 0..100 {
        match limiter
            .acquire("k", &limit, 1, t0() + TimeDelta::seconds(1))
            .await
        {
            Ok(d) => {
                answer = Some(d);
                break;
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(answer, Some(RateDecision::Allowed { remaining: 4 }));
    second.kill().unwrap();
    let _ = second.wait();
}
