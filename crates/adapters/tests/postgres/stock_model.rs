//! The PostgreSQL stock store against the in-memory one as a model: the same seeded random
//! operations (receipts, counts, reservations under reused ids, pins, adoptions, commits,
//! releases, expiries, sweeps, optimistic commits, shipments, a clock that moves) applied to
//! both, and after every step the same answer (value or error, events included) and the same
//! levels. Both call `inventory::rules`; this checks that the SQL around the rules keeps them.

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use inventory::{
    Error, HoldId, HoldStatus, InMemoryStockStore, ShortfallPolicy, StockConfig, StockKey,
    StockLevels, StockLine, StockMovements, StockStore,
};

use crate::harness::fresh;

/// xorshift64*: a seeded, reproducible stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
}

fn keys() -> Vec<(StockKey, StockConfig)> {
    let key = |s: &str| StockKey::new(Sku::new(s).unwrap(), LocationId::new("wh").unwrap());
    vec![
        (key("M-PLAIN"), StockConfig::default()),
        (
            key("M-SHARDED"),
            StockConfig {
                safety_stock: 1,
                ..StockConfig::sharded(4)
            },
        ),
        (
            key("M-BACKORDER"),
            StockConfig {
                backorder_limit: 2,
                ..StockConfig::sharded(2)
            },
        ),
    ]
}

/// What an answer looks like for comparison: the value, or the error's variant and kind.
fn shape<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {:?} {}", e.kind(), variant(e)),
    }
}

fn variant(e: &Error) -> String {
    match e {
        Error::InsufficientStock {
            requested,
            available,
            ..
        } => format!("insufficient {requested} {available}"),
        Error::Invalid { field, .. } => format!("invalid {field}"),
        // The same difference as in `holds`: a hold released by the model may be expired in
        // the database; either way it is over.
        Error::HoldExpired(id)
        | Error::HoldState {
            hold: id,
            state: "released" | "expired",
            ..
        } => format!("{id} is over"),
        other => format!("{other}"),
    }
}

async fn step(
    s: &dyn StockStore,
    rng_seed: u64,
    keys: &[(StockKey, StockConfig)],
    now: DateTime<Utc>,
    n: u64,
) -> String {
    let mut rng = Rng(rng_seed);
    let k = &rng.pick(keys).0.clone();
    let other = &rng.pick(keys).0.clone();
    let hold = HoldId::new(format!("h-{}", rng.below(10))).unwrap();
    let owner = format!("o-{}", rng.below(2));
    let q = 1 + i64::try_from(rng.below(3)).unwrap();
    let line = |k: &StockKey, quantity: i64| StockLine {
        key: k.clone(),
        quantity,
    };
    let mv = |name: &str| IdempotencyKey::new(format!("{name}-{n}")).unwrap();
    match rng.below(14) {
        0 | 1 => shape(&s.receive(&mv("rcv"), k, q * 2, now).await),
        2 => shape(
            &s.set_on_hand(&mv("cnt"), k, q * 3, "cycle count", now)
                .await,
        ),
        3..=5 => {
            let lines = if rng.below(3) == 0 {
                vec![line(k, q), line(other, 1)]
            } else {
                vec![line(k, q)]
            };
            let ttl = TimeDelta::minutes(5 + i64::try_from(rng.below(10)).unwrap());
            shape(&s.reserve(&hold, &lines, now + ttl, now).await)
        }
        6 => shape(&s.pin(&hold, now).await),
        7 => shape(&s.adopt(&hold, &owner, now).await),
        8 => shape(&s.commit(&hold, now).await),
        9 => shape(&s.release(&hold, now).await),
        10 => shape(&s.release_owned(&hold, &owner, now).await),
        11 => {
            let policy = if rng.below(2) == 0 {
                ShortfallPolicy::Refuse
            } else {
                ShortfallPolicy::Accept
            };
            shape(
                &s.commit_direct(&mv("direct"), &[line(k, q)], policy, now)
                    .await,
            )
        }
        12 => {
            if rng.below(2) == 0 {
                shape(&s.ship(&mv("ship"), &[line(k, 1)], now).await)
            } else {
                shape(&s.uncommit(&mv("uncommit"), &[line(k, 1)], now).await)
            }
        }
        _ => {
            // When a due hold is finalized is the store's choice (the model waits for a
            // sweep; the database finalizes the due holds of a key it locks anyway): the
            // effective states, compared after every step, are the contract.
            if rng.below(2) == 0 {
                shape(&s.expire(&hold, now).await.map(|_| ()))
            } else {
                shape(&s.sweep(now, 100).await.map(|_| ()))
            }
        }
    }
}

/// Every hold's status as callers must see it at `now`: a `held` hold past its expiry is
/// expired, finalized or not.
async fn holds(s: &dyn StockStore, now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..10 {
        let id = HoldId::new(format!("h-{i}")).unwrap();
        out.push(match s.hold(&id).await.unwrap() {
            None => "none".into(),
            // Released or expired, finalized or due: its units are back, and it is over. (A
            // release that finds a due hold may find it already expired by the database,
            // which finalizes due holds of a key it locks; the model finalizes lazily.)
            Some(h)
                if matches!(h.status, HoldStatus::Released | HoldStatus::Expired)
                    || (h.status == HoldStatus::Held && h.expires_at <= now) =>
            {
                format!("ended {:?} {:?}", h.lines, h.owner)
            }
            Some(h) => format!("{} {:?} {:?}", h.status.as_str(), h.lines, h.owner),
        });
    }
    out
}

async fn run(seed: u64, steps: u64) {
    let Some(pg) = fresh().await else { return };
    let db = pg.stock();
    let memory = InMemoryStockStore::new();
    let keys = keys();
    for (k, config) in &keys {
        db.configure(k, *config).await.unwrap();
        memory.configure(k, *config).await.unwrap();
    }
    let mut clock = Rng(seed);
    let mut now = t0();
    for n in 0..steps {
        now += TimeDelta::seconds(i64::try_from(clock.below(120)).unwrap());
        let op_seed = clock.next() | 1;
        let expected = step(&memory, op_seed, &keys, now, n).await;
        let got = step(&db, op_seed, &keys, now, n).await;
        assert_eq!(got, expected, "seed {seed}, step {n} at {now}");
        assert_eq!(
            holds(&db, now).await,
            holds(&memory, now).await,
            "seed {seed}, step {n}: holds"
        );
        for (k, _) in &keys {
            assert_eq!(
                db.level(k, now).await.unwrap(),
                memory.level(k, now).await.unwrap(),
                "seed {seed}, step {n}: level of {k}"
            );
        }
    }
}

#[tokio::test]
async fn the_database_store_answers_as_the_model_seed_1() {
    run(0x9e37_79b9_7f4a_7c15, 300).await;
}

#[tokio::test]
async fn the_database_store_answers_as_the_model_seed_2() {
    run(0xd1b5_4a32_d192_ed03, 300).await;
}

#[tokio::test]
async fn the_database_store_answers_as_the_model_seed_3() {
    run(0x8cb9_2ba7_2f3d_8dd7, 300).await;
}
