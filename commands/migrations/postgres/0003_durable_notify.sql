-- The writer now commits a group with synchronous_commit off and makes it durable with a
-- separate synchronous commit (the durability barrier), which also sends the notification.
-- A trigger on the head row would notify at the group's commit, before the WAL flush, and
-- followers in other processes must only ever hear of durable positions.
DROP TRIGGER IF EXISTS ledger_head_notify ON ledger_head;
DROP FUNCTION IF EXISTS dezky_notify_ledger_head();
