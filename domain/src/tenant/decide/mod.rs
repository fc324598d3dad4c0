//! Deciding tenant commands: pure functions from the current state and a command to the
//! events it causes, or the reason it is refused.
//!
//! Checks run in a fixed order, so the same command on the same state always fails the same
//! way: the context; existence; authority (before anything about the tenant's state is
//! revealed to a caller who may not see it); the deleted-tenant guard; then the action's own
//! rules.

mod lifecycle;
mod mail;
mod members;
mod settings;

use super::aggregate::{Tenant, TenantStatus};
use super::command::{TenantAction, TenantCommand};
use super::context::{CommandContext, Principal};
use super::error::{Authority, TenantError};
use super::event::TenantEvent;
use super::member::Member;

/// Decides which events a tenant command produces, or why it is refused. Pure: no clock, no
/// randomness, no I/O; time and ids come in the command.
pub fn decide(state: &Tenant, command: TenantCommand) -> Result<Vec<TenantEvent>, TenantError> {
    let TenantCommand { ctx, action } = command;
    ctx.check()?;
    match (action, state.status) {
        (TenantAction::Create(create), _) => lifecycle::create(state, &ctx, create),
        (_, None) => Err(TenantError::NotFound),
        (action, Some(status)) => decide_existing(state, &ctx, status, action),
    }
}

fn decide_existing(
    state: &Tenant,
    ctx: &CommandContext,
    status: TenantStatus,
    action: TenantAction,
) -> Result<Vec<TenantEvent>, TenantError> {
    authorize(state, &ctx.principal, &action)?;
    if status.is_deleted() && action != TenantAction::Purge {
        return Err(TenantError::Deleted { status });
    }
    let principal = &ctx.principal;
    match action {
        // `decide` routes every Create to `lifecycle::create` before this point; the arm
        // keeps the match total without a panic path, and gives the right answer anyway.
        TenantAction::Create(create) => lifecycle::create(state, ctx, create),
        TenantAction::Provision => lifecycle::provision(status),
        TenantAction::Suspend => lifecycle::suspend(status),
        TenantAction::Resume => lifecycle::resume(status),
        TenantAction::SoftDelete => Ok(lifecycle::soft_delete(ctx)),
        TenantAction::Purge => lifecycle::purge(state, status),
        TenantAction::UpdateBillingInfo(patch) => settings::billing(state, patch),
        TenantAction::UpdateBranding(patch) => settings::branding(state, patch),
        TenantAction::UpdateSecurityPolicy(patch) => settings::security_policy(state, patch),
        TenantAction::InviteAdmin(member) => members::invite_admin(state, member),
        TenantAction::AddMember {
            member,
            role,
            placement,
        } => members::add(state, member, role, placement),
        TenantAction::ChangeMemberRole { member_id, role } => {
            members::change_role(state, principal, &member_id, role)
        }
        TenantAction::TransferOwnership { member_id } => {
            members::transfer_ownership(state, &member_id)
        }
        TenantAction::SuspendMember { member_id } => members::suspend(state, principal, &member_id),
        TenantAction::ResumeMember { member_id } => members::resume(state, &member_id),
        TenantAction::ForceLogout { member_id } => {
            members::force_logout(state, principal, &member_id)
        }
        TenantAction::ResetPassword { member_id } => members::reset_password(state, &member_id),
        TenantAction::RemoveMember { member_id } => members::remove(state, principal, &member_id),
        TenantAction::LinkMemberSubject {
            member_id,
            subject,
            issuer,
        } => members::link_subject(state, &member_id, subject, issuer),
        TenantAction::RecordMailboxCreated { member_id } => {
            members::record_mailbox_created(state, &member_id)
        }
        TenantAction::AddAlias { member_id, alias } => mail::add_alias(state, &member_id, &alias),
        TenantAction::RemoveAlias { member_id, alias } => {
            mail::remove_alias(state, &member_id, &alias)
        }
        TenantAction::CreateList {
            list_id,
            address,
            display_name,
            recipients,
        } => mail::create_list(state, list_id, &address, &display_name, recipients),
        TenantAction::SetListRecipients {
            list_id,
            recipients,
        } => mail::set_list_recipients(state, &list_id, recipients),
        TenantAction::DeleteList { list_id } => mail::delete_list(state, &list_id),
    }
}

/// Refuses the action unless the principal holds the authority it needs in this tenant.
fn authorize(
    state: &Tenant,
    principal: &Principal,
    action: &TenantAction,
) -> Result<(), TenantError> {
    let required = action.authority();
    let platform_admin = principal.platform_admin;
    let owning_partner = || is_owning_partner(state.partner_id.as_deref(), principal);
    let tenant_admin = || {
        state
            .acting_member(principal)
            .is_some_and(Member::is_active_admin)
    };
    let allowed = match required {
        Authority::PlatformAdmin => platform_admin,
        Authority::PlatformAdminOrOwningPartner => platform_admin || owning_partner(),
        Authority::TenantManager => platform_admin || owning_partner() || tenant_admin(),
        Authority::PlatformAdminOrTenantAdmin => platform_admin || tenant_admin(),
        Authority::PlatformAdminOrTheMember => {
            platform_admin
                || match action {
                    // A member may link only their own account to their own identity.
                    TenantAction::LinkMemberSubject {
                        member_id,
                        subject,
                        issuer,
                    } => {
                        *subject == principal.subject
                            && *issuer == principal.issuer
                            && state
                                .acting_member(principal)
                                .is_some_and(|member| member.id == *member_id)
                    }
                    _ => false,
                }
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(TenantError::NotAuthorized { required })
    }
}

/// Whether the principal is staff of `partner_id`.
fn is_owning_partner(partner_id: Option<&str>, principal: &Principal) -> bool {
    matches!(
        (partner_id, principal.partner_id.as_deref()),
        (Some(owner), Some(staff_of)) if owner == staff_of
    )
}
