-- The ledger: one append-only, hash-chained table of events (docs/ledger-format.md).
-- Payload and metadata are TEXT holding canonical JSON (RFC 8785), exactly the bytes hashed.
CREATE TABLE ledger_events (
    position          INTEGER PRIMARY KEY CHECK (position >= 1),
    recorded_at       TEXT    NOT NULL,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL CHECK (aggregate_version >= 1),
    event_type        TEXT    NOT NULL,
    event_version     TEXT    NOT NULL,
    tenant_id         TEXT,
    metadata          TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    prev_hash         BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash              BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE INDEX ledger_events_tenant ON ledger_events (tenant_id, position) WHERE tenant_id IS NOT NULL;

-- The chain head: one row, advanced in the same transaction as the events it covers.
-- frontier holds the RFC 6962 Merkle frontier (docs/ledger-format.md) so a checkpoint's root
-- is computed without reading the log.
CREATE TABLE ledger_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     BLOB    NOT NULL,
    frontier BLOB    NOT NULL
);
INSERT INTO ledger_head (id, position, hash, frontier) VALUES (1, 0, zeroblob(32), zeroblob(8));

-- Signed checkpoints, stored as the exact signed-note text.
CREATE TABLE ledger_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size  INTEGER NOT NULL,
    note       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX ledger_checkpoints_size ON ledger_checkpoints (tree_size);

-- Aggregate snapshots: derived data outside the chain, rebuilt from events when missing.
CREATE TABLE ledger_snapshots (
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_version     INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
