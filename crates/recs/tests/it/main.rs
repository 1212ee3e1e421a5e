//! Integration tests of the recommendations engine: the stores' conformance suites, the
//! layers on small worlds, and property tests.

mod conformance;
