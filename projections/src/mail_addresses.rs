//! A workspace's mail addresses besides its members' own: aliases of members' mailboxes and
//! distribution lists, one row per address — what the portal's mail settings list, and what
//! a domain's removal counts as still using the domain.
//!
//! # Tables (version 1)
//!
//! * `rm_mail_addresses_v1`: `tenant_id`, `address` (canonical form; the key within a tenant,
//!   as the Tenant aggregate keeps one address routed one way), `domain` (the address's
//!   canonical domain, for the usage count), `kind` (`alias` or `list`), `owner_id` (the member
//!   whose mailbox an alias delivers to, or the list's id), `mailbox` (an alias's mailbox
//!   address), `display_name` and `recipients` (a list's name and its recipients as a JSON
//!   array), `updated_at`.
//!
//! Removed aliases and deleted lists lose their row, as does every alias of a removed member
//! and every address of a purged tenant: the address is free again, and a later alias or list
//! with it starts a row from scratch, as the aggregate's own fold does.

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::tenant::{address_domain, TenantEvent, TENANT_AGGREGATE_TYPE};
use serde::Serialize;

use crate::runner::{Dialect, Projection, ProjectionError, ReadTx};
use crate::sql::{byte_order, decode, execute, fetch_all, fold_error, Arg, QueryError, Sql};

/// The stored event types this projection folds; every other event is skipped undecoded.
const FOLDED_EVENT_TYPES: [&str; 7] = [
    "MemberAliasAdded",
    "MemberAliasRemoved",
    "MailingListCreated",
    "MailingListRecipientsSet",
    "MailingListDeleted",
    "MemberRemoved",
    "TenantPurged",
];

read_model! {
    /// The mail address projection (name `mail_addresses`).
    MailAddresses, name = "mail_addresses", schema_version = 1
}

impl MailAddresses {
    /// The table of this build.
    pub fn table(&self) -> String {
        table_of(self.version)
    }
}

fn table_of(build: u32) -> String {
    format!("rm_{}_v{build}", MailAddresses::NAME)
}

/// What an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailAddressKind {
    /// An alias delivering to one member's mailbox.
    Alias,
    /// A distribution list.
    List,
}

impl MailAddressKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailAddressKind::Alias => "alias",
            MailAddressKind::List => "list",
        }
    }

    fn parse(value: &str) -> Result<Self, QueryError> {
        match value {
            "alias" => Ok(MailAddressKind::Alias),
            "list" => Ok(MailAddressKind::List),
            other => Err(QueryError::StoredValue {
                column: "kind",
                value: other.to_owned(),
            }),
        }
    }
}

/// One address as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailAddressRow {
    /// The workspace.
    pub tenant_id: String,
    /// The address (canonical form).
    pub address: String,
    /// Its domain (canonical form).
    pub domain: String,
    /// Alias or list.
    pub kind: MailAddressKind,
    /// The member an alias delivers to, or the list's id.
    pub owner_id: String,
    /// An alias's mailbox address (`None` for a list).
    pub mailbox: Option<String>,
    /// A list's display name (`None` for an alias).
    pub display_name: Option<String>,
    /// A list's recipients (empty for an alias).
    pub recipients: Vec<String>,
    /// When the ledger recorded the last event that changed this row.
    pub updated_at: String,
}

/// An alias of a member's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasRow {
    /// The alias (canonical form).
    pub alias: String,
    /// The mailbox it delivers to.
    pub mailbox: String,
    /// The member whose mailbox that is.
    pub member_id: String,
}

/// A distribution list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    /// The list id.
    pub list_id: String,
    /// The list's address (canonical form).
    pub address: String,
    /// The name recipients see.
    pub display_name: String,
    /// Where its mail goes, in the order the list was given.
    pub recipients: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct MailAddressRecord {
    tenant_id: String,
    address: String,
    domain: String,
    kind: String,
    owner_id: String,
    mailbox: Option<String>,
    display_name: Option<String>,
    recipients: Option<String>,
    updated_at: String,
}

impl MailAddressRecord {
    fn into_row(self) -> Result<MailAddressRow, QueryError> {
        let recipients = match self.recipients {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json).map_err(|error| QueryError::StoredValue {
                column: "recipients",
                value: error.to_string(),
            })?,
        };
        Ok(MailAddressRow {
            kind: MailAddressKind::parse(&self.kind)?,
            tenant_id: self.tenant_id,
            address: self.address,
            domain: self.domain,
            owner_id: self.owner_id,
            mailbox: self.mailbox,
            display_name: self.display_name,
            recipients,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str =
    "tenant_id, address, domain, kind, owner_id, mailbox, display_name, recipients, updated_at";

fn recipients_arg(event: &EventRecord, recipients: &[String]) -> Result<Arg, ProjectionError> {
    serde_json::to_string(recipients)
        .map(|json| Arg::NullableText(Some(json)))
        .map_err(|error| fold_error(event, error))
}

impl Projection for MailAddresses {
    read_model_identity!();

    fn tables(&self) -> Vec<String> {
        vec![self.table()]
    }

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // A small model: its indexes are made with its tables (`schema`), also for a rebuild.
        Vec::new()
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let table = self.table();
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 tenant_id TEXT{c} NOT NULL, \
                 address TEXT{c} NOT NULL, \
                 domain TEXT{c} NOT NULL, \
                 kind TEXT NOT NULL, \
                 owner_id TEXT{c} NOT NULL, \
                 mailbox TEXT, \
                 display_name TEXT, \
                 recipients TEXT, \
                 updated_at TEXT NOT NULL, \
                 PRIMARY KEY (tenant_id, address))"
            ),
            // A domain's usage when it is removed.
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_by_domain ON {table} (tenant_id, domain, kind)"
            ),
            // A removed member's aliases; a list by id.
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_by_owner ON {table} (tenant_id, kind, owner_id)"
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let table = self.table();
        let upsert = format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, address) DO UPDATE SET domain = excluded.domain, \
             kind = excluded.kind, owner_id = excluded.owner_id, mailbox = excluded.mailbox, \
             display_name = excluded.display_name, recipients = excluded.recipients, \
             updated_at = excluded.updated_at"
        );
        for event in events.iter().filter(|e| {
            e.aggregate_type == TENANT_AGGREGATE_TYPE
                && FOLDED_EVENT_TYPES.contains(&e.event_type.as_str())
        }) {
            // The aggregate id is the tenant: its events carry no tenant id of their own.
            let tenant = || Arg::Text(event.aggregate_id.clone());
            let at = Arg::Text(event.recorded_at.clone());
            match decode::<TenantEvent>(event)? {
                TenantEvent::MemberAliasAdded {
                    member_id,
                    address,
                    alias,
                } => {
                    let domain = address_domain(&alias).to_owned();
                    let args = [
                        tenant(),
                        Arg::Text(alias),
                        Arg::Text(domain),
                        Arg::Text(MailAddressKind::Alias.as_str().to_owned()),
                        Arg::Text(member_id),
                        Arg::NullableText(Some(address)),
                        Arg::NullableText(None),
                        Arg::NullableText(None),
                        at,
                    ];
                    execute(tx, &upsert, &args).await?;
                }
                TenantEvent::MailingListCreated {
                    list_id,
                    address,
                    display_name,
                    recipients,
                } => {
                    let args = [
                        tenant(),
                        Arg::Text(address.clone()),
                        Arg::Text(address_domain(&address).to_owned()),
                        Arg::Text(MailAddressKind::List.as_str().to_owned()),
                        Arg::Text(list_id),
                        Arg::NullableText(None),
                        Arg::NullableText(Some(display_name)),
                        recipients_arg(event, &recipients)?,
                        at,
                    ];
                    execute(tx, &upsert, &args).await?;
                }
                TenantEvent::MailingListRecipientsSet {
                    address,
                    recipients,
                    ..
                } => {
                    let sql = format!(
                        "UPDATE {table} SET recipients = $3, updated_at = $4 \
                         WHERE tenant_id = $1 AND address = $2"
                    );
                    let args = [
                        tenant(),
                        Arg::Text(address),
                        recipients_arg(event, &recipients)?,
                        at,
                    ];
                    // The aggregate sets recipients only of a list it has; a missing row means
                    // this fold missed the creation, a fold error, not something to paper over.
                    if execute(tx, &sql, &args).await? != 1 {
                        return Err(fold_error(event, "recipients of a list with no row"));
                    }
                }
                TenantEvent::MemberAliasRemoved { alias: address, .. }
                | TenantEvent::MailingListDeleted { address, .. } => {
                    let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND address = $2");
                    execute(tx, &sql, &[tenant(), Arg::Text(address)]).await?;
                }
                TenantEvent::MemberRemoved { member_id } => {
                    // The member's aliases delivered to the mailbox that goes with them.
                    let sql = format!(
                        "DELETE FROM {table} WHERE tenant_id = $1 AND kind = $2 AND owner_id = $3"
                    );
                    let kind = Arg::Text(MailAddressKind::Alias.as_str().to_owned());
                    execute(tx, &sql, &[tenant(), kind, Arg::Text(member_id)]).await?;
                }
                TenantEvent::TenantPurged { .. } => {
                    // The purge tears the workspace's mail down; nothing routes any more.
                    let sql = format!("DELETE FROM {table} WHERE tenant_id = $1");
                    execute(tx, &sql, &[tenant()]).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The build a query reads: the one given, or the live one.
async fn build_or_live(db: &Db, build: Option<u32>) -> Result<u32, QueryError> {
    Ok(match build {
        Some(build) => build,
        None => {
            crate::builds::live_build(db, MailAddresses::NAME, crate::builds::FIRST_BUILD).await?
        }
    })
}

async fn rows_of(
    db: &Db,
    build: Option<u32>,
    tenant_id: &str,
    kind: MailAddressKind,
) -> Result<Vec<MailAddressRow>, QueryError> {
    let table = table_of(build_or_live(db, build).await?);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}"));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    let k = sql.arg(Arg::Text(kind.as_str().to_owned()));
    sql.push(&format!(
        " WHERE tenant_id = {t} AND kind = {k} ORDER BY address"
    ));
    let records: Vec<MailAddressRecord> = fetch_all(db, &sql).await?;
    records
        .into_iter()
        .map(MailAddressRecord::into_row)
        .collect()
}

fn alias_of(row: MailAddressRow) -> AliasRow {
    AliasRow {
        alias: row.address,
        mailbox: row.mailbox.unwrap_or_default(),
        member_id: row.owner_id,
    }
}

fn list_of(row: MailAddressRow) -> ListRow {
    ListRow {
        list_id: row.owner_id,
        address: row.address,
        display_name: row.display_name.unwrap_or_default(),
        recipients: row.recipients,
    }
}

/// A workspace's aliases by address, from the live build. Callers authorize first.
///
/// Not paged: a member has at most `dezky_domain::tenant::MAX_ALIASES_PER_MEMBER`, and a
/// workspace's aliases are set up one by one by its admins.
pub async fn aliases_of_tenant(db: &Db, tenant_id: &str) -> Result<Vec<AliasRow>, QueryError> {
    let rows = rows_of(db, None, tenant_id, MailAddressKind::Alias).await?;
    Ok(rows.into_iter().map(alias_of).collect())
}

/// A workspace's distribution lists by address, from the live build. Callers authorize first.
///
/// Not paged: a workspace has at most `dezky_domain::tenant::MAX_LISTS_PER_TENANT` lists.
pub async fn lists_of_tenant(db: &Db, tenant_id: &str) -> Result<Vec<ListRow>, QueryError> {
    let rows = rows_of(db, None, tenant_id, MailAddressKind::List).await?;
    Ok(rows.into_iter().map(list_of).collect())
}

/// One of a workspace's distribution lists by id, from the live build; `None` when the
/// workspace has no such list. Callers authorize first.
pub async fn mailing_list(
    db: &Db,
    tenant_id: &str,
    list_id: &str,
) -> Result<Option<ListRow>, QueryError> {
    let table = table_of(build_or_live(db, None).await?);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}"));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    let k = sql.arg(Arg::Text(MailAddressKind::List.as_str().to_owned()));
    let o = sql.arg(Arg::Text(list_id.to_owned()));
    sql.push(&format!(
        " WHERE tenant_id = {t} AND kind = {k} AND owner_id = {o}"
    ));
    let records: Vec<MailAddressRecord> = fetch_all(db, &sql).await?;
    match records.into_iter().next() {
        None => Ok(None),
        Some(record) => Ok(Some(list_of(record.into_row()?))),
    }
}

/// How many of a workspace's aliases and distribution lists have an address at `domain`
/// (canonical form), from the live build: `(aliases, lists)`. A domain cannot be removed while
/// either is more than zero.
pub async fn usage_of_domain(
    db: &Db,
    tenant_id: &str,
    domain: &str,
) -> Result<(u32, u32), QueryError> {
    let table = table_of(build_or_live(db, None).await?);
    let mut sql = Sql::new(format!("SELECT kind, COUNT(*) FROM {table}"));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    let d = sql.arg(Arg::Text(domain.to_owned()));
    sql.push(&format!(
        " WHERE tenant_id = {t} AND domain = {d} GROUP BY kind"
    ));
    let counts: Vec<(String, i64)> = fetch_all(db, &sql).await?;
    let count_of = |kind: MailAddressKind| {
        counts
            .iter()
            .find(|(k, _)| k == kind.as_str())
            .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
    };
    Ok((
        count_of(MailAddressKind::Alias),
        count_of(MailAddressKind::List),
    ))
}

/// Every row of a build, by tenant and address (projection == replay checks). Not a portal
/// query: it is not scoped to a workspace.
pub async fn all_mail_addresses(db: &Db, build: u32) -> Result<Vec<MailAddressRow>, QueryError> {
    let sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM {} ORDER BY tenant_id, address",
        table_of(build)
    ));
    let records: Vec<MailAddressRecord> = fetch_all(db, &sql).await?;
    records
        .into_iter()
        .map(MailAddressRecord::into_row)
        .collect()
}
