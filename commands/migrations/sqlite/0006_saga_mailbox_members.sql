-- Who uses which address, across workspaces, as the mailbox saga has seen it: a mailbox is
-- deleted when the last workspace member using its address goes, never while another
-- workspace still has a member with that address. Owned by the mailbox saga alone (written
-- as it handles each event, idempotently), so it always matches its progress.
CREATE TABLE saga_mailbox_members (
    tenant_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    address   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
);
CREATE INDEX saga_mailbox_members_by_address ON saga_mailbox_members (address);
