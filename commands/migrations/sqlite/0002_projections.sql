-- How far each version of each projection has folded the ledger. A projection updates its row
-- in the same transaction as its read-model rows, so position and rows never disagree.
CREATE TABLE projection_state (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    position   INTEGER NOT NULL DEFAULT 0,
    status     TEXT    NOT NULL DEFAULT 'live',
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);
