//! Integration tests of the recommendations engine: the stores' conformance suites, the
//! layers on small worlds, and property tests.

#![allow(clippy::float_arithmetic, reason = "tests compare float scores")]

mod ab;
mod als;
mod blend;
mod conformance;
mod copurchase;
mod eval;
mod movielens;
mod realtime;
