//! An order loaded from arbitrary JSON is either refused or consistent: its ledger replays to
//! its status, and it survives a round trip.
#![no_main]

use commerce_core::Order;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(order) = serde_json::from_slice::<Order>(data) {
        assert_eq!(
            Order::replay(order.ledger()).expect("loaded ledger replays"),
            order.status()
        );
        let json = serde_json::to_vec(&order).expect("serializes");
        assert_eq!(
            serde_json::from_slice::<Order>(&json).expect("reloads"),
            order
        );
    }
});
