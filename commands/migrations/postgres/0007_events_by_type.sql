-- Followers of one aggregate type (the booking processor) read its events after a position,
-- in position order, without walking every other aggregate's events.
CREATE INDEX ledger_events_by_type ON ledger_events (aggregate_type, position);
