//! The tenant's status lifecycle: provision, suspend, resume, soft-delete, purge.

use super::*;
use crate::tenant::{
    Authority, BillingInfoPatch, LifecycleAction, SecurityPolicyPatch, TenantStatus,
};

/// One action of each kind an existing tenant accepts (Create aside).
fn every_action_but_create() -> Vec<TenantAction> {
    vec![
        TenantAction::Provision,
        TenantAction::Suspend,
        TenantAction::Resume,
        TenantAction::SoftDelete,
        TenantAction::Purge,
        TenantAction::UpdateBillingInfo(BillingInfoPatch::default()),
        TenantAction::UpdateBranding(Default::default()),
        TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch::default()),
        TenantAction::InviteAdmin(new_member("m-new", "new@acme.example", "New")),
        TenantAction::AddMember {
            member: new_member("m-new", "new@acme.example", "New"),
            role: Role::Member,
            placement: crate::tenant::AddressPlacement::OwnDomain,
        },
        TenantAction::ChangeMemberRole {
            member_id: MEMBER.into(),
            role: Role::Admin,
        },
        TenantAction::TransferOwnership {
            member_id: ADMIN.into(),
        },
        TenantAction::SuspendMember {
            member_id: MEMBER.into(),
        },
        TenantAction::ResumeMember {
            member_id: MEMBER.into(),
        },
        TenantAction::ForceLogout {
            member_id: MEMBER.into(),
        },
        TenantAction::ResetPassword {
            member_id: MEMBER.into(),
        },
        TenantAction::RemoveMember {
            member_id: MEMBER.into(),
        },
        TenantAction::LinkMemberSubject {
            member_id: MEMBER.into(),
            subject: "sub-member".into(),
            issuer: None,
        },
        TenantAction::RecordMailboxCreated {
            member_id: OWNER.into(),
        },
    ]
}

#[test]
fn every_command_but_create_on_a_tenant_that_does_not_exist_is_refused_as_not_found() {
    for action in every_action_but_create() {
        assert_eq!(
            outcome(vec![], operator(), action.clone()),
            Err(TenantError::NotFound),
            "{action:?}"
        );
    }
}

#[test]
fn the_provisioning_saga_activates_a_pending_tenant() {
    given(pending())
        .when(by(system(), TenantAction::Provision))
        .then_expect_events(vec![TenantEvent::TenantProvisioned {}]);
}

#[test]
fn only_a_platform_admin_or_processor_records_provisioning() {
    for principal in [partner_staff(), owner()] {
        assert_eq!(
            outcome(pending(), principal, TenantAction::Provision),
            Err(TenantError::NotAuthorized {
                required: Authority::PlatformAdmin
            })
        );
    }
}

#[test]
fn provisioning_a_tenant_that_is_not_pending_is_refused() {
    given(active())
        .when(by(system(), TenantAction::Provision))
        .then_expect_error(TenantError::InvalidTransition {
            action: LifecycleAction::Provision,
            from: TenantStatus::Active,
        });
    given(suspended())
        .when(by(system(), TenantAction::Provision))
        .then_expect_error(TenantError::InvalidTransition {
            action: LifecycleAction::Provision,
            from: TenantStatus::Suspended,
        });
}

#[test]
fn a_platform_admin_suspends_an_active_tenant() {
    given(active())
        .when(by(operator(), TenantAction::Suspend))
        .then_expect_events(vec![TenantEvent::TenantSuspended {}]);
}

#[test]
fn the_owning_partner_suspends_and_resumes_its_tenant() {
    given(active())
        .when(by(partner_staff(), TenantAction::Suspend))
        .then_expect_events(vec![TenantEvent::TenantSuspended {}]);
    given(suspended())
        .when(by(partner_staff(), TenantAction::Resume))
        .then_expect_events(vec![TenantEvent::TenantResumed {}]);
}

#[test]
fn another_partner_cannot_suspend_the_tenant() {
    given(active())
        .when(by(other_partner_staff(), TenantAction::Suspend))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
}

#[test]
fn a_tenant_admin_cannot_suspend_or_delete_their_own_tenant() {
    for action in [TenantAction::Suspend, TenantAction::SoftDelete] {
        assert_eq!(
            outcome(active(), admin(), action),
            Err(TenantError::NotAuthorized {
                required: Authority::PlatformAdminOrOwningPartner
            })
        );
    }
}

#[test]
fn a_pending_tenant_cannot_be_suspended() {
    given(pending())
        .when(by(operator(), TenantAction::Suspend))
        .then_expect_error(TenantError::InvalidTransition {
            action: LifecycleAction::Suspend,
            from: TenantStatus::PendingProvisioning,
        });
}

#[test]
fn suspending_a_suspended_tenant_is_refused() {
    given(suspended())
        .when(by(operator(), TenantAction::Suspend))
        .then_expect_error(TenantError::InvalidTransition {
            action: LifecycleAction::Suspend,
            from: TenantStatus::Suspended,
        });
}

#[test]
fn a_suspended_tenant_is_resumed_to_active() {
    given(suspended())
        .when(by(operator(), TenantAction::Resume))
        .then_expect_events(vec![TenantEvent::TenantResumed {}]);
    let resumed = folded(and(suspended(), [TenantEvent::TenantResumed {}]));
    assert_eq!(resumed.status, Some(TenantStatus::Active));
}

#[test]
fn resuming_a_tenant_that_is_not_suspended_is_refused() {
    for (events, from) in [
        (active(), TenantStatus::Active),
        (pending(), TenantStatus::PendingProvisioning),
    ] {
        assert_eq!(
            outcome(events, operator(), TenantAction::Resume),
            Err(TenantError::InvalidTransition {
                action: LifecycleAction::Resume,
                from
            })
        );
    }
}

#[test]
fn pending_active_and_suspended_tenants_can_be_soft_deleted() {
    for events in [pending(), active(), suspended()] {
        assert_eq!(
            outcome(events, operator(), TenantAction::SoftDelete),
            Ok(vec![TenantEvent::TenantSoftDeleted {
                deleted_at: NOW.into()
            }])
        );
    }
}

#[test]
fn a_soft_deleted_tenant_records_when_it_was_deleted() {
    let tenant = folded(soft_deleted());
    assert_eq!(tenant.status, Some(TenantStatus::SoftDeleted));
    assert_eq!(tenant.deleted_at.as_deref(), Some(NOW));
}

#[test]
fn every_command_but_purge_on_a_soft_deleted_tenant_is_refused() {
    for action in every_action_but_create() {
        if action == TenantAction::Purge {
            continue;
        }
        assert_eq!(
            outcome(soft_deleted(), operator(), action.clone()),
            Err(TenantError::Deleted {
                status: TenantStatus::SoftDeleted
            }),
            "{action:?}"
        );
    }
}

#[test]
fn every_command_on_a_purged_tenant_is_refused_including_purge() {
    let purged = and(
        soft_deleted(),
        [TenantEvent::TenantPurged { slug: SLUG.into() }],
    );
    for action in every_action_but_create() {
        assert_eq!(
            outcome(purged.clone(), operator(), action.clone()),
            Err(TenantError::Deleted {
                status: TenantStatus::Purged
            }),
            "{action:?}"
        );
    }
}

#[test]
fn a_caller_without_authority_learns_nothing_about_a_deleted_tenant() {
    given(soft_deleted())
        .when(by(stranger(), TenantAction::Resume))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
}

#[test]
fn a_platform_admin_purges_a_soft_deleted_tenant_naming_the_slug_to_release() {
    given(soft_deleted())
        .when(by(operator(), TenantAction::Purge))
        .then_expect_events(vec![TenantEvent::TenantPurged { slug: SLUG.into() }]);
}

#[test]
fn purge_by_anyone_but_a_platform_admin_is_refused() {
    for principal in [partner_staff(), owner(), admin(), stranger()] {
        assert_eq!(
            outcome(soft_deleted(), principal, TenantAction::Purge),
            Err(TenantError::NotAuthorized {
                required: Authority::PlatformAdmin
            })
        );
    }
}

#[test]
fn purge_of_a_tenant_that_was_not_soft_deleted_is_refused() {
    for (events, status) in [
        (active(), TenantStatus::Active),
        (pending(), TenantStatus::PendingProvisioning),
        (suspended(), TenantStatus::Suspended),
    ] {
        assert_eq!(
            outcome(events, operator(), TenantAction::Purge),
            Err(TenantError::PurgeRequiresSoftDeletion { status })
        );
    }
}

#[test]
fn a_suspended_tenant_still_accepts_settings_changes() {
    given(suspended())
        .when(by(
            admin(),
            TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch {
                session_idle_minutes: Some(30),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![TenantEvent::SecurityPolicyUpdated {
            changes: crate::tenant::SecurityPolicyChanges {
                session_idle_minutes: Some(crate::tenant::FieldChange {
                    from: Some(60),
                    to: Some(30),
                }),
                ..Default::default()
            },
        }]);
}
