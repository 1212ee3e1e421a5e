//! Named limits of the inventory engine.

/// Most lines in one hold or one direct commit.
pub const HOLD_LINES_MAX: usize = 200;
/// Largest quantity on one line, and largest single stock movement.
pub const QUANTITY_MAX: i64 = 1_000_000_000;
/// Most counter shards one SKU can have.
pub const SHARDS_MAX: usize = 64;
/// Shortest hold time to live, in seconds.
pub const HOLD_TTL_SECS_MIN: i64 = 60;
/// Longest hold time to live, in seconds (a pinned hold has no expiry).
pub const HOLD_TTL_SECS_MAX: i64 = 24 * 60 * 60;
/// The default hold time to live: 15 minutes, inside the 10–30 minute range checkouts use.
pub const HOLD_TTL_SECS_DEFAULT: i64 = 15 * 60;
/// Most holds one sweep call expires.
pub const SWEEP_BATCH_MAX: usize = 10_000;
/// Shard-lock collisions on a single-shard SKU before it is promoted to its configured shards.
pub const CONTENTION_PROMOTE_AFTER: u64 = 1_000;
/// Default alert threshold for reconciliation drift, in percent of the system's on-hand count.
pub const DRIFT_ALERT_PERCENT_DEFAULT: i64 = 1;
/// How long a finished hold is remembered (so a retried call with its id stays idempotent)
/// before the sweep forgets it: 24 hours.
pub const HOLD_RETENTION_SECS: i64 = 24 * 60 * 60;
