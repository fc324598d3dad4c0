//! Creating a tenant and moving it through its lifecycle.

use super::super::aggregate::{Tenant, TenantStatus};
use super::super::command::CreateTenant;
use super::super::context::CommandContext;
use super::super::error::{Authority, LifecycleAction, TenantError};
use super::super::event::TenantEvent;
use super::super::member::Role;
use super::super::security::SecurityPolicy;
use super::super::slug::Slug;
use super::super::values::{
    identifier, required_text, TextField, MAX_ORGANIZATION_NAME_CHARS, MAX_SEATS, MIN_SEATS,
};
use super::is_owning_partner;
use super::members::checked_new_member;

/// Creates the tenant and invites its first admin as owner. Platform admins create any
/// tenant; partner staff create tenants owned by their own partner.
pub(super) fn create(
    state: &Tenant,
    ctx: &CommandContext,
    create: CreateTenant,
) -> Result<Vec<TenantEvent>, TenantError> {
    if state.status.is_some() {
        return Err(TenantError::AlreadyExists {
            tenant_id: state.id.clone(),
        });
    }
    let principal = &ctx.principal;
    if !(principal.platform_admin || is_owning_partner(create.partner_id.as_deref(), principal)) {
        return Err(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
    }
    let tenant_id = identifier(TextField::TenantId, create.tenant_id)?;
    let organization_name = required_text(
        TextField::OrganizationName,
        &create.organization_name,
        MAX_ORGANIZATION_NAME_CHARS,
    )?;
    let slug = Slug::parse(&create.slug)
        .map_err(|problem| TenantError::InvalidSlug {
            slug: create.slug.clone(),
            problem,
        })?
        .into_string();
    let plan = identifier(TextField::Plan, create.plan)?;
    if !(MIN_SEATS..=MAX_SEATS).contains(&create.seats) {
        return Err(TenantError::SeatsOutOfRange {
            seats: create.seats,
            min: MIN_SEATS,
            max: MAX_SEATS,
        });
    }
    let partner_id = create
        .partner_id
        .map(|partner_id| identifier(TextField::PartnerId, partner_id))
        .transpose()?;
    let admin = checked_new_member(state, create.first_admin)?;
    Ok(vec![
        TenantEvent::TenantCreated {
            tenant_id,
            organization_name,
            slug,
            plan,
            seats: create.seats,
            partner_id,
            created_at: ctx.now.clone(),
            security_policy: SecurityPolicy::default(),
        },
        TenantEvent::MemberInvited {
            member_id: admin.member_id,
            email: admin.email,
            display_name: admin.display_name,
            role: Role::Admin,
            owner: true,
            has_mailbox: false,
        },
    ])
}

/// The provisioning saga reports that the tenant's external resources exist.
pub(super) fn provision(status: TenantStatus) -> Result<Vec<TenantEvent>, TenantError> {
    match status {
        TenantStatus::PendingProvisioning => Ok(vec![TenantEvent::TenantProvisioned {}]),
        from => Err(TenantError::InvalidTransition {
            action: LifecycleAction::Provision,
            from,
        }),
    }
}

/// Only an active tenant can be suspended: a pending one has nothing running to stop yet.
pub(super) fn suspend(status: TenantStatus) -> Result<Vec<TenantEvent>, TenantError> {
    match status {
        TenantStatus::Active => Ok(vec![TenantEvent::TenantSuspended {}]),
        from => Err(TenantError::InvalidTransition {
            action: LifecycleAction::Suspend,
            from,
        }),
    }
}

/// Only a suspended tenant can be resumed.
pub(super) fn resume(status: TenantStatus) -> Result<Vec<TenantEvent>, TenantError> {
    match status {
        TenantStatus::Suspended => Ok(vec![TenantEvent::TenantResumed {}]),
        from => Err(TenantError::InvalidTransition {
            action: LifecycleAction::Resume,
            from,
        }),
    }
}

/// Soft-deletes a pending, active or suspended tenant (deleted ones never get here).
pub(super) fn soft_delete(ctx: &CommandContext) -> Vec<TenantEvent> {
    vec![TenantEvent::TenantSoftDeleted {
        deleted_at: ctx.now.clone(),
    }]
}

/// Purges a soft-deleted tenant. Two steps on purpose (the seed's rule): nothing is torn down
/// irreversibly unless someone first soft-deleted it.
pub(super) fn purge(state: &Tenant, status: TenantStatus) -> Result<Vec<TenantEvent>, TenantError> {
    match status {
        TenantStatus::SoftDeleted => Ok(vec![TenantEvent::TenantPurged {
            slug: state.slug.clone(),
        }]),
        TenantStatus::Purged => Err(TenantError::Deleted { status }),
        _ => Err(TenantError::PurgeRequiresSoftDeletion { status }),
    }
}
