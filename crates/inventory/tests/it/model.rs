//! Model-based property test: random sequences of operations against the in-memory store and a
//! simple reference model; outcomes and states must agree after every step.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use futures::executor::block_on;
use inventory::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        hold: usize,
        lines: Vec<(usize, i64)>,
        ttl_min: i64,
    },
    Extend {
        hold: usize,
        by_min: i64,
    },
    Pin(usize),
    Commit(usize),
    Release(usize),
    Expire(usize),
    Sweep,
    Restock {
        key: usize,
        qty: i64,
    },
    Count {
        key: usize,
        counted: i64,
    },
    Direct {
        lines: Vec<(usize, i64)>,
        accept: bool,
    },
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let lines = proptest::collection::vec((0usize..3, 1i64..4), 1..4);
    prop_oneof![
        6 => (0usize..8, lines.clone(), 1i64..30).prop_map(|(hold, lines, ttl_min)| Op::Reserve { hold, lines, ttl_min }),
        1 => (0usize..8, 0i64..20).prop_map(|(hold, by_min)| Op::Extend { hold, by_min }),
        2 => (0usize..8).prop_map(Op::Pin),
        2 => (0usize..8).prop_map(Op::Commit),
        2 => (0usize..8).prop_map(Op::Release),
        1 => (0usize..8).prop_map(Op::Expire),
        1 => Just(Op::Sweep),
        2 => (0usize..3, 1i64..5).prop_map(|(key, qty)| Op::Restock { key, qty }),
        1 => (0usize..3, 0i64..12).prop_map(|(key, counted)| Op::Count { key, counted }),
        1 => (lines, any::<bool>()).prop_map(|(lines, accept)| Op::Direct { lines, accept }),
        3 => (1i64..20).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
struct KeyModel {
    on_hand: i64,
    committed: i64,
    safety: i64,
    backorder: i64,
}

#[derive(Debug, Clone)]
struct HoldModel {
    lines: Vec<(usize, i64)>,
    status: HoldStatus,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Model {
    keys: Vec<KeyModel>,
    holds: BTreeMap<usize, HoldModel>,
}

impl Model {
    fn live(h: &HoldModel, now: DateTime<Utc>) -> bool {
        h.status == HoldStatus::Pinned || (h.status == HoldStatus::Held && h.expires_at > now)
    }
    fn held(&self, key: usize, now: DateTime<Utc>) -> i64 {
        self.holds
            .values()
            .filter(|h| Self::live(h, now))
            .flat_map(|h| &h.lines)
            .filter(|(k, _)| *k == key)
            .map(|(_, q)| q)
            .sum()
    }
    fn available(&self, key: usize, now: DateTime<Utc>) -> i64 {
        let k = self.keys[key];
        k.on_hand - k.committed - self.held(key, now) - k.safety
    }
    /// Which error kind (or none) the store must return.
    fn check_live(&mut self, hold: usize, now: DateTime<Utc>) -> Result<(), &'static str> {
        match self.holds.get_mut(&hold) {
            None => Err("unknown"),
            Some(h) => match h.status {
                HoldStatus::Held if h.expires_at <= now => {
                    h.status = HoldStatus::Expired;
                    Err("expired")
                }
                HoldStatus::Held => Ok(()),
                HoldStatus::Expired => Err("expired"),
                _ => Err("state"),
            },
        }
    }
}

fn summed(lines: &[(usize, i64)]) -> Vec<(usize, i64)> {
    let mut m: BTreeMap<usize, i64> = BTreeMap::new();
    for (k, q) in lines {
        *m.entry(*k).or_insert(0) += q;
    }
    m.into_iter().collect()
}

fn kind<T>(r: &Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::InsufficientStock { .. }) => "insufficient",
        Err(Error::UnknownHold(_)) => "unknown",
        Err(Error::HoldConflict(_)) => "conflict",
        Err(Error::HoldExpired(_)) => "expired",
        Err(Error::HoldState { .. }) => "state",
        Err(Error::Invalid { .. }) => "invalid",
        Err(_) => "other",
    }
}

fn keys() -> Vec<(StockKey, StockConfig)> {
    let k = |s: &str| StockKey::new(Sku::new(s).unwrap(), LocationId::new("wh").unwrap());
    vec![
        (k("PLAIN"), StockConfig::default()),
        (k("HOT"), StockConfig::sharded(4)),
        (
            k("SAFE"),
            StockConfig {
                safety_stock: 1,
                backorder_limit: 2,
                ..StockConfig::sharded(2)
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let store = InMemoryStockStore::new();
        let keys = keys();
        let mut model = Model::default();
        for (i, (k, c)) in keys.iter().enumerate() {
            block_on(store.configure(k, *c)).unwrap();
            let _ = block_on(store.receive(&IdempotencyKey::new(format!("init-{i}")).unwrap(), k, 5, t0())).unwrap();
            model.keys.push(KeyModel { on_hand: 5, committed: 0, safety: c.safety_stock, backorder: c.backorder_limit });
        }
        let hid = |h: usize| HoldId::new(format!("hold-{h}")).unwrap();
        let to_lines = |lines: &[(usize, i64)]| -> Vec<StockLine> {
            lines.iter().map(|(k, q)| StockLine { key: keys[*k].0.clone(), quantity: *q }).collect()
        };
        let mut now = t0();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Reserve { hold, lines, ttl_min } => {
                    let expires = now + TimeDelta::minutes(*ttl_min);
                    let got = block_on(store.reserve(&hid(*hold), &to_lines(lines), expires, now));
                    let demand = summed(lines);
                    let want = match model.holds.get(hold) {
                        Some(h) if h.lines != demand => "conflict",
                        Some(h) if h.status == HoldStatus::Released => "state",
                        Some(h) if h.status == HoldStatus::Expired => "expired",
                        Some(_) => "ok",
                        None if demand.iter().all(|(k, q)| model.available(*k, now) + model.keys[*k].backorder >= *q) => {
                            model.holds.insert(*hold, HoldModel { lines: demand, status: HoldStatus::Held, expires_at: expires });
                            "ok"
                        }
                        None => "insufficient",
                    };
                    prop_assert_eq!(kind(&got), want, "step {}: {:?}", step, op);
                }
                Op::Extend { hold, by_min } => {
                    let to = model.holds.get(hold).map_or(now, |h| h.expires_at) + TimeDelta::minutes(*by_min);
                    let got = block_on(store.extend(&hid(*hold), to, now));
                    let want = match model.check_live(*hold, now) {
                        Ok(()) => {
                            if let Some(h) = model.holds.get_mut(hold) { h.expires_at = to; }
                            "ok"
                        }
                        Err(e) => e,
                    };
                    prop_assert_eq!(kind(&got), want, "step {}: {:?}", step, op);
                }
                Op::Pin(hold) => {
                    let got = block_on(store.pin(&hid(*hold), now));
                    let want = if model.holds.get(hold).is_some_and(|h| h.status == HoldStatus::Pinned) {
                        "ok"
                    } else {
                        match model.check_live(*hold, now) {
                            Ok(()) => {
                                if let Some(h) = model.holds.get_mut(hold) { h.status = HoldStatus::Pinned; }
                                "ok"
                            }
                            Err(e) => e,
                        }
                    };
                    prop_assert_eq!(kind(&got), want, "step {}: {:?}", step, op);
                }
                Op::Commit(hold) => {
                    let got = block_on(store.commit(&hid(*hold), now));
                    let status = model.holds.get(hold).map(|h| h.status);
                    let want = match status {
                        Some(HoldStatus::Committed) => "ok",
                        Some(HoldStatus::Pinned) => "commit",
                        _ => match model.check_live(*hold, now) { Ok(()) => "commit", Err(e) => e },
                    };
                    let want = if want == "commit" {
                        let h = model.holds.get_mut(hold).unwrap();
                        h.status = HoldStatus::Committed;
                        for (k, q) in h.lines.clone() { model.keys[k].committed += q; }
                        "ok"
                    } else { want };
                    prop_assert_eq!(kind(&got), want, "step {}: {:?}", step, op);
                }
                Op::Release(hold) => {
                    let got = block_on(store.release(&hid(*hold), now));
                    let want = match model.holds.get_mut(hold) {
                        None => "unknown",
                        Some(h) => match h.status {
                            HoldStatus::Committed => "state",
                            HoldStatus::Released | HoldStatus::Expired => "ok",
                            HoldStatus::Held | HoldStatus::Pinned => { h.status = HoldStatus::Released; "ok" }
                        },
                    };
                    prop_assert_eq!(kind(&got), want, "step {}: {:?}", step, op);
                }
                Op::Expire(hold) => {
                    let got = block_on(store.expire(&hid(*hold), now));
                    match model.holds.get_mut(hold) {
                        None => prop_assert_eq!(kind(&got), "unknown"),
                        Some(h) => {
                            let due = h.status == HoldStatus::Held && h.expires_at <= now;
                            if due { h.status = HoldStatus::Expired; }
                            prop_assert_eq!(got.unwrap(), due, "step {}: {:?}", step, op);
                        }
                    }
                }
                Op::Sweep => {
                    let swept = block_on(store.sweep(now, 1_000)).unwrap();
                    let mut want: Vec<String> = Vec::new();
                    for (id, h) in model.holds.iter_mut() {
                        if h.status == HoldStatus::Held && h.expires_at <= now {
                            h.status = HoldStatus::Expired;
                            want.push(hid(*id).to_string());
                        }
                    }
                    let mut got: Vec<String> = swept.expired.iter().map(ToString::to_string).collect();
                    got.sort();
                    want.sort();
                    prop_assert_eq!(got, want, "step {}", step);
                }
                Op::Restock { key, qty } => {
                    let m = IdempotencyKey::new(format!("restock-{step}")).unwrap();
                    let _ = block_on(store.receive(&m, &keys[*key].0, *qty, now)).unwrap();
                    model.keys[*key].on_hand += qty;
                }
                Op::Count { key, counted } => {
                    let m = IdempotencyKey::new(format!("count-{step}")).unwrap();
                    let _ = block_on(store.set_on_hand(&m, &keys[*key].0, *counted, "count", now)).unwrap();
                    model.keys[*key].on_hand = *counted;
                }
                Op::Direct { lines, accept } => {
                    let m = IdempotencyKey::new(format!("direct-{step}")).unwrap();
                    let policy = if *accept { ShortfallPolicy::Accept } else { ShortfallPolicy::Refuse };
                    let got = block_on(store.commit_direct(&m, &to_lines(lines), policy, now));
                    let demand = summed(lines);
                    // Like a reservation, a direct commit may use the backorder allowance.
                    let room = |m: &Model, k: usize| m.available(k, now) + m.keys[k].backorder;
                    let short = demand.iter().any(|(k, q)| room(&model, *k) < *q);
                    if short && !accept {
                        prop_assert_eq!(kind(&got), "insufficient", "step {}", step);
                    } else {
                        let shortfalls = got.unwrap().shortfalls.len();
                        let want = demand.iter().filter(|(k, q)| room(&model, *k) < *q).count();
                        prop_assert_eq!(shortfalls, want);
                        for (k, q) in demand { model.keys[k].committed += q; }
                    }
                }
                Op::Advance(m) => now += TimeDelta::minutes(*m),
            }
            // After every step the states agree.
            for (i, (k, _)) in keys.iter().enumerate() {
                let level = block_on(store.level(k, now)).unwrap();
                prop_assert_eq!(level.on_hand, model.keys[i].on_hand, "on_hand of {} after step {}", k, step);
                prop_assert_eq!(level.committed, model.keys[i].committed, "committed of {} after step {}", k, step);
                prop_assert_eq!(level.held, model.held(i, now), "held of {} after step {}", k, step);
                prop_assert_eq!(level.available, model.available(i, now), "available of {} after step {}", k, step);
                prop_assert_eq!(level.on_hand, level.available + level.held + level.committed + level.safety_stock);
            }
            for (h, m) in &model.holds {
                let got = block_on(store.hold(&hid(*h))).unwrap().map(|x| x.status);
                // A held hold past its time reads as held until something expires it.
                prop_assert_eq!(got, Some(m.status), "status of hold {} after step {}", h, step);
            }
        }
    }
}
