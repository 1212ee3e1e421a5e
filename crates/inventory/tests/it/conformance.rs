//! The in-memory store runs the conformance suite, as the Postgres and Redis stores will.

inventory::stock_store_conformance!(inventory::InMemoryStockStore::new());
