//! Named limits of the reviews engine: every bound it enforces on outside input.

/// Fewest stars a review gives.
pub const STARS_MIN: u8 = 1;
/// Most stars a review gives.
pub const STARS_MAX: u8 = 5;
/// Longest review title, in characters (a review may have none: stars alone are a review).
pub const TITLE_CHARS_MAX: usize = 150;
/// Longest review body, in characters (a review may have none).
pub const BODY_CHARS_MAX: usize = 10_000;
/// Longest question, in characters (at least one that is not white space).
pub const QUESTION_CHARS_MAX: usize = 1_000;
/// Longest answer, in characters (at least one that is not white space).
pub const ANSWER_CHARS_MAX: usize = 5_000;
/// Longest moderator's note on a rejection, in characters.
pub const MODERATION_NOTE_CHARS_MAX: usize = 500;
/// Largest page a listing returns.
pub const PAGE_SIZE_MAX: usize = 100;
/// Attempts an operation makes when it keeps losing compare-and-set races before it gives up
/// with [`crate::Error::Contended`].
pub const CAS_ATTEMPTS_MAX: usize = 16;
/// Most events the purchase feed reads, and most purchase changes a store records, per batch.
pub const PURCHASE_BATCH_MAX: usize = 1_000;
/// Event ids the purchase feed remembers to skip redeliveries ([`commerce_core::Dedupe`]).
pub const PURCHASE_DEDUPE_WINDOW: usize = 10_000;
