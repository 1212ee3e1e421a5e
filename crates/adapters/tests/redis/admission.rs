//! The flash-sale queue on a single node and on the cluster: the conformance suite, and the
//! same lottery order as the in-memory queue.

use crate::harness::{cluster, single};

mod single_node {
    use super::*;
    saga::admission_queue_conformance!({
        let Some(r) = single().await else { return };
        r.admission_queue()
    });
}

mod on_cluster {
    use super::*;
    saga::admission_queue_conformance!({
        let Some(r) = cluster().await else { return };
        r.admission_queue()
    });
}

/// The Redis queue answers exactly as the in-memory one (the model) over seeded runs of joins,
/// polls and admissions, on a single node and on the cluster.
async fn answers_as_the_model(redis: adapters::redis::Redis) {
    use chrono::TimeDelta;
    use commerce_core::UserId;
    use commerce_core::testkit::t0;
    use saga::{AdmissionQueue, InMemoryAdmissionQueue, SaleConfig};

    let db = redis.admission_queue();
    for run in 0u64..3 {
        let model = InMemoryAdmissionQueue::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ run;
        let mut next = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let config = SaleConfig {
            starts_at: t0(),
            spots: 1 + u32::try_from(next() % 40).unwrap(),
            admit_per_sec: 1 + u32::try_from(next() % 30).unwrap(),
            admission_ttl: TimeDelta::minutes(5),
            seed: next(),
        };
        let sale = format!("model-{run}");
        db.open(&sale, &config).await.unwrap();
        model.open(&sale, &config).await.unwrap();
        for step in 0..300 {
            let shopper = UserId::new(format!("u{}", next() % 80)).unwrap();
            let when =
                t0() + TimeDelta::milliseconds(i64::try_from(next() % 12_000).unwrap() - 4_000);
            match next() % 4 {
                0 | 1 => assert_eq!(
                    db.join(&sale, &shopper, when).await.unwrap(),
                    model.join(&sale, &shopper, when).await.unwrap(),
                    "run {run} step {step}: join"
                ),
                2 => assert_eq!(
                    db.status(&sale, &shopper).await.unwrap(),
                    model.status(&sale, &shopper).await.unwrap(),
                    "run {run} step {step}: status"
                ),
                _ => assert_eq!(
                    db.admit(&sale, when).await.unwrap(),
                    model.admit(&sale, when).await.unwrap(),
                    "run {run} step {step}: admit"
                ),
            }
        }
    }
}

#[tokio::test]
async fn answers_as_the_model_on_a_single_node() {
    let Some(r) = single().await else { return };
    answers_as_the_model(r).await;
}

#[tokio::test]
async fn answers_as_the_model_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    answers_as_the_model(r).await;
}
