//! The in-memory store runs the conformance suite, as the Postgres and Redis stores will.

inventory::stock_store_conformance!({
    let log = std::sync::Arc::new(commerce_core::memory::InMemoryEventLog::new());
    (inventory::InMemoryStockStore::with_outbox(log.clone()), log)
});
