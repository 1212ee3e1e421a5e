-- The outbox every store's transaction writes its events to, in the database of the rows it
-- changed, and the event log the relay moves them into (in the primary database), where each
-- event gets its dense position. Readers read the log by position.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    envelope JSONB NOT NULL
);

CREATE TABLE event_log (
    position BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    envelope JSONB NOT NULL,
    logged_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
