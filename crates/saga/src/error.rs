//! The saga crate's error type.

use commerce_core::PortError;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the orchestrator and the checkout saga can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A journal or other port call failed.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
    /// A saga id was reused with a different input.
    #[error("saga {0} exists with another input")]
    InputMismatch(String),
    /// The input could not be encoded or decoded.
    #[error("saga input: {0}")]
    Codec(String),
    /// The checkout cannot start: the cart has blockers or violations.
    #[error("checkout refused: {0}")]
    NotReady(String),
    /// A commerce-core value was refused.
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
}
