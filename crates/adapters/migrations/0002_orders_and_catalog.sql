-- Orders (sharded by customer: every shard has this table) and the catalog (primary).
CREATE TABLE orders (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX orders_by_status ON orders (status, id);

CREATE TABLE products (
    id TEXT COLLATE "C" PRIMARY KEY,
    sku TEXT COLLATE "C" NOT NULL UNIQUE,
    version BIGINT NOT NULL,
    body JSONB NOT NULL
);
