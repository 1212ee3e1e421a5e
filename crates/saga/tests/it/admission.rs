//! Properties of the flash-sale queue over random runs of joins (before and after the start,
//! repeated) and admissions (at random instants): every admission batch is exactly the first
//! of those waiting by the rule (the crowd that joined before the start in lottery order, then
//! later arrivals in arrival order), as many as the rate has earned by then and never beyond
//! the spots; nobody is admitted twice; and once the spots are gone, everyone else is told so.

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::UserId;
use commerce_core::testkit::t0;
use futures::executor::block_on;
use proptest::prelude::*;
use saga::{Admission, AdmissionQueue, InMemoryAdmissionQueue, SaleConfig, lottery_rank};

#[derive(Debug, Clone)]
enum Op {
    Join { shopper: u16, at_ms: i64 },
    Admit { at_ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..60, -5_000i64..5_000).prop_map(|(shopper, at_ms)| Op::Join { shopper, at_ms }),
        1 => (0i64..10_000).prop_map(|at_ms| Op::Admit { at_ms }),
    ]
}

fn at(ms: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(ms)
}

proptest! {
    #[test]
    fn every_batch_is_the_head_of_the_line_by_the_rule(
        spots in 1u32..30,
        rate in 1u32..20,
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let q = InMemoryAdmissionQueue::new();
        let config = SaleConfig {
            starts_at: t0(),
            spots,
            admit_per_sec: rate,
            admission_ttl: TimeDelta::minutes(5),
            seed,
        };
        block_on(q.open("prop", &config)).unwrap();
        // The model: who waits, keyed by the rule (before the start: lottery rank; after:
        // arrival number), and who got in.
        let mut waiting: Vec<((u8, u64, u64), UserId)> = Vec::new();
        let mut admitted: Vec<UserId> = Vec::new();
        let mut arrivals = 0u64;
        for op in ops {
            let full = u32::try_from(admitted.len()).unwrap() >= spots;
            match op {
                Op::Join { shopper, at_ms } => {
                    let u = UserId::new(format!("u{shopper}")).unwrap();
                    let standing = block_on(q.join("prop", &u, at(at_ms))).unwrap();
                    if admitted.contains(&u) {
                        prop_assert!(matches!(standing, Admission::Admitted { .. }), "admitted");
                    } else if full {
                        prop_assert_eq!(standing, Admission::Closed);
                    } else {
                        prop_assert!(matches!(standing, Admission::Waiting { .. }), "waiting");
                        if !waiting.iter().any(|(_, w)| *w == u) {
                            let key = if at_ms < 0 {
                                (0, lottery_rank(seed, &u), 0)
                            } else {
                                arrivals += 1;
                                (1, 0, arrivals)
                            };
                            waiting.push((key, u));
                        }
                    }
                }
                Op::Admit { at_ms } => {
                    let batch = block_on(q.admit("prop", at(at_ms))).unwrap();
                    let earned = config.earned(at(at_ms));
                    let due = earned.saturating_sub(u32::try_from(admitted.len()).unwrap());
                    let n = waiting.len().min(usize::try_from(due).unwrap());
                    waiting.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
                    let expected: Vec<UserId> = waiting.drain(..n).map(|(_, u)| u).collect();
                    prop_assert_eq!(&batch, &expected);
                    for u in &batch {
                        prop_assert!(!admitted.contains(u), "{} admitted twice", u);
                    }
                    admitted.extend(batch);
                    prop_assert!(u32::try_from(admitted.len()).unwrap() <= spots);
                }
            }
        }
        if u32::try_from(admitted.len()).unwrap() >= spots {
            for (_, u) in &waiting {
                prop_assert_eq!(block_on(q.status("prop", u)).unwrap(), Some(Admission::Closed));
            }
        }
    }
}
