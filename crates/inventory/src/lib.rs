//! Stock, holds and hot-SKU counters: the part of the SDK that must never oversell.
//!
//! **Status: skeleton.** This crate will own stock per SKU and location, holds with a TTL that
//! count as free once expired (even before a sweeper runs), a durable sweeper, sharded counters for
//! hot SKUs, reconciliation against physical counts, and the `StockStore` port with its in-memory
//! implementation and conformance suite. It builds on [`commerce_core`] and does no I/O.
