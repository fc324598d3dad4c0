//! The tenant directory: one row per tenant and one per member, folded from the Tenant and
//! PlatformFlag aggregates, with the keyset-paginated queries the portals ask.
//!
//! # Tables (version 1)
//!
//! * `rm_tenants_v1`: one row per tenant (`tenant_id`, `slug`, `organization`,
//!   `organization_key` (lower case, for search and sort), `status`, `plan`, `seats`,
//!   `partner_id`, `is_platform_tenant`, `created_at`, `updated_at`, `deleted_at`,
//!   `member_count`, `admin_count`).
//! * `rm_tenants_v1_members`: one row per current member (`tenant_id`, `member_id`, `email`,
//!   `email_key`, `display_name`, `role`, `is_owner`, `status`, `has_mailbox`, `subject`).
//! * `rm_tenants_v1_platform`: the platform flag's holder (at most one row), kept so that a
//!   tenant created after the flag was assigned to its id still folds to the right value.
//!
//! Its queries page by keyset with the kit's cursors (`crate::sql`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::tenant::{
    claimed_email_spellings, recognises, MemberStatus, PlatformFlagEvent, Principal, Role,
    TenantEvent, TenantStatus, PLATFORM_FLAG_AGGREGATE_TYPE, TENANT_AGGREGATE_TYPE,
};
use serde::Serialize;
use serde_json::Value;

use crate::runner::Dialect;
use crate::sql::*;
pub use crate::sql::{
    Page, PageRequest, QueryError, DEFAULT_PAGE_SIZE, MAX_CURSOR_BYTES, MAX_PAGE_SIZE,
};
use crate::{Projection, ProjectionError, ReadTx};

fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Stored names of the domain's enums.
// ---------------------------------------------------------------------------------------------

/// The stored name of a tenant status (the same as its serde name).
pub fn tenant_status_name(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::PendingProvisioning => "pending_provisioning",
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
        TenantStatus::SoftDeleted => "soft_deleted",
        TenantStatus::Purged => "purged",
    }
}

fn parse_tenant_status(value: &str) -> Result<TenantStatus, QueryError> {
    Ok(match value {
        "pending_provisioning" => TenantStatus::PendingProvisioning,
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        "soft_deleted" => TenantStatus::SoftDeleted,
        "purged" => TenantStatus::Purged,
        other => {
            return Err(QueryError::StoredValue {
                column: "status",
                value: other.to_owned(),
            })
        }
    })
}

/// The stored name of a role (the same as its serde name).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Member => "member",
        Role::Admin => "admin",
    }
}

fn parse_role(value: &str) -> Result<Role, QueryError> {
    match value {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        other => Err(QueryError::StoredValue {
            column: "role",
            value: other.to_owned(),
        }),
    }
}

/// The stored name of a member status (the same as its serde name).
pub fn member_status_name(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Active => "active",
        MemberStatus::Suspended => "suspended",
    }
}

fn parse_member_status(value: &str) -> Result<MemberStatus, QueryError> {
    match value {
        "active" => Ok(MemberStatus::Active),
        "suspended" => Ok(MemberStatus::Suspended),
        other => Err(QueryError::StoredValue {
            column: "member status",
            value: other.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The projection.
// ---------------------------------------------------------------------------------------------

/// The tenant directory projection (name `tenants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantDirectory {
    version: u32,
}

/// The table names of one version of the directory.
#[derive(Debug, Clone)]
struct Tables {
    tenants: String,
    members: String,
    platform: String,
    /// The member columns to select from `members` (the build's schema decides).
    member_columns: &'static str,
}

impl Tables {
    fn of(version: u32) -> Self {
        let tenants = format!("rm_{}_v{version}", TenantDirectory::NAME);
        Self {
            members: format!("{tenants}_members"),
            platform: format!("{tenants}_platform"),
            tenants,
            member_columns: MEMBER_COLUMNS,
        }
    }
}

/// The tables of the build queries read.
async fn live_tables(db: &Db) -> Result<Tables, sqlx::Error> {
    let (build, schema_version) = crate::builds::live_build_and_schema(
        db,
        TenantDirectory::NAME,
        TenantDirectory::FIRST_BUILD,
        TenantDirectory::VERSION,
    )
    .await?;
    let mut tables = Tables::of(build);
    tables.member_columns = if schema_version >= 2 {
        MEMBER_COLUMNS
    } else {
        // A build of schema 1 (serving while its successor is built) has no issuer column.
        MEMBER_COLUMNS_SCHEMA_1
    };
    Ok(tables)
}

impl TenantDirectory {
    /// The projection's name.
    pub const NAME: &'static str = "tenants";
    /// The schema version of this code's fold and tables.
    pub const VERSION: u32 = 2;

    /// The build a fresh database starts with ([`crate::builds::FIRST_BUILD`]).
    pub const FIRST_BUILD: u32 = crate::builds::FIRST_BUILD;

    /// The first build.
    pub fn new() -> Self {
        Self {
            version: Self::FIRST_BUILD,
        }
    }

    /// Another version of the same fold, built in its own tables (rebuilds beside the live
    /// version, and the projection-equals-replay check).
    pub fn with_version(version: u32) -> Self {
        Self { version }
    }

    /// The table holding one row per tenant in this version.
    pub fn tenants_table(&self) -> String {
        Tables::of(self.version).tenants
    }

    /// The table holding one row per member in this version.
    pub fn members_table(&self) -> String {
        Tables::of(self.version).members
    }

    fn tables(&self) -> Tables {
        Tables::of(self.version)
    }
}

impl Default for TenantDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl Projection for TenantDirectory {
    read_model_identity!();

    fn tables(&self) -> Vec<String> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = self.tables();
        vec![tenants, members, platform]
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = self.tables();
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {tenants} (\
                 tenant_id TEXT{c} PRIMARY KEY, \
                 slug TEXT{c} NOT NULL, \
                 organization TEXT NOT NULL, \
                 organization_key TEXT{c} NOT NULL, \
                 status TEXT NOT NULL, \
                 plan TEXT NOT NULL, \
                 seats BIGINT NOT NULL, \
                 partner_id TEXT, \
                 is_platform_tenant BOOLEAN NOT NULL, \
                 created_at TEXT{c} NOT NULL, \
                 updated_at TEXT NOT NULL, \
                 deleted_at TEXT, \
                 member_count BIGINT NOT NULL, \
                 admin_count BIGINT NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {members} (\
                 tenant_id TEXT{c} NOT NULL, \
                 member_id TEXT{c} NOT NULL, \
                 email TEXT NOT NULL, \
                 email_key TEXT{c} NOT NULL, \
                 display_name TEXT NOT NULL, \
                 role TEXT NOT NULL, \
                 is_owner BOOLEAN NOT NULL, \
                 status TEXT NOT NULL, \
                 has_mailbox BOOLEAN NOT NULL, \
                 subject TEXT, \
                 subject_issuer TEXT, \
                 PRIMARY KEY (tenant_id, member_id))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {platform} (\
                 singleton BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL)"
            ),
        ]
    }

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // The directory's listings and look-ups; the fold itself reads rows by primary key.
        let Tables {
            tenants, members, ..
        } = self.tables();
        vec![
            format!("CREATE INDEX IF NOT EXISTS {tenants}_by_slug ON {tenants} (slug, tenant_id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_organization \
                 ON {tenants} (organization_key, tenant_id)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_created ON {tenants} (created_at, tenant_id)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {tenants}_by_seats ON {tenants} (seats, tenant_id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_partner ON {tenants} (partner_id, slug)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {members}_by_subject ON {members} (subject, tenant_id)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {members}_by_email ON {members} (email_key, tenant_id)"
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        // The batch is folded in memory: every row it touches is read first (one query per
        // table), the events are applied in Rust, and the changed rows are written back with
        // multi-row statements, so a batch costs a handful of round trips, not one per event.
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            match event.aggregate_type.as_str() {
                TENANT_AGGREGATE_TYPE => {
                    decoded.push((event, DirectoryEvent::Tenant(Box::new(decode(event)?))));
                }
                PLATFORM_FLAG_AGGREGATE_TYPE => {
                    let PlatformFlagEvent::PlatformTenantAssigned { tenant_id, .. } =
                        decode(event)?;
                    decoded.push((event, DirectoryEvent::PlatformFlag(tenant_id)));
                }
                // Slug claims, probes and aggregates this version does not know change nothing
                // in the directory.
                _ => {}
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let tables = self.tables();
        let mut batch = DirectoryBatch::load(tx, &tables, &decoded).await?;
        for (record, event) in decoded {
            match event {
                DirectoryEvent::Tenant(event) => batch.fold_tenant_event(record, *event),
                DirectoryEvent::PlatformFlag(holder) => {
                    batch.fold_platform_flag(&record.recorded_at, &holder);
                }
            }
        }
        batch.store(tx, &tables).await?;
        Ok(())
    }
}

/// An event the directory folds, decoded.
enum DirectoryEvent {
    /// Boxed: tenant events are far larger than the flag's.
    Tenant(Box<TenantEvent>),
    /// The platform flag's new holder.
    PlatformFlag(String),
}

/// A member row as stored (with its tenant and search key).
#[derive(Debug, Clone, sqlx::FromRow)]
struct StoredMember {
    tenant_id: String,
    member_id: String,
    email: String,
    email_key: String,
    display_name: String,
    role: String,
    is_owner: bool,
    status: String,
    has_mailbox: bool,
    subject: Option<String>,
    subject_issuer: Option<String>,
}

/// The rows one batch touches, as the fold changes them before they are written back.
struct DirectoryBatch {
    /// Every tenant the batch names (`None`: no row, which updates leave alone, as an
    /// `UPDATE` of a missing row would), and the platform flag's holders when it moves.
    tenants: HashMap<String, Option<TenantRecord>>,
    /// Current members by tenant and member id: every member of a tenant whose events act on
    /// all its members (a purge, an ownership change), otherwise only the members the batch's
    /// events name. Member counts are therefore kept by difference, not recounted.
    members: HashMap<String, BTreeMap<String, StoredMember>>,
    /// The platform flag's holder.
    platform: Option<String>,
    changed_tenants: BTreeSet<String>,
    /// Member rows to write back: upserted when present in `members`, deleted when not.
    changed_members: BTreeSet<(String, String)>,
    platform_changed: bool,
    /// Tenants the batch looked for and found no row of.
    absent_tenants: HashSet<String>,
    /// Members the batch looked for and found no row of.
    absent_members: AbsentMembers,
}

/// Which (tenant, member) rows a batch knows not to exist: named and not found, or of a
/// tenant whose members were all read and not among them.
struct AbsentMembers {
    named: HashSet<(String, String)>,
    whole_tenants: HashSet<String>,
    stored: HashSet<(String, String)>,
}

impl AbsentMembers {
    fn contains(&self, key: &(String, String)) -> bool {
        self.named.contains(key)
            || (self.whole_tenants.contains(&key.0) && !self.stored.contains(key))
    }
}

impl DirectoryBatch {
    /// Reads the rows `events` touch, in one query per table (more only past the bound
    /// parameter limit).
    async fn load(
        tx: &mut ReadTx<'_>,
        tables: &Tables,
        events: &[(&EventRecord, DirectoryEvent)],
    ) -> Result<Self, ProjectionError> {
        let mut tenant_ids = BTreeSet::new();
        // Tenants whose events act on every member, and the (tenant, member) pairs the other
        // events name: loading only those keeps a batch's reads proportional to its events,
        // not to the size of the tenants it touches.
        let mut whole_tenants = BTreeSet::new();
        let mut named = BTreeSet::new();
        let mut platform_moves = false;
        let mut needs_holder = false;
        for (record, event) in events {
            match event {
                DirectoryEvent::Tenant(event) => {
                    let tenant_id = &record.aggregate_id;
                    tenant_ids.insert(tenant_id.clone());
                    needs_holder |= matches!(**event, TenantEvent::TenantCreated { .. });
                    match &**event {
                        TenantEvent::TenantPurged { .. }
                        | TenantEvent::OwnershipTransferred { .. }
                        | TenantEvent::MemberInvited { owner: true, .. } => {
                            whole_tenants.insert(tenant_id.clone());
                        }
                        TenantEvent::MemberInvited { member_id, .. }
                        | TenantEvent::MemberAdded { member_id, .. }
                        | TenantEvent::MemberRoleChanged { member_id, .. }
                        | TenantEvent::MemberSuspended { member_id }
                        | TenantEvent::MemberResumed { member_id }
                        | TenantEvent::MemberRemoved { member_id }
                        | TenantEvent::MemberSubjectLinked { member_id, .. }
                        | TenantEvent::MemberMailboxCreated { member_id } => {
                            named.insert((tenant_id.clone(), member_id.clone()));
                        }
                        _ => {}
                    }
                }
                DirectoryEvent::PlatformFlag(holder) => {
                    tenant_ids.insert(holder.clone());
                    platform_moves = true;
                }
            }
        }
        let tenant_ids: Vec<String> = tenant_ids.into_iter().collect();
        named.retain(|(tenant_id, _)| !whole_tenants.contains(tenant_id));
        let whole_tenants: Vec<String> = whole_tenants.into_iter().collect();
        let mut tenants: HashMap<String, Option<TenantRecord>> =
            tenant_ids.iter().map(|id| (id.clone(), None)).collect();
        let head = format!("SELECT {TENANT_COLUMNS} FROM {} WHERE", tables.tenants);
        let rows: Vec<TenantRecord> = fetch_by_keys(tx, &head, "tenant_id", &tenant_ids).await?;
        for row in rows {
            tenants.insert(row.tenant_id.clone(), Some(row));
        }
        if platform_moves {
            // The flag's move also clears it on whoever holds it now.
            let mut sql = Sql::new(format!(
                "SELECT {TENANT_COLUMNS} FROM {} WHERE is_platform_tenant = ",
                tables.tenants
            ));
            let p = sql.arg(Arg::Bool(true));
            sql.push(&p);
            let rows: Vec<TenantRecord> = fetch_all_tx(tx, &sql).await?;
            for row in rows {
                tenants
                    .entry(row.tenant_id.clone())
                    .or_insert_with(|| Some(row));
            }
        }
        let mut members: HashMap<String, BTreeMap<String, StoredMember>> = HashMap::new();
        let head = format!(
            "SELECT tenant_id, {MEMBER_COLUMNS}, email_key FROM {} WHERE",
            tables.members
        );
        let mut rows: Vec<StoredMember> =
            fetch_by_keys(tx, &head, "tenant_id", &whole_tenants).await?;
        let named: Vec<(String, String)> = named.into_iter().collect();
        rows.extend(fetch_by_pairs::<StoredMember>(tx, &head, &named).await?);
        for row in rows {
            members
                .entry(row.tenant_id.clone())
                .or_default()
                .insert(row.member_id.clone(), row);
        }
        // What was looked for and not found has no row yet: written back, such rows can go in
        // without `ON CONFLICT` (see [`Self::store`]).
        let absent_tenants = tenants
            .iter()
            .filter(|(_, row)| row.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let is_stored = |t: &str, m: &str| members.get(t).is_some_and(|ms| ms.contains_key(m));
        let absent_named = named
            .iter()
            .filter(|(t, m)| !is_stored(t, m))
            .cloned()
            .collect();
        let whole_tenants = whole_tenants.into_iter().collect();
        let platform = if needs_holder || platform_moves {
            #[derive(sqlx::FromRow)]
            struct Holder {
                tenant_id: String,
            }
            let holder: Option<Holder> = fetch_optional_tx(
                tx,
                &format!(
                    "SELECT tenant_id FROM {} WHERE singleton = 1",
                    tables.platform
                ),
                &[],
            )
            .await?;
            holder.map(|h| h.tenant_id)
        } else {
            None
        };
        let absent_members = AbsentMembers {
            named: absent_named,
            whole_tenants,
            stored: members
                .iter()
                .flat_map(|(t, ms)| ms.keys().map(|m| (t.clone(), m.clone())))
                .collect(),
        };
        Ok(Self {
            tenants,
            members,
            platform,
            changed_tenants: BTreeSet::new(),
            changed_members: BTreeSet::new(),
            platform_changed: false,
            absent_tenants,
            absent_members,
        })
    }

    fn fold_platform_flag(&mut self, recorded_at: &str, holder: &str) {
        self.platform = Some(holder.to_owned());
        self.platform_changed = true;
        // Only the rows whose flag flips are touched, so `updated_at` of the others stays.
        for (id, row) in &mut self.tenants {
            let Some(row) = row else { continue };
            if id == holder || row.is_platform_tenant {
                row.is_platform_tenant = id == holder;
                row.updated_at = recorded_at.to_owned();
                self.changed_tenants.insert(id.clone());
            }
        }
    }

    /// Sets `updated_at` and whatever `change` sets on an existing tenant row.
    fn touch(&mut self, tenant_id: &str, at: &str, change: impl FnOnce(&mut TenantRecord)) {
        if let Some(Some(row)) = self.tenants.get_mut(tenant_id) {
            row.updated_at = at.to_owned();
            change(row);
            self.changed_tenants.insert(tenant_id.to_owned());
        }
    }

    /// Marks a membership change on the tenant row; the counts themselves were adjusted by
    /// [`Self::count_change`] as each member changed.
    fn recount(&mut self, tenant_id: &str, at: &str) {
        self.touch(tenant_id, at, |_| {});
    }

    /// Adjusts a tenant's member and admin counts for one member going from `before` to
    /// `after` (`None`: not a member). The stored counts are those of every member row, so the
    /// difference keeps them exact without reading members the batch does not name.
    fn count_change(
        &mut self,
        tenant_id: &str,
        before: Option<&StoredMember>,
        after: Option<&StoredMember>,
    ) {
        let weight = |m: Option<&StoredMember>| match m {
            None => (0, 0),
            Some(m) => (1, i64::from(m.role == role_name(Role::Admin))),
        };
        let (members_before, admins_before) = weight(before);
        let (members_after, admins_after) = weight(after);
        if let Some(Some(row)) = self.tenants.get_mut(tenant_id) {
            row.member_count += members_after - members_before;
            row.admin_count += admins_after - admins_before;
        }
    }

    fn tenant_members(&mut self, tenant_id: &str) -> &mut BTreeMap<String, StoredMember> {
        self.members.entry(tenant_id.to_owned()).or_default()
    }

    /// Changes an existing member row.
    fn set_member(
        &mut self,
        tenant_id: &str,
        member_id: &str,
        change: impl FnOnce(&mut StoredMember),
    ) {
        if let Some(member) = self.tenant_members(tenant_id).get_mut(member_id) {
            let before = member.clone();
            change(member);
            let after = member.clone();
            self.count_change(tenant_id, Some(&before), Some(&after));
            self.changed_members
                .insert((tenant_id.to_owned(), member_id.to_owned()));
        }
    }

    fn insert_member(&mut self, tenant_id: &str, member: NewMemberRow<'_>) {
        let members = self.tenant_members(tenant_id);
        let mut changed = Vec::new();
        if member.owner {
            for (id, m) in members.iter_mut() {
                m.is_owner = false;
                changed.push(id.clone());
            }
        }
        // Like the aggregate's fold, a (re)inserted member starts active and unlinked; an
        // existing owner stays owner.
        let was_owner = members.get(member.member_id).is_some_and(|m| m.is_owner);
        let inserted = StoredMember {
            tenant_id: tenant_id.to_owned(),
            member_id: member.member_id.to_owned(),
            email: member.email.to_owned(),
            email_key: email_key(member.email),
            display_name: member.display_name.to_owned(),
            role: role_name(member.role).to_owned(),
            is_owner: was_owner || member.owner,
            status: member_status_name(MemberStatus::Active).to_owned(),
            has_mailbox: member.has_mailbox,
            subject: None,
            subject_issuer: None,
        };
        let before = members.insert(member.member_id.to_owned(), inserted.clone());
        self.count_change(tenant_id, before.as_ref(), Some(&inserted));
        changed.push(member.member_id.to_owned());
        for id in changed {
            self.changed_members.insert((tenant_id.to_owned(), id));
        }
    }

    fn remove_members(&mut self, tenant_id: &str, member_id: Option<&str>) {
        let members = self.tenant_members(tenant_id);
        let removed: Vec<StoredMember> = match member_id {
            Some(id) => members.remove(id).into_iter().collect(),
            None => std::mem::take(members).into_values().collect(),
        };
        for member in removed {
            self.count_change(tenant_id, Some(&member), None);
            self.changed_members
                .insert((tenant_id.to_owned(), member.member_id));
        }
    }

    fn fold_tenant_event(&mut self, record: &EventRecord, event: TenantEvent) {
        // The aggregate id is the tenant: later events carry no tenant id of their own.
        let tenant_id = record.aggregate_id.as_str();
        let at = record.recorded_at.as_str();
        let status = |status: TenantStatus| tenant_status_name(status).to_owned();
        match event {
            TenantEvent::TenantCreated {
                organization_name,
                slug,
                plan,
                seats,
                partner_id,
                created_at,
                ..
            } => {
                let is_platform = self.platform.as_deref() == Some(tenant_id);
                let organization_key = organization_name.to_lowercase();
                let created_at = normalized_time(&created_at);
                let entry = self.tenants.entry(tenant_id.to_owned()).or_default();
                match entry {
                    // A second creation (never decided, but the fold is total) resets what
                    // creation sets and keeps the flag and the counts.
                    Some(row) => {
                        row.slug = slug;
                        row.organization = organization_name;
                        row.organization_key = organization_key;
                        row.status = status(TenantStatus::PendingProvisioning);
                        row.plan = plan;
                        row.seats = i64::from(seats);
                        row.partner_id = partner_id;
                        row.created_at = created_at;
                        row.updated_at = at.to_owned();
                        row.deleted_at = None;
                    }
                    None => {
                        *entry = Some(TenantRecord {
                            tenant_id: tenant_id.to_owned(),
                            slug,
                            organization: organization_name,
                            organization_key,
                            status: status(TenantStatus::PendingProvisioning),
                            plan,
                            seats: i64::from(seats),
                            partner_id,
                            is_platform_tenant: is_platform,
                            created_at,
                            updated_at: at.to_owned(),
                            deleted_at: None,
                            member_count: 0,
                            admin_count: 0,
                        });
                    }
                }
                self.changed_tenants.insert(tenant_id.to_owned());
            }
            TenantEvent::TenantProvisioned {} | TenantEvent::TenantResumed {} => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Active)
                });
            }
            TenantEvent::TenantSuspended {} => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Suspended);
                });
            }
            TenantEvent::TenantSoftDeleted { deleted_at } => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::SoftDeleted);
                    row.deleted_at = Some(normalized_time(&deleted_at));
                });
            }
            TenantEvent::TenantPurged { .. } => {
                // A purged tenant keeps its directory row (operators see what was purged) but
                // not its members: nobody acts in it any more, and their personal data has no
                // use here once the tenant is gone (the ledger keeps the record).
                self.remove_members(tenant_id, None);
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Purged)
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::BillingInfoUpdated { .. }
            | TenantEvent::BrandingUpdated { .. }
            | TenantEvent::SecurityPolicyUpdated { .. } => {
                // The directory shows none of these fields, but the tenant did change.
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberInvited {
                member_id,
                email,
                display_name,
                role,
                owner,
                has_mailbox,
            } => {
                let member = NewMemberRow {
                    member_id: &member_id,
                    email: &email,
                    display_name: &display_name,
                    role,
                    owner,
                    has_mailbox,
                };
                self.insert_member(tenant_id, member);
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberAdded {
                member_id,
                email,
                display_name,
                role,
                has_mailbox,
            } => {
                let member = NewMemberRow {
                    member_id: &member_id,
                    email: &email,
                    display_name: &display_name,
                    role,
                    owner: false,
                    has_mailbox,
                };
                self.insert_member(tenant_id, member);
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberRoleChanged { member_id, to, .. } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.role = role_name(to).to_owned();
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::OwnershipTransferred { to_member_id, .. } => {
                let members = self.tenant_members(tenant_id);
                let flipped: Vec<String> = members
                    .iter_mut()
                    .filter(|(id, m)| m.is_owner || **id == to_member_id)
                    .map(|(id, m)| {
                        m.is_owner = *id == to_member_id;
                        id.clone()
                    })
                    .collect();
                for id in flipped {
                    self.changed_members.insert((tenant_id.to_owned(), id));
                }
                self.set_member(tenant_id, &to_member_id, |m| {
                    m.role = role_name(Role::Admin).to_owned();
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberSuspended { member_id } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.status = member_status_name(MemberStatus::Suspended).to_owned();
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberResumed { member_id } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.status = member_status_name(MemberStatus::Active).to_owned();
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberLogoutRequested { .. }
            | TenantEvent::MemberPasswordResetRequested { .. } => {
                // Requests for the member saga; nothing the directory shows changes.
            }
            TenantEvent::MemberRemoved { member_id } => {
                self.remove_members(tenant_id, Some(&member_id));
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberSubjectLinked {
                member_id,
                subject,
                issuer,
            } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.subject = Some(subject);
                    m.subject_issuer = issuer;
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberMailboxCreated { member_id } => {
                self.set_member(tenant_id, &member_id, |m| m.has_mailbox = true);
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberAliasAdded { .. }
            | TenantEvent::MemberAliasRemoved { .. }
            | TenantEvent::MailingListCreated { .. }
            | TenantEvent::MailingListRecipientsSet { .. }
            | TenantEvent::MailingListDeleted { .. } => {
                // Addresses are the mail_addresses read model's; the tenant did change.
                self.touch(tenant_id, at, |_| {});
            }
        }
    }

    /// Writes the changed rows back: removed members deleted, the other changed rows
    /// upserted whole, each kind in as few statements as the bound-parameter limit allows.
    async fn store(self, tx: &mut ReadTx<'_>, tables: &Tables) -> Result<(), ProjectionError> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = tables;
        let mut removed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        // Rows the batch knows to be new are appended (COPY on PostgreSQL: no conflict check,
        // no arrays to decode); the others are upserted.
        let mut new_member_rows = Vec::new();
        let mut member_rows = Vec::new();
        for key in &self.changed_members {
            let (tenant_id, member_id) = key;
            let rows = if self.absent_members.contains(key) {
                &mut new_member_rows
            } else {
                &mut member_rows
            };
            match self.members.get(tenant_id).and_then(|m| m.get(member_id)) {
                Some(m) => rows.push(vec![
                    Arg::Text(m.tenant_id.clone()),
                    Arg::Text(m.member_id.clone()),
                    Arg::Text(m.email.clone()),
                    Arg::Text(m.email_key.clone()),
                    Arg::Text(m.display_name.clone()),
                    Arg::Text(m.role.clone()),
                    Arg::Bool(m.is_owner),
                    Arg::Text(m.status.clone()),
                    Arg::Bool(m.has_mailbox),
                    Arg::NullableText(m.subject.clone()),
                    Arg::NullableText(m.subject_issuer.clone()),
                ]),
                None => removed
                    .entry(tenant_id.as_str())
                    .or_default()
                    .push(member_id.clone()),
            }
        }
        if let ReadTx::Postgres(conn) = tx {
            // One statement for the whole batch: the (tenant, member) pairs as two arrays.
            let (tenant_ids, member_ids): (Vec<String>, Vec<String>) = removed
                .iter()
                .flat_map(|(t, ids)| ids.iter().map(|m| ((*t).to_owned(), m.clone())))
                .unzip();
            if !tenant_ids.is_empty() {
                sqlx::query(&format!(
                    "DELETE FROM {members} WHERE (tenant_id, member_id) IN \
                     (SELECT * FROM UNNEST($1::text[], $2::text[]))"
                ))
                .bind(tenant_ids)
                .bind(member_ids)
                .execute(&mut **conn)
                .await?;
            }
            removed.clear();
        }
        for (tenant_id, ids) in removed {
            for chunk in ids.chunks(IN_LIST_CHUNK) {
                let mut sql = Sql::new(format!("DELETE FROM {members} WHERE tenant_id = "));
                let t = sql.arg(Arg::Text(tenant_id.to_owned()));
                sql.push(&t);
                sql.push(" AND member_id IN ");
                let list = in_list(&mut sql, chunk);
                sql.push(&list);
                execute(tx, &sql.text, &sql.args).await?;
            }
        }
        let member_columns = "tenant_id, member_id, email, email_key, display_name, role, \
                              is_owner, status, has_mailbox, subject, subject_issuer";
        if !new_member_rows.is_empty() {
            let mut appender = RowAppender::start(tx, members, member_columns).await?;
            appender.push(new_member_rows).await?;
            appender.finish().await?;
        }
        insert_rows(
            tx,
            &format!("INSERT INTO {members} ({member_columns})"),
            "ON CONFLICT (tenant_id, member_id) DO UPDATE SET email = excluded.email, \
             email_key = excluded.email_key, display_name = excluded.display_name, \
             role = excluded.role, is_owner = excluded.is_owner, status = excluded.status, \
             has_mailbox = excluded.has_mailbox, subject = excluded.subject, \
             subject_issuer = excluded.subject_issuer",
            member_rows,
        )
        .await?;
        let (new_tenant_rows, tenant_rows): (Vec<_>, Vec<_>) = self
            .changed_tenants
            .iter()
            .filter_map(|id| self.tenants.get(id).and_then(Option::as_ref))
            .map(|t| {
                let row = vec![
                    Arg::Text(t.tenant_id.clone()),
                    Arg::Text(t.slug.clone()),
                    Arg::Text(t.organization.clone()),
                    Arg::Text(t.organization_key.clone()),
                    Arg::Text(t.status.clone()),
                    Arg::Text(t.plan.clone()),
                    Arg::Int(t.seats),
                    Arg::NullableText(t.partner_id.clone()),
                    Arg::Bool(t.is_platform_tenant),
                    Arg::Text(t.created_at.clone()),
                    Arg::Text(t.updated_at.clone()),
                    Arg::NullableText(t.deleted_at.clone()),
                    Arg::Int(t.member_count),
                    Arg::Int(t.admin_count),
                ];
                (self.absent_tenants.contains(&t.tenant_id), row)
            })
            .partition(|(new, _)| *new);
        let strip = |rows: Vec<(bool, Vec<Arg>)>| -> Vec<Vec<Arg>> {
            rows.into_iter().map(|(_, row)| row).collect()
        };
        if !new_tenant_rows.is_empty() {
            let mut appender = RowAppender::start(tx, tenants, TENANT_COLUMNS).await?;
            appender.push(strip(new_tenant_rows)).await?;
            appender.finish().await?;
        }
        let tenant_rows = strip(tenant_rows);
        insert_rows(
            tx,
            &format!("INSERT INTO {tenants} ({TENANT_COLUMNS})"),
            "ON CONFLICT (tenant_id) DO UPDATE SET slug = excluded.slug, \
             organization = excluded.organization, \
             organization_key = excluded.organization_key, status = excluded.status, \
             plan = excluded.plan, seats = excluded.seats, partner_id = excluded.partner_id, \
             is_platform_tenant = excluded.is_platform_tenant, \
             created_at = excluded.created_at, updated_at = excluded.updated_at, \
             deleted_at = excluded.deleted_at, member_count = excluded.member_count, \
             admin_count = excluded.admin_count",
            tenant_rows,
        )
        .await?;
        if let (true, Some(holder)) = (self.platform_changed, self.platform) {
            execute(
                tx,
                &format!(
                    "INSERT INTO {platform} (singleton, tenant_id) VALUES (1, $1) \
                     ON CONFLICT (singleton) DO UPDATE SET tenant_id = excluded.tenant_id"
                ),
                &[Arg::Text(holder)],
            )
            .await?;
        }
        Ok(())
    }
}

struct NewMemberRow<'a> {
    member_id: &'a str,
    email: &'a str,
    display_name: &'a str,
    role: Role,
    owner: bool,
    has_mailbox: bool,
}

/// E-mail addresses compare trimmed and case-insensitively, as the aggregate compares them.
fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Rows and queries.
// ---------------------------------------------------------------------------------------------

/// A tenant as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRow {
    /// The tenant id.
    pub id: String,
    /// The slug.
    pub slug: String,
    /// The organization's name.
    pub organization: String,
    /// Where the tenant is in its lifecycle.
    pub status: TenantStatus,
    /// The plan id.
    pub plan: String,
    /// Seats.
    pub seats: u32,
    /// The owning partner, if sold through one.
    pub partner_id: Option<String>,
    /// Whether this is the platform tenant.
    pub is_platform_tenant: bool,
    /// When it was created (from the creating command, UTC).
    pub created_at: String,
    /// When the ledger recorded the last event that changed this row.
    pub updated_at: String,
    /// When it was soft-deleted.
    pub deleted_at: Option<String>,
    /// Current members (all statuses).
    pub member_count: u32,
    /// Current members with the admin role (all statuses).
    pub admin_count: u32,
}

/// A member of a tenant, with the role they hold in that tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// The member id.
    pub member_id: String,
    /// Sign-in e-mail.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role in this tenant.
    pub role: Role,
    /// Whether the member owns the tenant.
    pub is_owner: bool,
    /// Whether the member can sign in.
    pub status: MemberStatus,
    /// Whether the member has a workspace mailbox.
    pub has_mailbox: bool,
    /// The linked SSO subject.
    pub subject: Option<String>,
    /// The issuer of the linked subject (`None` before linking and for links recorded before
    /// issuers were).
    pub subject_issuer: Option<String>,
}

/// A tenant with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantDetail {
    /// The tenant.
    pub tenant: TenantRow,
    /// Its current members: the owner first, then by e-mail.
    pub members: Vec<MemberRow>,
}

/// Which tenants a directory list returns. Every field narrows the list; `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFilter {
    /// Case-insensitive substring of the slug or the organization's name.
    pub search: Option<String>,
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
    /// Only tenants of this partner.
    pub partner_id: Option<String>,
    /// Only tenants on this plan.
    pub plan: Option<String>,
}

/// The column a directory list is sorted by; ties are broken by tenant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantSortField {
    /// By slug.
    #[default]
    Slug,
    /// By organization name, case-insensitively.
    Organization,
    /// By creation time.
    CreatedAt,
    /// By seats.
    Seats,
}

/// The order of a directory list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantSort {
    /// The column.
    pub field: TenantSortField,
    /// Largest first (the tie-breaker descends too).
    pub descending: bool,
}

impl TenantSortField {
    fn column(self) -> &'static str {
        match self {
            TenantSortField::Slug => "slug",
            TenantSortField::Organization => "organization_key",
            TenantSortField::CreatedAt => "created_at",
            TenantSortField::Seats => "seats",
        }
    }
}

impl TenantSort {
    /// The tag a cursor carries, so a cursor of one sort is refused by another.
    fn tag(self) -> String {
        let direction = if self.descending { "desc" } else { "asc" };
        format!("tenants:{}:{direction}", self.field.column())
    }

    fn key_of(self, record: &TenantRecord) -> Value {
        match self.field {
            TenantSortField::Slug => Value::from(record.slug.clone()),
            TenantSortField::Organization => Value::from(record.organization_key.clone()),
            TenantSortField::CreatedAt => Value::from(record.created_at.clone()),
            TenantSortField::Seats => Value::from(record.seats),
        }
    }

    /// The cursor's key as an argument of this sort's type; a key of another type means the
    /// cursor was not issued for this sort.
    fn key_arg(self, key: Value) -> Result<Arg, QueryError> {
        match (self.field, key) {
            (TenantSortField::Seats, Value::Number(n)) => {
                n.as_i64().map(Arg::Int).ok_or(QueryError::InvalidCursor)
            }
            (TenantSortField::Seats, _) => Err(QueryError::InvalidCursor),
            (_, Value::String(s)) => Ok(Arg::Text(s)),
            (_, _) => Err(QueryError::InvalidCursor),
        }
    }
}

const TENANT_COLUMNS: &str = "tenant_id, slug, organization, organization_key, status, plan, \
     seats, partner_id, is_platform_tenant, created_at, updated_at, deleted_at, member_count, \
     admin_count";

#[derive(sqlx::FromRow)]
struct TenantRecord {
    tenant_id: String,
    slug: String,
    organization: String,
    organization_key: String,
    status: String,
    plan: String,
    seats: i64,
    partner_id: Option<String>,
    is_platform_tenant: bool,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    member_count: i64,
    admin_count: i64,
}

impl TenantRecord {
    fn into_row(self) -> Result<TenantRow, QueryError> {
        Ok(TenantRow {
            status: parse_tenant_status(&self.status)?,
            id: self.tenant_id,
            slug: self.slug,
            organization: self.organization,
            plan: self.plan,
            seats: to_u32(self.seats),
            partner_id: self.partner_id,
            is_platform_tenant: self.is_platform_tenant,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            member_count: to_u32(self.member_count),
            admin_count: to_u32(self.admin_count),
        })
    }
}

const MEMBER_COLUMNS: &str =
    "member_id, email, display_name, role, is_owner, status, has_mailbox, subject, subject_issuer";
/// [`MEMBER_COLUMNS`] of a schema-1 build, which stored no issuer.
const MEMBER_COLUMNS_SCHEMA_1: &str = "member_id, email, display_name, role, is_owner, status, \
     has_mailbox, subject, CAST(NULL AS TEXT) AS subject_issuer";

#[derive(sqlx::FromRow)]
struct MemberRecord {
    member_id: String,
    email: String,
    display_name: String,
    role: String,
    is_owner: bool,
    status: String,
    has_mailbox: bool,
    subject: Option<String>,
    subject_issuer: Option<String>,
}

impl MemberRecord {
    fn into_row(self) -> Result<MemberRow, QueryError> {
        Ok(MemberRow {
            role: parse_role(&self.role)?,
            status: parse_member_status(&self.status)?,
            member_id: self.member_id,
            email: self.email,
            display_name: self.display_name,
            is_owner: self.is_owner,
            has_mailbox: self.has_mailbox,
            subject: self.subject,
            subject_issuer: self.subject_issuer,
        })
    }
}

/// Appends the filter's conditions (each preceded by `AND`).
fn push_tenant_filter(sql: &mut Sql, filter: &TenantFilter) {
    if let Some(search) = filter.search.as_deref().map(str::trim) {
        if !search.is_empty() {
            let p = sql.arg(Arg::Text(like_pattern(search)));
            sql.push(&format!(
                " AND (slug LIKE {p} ESCAPE '\\' OR organization_key LIKE {p} ESCAPE '\\')"
            ));
        }
    }
    if let Some(status) = filter.status {
        let p = sql.arg(Arg::Text(tenant_status_name(status).to_owned()));
        sql.push(&format!(" AND status = {p}"));
    }
    if let Some(partner_id) = &filter.partner_id {
        let p = sql.arg(Arg::Text(partner_id.clone()));
        sql.push(&format!(" AND partner_id = {p}"));
    }
    if let Some(plan) = &filter.plan {
        let p = sql.arg(Arg::Text(plan.clone()));
        sql.push(&format!(" AND plan = {p}"));
    }
}

/// Lists tenants matching `filter`, in `sort` order, one page at a time.
pub async fn list_tenants(
    db: &Db,
    filter: &TenantFilter,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    list_in(&live_tables(db).await?, db, filter, sort, page).await
}

async fn list_in(
    tables: &Tables,
    db: &Db,
    filter: &TenantFilter,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    let size = page.checked_size()?;
    let tag = sort.tag();
    let after = match &page.after {
        Some(cursor) => {
            let (key, id) = decode_cursor(cursor, &tag)?;
            Some((sort.key_arg(key)?, id))
        }
        None => None,
    };

    let mut count = Sql::new(format!(
        "SELECT COUNT(*) FROM {} WHERE 1 = 1",
        tables.tenants
    ));
    push_tenant_filter(&mut count, filter);
    let total_count = fetch_count(db, &count).await?;

    let mut sql = Sql::new(format!(
        "SELECT {TENANT_COLUMNS} FROM {} WHERE 1 = 1",
        tables.tenants
    ));
    push_tenant_filter(&mut sql, filter);
    let column = sort.field.column();
    let (cmp, direction) = if sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((key, id)) = after {
        let k = sql.arg(key);
        let i = sql.arg(Arg::Text(id));
        sql.push(&format!(
            " AND ({column} {cmp} {k} OR ({column} = {k} AND tenant_id {cmp} {i}))"
        ));
    }
    // One row more than asked tells whether another page follows.
    let limit = sql.arg(Arg::Int(i64::from(size) + 1));
    sql.push(&format!(
        " ORDER BY {column} {direction}, tenant_id {direction} LIMIT {limit}"
    ));
    let mut records: Vec<TenantRecord> = fetch_all(db, &sql).await?;
    let has_next_page = records.len() > size as usize;
    records.truncate(size as usize);
    let end_cursor = records
        .last()
        .map(|last| encode_cursor(&tag, sort.key_of(last), &last.tenant_id));
    let items = records
        .into_iter()
        .map(TenantRecord::into_row)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        end_cursor,
        has_next_page,
        total_count,
    })
}

/// The tenants a partner owns, in `sort` order: the directory list scoped to that partner,
/// so the partner portal cannot forget the scope.
pub async fn tenants_of_partner(
    db: &Db,
    partner_id: &str,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    let filter = TenantFilter {
        partner_id: Some(partner_id.to_owned()),
        ..TenantFilter::default()
    };
    list_tenants(db, &filter, sort, page).await
}

/// The query for the tenant whose `condition` column equals `value`.
fn tenant_sql(tables: &Tables, condition: &str, value: &str) -> Sql {
    let mut sql = Sql::new(format!("SELECT {TENANT_COLUMNS} FROM {}", tables.tenants));
    let p = sql.arg(Arg::Text(value.to_owned()));
    let purged = sql.arg(Arg::Text(
        tenant_status_name(TenantStatus::Purged).to_owned(),
    ));
    // A purged tenant's slug can be claimed again; the live holder wins over the purged one.
    sql.push(&format!(
        " WHERE {condition} = {p} \
         ORDER BY CASE WHEN status = {purged} THEN 1 ELSE 0 END, created_at DESC, tenant_id \
         LIMIT 1"
    ));
    sql
}

async fn tenant_where(
    tables: &Tables,
    db: &Db,
    condition: &str,
    value: &str,
) -> Result<Option<TenantRow>, QueryError> {
    let records: Vec<TenantRecord> = fetch_all(db, &tenant_sql(tables, condition, value)).await?;
    records
        .into_iter()
        .next()
        .map(TenantRecord::into_row)
        .transpose()
}

/// A tenant with its members and their roles in it, or `None` if no such tenant.
///
/// The tenant row and its members are read in one snapshot (a read transaction; repeatable
/// read on PostgreSQL), so the member count always matches the members listed even while
/// the runner folds new events between the two reads.
pub async fn tenant_detail(db: &Db, tenant_id: &str) -> Result<Option<TenantDetail>, QueryError> {
    let tables = live_tables(db).await?;
    let mut tx = match db {
        Db::Sqlite(pool) => ReadTx::Sqlite(pool.begin().await?),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            ReadTx::Postgres(tx)
        }
    };
    let records: Vec<TenantRecord> =
        fetch_all_tx(&mut tx, &tenant_sql(&tables, "tenant_id", tenant_id)).await?;
    let Some(tenant) = records
        .into_iter()
        .next()
        .map(TenantRecord::into_row)
        .transpose()?
    else {
        return Ok(None);
    };
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {}",
        tables.member_columns, tables.members
    ));
    let p = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(
        " WHERE tenant_id = {p} ORDER BY is_owner DESC, email_key, member_id"
    ));
    let records: Vec<MemberRecord> = fetch_all_tx(&mut tx, &sql).await?;
    let members = records
        .into_iter()
        .map(MemberRecord::into_row)
        .collect::<Result<_, _>>()?;
    // Read-only: ending it either way releases the snapshot.
    match tx {
        ReadTx::Sqlite(tx) => tx.commit().await?,
        ReadTx::Postgres(tx) => tx.commit().await?,
    }
    Ok(Some(TenantDetail { tenant, members }))
}

/// The tenant holding `slug` (the live one, when a purged tenant held it before).
pub async fn tenant_by_slug(db: &Db, slug: &str) -> Result<Option<TenantRow>, QueryError> {
    let tables = live_tables(db).await?;
    tenant_where(&tables, db, "slug", &slug.trim().to_lowercase()).await
}

/// The `WHERE` condition (its arguments bound into `sql`) that narrows member rows to those
/// `principal` could be: linked to their subject, or unlinked under one of the address keys
/// their claim may have been stored as (the claim as sent, its domain in ASCII and Unicode
/// form; members' addresses are stored as typed). A superset: [`recognises`] decides.
fn identity_candidates(sql: &mut Sql, principal: &Principal) -> String {
    let s = sql.arg(Arg::Text(principal.subject.clone()));
    let mut keys: Vec<String> = principal
        .email
        .as_deref()
        .map(claimed_email_spellings)
        .unwrap_or_default()
        .iter()
        .map(|spelling| email_key(spelling))
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return format!("subject = {s}");
    }
    let list: Vec<String> = keys
        .into_iter()
        .map(|key| sql.arg(Arg::Text(key)))
        .collect();
    format!(
        "subject = {s} OR (subject IS NULL AND email_key IN ({}))",
        list.join(", ")
    )
}

/// Most member rows one identity look-up considers: a subject is linked to at most one member
/// of a tenant, and an address belongs to at most one; the bound keeps a tenant with broken
/// data from turning a request into a scan.
const MAX_IDENTITY_CANDIDATES: usize = 8;

/// The role under which a principal acts in a tenant, for authorization: `None` unless the
/// principal is recognised as an active member of a tenant that is not (soft-)deleted.
///
/// Recognition is the aggregate's own rule ([`dezky_domain::tenant::recognises`], which
/// `Member::is_recognised_as` applies on the write side): by the linked (issuer, subject), or
/// by a verified e-mail compared strictly only while the member has no linked subject. The
/// query only narrows the candidates (by subject, and by a lower-cased address key that is a
/// superset of what the rule accepts); the rule decides. A subject match wins over an e-mail
/// match. A suspended tenant's members keep their role: what a suspended tenant still allows is
/// the API's decision, made with the tenant's status.
pub async fn member_role(
    db: &Db,
    tenant_id: &str,
    principal: &Principal,
) -> Result<Option<Role>, QueryError> {
    let tables = live_tables(db).await?;
    let Some(tenant) = tenant_where(&tables, db, "tenant_id", tenant_id).await? else {
        return Ok(None);
    };
    if tenant.status.is_deleted() {
        return Ok(None);
    }
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {}",
        tables.member_columns, tables.members
    ));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    let condition = identity_candidates(&mut sql, principal);
    sql.push(&format!(
        " WHERE tenant_id = {t} AND ({condition}) ORDER BY member_id LIMIT {MAX_IDENTITY_CANDIDATES}"
    ));
    let records: Vec<MemberRecord> = fetch_all(db, &sql).await?;
    let mut linked = None;
    let mut by_email = None;
    for member in records.into_iter().map(MemberRecord::into_row) {
        let member = member?;
        if !recognises(
            member.subject.as_deref(),
            member.subject_issuer.as_deref(),
            &member.email,
            principal,
        ) {
            continue;
        }
        if member.subject.is_some() {
            linked.get_or_insert(member);
        } else {
            by_email.get_or_insert(member);
        }
    }
    Ok(linked
        .or(by_email)
        .filter(|member| member.status == MemberStatus::Active)
        .map(|member| member.role))
}

/// Most workspaces one person's `me.workspaces` lists (a bound on the look-up; a person in
/// more workspaces than this is not a small company's member).
pub const MAX_WORKSPACES_PER_PERSON: usize = 100;

/// The workspaces `principal` is an active member of, with their membership, by the same rule
/// as [`member_role`] (linked identity, or a verified address before linking); deleted
/// workspaces are left out. At most [`MAX_WORKSPACES_PER_PERSON`], by tenant id.
pub async fn workspaces_of(
    db: &Db,
    principal: &Principal,
) -> Result<Vec<(TenantRow, MemberRow)>, QueryError> {
    let tables = live_tables(db).await?;
    let mut sql = Sql::new(format!(
        "SELECT tenant_id, {} FROM {}",
        tables.member_columns, tables.members
    ));
    let condition = identity_candidates(&mut sql, principal);
    // Twice the bound: a person may match an unlinked row and a linked one in one workspace.
    sql.push(&format!(
        " WHERE {condition} ORDER BY tenant_id, member_id LIMIT {}",
        MAX_WORKSPACES_PER_PERSON * 2
    ));
    #[derive(sqlx::FromRow)]
    struct Owned {
        tenant_id: String,
        #[sqlx(flatten)]
        member: MemberRecord,
    }
    let rows: Vec<Owned> = fetch_all(db, &sql).await?;
    let mut found: BTreeMap<String, MemberRow> = BTreeMap::new();
    for row in rows {
        let member = row.member.into_row()?;
        if member.status != MemberStatus::Active
            || !recognises(
                member.subject.as_deref(),
                member.subject_issuer.as_deref(),
                &member.email,
                principal,
            )
        {
            continue;
        }
        // A linked membership wins over an address match in the same workspace.
        match found.get(&row.tenant_id) {
            Some(existing) if existing.subject.is_some() => {}
            _ => {
                found.insert(row.tenant_id, member);
            }
        }
    }
    let mut workspaces = Vec::new();
    for (tenant_id, member) in found.into_iter().take(MAX_WORKSPACES_PER_PERSON) {
        if let Some(tenant) = tenant_where(&tables, db, "tenant_id", &tenant_id).await? {
            if !tenant.status.is_deleted() {
                workspaces.push((tenant, member));
            }
        }
    }
    Ok(workspaces)
}

/// Every tenant and member row of one version of the directory, in id order: what an
/// operator compares before switching to a rebuilt version, and what the
/// projection-equals-replay check compares. Not a portal query (it is not scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryContents {
    /// Every tenant row, by id.
    pub tenants: Vec<TenantRow>,
    /// Every member row by tenant id, each tenant's members by member id.
    pub members: BTreeMap<String, Vec<MemberRow>>,
}

impl TenantDirectory {
    /// Reads every row of this version's tables (see [`DirectoryContents`]).
    pub async fn contents(&self, db: &Db) -> Result<DirectoryContents, QueryError> {
        let tables = self.tables();
        let sql = Sql::new(format!(
            "SELECT {TENANT_COLUMNS} FROM {} ORDER BY tenant_id",
            tables.tenants
        ));
        let tenants: Vec<TenantRecord> = fetch_all(db, &sql).await?;
        let tenants = tenants
            .into_iter()
            .map(TenantRecord::into_row)
            .collect::<Result<_, _>>()?;
        #[derive(sqlx::FromRow)]
        struct Owned {
            tenant_id: String,
            #[sqlx(flatten)]
            member: MemberRecord,
        }
        let sql = Sql::new(format!(
            "SELECT tenant_id, {MEMBER_COLUMNS} FROM {} ORDER BY tenant_id, member_id",
            tables.members
        ));
        let rows: Vec<Owned> = fetch_all(db, &sql).await?;
        let mut members = BTreeMap::<String, Vec<MemberRow>>::new();
        for row in rows {
            members
                .entry(row.tenant_id)
                .or_default()
                .push(row.member.into_row()?);
        }
        Ok(DirectoryContents { tenants, members })
    }
}
