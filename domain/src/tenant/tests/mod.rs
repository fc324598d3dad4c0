//! Given/when/then tests of the tenant aggregate, one per rule, named as the rule.
//!
//! They run through cqrs-es's `TestFramework`, so every test also exercises `apply` (the
//! given events are folded) and `handle` (the command is decided through the aggregate).

mod create;
mod events;
mod lifecycle;
mod mail;
mod members;
mod settings;

use cqrs_es::test::{AggregateTestExecutor, TestFramework};

use super::{
    CommandContext, CreateTenant, NewMember, Principal, Role, SecurityPolicy, Tenant, TenantAction,
    TenantCommand, TenantError, TenantEvent,
};

/// The time every test command is issued at.
pub(super) const NOW: &str = "2026-11-28T10:00:00Z";
/// The tenant under test.
pub(super) const TENANT_ID: &str = "0f8b6c1e-4a2d-4c3b-9e5f-7a1d2c3b4e5f";
/// Its slug.
pub(super) const SLUG: &str = "acme";
/// The partner that owns it.
pub(super) const PARTNER_ID: &str = "partner-nordic";

/// The owner: the first admin, mailbox-less.
pub(super) const OWNER: &str = "m-owner";
pub(super) const OWNER_EMAIL: &str = "founder@acme.example";
/// An admin with a mailbox.
pub(super) const ADMIN: &str = "m-admin";
pub(super) const ADMIN_EMAIL: &str = "admin@acme.example";
/// A plain member with a mailbox.
pub(super) const MEMBER: &str = "m-member";
pub(super) const MEMBER_EMAIL: &str = "member@acme.example";

pub(super) fn given(events: Vec<TenantEvent>) -> AggregateTestExecutor<Tenant> {
    TestFramework::<Tenant>::with(()).given(events)
}

pub(super) fn given_nothing() -> AggregateTestExecutor<Tenant> {
    TestFramework::<Tenant>::with(()).given_no_previous_events()
}

/// A command by `principal` at [`NOW`].
pub(super) fn by(principal: Principal, action: TenantAction) -> TenantCommand {
    TenantCommand::new(CommandContext::new(principal, NOW), action)
}

/// The result of `action` by `principal` on the tenant folded from `events`.
pub(super) fn outcome(
    events: Vec<TenantEvent>,
    principal: Principal,
    action: TenantAction,
) -> Result<Vec<TenantEvent>, TenantError> {
    given(events).when(by(principal, action)).inspect_result()
}

/// The state folded from `events`.
pub(super) fn folded(events: Vec<TenantEvent>) -> Tenant {
    use cqrs_es::Aggregate;
    let mut tenant = Tenant::default();
    for event in events {
        tenant.apply(event);
    }
    tenant
}

pub(super) fn operator() -> Principal {
    Principal::platform_admin("op-1", "ops@dezky.eu")
}

pub(super) fn system() -> Principal {
    Principal::system("provisioning")
}

pub(super) fn partner_staff() -> Principal {
    Principal::partner_staff("ps-1", "sales@reseller.example", PARTNER_ID)
}

pub(super) fn other_partner_staff() -> Principal {
    Principal::partner_staff("ps-2", "sales@other-reseller.example", "partner-other")
}

pub(super) fn owner() -> Principal {
    Principal::user("sub-owner", OWNER_EMAIL)
}

pub(super) fn admin() -> Principal {
    Principal::user("sub-admin", ADMIN_EMAIL)
}

pub(super) fn member() -> Principal {
    Principal::user("sub-member", MEMBER_EMAIL)
}

pub(super) fn stranger() -> Principal {
    Principal::user("sub-stranger", "someone@elsewhere.example")
}

pub(super) fn new_member(member_id: &str, email: &str, display_name: &str) -> NewMember {
    NewMember {
        member_id: member_id.into(),
        email: email.into(),
        display_name: display_name.into(),
    }
}

/// A valid creation of the tenant under test, owned by [`PARTNER_ID`].
pub(super) fn create_tenant() -> CreateTenant {
    CreateTenant {
        tenant_id: TENANT_ID.into(),
        organization_name: "Acme ApS".into(),
        slug: SLUG.into(),
        plan: "business".into(),
        seats: 25,
        first_admin: new_member(OWNER, OWNER_EMAIL, "Frida Founder"),
        partner_id: Some(PARTNER_ID.into()),
    }
}

pub(super) fn tenant_created() -> TenantEvent {
    TenantEvent::TenantCreated {
        tenant_id: TENANT_ID.into(),
        organization_name: "Acme ApS".into(),
        slug: SLUG.into(),
        plan: "business".into(),
        seats: 25,
        partner_id: Some(PARTNER_ID.into()),
        created_at: NOW.into(),
        security_policy: SecurityPolicy::default(),
    }
}

pub(super) fn owner_invited() -> TenantEvent {
    TenantEvent::MemberInvited {
        member_id: OWNER.into(),
        email: OWNER_EMAIL.into(),
        display_name: "Frida Founder".into(),
        role: Role::Admin,
        owner: true,
        has_mailbox: false,
    }
}

pub(super) fn added(member_id: &str, email: &str, role: Role) -> TenantEvent {
    TenantEvent::MemberAdded {
        member_id: member_id.into(),
        email: email.into(),
        display_name: format!("Name of {member_id}"),
        role,
        has_mailbox: true,
    }
}

pub(super) fn member_suspended(member_id: &str) -> TenantEvent {
    TenantEvent::MemberSuspended {
        member_id: member_id.into(),
    }
}

/// A tenant that was just created: pending provisioning, the owner its only member.
pub(super) fn pending() -> Vec<TenantEvent> {
    vec![tenant_created(), owner_invited()]
}

/// A provisioned tenant with the owner, an admin with a mailbox and a plain member.
pub(super) fn active() -> Vec<TenantEvent> {
    let mut events = pending();
    events.extend([
        TenantEvent::TenantProvisioned {},
        added(ADMIN, ADMIN_EMAIL, Role::Admin),
        added(MEMBER, MEMBER_EMAIL, Role::Member),
    ]);
    events
}

/// [`active`] and then suspended.
pub(super) fn suspended() -> Vec<TenantEvent> {
    let mut events = active();
    events.push(TenantEvent::TenantSuspended {});
    events
}

/// [`active`] and then soft-deleted.
pub(super) fn soft_deleted() -> Vec<TenantEvent> {
    let mut events = active();
    events.push(TenantEvent::TenantSoftDeleted {
        deleted_at: NOW.into(),
    });
    events
}

/// `events` followed by `more`.
pub(super) fn and(
    mut events: Vec<TenantEvent>,
    more: impl IntoIterator<Item = TenantEvent>,
) -> Vec<TenantEvent> {
    events.extend(more);
    events
}
