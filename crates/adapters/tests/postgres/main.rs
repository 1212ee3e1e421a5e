//! The PostgreSQL stores against the real server: every port's conformance suite, as the
//! in-memory stores run it, plus faults, concurrency, hostile input and sharding.
//!
//! The server is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Each test
//! works in a schema of its own. Without a server the tests skip with the reason printed;
//! under `CI=true` a missing server fails them.
#![cfg(feature = "postgres")]

mod combiner;
mod conformance;
mod crash;
mod faults;
mod harness;
mod ports;
mod stock;
mod stock_model;
