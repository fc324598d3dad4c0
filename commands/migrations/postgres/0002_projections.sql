-- How far each version of each projection has folded the ledger. A projection updates its row
-- in the same transaction as its read-model rows, so position and rows never disagree.
CREATE TABLE projection_state (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    position   BIGINT  NOT NULL DEFAULT 0,
    status     TEXT    NOT NULL DEFAULT 'live',
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

-- Followers in every process learn of new events at commit, without polling: the head row
-- changes exactly once per committed group.
CREATE FUNCTION dezky_notify_ledger_head() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dezky_ledger', NEW.position::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_head_notify AFTER UPDATE ON ledger_head
    FOR EACH ROW EXECUTE FUNCTION dezky_notify_ledger_head();
