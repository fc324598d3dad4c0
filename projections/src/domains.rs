//! The domain directory: one row per live mail domain (keyed by its canonical name), with its
//! workspace, status, DMARC policy, the DNS records it should publish and what the last check
//! found — what a portal shows on a workspace's domain page and what "needs attention" counts.
//!
//! # Tables (version 1)
//!
//! * `rm_domains_v1`: `name` (the canonical name, the aggregate id), `tenant_id`, `status`
//!   (`provisioning`, `verifying`, `verified`, `needs_attention`), `dmarc_policy`, `expected`
//!   and `last_checks` (the domain types' JSON), `checked_at`, `recheck_requested_at`,
//!   `added_at`, `updated_at`.
//!
//! A removed domain's row is deleted rather than flagged: the name is free again, and the next
//! `DomainAdded` — by any workspace — starts a row from scratch, as the aggregate starts its
//! state from scratch. So a query never has to tell a live row from a dead one, and a name
//! removed by one workspace and added by another shows under the new owner only.

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::domains::{
    CheckOutcome, DmarcPolicy, DomainEvent, DomainStatus, ExpectedRecord, RecordCheck,
    DOMAIN_AGGREGATE_TYPE,
};
use serde::Serialize;

use crate::runner::{Dialect, Projection, ProjectionError, ReadTx};
use crate::sql::{
    byte_order, decode, execute, fetch_all, fetch_count, fold_error, Arg, QueryError, Sql,
};

read_model! {
    /// The domain directory projection (name `domains`).
    DomainDirectory, name = "domains", schema_version = 1
}

impl DomainDirectory {
    /// The table of this build.
    pub fn table(&self) -> String {
        table_of(self.version)
    }
}

fn table_of(build: u32) -> String {
    format!("rm_{}_v{build}", DomainDirectory::NAME)
}

/// The stored name of a domain status (the same as its serde name).
pub fn domain_status_name(status: DomainStatus) -> &'static str {
    match status {
        DomainStatus::Provisioning => "provisioning",
        DomainStatus::Verifying => "verifying",
        DomainStatus::Verified => "verified",
        DomainStatus::NeedsAttention => "needs_attention",
        DomainStatus::Removed => "removed",
    }
}

/// Reads a stored status. `removed` is refused: removed domains have no row.
fn parse_status(value: &str) -> Result<DomainStatus, QueryError> {
    Ok(match value {
        "provisioning" => DomainStatus::Provisioning,
        "verifying" => DomainStatus::Verifying,
        "verified" => DomainStatus::Verified,
        "needs_attention" => DomainStatus::NeedsAttention,
        other => {
            return Err(QueryError::StoredValue {
                column: "status",
                value: other.to_owned(),
            })
        }
    })
}

/// The stored name of a DMARC policy (the same as its serde name).
pub fn dmarc_policy_name(policy: DmarcPolicy) -> &'static str {
    match policy {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    }
}

fn parse_policy(value: &str) -> Result<DmarcPolicy, QueryError> {
    Ok(match value {
        "none" => DmarcPolicy::None,
        "quarantine" => DmarcPolicy::Quarantine,
        "reject" => DmarcPolicy::Reject,
        other => {
            return Err(QueryError::StoredValue {
                column: "dmarc_policy",
                value: other.to_owned(),
            })
        }
    })
}

/// One live domain as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainRow {
    /// The canonical name.
    pub name: String,
    /// The owning workspace.
    pub tenant_id: String,
    /// Where it is (never `Removed`: removed domains have no row).
    pub status: DomainStatus,
    /// The DMARC policy.
    pub dmarc_policy: DmarcPolicy,
    /// The records the mail server's zone file expects (empty while provisioning).
    pub expected: Vec<ExpectedRecord>,
    /// The last DNS check, one entry per expected record (empty until the first check after
    /// the last provisioning).
    pub last_checks: Vec<RecordCheck>,
    /// When DNS was last checked.
    pub checked_at: Option<String>,
    /// When a recheck was asked for that no check has answered yet.
    pub recheck_requested_at: Option<String>,
    /// When the workspace added it (from the adding command).
    pub added_at: String,
    /// When the ledger recorded the last event that changed this row.
    pub updated_at: String,
}

/// One expected record paired with what the last check found for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordStatus {
    /// What should be published.
    pub expected: ExpectedRecord,
    /// The verdict of the last check; `None` when the record has not been checked yet.
    pub outcome: Option<CheckOutcome>,
    /// What DNS answered under its name and type (empty when missing or unchecked).
    pub found: Vec<String>,
}

impl DomainRow {
    /// Each expected record with its last check, in the zone file's order: what a person must
    /// publish, and what DNS answered.
    pub fn records(&self) -> Vec<RecordStatus> {
        self.expected
            .iter()
            .map(|expected| {
                let check = self.last_checks.iter().find(|c| c.expected == *expected);
                RecordStatus {
                    expected: expected.clone(),
                    outcome: check.map(|c| c.outcome),
                    found: check.map(|c| c.found.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct DomainRecord {
    name: String,
    tenant_id: String,
    status: String,
    dmarc_policy: String,
    expected: String,
    last_checks: String,
    checked_at: Option<String>,
    recheck_requested_at: Option<String>,
    added_at: String,
    updated_at: String,
}

impl DomainRecord {
    fn into_row(self) -> Result<DomainRow, QueryError> {
        Ok(DomainRow {
            status: parse_status(&self.status)?,
            dmarc_policy: parse_policy(&self.dmarc_policy)?,
            expected: serde_json::from_str(&self.expected)
                .map_err(|e| stored_json("expected", e))?,
            last_checks: serde_json::from_str(&self.last_checks)
                .map_err(|e| stored_json("last_checks", e))?,
            name: self.name,
            tenant_id: self.tenant_id,
            checked_at: self.checked_at,
            recheck_requested_at: self.recheck_requested_at,
            added_at: self.added_at,
            updated_at: self.updated_at,
        })
    }
}

fn stored_json(column: &'static str, error: serde_json::Error) -> QueryError {
    QueryError::StoredValue {
        column,
        value: error.to_string(),
    }
}

const COLUMNS: &str = "name, tenant_id, status, dmarc_policy, expected, last_checks, \
                       checked_at, recheck_requested_at, added_at, updated_at";

fn json<T: Serialize>(event: &EventRecord, value: &T) -> Result<Arg, ProjectionError> {
    serde_json::to_string(value)
        .map(Arg::Text)
        .map_err(|error| fold_error(event, error))
}

fn status_arg(status: DomainStatus) -> Arg {
    Arg::Text(domain_status_name(status).to_owned())
}

impl Projection for DomainDirectory {
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
                 name TEXT{c} PRIMARY KEY, \
                 tenant_id TEXT{c} NOT NULL, \
                 status TEXT NOT NULL, \
                 dmarc_policy TEXT NOT NULL, \
                 expected TEXT NOT NULL, \
                 last_checks TEXT NOT NULL, \
                 checked_at TEXT, \
                 recheck_requested_at TEXT, \
                 added_at TEXT NOT NULL, \
                 updated_at TEXT NOT NULL)"
            ),
            // A workspace's domain page, and its needs-attention count.
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_by_tenant ON {table} (tenant_id, status, name)"
            ),
            // The platform-wide needs-attention count.
            format!("CREATE INDEX IF NOT EXISTS {table}_by_status ON {table} (status)"),
        ]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let table = self.table();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == DOMAIN_AGGREGATE_TYPE)
        {
            // The aggregate id is the canonical name, which is also what `DomainAdded` names.
            let name = Arg::Text(event.aggregate_id.clone());
            let at = Arg::Text(event.recorded_at.clone());
            let (sql, args) = match decode::<DomainEvent>(event)? {
                DomainEvent::DomainAdded {
                    tenant_id,
                    dmarc_policy,
                    added_at,
                    ..
                } => {
                    // Replaces whatever a previous life of the name left, as the aggregate's
                    // own fold does (removal deletes the row, so normally there is none).
                    let sql = format!(
                        "INSERT INTO {table} ({COLUMNS}) \
                         VALUES ($1, $2, $3, $4, '[]', '[]', NULL, NULL, $5, $6) \
                         ON CONFLICT (name) DO UPDATE SET tenant_id = excluded.tenant_id, \
                         status = excluded.status, dmarc_policy = excluded.dmarc_policy, \
                         expected = excluded.expected, last_checks = excluded.last_checks, \
                         checked_at = NULL, recheck_requested_at = NULL, \
                         added_at = excluded.added_at, updated_at = excluded.updated_at"
                    );
                    let args = vec![
                        name,
                        Arg::Text(tenant_id),
                        status_arg(DomainStatus::Provisioning),
                        Arg::Text(dmarc_policy_name(dmarc_policy).to_owned()),
                        Arg::Text(added_at),
                        at,
                    ];
                    execute(tx, &sql, &args).await?;
                    continue;
                }
                DomainEvent::DomainProvisioned { expected, .. } => (
                    format!(
                        "UPDATE {table} SET expected = $2, last_checks = '[]', status = $3, \
                         updated_at = $4 WHERE name = $1"
                    ),
                    vec![
                        name,
                        json(event, &expected)?,
                        status_arg(DomainStatus::Verifying),
                        at,
                    ],
                ),
                DomainEvent::DomainRecheckRequested { .. } => (
                    format!(
                        "UPDATE {table} SET recheck_requested_at = $2, updated_at = $2 \
                         WHERE name = $1"
                    ),
                    vec![name, at],
                ),
                DomainEvent::DomainChecked {
                    checks,
                    status,
                    checked_at,
                    ..
                } => (
                    format!(
                        "UPDATE {table} SET last_checks = $2, status = $3, checked_at = $4, \
                         recheck_requested_at = NULL, updated_at = $5 WHERE name = $1"
                    ),
                    vec![
                        name,
                        json(event, &checks)?,
                        status_arg(status),
                        Arg::Text(checked_at),
                        at,
                    ],
                ),
                DomainEvent::DmarcPolicySet { to, .. } => (
                    format!(
                        "UPDATE {table} SET dmarc_policy = $2, updated_at = $3 WHERE name = $1"
                    ),
                    vec![name, Arg::Text(dmarc_policy_name(to).to_owned()), at],
                ),
                DomainEvent::DomainRemoved { .. } => {
                    (format!("DELETE FROM {table} WHERE name = $1"), vec![name])
                }
            };
            // Every event after `DomainAdded` is about a live domain; a missing row means this
            // fold missed the add, which is a fold error, not something to paper over.
            if execute(tx, &sql, &args).await? != 1 {
                return Err(fold_error(event, "an event of a domain with no live row"));
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
            crate::builds::live_build(db, DomainDirectory::NAME, crate::builds::FIRST_BUILD).await?
        }
    })
}

fn rows(records: Vec<DomainRecord>) -> Result<Vec<DomainRow>, QueryError> {
    records.into_iter().map(DomainRecord::into_row).collect()
}

/// A workspace's domains by name, from `build` (`None`: the live build, which is what the API
/// reads; a number: that build, for rebuild checks). Callers authorize first.
///
/// Not paged: a workspace has a handful of domains, and each is added by hand.
pub async fn domains_of_tenant(
    db: &Db,
    build: Option<u32>,
    tenant_id: &str,
) -> Result<Vec<DomainRow>, QueryError> {
    let table = table_of(build_or_live(db, build).await?);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}"));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(" WHERE tenant_id = {t} ORDER BY name"));
    rows(fetch_all(db, &sql).await?)
}

/// The live domain named `name` (canonical form), whichever workspace owns it; `None` when no
/// workspace has it. Callers check the owner against the caller's standing.
pub async fn domain(db: &Db, name: &str) -> Result<Option<DomainRow>, QueryError> {
    let table = table_of(build_or_live(db, None).await?);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}"));
    let n = sql.arg(Arg::Text(name.to_owned()));
    sql.push(&format!(" WHERE name = {n}"));
    Ok(rows(fetch_all(db, &sql).await?)?.into_iter().next())
}

/// How many domains need attention (a required record missing or wrong at the last check):
/// one workspace's, or with `None` the whole platform's (operators' console).
pub async fn needs_attention_count(db: &Db, tenant_id: Option<&str>) -> Result<u64, QueryError> {
    let table = table_of(build_or_live(db, None).await?);
    let mut sql = Sql::new(format!("SELECT COUNT(*) FROM {table}"));
    let s = sql.arg(status_arg(DomainStatus::NeedsAttention));
    sql.push(&format!(" WHERE status = {s}"));
    if let Some(tenant_id) = tenant_id {
        let t = sql.arg(Arg::Text(tenant_id.to_owned()));
        sql.push(&format!(" AND tenant_id = {t}"));
    }
    Ok(fetch_count(db, &sql).await?)
}

/// Every row of a build, by name (projection == replay checks). Not a portal query: it is not
/// scoped to a workspace.
pub async fn all_domains(db: &Db, build: u32) -> Result<Vec<DomainRow>, QueryError> {
    let sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM {} ORDER BY name",
        table_of(build)
    ));
    rows(fetch_all(db, &sql).await?)
}

/// Domains whose scheduled recheck is due (times RFC 3339), each by its status's interval — `verified` ones before `verified_before`, the others (still verifying,
/// or needing attention, where a person is probably fixing DNS right now) before
/// `unverified_before` — and with no recheck pending (one requested before `unverified_before`
/// that never produced a check counts as lost and is asked again). Oldest check first.
pub async fn domains_due_for_recheck(
    db: &Db,
    verified_before: &str,
    unverified_before: &str,
    limit: u32,
) -> Result<Vec<DomainRow>, QueryError> {
    let table = table_of(build_or_live(db, None).await?);
    let mut sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM {table} WHERE checked_at IS NOT NULL"
    ));
    let verified = sql.arg(status_arg(DomainStatus::Verified));
    let v = sql.arg(Arg::Text(verified_before.to_owned()));
    let u = sql.arg(Arg::Text(unverified_before.to_owned()));
    sql.push(&format!(
        " AND ((status = {verified} AND checked_at < {v}) \
           OR (status <> {verified} AND checked_at < {u})) \
         AND (recheck_requested_at IS NULL OR recheck_requested_at < {u}) \
         ORDER BY checked_at LIMIT {}",
        limit.min(1_000)
    ));
    rows(fetch_all(db, &sql).await?)
}

/// The domains due for a recheck, as the recheck schedule
/// ([`dezky_commands::saga::rechecks`]) asks for them: [`domains_due_for_recheck`] over `db`.
#[derive(Clone)]
pub struct RecheckQueue {
    db: Db,
}

impl RecheckQueue {
    /// The queue over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl dezky_commands::saga::rechecks::DueForRecheck for RecheckQueue {
    async fn due(
        &self,
        verified_before: &str,
        unverified_before: &str,
        limit: u32,
    ) -> Result<Vec<dezky_commands::saga::rechecks::DueDomain>, String> {
        domains_due_for_recheck(&self.db, verified_before, unverified_before, limit)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|row| dezky_commands::saga::rechecks::DueDomain {
                        name: row.name,
                        tenant_id: row.tenant_id,
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    }
}
