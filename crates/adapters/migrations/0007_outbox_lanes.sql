-- The broker relay's lanes: every outbox row belongs to one of 16 lanes by its aggregate id,
-- so relays working at once each take whole lanes (one aggregate's events stay in order on
-- the broker) and a lane's rows are read in id order through the index. `created_at` gives
-- the relay's lag.
ALTER TABLE outbox
    ADD COLUMN lane SMALLINT NOT NULL
        GENERATED ALWAYS AS ((hashtext(coalesce(envelope ->> 'partition_key', '')) & 15)::smallint) STORED,
    ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE INDEX outbox_lane_id ON outbox (lane, id);
