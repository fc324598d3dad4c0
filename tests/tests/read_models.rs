//! The tenant directory and the audit timeline, on SQLite and PostgreSQL: real tenant commands
//! through cqrs-es onto the ledger, the runners caught up, then the portal queries checked —
//! search, filters, every sort walked page by page, per-tenant roles, field-level diffs,
//! tenant scoping, the CSV export, refused cursors, and a live model equal to a rebuilt one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cqrs_es::persist::{EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext as _, AggregateError, CqrsFramework, EventStore as _};
use dezky_commands::store::Db;
use dezky_commands::{Ledger, LedgerRepository};
use dezky_domain::tenant::{
    platform_flag_upcasters, slug_claim_upcasters, tenant_upcasters, BillingInfoPatch,
    BrandingPatch, CommandContext, CreateTenant, MemberStatus, MfaMode, NewMember, PlatformFlag,
    PlatformFlagCommand, Principal, Role, SecurityPolicy, SecurityPolicyPatch, SlugClaim,
    SlugClaimCommand, Tenant, TenantAction, TenantCommand, TenantError, TenantEvent, TenantStatus,
    PLATFORM_FLAG_ID,
};
use dezky_domain::{Actor, EventMetadata};
use dezky_projections::audit::{
    audit_csv, audit_timeline, csv, AuditEntry, AuditFilter, AuditOutcome, AuditTimeline,
    FieldDiff, CSV_HEADER,
};
use dezky_projections::settings::{all_settings, tenant_settings, TenantSettings};
use dezky_projections::tenants::{
    list_tenants, member_role, tenant_by_slug, tenant_detail, tenants_of_partner, MemberRow,
    PageRequest, QueryError, TenantDirectory, TenantFilter, TenantRow, TenantSort, TenantSortField,
    MAX_PAGE_SIZE,
};
use dezky_projections::ProjectionRunner;
use dezky_tests::{fill, Backend, TestDb};
use serde_json::{json, Value};

/// Runs each named scenario as two tests, `<scenario>::on_sqlite` and `<scenario>::on_postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() -> anyhow::Result<()> {
                super::$scenario(dezky_tests::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn on_postgres() -> anyhow::Result<()> {
                super::$scenario(dezky_tests::Backend::Postgres).await
            }
        }
    )*};
}

on_both_backends!(
    the_directory_returns_every_sort_page_by_page_without_duplicates_or_gaps,
    the_directory_filters_by_search_status_partner_and_plan,
    a_page_size_outside_one_to_a_hundred_is_refused,
    a_tampered_or_foreign_cursor_is_refused_with_a_typed_error,
    tenant_detail_lists_members_with_the_role_they_hold_in_that_tenant,
    the_platform_flag_and_slugs_follow_assignments_purges_and_reuse,
    audit_diffs_hold_only_the_fields_a_command_changed,
    the_audit_timeline_filters_by_text_action_outcome_actor_and_time,
    one_tenants_timeline_never_shows_another_tenants_events,
    the_csv_export_round_trips_and_neutralises_spreadsheet_formulas,
    a_live_read_model_equals_one_rebuilt_from_the_ledger,
);

// ---------------------------------------------------------------------------------------------
// The world: a ledger, the three frameworks, the two projections.
// ---------------------------------------------------------------------------------------------

type Cqrs<A> = CqrsFramework<A, PersistedEventStore<LedgerRepository, A>>;

const REQUEST_IP: &str = "198.51.100.7";

fn store<A: Aggregate>(
    ledger: &Ledger,
    upcasters: Vec<Box<dyn EventUpcaster>>,
) -> PersistedEventStore<LedgerRepository, A> {
    PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()))
        .with_upcasters(upcasters)
}

struct World {
    _db: TestDb,
    ledger: Ledger,
    tenants: Cqrs<Tenant>,
    flags: Cqrs<PlatformFlag>,
    slugs: Cqrs<SlugClaim>,
    directory: ProjectionRunner<TenantDirectory>,
    audit: ProjectionRunner<AuditTimeline>,
    settings: ProjectionRunner<TenantSettings>,
}

impl World {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        let db = TestDb::create(backend).await?;
        let ledger = db.open().await?;
        Ok(Self {
            tenants: CqrsFramework::new(store(&ledger, tenant_upcasters()), vec![], ()),
            flags: CqrsFramework::new(store(&ledger, platform_flag_upcasters()), vec![], ()),
            slugs: CqrsFramework::new(store(&ledger, slug_claim_upcasters()), vec![], ()),
            directory: ProjectionRunner::new(ledger.clone(), TenantDirectory::new()).await?,
            audit: ProjectionRunner::new(ledger.clone(), AuditTimeline::new()).await?,
            settings: ProjectionRunner::new(ledger.clone(), TenantSettings::new()).await?,
            ledger,
            _db: db,
        })
    }

    fn db(&self) -> &Db {
        self.ledger.db()
    }

    async fn catch_up(&self) -> anyhow::Result<()> {
        self.directory.catch_up().await?;
        self.audit.catch_up().await?;
        self.settings.catch_up().await?;
        Ok(())
    }

    /// A tenant command, with metadata naming the tenant as the API would.
    async fn tenant(
        &self,
        by: &Principal,
        tenant_id: &str,
        now: &str,
        action: TenantAction,
    ) -> Result<(), AggregateError<TenantError>> {
        self.tenant_labelled(by, tenant_id, Some(tenant_id), now, action)
            .await
    }

    /// A tenant command whose metadata names `metadata_tenant` (which may be wrong).
    async fn tenant_labelled(
        &self,
        by: &Principal,
        tenant_id: &str,
        metadata_tenant: Option<&str>,
        now: &str,
        action: TenantAction,
    ) -> Result<(), AggregateError<TenantError>> {
        let command = TenantCommand::new(CommandContext::new(by.clone(), now), action);
        self.tenants
            .execute_with_metadata(tenant_id, command, metadata(by, metadata_tenant, now))
            .await
    }

    /// Claims the slug, then creates the tenant (releasing the claim if creation is refused),
    /// as the API's creation flow does.
    async fn create(&self, spec: &Spec) -> anyhow::Result<()> {
        self.slugs
            .execute_with_metadata(
                spec.slug,
                SlugClaimCommand::Claim {
                    tenant_id: spec.id.clone(),
                },
                metadata(&operator(), Some(&spec.id), &spec.now),
            )
            .await?;
        let create = TenantAction::Create(CreateTenant {
            tenant_id: spec.id.clone(),
            organization_name: spec.organization.to_owned(),
            slug: spec.slug.to_owned(),
            plan: spec.plan.to_owned(),
            seats: spec.seats,
            first_admin: NewMember {
                member_id: "owner".into(),
                email: format!("founder@{}.example", spec.slug),
                display_name: "Frida Founder".into(),
            },
            partner_id: spec.partner.map(Into::into),
        });
        if let Err(refused) = self.tenant(&operator(), &spec.id, &spec.now, create).await {
            self.release(spec.slug, &spec.id, &spec.now).await?;
            return Err(refused.into());
        }
        Ok(())
    }

    async fn release(&self, slug: &str, tenant_id: &str, now: &str) -> anyhow::Result<()> {
        self.slugs
            .execute_with_metadata(
                slug,
                SlugClaimCommand::Release {
                    tenant_id: tenant_id.to_owned(),
                },
                metadata(&operator(), Some(tenant_id), now),
            )
            .await?;
        Ok(())
    }

    /// Makes `tenant_id` the platform tenant; the metadata names no tenant, as an operator
    /// action from the console would not.
    async fn assign_platform(&self, tenant_id: &str, now: &str) -> anyhow::Result<()> {
        let command = PlatformFlagCommand::Assign {
            ctx: CommandContext::new(operator(), now),
            tenant_id: tenant_id.to_owned(),
        };
        self.flags
            .execute_with_metadata(PLATFORM_FLAG_ID, command, metadata(&operator(), None, now))
            .await?;
        Ok(())
    }

    /// Every entry of a tenant's timeline, newest first, walking pages of `first`.
    async fn timeline(
        &self,
        tenant_id: &str,
        filter: &AuditFilter,
        first: u32,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        let mut entries = Vec::new();
        let mut page = PageRequest::first(first);
        for _ in 0..10_000 {
            let got = audit_timeline(self.db(), tenant_id, filter, &page).await?;
            anyhow::ensure!(got.items.len() <= first as usize, "page larger than asked");
            entries.extend(got.items);
            if !got.has_next_page {
                return Ok(entries);
            }
            page.after = got.end_cursor;
        }
        anyhow::bail!("the timeline never ended")
    }
}

fn metadata(by: &Principal, tenant_id: Option<&str>, now: &str) -> HashMap<String, String> {
    EventMetadata {
        actor: Some(Actor {
            subject: by.subject.clone(),
            email: by.email.clone(),
        }),
        tenant_id: tenant_id.map(Into::into),
        request_ip: Some(REQUEST_IP.into()),
        occurred_at: Some(now.into()),
        ..EventMetadata::default()
    }
    .to_map()
}

/// A caller known by a verified `email` (and a subject no member is linked to).
fn by_email(email: &str) -> Principal {
    Principal::user("subject-of-nobody", email)
}

/// A caller known by `subject` alone (a token without an e-mail).
fn by_subject(subject: &str) -> Principal {
    Principal {
        email: None,
        ..Principal::user(subject, "")
    }
}

fn operator() -> Principal {
    Principal::platform_admin("op-1", "ops@dezky.eu")
}

fn provisioning() -> Principal {
    Principal::system("provisioning")
}

/// The time `minute` minutes after 10:00 on 1 March 2026.
fn at(minute: u32) -> String {
    let total = 10 * 60 + minute;
    let (day, hour, minute) = (1 + total / 1_440, total % 1_440 / 60, total % 60);
    format!("2026-03-{day:02}T{hour:02}:{minute:02}:00Z")
}

fn new_member(member_id: &str, email: &str, display_name: &str) -> NewMember {
    NewMember {
        member_id: member_id.into(),
        email: email.into(),
        display_name: display_name.into(),
    }
}

/// A deterministic, well-mixed 64-bit sequence (SplitMix64): seeded scenarios and ids whose
/// order differs from their creation order.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// The directory.
// ---------------------------------------------------------------------------------------------

/// A tenant to create; `minute` is its creation time's sort key (`now` may use an offset).
struct Spec {
    id: String,
    slug: &'static str,
    organization: &'static str,
    seats: u32,
    partner: Option<&'static str>,
    plan: &'static str,
    minute: u32,
    now: String,
}

/// slug, organization, seats, partner, plan, creation minute.
type FixtureRow = (
    &'static str,
    &'static str,
    u32,
    Option<&'static str>,
    &'static str,
    u32,
);

/// Thirteen tenants with ties on every sort key (equal seats, equal creation times — one
/// written with an offset —, organization names equal but for case) and ids in another
/// order than the slugs, so tie-breaking and cursors are exercised for every sort.
#[rustfmt::skip]
const DIRECTORY_ROWS: [FixtureRow; 13] = [
    ("acme", "Acme ApS", 25, Some("partner-nordic"), "business", 0),
    ("acme-2", "acme aps", 25, Some("partner-nordic"), "business", 0),
    ("bakery", "Bäckerei Müller", 5, None, "starter", 1),
    ("zeta", "Zeta", 10, Some("partner-alps"), "business", 2),
    ("alpha", "Zeta", 10, None, "business", 2),
    ("beta", "Örsted Energy", 100, Some("partner-nordic"), "enterprise", 3),
    ("gamma", "Gamma GmbH", 1, None, "starter", 3),
    ("delta", "Delta 100% Foods", 7, Some("partner-alps"), "starter", 4),
    ("epsilon", "Epsilon_Labs", 7, None, "business", 5),
    ("kappa", "Kappa", 25, None, "business", 6),
    ("lambda", "lambda", 25, Some("partner-alps"), "business", 6),
    ("omega", "OMEGA", 3, None, "starter", 7),
    ("sigma", "Sigma & Co", 3, Some("partner-nordic"), "business", 8),
];

/// The tenants of [`DIRECTORY_ROWS`], with ids.
fn directory_fixture() -> Vec<Spec> {
    let mut ids = SplitMix(7);
    DIRECTORY_ROWS
        .into_iter()
        .map(|(slug, organization, seats, partner, plan, minute)| Spec {
            id: format!("{:016x}", ids.next()),
            slug,
            organization,
            seats,
            partner,
            plan,
            minute,
            // One creation time written with an offset: 11:03+01:00 is 10:03 UTC, a tie
            // with "beta" that only normalization makes one.
            now: if slug == "gamma" {
                "2026-03-01T11:03:00+01:00".to_owned()
            } else {
                at(minute)
            },
        })
        .collect()
}

async fn directory_world(backend: Backend) -> anyhow::Result<(World, Vec<Spec>)> {
    let world = World::new(backend).await?;
    let specs = directory_fixture();
    for spec in &specs {
        world.create(spec).await?;
    }
    world.catch_up().await?;
    Ok((world, specs))
}

/// The ids in the order a sort must return them: by key, then by id, both reversed when
/// descending. Rust's `str` order is byte order, as the read model's.
fn expected_order(specs: &[Spec], sort: TenantSort) -> Vec<String> {
    let mut keyed: Vec<((u64, String), &str)> = specs
        .iter()
        .map(|spec| {
            let key = match sort.field {
                TenantSortField::Slug => (0, spec.slug.to_owned()),
                TenantSortField::Organization => (0, spec.organization.to_lowercase()),
                TenantSortField::CreatedAt => (u64::from(spec.minute), String::new()),
                TenantSortField::Seats => (u64::from(spec.seats), String::new()),
            };
            (key, spec.id.as_str())
        })
        .collect();
    keyed.sort();
    if sort.descending {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id.to_owned()).collect()
}

/// Every row of a directory list, walking pages of `first`; checks each page's shape.
async fn walk(
    db: &Db,
    filter: &TenantFilter,
    sort: TenantSort,
    first: u32,
) -> anyhow::Result<Vec<TenantRow>> {
    let mut rows = Vec::new();
    let mut page = PageRequest::first(first);
    for _ in 0..1_000 {
        let got = list_tenants(db, filter, sort, &page).await?;
        anyhow::ensure!(got.items.len() <= first as usize, "page larger than asked");
        anyhow::ensure!(
            got.has_next_page == (rows.len() + got.items.len() < got.total_count as usize),
            "has_next_page disagrees with total_count"
        );
        rows.extend(got.items);
        if !got.has_next_page {
            return Ok(rows);
        }
        page.after = got.end_cursor;
    }
    anyhow::bail!("the list never ended")
}

fn ids(rows: &[TenantRow]) -> Vec<String> {
    rows.iter().map(|row| row.id.clone()).collect()
}

fn slugs(rows: &[TenantRow]) -> Vec<String> {
    rows.iter().map(|row| row.slug.clone()).collect()
}

async fn the_directory_returns_every_sort_page_by_page_without_duplicates_or_gaps(
    backend: Backend,
) -> anyhow::Result<()> {
    let (world, specs) = directory_world(backend).await?;
    let everything = TenantFilter::default();
    for field in [
        TenantSortField::Slug,
        TenantSortField::Organization,
        TenantSortField::CreatedAt,
        TenantSortField::Seats,
    ] {
        for descending in [false, true] {
            let sort = TenantSort { field, descending };
            let expected = expected_order(&specs, sort);
            for first in [1, 2, 5, MAX_PAGE_SIZE] {
                let rows = walk(world.db(), &everything, sort, first).await?;
                assert_eq!(ids(&rows), expected, "{sort:?}, pages of {first}");
            }
        }
    }
    let first = list_tenants(
        world.db(),
        &everything,
        TenantSort::default(),
        &PageRequest::first(5),
    )
    .await?;
    assert_eq!(first.total_count, 13);
    assert!(first.has_next_page);
    assert_eq!(first.items.len(), 5);
    // The normalized creation time of the tenant created with an offset.
    let gamma = tenant_by_slug(world.db(), "gamma").await?.expect("gamma");
    assert_eq!(gamma.created_at, "2026-03-01T10:03:00.000000Z");
    Ok(())
}

async fn the_directory_filters_by_search_status_partner_and_plan(
    backend: Backend,
) -> anyhow::Result<()> {
    let (world, specs) = directory_world(backend).await?;
    let id_of = |slug: &str| {
        specs
            .iter()
            .find(|s| s.slug == slug)
            .map(|s| s.id.clone())
            .unwrap_or_default()
    };
    for slug in ["zeta", "kappa", "omega"] {
        world
            .tenant(
                &provisioning(),
                &id_of(slug),
                &at(20),
                TenantAction::Provision,
            )
            .await?;
    }
    world
        .tenant(&operator(), &id_of("zeta"), &at(21), TenantAction::Suspend)
        .await?;
    world.catch_up().await?;

    let by_slug = TenantSort::default();
    let search = |text: &str| TenantFilter {
        search: Some(text.to_owned()),
        ..TenantFilter::default()
    };
    let cases: Vec<(TenantFilter, Vec<&str>)> = vec![
        (search("ACME"), vec!["acme", "acme-2"]),
        (search("  acme  "), vec!["acme", "acme-2"]),
        // Case-insensitive beyond ASCII, on both backends.
        (search("MÜLLER"), vec!["bakery"]),
        (search("örsted"), vec!["beta"]),
        // LIKE wildcards in the search are literal characters.
        (search("%"), vec!["delta"]),
        (search("_"), vec!["epsilon"]),
        (search("a_p"), vec![]),
        // Slug or organization: "zeta" is the slug of one and the name of two.
        (search("zeta"), vec!["alpha", "zeta"]),
        (search("nothing like it"), vec![]),
        (
            TenantFilter {
                status: Some(TenantStatus::Suspended),
                ..TenantFilter::default()
            },
            vec!["zeta"],
        ),
        (
            TenantFilter {
                status: Some(TenantStatus::Active),
                ..TenantFilter::default()
            },
            vec!["kappa", "omega"],
        ),
        (
            TenantFilter {
                partner_id: Some("partner-alps".into()),
                ..TenantFilter::default()
            },
            vec!["delta", "lambda", "zeta"],
        ),
        (
            TenantFilter {
                plan: Some("starter".into()),
                ..TenantFilter::default()
            },
            vec!["bakery", "delta", "gamma", "omega"],
        ),
        (
            TenantFilter {
                partner_id: Some("partner-alps".into()),
                plan: Some("starter".into()),
                ..TenantFilter::default()
            },
            vec!["delta"],
        ),
        (
            TenantFilter {
                search: Some("a".into()),
                status: Some(TenantStatus::PendingProvisioning),
                partner_id: Some("partner-nordic".into()),
                plan: Some("business".into()),
            },
            vec!["acme", "acme-2", "sigma"],
        ),
    ];
    for (filter, expected) in cases {
        let rows = walk(world.db(), &filter, by_slug, 2).await?;
        assert_eq!(slugs(&rows), expected, "{filter:?}");
        let page = list_tenants(world.db(), &filter, by_slug, &PageRequest::first(1)).await?;
        assert_eq!(page.total_count, expected.len() as u64, "{filter:?}");
    }

    let partner = tenants_of_partner(
        world.db(),
        "partner-nordic",
        by_slug,
        &PageRequest::first(10),
    )
    .await?;
    assert_eq!(slugs(&partner.items), ["acme", "acme-2", "beta", "sigma"]);
    assert!(!partner.has_next_page);
    let nobody = tenants_of_partner(
        world.db(),
        "partner-unknown",
        by_slug,
        &PageRequest::first(10),
    )
    .await?;
    assert_eq!(nobody.items, []);
    assert_eq!(nobody.total_count, 0);
    assert_eq!(nobody.end_cursor, None);
    Ok(())
}

async fn a_page_size_outside_one_to_a_hundred_is_refused(backend: Backend) -> anyhow::Result<()> {
    let (world, _) = directory_world(backend).await?;
    let everything = TenantFilter::default();
    for first in [0, MAX_PAGE_SIZE + 1, u32::MAX] {
        let listed = list_tenants(
            world.db(),
            &everything,
            TenantSort::default(),
            &PageRequest::first(first),
        )
        .await;
        assert!(
            matches!(listed, Err(QueryError::PageSize { first: f, max: 100 }) if f == first),
            "{first}: {listed:?}"
        );
        let audited = audit_timeline(
            world.db(),
            "any",
            &AuditFilter::default(),
            &PageRequest::first(first),
        )
        .await;
        assert!(
            matches!(audited, Err(QueryError::PageSize { .. })),
            "{first}: {audited:?}"
        );
    }
    let largest = list_tenants(
        world.db(),
        &everything,
        TenantSort::default(),
        &PageRequest::first(MAX_PAGE_SIZE),
    )
    .await?;
    assert_eq!(largest.items.len(), 13);
    Ok(())
}

async fn a_tampered_or_foreign_cursor_is_refused_with_a_typed_error(
    backend: Backend,
) -> anyhow::Result<()> {
    let (world, specs) = directory_world(backend).await?;
    let everything = TenantFilter::default();
    let by_slug = TenantSort::default();
    let first = list_tenants(world.db(), &everything, by_slug, &PageRequest::first(1)).await?;
    let cursor = first.end_cursor.expect("a cursor after the first row");

    // Changing the first character changes the JSON's opening brace.
    let mut flipped = cursor.clone();
    let replacement = if flipped.starts_with('f') { "g" } else { "f" };
    flipped.replace_range(0..1, replacement);
    let tampered = [
        "not a cursor!".to_owned(),
        String::new(),
        flipped,
        cursor[..cursor.len() - 3].to_owned(),
        format!("{cursor}{cursor}"),
        "A".repeat(5_000),
    ];
    for bad in &tampered {
        let listed = list_tenants(
            world.db(),
            &everything,
            by_slug,
            &PageRequest::after(1, bad),
        )
        .await;
        assert!(
            matches!(listed, Err(QueryError::InvalidCursor)),
            "{bad}: {listed:?}"
        );
    }
    // A cursor of one sort is refused by every other sort.
    for other in [
        TenantSort {
            field: TenantSortField::Slug,
            descending: true,
        },
        TenantSort {
            field: TenantSortField::Seats,
            descending: false,
        },
        TenantSort {
            field: TenantSortField::Organization,
            descending: false,
        },
    ] {
        let listed = list_tenants(
            world.db(),
            &everything,
            other,
            &PageRequest::after(1, &cursor),
        )
        .await;
        assert!(
            matches!(listed, Err(QueryError::InvalidCursor)),
            "{other:?}: {listed:?}"
        );
    }
    // A directory cursor is no audit cursor, and one tenant's audit cursor is not another's.
    let tenant_a = &specs[0].id;
    let tenant_b = &specs[1].id;
    let audited = audit_timeline(
        world.db(),
        tenant_a,
        &AuditFilter::default(),
        &PageRequest::after(1, &cursor),
    )
    .await;
    assert!(matches!(audited, Err(QueryError::InvalidCursor)));
    let page_a = audit_timeline(
        world.db(),
        tenant_a,
        &AuditFilter::default(),
        &PageRequest::first(1),
    )
    .await?;
    let cursor_a = page_a.end_cursor.expect("tenant A has a timeline");
    let audited = audit_timeline(
        world.db(),
        tenant_b,
        &AuditFilter::default(),
        &PageRequest::after(1, &cursor_a),
    )
    .await;
    assert!(matches!(audited, Err(QueryError::InvalidCursor)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Detail, roles, the platform flag, slugs.
// ---------------------------------------------------------------------------------------------

fn spec(id: &str, slug: &'static str, minute: u32) -> Spec {
    Spec {
        id: id.to_owned(),
        slug,
        organization: "Some Org",
        seats: 10,
        partner: None,
        plan: "business",
        minute,
        now: at(minute),
    }
}

fn member<'a>(detail: &'a [MemberRow], member_id: &str) -> &'a MemberRow {
    detail
        .iter()
        .find(|m| m.member_id == member_id)
        .expect("member present")
}

async fn tenant_detail_lists_members_with_the_role_they_hold_in_that_tenant(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let (north, south) = ("tenant-north", "tenant-south");
    world.create(&spec(north, "north", 0)).await?;
    world.create(&spec(south, "south", 1)).await?;
    let ada = "ada@example.eu";
    let add = |role| TenantAction::AddMember {
        member: new_member("ada", ada, "Ada Lovelace"),
        role,
        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
    };
    world
        .tenant(&operator(), north, &at(2), add(Role::Admin))
        .await?;
    world
        .tenant(&operator(), south, &at(3), add(Role::Member))
        .await?;
    world.catch_up().await?;

    let detail = tenant_detail(world.db(), north).await?.expect("north");
    assert_eq!(detail.tenant.slug, "north");
    assert_eq!(detail.tenant.status, TenantStatus::PendingProvisioning);
    assert_eq!(
        (detail.tenant.member_count, detail.tenant.admin_count),
        (2, 2)
    );
    assert_eq!(
        detail.members,
        vec![
            MemberRow {
                member_id: "owner".into(),
                email: "founder@north.example".into(),
                display_name: "Frida Founder".into(),
                role: Role::Admin,
                is_owner: true,
                status: MemberStatus::Active,
                has_mailbox: false,
                subject: None,
                subject_issuer: None,
            },
            MemberRow {
                member_id: "ada".into(),
                email: ada.into(),
                display_name: "Ada Lovelace".into(),
                role: Role::Admin,
                is_owner: false,
                status: MemberStatus::Active,
                has_mailbox: true,
                subject: None,
                subject_issuer: None,
            },
        ]
    );
    let detail = tenant_detail(world.db(), south).await?.expect("south");
    assert_eq!(member(&detail.members, "ada").role, Role::Member);
    assert_eq!(
        (detail.tenant.member_count, detail.tenant.admin_count),
        (2, 1)
    );

    // Roles are per tenant; an address's domain is compared without regard to ASCII case,
    // its local part exactly (no look-alike or case variant stands for another person).
    assert_eq!(
        member_role(world.db(), north, &by_email("ada@EXAMPLE.eu")).await?,
        Some(Role::Admin)
    );
    assert_eq!(
        member_role(world.db(), north, &by_email("ADA@example.eu")).await?,
        None
    );
    // A subject that happens to be a member's address is not that member.
    assert_eq!(
        member_role(world.db(), north, &by_subject(ada)).await?,
        None
    );
    assert_eq!(
        member_role(world.db(), south, &by_email(ada)).await?,
        Some(Role::Member)
    );
    assert_eq!(
        member_role(world.db(), north, &by_email("someone@else.example")).await?,
        None
    );
    assert_eq!(
        member_role(world.db(), "no-such-tenant", &by_email(ada)).await?,
        None
    );
    assert_eq!(tenant_detail(world.db(), "no-such-tenant").await?, None);

    // Once linked, the subject is what counts in that tenant; elsewhere the e-mail still does.
    let link = TenantAction::LinkMemberSubject {
        member_id: "ada".into(),
        subject: "sub-ada".into(),
        issuer: None,
    };
    world.tenant(&operator(), north, &at(4), link).await?;
    world.catch_up().await?;
    assert_eq!(
        member_role(world.db(), north, &by_subject("sub-ada")).await?,
        Some(Role::Admin)
    );
    assert_eq!(member_role(world.db(), north, &by_email(ada)).await?, None);
    assert_eq!(
        member_role(world.db(), south, &by_subject("sub-ada")).await?,
        None
    );
    assert_eq!(
        member_role(world.db(), south, &by_email(ada)).await?,
        Some(Role::Member)
    );

    // Demotion, suspension, ownership and mailboxes show in the detail and the role answer.
    let demote = TenantAction::ChangeMemberRole {
        member_id: "ada".into(),
        role: Role::Member,
    };
    world.tenant(&operator(), north, &at(5), demote).await?;
    let suspend = TenantAction::SuspendMember {
        member_id: "ada".into(),
    };
    world.tenant(&operator(), south, &at(6), suspend).await?;
    world.catch_up().await?;
    assert_eq!(
        member_role(world.db(), north, &by_subject("sub-ada")).await?,
        Some(Role::Member)
    );
    assert_eq!(member_role(world.db(), south, &by_email(ada)).await?, None);
    let detail = tenant_detail(world.db(), south).await?.expect("south");
    assert_eq!(
        member(&detail.members, "ada").status,
        MemberStatus::Suspended
    );
    let detail = tenant_detail(world.db(), north).await?.expect("north");
    assert_eq!(detail.tenant.admin_count, 1);

    let transfer = TenantAction::TransferOwnership {
        member_id: "ada".into(),
    };
    world.tenant(&operator(), north, &at(7), transfer).await?;
    let mailbox = TenantAction::RecordMailboxCreated {
        member_id: "owner".into(),
    };
    world
        .tenant(&provisioning(), north, &at(8), mailbox)
        .await?;
    world.catch_up().await?;
    let detail = tenant_detail(world.db(), north).await?.expect("north");
    let (ada_row, owner_row) = (
        member(&detail.members, "ada"),
        member(&detail.members, "owner"),
    );
    assert!(ada_row.is_owner && !owner_row.is_owner);
    assert_eq!(ada_row.role, Role::Admin);
    assert!(owner_row.has_mailbox);
    assert_eq!(
        detail.members[0].member_id, "ada",
        "the owner is listed first"
    );
    assert_eq!(
        (detail.tenant.member_count, detail.tenant.admin_count),
        (2, 2)
    );

    let remove = TenantAction::RemoveMember {
        member_id: "ada".into(),
    };
    world.tenant(&operator(), south, &at(9), remove).await?;
    world.catch_up().await?;
    let detail = tenant_detail(world.db(), south).await?.expect("south");
    assert_eq!(
        (detail.tenant.member_count, detail.tenant.admin_count),
        (1, 1)
    );
    assert_eq!(member_role(world.db(), south, &by_email(ada)).await?, None);
    Ok(())
}

async fn the_platform_flag_and_slugs_follow_assignments_purges_and_reuse(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let (north, south, later) = ("tenant-north", "tenant-south", "tenant-later");
    world.create(&spec(north, "north", 0)).await?;
    world.create(&spec(south, "south", 1)).await?;
    world.assign_platform(north, &at(2)).await?;
    world.catch_up().await?;
    let platform = |slug: &'static str| {
        let db = world.db().clone();
        async move {
            tenant_by_slug(&db, slug)
                .await
                .map(|row| row.map(|row| row.is_platform_tenant))
        }
    };
    assert_eq!(platform("north").await?, Some(true));
    assert_eq!(platform("south").await?, Some(false));

    world.assign_platform(south, &at(3)).await?;
    world.catch_up().await?;
    assert_eq!(platform("north").await?, Some(false));
    assert_eq!(platform("south").await?, Some(true));

    // The flag may name a tenant before its creation reaches the ledger.
    world.assign_platform(later, &at(4)).await?;
    world.create(&spec(later, "later", 5)).await?;
    world.catch_up().await?;
    assert_eq!(platform("later").await?, Some(true));
    assert_eq!(platform("south").await?, Some(false));

    assert_eq!(
        tenant_by_slug(world.db(), "NORTH").await?.map(|t| t.id),
        Some(north.to_owned())
    );
    assert_eq!(tenant_by_slug(world.db(), "nowhere").await?, None);

    // Soft deletion: the role is gone, the row stays with its deletion time.
    world
        .tenant(&operator(), south, &at(6), TenantAction::SoftDelete)
        .await?;
    world.catch_up().await?;
    assert_eq!(
        member_role(world.db(), south, &by_email("founder@south.example")).await?,
        None
    );
    let row = tenant_detail(world.db(), south)
        .await?
        .expect("south")
        .tenant;
    assert_eq!(row.status, TenantStatus::SoftDeleted);
    assert_eq!(
        row.deleted_at.as_deref(),
        Some("2026-03-01T10:06:00.000000Z")
    );

    // Purge, release, and a new tenant with the same slug: the slug finds the new one.
    world
        .tenant(&operator(), south, &at(7), TenantAction::Purge)
        .await?;
    world.release("south", south, &at(7)).await?;
    let reborn = "tenant-south-reborn";
    world.create(&spec(reborn, "south", 8)).await?;
    world.catch_up().await?;
    assert_eq!(
        tenant_by_slug(world.db(), "south").await?.map(|t| t.id),
        Some(reborn.to_owned())
    );
    let purged = tenant_detail(world.db(), south)
        .await?
        .expect("purged row kept");
    assert_eq!(purged.tenant.status, TenantStatus::Purged);
    assert_eq!(purged.members, []);
    assert_eq!(
        (purged.tenant.member_count, purged.tenant.admin_count),
        (0, 0)
    );
    let purged_listed = walk(
        world.db(),
        &TenantFilter {
            status: Some(TenantStatus::Purged),
            ..TenantFilter::default()
        },
        TenantSort::default(),
        10,
    )
    .await?;
    assert_eq!(ids(&purged_listed), [south]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The audit timeline.
// ---------------------------------------------------------------------------------------------

const ACME: &str = "tenant-acme";

fn founder() -> Principal {
    Principal::user("sub-founder", "founder@acme.example")
}

/// A tenant's history with creation, a member, a role change, two billing updates (the second
/// re-sending the unchanged company), a security update, suspension, resumption and soft
/// deletion.
async fn acme_history(world: &World) -> anyhow::Result<()> {
    world.create(&spec(ACME, "acme", 0)).await?;
    world
        .tenant(&provisioning(), ACME, &at(1), TenantAction::Provision)
        .await?;
    let add = TenantAction::AddMember {
        member: new_member("bob", "bob@acme.example", "Bob Builder"),
        role: Role::Member,
        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
    };
    world.tenant(&founder(), ACME, &at(2), add).await?;
    let promote = TenantAction::ChangeMemberRole {
        member_id: "bob".into(),
        role: Role::Admin,
    };
    world.tenant(&founder(), ACME, &at(3), promote).await?;
    let billing = |country: &str| {
        TenantAction::UpdateBillingInfo(BillingInfoPatch {
            company: Some("Acme ApS".into()),
            country: Some(country.into()),
            ..BillingInfoPatch::default()
        })
    };
    world
        .tenant(&founder(), ACME, &at(4), billing("dk"))
        .await?;
    world
        .tenant(&founder(), ACME, &at(5), billing("se"))
        .await?;
    let security = TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch {
        mfa_mode: Some(MfaMode::Required),
        session_idle_minutes: Some(SecurityPolicy::default().session_idle_minutes),
        ..SecurityPolicyPatch::default()
    });
    world.tenant(&founder(), ACME, &at(6), security).await?;
    world
        .tenant(&operator(), ACME, &at(7), TenantAction::Suspend)
        .await?;
    world
        .tenant(&operator(), ACME, &at(8), TenantAction::Resume)
        .await?;
    world
        .tenant(&operator(), ACME, &at(9), TenantAction::SoftDelete)
        .await?;
    world.catch_up().await?;
    Ok(())
}

fn diff(fields: &[(&str, Value, Value)]) -> BTreeMap<String, FieldDiff> {
    fields
        .iter()
        .map(|(name, from, to)| {
            (
                (*name).to_owned(),
                FieldDiff {
                    from: from.clone(),
                    to: to.clone(),
                },
            )
        })
        .collect()
}

fn only<'a>(entries: &'a [AuditEntry], action: &str) -> Vec<&'a AuditEntry> {
    entries.iter().filter(|e| e.action == action).collect()
}

async fn audit_diffs_hold_only_the_fields_a_command_changed(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    acme_history(&world).await?;
    let entries = world.timeline(ACME, &AuditFilter::default(), 100).await?;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "TenantSoftDeleted",
            "TenantResumed",
            "TenantSuspended",
            "SecurityPolicyUpdated",
            "BillingInfoUpdated",
            "BillingInfoUpdated",
            "MemberRoleChanged",
            "MemberAdded",
            "TenantProvisioned",
            "MemberInvited",
            "TenantCreated",
            "SlugClaimed",
        ],
        "newest first"
    );
    assert!(entries.windows(2).all(|w| w[0].position > w[1].position));

    let created = only(&entries, "TenantCreated")[0];
    assert_eq!(
        created.diff,
        diff(&[
            ("organization_name", Value::Null, json!("Some Org")),
            ("plan", Value::Null, json!("business")),
            ("seats", Value::Null, json!(10)),
            ("slug", Value::Null, json!("acme")),
            ("status", Value::Null, json!("pending_provisioning")),
        ])
    );
    assert_eq!(
        created.summary,
        "Workspace acme created for Some Org on plan business with 10 seats"
    );

    let role = only(&entries, "MemberRoleChanged")[0];
    assert_eq!(
        role.diff,
        diff(&[("role", json!("member"), json!("admin"))])
    );
    assert_eq!(
        role.summary,
        "Role of bob@acme.example changed from member to admin"
    );
    assert_eq!(role.actor_subject.as_deref(), Some("sub-founder"));
    assert_eq!(role.actor_email.as_deref(), Some("founder@acme.example"));
    assert_eq!(role.request_ip.as_deref(), Some(REQUEST_IP));
    assert_eq!(role.occurred_at.as_deref(), Some(at(3).as_str()));
    assert_eq!(role.outcome, AuditOutcome::Success);
    assert_eq!(
        (
            role.aggregate_type.as_str(),
            role.aggregate_id.as_str(),
            role.tenant_id.as_str()
        ),
        ("tenant", ACME, ACME)
    );

    let billing = only(&entries, "BillingInfoUpdated");
    assert_eq!(
        billing[1].diff,
        diff(&[
            ("company", Value::Null, json!("Acme ApS")),
            ("country", Value::Null, json!("DK")),
        ])
    );
    // The second update re-sent the same company: only the country changed.
    assert_eq!(
        billing[0].diff,
        diff(&[("country", json!("DK"), json!("SE"))])
    );
    assert_eq!(billing[0].summary, "Billing details updated: country");

    let security = only(&entries, "SecurityPolicyUpdated")[0];
    assert_eq!(
        security.diff,
        diff(&[("mfa_mode", json!("optional"), json!("required"))])
    );

    let provisioned = only(&entries, "TenantProvisioned")[0];
    assert_eq!(
        provisioned.diff,
        diff(&[("status", json!("pending_provisioning"), json!("active"))])
    );
    assert_eq!(
        provisioned.actor_subject.as_deref(),
        Some("system:provisioning")
    );
    assert_eq!(provisioned.actor_email, None);
    let suspended = only(&entries, "TenantSuspended")[0];
    assert_eq!(
        suspended.diff,
        diff(&[("status", json!("active"), json!("suspended"))])
    );
    let resumed = only(&entries, "TenantResumed")[0];
    assert_eq!(
        resumed.diff,
        diff(&[("status", json!("suspended"), json!("active"))])
    );
    assert_eq!(resumed.summary, "Workspace acme resumed");
    let deleted = only(&entries, "TenantSoftDeleted")[0];
    assert_eq!(
        deleted.diff,
        diff(&[
            ("deleted_at", Value::Null, json!(at(9))),
            ("status", json!("active"), json!("soft_deleted")),
        ])
    );

    let added = only(&entries, "MemberAdded")[0];
    assert_eq!(
        added.diff,
        diff(&[
            ("display_name", Value::Null, json!("Bob Builder")),
            ("email", Value::Null, json!("bob@acme.example")),
            ("has_mailbox", Value::Null, json!(true)),
            ("role", Value::Null, json!("member")),
        ])
    );
    assert_eq!(
        added.summary,
        "Bob Builder <bob@acme.example> added as member"
    );
    let claimed = only(&entries, "SlugClaimed")[0];
    assert_eq!(
        (
            claimed.aggregate_type.as_str(),
            claimed.aggregate_id.as_str()
        ),
        ("slug_claim", "acme")
    );
    assert_eq!(claimed.diff, diff(&[("holder", Value::Null, json!(ACME))]));
    Ok(())
}

async fn the_audit_timeline_filters_by_text_action_outcome_actor_and_time(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    acme_history(&world).await?;
    let all = world.timeline(ACME, &AuditFilter::default(), 100).await?;
    assert_eq!(world.timeline(ACME, &AuditFilter::default(), 2).await?, all);
    let positions = |entries: &[AuditEntry]| entries.iter().map(|e| e.position).collect::<Vec<_>>();
    let expect = |keep: &dyn Fn(&AuditEntry) -> bool| {
        all.iter()
            .filter(|e| keep(e))
            .map(|e| e.position)
            .collect::<Vec<_>>()
    };

    let filters: Vec<(AuditFilter, Vec<u64>)> = vec![
        (
            AuditFilter {
                action: Some("BillingInfoUpdated".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.action == "BillingInfoUpdated"),
        ),
        (
            AuditFilter {
                text: Some("role of BOB".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.action == "MemberRoleChanged"),
        ),
        (
            AuditFilter {
                text: Some("memberadded".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.action == "MemberAdded"),
        ),
        (
            AuditFilter {
                text: Some("SUB-FOUNDER".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.actor_subject.as_deref() == Some("sub-founder")),
        ),
        (
            AuditFilter {
                actor_email: Some("Founder@ACME.example".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.actor_email.as_deref() == Some("founder@acme.example")),
        ),
        (
            AuditFilter {
                actor_email: Some("founder@acme.example".into()),
                action: Some("BillingInfoUpdated".into()),
                ..AuditFilter::default()
            },
            expect(&|e| e.action == "BillingInfoUpdated"),
        ),
        (
            AuditFilter {
                outcome: Some(AuditOutcome::Success),
                ..AuditFilter::default()
            },
            positions(&all),
        ),
        (
            AuditFilter {
                outcome: Some(AuditOutcome::Failure),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                text: Some("100%".into()),
                ..AuditFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in filters {
        assert!(!expected.is_empty() || filter.outcome.is_some() || filter.text.is_some());
        let got = world.timeline(ACME, &filter, 3).await?;
        assert_eq!(positions(&got), expected, "{filter:?}");
        let page = audit_timeline(world.db(), ACME, &filter, &PageRequest::first(1)).await?;
        assert_eq!(page.total_count, expected.len() as u64, "{filter:?}");
    }

    // Time bounds compare with the ledger's recording time: since is inclusive, before is
    // not, and offsets are understood.
    let pivot = all[all.len() / 2].recorded_at.clone();
    let since = AuditFilter {
        since: Some(pivot.clone()),
        ..AuditFilter::default()
    };
    let before = AuditFilter {
        before: Some(pivot.clone()),
        ..AuditFilter::default()
    };
    let got_since = world.timeline(ACME, &since, 4).await?;
    let got_before = world.timeline(ACME, &before, 4).await?;
    assert_eq!(positions(&got_since), expect(&|e| e.recorded_at >= pivot));
    assert_eq!(positions(&got_before), expect(&|e| e.recorded_at < pivot));
    assert_eq!(got_since.len() + got_before.len(), all.len());
    let far_future = AuditFilter {
        since: Some("2999-01-01T01:00:00+01:00".into()),
        ..AuditFilter::default()
    };
    assert_eq!(world.timeline(ACME, &far_future, 4).await?, []);
    let long_ago = AuditFilter {
        since: Some("2000-01-01T00:00:00Z".into()),
        before: Some("2999-01-01T00:00:00Z".into()),
        ..AuditFilter::default()
    };
    assert_eq!(world.timeline(ACME, &long_ago, 4).await?, all);

    let nonsense = AuditFilter {
        since: Some("yesterday".into()),
        ..AuditFilter::default()
    };
    let refused = audit_timeline(world.db(), ACME, &nonsense, &PageRequest::first(5)).await;
    assert!(
        matches!(&refused, Err(QueryError::InvalidTimestamp { field: "since", value }) if value == "yesterday"),
        "{refused:?}"
    );
    Ok(())
}

/// The tenant each ledger event belongs to, computed from the ledger itself: the Tenant
/// aggregate's id, else the metadata's tenant, else the tenant a flag or claim names.
async fn expected_tenants(ledger: &Ledger) -> anyhow::Result<BTreeMap<String, BTreeSet<u64>>> {
    let mut by_tenant = BTreeMap::<String, BTreeSet<u64>>::new();
    for event in ledger.read_batch(0, u64::MAX, 1_000_000).await? {
        let metadata: Value = serde_json::from_str(&event.metadata)?;
        let payload: Value = serde_json::from_str(&event.payload)?;
        let from_payload = payload
            .as_object()
            .and_then(|tagged| tagged.values().next())
            .and_then(|body| body.get("tenant_id"))
            .and_then(Value::as_str)
            .filter(|_| {
                matches!(
                    event.aggregate_type.as_str(),
                    "platform_flag" | "slug_claim"
                )
            });
        let tenant = if event.aggregate_type == "tenant" {
            Some(event.aggregate_id.as_str())
        } else {
            metadata["tenant_id"].as_str().or(from_payload)
        };
        if let Some(tenant) = tenant {
            by_tenant
                .entry(tenant.to_owned())
                .or_default()
                .insert(event.position);
        }
    }
    Ok(by_tenant)
}

async fn one_tenants_timeline_never_shows_another_tenants_events(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    // The probe filler labels its events `tenant-a` and `tenant-b`.
    let (a, b) = ("tenant-a", "tenant-b");
    world.create(&spec(a, "alpha-co", 0)).await?;
    world.create(&spec(b, "beta-co", 1)).await?;
    for (tenant, minute) in [(a, 2), (b, 3)] {
        let add = TenantAction::AddMember {
            member: new_member("carol", "carol@example.eu", "Carol"),
            role: Role::Member,
            placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
        };
        world.tenant(&operator(), tenant, &at(minute), add).await?;
    }
    // A command on B whose metadata wrongly names A still belongs to B.
    let mislabelled = TenantAction::ForceLogout {
        member_id: "carol".into(),
    };
    world
        .tenant_labelled(&operator(), b, Some(a), &at(4), mislabelled)
        .await?;
    world.assign_platform(b, &at(5)).await?;
    fill(&world.ledger, 6, 2).await?;
    world.catch_up().await?;

    let expected = expected_tenants(&world.ledger).await?;
    for tenant in [a, b] {
        let entries = world.timeline(tenant, &AuditFilter::default(), 3).await?;
        assert!(entries.iter().all(|e| e.tenant_id == tenant), "{tenant}");
        let positions: BTreeSet<u64> = entries.iter().map(|e| e.position).collect();
        assert_eq!(Some(&positions), expected.get(tenant), "{tenant}");
        assert_eq!(positions.len(), entries.len(), "no duplicates");
    }
    let b_logout = only(
        &world.timeline(b, &AuditFilter::default(), 100).await?,
        "MemberLogoutRequested",
    )
    .len();
    assert_eq!(b_logout, 1);
    let a_logout = only(
        &world.timeline(a, &AuditFilter::default(), 100).await?,
        "MemberLogoutRequested",
    )
    .len();
    assert_eq!(a_logout, 0);
    // B's slug appears in no entry of A's timeline, whatever the filter.
    let search = AuditFilter {
        text: Some("beta-co".into()),
        ..AuditFilter::default()
    };
    assert_eq!(world.timeline(a, &search, 10).await?, []);
    assert!(!world.timeline(b, &search, 10).await?.is_empty());
    let platform = only(
        &world.timeline(b, &AuditFilter::default(), 100).await?,
        "PlatformTenantAssigned",
    )
    .into_iter()
    .cloned()
    .collect::<Vec<_>>();
    assert_eq!(platform.len(), 1);
    assert_eq!(
        platform[0].diff,
        diff(&[("platform_tenant", Value::Null, json!(b))])
    );
    // The export is scoped the same way.
    let mut exported = Vec::new();
    let rows = audit_csv(world.db(), a, &AuditFilter::default(), &mut exported).await?;
    let mut reader = csv::Reader::from_reader(exported.as_slice());
    let mut tenants = BTreeSet::new();
    for record in reader.records() {
        tenants.insert(record?.get(12).unwrap_or_default().to_owned());
    }
    assert_eq!(tenants, BTreeSet::from([a.to_owned()]));
    assert_eq!(Some(rows as usize), expected.get(a).map(BTreeSet::len));
    // Unknown or empty tenants have empty timelines.
    assert_eq!(world.timeline("", &AuditFilter::default(), 10).await?, []);
    assert_eq!(
        world
            .timeline("tenant-c", &AuditFilter::default(), 10)
            .await?,
        []
    );
    Ok(())
}

async fn the_csv_export_round_trips_and_neutralises_spreadsheet_formulas(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let tenant = "tenant-csv";
    let tricky = Spec {
        // Names are single lines (line breaks are refused where they enter), so commas and
        // quotes are what a name can bring to the CSV writer.
        organization: "Smith, Jones & \"Partners\"; Ltd",
        ..spec(tenant, "smith-jones", 0)
    };
    world.create(&tricky).await?;
    let attacker = Principal::platform_admin("@ops", "+ops@dezky.eu");
    let add = TenantAction::AddMember {
        member: new_member(
            "eve",
            "eve@example.eu",
            "=HYPERLINK(\"http://example.invalid\")",
        ),
        role: Role::Member,
        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
    };
    world.tenant(&attacker, tenant, &at(1), add).await?;
    world.catch_up().await?;

    let entries = world.timeline(tenant, &AuditFilter::default(), 100).await?;
    let mut exported = Vec::new();
    let written = audit_csv(world.db(), tenant, &AuditFilter::default(), &mut exported).await?;
    assert_eq!(written as usize, entries.len());

    let mut reader = csv::Reader::from_reader(exported.as_slice());
    assert_eq!(reader.headers()?.iter().collect::<Vec<_>>(), CSV_HEADER);
    let rows = reader.records().collect::<Result<Vec<_>, _>>()?;
    assert_eq!(rows.len(), entries.len());
    let shown = |text: &str| {
        if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text.to_owned()
        }
    };
    for (row, entry) in rows.iter().zip(&entries) {
        let cell = |name: &str| {
            let index = CSV_HEADER
                .iter()
                .position(|h| *h == name)
                .unwrap_or(usize::MAX);
            row.get(index).unwrap_or_default().to_owned()
        };
        assert_eq!(cell("position"), entry.position.to_string());
        assert_eq!(cell("action"), entry.action);
        assert_eq!(cell("outcome"), "success");
        assert_eq!(cell("recorded_at"), entry.recorded_at);
        assert_eq!(cell("summary"), shown(&entry.summary));
        assert_eq!(cell("tenant_id"), tenant);
        let diff: BTreeMap<String, FieldDiff> = serde_json::from_str(&cell("diff"))?;
        assert_eq!(diff, entry.diff);
    }
    let added = rows
        .iter()
        .find(|row| row.get(6) == Some("MemberAdded"))
        .expect("member added row");
    assert_eq!(added.get(3), Some("'@ops"), "actor subject neutralised");
    assert_eq!(
        added.get(4),
        Some("'+ops@dezky.eu"),
        "actor e-mail neutralised"
    );
    assert!(
        added
            .get(8)
            .is_some_and(|summary| summary.starts_with("'=HYPERLINK(\"http://example.invalid\")")),
        "summary neutralised: {added:?}"
    );
    let created = rows
        .iter()
        .find(|row| row.get(6) == Some("TenantCreated"))
        .expect("creation row");
    assert_eq!(
        created.get(8),
        Some("Workspace smith-jones created for Smith, Jones & \"Partners\"; Ltd on plan business with 10 seats"),
        "commas, quotes and semicolons survive the round trip"
    );

    let mut filtered = Vec::new();
    let only_added = AuditFilter {
        action: Some("MemberAdded".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        audit_csv(world.db(), tenant, &only_added, &mut filtered).await?,
        1
    );
    let mut empty = Vec::new();
    assert_eq!(
        audit_csv(
            world.db(),
            "tenant-none",
            &AuditFilter::default(),
            &mut empty
        )
        .await?,
        0
    );
    let mut reader = csv::Reader::from_reader(empty.as_slice());
    assert_eq!(
        reader.headers()?.len(),
        CSV_HEADER.len(),
        "a header even when empty"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Projection == replay.
// ---------------------------------------------------------------------------------------------

/// The seed of the simulated history; `DEZKY_SEED` replays a failing one.
fn seed() -> u64 {
    std::env::var("DEZKY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026)
}

/// The simulation's workspace slots: a slug and a partner each. A purged slot's slug is
/// released and later reused by a new tenant id.
const SIM_SLOTS: [(&str, Option<&str>); 4] = [
    ("sim-zero", Some("partner-nordic")),
    ("sim-one", None),
    ("sim-two", Some("partner-alps")),
    ("sim-three", None),
];

/// A seeded random history of tenant commands, picking targets that mostly exist so that
/// most commands are accepted (refusals are part of the game too).
struct Sim {
    rng: SplitMix,
    /// The current tenant id of each slot, and whether it was created.
    slots: Vec<(String, bool)>,
    /// Every tenant id ever used.
    tenant_ids: Vec<String>,
    /// Ids handed out to new members (member ids are never reused).
    next_member: u32,
    minute: u32,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let slots: Vec<(String, bool)> = (0..SIM_SLOTS.len())
            .map(|slot| (format!("sim-{slot}-0"), false))
            .collect();
        Self {
            rng: SplitMix(seed),
            tenant_ids: slots.iter().map(|(id, _)| id.clone()).collect(),
            slots,
            next_member: 0,
            minute: 0,
        }
    }

    /// One random command.
    async fn step(&mut self, world: &World) -> anyhow::Result<()> {
        self.minute += 1;
        let now = at(self.minute);
        let slot = self.rng.below(SIM_SLOTS.len() as u64) as usize;
        let (slug, partner) = SIM_SLOTS[slot];
        let (tenant, created) = self.slots[slot].clone();
        if !created {
            let spec = Spec {
                partner,
                seats: 1 + self.rng.below(50) as u32,
                ..spec(&tenant, slug, self.minute)
            };
            world.create(&spec).await?;
            self.slots[slot].1 = true;
            return Ok(());
        }
        let state = store::<Tenant>(&world.ledger, tenant_upcasters())
            .load_aggregate(&tenant)
            .await?
            .aggregate()
            .clone();
        let members: Vec<String> = state.members.keys().cloned().collect();
        let target = if members.is_empty() || self.rng.below(10) == 0 {
            "m-nobody".to_owned()
        } else {
            self.rng.pick(&members).clone()
        };
        let person = self.rng.below(6);
        let email = format!("p{person}@sim.example");
        let role = *self.rng.pick(&[Role::Member, Role::Admin]);
        let by = match self.rng.below(6) {
            0 => Principal::user(format!("sub-p{person}"), email.clone()),
            1 => Principal::user("sub-owner", format!("founder@{slug}.example")),
            _ => operator(),
        };
        let action = match self.rng.below(24) {
            0 => {
                let flagged = self.rng.pick(&self.tenant_ids).clone();
                return world.assign_platform(&flagged, &now).await;
            }
            1 | 2 => TenantAction::Provision,
            3 => TenantAction::Suspend,
            4 => TenantAction::Resume,
            5 if self.rng.below(4) == 0 => TenantAction::SoftDelete,
            6 => {
                let purged = world
                    .tenant(&operator(), &tenant, &now, TenantAction::Purge)
                    .await;
                if purged.is_ok() {
                    // The purge saga's answer: the slug is free, and the slot's next tenant
                    // (a new id) claims it again.
                    world.release(slug, &tenant, &now).await?;
                    let next = format!("sim-{slot}-{}", self.tenant_ids.len());
                    self.tenant_ids.push(next.clone());
                    self.slots[slot] = (next, false);
                }
                return Ok(());
            }
            7 => TenantAction::UpdateBillingInfo(BillingInfoPatch {
                company: Some(
                    self.rng
                        .pick(&["Acme", "Acme ApS", "", "Nordlys AS"])
                        .to_string(),
                ),
                country: Some(self.rng.pick(&["DK", "se", "", "DE"]).to_string()),
                contact_email: Some(self.rng.pick(&["", "billing@sim.example"]).to_string()),
                ..BillingInfoPatch::default()
            }),
            8 if self.rng.below(2) == 0 => TenantAction::UpdateBranding(BrandingPatch {
                product_name: Some(self.rng.pick(&["Acme Work", "", "Nordlys"]).to_string()),
                accent_colour: Some(
                    self.rng
                        .pick(&["#1d4ed8", "#FFCC00", "", "#000000"])
                        .to_string(),
                ),
                ..BrandingPatch::default()
            }),
            8 => TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch {
                mfa_mode: Some(*self.rng.pick(&[
                    MfaMode::Off,
                    MfaMode::Optional,
                    MfaMode::Required,
                ])),
                ..SecurityPolicyPatch::default()
            }),
            9..=11 => {
                self.next_member += 1;
                let member = new_member(
                    &format!("m-{}", self.next_member),
                    &email,
                    &format!("Person {person}"),
                );
                if self.rng.below(4) == 0 {
                    TenantAction::InviteAdmin(member)
                } else {
                    TenantAction::AddMember {
                        member,
                        role,
                        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
                    }
                }
            }
            12 | 13 => TenantAction::ChangeMemberRole {
                member_id: target,
                role,
            },
            14 => TenantAction::TransferOwnership { member_id: target },
            15 => TenantAction::SuspendMember { member_id: target },
            16 => TenantAction::ResumeMember { member_id: target },
            17 => TenantAction::RemoveMember { member_id: target },
            18 => TenantAction::LinkMemberSubject {
                member_id: target,
                subject: format!("sub-p{person}"),
                issuer: None,
            },
            19 => TenantAction::RecordMailboxCreated { member_id: target },
            20 => TenantAction::ForceLogout { member_id: target },
            21 => TenantAction::ResetPassword { member_id: target },
            _ => TenantAction::ResumeMember { member_id: target },
        };
        match world.tenant(&by, &tenant, &now, action).await {
            Ok(()) | Err(AggregateError::UserError(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }
}

/// One row of the timeline table, every column.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct AuditRow {
    position: i64,
    tenant_id: String,
    recorded_at: String,
    occurred_at: Option<String>,
    actor_subject: Option<String>,
    actor_email: Option<String>,
    actor_email_key: Option<String>,
    request_ip: Option<String>,
    action: String,
    aggregate_type: String,
    aggregate_id: String,
    outcome: String,
    summary: String,
    diff: String,
    search_key: String,
}

/// Every row of every table of one version of the audit timeline, helper tables included.
async fn audit_tables(
    db: &Db,
    version: u32,
) -> anyhow::Result<(
    Vec<AuditRow>,
    Vec<(String, String, String)>,
    Vec<(String, String, String)>,
)> {
    let timeline = format!(
        "SELECT position, tenant_id, recorded_at, occurred_at, actor_subject, actor_email, \
         actor_email_key, request_ip, action, aggregate_type, aggregate_id, outcome, summary, \
         diff, search_key FROM rm_audit_v{version} ORDER BY position"
    );
    let tenants = format!(
        "SELECT tenant_id, slug, status FROM rm_audit_v{version}_tenants ORDER BY tenant_id"
    );
    let members = format!(
        "SELECT tenant_id, member_id, email FROM rm_audit_v{version}_members \
         ORDER BY tenant_id, member_id"
    );
    Ok(match db {
        Db::Sqlite(pool) => (
            sqlx::query_as(&timeline).fetch_all(pool).await?,
            sqlx::query_as(&tenants).fetch_all(pool).await?,
            sqlx::query_as(&members).fetch_all(pool).await?,
        ),
        Db::Postgres(pool) => (
            sqlx::query_as(&timeline).fetch_all(pool).await?,
            sqlx::query_as(&tenants).fetch_all(pool).await?,
            sqlx::query_as(&members).fetch_all(pool).await?,
        ),
    })
}

/// Checks the live directory against the Tenant aggregates' own fold of the same events.
async fn directory_agrees_with_the_aggregates(
    world: &World,
    tenant_ids: &[String],
    seed: u64,
) -> anyhow::Result<()> {
    let live = TenantDirectory::new().contents(world.db()).await?;
    let tenants = store::<Tenant>(&world.ledger, tenant_upcasters());
    for tenant_id in tenant_ids {
        let tenant_id = tenant_id.as_str();
        let mut context = tenants.load_aggregate(tenant_id).await?;
        let aggregate = context.aggregate().clone();
        let row = live.tenants.iter().find(|row| row.id == tenant_id);
        let Some(status) = aggregate.status else {
            assert_eq!(row, None, "{tenant_id}, seed {seed}");
            continue;
        };
        let row = row.expect("a row for every created tenant");
        assert_eq!(
            (
                row.status,
                row.seats,
                row.slug.as_str(),
                row.partner_id.as_ref()
            ),
            (
                status,
                aggregate.seats,
                aggregate.slug.as_str(),
                aggregate.partner_id.as_ref()
            ),
            "{tenant_id}, seed {seed}"
        );
        let members: BTreeMap<String, (Role, MemberStatus, bool, Option<String>, bool)> = live
            .members
            .get(tenant_id)
            .into_iter()
            .flatten()
            .map(|m| {
                let facts = (
                    m.role,
                    m.status,
                    m.has_mailbox,
                    m.subject.clone(),
                    m.is_owner,
                );
                (m.member_id.clone(), facts)
            })
            .collect();
        let expected_members: BTreeMap<_, _> = if status == TenantStatus::Purged {
            BTreeMap::new()
        } else {
            aggregate
                .members
                .values()
                .map(|m| {
                    let owner = aggregate.is_owner(&m.id);
                    let facts = (m.role, m.status, m.has_mailbox, m.subject.clone(), owner);
                    (m.id.clone(), facts)
                })
                .collect()
        };
        assert_eq!(members, expected_members, "{tenant_id}, seed {seed}");
        assert_eq!(row.member_count as usize, members.len(), "seed {seed}");
        let admins = members.values().filter(|m| m.0 == Role::Admin).count();
        assert_eq!(row.admin_count as usize, admins, "seed {seed}");
        let settings = tenant_settings(world.db(), tenant_id).await?;
        if status == TenantStatus::Purged {
            assert_eq!(settings, None, "{tenant_id}, seed {seed}");
        } else {
            let settings = settings.expect("settings for every live tenant");
            assert_eq!(
                (
                    &settings.billing,
                    &settings.branding,
                    &settings.security_policy
                ),
                (
                    &aggregate.billing,
                    &aggregate.branding,
                    &aggregate.security_policy
                ),
                "{tenant_id}, seed {seed}"
            );
        }
    }
    Ok(())
}

async fn a_live_read_model_equals_one_rebuilt_from_the_ledger(
    backend: Backend,
) -> anyhow::Result<()> {
    let seed = seed();
    let world = World::new(backend).await?;
    let mut sim = Sim::new(seed);
    for _round in 0..5 {
        for _ in 0..60 {
            sim.step(&world).await?;
        }
        world.catch_up().await?;
        directory_agrees_with_the_aggregates(&world, &sim.tenant_ids, seed).await?;
    }
    let head = world.ledger.head().await?.position;
    assert_eq!(*world.directory.position().borrow(), head, "seed {seed}");

    let rebuilt_directory =
        ProjectionRunner::new(world.ledger.clone(), TenantDirectory::with_version(2)).await?;
    let rebuilt_audit =
        ProjectionRunner::new(world.ledger.clone(), AuditTimeline::with_version(2)).await?;
    let rebuilt_settings =
        ProjectionRunner::new(world.ledger.clone(), TenantSettings::with_version(2)).await?;
    rebuilt_directory.catch_up().await?;
    rebuilt_audit.catch_up().await?;
    rebuilt_settings.catch_up().await?;
    let live_settings = all_settings(world.db(), TenantSettings::VERSION).await?;
    assert_eq!(
        live_settings,
        all_settings(world.db(), 2).await?,
        "settings, seed {seed}"
    );
    assert!(
        live_settings
            .iter()
            .any(|row| row.billing.company.is_some() || row.branding.product_name.is_some()),
        "the simulation changed some settings, seed {seed}"
    );

    let live = TenantDirectory::new().contents(world.db()).await?;
    let rebuilt = TenantDirectory::with_version(2)
        .contents(world.db())
        .await?;
    assert_eq!(live, rebuilt, "directory, seed {seed}");
    let live_audit = audit_tables(world.db(), 1).await?;
    assert_eq!(
        live_audit,
        audit_tables(world.db(), 2).await?,
        "audit, seed {seed}"
    );
    let expected = expected_tenants(&world.ledger).await?;
    assert_eq!(
        live_audit.0.len(),
        expected.values().map(BTreeSet::len).sum::<usize>(),
        "one timeline row per tenant event, seed {seed}"
    );

    // The simulation did exercise the fold: several tenants, members and event kinds.
    let kinds: BTreeSet<&str> = live_audit.0.iter().map(|row| row.action.as_str()).collect();
    assert!(
        kinds.len() >= 16,
        "too few kinds of events ({kinds:?}), seed {seed}"
    );
    assert!(live.tenants.len() >= 3, "seed {seed}");
    Ok(())
}

/// cqrs-es stores a tenant event as an externally tagged enum; the fold reads exactly that.
#[tokio::test]
async fn tenant_events_are_stored_as_externally_tagged_json_the_fold_decodes() -> anyhow::Result<()>
{
    let event = TenantEvent::MemberRoleChanged {
        member_id: "bob".into(),
        from: Role::Member,
        to: Role::Admin,
    };
    assert_eq!(
        serde_json::to_value(&event)?,
        json!({"MemberRoleChanged": {"member_id": "bob", "from": "member", "to": "admin"}})
    );
    let world = World::new(Backend::Sqlite).await?;
    world.create(&spec(ACME, "acme", 0)).await?;
    let stored = world.ledger.read_batch(0, u64::MAX, 100).await?;
    let created = stored
        .iter()
        .find(|e| e.event_type == "TenantCreated")
        .expect("creation on the ledger");
    let payload: Value = serde_json::from_str(&created.payload)?;
    assert!(payload.get("TenantCreated").is_some(), "{payload}");
    let decoded: TenantEvent = serde_json::from_str(&created.payload)?;
    assert!(matches!(
        decoded,
        TenantEvent::TenantCreated { seats: 10, .. }
    ));
    Ok(())
}
