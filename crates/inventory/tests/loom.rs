//! Model checking of the in-memory store's concurrency with loom: every interleaving (up to a
//! preemption bound) of small scenarios on a sharded SKU.
//!
//! `RUSTFLAGS="--cfg inventory_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p inventory --test loom --release`
#![cfg(inventory_loom)]

use chrono::TimeDelta;
use commerce_core::testkit::t0;
use commerce_core::{IdempotencyKey, LocationId, Sku};
use futures::FutureExt;
use inventory::{
    Error, HoldId, HoldStore, InMemoryStockStore, StockConfig, StockKey, StockLevels, StockLine,
    StockMovements,
};
use loom::sync::Arc;
use loom::thread;

/// The result of an in-memory store call, which completes on its first poll. (An executor's
/// `block_on` cannot run inside loom, whose threads share an OS thread.)
fn ready<T>(call: impl std::future::Future<Output = T>) -> T {
    call.now_or_never()
        .expect("an in-memory call completes at once")
}

fn setup(units: i64, shards: usize) -> (Arc<InMemoryStockStore>, StockKey) {
    let store = Arc::new(InMemoryStockStore::new());
    let k = StockKey::new(Sku::new("L").unwrap(), LocationId::new("w").unwrap());
    ready(store.configure(&k, StockConfig::sharded(shards))).unwrap();
    let _ = ready(store.receive(&IdempotencyKey::new("po").unwrap(), &k, units, t0())).unwrap();
    (store, k)
}

fn reserve(store: &InMemoryStockStore, k: &StockKey, id: &str, q: i64) -> Result<HoldId, Error> {
    let line = [StockLine {
        key: k.clone(),
        quantity: q,
    }];
    ready(store.reserve(
        &HoldId::new(id).unwrap(),
        &line,
        t0() + TimeDelta::minutes(5),
        t0(),
    ))
    .map(|h| h.id)
}

/// Two shoppers race for the last unit of a 2-shard SKU: exactly one wins, in every interleaving.
#[test]
fn last_unit_on_two_shards() {
    loom::model(|| {
        let (store, k) = setup(1, 2);
        let (s2, k2) = (store.clone(), k.clone());
        let other = thread::spawn(move || reserve(&s2, &k2, "b", 1).is_ok());
        let mine = reserve(&store, &k, "a", 1).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one reservation wins");
        let level = ready(store.level(&k, t0())).unwrap();
        assert_eq!((level.held, level.available), (1, 0));
    });
}

/// A reservation that borrows across both shards races a release: stock is conserved and the
/// borrower either gets both units or none.
#[test]
fn borrowing_races_a_release() {
    loom::model(|| {
        let (store, k) = setup(2, 2);
        let first = reserve(&store, &k, "a", 1).unwrap();
        let (s2, k2) = (store.clone(), k.clone());
        let borrower = thread::spawn(move || reserve(&s2, &k2, "b", 2).is_ok());
        let _ = ready(store.release(&first, t0())).unwrap();
        let got_both = borrower.join().unwrap();
        let level = ready(store.level(&k, t0())).unwrap();
        assert_eq!(
            level.on_hand,
            level.available + level.held + level.committed
        );
        assert_eq!(level.held, if got_both { 2 } else { 0 });
    });
}
