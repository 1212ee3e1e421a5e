-- The saga journal, idempotency records and promotion usage (all three used from the primary
-- database), and carts (routed by cart id over the order shards: every shard has the table).
-- Like every migration here, it runs on every database; the primary-only tables stay empty on
-- the other shards.

-- Sagas: the record as JSONB; the columns the journal decides on (version, lease) are
-- authoritative and override what the body says, so `acquire` is one UPDATE of columns.
CREATE TABLE sagas (
    id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'compensated')),
    version BIGINT NOT NULL CHECK (version >= 0),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL,
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
);
-- Recovery scans one kind's unfinished sagas oldest first; finished sagas (almost all of them)
-- stay out of the index.
CREATE INDEX sagas_unfinished ON sagas (kind, created_at, id)
    WHERE status IN ('running', 'compensating');

-- Idempotency records, one per key. Lease tokens come from a sequence, so no token is ever
-- issued twice (not after a takeover, an abandon or a purge).
CREATE SEQUENCE idempotency_lease_tokens;
CREATE TABLE idempotency (
    key TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    lease_token BIGINT NOT NULL,
    lease_until TIMESTAMPTZ,
    response BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    CHECK (
        (state = 'in_progress' AND lease_until IS NOT NULL AND response IS NULL
            AND completed_at IS NULL)
        OR (state = 'completed' AND lease_until IS NULL AND response IS NOT NULL
            AND completed_at IS NOT NULL)
    )
);
-- The purge job's two scans.
CREATE INDEX idempotency_completed ON idempotency (completed_at) WHERE state = 'completed';
CREATE INDEX idempotency_unfinished ON idempotency (lease_until) WHERE state = 'in_progress';

-- Promotion usage: one tally row per promotion (the row every reservation of that promotion
-- locks), per-customer counts beside it, and one row per claim.
CREATE TABLE promotion_usage (
    promotion_id TEXT COLLATE "C" PRIMARY KEY,
    uses BIGINT NOT NULL DEFAULT 0 CHECK (uses >= 0),
    spent NUMERIC,
    currency TEXT,
    CHECK ((spent IS NULL) = (currency IS NULL))
);
CREATE TABLE promotion_customer_usage (
    promotion_id TEXT COLLATE "C" NOT NULL,
    customer TEXT COLLATE "C" NOT NULL,
    uses BIGINT NOT NULL CHECK (uses >= 0),
    PRIMARY KEY (promotion_id, customer)
);
CREATE TABLE promotion_claims (
    claim_id TEXT COLLATE "C" PRIMARY KEY,
    promotion_id TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
    request JSONB NOT NULL
);

-- Carts, on the shard their id routes to.
CREATE TABLE carts (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT COLLATE "C",
    status TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 0),
    expires_at TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL
);
-- One active cart per owner within a shard (across shards, `insert` checks under the owner's
-- lock), and the lookup by owner.
CREATE UNIQUE INDEX carts_active_owner ON carts (owner) WHERE status = 'active';
-- The expiry sweep: active carts by expiry.
CREATE INDEX carts_expiry ON carts (expires_at, id) WHERE status = 'active';
