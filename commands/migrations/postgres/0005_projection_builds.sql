-- Projections are rebuilt beside the live one. In projection_state, `version` is now the
-- build: its tables are rm_{name}_v{build}. `schema_version` is the code version that folds
-- it; `status` is live (serves queries; at most one per name), building (a shadow build
-- catching up; at most one per name), retired (switched away from; its tables are dropped
-- after a grace period unless keep_old) or dropped.
ALTER TABLE projection_state ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 0;
UPDATE projection_state SET schema_version = version;
ALTER TABLE projection_state ADD COLUMN keep_old BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX projection_state_one_live ON projection_state (name) WHERE status = 'live';
CREATE UNIQUE INDEX projection_state_one_building ON projection_state (name)
    WHERE status = 'building';

-- Which process runs each projection: a lease renewed by heartbeat, taken over when it
-- expires (a holder that died stops renewing). Times are Unix milliseconds.
CREATE TABLE projection_leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
