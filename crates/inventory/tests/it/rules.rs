//! The pure rules every stock store calls: the hold state machine as a table, and the stock-row
//! arithmetic as properties.

use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{LocationId, Sku};
use inventory::rules::{self, HoldAction, HoldOp, StockRow};
use inventory::*;
use proptest::prelude::*;

fn hold(status: HoldStatus, owner: Option<&str>) -> Hold {
    Hold {
        id: HoldId::new("h").unwrap(),
        lines: Vec::new(),
        status,
        expires_at: t0() + TimeDelta::minutes(15),
        owner: owner.map(str::to_owned),
    }
}

/// The verdict as a short word, for the table.
fn verdict(r: Result<HoldAction, Error>) -> &'static str {
    match r {
        Ok(HoldAction::Apply) => "apply",
        Ok(HoldAction::Unchanged) => "same",
        Ok(HoldAction::ExpireThenRefuse) => "expire",
        Err(Error::HoldExpired(_)) => "expired",
        Err(Error::HoldState { .. }) => "state",
        Err(Error::HoldConflict(_)) => "conflict",
        Err(Error::Invalid { .. }) => "invalid",
        Err(_) => "other",
    }
}

#[test]
fn the_hold_state_machine_is_this_table() {
    use HoldStatus::*;
    let live = t0() + TimeDelta::minutes(1);
    let due = t0() + TimeDelta::minutes(15);
    let later = t0() + TimeDelta::minutes(30);
    let ops: [(&str, HoldOp<'_>); 9] = [
        ("reserve", HoldOp::Reserve { same_lines: true }),
        ("extend", HoldOp::Extend { expires_at: later }),
        ("pin", HoldOp::Pin),
        ("adopt", HoldOp::Adopt { owner: "me" }),
        ("commit", HoldOp::Commit),
        ("release", HoldOp::Release),
        ("release_owned", HoldOp::ReleaseOwned { owner: "me" }),
        ("expire", HoldOp::Expire),
        ("reserve_other", HoldOp::Reserve { same_lines: false }),
    ];
    // (status, owner, now) → one verdict per op, in the order above.
    #[rustfmt::skip]
    let table: [(HoldStatus, Option<&str>, _, [&str; 9]); 9] = [
        (Held, None, live,            ["same", "apply", "apply", "apply", "apply", "apply", "same", "same", "conflict"]),
        (Held, None, due,             ["same", "expire", "expire", "expire", "expire", "apply", "same", "apply", "conflict"]),
        (Pinned, None, due,           ["same", "state", "same", "state", "apply", "apply", "same", "same", "conflict"]),
        (Pinned, Some("me"), due,     ["same", "state", "same", "same", "apply", "apply", "apply", "same", "conflict"]),
        (Pinned, Some("other"), due,  ["same", "state", "same", "state", "apply", "apply", "same", "same", "conflict"]),
        (Committed, None, due,        ["same", "state", "state", "state", "same", "state", "same", "same", "conflict"]),
        (Committed, Some("me"), live, ["same", "state", "state", "same", "same", "state", "state", "same", "conflict"]),
        (Released, None, live,        ["state", "state", "state", "state", "state", "same", "same", "same", "conflict"]),
        (Expired, None, live,         ["expired", "expired", "expired", "expired", "expired", "same", "same", "same", "conflict"]),
    ];
    for (status, owner, now, want) in table {
        let h = hold(status, owner);
        for ((name, op), want) in ops.iter().zip(want) {
            assert_eq!(
                verdict(rules::decide(h.state(), *op, now)),
                want,
                "{name} on a {status:?} hold owned by {owner:?}"
            );
        }
    }
    // An extension may not move the expiry earlier.
    let h = hold(Held, None);
    let earlier = HoldOp::Extend {
        expires_at: t0() + TimeDelta::minutes(5),
    };
    assert_eq!(verdict(rules::decide(h.state(), earlier, live)), "invalid");
}

#[derive(Debug, Clone)]
enum RowOp {
    Receive(i64),
    Reserve(i64),
    CommitHeld(i64),
    ReleaseHeld(i64),
    Direct(i64),
    Ship(i64),
    Uncommit(i64),
}

fn row_op() -> impl Strategy<Value = RowOp> {
    prop_oneof![
        (1i64..5).prop_map(RowOp::Receive),
        (1i64..5).prop_map(RowOp::Reserve),
        (1i64..5).prop_map(RowOp::CommitHeld),
        (1i64..5).prop_map(RowOp::ReleaseHeld),
        (1i64..5).prop_map(RowOp::Direct),
        (1i64..5).prop_map(RowOp::Ship),
        (1i64..5).prop_map(RowOp::Uncommit),
    ]
}

proptest! {
    /// Whatever the sequence, holds and refused optimistic commits never promise a unit beyond
    /// on hand − safety stock + the backorder allowance; refusals change nothing; held and
    /// committed never go negative.
    #[test]
    fn the_rules_never_promise_beyond_stock(
        ops in proptest::collection::vec(row_op(), 1..80),
        safety in 0i64..3,
        backorder in 0i64..3,
    ) {
        let key = StockKey::new(Sku::new("R").unwrap(), LocationId::new("w").unwrap());
        let config = StockConfig { safety_stock: safety, backorder_limit: backorder, ..StockConfig::default() };
        let mut row = StockRow::new(config);
        for op in ops {
            let before = row;
            let result = match op {
                RowOp::Receive(q) => rules::receive(q),
                RowOp::Reserve(q) => rules::reserve(&key, &row, q),
                // A store only converts or returns units a hold really holds.
                RowOp::CommitHeld(q) if q <= row.held => Ok(rules::commit_held(q)),
                RowOp::ReleaseHeld(q) if q <= row.held => Ok(rules::release_held(q)),
                RowOp::CommitHeld(_) | RowOp::ReleaseHeld(_) => continue,
                RowOp::Direct(q) => rules::commit_direct(&key, &row, q, ShortfallPolicy::Refuse).map(|(d, short)| {
                    assert_eq!(short, 0);
                    d
                }),
                RowOp::Ship(q) => rules::ship(&row, q),
                RowOp::Uncommit(q) => rules::uncommit(&row, q),
            };
            match result {
                Ok(delta) => row.apply(delta),
                Err(e) => {
                    prop_assert!(matches!(e, Error::InsufficientStock { .. } | Error::Invalid { .. }), "{e}");
                    prop_assert_eq!(row, before);
                }
            }
            // On hand itself may go below zero: units sold on backorder can ship before their
            // receipt is recorded (drift for reconciliation, not a refusal).
            prop_assert!(row.held >= 0 && row.committed >= 0, "{:?}", row);
            prop_assert!(
                row.held + row.committed == 0 || row.held + row.committed <= row.on_hand - safety + backorder,
                "promised beyond stock: {:?}", row
            );
            prop_assert_eq!(row.level(1).on_hand, row.available() + row.held + row.committed + safety);
        }
    }
}
