//! Tenant settings: billing details, branding and security policy, one row per tenant.
//!
//! A projection of its own rather than columns of the directory: the directory is listed,
//! searched and sorted on every console page, these documents are read one tenant at a time on
//! its settings pages, and keeping them apart lets either be rebuilt without the other. Each
//! document is stored as the domain type's JSON and advanced with the same `apply_to` the
//! aggregate uses, so the read model cannot drift from the aggregate's own fold.

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::tenant::{
    BillingInfo, Branding, SecurityPolicy, TenantEvent, TENANT_AGGREGATE_TYPE,
};
use serde::Serialize;

use crate::runner::{Dialect, Projection, ProjectionError, ReadTx};
use crate::sql::{
    byte_order, decode, execute, fetch_all, fetch_optional_tx, fold_error, Arg, QueryError, Sql,
};

read_model! {
    /// The settings projection.
    TenantSettings, name = "tenant_settings", schema_version = 1
}

impl TenantSettings {
    /// The table of this version.
    pub fn table(&self) -> String {
        table_of(self.version)
    }
}

fn table_of(version: u32) -> String {
    format!("rm_{}_v{version}", TenantSettings::NAME)
}

/// One tenant's settings as the read model holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsRow {
    /// The tenant.
    pub tenant_id: String,
    /// Billing details (unset fields are `None`).
    pub billing: BillingInfo,
    /// Branding (unset parts are the platform's default).
    pub branding: Branding,
    /// The security policy.
    pub security_policy: SecurityPolicy,
    /// When the ledger recorded the last change of any of the three.
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct SettingsRecord {
    tenant_id: String,
    billing: String,
    branding: String,
    security_policy: String,
    updated_at: String,
}

impl SettingsRecord {
    fn into_row(self) -> Result<SettingsRow, serde_json::Error> {
        Ok(SettingsRow {
            billing: serde_json::from_str(&self.billing)?,
            branding: serde_json::from_str(&self.branding)?,
            security_policy: serde_json::from_str(&self.security_policy)?,
            tenant_id: self.tenant_id,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "tenant_id, billing, branding, security_policy, updated_at";

fn json<T: Serialize>(event: &EventRecord, value: &T) -> Result<Arg, ProjectionError> {
    serde_json::to_string(value)
        .map(Arg::Text)
        .map_err(|error| fold_error(event, error))
}

impl Projection for TenantSettings {
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
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             tenant_id TEXT{c} PRIMARY KEY, \
             billing TEXT NOT NULL, \
             branding TEXT NOT NULL, \
             security_policy TEXT NOT NULL, \
             updated_at TEXT NOT NULL)"
        )]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let table = self.table();
        for event in events {
            if event.aggregate_type != TENANT_AGGREGATE_TYPE {
                continue;
            }
            let tenant_id = event.aggregate_id.as_str();
            let at = event.recorded_at.as_str();
            match decode::<TenantEvent>(event)? {
                TenantEvent::TenantCreated {
                    security_policy, ..
                } => {
                    execute(
                        tx,
                        &format!(
                            "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (tenant_id) DO UPDATE SET billing = excluded.billing, \
                             branding = excluded.branding, \
                             security_policy = excluded.security_policy, \
                             updated_at = excluded.updated_at"
                        ),
                        &[
                            Arg::Text(tenant_id.to_owned()),
                            json(event, &BillingInfo::default())?,
                            json(event, &Branding::default())?,
                            json(event, &security_policy)?,
                            Arg::Text(at.to_owned()),
                        ],
                    )
                    .await?;
                }
                TenantEvent::BillingInfoUpdated { changes } => {
                    let mut row = current(tx, &table, event).await?;
                    changes.apply_to(&mut row.billing);
                    store(tx, &table, event, "billing", json(event, &row.billing)?).await?;
                }
                TenantEvent::BrandingUpdated { changes } => {
                    let mut row = current(tx, &table, event).await?;
                    changes.apply_to(&mut row.branding);
                    store(tx, &table, event, "branding", json(event, &row.branding)?).await?;
                }
                TenantEvent::SecurityPolicyUpdated { changes } => {
                    let mut row = current(tx, &table, event).await?;
                    changes.apply_to(&mut row.security_policy);
                    let value = json(event, &row.security_policy)?;
                    store(tx, &table, event, "security_policy", value).await?;
                }
                TenantEvent::TenantPurged { .. } => {
                    // Billing contacts are personal data with no use once the tenant is gone.
                    execute(
                        tx,
                        &format!("DELETE FROM {table} WHERE tenant_id = $1"),
                        &[Arg::Text(tenant_id.to_owned())],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The row an update applies to; a missing one means the ledger holds an update of a tenant
/// whose creation this projection never saw, which is a fold error, not something to paper over.
async fn current(
    tx: &mut ReadTx<'_>,
    table: &str,
    event: &EventRecord,
) -> Result<SettingsRow, ProjectionError> {
    let record: Option<SettingsRecord> = fetch_optional_tx(
        tx,
        &format!("SELECT {COLUMNS} FROM {table} WHERE tenant_id = $1"),
        &[Arg::Text(event.aggregate_id.clone())],
    )
    .await?;
    record
        .ok_or_else(|| fold_error(event, "settings of an unknown tenant"))?
        .into_row()
        .map_err(|error| fold_error(event, error))
}

async fn store(
    tx: &mut ReadTx<'_>,
    table: &str,
    event: &EventRecord,
    column: &str,
    value: Arg,
) -> Result<(), ProjectionError> {
    execute(
        tx,
        &format!("UPDATE {table} SET {column} = $2, updated_at = $3 WHERE tenant_id = $1"),
        &[
            Arg::Text(event.aggregate_id.clone()),
            value,
            Arg::Text(event.recorded_at.clone()),
        ],
    )
    .await?;
    Ok(())
}

/// A tenant's settings, if the tenant exists and is not purged. Callers authorize first.
pub async fn tenant_settings(db: &Db, tenant_id: &str) -> Result<Option<SettingsRow>, QueryError> {
    let build =
        crate::builds::live_build(db, TenantSettings::NAME, crate::builds::FIRST_BUILD).await?;
    read_settings(db, build, tenant_id).await
}

/// The same from a given version's table (rebuild checks).
pub async fn read_settings(
    db: &Db,
    version: u32,
    tenant_id: &str,
) -> Result<Option<SettingsRow>, QueryError> {
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {}", table_of(version)));
    let p = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(" WHERE tenant_id = {p}"));
    let records: Vec<SettingsRecord> = fetch_all(db, &sql).await?;
    match records.into_iter().next() {
        None => Ok(None),
        Some(record) => record.into_row().map(Some).map_err(stored_value),
    }
}

fn stored_value(error: serde_json::Error) -> QueryError {
    QueryError::StoredValue {
        column: "settings document",
        value: error.to_string(),
    }
}

/// Every row of a version, ordered by tenant (projection == replay checks).
pub async fn all_settings(db: &Db, version: u32) -> Result<Vec<SettingsRow>, QueryError> {
    let sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM {} ORDER BY tenant_id",
        table_of(version)
    ));
    let records: Vec<SettingsRecord> = fetch_all(db, &sql).await?;
    records
        .into_iter()
        .map(|record| record.into_row().map_err(stored_value))
        .collect()
}
