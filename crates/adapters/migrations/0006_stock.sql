-- Stock and holds (primary database). The rules are inventory's pure model; these tables are
-- its storage. See `adapters::postgres::PgStockStore` for how the rows are used.

-- One row per stock key: on-hand units and the configuration. Locked by every operation that
-- changes more than one counter row.
CREATE TABLE stock (
    sku TEXT COLLATE "C" NOT NULL,
    location TEXT COLLATE "C" NOT NULL,
    on_hand BIGINT NOT NULL,
    safety_stock BIGINT NOT NULL CHECK (safety_stock >= 0),
    backorder_limit BIGINT NOT NULL CHECK (backorder_limit >= 0),
    mode TEXT NOT NULL CHECK (mode IN ('reservation', 'optimistic')),
    shards INT NOT NULL CHECK (shards >= 1),
    shards_max INT NOT NULL CHECK (shards_max >= shards),
    PRIMARY KEY (sku, location)
);

-- The counter rows of a key (`shards_max` of them; the first `shards` active). `free` is the
-- share of units a reservation may take from this row without looking at any other; the
-- shares sum to what the key can still promise (availability plus the backorder allowance).
-- `held` and `committed` are the units the row's reservations took, still held or placed.
CREATE TABLE stock_counters (
    sku TEXT COLLATE "C" NOT NULL,
    location TEXT COLLATE "C" NOT NULL,
    shard INT NOT NULL CHECK (shard >= 0),
    active BOOLEAN NOT NULL,
    free BIGINT NOT NULL,
    held BIGINT NOT NULL CHECK (held >= 0),
    committed BIGINT NOT NULL CHECK (committed >= 0),
    PRIMARY KEY (sku, location, shard),
    FOREIGN KEY (sku, location) REFERENCES stock (sku, location)
);

-- Holds: the summed lines as the caller sees them, and the takes (which counter row gave how
-- many units) that giving the hold back or committing it must undo.
CREATE TABLE holds (
    id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('held', 'pinned', 'committed', 'released', 'expired')),
    expires_at TIMESTAMPTZ NOT NULL,
    owner TEXT,
    lines JSONB NOT NULL,
    takes JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
-- The sweeper and lazy expiry read the live holds by expiry; finished ones stay out.
CREATE INDEX holds_due ON holds (expires_at, id) WHERE status = 'held';

-- Stock movements: the key each was applied under (its request's fingerprint, to refuse a key
-- reused for another movement) and the log.
CREATE TABLE stock_movement_keys (
    key TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
CREATE TABLE stock_movements (
    seq BIGSERIAL PRIMARY KEY,
    key TEXT COLLATE "C" NOT NULL,
    sku TEXT COLLATE "C" NOT NULL,
    location TEXT COLLATE "C" NOT NULL,
    on_hand_delta BIGINT NOT NULL,
    committed_delta BIGINT NOT NULL,
    reason TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_movements_by_key ON stock_movements (sku, location, seq);
