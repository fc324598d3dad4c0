//! The audit timeline: one row per ledger event that belongs to a tenant, with who did it,
//! from where, a one-line summary and a field-level diff, queried strictly per tenant and
//! exported as CSV.
//!
//! # Which events, which tenant
//!
//! An event of the Tenant aggregate belongs to that tenant (its aggregate id), whatever its
//! metadata says. Any other event belongs to the tenant in its metadata (`tenant_id`); a
//! platform-flag or slug-claim event without one belongs to the tenant its payload names.
//! Events with no tenant at all (operator housekeeping) are not on any tenant's timeline; the
//! ledger export still has them.
//!
//! # Diffs
//!
//! `diff` is `{field: {from, to}}` of only the fields the event says changed. Update events
//! carry exactly those pairs (`BillingInfoUpdated`, `BrandingUpdated`,
//! `SecurityPolicyUpdated`); role changes show `role`; status transitions show `status`.
//! **Creation events show their initial values as changes from `null`** (`TenantCreated`:
//! organization, slug, plan, seats, partner and status; `MemberInvited` / `MemberAdded`: the
//! member's e-mail, name, role and mailbox), because an auditor asking "what was it set to
//! first" should not need a second query. Requests that change no state (logout, password
//! reset) and removals have an empty diff; their summary says what happened.
//!
//! # Tables (version 1)
//!
//! * `rm_audit_v1`: the timeline (`position` primary key, `tenant_id`, `recorded_at`,
//!   `occurred_at`, `actor_subject`, `actor_email`, `actor_email_key`, `request_ip`, `action`,
//!   `aggregate_type`, `aggregate_id`, `outcome`, `summary`, `diff` (JSON text),
//!   `search_key`).
//! * `rm_audit_v1_tenants` (slug, status) and `rm_audit_v1_members` (e-mail): what the fold
//!   remembers to write readable summaries and the `from` side of status changes, which the
//!   events themselves do not carry.

use std::collections::BTreeMap;

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::metadata::{
    KEY_ACTOR_EMAIL, KEY_ACTOR_SUBJECT, KEY_OCCURRED_AT, KEY_REQUEST_IP, KEY_TENANT_ID,
};
use dezky_domain::tenant::{
    PlatformFlagEvent, SlugClaimEvent, TenantEvent, TenantStatus, PLATFORM_FLAG_AGGREGATE_TYPE,
    SLUG_CLAIM_AGGREGATE_TYPE, TENANT_AGGREGATE_TYPE,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runner::Dialect;
use crate::tenants::{
    byte_order, decode, decode_cursor, encode_cursor, execute, fetch_all, fetch_count,
    fetch_optional_tx, fold_error, like_pattern, role_name, tenant_status_name, Arg, Page,
    PageRequest, QueryError, Sql,
};
use crate::{Projection, ProjectionError, ReadTx};

/// The CSV crate the export is written with, so readers of an export (the API's download
/// endpoint, tests) parse it with the same dialect.
pub use csv;

/// Rows read per round trip while exporting; the export streams, so memory stays bounded by
/// this however long the tenant's history is.
pub const EXPORT_BATCH_ROWS: u32 = 500;

/// Separates the fields of the free-text search key, so a search cannot match across two of
/// them (a unit separator never appears in typed text).
const SEARCH_FIELD_SEPARATOR: char = '\u{1f}';

/// Whether the recorded action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// A domain event: what it says happened.
    Success,
    /// A failure on the record (saga failure events).
    Failure,
}

impl AuditOutcome {
    /// The stored and exported name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
        }
    }

    fn parse(value: &str) -> Result<Self, QueryError> {
        match value {
            "success" => Ok(AuditOutcome::Success),
            "failure" => Ok(AuditOutcome::Failure),
            other => Err(QueryError::StoredValue {
                column: "outcome",
                value: other.to_owned(),
            }),
        }
    }
}

/// One field's change: the value before and after (`null` for "not set").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Before.
    pub from: Value,
    /// After.
    pub to: Value,
}

impl FieldDiff {
    fn new(from: impl Into<Value>, to: impl Into<Value>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
        }
    }

    fn set(to: impl Into<Value>) -> Self {
        Self::new(Value::Null, to)
    }
}

/// `{field: {from, to}}`, ordered by field name.
pub type Diff = BTreeMap<String, FieldDiff>;

/// One entry of a tenant's audit timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// The event's ledger position (unique, and the timeline's order).
    pub position: u64,
    /// The tenant the event belongs to.
    pub tenant_id: String,
    /// When the ledger recorded it (UTC).
    pub recorded_at: String,
    /// When the command was issued, as its caller stated.
    pub occurred_at: Option<String>,
    /// Who acted (OIDC subject, or `system:<process>`).
    pub actor_subject: Option<String>,
    /// Their e-mail, when a person.
    pub actor_email: Option<String>,
    /// The client's IP address.
    pub request_ip: Option<String>,
    /// The event type, e.g. `MemberRoleChanged`.
    pub action: String,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// Success or failure.
    pub outcome: AuditOutcome,
    /// A short sentence saying what happened.
    pub summary: String,
    /// The fields the event changed.
    pub diff: Diff,
}

/// Which entries a timeline query returns. Every field narrows it; `Default` returns all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Case-insensitive substring of the summary, the action or the actor (subject, e-mail).
    pub text: Option<String>,
    /// Exactly this action (event type).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only this actor e-mail (case-insensitive).
    pub actor_email: Option<String>,
    /// Recorded at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Recorded strictly before this RFC 3339 time.
    pub before: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The projection.
// ---------------------------------------------------------------------------------------------

/// The audit timeline projection (name `audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTimeline {
    version: u32,
}

#[derive(Debug, Clone)]
struct Tables {
    timeline: String,
    tenants: String,
    members: String,
}

impl Tables {
    fn of(version: u32) -> Self {
        let timeline = format!("rm_{}_v{version}", AuditTimeline::NAME);
        Self {
            tenants: format!("{timeline}_tenants"),
            members: format!("{timeline}_members"),
            timeline,
        }
    }
}

impl AuditTimeline {
    /// The projection's name.
    pub const NAME: &'static str = "audit";
    /// The schema version of this code's fold and tables.
    pub const VERSION: u32 = 1;

    /// The current version.
    pub fn new() -> Self {
        Self {
            version: Self::VERSION,
        }
    }

    /// Another version of the same fold, built in its own tables.
    pub fn with_version(version: u32) -> Self {
        Self { version }
    }

    /// The timeline table of this version.
    pub fn table(&self) -> String {
        Tables::of(self.version).timeline
    }
}

impl Default for AuditTimeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Projection for AuditTimeline {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn schema_version(&self) -> u32 {
        Self::VERSION
    }

    fn tables(&self) -> Vec<String> {
        let Tables {
            timeline,
            tenants,
            members,
        } = Tables::of(self.version);
        vec![timeline, tenants, members]
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let Tables {
            timeline,
            tenants,
            members,
        } = Tables::of(self.version);
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {timeline} (\
                 position BIGINT PRIMARY KEY, \
                 tenant_id TEXT NOT NULL, \
                 recorded_at TEXT{c} NOT NULL, \
                 occurred_at TEXT, \
                 actor_subject TEXT, \
                 actor_email TEXT, \
                 actor_email_key TEXT, \
                 request_ip TEXT, \
                 action TEXT NOT NULL, \
                 aggregate_type TEXT NOT NULL, \
                 aggregate_id TEXT NOT NULL, \
                 outcome TEXT NOT NULL, \
                 summary TEXT NOT NULL, \
                 diff TEXT NOT NULL, \
                 search_key TEXT NOT NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {timeline}_by_tenant ON {timeline} (tenant_id, position)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {tenants} (\
                 tenant_id TEXT PRIMARY KEY, slug TEXT NOT NULL, status TEXT NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {members} (\
                 tenant_id TEXT NOT NULL, member_id TEXT NOT NULL, email TEXT NOT NULL, \
                 PRIMARY KEY (tenant_id, member_id))"
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let tables = Tables::of(self.version);
        for event in events {
            fold(tx, &tables, event).await?;
        }
        Ok(())
    }
}

/// What the fold says about one event.
struct Described {
    summary: String,
    diff: Diff,
    /// The tenant the payload names (platform flag, slug claims), used when the metadata has
    /// none.
    payload_tenant: Option<String>,
}

impl Described {
    fn new(summary: String, diff: Diff) -> Self {
        Self {
            summary,
            diff,
            payload_tenant: None,
        }
    }
}

fn diff_of<const N: usize>(fields: [(&str, FieldDiff); N]) -> Diff {
    fields
        .into_iter()
        .map(|(name, change)| (name.to_owned(), change))
        .collect()
}

/// The metadata's string values by key. Metadata is a JSON object of strings as cqrs-es
/// stores it; anything else means the ledger row is not what this version can read.
fn metadata_of(event: &EventRecord) -> Result<BTreeMap<String, String>, ProjectionError> {
    let map: serde_json::Map<String, Value> =
        serde_json::from_str(&event.metadata).map_err(|error| fold_error(event, error))?;
    Ok(map
        .into_iter()
        .filter_map(|(key, value)| match value {
            Value::String(text) if !text.is_empty() => Some((key, text)),
            _ => None,
        })
        .collect())
}

async fn fold(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    event: &EventRecord,
) -> Result<(), ProjectionError> {
    let metadata = metadata_of(event)?;
    let described = match event.aggregate_type.as_str() {
        TENANT_AGGREGATE_TYPE => {
            let decoded: TenantEvent = decode(event)?;
            describe_tenant_event(tx, tables, event, decoded).await?
        }
        PLATFORM_FLAG_AGGREGATE_TYPE => {
            let PlatformFlagEvent::PlatformTenantAssigned {
                tenant_id,
                previous,
            } = decode(event)?;
            let summary = match &previous {
                Some(previous) => {
                    format!("Tenant {tenant_id} made the platform tenant (previously {previous})")
                }
                None => format!("Tenant {tenant_id} made the platform tenant"),
            };
            let change = FieldDiff::new(previous, tenant_id.clone());
            Described {
                payload_tenant: Some(tenant_id),
                ..Described::new(summary, diff_of([("platform_tenant", change)]))
            }
        }
        SLUG_CLAIM_AGGREGATE_TYPE => {
            let slug = &event.aggregate_id;
            let (summary, change, tenant_id) = match decode(event)? {
                SlugClaimEvent::SlugClaimed { tenant_id } => (
                    format!("Slug {slug} claimed"),
                    FieldDiff::set(tenant_id.clone()),
                    tenant_id,
                ),
                SlugClaimEvent::SlugReleased { tenant_id } => (
                    format!("Slug {slug} released"),
                    FieldDiff::new(tenant_id.clone(), Value::Null),
                    tenant_id,
                ),
            };
            Described {
                payload_tenant: Some(tenant_id),
                ..Described::new(summary, diff_of([("holder", change)]))
            }
        }
        _ => Described::new(
            format!(
                "{} on {} {}",
                event.event_type, event.aggregate_type, event.aggregate_id
            ),
            Diff::new(),
        ),
    };
    let tenant_id = if event.aggregate_type == TENANT_AGGREGATE_TYPE {
        Some(event.aggregate_id.clone())
    } else {
        metadata
            .get(KEY_TENANT_ID)
            .cloned()
            .or(described.payload_tenant)
    };
    let Some(tenant_id) = tenant_id.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let actor_subject = metadata.get(KEY_ACTOR_SUBJECT).cloned();
    let actor_email = metadata.get(KEY_ACTOR_EMAIL).cloned();
    let search_key = [
        described.summary.as_str(),
        event.event_type.as_str(),
        actor_subject.as_deref().unwrap_or_default(),
        actor_email.as_deref().unwrap_or_default(),
    ]
    .join(&SEARCH_FIELD_SEPARATOR.to_string())
    .to_lowercase();
    let diff = serde_json::to_string(&described.diff).map_err(|error| fold_error(event, error))?;
    execute(
        tx,
        &format!(
            "INSERT INTO {} (position, tenant_id, recorded_at, occurred_at, actor_subject, \
             actor_email, actor_email_key, request_ip, action, aggregate_type, aggregate_id, \
             outcome, summary, diff, search_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            tables.timeline
        ),
        &[
            Arg::Int(i64::try_from(event.position).unwrap_or(i64::MAX)),
            Arg::Text(tenant_id),
            Arg::Text(event.recorded_at.clone()),
            Arg::NullableText(metadata.get(KEY_OCCURRED_AT).cloned()),
            Arg::NullableText(actor_subject),
            Arg::NullableText(actor_email.clone()),
            Arg::NullableText(actor_email.map(|e| e.trim().to_lowercase())),
            Arg::NullableText(metadata.get(KEY_REQUEST_IP).cloned()),
            Arg::Text(event.event_type.clone()),
            Arg::Text(event.aggregate_type.clone()),
            Arg::Text(event.aggregate_id.clone()),
            Arg::Text(AuditOutcome::Success.as_str().to_owned()),
            Arg::Text(described.summary),
            Arg::Text(diff),
            Arg::Text(search_key),
        ],
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TenantState {
    slug: String,
    status: String,
}

#[derive(sqlx::FromRow)]
struct MemberState {
    email: String,
}

async fn tenant_state(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    tenant_id: &str,
) -> Result<Option<TenantState>, ProjectionError> {
    Ok(fetch_optional_tx(
        tx,
        &format!(
            "SELECT slug, status FROM {} WHERE tenant_id = $1",
            tables.tenants
        ),
        &[Arg::Text(tenant_id.to_owned())],
    )
    .await?)
}

/// A member's name in summaries: their e-mail once known (member ids are never reused, so
/// the e-mail stays right even after a removal).
async fn member_label(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    tenant_id: &str,
    member_id: &str,
) -> Result<String, ProjectionError> {
    let state: Option<MemberState> = fetch_optional_tx(
        tx,
        &format!(
            "SELECT email FROM {} WHERE tenant_id = $1 AND member_id = $2",
            tables.members
        ),
        &[
            Arg::Text(tenant_id.to_owned()),
            Arg::Text(member_id.to_owned()),
        ],
    )
    .await?;
    Ok(state.map_or_else(|| member_id.to_owned(), |state| state.email))
}

/// Records a tenant's new status; returns the `status` change and the tenant's label.
async fn status_change(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    tenant_id: &str,
    to: TenantStatus,
) -> Result<(FieldDiff, String), ProjectionError> {
    let state = tenant_state(tx, tables, tenant_id).await?;
    let to = tenant_status_name(to);
    execute(
        tx,
        &format!(
            "UPDATE {} SET status = $2 WHERE tenant_id = $1",
            tables.tenants
        ),
        &[Arg::Text(tenant_id.to_owned()), Arg::Text(to.to_owned())],
    )
    .await?;
    Ok(match state {
        Some(state) => (FieldDiff::new(state.status, to), state.slug),
        None => (FieldDiff::set(to), tenant_id.to_owned()),
    })
}

/// The `{field: {from, to}}` map of an update event's changes. The change structs serialize
/// only the fields that changed, each as `{from, to}`, which is this diff's shape already.
fn changes_diff<T: Serialize>(event: &EventRecord, changes: &T) -> Result<Diff, ProjectionError> {
    serde_json::to_value(changes)
        .and_then(serde_json::from_value)
        .map_err(|error| fold_error(event, error))
}

fn fields_sentence(what: &str, diff: &Diff) -> String {
    if diff.is_empty() {
        format!("{what} updated")
    } else {
        let fields: Vec<&str> = diff.keys().map(String::as_str).collect();
        format!("{what} updated: {}", fields.join(", "))
    }
}

async fn describe_tenant_event(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    record: &EventRecord,
    event: TenantEvent,
) -> Result<Described, ProjectionError> {
    let tenant_id = record.aggregate_id.as_str();
    let described = match event {
        TenantEvent::TenantCreated {
            organization_name,
            slug,
            plan,
            seats,
            partner_id,
            ..
        } => {
            let status = tenant_status_name(TenantStatus::PendingProvisioning);
            execute(
                tx,
                &format!(
                    "INSERT INTO {} (tenant_id, slug, status) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET slug = excluded.slug, \
                     status = excluded.status",
                    tables.tenants
                ),
                &[
                    Arg::Text(tenant_id.to_owned()),
                    Arg::Text(slug.clone()),
                    Arg::Text(status.to_owned()),
                ],
            )
            .await?;
            let through = partner_id
                .as_deref()
                .map(|p| format!(" through partner {p}"))
                .unwrap_or_default();
            let summary = format!(
                "Workspace {slug} created for {organization_name} on plan {plan} with {seats} \
                 seats{through}"
            );
            let mut diff = diff_of([
                ("organization_name", FieldDiff::set(organization_name)),
                ("slug", FieldDiff::set(slug)),
                ("plan", FieldDiff::set(plan)),
                ("seats", FieldDiff::set(seats)),
                ("status", FieldDiff::set(status)),
            ]);
            if let Some(partner_id) = partner_id {
                diff.insert("partner_id".into(), FieldDiff::set(partner_id));
            }
            Described::new(summary, diff)
        }
        TenantEvent::TenantProvisioned {} => {
            let (change, label) =
                status_change(tx, tables, tenant_id, TenantStatus::Active).await?;
            Described::new(
                format!("Workspace {label} provisioned"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantSuspended {} => {
            let (change, label) =
                status_change(tx, tables, tenant_id, TenantStatus::Suspended).await?;
            Described::new(
                format!("Workspace {label} suspended"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantResumed {} => {
            let (change, label) =
                status_change(tx, tables, tenant_id, TenantStatus::Active).await?;
            Described::new(
                format!("Workspace {label} resumed"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::TenantSoftDeleted { deleted_at } => {
            let (change, label) =
                status_change(tx, tables, tenant_id, TenantStatus::SoftDeleted).await?;
            Described::new(
                format!("Workspace {label} deleted (can still be restored until purged)"),
                diff_of([
                    ("status", change),
                    ("deleted_at", FieldDiff::set(deleted_at)),
                ]),
            )
        }
        TenantEvent::TenantPurged { slug } => {
            let (change, _) = status_change(tx, tables, tenant_id, TenantStatus::Purged).await?;
            Described::new(
                format!("Workspace {slug} purged; the slug can be claimed again"),
                diff_of([("status", change)]),
            )
        }
        TenantEvent::BillingInfoUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Billing details", &diff), diff)
        }
        TenantEvent::BrandingUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Branding", &diff), diff)
        }
        TenantEvent::SecurityPolicyUpdated { changes } => {
            let diff = changes_diff(record, &changes)?;
            Described::new(fields_sentence("Security policy", &diff), diff)
        }
        TenantEvent::MemberInvited {
            member_id,
            email,
            display_name,
            role,
            owner,
            has_mailbox,
        } => {
            remember_member(tx, tables, tenant_id, &member_id, &email).await?;
            let as_owner = if owner { " and owner" } else { "" };
            let summary = format!(
                "{display_name} <{email}> invited as {}{as_owner}",
                role_name(role)
            );
            let mut diff = diff_of([
                ("email", FieldDiff::set(email)),
                ("display_name", FieldDiff::set(display_name)),
                ("role", FieldDiff::set(role_name(role))),
                ("has_mailbox", FieldDiff::set(has_mailbox)),
            ]);
            if owner {
                diff.insert("owner".into(), FieldDiff::set(true));
            }
            Described::new(summary, diff)
        }
        TenantEvent::MemberAdded {
            member_id,
            email,
            display_name,
            role,
            has_mailbox,
        } => {
            remember_member(tx, tables, tenant_id, &member_id, &email).await?;
            let summary = format!("{display_name} <{email}> added as {}", role_name(role));
            let diff = diff_of([
                ("email", FieldDiff::set(email)),
                ("display_name", FieldDiff::set(display_name)),
                ("role", FieldDiff::set(role_name(role))),
                ("has_mailbox", FieldDiff::set(has_mailbox)),
            ]);
            Described::new(summary, diff)
        }
        TenantEvent::MemberRoleChanged {
            member_id,
            from,
            to,
        } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!(
                    "Role of {who} changed from {} to {}",
                    role_name(from),
                    role_name(to)
                ),
                diff_of([("role", FieldDiff::new(role_name(from), role_name(to)))]),
            )
        }
        TenantEvent::OwnershipTransferred {
            from_member_id,
            to_member_id,
        } => {
            let from = member_label(tx, tables, tenant_id, &from_member_id).await?;
            let to = member_label(tx, tables, tenant_id, &to_member_id).await?;
            Described::new(
                format!("Ownership transferred from {from} to {to}"),
                diff_of([("owner", FieldDiff::new(from_member_id, to_member_id))]),
            )
        }
        // The aggregate suspends only active members and resumes only suspended ones, so
        // the `from` side is known without remembering member statuses.
        TenantEvent::MemberSuspended { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!("{who} suspended"),
                diff_of([("status", FieldDiff::new("active", "suspended"))]),
            )
        }
        TenantEvent::MemberResumed { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!("{who} resumed"),
                diff_of([("status", FieldDiff::new("suspended", "active"))]),
            )
        }
        TenantEvent::MemberLogoutRequested { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!("Sign-out of every session requested for {who}"),
                Diff::new(),
            )
        }
        TenantEvent::MemberPasswordResetRequested { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(format!("Password reset requested for {who}"), Diff::new())
        }
        TenantEvent::MemberRemoved { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(format!("{who} removed"), Diff::new())
        }
        TenantEvent::MemberSubjectLinked { member_id, subject } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!("{who} linked to single sign-on account {subject}"),
                diff_of([("subject", FieldDiff::set(subject))]),
            )
        }
        TenantEvent::MemberMailboxCreated { member_id } => {
            let who = member_label(tx, tables, tenant_id, &member_id).await?;
            Described::new(
                format!("Mailbox created for {who}"),
                diff_of([("has_mailbox", FieldDiff::new(false, true))]),
            )
        }
    };
    Ok(described)
}

async fn remember_member(
    tx: &mut ReadTx<'_>,
    tables: &Tables,
    tenant_id: &str,
    member_id: &str,
    email: &str,
) -> Result<(), ProjectionError> {
    execute(
        tx,
        &format!(
            "INSERT INTO {} (tenant_id, member_id, email) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, member_id) DO UPDATE SET email = excluded.email",
            tables.members
        ),
        &[
            Arg::Text(tenant_id.to_owned()),
            Arg::Text(member_id.to_owned()),
            Arg::Text(email.to_owned()),
        ],
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queries.
// ---------------------------------------------------------------------------------------------

const AUDIT_COLUMNS: &str = "position, tenant_id, recorded_at, occurred_at, actor_subject, \
     actor_email, request_ip, action, aggregate_type, aggregate_id, outcome, summary, diff";

#[derive(sqlx::FromRow)]
struct AuditRecord {
    position: i64,
    tenant_id: String,
    recorded_at: String,
    occurred_at: Option<String>,
    actor_subject: Option<String>,
    actor_email: Option<String>,
    request_ip: Option<String>,
    action: String,
    aggregate_type: String,
    aggregate_id: String,
    outcome: String,
    summary: String,
    diff: String,
}

impl AuditRecord {
    fn into_entry(self) -> Result<AuditEntry, QueryError> {
        let diff = serde_json::from_str(&self.diff).map_err(|_| QueryError::StoredValue {
            column: "diff",
            value: self.diff.clone(),
        })?;
        Ok(AuditEntry {
            position: u64::try_from(self.position).unwrap_or(0),
            outcome: AuditOutcome::parse(&self.outcome)?,
            tenant_id: self.tenant_id,
            recorded_at: self.recorded_at,
            occurred_at: self.occurred_at,
            actor_subject: self.actor_subject,
            actor_email: self.actor_email,
            request_ip: self.request_ip,
            action: self.action,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            summary: self.summary,
            diff,
        })
    }
}

/// A time filter in the ledger's own format, so it compares with `recorded_at` as text.
fn time_bound(field: &'static str, value: &str) -> Result<String, QueryError> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|time| dezky_commands::encoding::format_timestamp(time.with_timezone(&chrono::Utc)))
        .map_err(|_| QueryError::InvalidTimestamp {
            field,
            value: value.to_owned(),
        })
}

/// The `WHERE` clause of a tenant's timeline: the tenant first, always, then the filter.
fn scoped(
    tables: &Tables,
    columns: &str,
    tenant_id: &str,
    filter: &AuditFilter,
) -> Result<Sql, QueryError> {
    let mut sql = Sql::new(format!("SELECT {columns} FROM {}", tables.timeline));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(" WHERE tenant_id = {t}"));
    if let Some(text) = filter.text.as_deref().map(str::trim) {
        if !text.is_empty() {
            let p = sql.arg(Arg::Text(like_pattern(text)));
            sql.push(&format!(" AND search_key LIKE {p} ESCAPE '\\'"));
        }
    }
    if let Some(action) = &filter.action {
        let p = sql.arg(Arg::Text(action.clone()));
        sql.push(&format!(" AND action = {p}"));
    }
    if let Some(outcome) = filter.outcome {
        let p = sql.arg(Arg::Text(outcome.as_str().to_owned()));
        sql.push(&format!(" AND outcome = {p}"));
    }
    if let Some(email) = &filter.actor_email {
        let p = sql.arg(Arg::Text(email.trim().to_lowercase()));
        sql.push(&format!(" AND actor_email_key = {p}"));
    }
    if let Some(since) = &filter.since {
        let p = sql.arg(Arg::Text(time_bound("since", since)?));
        sql.push(&format!(" AND recorded_at >= {p}"));
    }
    if let Some(before) = &filter.before {
        let p = sql.arg(Arg::Text(time_bound("before", before)?));
        sql.push(&format!(" AND recorded_at < {p}"));
    }
    Ok(sql)
}

/// Up to `limit` entries of a tenant's timeline older than `before_position`, newest first.
async fn entries(
    tables: &Tables,
    db: &Db,
    tenant_id: &str,
    filter: &AuditFilter,
    before_position: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, QueryError> {
    let mut sql = scoped(tables, AUDIT_COLUMNS, tenant_id, filter)?;
    if let Some(position) = before_position {
        let p = sql.arg(Arg::Int(position));
        sql.push(&format!(" AND position < {p}"));
    }
    let l = sql.arg(Arg::Int(i64::from(limit)));
    sql.push(&format!(" ORDER BY position DESC LIMIT {l}"));
    Ok(fetch_all(db, &sql).await?)
}

const CURSOR_SORT: &str = "audit:position:desc";

/// A tenant's audit timeline, newest first, one page at a time. Only `tenant_id`'s entries
/// are ever read: the tenant is a required argument and the first condition of every
/// statement, and a cursor issued for another tenant is refused.
pub async fn audit_timeline(
    db: &Db,
    tenant_id: &str,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditEntry>, QueryError> {
    let tables = Tables::of(
        crate::builds::live_build(db, AuditTimeline::NAME, AuditTimeline::VERSION).await?,
    );
    let size = page.checked_size()?;
    let before_position = match &page.after {
        Some(cursor) => {
            let (key, cursor_tenant) = decode_cursor(cursor, CURSOR_SORT)?;
            if cursor_tenant != tenant_id {
                return Err(QueryError::InvalidCursor);
            }
            Some(key.as_i64().ok_or(QueryError::InvalidCursor)?)
        }
        None => None,
    };
    let total_count = fetch_count(db, &scoped(&tables, "COUNT(*)", tenant_id, filter)?).await?;
    let mut records = entries(&tables, db, tenant_id, filter, before_position, size + 1).await?;
    let has_next_page = records.len() > size as usize;
    records.truncate(size as usize);
    let end_cursor = records
        .last()
        .map(|last| encode_cursor(CURSOR_SORT, Value::from(last.position), tenant_id));
    let items = records
        .into_iter()
        .map(AuditRecord::into_entry)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        end_cursor,
        has_next_page,
        total_count,
    })
}

/// The columns of the CSV export, in order.
pub const CSV_HEADER: [&str; 13] = [
    "position",
    "recorded_at",
    "occurred_at",
    "actor_subject",
    "actor_email",
    "request_ip",
    "action",
    "outcome",
    "summary",
    "diff",
    "aggregate_type",
    "aggregate_id",
    "tenant_id",
];

/// A cell as a spreadsheet should show it: text that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, or a tab or carriage return that some spreadsheets skip
/// before one) gets a leading `'`, so it is shown as text instead (OWASP's CSV injection
/// advice). Summaries quote user input such as organization and display names.
pub fn neutralise_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Streams a tenant's timeline (newest first, filtered like [`audit_timeline`]) to `writer`
/// as CSV: a header row ([`CSV_HEADER`]), one row per entry, the diff as JSON text, every
/// cell passed through [`neutralise_formula`]. Returns how many entries were written.
pub async fn audit_csv<W: std::io::Write>(
    db: &Db,
    tenant_id: &str,
    filter: &AuditFilter,
    writer: W,
) -> Result<u64, QueryError> {
    let tables = Tables::of(
        crate::builds::live_build(db, AuditTimeline::NAME, AuditTimeline::VERSION).await?,
    );
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(CSV_HEADER)?;
    let mut written = 0u64;
    let mut before_position = None;
    loop {
        let batch = entries(
            &tables,
            db,
            tenant_id,
            filter,
            before_position,
            EXPORT_BATCH_ROWS,
        )
        .await?;
        let Some(last) = batch.last() else { break };
        before_position = Some(last.position);
        let full = batch.len() == EXPORT_BATCH_ROWS as usize;
        for record in batch {
            let position = record.position.to_string();
            let cells = [
                position.as_str(),
                record.recorded_at.as_str(),
                record.occurred_at.as_deref().unwrap_or_default(),
                record.actor_subject.as_deref().unwrap_or_default(),
                record.actor_email.as_deref().unwrap_or_default(),
                record.request_ip.as_deref().unwrap_or_default(),
                record.action.as_str(),
                record.outcome.as_str(),
                record.summary.as_str(),
                record.diff.as_str(),
                record.aggregate_type.as_str(),
                record.aggregate_id.as_str(),
                record.tenant_id.as_str(),
            ];
            csv.write_record(
                cells
                    .iter()
                    .map(|cell| neutralise_formula(cell).into_owned()),
            )?;
            written += 1;
        }
        if !full {
            break;
        }
    }
    csv.flush().map_err(csv::Error::from)?;
    Ok(written)
}
