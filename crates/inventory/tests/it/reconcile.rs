//! Reconciliation: drift per key, alerts above the threshold, corrections as movements.

use commerce_core::testkit::t0;
use commerce_core::{DomainEvent, IdempotencyKey, LocationId, Sku};
use futures::executor::block_on;
use inventory::*;

fn key(sku: &str) -> StockKey {
    StockKey::new(Sku::new(sku).unwrap(), LocationId::new("wh").unwrap())
}

#[tokio::test]
async fn drift_is_reported_alerted_and_corrected_once() {
    let store = InMemoryStockStore::new();
    let units = [
        ("REC-A", 1_000),
        ("REC-B", 1_000),
        ("REC-C", 0),
        ("REC-D", 50),
    ];
    for (sku, n) in units {
        block_on(store.configure(&key(sku), StockConfig::default())).unwrap();
        if n > 0 {
            let _ = block_on(store.receive(
                &IdempotencyKey::new(format!("po-{sku}")).unwrap(),
                &key(sku),
                n,
                t0(),
            ))
            .unwrap();
        }
    }
    let counts = vec![
        PhysicalCount {
            key: key("REC-A"),
            counted: 995,
        }, // 0.5 %: reported, no alert
        PhysicalCount {
            key: key("REC-B"),
            counted: 980,
        }, // 2 %: alert
        PhysicalCount {
            key: key("REC-C"),
            counted: 3,
        }, // found stock the system thought gone
        PhysicalCount {
            key: key("REC-D"),
            counted: 50,
        }, // matches: not listed
    ];
    let report = reconcile(
        &store,
        "count-2026-11-26",
        &counts,
        ReconcileConfig::default(),
        t0(),
    )
    .await
    .unwrap();
    let drift: Vec<(String, i64, bool)> = report
        .drifts
        .iter()
        .map(|d| (d.key.sku.to_string(), d.drift, d.alert))
        .collect();
    assert_eq!(
        drift,
        [
            ("REC-A".into(), -5, false),
            ("REC-B".into(), -20, true),
            ("REC-C".into(), 3, true)
        ]
    );
    assert_eq!(report.alerts().count(), 2);
    assert!(
        report
            .changes
            .events
            .iter()
            .any(|e| matches!(e, DomainEvent::BackInStock { available: 3, .. }))
    );
    for (sku, want) in [("REC-A", 995), ("REC-B", 980), ("REC-C", 3), ("REC-D", 50)] {
        assert_eq!(
            block_on(store.level(&key(sku), t0())).unwrap().on_hand,
            want
        );
    }
    // Re-running the same run changes nothing more; the correction is a ledger entry.
    let again = reconcile(
        &store,
        "count-2026-11-26",
        &counts,
        ReconcileConfig::default(),
        t0(),
    )
    .await
    .unwrap();
    assert!(again.drifts.is_empty());
    let moves = store.movements(&key("REC-B")).await.unwrap();
    assert_eq!(
        moves.last().map(|m| (m.on_hand_delta, m.reason.as_str())),
        Some((-20, "correction: cycle count"))
    );

    // Report-only mode with a custom threshold changes nothing.
    let dry = ReconcileConfig {
        alert_threshold_bp: 500,
        apply: false,
    };
    let counts = vec![PhysicalCount {
        key: key("REC-A"),
        counted: 900,
    }];
    let report = reconcile(&store, "dry", &counts, dry, t0()).await.unwrap();
    assert!(report.drifts[0].alert, "95 of 995 is above 5 %");
    assert_eq!(
        block_on(store.level(&key("REC-A"), t0())).unwrap().on_hand,
        995
    );
}

#[tokio::test]
async fn a_count_below_what_is_promised_blocks_sales_until_stock_returns() {
    let store = InMemoryStockStore::new();
    let k = key("REC-OWED");
    block_on(store.configure(&k, StockConfig::sharded(4))).unwrap();
    let _ =
        block_on(store.receive(&IdempotencyKey::new("po-owed").unwrap(), &k, 10, t0())).unwrap();
    let line = [StockLine {
        key: k.clone(),
        quantity: 8,
    }];
    let h = block_on(store.reserve(
        &HoldId::new("owed").unwrap(),
        &line,
        t0() + chrono::TimeDelta::minutes(5),
        t0(),
    ))
    .unwrap();
    let counts = vec![PhysicalCount {
        key: k.clone(),
        counted: 5,
    }];
    let _ = reconcile(
        &store,
        "owed-run",
        &counts,
        ReconcileConfig::default(),
        t0(),
    )
    .await
    .unwrap();
    let level = block_on(store.level(&k, t0())).unwrap();
    assert_eq!(
        (level.on_hand, level.held, level.available),
        (5, 8, -3),
        "3 units are owed"
    );
    let one = [StockLine {
        key: k.clone(),
        quantity: 1,
    }];
    assert!(matches!(
        block_on(store.reserve(
            &HoldId::new("blocked").unwrap(),
            &one,
            t0() + chrono::TimeDelta::minutes(5),
            t0()
        )),
        Err(Error::InsufficientStock { .. })
    ));
    // The hold is released: its 8 units pay the 3 owed first; 5 are sellable.
    let _ = block_on(store.release(&h.id, t0())).unwrap();
    assert_eq!(block_on(store.available(&k, t0())).unwrap(), 5);
}
