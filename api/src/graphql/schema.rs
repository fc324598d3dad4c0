//! The GraphQL schema: queries over the read models and one mutation per command.

use std::time::Duration;

use async_graphql::{Context, Enum, InputObject, Json, MergedObject, Object, SimpleObject, ID};
use dezky_commands::app::addresses::place_address;
use dezky_commands::app::tenants::{create_tenant, CreateTenantError};
use dezky_domain::tenant::{
    CommandContext, CreateTenant, MemberStatus, NewMember, Role, Slug, TenantAction, TenantCommand,
    TenantError, TenantStatus,
};
use dezky_projections::audit::{audit_timeline, AuditEntry, AuditFilter};
use dezky_projections::tenants::{
    list_tenants, tenant_by_slug, tenant_detail, MemberRow, PageRequest, TenantFilter, TenantRow,
    TenantSort, TenantSortField,
};

use super::authz::{self, Authentication};
use super::booking::{BookingMutation, BookingQuery};
use super::domains::{DomainGql, DomainsMutation, DomainsQuery};
use super::error::{from_aggregate, ApiError, Code};
use super::mail::{MailAliasGql, MailMutation, MailingListGql};
use super::operations::{OperationsMutation, OperationsQuery};
use super::settings::{BillingInfoGql, BrandingGql, SecurityPolicyGql, SettingsMutation};
use super::ApiContext;

/// How long a mutation waits for its effect to reach the read models.
const READ_YOUR_WRITES_TIMEOUT_MS: u64 = 5_000;
/// Page size when a query does not say.
const DEFAULT_PAGE: i32 = 20;

type Result<T> = std::result::Result<T, async_graphql::Error>;

pub(super) fn api<'a>(ctx: &Context<'a>) -> &'a ApiContext {
    ctx.data_unchecked::<ApiContext>()
}

pub(super) fn auth<'a>(ctx: &Context<'a>) -> &'a Authentication {
    ctx.data_unchecked::<Authentication>()
}

pub(super) fn page(
    first: Option<i32>,
    after: Option<String>,
) -> std::result::Result<PageRequest, ApiError> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    let first = u32::try_from(first)
        .map_err(|_| ApiError::new(Code::Validation, "first must be between 1 and 100"))?;
    Ok(PageRequest { first, after })
}

/// Lifecycle of a workspace.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "TenantStatus", name = "TenantStatus")]
pub enum TenantStatusGql {
    /// External resources are being set up.
    PendingProvisioning,
    /// In use.
    Active,
    /// Suspended.
    Suspended,
    /// Soft-deleted.
    SoftDeleted,
    /// Purged.
    Purged,
}

/// A member's role in one tenant.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "Role", name = "Role")]
pub enum RoleGql {
    /// Uses the workspace.
    Member,
    /// Administers it.
    Admin,
}

/// Whether a member can sign in.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "MemberStatus", name = "MemberStatus")]
pub enum MemberStatusGql {
    /// Can sign in.
    Active,
    /// Cannot.
    Suspended,
}

/// Directory sort columns.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "TenantSortField")]
pub enum TenantSortFieldGql {
    /// Slug.
    Slug,
    /// Organization name.
    Organization,
    /// Creation time.
    CreatedAt,
    /// Seats.
    Seats,
}

/// A workspace.
pub struct Tenant(TenantRow);

impl Tenant {
    /// Wraps a directory row.
    pub(super) fn from_row(row: TenantRow) -> Self {
        Self(row)
    }

    /// The directory row.
    pub(super) fn row(&self) -> &TenantRow {
        &self.0
    }

    /// The tenant id.
    pub(super) fn id_str(&self) -> &str {
        &self.0.id
    }
}

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn organization(&self) -> &str {
        &self.0.organization
    }
    async fn status(&self) -> TenantStatusGql {
        self.0.status.into()
    }
    async fn plan(&self) -> &str {
        &self.0.plan
    }
    async fn seats(&self) -> u32 {
        self.0.seats
    }
    async fn partner_id(&self) -> Option<&str> {
        self.0.partner_id.as_deref()
    }
    async fn is_platform_tenant(&self) -> bool {
        self.0.is_platform_tenant
    }
    async fn created_at(&self) -> &str {
        &self.0.created_at
    }
    async fn updated_at(&self) -> &str {
        &self.0.updated_at
    }
    async fn member_count(&self) -> u32 {
        self.0.member_count
    }
    /// The members with their role in this tenant.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Member>> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_tenant(authz::standing(db, viewer, &self.0).await?)?;
        let detail = tenant_detail(db, &self.0.id)
            .await
            .map_err(ApiError::from)?;
        Ok(detail
            .map(|d| d.members.into_iter().map(Member).collect())
            .unwrap_or_default())
    }
    /// Billing details (operators, the owning partner, tenant admins).
    async fn billing_info(&self, ctx: &Context<'_>) -> Result<BillingInfoGql> {
        Ok(self.billing_info_field(ctx).await?)
    }
    /// Branding (anyone who may see the tenant).
    async fn branding(&self, ctx: &Context<'_>) -> Result<BrandingGql> {
        Ok(self.branding_field(ctx).await?)
    }
    /// The security policy (operators, the owning partner, tenant admins).
    async fn security_policy(&self, ctx: &Context<'_>) -> Result<SecurityPolicyGql> {
        Ok(self.security_policy_field(ctx).await?)
    }
    /// The tenant's mail domains by name, with the records to publish and the last DNS check
    /// (anyone who may see the tenant).
    async fn domains(&self, ctx: &Context<'_>) -> Result<Vec<DomainGql>> {
        Ok(self.domains_field(ctx).await?)
    }
    /// How many of the tenant's domains need attention (anyone who may see the tenant).
    async fn domains_needing_attention(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(self.domains_needing_attention_field(ctx).await?)
    }
    /// The tenant's aliases by address, each with the mailbox it delivers to (anyone who may
    /// see the tenant).
    async fn aliases(&self, ctx: &Context<'_>) -> Result<Vec<MailAliasGql>> {
        Ok(self.aliases_field(ctx).await?)
    }
    /// The tenant's distribution lists by address, with their recipients (anyone who may see
    /// the tenant).
    async fn mailing_lists(&self, ctx: &Context<'_>) -> Result<Vec<MailingListGql>> {
        Ok(self.mailing_lists_field(ctx).await?)
    }
    /// The tenant's audit timeline, newest first (operators, the owning partner, tenant admins).
    #[allow(clippy::too_many_arguments)]
    async fn audit_timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        text: Option<String>,
        action: Option<String>,
        actor_email: Option<String>,
        since: Option<String>,
        before: Option<String>,
    ) -> Result<AuditConnection> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_audit(authz::standing(db, viewer, &self.0).await?)?;
        let filter = AuditFilter {
            text,
            action,
            outcome: None,
            actor_email,
            since,
            before,
        };
        let result = audit_timeline(db, &self.0.id, &filter, &page(first, after)?)
            .await
            .map_err(ApiError::from)?;
        Ok(AuditConnection {
            nodes: result.items.into_iter().map(AuditEntryGql).collect(),
            page_info: PageInfo {
                end_cursor: result.end_cursor,
                has_next_page: result.has_next_page,
            },
            total_count: result.total_count,
        })
    }
}

/// A member of a tenant.
pub struct Member(MemberRow);

#[Object]
impl Member {
    async fn id(&self) -> ID {
        ID(self.0.member_id.clone())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> RoleGql {
        self.0.role.into()
    }
    async fn is_owner(&self) -> bool {
        self.0.is_owner
    }
    async fn status(&self) -> MemberStatusGql {
        self.0.status.into()
    }
    async fn has_mailbox(&self) -> bool {
        self.0.has_mailbox
    }
}

/// One entry of an audit timeline.
pub struct AuditEntryGql(AuditEntry);

#[Object(name = "AuditEntry")]
impl AuditEntryGql {
    async fn position(&self) -> String {
        self.0.position.to_string()
    }
    async fn recorded_at(&self) -> &str {
        &self.0.recorded_at
    }
    async fn actor_subject(&self) -> Option<&str> {
        self.0.actor_subject.as_deref()
    }
    async fn actor_email(&self) -> Option<&str> {
        self.0.actor_email.as_deref()
    }
    async fn request_ip(&self) -> Option<&str> {
        self.0.request_ip.as_deref()
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn outcome(&self) -> &'static str {
        self.0.outcome.as_str()
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// `{field: {from, to}}` of only the fields the command changed.
    async fn diff(&self) -> Json<serde_json::Value> {
        Json(serde_json::to_value(&self.0.diff).unwrap_or_default())
    }
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// Whether there is a next page.
    pub has_next_page: bool,
}

/// A page of tenants.
#[derive(SimpleObject)]
pub struct TenantConnection {
    /// The tenants of this page.
    pub nodes: Vec<Tenant>,
    /// Where the next page starts.
    pub page_info: PageInfo,
    /// How many match, over all pages.
    pub total_count: u64,
}

/// A page of audit entries.
#[derive(SimpleObject)]
pub struct AuditConnection {
    /// The entries of this page.
    pub nodes: Vec<AuditEntryGql>,
    /// Where the next page starts.
    pub page_info: PageInfo,
    /// How many match, over all pages.
    pub total_count: u64,
}

/// The caller as the API sees them.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Me {
    /// Token subject.
    pub subject: String,
    /// Token e-mail.
    pub email: Option<String>,
    /// Platform admin?
    pub platform_admin: bool,
    /// Partner staff of.
    pub partner_id: Option<String>,
}

/// Queries.
#[derive(MergedObject, Default)]
pub struct Query(
    TenantQuery,
    OperationsQuery,
    DomainsQuery,
    BookingQuery,
    super::health::HealthQuery,
);

/// Queries over tenants.
#[derive(Default)]
pub struct TenantQuery;

#[Object]
impl TenantQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let viewer = auth(ctx).viewer()?;
        Ok(Me {
            subject: viewer.subject.clone(),
            email: viewer.email.clone(),
            platform_admin: viewer.platform_admin,
            partner_id: viewer.partner_id.clone(),
        })
    }

    /// The tenant directory: every tenant for operators, their own for partner staff.
    #[allow(clippy::too_many_arguments)]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        status: Option<TenantStatusGql>,
        plan: Option<String>,
        sort: Option<TenantSortFieldGql>,
        descending: Option<bool>,
    ) -> Result<TenantConnection> {
        let viewer = auth(ctx).viewer()?;
        let partner_id = authz::directory_scope(viewer)?;
        let filter = TenantFilter {
            search,
            status: status.map(Into::into),
            partner_id,
            plan,
        };
        let sort = TenantSort {
            field: match sort.unwrap_or(TenantSortFieldGql::Slug) {
                TenantSortFieldGql::Slug => TenantSortField::Slug,
                TenantSortFieldGql::Organization => TenantSortField::Organization,
                TenantSortFieldGql::CreatedAt => TenantSortField::CreatedAt,
                TenantSortFieldGql::Seats => TenantSortField::Seats,
            },
            descending: descending.unwrap_or(false),
        };
        let result = list_tenants(api(ctx).ledger.db(), &filter, sort, &page(first, after)?)
            .await
            .map_err(ApiError::from)?;
        Ok(TenantConnection {
            nodes: result.items.into_iter().map(Tenant).collect(),
            page_info: PageInfo {
                end_cursor: result.end_cursor,
                has_next_page: result.has_next_page,
            },
            total_count: result.total_count,
        })
    }

    /// One tenant by id or slug, if the caller may see it.
    async fn tenant(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Tenant> {
        let viewer = auth(ctx).viewer()?;
        let row = find_tenant(ctx, id.as_ref().map(|i| i.as_str()), slug.as_deref()).await?;
        authz::may_read_tenant(authz::standing(api(ctx).ledger.db(), viewer, &row).await?)?;
        Ok(Tenant(row))
    }
}

/// The workspace a mutation on its mail domains, addresses or bookings acts on, once the caller
/// may manage it (operators, the owning partner, its admins: [`authz::may_read_settings`]).
pub(super) async fn managed_tenant<'a>(
    ctx: &Context<'a>,
    tenant_id: &str,
) -> std::result::Result<(&'a authz::Viewer, TenantRow), ApiError> {
    let viewer = auth(ctx).viewer()?;
    let row = find_tenant(ctx, Some(tenant_id), None).await?;
    let standing = authz::standing(api(ctx).ledger.db(), viewer, &row).await?;
    authz::may_read_settings(standing)?;
    Ok((viewer, row))
}

/// Looks a tenant up; a caller without standing gets `FORBIDDEN` whether it exists or not.
pub(super) async fn find_tenant(
    ctx: &Context<'_>,
    id: Option<&str>,
    slug: Option<&str>,
) -> std::result::Result<TenantRow, ApiError> {
    let viewer = auth(ctx).viewer()?;
    let db = api(ctx).ledger.db();
    let row = match (id, slug) {
        (Some(id), None) => tenant_detail(db, id).await?.map(|d| d.tenant),
        (None, Some(slug)) => tenant_by_slug(db, slug).await?,
        _ => {
            return Err(ApiError::new(
                Code::Validation,
                "give exactly one of id and slug",
            ))
        }
    };
    row.ok_or_else(|| {
        if viewer.platform_admin {
            ApiError::new(Code::NotFound, "no such tenant")
        } else {
            ApiError::forbidden()
        }
    })
}

/// The first admin of a new tenant.
#[derive(InputObject)]
pub struct FirstAdminInput {
    /// Sign-in e-mail.
    pub email: String,
    /// Display name.
    pub display_name: String,
}

/// `createTenant` input.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Organization name.
    pub organization: String,
    /// Slug (3–63 characters, a–z, 0–9, '-').
    pub slug: String,
    /// Plan id.
    pub plan: String,
    /// Seats.
    pub seats: u32,
    /// First admin (becomes the owner).
    pub first_admin: FirstAdminInput,
    /// Owning partner, for resellers.
    pub partner_id: Option<String>,
}

/// `addMember` input.
#[derive(InputObject)]
pub struct AddMemberInput {
    /// The tenant.
    pub tenant_id: ID,
    /// Sign-in e-mail.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: RoleGql,
}

/// How long a mutation waits for its effect to reach the read models.
pub(super) fn read_your_writes_timeout() -> Duration {
    Duration::from_millis(READ_YOUR_WRITES_TIMEOUT_MS)
}

/// The command context of a request: the caller and the time.
pub(super) fn command_context(ctx: &Context<'_>, viewer: &authz::Viewer) -> CommandContext {
    CommandContext {
        principal: viewer.principal(),
        now: api(ctx).clock.now(),
    }
}

/// Checks the caller's standing towards the tenant, runs the command, waits until the read
/// models show it, and returns the tenant as they now show it.
pub(super) async fn run_tenant_command(
    ctx: &Context<'_>,
    tenant_id: &str,
    action: TenantAction,
) -> std::result::Result<Tenant, ApiError> {
    let viewer = auth(ctx).viewer()?;
    let api = api(ctx);
    let row = find_tenant(ctx, Some(tenant_id), None).await?;
    authz::standing(api.ledger.db(), viewer, &row).await?;
    let command = TenantCommand {
        ctx: command_context(ctx, viewer),
        action,
    };
    api.tenants
        .execute_with_metadata(tenant_id, command, api.metadata(viewer, tenant_id))
        .await
        .map_err(from_aggregate)?;
    api.read_your_writes(read_your_writes_timeout()).await;
    let row = find_tenant(ctx, Some(tenant_id), None).await?;
    Ok(Tenant(row))
}

/// Mutations: one per command.
#[derive(MergedObject, Default)]
pub struct Mutation(
    TenantMutation,
    SettingsMutation,
    OperationsMutation,
    DomainsMutation,
    MailMutation,
    BookingMutation,
);

/// Mutations on a tenant's lifecycle and members.
#[derive(Default)]
pub struct TenantMutation;

#[Object]
impl TenantMutation {
    /// Creates a workspace with its first admin (operators; partner staff for themselves).
    async fn create_tenant(&self, ctx: &Context<'_>, input: CreateTenantInput) -> Result<Tenant> {
        let viewer = auth(ctx).viewer()?;
        authz::may_create_tenant(viewer, input.partner_id.as_deref())?;
        let api = api(ctx);
        let tenant_id = api.ids.next();
        let given = input.slug.trim().to_lowercase();
        // A slug that can never be valid is refused before anything is claimed.
        let slug = Slug::parse(&given)
            .map_err(|problem| {
                ApiError::from(TenantError::InvalidSlug {
                    slug: given.clone(),
                    problem,
                })
            })?
            .as_str()
            .to_owned();
        let command = TenantCommand {
            ctx: CommandContext {
                principal: viewer.principal(),
                now: api.clock.now(),
            },
            action: TenantAction::Create(CreateTenant {
                tenant_id: tenant_id.clone(),
                organization_name: input.organization,
                slug: slug.clone(),
                plan: input.plan,
                seats: input.seats,
                first_admin: NewMember {
                    member_id: api.ids.next(),
                    email: input.first_admin.email,
                    display_name: input.first_admin.display_name,
                },
                partner_id: input.partner_id,
            }),
        };
        let metadata = api.metadata(viewer, &tenant_id);
        create_tenant(&api.slugs, &api.tenants, &slug, command, &metadata)
            .await
            .map_err(|error| match error {
                CreateTenantError::Slug(e) => from_aggregate(e.into_aggregate()),
                CreateTenantError::Tenant(e) => from_aggregate(e.into_aggregate()),
            })?;
        api.read_your_writes(Duration::from_millis(READ_YOUR_WRITES_TIMEOUT_MS))
            .await;
        Ok(Tenant(find_tenant(ctx, Some(&tenant_id), None).await?))
    }

    /// Adds a member (tenant admins, operators): with a workspace mailbox when the address
    /// is on the workspace's service domain or one of its domains, without one on an outside
    /// domain; `ADDRESS_NOT_OURS` on another workspace's domain or the platform's.
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<Tenant> {
        let viewer = auth(ctx).viewer()?;
        let api = api(ctx);
        let row = find_tenant(ctx, Some(&input.tenant_id), None).await?;
        // Only callers with a standing in the workspace get as far as a domain look-up; the
        // aggregate checks their authority before it looks at the placement.
        authz::standing(api.ledger.db(), viewer, &row).await?;
        let placement = place_address(
            &api.ledger,
            &row.id,
            &row.slug,
            &api.platform_domain,
            &input.email,
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
        let action = TenantAction::AddMember {
            member: NewMember {
                member_id: api.ids.next(),
                email: input.email,
                display_name: input.display_name,
            },
            role: input.role.into(),
            placement,
        };
        Ok(run_tenant_command(ctx, &input.tenant_id, action).await?)
    }

    /// Changes a member's role in one tenant.
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
        role: RoleGql,
    ) -> Result<Tenant> {
        let action = TenantAction::ChangeMemberRole {
            member_id: member_id.0,
            role: role.into(),
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Makes an active member the owner.
    async fn transfer_ownership(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::TransferOwnership {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Suspends a member.
    async fn suspend_member(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::SuspendMember {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Resumes a suspended member.
    async fn resume_member(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::ResumeMember {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Removes a member.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::RemoveMember {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Suspends a tenant (operators, the owning partner).
    async fn suspend_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> Result<Tenant> {
        Ok(run_tenant_command(ctx, &tenant_id, TenantAction::Suspend).await?)
    }

    /// Resumes a suspended tenant (operators, the owning partner).
    async fn resume_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> Result<Tenant> {
        Ok(run_tenant_command(ctx, &tenant_id, TenantAction::Resume).await?)
    }

    /// Soft-deletes a tenant (operators, the owning partner).
    async fn soft_delete_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> Result<Tenant> {
        Ok(run_tenant_command(ctx, &tenant_id, TenantAction::SoftDelete).await?)
    }
}
