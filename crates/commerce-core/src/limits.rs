//! Named limits: every bound commerce-core enforces on outside input, in one place.

/// Longest SKU, in bytes (SKUs are ASCII).
pub const SKU_LEN_MAX: usize = 64;
/// Longest identifier (product, order, user, cart, event, idempotency key), in bytes.
pub const ID_LEN_MAX: usize = 128;
/// Longest event id or idempotency key, in bytes: room for a key derived from a longest id.
pub const KEY_LEN_MAX: usize = 255;
/// Longest product title, in characters.
pub const TITLE_CHARS_MAX: usize = 512;
/// Longest product description, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 16_384;
/// Most images on one product.
pub const IMAGES_MAX: usize = 32;
/// Most attributes (size, colour, ...) on one product.
pub const ATTRIBUTES_MAX: usize = 64;
/// Longest attribute name or value, and longest brand, in characters.
pub const ATTRIBUTE_CHARS_MAX: usize = 256;
/// Deepest category path.
pub const CATEGORY_DEPTH_MAX: usize = 8;
/// Most lines on one order.
pub const ORDER_LINES_MAX: usize = 500;
/// Most entries in one order's ledger; a longer history means a bug upstream.
pub const ORDER_LEDGER_MAX: usize = 1_000;
/// Most weights one allocation takes.
pub const ALLOCATION_WEIGHTS_MAX: usize = 100_000;
/// Longest money text `parse` accepts, in bytes.
pub const MONEY_TEXT_LEN_MAX: usize = 64;
/// Most characters of bad input echoed back in an error.
pub const ERROR_INPUT_CHARS_MAX: usize = 64;
/// Longest free-text field of an address, in characters.
pub const ADDRESS_FIELD_CHARS_MAX: usize = 256;
/// Most prices in one product's price table.
pub const PRICE_TABLE_ENTRIES_MAX: usize = 512;
/// Largest page a store's `list` call returns.
pub const PAGE_SIZE_MAX: usize = 1_000;
/// Shortest time an idempotency record is kept after it finished, in hours: a client retrying
/// within a day always gets the first answer (Stripe keeps keys at least as long).
pub const IDEMPOTENCY_RETENTION_HOURS_MIN: i64 = 24;
/// Most records one purge call deletes, so a purge job works in bounded transactions.
pub const PURGE_BATCH_MAX: usize = 1_000;
