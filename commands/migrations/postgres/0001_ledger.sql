-- The ledger: one append-only, hash-chained table of events (docs/ledger-format.md).
-- Payload and metadata are TEXT holding canonical JSON (RFC 8785), exactly the bytes hashed;
-- jsonb would re-order and re-format them.
CREATE TABLE ledger_events (
    position          BIGINT PRIMARY KEY CHECK (position >= 1),
    recorded_at       TEXT   NOT NULL,
    aggregate_type    TEXT   NOT NULL,
    aggregate_id      TEXT   NOT NULL,
    aggregate_version BIGINT NOT NULL CHECK (aggregate_version >= 1),
    event_type        TEXT   NOT NULL,
    event_version     TEXT   NOT NULL,
    tenant_id         TEXT,
    metadata          TEXT   NOT NULL,
    payload           TEXT   NOT NULL,
    prev_hash         BYTEA  NOT NULL CHECK (length(prev_hash) = 32),
    hash              BYTEA  NOT NULL CHECK (length(hash) = 32),
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE INDEX ledger_events_tenant ON ledger_events (tenant_id, position) WHERE tenant_id IS NOT NULL;

-- The chain head: one row, locked (FOR UPDATE) by every appending transaction, so writers in
-- several processes produce one linear chain.
CREATE TABLE ledger_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    hash     BYTEA  NOT NULL,
    frontier BYTEA  NOT NULL
);
INSERT INTO ledger_head (id, position, hash, frontier)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 8), 'hex'));

CREATE TABLE ledger_checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    tree_size  BIGINT NOT NULL,
    note       TEXT   NOT NULL,
    created_at TEXT   NOT NULL
);
CREATE INDEX ledger_checkpoints_size ON ledger_checkpoints (tree_size);

CREATE TABLE ledger_snapshots (
    aggregate_type   TEXT   NOT NULL,
    aggregate_id     TEXT   NOT NULL,
    last_version     BIGINT NOT NULL,
    snapshot_version BIGINT NOT NULL,
    payload          TEXT   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
