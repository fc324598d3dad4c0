-- How far each process manager (a ledger follower that turns events into commands) has read.
-- Kept apart from projection_state: process managers are not rebuilt, and their progress must
-- never be reset by a read-model rebuild.
CREATE TABLE process_progress (
    name       TEXT   PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TEXT   NOT NULL
);
