//! Flash sale and throttling on Redis, 32 concurrent clients over one multiplexed connection,
//! beside `redis-benchmark` with 32 clients in the same run (`EVAL "return 1"`, the cheapest
//! script: one at a time per client, and pipelined 16 deep as a multiplexed connection sends):
//! - 2,000 shoppers join a sale of 100 spots at once, tickers admit: exactly 100 admitted;
//!   join and status decisions per second;
//! - rate-limiter decisions per second (token bucket, one script per request).
//!
//! `cargo bench -p benches --features redis --bench redis_flash`

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    reason = "rates for display only"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::redis::Redis;
use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{RateLimit, RateLimiter, UserId};
use saga::{Admission, AdmissionQueue, SaleConfig};

use benches::redis_load::{CLIENTS, per_second, redis_benchmark};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let measured = std::env::args().any(|a| a == "--bench");
    let run = if measured {
        Duration::from_secs(5)
    } else {
        println!("smoke run (use `cargo bench` for figures)");
        Duration::from_millis(200)
    };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = match Redis::connect(&url).await {
        Ok(r) => r.with_namespace(&format!("bench-{}", std::process::id())),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "Redis is required under CI=true: {e}");
            println!("skipped: Redis unavailable ({e}); set REDIS_URL");
            return;
        }
    };

    // The drop: 2,000 shoppers at once, 100 spots, 10 tickers admitting at once.
    let queue = Arc::new(redis.admission_queue());
    let config = SaleConfig {
        starts_at: t0(),
        spots: 100,
        admit_per_sec: 1_000,
        admission_ttl: TimeDelta::minutes(10),
        seed: 7,
    };
    queue.open("drop", &config).await.expect("open");
    let start = Instant::now();
    let joins: Vec<_> = (0..2_000)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let shopper = UserId::new(format!("shopper-{i}")).expect("id");
                queue
                    .join("drop", &shopper, t0() - TimeDelta::seconds(1))
                    .await
                    .expect("join")
            })
        })
        .collect();
    for j in joins {
        assert!(matches!(j.await.expect("join"), Admission::Waiting { .. }));
    }
    let joined_in = start.elapsed();
    let tickers: Vec<_> = (0..10)
        .map(|t| {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .admit("drop", t0() + TimeDelta::milliseconds(20 * t + 50))
                    .await
                    .expect("admit")
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tickers {
        admitted += t.await.expect("ticker").len();
    }
    admitted += queue
        .admit("drop", t0() + TimeDelta::seconds(60))
        .await
        .expect("admit")
        .len();
    assert_eq!(admitted, 100, "exactly the spots");

    // Decisions per second: shoppers polling where they stand.
    let polls = {
        let queue = queue.clone();
        per_second(run, move |c, i| {
            let queue = queue.clone();
            async move {
                let shopper =
                    UserId::new(format!("shopper-{}", (c * 7919 + i) % 2_000)).expect("id");
                let _ = queue.status("drop", &shopper).await.expect("status");
            }
        })
        .await
    };
    let limiter = Arc::new(redis.rate_limiter());
    let throttled = {
        let limiter = limiter.clone();
        per_second(run, move |c, i| {
            let limiter = limiter.clone();
            async move {
                let limit = RateLimit {
                    capacity: 100,
                    refill_per_sec: 50,
                };
                let key = format!("ip-{}", (c * 31 + i) % 1_000);
                let now = t0() + TimeDelta::milliseconds(i64::try_from(i).unwrap_or(0));
                let _ = limiter
                    .acquire(&key, &limit, 1, now)
                    .await
                    .expect("acquire");
            }
        })
        .await
    };
    // The server's limits here: a script round trip per client at a time, and pipelined 16
    // deep (as one multiplexed connection sends them).
    let (eval, eval_pipelined) = if measured {
        (
            redis_benchmark(&["eval", "return 1", "0"]).map(|l| l.rps),
            redis_benchmark(&["-P", "16", "eval", "return 1", "0"]).map(|l| l.rps),
        )
    } else {
        (None, None)
    };
    println!(
        "Redis, {CLIENTS} concurrent clients, {} s per figure:",
        run.as_secs_f64()
    );
    println!(
        "  2,000 joins of a 100-spot sale: {:.0} ms ({:.0} joins/s); admitted {admitted}",
        joined_in.as_secs_f64() * 1e3,
        2_000.0 / joined_in.as_secs_f64()
    );
    println!("  standing decisions/s (status polls): {polls:>9.0}");
    println!("  rate-limiter decisions/s:            {throttled:>9.0}");
    if let (Some(eval), Some(piped)) = (eval, eval_pipelined) {
        println!(
            "  redis-benchmark EVAL 'return 1', 32 clients: {eval:.0}/s; pipelined 16 deep: {piped:.0}/s"
        );
        println!(
            "  status ÷ pipelined EVAL: {:.2}; rate limiter ÷ pipelined EVAL: {:.2}",
            polls / piped,
            throttled / piped
        );
    }
}
