//! Carts and the pricing and promotion engine.
//!
//! **Status: skeleton.** This crate will own carts (price snapshots, anonymous-to-user merge,
//! expiry), the pure `price(cart, promotions, context)` function with its rounding policy,
//! conditions, actions and stacking rules, and the `CartStore` port with its in-memory
//! implementation and conformance suite. It builds on [`commerce_core`] for money, catalog types
//! and ports, and does no I/O.
