//! Named limits of the saga crate.

/// Compare-and-set attempts an order transition outside a saga makes before it reports the
/// order as too busy (`Unavailable`: try again).
pub const CAS_ATTEMPTS_MAX: usize = 8;
