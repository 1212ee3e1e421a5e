-- A payment provider's books, for the sandbox gateway (demos, crash tests, benchmarks): a real
-- provider keeps its own; this one keeps them where they outlive a killed process.
CREATE SEQUENCE psp_payment_refs;

CREATE TABLE psp_payments (
    payment_ref TEXT COLLATE "C" PRIMARY KEY,
    body JSONB NOT NULL
);

-- One row per idempotency key that executed (approved, or declined): its request fingerprint
-- and what it answered.
CREATE TABLE psp_calls (
    key TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    payment_ref TEXT COLLATE "C",
    declined TEXT
);
