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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::tenant::{
    PlatformFlagEvent, SlugClaimEvent, TenantEvent, TenantStatus, PLATFORM_FLAG_AGGREGATE_TYPE,
    SLUG_CLAIM_AGGREGATE_TYPE, TENANT_AGGREGATE_TYPE,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runner::Dialect;
use crate::sql::{
    byte_order, decode, decode_cursor, encode_cursor, fetch_all, fetch_all_tx, fetch_by_keys,
    fetch_count, fold_error, in_list, insert_rows, like_pattern, Arg, Page, PageRequest,
    QueryError, RowAppender, Sql, IN_LIST_CHUNK,
};
use crate::tenants::{role_name, tenant_status_name};
use crate::{Projection, ProjectionError, ReadTx};

/// The CSV crate the export is written with, so readers of an export (the API's download
/// endpoint, tests) parse it with the same dialect.
mod describe;
use describe::{describe_tenant_event, diff_of, Described};

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

    /// The first build.
    pub fn new() -> Self {
        Self {
            version: crate::builds::FIRST_BUILD,
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
    read_model_identity!();

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

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // Every timeline query is scoped to a tenant; the fold only appends.
        let timeline = Tables::of(self.version).timeline;
        vec![format!(
            "CREATE INDEX IF NOT EXISTS {timeline}_by_tenant ON {timeline} (tenant_id, position)"
        )]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        // Decoded first, then the state the summaries need (tenants' slugs and statuses,
        // members' e-mails) is read for the whole batch in one query per table, the events are
        // described in memory, and the timeline rows and changed state go back in multi-row
        // statements: a handful of round trips a batch instead of one or more per event.
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let metadata = metadata_of(event)?;
            let payload = match event.aggregate_type.as_str() {
                TENANT_AGGREGATE_TYPE => Decoded::Tenant(Box::new(decode(event)?)),
                PLATFORM_FLAG_AGGREGATE_TYPE => Decoded::PlatformFlag(decode(event)?),
                SLUG_CLAIM_AGGREGATE_TYPE => Decoded::SlugClaim(decode(event)?),
                _ => Decoded::Other,
            };
            decoded.push((event, metadata, payload));
        }
        let tables = Tables::of(self.version);
        let mut batch = AuditBatch::load(tx, &tables, &decoded).await?;
        // Timeline rows are append-only (one per position, each position folded once): on
        // PostgreSQL they stream into a COPY as they are folded, so the server inserts one
        // chunk while the next is folded here.
        let mut appender = RowAppender::start(tx, &tables.timeline, TIMELINE_COLUMNS).await?;
        for (folded, (event, metadata, payload)) in decoded.into_iter().enumerate() {
            fold(&mut batch, event, metadata, payload)?;
            if (folded + 1) % STREAM_EVERY_EVENTS == 0 {
                appender.push(std::mem::take(&mut batch.rows)).await?;
            }
        }
        appender.push(std::mem::take(&mut batch.rows)).await?;
        appender.finish().await?;
        batch.store(tx, &tables).await?;
        Ok(())
    }
}

/// The timeline's columns, in the order of the rows the fold builds.
const TIMELINE_COLUMNS: &str = "position, tenant_id, recorded_at, occurred_at, actor_subject, \
     actor_email, actor_email_key, request_ip, action, aggregate_type, aggregate_id, outcome, \
     summary, diff, search_key";

/// Events folded between two hand-overs of timeline rows to the COPY: small enough that the
/// server starts early, large enough that each hand-over carries a chunk worth sending.
const STREAM_EVERY_EVENTS: usize = 1_000;

/// An event's payload, decoded by aggregate type.
enum Decoded {
    /// Boxed: tenant events are far larger than the others.
    Tenant(Box<TenantEvent>),
    PlatformFlag(PlatformFlagEvent),
    SlugClaim(SlugClaimEvent),
    /// An aggregate the timeline does not read the payload of.
    Other,
}

/// The timeline rows of one batch, and the fold's memory of the tenants and members it names,
/// read before the batch and written back after it.
struct AuditBatch {
    /// (slug, status) of every tenant the batch's tenant events name; `None`: no row yet.
    tenants: HashMap<String, Option<(String, String)>>,
    /// E-mails of the members the batch names, by (tenant, member).
    members: HashMap<(String, String), String>,
    changed_tenants: BTreeSet<String>,
    changed_members: BTreeSet<(String, String)>,
    rows: Vec<Vec<Arg>>,
}

/// The members a tenant event names.
fn members_named(event: &TenantEvent) -> Vec<&str> {
    match event {
        TenantEvent::MemberInvited { member_id, .. }
        | TenantEvent::MemberAdded { member_id, .. }
        | TenantEvent::MemberRoleChanged { member_id, .. }
        | TenantEvent::MemberSuspended { member_id }
        | TenantEvent::MemberResumed { member_id }
        | TenantEvent::MemberLogoutRequested { member_id }
        | TenantEvent::MemberPasswordResetRequested { member_id }
        | TenantEvent::MemberRemoved { member_id }
        | TenantEvent::MemberSubjectLinked { member_id, .. }
        | TenantEvent::MemberMailboxCreated { member_id } => vec![member_id.as_str()],
        TenantEvent::OwnershipTransferred {
            from_member_id,
            to_member_id,
        } => vec![from_member_id.as_str(), to_member_id.as_str()],
        _ => Vec::new(),
    }
}

impl AuditBatch {
    async fn load(
        tx: &mut ReadTx<'_>,
        tables: &Tables,
        events: &[(&EventRecord, AuditMetadata, Decoded)],
    ) -> Result<Self, ProjectionError> {
        let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (event, _, payload) in events {
            if let Decoded::Tenant(tenant_event) = payload {
                let members = named.entry(event.aggregate_id.clone()).or_default();
                members.extend(members_named(tenant_event).into_iter().map(str::to_owned));
            }
        }
        let tenant_ids: Vec<String> = named.keys().cloned().collect();
        let mut tenants: HashMap<String, Option<(String, String)>> =
            tenant_ids.iter().map(|id| (id.clone(), None)).collect();
        let head = format!(
            "SELECT tenant_id, slug, status FROM {} WHERE",
            tables.tenants
        );
        let rows: Vec<TenantState> = fetch_by_keys(tx, &head, "tenant_id", &tenant_ids).await?;
        for row in rows {
            tenants.insert(row.tenant_id, Some((row.slug, row.status)));
        }
        // By tenant and member id lists together, so both databases probe the primary key;
        // the few extra pairs this can return are harmless.
        let mut members = HashMap::new();
        let named: Vec<(String, BTreeSet<String>)> = named
            .into_iter()
            .filter(|(_, members)| !members.is_empty())
            .collect();
        if let ReadTx::Postgres(conn) = tx {
            // Exactly the named pairs, as two arrays, in one statement.
            let (tenant_ids, member_ids): (Vec<String>, Vec<String>) = named
                .iter()
                .flat_map(|(t, ms)| ms.iter().map(|m| (t.clone(), m.clone())))
                .unzip();
            let rows: Vec<MemberState> = sqlx::query_as(&format!(
                "SELECT tenant_id, member_id, email FROM {} WHERE (tenant_id, member_id) IN \
                 (SELECT * FROM UNNEST($1::text[], $2::text[]))",
                tables.members
            ))
            .bind(tenant_ids)
            .bind(member_ids)
            .fetch_all(&mut **conn)
            .await?;
            for row in rows {
                members.insert((row.tenant_id, row.member_id), row.email);
            }
            return Ok(Self::new(tenants, members, events.len()));
        }
        for chunk in named.chunks(IN_LIST_CHUNK / 2) {
            let tenant_ids: Vec<String> = chunk.iter().map(|(t, _)| t.clone()).collect();
            let member_ids: BTreeSet<&String> = chunk.iter().flat_map(|(_, m)| m).collect();
            let member_ids: Vec<String> = member_ids.into_iter().cloned().collect();
            for member_chunk in member_ids.chunks(IN_LIST_CHUNK) {
                let mut sql = Sql::new(format!(
                    "SELECT tenant_id, member_id, email FROM {} WHERE tenant_id IN ",
                    tables.members
                ));
                let list = in_list(&mut sql, &tenant_ids);
                sql.push(&list);
                sql.push(" AND member_id IN ");
                let list = in_list(&mut sql, member_chunk);
                sql.push(&list);
                let rows: Vec<MemberState> = fetch_all_tx(tx, &sql).await?;
                for row in rows {
                    members.insert((row.tenant_id, row.member_id), row.email);
                }
            }
        }
        Ok(Self::new(tenants, members, events.len()))
    }

    fn new(
        tenants: HashMap<String, Option<(String, String)>>,
        members: HashMap<(String, String), String>,
        events: usize,
    ) -> Self {
        Self {
            tenants,
            members,
            changed_tenants: BTreeSet::new(),
            changed_members: BTreeSet::new(),
            rows: Vec::with_capacity(events),
        }
    }

    /// A member's name in summaries: their e-mail once known (member ids are never reused,
    /// so the e-mail stays right even after a removal).
    fn member_label(&self, tenant_id: &str, member_id: &str) -> String {
        self.members
            .get(&(tenant_id.to_owned(), member_id.to_owned()))
            .cloned()
            .unwrap_or_else(|| member_id.to_owned())
    }

    /// Records a tenant's new status; returns the `status` change and the tenant's label.
    fn status_change(&mut self, tenant_id: &str, to: TenantStatus) -> (FieldDiff, String) {
        let to = tenant_status_name(to);
        match self.tenants.get_mut(tenant_id) {
            Some(Some((slug, status))) => {
                let change = FieldDiff::new(std::mem::replace(status, to.to_owned()), to);
                self.changed_tenants.insert(tenant_id.to_owned());
                (change, slug.clone())
            }
            _ => (FieldDiff::set(to), tenant_id.to_owned()),
        }
    }

    fn remember_tenant(&mut self, tenant_id: &str, slug: &str, status: &str) {
        self.tenants.insert(
            tenant_id.to_owned(),
            Some((slug.to_owned(), status.to_owned())),
        );
        self.changed_tenants.insert(tenant_id.to_owned());
    }

    fn remember_member(&mut self, tenant_id: &str, member_id: &str, email: &str) {
        let key = (tenant_id.to_owned(), member_id.to_owned());
        self.members.insert(key.clone(), email.to_owned());
        self.changed_members.insert(key);
    }

    /// Writes the changed memory back, in multi-row statements (the timeline rows went out
    /// while they were folded).
    async fn store(self, tx: &mut ReadTx<'_>, tables: &Tables) -> Result<(), ProjectionError> {
        let tenant_rows = self
            .changed_tenants
            .iter()
            .filter_map(|id| {
                let (slug, status) = self.tenants.get(id)?.as_ref()?;
                Some(vec![
                    Arg::Text(id.clone()),
                    Arg::Text(slug.clone()),
                    Arg::Text(status.clone()),
                ])
            })
            .collect();
        insert_rows(
            tx,
            &format!("INSERT INTO {} (tenant_id, slug, status)", tables.tenants),
            "ON CONFLICT (tenant_id) DO UPDATE SET slug = excluded.slug, status = excluded.status",
            tenant_rows,
        )
        .await?;
        let member_rows = self
            .changed_members
            .iter()
            .filter_map(|key| {
                let email = self.members.get(key)?;
                Some(vec![
                    Arg::Text(key.0.clone()),
                    Arg::Text(key.1.clone()),
                    Arg::Text(email.clone()),
                ])
            })
            .collect();
        insert_rows(
            tx,
            &format!(
                "INSERT INTO {} (tenant_id, member_id, email)",
                tables.members
            ),
            "ON CONFLICT (tenant_id, member_id) DO UPDATE SET email = excluded.email",
            member_rows,
        )
        .await?;
        Ok(())
    }
}

/// The metadata's string values by key. Metadata is a JSON object of strings as cqrs-es
/// stores it; anything else means the ledger row is not what this version can read.
/// The metadata fields the timeline shows. Decoded straight into five fields (unknown keys
/// skipped), not into a map of every key: this runs once per event of a rebuild.
#[derive(Debug, Default, serde::Deserialize)]
struct AuditMetadata {
    #[serde(default, deserialize_with = "text")]
    tenant_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    actor_subject: Option<String>,
    #[serde(default, deserialize_with = "text")]
    actor_email: Option<String>,
    #[serde(default, deserialize_with = "text")]
    occurred_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    request_ip: Option<String>,
}

/// A metadata value as text: a non-empty string, anything else (null, a number) as absent.
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize as _;
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    })
}

fn metadata_of(event: &EventRecord) -> Result<AuditMetadata, ProjectionError> {
    serde_json::from_str(&event.metadata).map_err(|error| fold_error(event, error))
}

fn fold(
    batch: &mut AuditBatch,
    event: &EventRecord,
    metadata: AuditMetadata,
    payload: Decoded,
) -> Result<(), ProjectionError> {
    let described = match payload {
        Decoded::Tenant(decoded) => describe_tenant_event(batch, event, *decoded)?,
        Decoded::PlatformFlag(PlatformFlagEvent::PlatformTenantAssigned {
            tenant_id,
            previous,
        }) => {
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
        Decoded::SlugClaim(claim) => {
            let slug = &event.aggregate_id;
            let (summary, change, tenant_id) = match claim {
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
        Decoded::Other => Described::new(
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
        metadata.tenant_id.or(described.payload_tenant)
    };
    let Some(tenant_id) = tenant_id.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let actor_subject = metadata.actor_subject;
    let actor_email = metadata.actor_email;
    let search_key = [
        described.summary.as_str(),
        event.event_type.as_str(),
        actor_subject.as_deref().unwrap_or_default(),
        actor_email.as_deref().unwrap_or_default(),
    ]
    .join(&SEARCH_FIELD_SEPARATOR.to_string())
    .to_lowercase();
    let diff = serde_json::to_string(&described.diff).map_err(|error| fold_error(event, error))?;
    batch.rows.push(vec![
        Arg::Int(i64::try_from(event.position).unwrap_or(i64::MAX)),
        Arg::Text(tenant_id),
        Arg::Text(event.recorded_at.clone()),
        Arg::NullableText(metadata.occurred_at),
        Arg::NullableText(actor_subject),
        Arg::NullableText(actor_email.clone()),
        Arg::NullableText(actor_email.map(|e| e.trim().to_lowercase())),
        Arg::NullableText(metadata.request_ip),
        Arg::Text(event.event_type.clone()),
        Arg::Text(event.aggregate_type.clone()),
        Arg::Text(event.aggregate_id.clone()),
        Arg::Text(AuditOutcome::Success.as_str().to_owned()),
        Arg::Text(described.summary),
        Arg::Text(diff),
        Arg::Text(search_key),
    ]);
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TenantState {
    tenant_id: String,
    slug: String,
    status: String,
}

#[derive(sqlx::FromRow)]
struct MemberState {
    tenant_id: String,
    member_id: String,
    email: String,
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
        crate::builds::live_build(db, AuditTimeline::NAME, crate::builds::FIRST_BUILD).await?,
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
        crate::builds::live_build(db, AuditTimeline::NAME, crate::builds::FIRST_BUILD).await?,
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

#[cfg(test)]
mod tests {
    use dezky_domain::metadata::{
        KEY_ACTOR_EMAIL, KEY_ACTOR_SUBJECT, KEY_CORRELATION_ID, KEY_OCCURRED_AT, KEY_REQUEST_IP,
        KEY_TENANT_ID,
    };

    use super::AuditMetadata;

    /// The field names must be the metadata keys the ledger stores; a renamed key would
    /// otherwise silently blank a timeline column.
    #[test]
    fn audit_metadata_reads_the_ledgers_keys_and_ignores_blank_or_odd_values() {
        let stored = serde_json::json!({
            KEY_TENANT_ID: "t-1",
            KEY_ACTOR_SUBJECT: "user:7",
            KEY_ACTOR_EMAIL: "ada@example.eu",
            KEY_OCCURRED_AT: "2026-11-29T04:00:00.000000Z",
            KEY_REQUEST_IP: "",
            KEY_CORRELATION_ID: 42,
        });
        let read: AuditMetadata = serde_json::from_value(stored).expect("metadata");
        assert_eq!(read.tenant_id.as_deref(), Some("t-1"));
        assert_eq!(read.actor_subject.as_deref(), Some("user:7"));
        assert_eq!(read.actor_email.as_deref(), Some("ada@example.eu"));
        assert_eq!(
            read.occurred_at.as_deref(),
            Some("2026-11-29T04:00:00.000000Z")
        );
        assert_eq!(read.request_ip, None, "an empty value is no value");
    }
}
