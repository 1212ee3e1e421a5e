//! Every port's conformance suite, against PostgreSQL exactly as against memory.

use std::sync::Arc;

use crate::harness::{fresh, fresh_shards};

mod catalog_store {
    use super::*;
    commerce_core::catalog_store_conformance!({
        let Some(pg) = fresh().await else { return };
        (pg.catalog(), Arc::new(pg.event_log()))
    });
}

mod order_store {
    use super::*;
    commerce_core::order_store_conformance!({
        let Some(pg) = fresh().await else { return };
        (pg.orders(), Arc::new(pg.event_log()))
    });
}

mod order_store_sharded {
    use super::*;
    commerce_core::order_store_conformance!({
        let Some(pg) = fresh_shards().await else {
            return;
        };
        (pg.orders(), Arc::new(pg.event_log()))
    });
}

mod event_log {
    use super::*;
    commerce_core::event_log_conformance!({
        let Some(pg) = fresh().await else { return };
        pg.event_log()
    });
}

mod payment_sandbox {
    use super::*;
    commerce_core::payment_gateway_conformance!({
        let Some(pg) = fresh().await else { return };
        pg.payment_sandbox()
    });
}

mod stock_store {
    use super::*;
    inventory::stock_store_conformance!({
        let Some(pg) = fresh().await else { return };
        (pg.stock(), Arc::new(pg.event_log()))
    });
}
