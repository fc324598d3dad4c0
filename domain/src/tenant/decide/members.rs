//! Member decisions: invitations, roles, ownership, suspension, sessions and removal.
//!
//! Two guards keep a tenant administrable. The primary-account lock: the owner's role, a
//! mailbox-less bootstrap admin's role and the caller's own role cannot be changed. The
//! last-admin guard: the last admin who can sign in cannot be demoted, suspended or removed.

use super::super::aggregate::Tenant;
use super::super::context::Principal;
use super::super::error::{PrimaryAccountLock, SelfAction, TenantError};
use super::super::event::TenantEvent;
use super::super::mail::{address_key, AddressHolder};
use super::super::member::{
    AddressPlacement, Member, MemberStatus, NewMember, Role, MAX_MEMBERS_PER_TENANT,
};
use super::super::values::{
    email, identifier, required_text, same_email, TextField, MAX_DISPLAY_NAME_CHARS,
};

/// Checks a member to be created against the tenant: valid fields, an id never used here, an
/// e-mail no current member has, and room for one more.
pub(super) fn checked_new_member(state: &Tenant, new: NewMember) -> Result<NewMember, TenantError> {
    let member_id = identifier(TextField::MemberId, new.member_id)?;
    let email = email(&new.email)?;
    let display_name = required_text(
        TextField::DisplayName,
        &new.display_name,
        MAX_DISPLAY_NAME_CHARS,
    )?;
    if state.members.contains_key(&member_id) || state.retired_member_ids.contains(&member_id) {
        return Err(TenantError::MemberAlreadyExists { member_id });
    }
    if let Some(existing) = state
        .members
        .values()
        .find(|m| same_email(&m.email, &email))
    {
        return Err(TenantError::DuplicateMemberEmail {
            email,
            member_id: existing.id.clone(),
        });
    }
    // An alias or a list already routes this address elsewhere; a member's own address
    // would route it a second way.
    if let Some(holder @ (AddressHolder::Alias { .. } | AddressHolder::List { .. })) =
        state.address_holder(&email)
    {
        return Err(TenantError::AddressInUse {
            address: address_key(&email),
            holder,
        });
    }
    if state.members.len() >= MAX_MEMBERS_PER_TENANT {
        return Err(TenantError::TooManyMembers {
            max: MAX_MEMBERS_PER_TENANT,
        });
    }
    Ok(NewMember {
        member_id,
        email,
        display_name,
    })
}

/// Invites an admin who signs in with an outside address and has no mailbox yet.
pub(super) fn invite_admin(
    state: &Tenant,
    new: NewMember,
) -> Result<Vec<TenantEvent>, TenantError> {
    let new = checked_new_member(state, new)?;
    Ok(vec![TenantEvent::MemberInvited {
        member_id: new.member_id,
        email: new.email,
        display_name: new.display_name,
        role: Role::Admin,
        owner: false,
        has_mailbox: false,
    }])
}

/// Adds a member: with a workspace mailbox when the address is on a domain the workspace
/// hosts, without one on an outside domain; an address on another workspace's domain or the
/// platform's is refused (it could never be this workspace's mailbox, and claiming it would
/// show a mailbox that nobody makes).
pub(super) fn add(
    state: &Tenant,
    new: NewMember,
    role: Role,
    placement: AddressPlacement,
) -> Result<Vec<TenantEvent>, TenantError> {
    let new = checked_new_member(state, new)?;
    if !placement.is_ours_or_outside() {
        return Err(TenantError::AddressNotOurs {
            address: new.email,
            placement,
        });
    }
    Ok(vec![TenantEvent::MemberAdded {
        member_id: new.member_id,
        email: new.email,
        display_name: new.display_name,
        role,
        has_mailbox: placement.is_hosted(),
    }])
}

/// Changes a member's role, under the primary-account lock and the last-admin guard.
pub(super) fn change_role(
    state: &Tenant,
    principal: &Principal,
    member_id: &str,
    role: Role,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    let lock = if state.is_owner(&member.id) {
        Some(PrimaryAccountLock::Owner)
    } else if member.role == Role::Admin && !member.has_mailbox {
        Some(PrimaryAccountLock::MailboxlessBootstrapAdmin)
    } else if member.may_be(principal) {
        Some(PrimaryAccountLock::Actor)
    } else {
        None
    };
    if let Some(lock) = lock {
        return Err(TenantError::PrimaryAccountLocked {
            member_id: member.id.clone(),
            lock,
        });
    }
    if member.role == role {
        return Ok(Vec::new());
    }
    guard_last_active_admin(state, member)?;
    Ok(vec![TenantEvent::MemberRoleChanged {
        member_id: member.id.clone(),
        from: member.role,
        to: role,
    }])
}

/// Makes an active member the owner: promoted to admin if needed; the previous owner keeps
/// the admin role (so a departed owner can be replaced, then suspended or removed).
pub(super) fn transfer_ownership(
    state: &Tenant,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let target = find(state, member_id)?;
    if state.is_owner(&target.id) {
        return Err(TenantError::AlreadyOwner {
            member_id: target.id.clone(),
        });
    }
    if target.status != MemberStatus::Active {
        return Err(TenantError::TransferTargetNotActive {
            member_id: target.id.clone(),
        });
    }
    let mut events = Vec::with_capacity(2);
    if target.role != Role::Admin {
        events.push(TenantEvent::MemberRoleChanged {
            member_id: target.id.clone(),
            from: target.role,
            to: Role::Admin,
        });
    }
    events.push(TenantEvent::OwnershipTransferred {
        // Every created tenant has an owner: its first admin is invited as owner by the same
        // command that creates it.
        from_member_id: state.owner_member_id.clone().unwrap_or_default(),
        to_member_id: target.id.clone(),
    });
    Ok(events)
}

/// Suspends a member. The owner may be suspended (e.g. after leaving) as long as another
/// admin remains active.
pub(super) fn suspend(
    state: &Tenant,
    principal: &Principal,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    refuse_on_self(member, principal, SelfAction::Suspend)?;
    if member.status == MemberStatus::Suspended {
        return Err(TenantError::MemberAlreadySuspended {
            member_id: member.id.clone(),
        });
    }
    guard_last_active_admin(state, member)?;
    Ok(vec![TenantEvent::MemberSuspended {
        member_id: member.id.clone(),
    }])
}

/// Resumes a suspended member.
pub(super) fn resume(state: &Tenant, member_id: &str) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    if member.status != MemberStatus::Suspended {
        return Err(TenantError::MemberNotSuspended {
            member_id: member.id.clone(),
        });
    }
    Ok(vec![TenantEvent::MemberResumed {
        member_id: member.id.clone(),
    }])
}

/// Requests the end of a member's sessions (never the caller's own: that is signing out).
pub(super) fn force_logout(
    state: &Tenant,
    principal: &Principal,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    refuse_on_self(member, principal, SelfAction::ForceLogout)?;
    Ok(vec![TenantEvent::MemberLogoutRequested {
        member_id: member.id.clone(),
    }])
}

/// Requests a new one-time password for a member.
pub(super) fn reset_password(
    state: &Tenant,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    Ok(vec![TenantEvent::MemberPasswordResetRequested {
        member_id: member.id.clone(),
    }])
}

/// Removes a member: never the owner (transfer first), never the caller, never the last
/// active admin.
pub(super) fn remove(
    state: &Tenant,
    principal: &Principal,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    if state.is_owner(&member.id) {
        return Err(TenantError::OwnerCannotBeRemoved {
            member_id: member.id.clone(),
        });
    }
    refuse_on_self(member, principal, SelfAction::Remove)?;
    guard_last_active_admin(state, member)?;
    Ok(vec![TenantEvent::MemberRemoved {
        member_id: member.id.clone(),
    }])
}

/// Links a member to their SSO identity (issuer, subject). Linking the same identity again
/// changes nothing, so a retried saga step is harmless.
pub(super) fn link_subject(
    state: &Tenant,
    member_id: &str,
    subject: String,
    issuer: Option<String>,
) -> Result<Vec<TenantEvent>, TenantError> {
    let subject = identifier(TextField::Subject, subject)?;
    let issuer = issuer
        .map(|issuer| identifier(TextField::Subject, issuer))
        .transpose()?;
    let member = find(state, member_id)?;
    match &member.subject {
        Some(linked) if *linked == subject && member.issuer == issuer => return Ok(Vec::new()),
        Some(linked) => {
            return Err(TenantError::MemberAlreadyLinked {
                member_id: member.id.clone(),
                subject: linked.clone(),
            })
        }
        None => {}
    }
    if let Some(other) = state
        .members
        .values()
        .find(|m| m.subject.as_deref() == Some(subject.as_str()) && m.issuer == issuer)
    {
        return Err(TenantError::SubjectLinkedToAnotherMember {
            subject,
            member_id: other.id.clone(),
        });
    }
    Ok(vec![TenantEvent::MemberSubjectLinked {
        member_id: member.id.clone(),
        subject,
        issuer,
    }])
}

/// Records that a member's mailbox exists; recording it again changes nothing.
pub(super) fn record_mailbox_created(
    state: &Tenant,
    member_id: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    if member.has_mailbox {
        return Ok(Vec::new());
    }
    Ok(vec![TenantEvent::MemberMailboxCreated {
        member_id: member.id.clone(),
    }])
}

pub(super) fn find<'a>(state: &'a Tenant, member_id: &str) -> Result<&'a Member, TenantError> {
    state
        .members
        .get(member_id)
        .ok_or_else(|| TenantError::MemberNotFound {
            member_id: member_id.to_owned(),
        })
}

fn refuse_on_self(
    member: &Member,
    principal: &Principal,
    action: SelfAction,
) -> Result<(), TenantError> {
    if member.may_be(principal) {
        return Err(TenantError::RefusedOnSelf {
            member_id: member.id.clone(),
            action,
        });
    }
    Ok(())
}

/// Refuses to take away the admin rights of the last admin who can sign in.
fn guard_last_active_admin(state: &Tenant, member: &Member) -> Result<(), TenantError> {
    if member.is_active_admin() && state.active_admin_count() <= 1 {
        return Err(TenantError::LastActiveAdmin {
            member_id: member.id.clone(),
        });
    }
    Ok(())
}
