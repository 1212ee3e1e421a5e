//! Named limits of the recommendations engine: every bound it enforces on outside input.

/// Longest top-K list a store holds (items per list).
pub const TOPK_MAX: usize = 200;
/// Most lists one [`crate::TopKStore::put`] or [`crate::TopKStore::get_many`] call carries.
pub const TOPK_BATCH_MAX: usize = 1_000;
/// Largest capacity of a session's recently viewed list.
pub const RECENTLY_VIEWED_MAX: usize = 100;
/// Most SKUs one customer watches for their return to stock.
pub const WATCHES_PER_USER_MAX: usize = 200;
/// Most customers watching one SKU.
pub const WATCHERS_PER_SKU_MAX: usize = 100_000;
/// Most back-in-stock arrivals a customer's list keeps (the oldest go first).
pub const ARRIVALS_PER_USER_MAX: usize = 50;
/// Most records one [`crate::ExperimentLog::append`] takes and one read returns.
pub const EXPERIMENT_BATCH_MAX: usize = 10_000;
/// Most arms an experiment has.
pub const ARMS_MAX: usize = 16;
/// Most records an experiment's evaluation reads (a larger log is evaluated in windows).
pub const EXPERIMENT_RECORDS_MAX: usize = 50_000_000;
/// Most distinct items in one basket the co-purchase counts take; an order with more lines is
/// refused (a wholesale invoice is not a basket, and pairs grow with the square).
pub const BASKET_ITEMS_MAX: usize = 1_000;
/// Longest trend window of the co-purchase lists, in days.
pub const TREND_DAYS_MAX: u32 = 365;
/// Most latent factors of an ALS model.
pub const FACTORS_MAX: usize = 1_024;
/// Most ALS iterations one fit runs.
pub const ITERATIONS_MAX: usize = 1_000;
/// Most conjugate-gradient steps per row and iteration.
pub const CG_STEPS_MAX: usize = 64;
/// Most interactions a fold-in (a new user's recent history) takes.
pub const FOLD_IN_HISTORY_MAX: usize = 10_000;
/// Most recommendations one call returns.
pub const RECOMMEND_MAX: usize = 1_000;
/// Most candidates one blend ranks.
pub const CANDIDATES_MAX: usize = 10_000;
/// Most events the feed reads per batch.
pub const FEED_BATCH_MAX: usize = 10_000;
/// Event ids the feed remembers to skip redeliveries ([`commerce_core::Dedupe`]).
pub const FEED_DEDUPE_WINDOW: usize = 100_000;
