//! Integration tests of the cart engine: port conformance, worked pricing examples, property
//! tests, merge and the abandoned-cart sweep, and usage claims under real threads.

mod capabilities;
mod conformance;
mod lifecycle;
mod props;
mod scenarios;
