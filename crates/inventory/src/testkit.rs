//! Conformance suite for StockStore (filled below).
