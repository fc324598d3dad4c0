//! Members: invitations, roles with the primary-account lock and the last-admin guard,
//! ownership, suspension, sessions, passwords, removal and SSO links.

use super::*;
use crate::tenant::{
    Authority, MemberStatus, PrimaryAccountLock, SelfAction, TextField, MAX_MEMBERS_PER_TENANT,
};

fn change_role(member_id: &str, role: Role) -> TenantAction {
    TenantAction::ChangeMemberRole {
        member_id: member_id.into(),
        role,
    }
}

fn role_changed(member_id: &str, from: Role, to: Role) -> TenantEvent {
    TenantEvent::MemberRoleChanged {
        member_id: member_id.into(),
        from,
        to,
    }
}

fn suspend(member_id: &str) -> TenantAction {
    TenantAction::SuspendMember {
        member_id: member_id.into(),
    }
}

fn remove(member_id: &str) -> TenantAction {
    TenantAction::RemoveMember {
        member_id: member_id.into(),
    }
}

fn transfer(member_id: &str) -> TenantAction {
    TenantAction::TransferOwnership {
        member_id: member_id.into(),
    }
}

fn link(member_id: &str, subject: &str) -> TenantAction {
    TenantAction::LinkMemberSubject {
        member_id: member_id.into(),
        subject: subject.into(),
        issuer: None,
    }
}

fn linked(member_id: &str, subject: &str) -> TenantEvent {
    TenantEvent::MemberSubjectLinked {
        member_id: member_id.into(),
        subject: subject.into(),
        issuer: None,
    }
}

/// [`active`] with the owner suspended: the admin with a mailbox is the only active admin.
fn owner_suspended() -> Vec<TenantEvent> {
    and(active(), [member_suspended(OWNER)])
}

// Invitations and additions.

#[test]
fn a_tenant_admin_invites_another_admin_who_has_no_mailbox_yet() {
    given(active())
        .when(by(
            admin(),
            TenantAction::InviteAdmin(new_member("m-cfo", "cfo@gmail.example", "Carla CFO")),
        ))
        .then_expect_events(vec![TenantEvent::MemberInvited {
            member_id: "m-cfo".into(),
            email: "cfo@gmail.example".into(),
            display_name: "Carla CFO".into(),
            role: Role::Admin,
            owner: false,
            has_mailbox: false,
        }]);
}

#[test]
fn a_platform_admin_invites_an_admin_into_a_tenant_still_pending_provisioning() {
    let events = outcome(
        pending(),
        operator(),
        TenantAction::InviteAdmin(new_member("m-2", "second@acme.example", "Second")),
    );
    assert!(matches!(
        events.as_deref(),
        Ok([TenantEvent::MemberInvited { .. }])
    ));
}

#[test]
fn a_member_is_added_with_a_mailbox_and_the_given_role() {
    given(active())
        .when(by(
            owner(),
            TenantAction::AddMember {
                member: new_member("m-new", "new@acme.example", "Name of m-new"),
                role: Role::Admin,
                placement: crate::tenant::AddressPlacement::OwnDomain,
            },
        ))
        .then_expect_events(vec![added("m-new", "new@acme.example", Role::Admin)]);
}

#[test]
fn a_member_email_already_in_the_tenant_is_refused_case_insensitively() {
    given(active())
        .when(by(
            admin(),
            TenantAction::AddMember {
                member: new_member("m-new", "Member@ACME.example", "Dup"),
                role: Role::Member,
                placement: crate::tenant::AddressPlacement::OwnDomain,
            },
        ))
        .then_expect_error(TenantError::DuplicateMemberEmail {
            email: "Member@ACME.example".into(),
            member_id: MEMBER.into(),
        });
}

#[test]
fn a_member_id_in_use_is_refused() {
    given(active())
        .when(by(
            admin(),
            TenantAction::InviteAdmin(new_member(MEMBER, "other@acme.example", "Other")),
        ))
        .then_expect_error(TenantError::MemberAlreadyExists {
            member_id: MEMBER.into(),
        });
}

#[test]
fn a_removed_members_id_is_never_reused_but_their_email_can_return() {
    let removed = and(
        active(),
        [TenantEvent::MemberRemoved {
            member_id: MEMBER.into(),
        }],
    );
    assert_eq!(
        outcome(
            removed.clone(),
            admin(),
            TenantAction::AddMember {
                member: new_member(MEMBER, "fresh@acme.example", "Fresh"),
                role: Role::Member,
                placement: crate::tenant::AddressPlacement::OwnDomain,
            }
        ),
        Err(TenantError::MemberAlreadyExists {
            member_id: MEMBER.into()
        })
    );
    given(removed)
        .when(by(
            admin(),
            TenantAction::AddMember {
                member: new_member("m-back", MEMBER_EMAIL, "Name of m-back"),
                role: Role::Member,
                placement: crate::tenant::AddressPlacement::OwnDomain,
            },
        ))
        .then_expect_events(vec![added("m-back", MEMBER_EMAIL, Role::Member)]);
}

#[test]
fn a_member_with_an_invalid_email_or_blank_name_is_refused() {
    let add = |email: &str, name: &str| TenantAction::AddMember {
        member: new_member("m-new", email, name),
        role: Role::Member,
        placement: crate::tenant::AddressPlacement::OwnDomain,
    };
    assert_eq!(
        outcome(active(), admin(), add("new@", "New")),
        Err(TenantError::InvalidEmail {
            email: "new@".into()
        })
    );
    assert_eq!(
        outcome(active(), admin(), add("new@acme.example", " ")),
        Err(TenantError::Blank {
            field: TextField::DisplayName
        })
    );
}

#[test]
fn a_tenant_at_the_member_limit_refuses_another_member() {
    let mut events = active();
    events.extend((0..MAX_MEMBERS_PER_TENANT - 3).map(|i| {
        added(
            &format!("m-{i}"),
            &format!("p{i}@acme.example"),
            Role::Member,
        )
    }));
    given(events)
        .when(by(
            admin(),
            TenantAction::AddMember {
                member: new_member("m-last", "last@acme.example", "Last"),
                role: Role::Member,
                placement: crate::tenant::AddressPlacement::OwnDomain,
            },
        ))
        .then_expect_error(TenantError::TooManyMembers {
            max: MAX_MEMBERS_PER_TENANT,
        });
}

#[test]
fn plain_members_cannot_manage_members() {
    given(active())
        .when(by(
            member(),
            TenantAction::InviteAdmin(new_member("m-x", "x@acme.example", "X")),
        ))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::TenantManager,
        });
}

#[test]
fn a_suspended_admin_has_no_admin_rights() {
    given(and(active(), [member_suspended(ADMIN)]))
        .when(by(admin(), change_role(MEMBER, Role::Admin)))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::TenantManager,
        });
}

#[test]
fn admin_rights_belong_to_the_tenant_where_the_person_is_admin() {
    // The same person is admin of another workspace; here they are a plain member.
    let elsewhere_admin = Principal::user("sub-member", MEMBER_EMAIL);
    given(active())
        .when(by(elsewhere_admin, suspend(ADMIN)))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::TenantManager,
        });
}

#[test]
fn a_linked_admin_is_recognised_by_subject_and_no_longer_by_email_alone() {
    let linked_admin = and(active(), [linked(ADMIN, "sub-admin")]);
    let renamed = Principal::user("sub-admin", "new-address@acme.example");
    assert!(outcome(linked_admin.clone(), renamed, suspend(MEMBER)).is_ok());
    let impostor = Principal::user("sub-impostor", ADMIN_EMAIL);
    assert_eq!(
        outcome(linked_admin, impostor, suspend(MEMBER)),
        Err(TenantError::NotAuthorized {
            required: Authority::TenantManager
        })
    );
}

// Roles.

#[test]
fn an_admin_promotes_a_member_to_admin() {
    given(active())
        .when(by(admin(), change_role(MEMBER, Role::Admin)))
        .then_expect_events(vec![role_changed(MEMBER, Role::Member, Role::Admin)]);
}

#[test]
fn the_owner_demotes_an_admin_with_a_mailbox() {
    given(active())
        .when(by(owner(), change_role(ADMIN, Role::Member)))
        .then_expect_events(vec![role_changed(ADMIN, Role::Admin, Role::Member)]);
}

#[test]
fn the_owners_role_cannot_be_changed() {
    let with_mailbox = and(
        active(),
        [TenantEvent::MemberMailboxCreated {
            member_id: OWNER.into(),
        }],
    );
    given(with_mailbox)
        .when(by(admin(), change_role(OWNER, Role::Member)))
        .then_expect_error(TenantError::PrimaryAccountLocked {
            member_id: OWNER.into(),
            lock: PrimaryAccountLock::Owner,
        });
}

#[test]
fn a_mailboxless_bootstrap_admins_role_cannot_be_changed() {
    let invited = and(
        active(),
        outcome(
            active(),
            operator(),
            TenantAction::InviteAdmin(new_member("m-boot", "boot@gmail.example", "Boot")),
        )
        .expect("valid"),
    );
    given(invited)
        .when(by(owner(), change_role("m-boot", Role::Member)))
        .then_expect_error(TenantError::PrimaryAccountLocked {
            member_id: "m-boot".into(),
            lock: PrimaryAccountLock::MailboxlessBootstrapAdmin,
        });
}

#[test]
fn once_a_bootstrap_admin_has_a_mailbox_their_role_can_change() {
    let mut events = active();
    events.extend(
        outcome(
            active(),
            operator(),
            TenantAction::InviteAdmin(new_member("m-boot", "boot@gmail.example", "Boot")),
        )
        .expect("valid"),
    );
    events.push(TenantEvent::MemberMailboxCreated {
        member_id: "m-boot".into(),
    });
    given(events)
        .when(by(owner(), change_role("m-boot", Role::Member)))
        .then_expect_events(vec![role_changed("m-boot", Role::Admin, Role::Member)]);
}

#[test]
fn nobody_changes_their_own_role() {
    given(active())
        .when(by(admin(), change_role(ADMIN, Role::Member)))
        .then_expect_error(TenantError::PrimaryAccountLocked {
            member_id: ADMIN.into(),
            lock: PrimaryAccountLock::Actor,
        });
}

#[test]
fn a_platform_admin_who_is_the_member_cannot_change_their_own_role_either() {
    let operator_as_admin = Principal::platform_admin("sub-x", "ADMIN@acme.example");
    given(active())
        .when(by(operator_as_admin, change_role(ADMIN, Role::Member)))
        .then_expect_error(TenantError::PrimaryAccountLocked {
            member_id: ADMIN.into(),
            lock: PrimaryAccountLock::Actor,
        });
}

#[test]
fn setting_the_role_a_member_already_has_records_nothing() {
    given(active())
        .when(by(admin(), change_role(MEMBER, Role::Member)))
        .then_expect_events(vec![]);
}

#[test]
fn the_last_active_admin_cannot_be_demoted() {
    given(owner_suspended())
        .when(by(operator(), change_role(ADMIN, Role::Member)))
        .then_expect_error(TenantError::LastActiveAdmin {
            member_id: ADMIN.into(),
        });
}

#[test]
fn changing_the_role_of_someone_who_is_not_a_member_is_refused() {
    given(active())
        .when(by(admin(), change_role("m-ghost", Role::Admin)))
        .then_expect_error(TenantError::MemberNotFound {
            member_id: "m-ghost".into(),
        });
}

// Ownership.

#[test]
fn the_owner_transfers_ownership_to_a_member_who_is_promoted_to_admin() {
    given(active())
        .when(by(owner(), transfer(MEMBER)))
        .then_expect_events(vec![
            role_changed(MEMBER, Role::Member, Role::Admin),
            TenantEvent::OwnershipTransferred {
                from_member_id: OWNER.into(),
                to_member_id: MEMBER.into(),
            },
        ]);
}

#[test]
fn after_a_transfer_the_new_owner_is_an_admin_and_the_previous_owner_stays_one() {
    let transferred = and(
        active(),
        outcome(active(), owner(), transfer(MEMBER)).expect("valid"),
    );
    let tenant = folded(transferred.clone());
    assert_eq!(tenant.owner_member_id.as_deref(), Some(MEMBER));
    assert_eq!(tenant.members[MEMBER].role, Role::Admin);
    assert_eq!(tenant.members[OWNER].role, Role::Admin);
    // The previous owner is no longer protected from removal.
    given(transferred)
        .when(by(admin(), remove(OWNER)))
        .then_expect_events(vec![TenantEvent::MemberRemoved {
            member_id: OWNER.into(),
        }]);
}

#[test]
fn a_transfer_to_an_admin_records_only_the_transfer() {
    given(active())
        .when(by(admin(), transfer(ADMIN)))
        .then_expect_events(vec![TenantEvent::OwnershipTransferred {
            from_member_id: OWNER.into(),
            to_member_id: ADMIN.into(),
        }]);
}

#[test]
fn a_platform_admin_replaces_a_departed_suspended_owner() {
    given(owner_suspended())
        .when(by(operator(), transfer(ADMIN)))
        .then_expect_events(vec![TenantEvent::OwnershipTransferred {
            from_member_id: OWNER.into(),
            to_member_id: ADMIN.into(),
        }]);
}

#[test]
fn partner_staff_and_plain_members_cannot_transfer_ownership() {
    for principal in [partner_staff(), member()] {
        assert_eq!(
            outcome(active(), principal, transfer(ADMIN)),
            Err(TenantError::NotAuthorized {
                required: Authority::PlatformAdminOrTenantAdmin
            })
        );
    }
}

#[test]
fn ownership_cannot_go_to_a_suspended_member() {
    given(and(active(), [member_suspended(MEMBER)]))
        .when(by(owner(), transfer(MEMBER)))
        .then_expect_error(TenantError::TransferTargetNotActive {
            member_id: MEMBER.into(),
        });
}

#[test]
fn transferring_ownership_to_the_owner_is_refused() {
    given(active())
        .when(by(admin(), transfer(OWNER)))
        .then_expect_error(TenantError::AlreadyOwner {
            member_id: OWNER.into(),
        });
}

#[test]
fn ownership_cannot_go_to_someone_who_is_not_a_member() {
    given(active())
        .when(by(owner(), transfer("m-ghost")))
        .then_expect_error(TenantError::MemberNotFound {
            member_id: "m-ghost".into(),
        });
}

// Suspension.

#[test]
fn an_admin_suspends_and_resumes_a_member() {
    given(active())
        .when(by(admin(), suspend(MEMBER)))
        .then_expect_events(vec![member_suspended(MEMBER)]);
    let suspended_member = and(active(), [member_suspended(MEMBER)]);
    assert_eq!(
        folded(suspended_member.clone()).members[MEMBER].status,
        MemberStatus::Suspended
    );
    given(suspended_member)
        .when(by(
            admin(),
            TenantAction::ResumeMember {
                member_id: MEMBER.into(),
            },
        ))
        .then_expect_events(vec![TenantEvent::MemberResumed {
            member_id: MEMBER.into(),
        }]);
}

#[test]
fn self_suspension_is_refused() {
    given(active())
        .when(by(admin(), suspend(ADMIN)))
        .then_expect_error(TenantError::RefusedOnSelf {
            member_id: ADMIN.into(),
            action: SelfAction::Suspend,
        });
}

#[test]
fn self_is_recognised_by_subject_even_under_another_email() {
    let linked_admin = and(active(), [linked(ADMIN, "sub-admin")]);
    given(linked_admin)
        .when(by(
            Principal::platform_admin("sub-admin", "ops@dezky.eu"),
            suspend(ADMIN),
        ))
        .then_expect_error(TenantError::RefusedOnSelf {
            member_id: ADMIN.into(),
            action: SelfAction::Suspend,
        });
}

#[test]
fn suspending_a_suspended_member_is_refused() {
    given(and(active(), [member_suspended(MEMBER)]))
        .when(by(admin(), suspend(MEMBER)))
        .then_expect_error(TenantError::MemberAlreadySuspended {
            member_id: MEMBER.into(),
        });
}

#[test]
fn resuming_a_member_who_is_not_suspended_is_refused() {
    given(active())
        .when(by(
            admin(),
            TenantAction::ResumeMember {
                member_id: MEMBER.into(),
            },
        ))
        .then_expect_error(TenantError::MemberNotSuspended {
            member_id: MEMBER.into(),
        });
}

#[test]
fn the_last_active_admin_cannot_be_suspended() {
    given(pending())
        .when(by(operator(), suspend(OWNER)))
        .then_expect_error(TenantError::LastActiveAdmin {
            member_id: OWNER.into(),
        });
    given(owner_suspended())
        .when(by(operator(), suspend(ADMIN)))
        .then_expect_error(TenantError::LastActiveAdmin {
            member_id: ADMIN.into(),
        });
}

#[test]
fn the_owner_can_be_suspended_while_another_admin_is_active() {
    given(active())
        .when(by(admin(), suspend(OWNER)))
        .then_expect_events(vec![member_suspended(OWNER)]);
}

// Sessions and passwords.

#[test]
fn an_admin_forces_the_logout_of_a_member() {
    given(active())
        .when(by(
            admin(),
            TenantAction::ForceLogout {
                member_id: MEMBER.into(),
            },
        ))
        .then_expect_events(vec![TenantEvent::MemberLogoutRequested {
            member_id: MEMBER.into(),
        }]);
}

#[test]
fn self_logout_through_force_logout_is_refused() {
    given(active())
        .when(by(
            // The admin's address with its domain in another case: still the admin.
            Principal::user("sub-other", "admin@Acme.Example"),
            TenantAction::ForceLogout {
                member_id: ADMIN.into(),
            },
        ))
        .then_expect_error(TenantError::RefusedOnSelf {
            member_id: ADMIN.into(),
            action: SelfAction::ForceLogout,
        });
}

#[test]
fn an_admin_requests_a_password_reset_for_a_member() {
    given(active())
        .when(by(
            admin(),
            TenantAction::ResetPassword {
                member_id: MEMBER.into(),
            },
        ))
        .then_expect_events(vec![TenantEvent::MemberPasswordResetRequested {
            member_id: MEMBER.into(),
        }]);
}

#[test]
fn sessions_and_passwords_of_non_members_are_refused() {
    for action in [
        TenantAction::ForceLogout {
            member_id: "m-ghost".into(),
        },
        TenantAction::ResetPassword {
            member_id: "m-ghost".into(),
        },
        TenantAction::ResumeMember {
            member_id: "m-ghost".into(),
        },
        suspend("m-ghost"),
        remove("m-ghost"),
    ] {
        assert_eq!(
            outcome(active(), admin(), action),
            Err(TenantError::MemberNotFound {
                member_id: "m-ghost".into()
            })
        );
    }
}

#[test]
fn intent_events_leave_the_members_unchanged() {
    let before = folded(active());
    let after = folded(and(
        active(),
        [
            TenantEvent::MemberLogoutRequested {
                member_id: MEMBER.into(),
            },
            TenantEvent::MemberPasswordResetRequested {
                member_id: MEMBER.into(),
            },
        ],
    ));
    assert_eq!(before, after);
}

// Removal.

#[test]
fn an_admin_removes_a_member() {
    given(active())
        .when(by(admin(), remove(MEMBER)))
        .then_expect_events(vec![TenantEvent::MemberRemoved {
            member_id: MEMBER.into(),
        }]);
    let tenant = folded(and(
        active(),
        [TenantEvent::MemberRemoved {
            member_id: MEMBER.into(),
        }],
    ));
    assert!(!tenant.members.contains_key(MEMBER));
}

#[test]
fn the_owner_cannot_be_removed() {
    given(active())
        .when(by(admin(), remove(OWNER)))
        .then_expect_error(TenantError::OwnerCannotBeRemoved {
            member_id: OWNER.into(),
        });
}

#[test]
fn the_last_active_admin_cannot_be_removed() {
    given(owner_suspended())
        .when(by(operator(), remove(ADMIN)))
        .then_expect_error(TenantError::LastActiveAdmin {
            member_id: ADMIN.into(),
        });
}

#[test]
fn a_suspended_admin_can_be_removed_while_the_owner_is_active() {
    given(and(active(), [member_suspended(ADMIN)]))
        .when(by(owner(), remove(ADMIN)))
        .then_expect_events(vec![TenantEvent::MemberRemoved {
            member_id: ADMIN.into(),
        }]);
}

#[test]
fn self_removal_is_refused() {
    given(active())
        .when(by(admin(), remove(ADMIN)))
        .then_expect_error(TenantError::RefusedOnSelf {
            member_id: ADMIN.into(),
            action: SelfAction::Remove,
        });
}

// SSO subjects and mailboxes.

#[test]
fn the_system_links_a_member_to_their_sso_subject() {
    given(active())
        .when(by(system(), link(MEMBER, "sub-member")))
        .then_expect_events(vec![linked(MEMBER, "sub-member")]);
    let tenant = folded(and(active(), [linked(MEMBER, "sub-member")]));
    assert_eq!(
        tenant.members[MEMBER].subject.as_deref(),
        Some("sub-member")
    );
}

#[test]
fn a_member_links_their_own_subject_on_first_sign_in() {
    given(active())
        .when(by(member(), link(MEMBER, "sub-member")))
        .then_expect_events(vec![linked(MEMBER, "sub-member")]);
}

#[test]
fn a_member_cannot_link_someone_elses_account_or_subject() {
    for action in [link(ADMIN, "sub-member"), link(MEMBER, "sub-someone-else")] {
        assert_eq!(
            outcome(active(), member(), action),
            Err(TenantError::NotAuthorized {
                required: Authority::PlatformAdminOrTheMember
            })
        );
    }
}

#[test]
fn linking_the_same_subject_again_records_nothing() {
    given(and(active(), [linked(MEMBER, "sub-member")]))
        .when(by(system(), link(MEMBER, "sub-member")))
        .then_expect_events(vec![]);
}

#[test]
fn relinking_a_member_to_another_subject_is_refused() {
    given(and(active(), [linked(MEMBER, "sub-member")]))
        .when(by(system(), link(MEMBER, "sub-new")))
        .then_expect_error(TenantError::MemberAlreadyLinked {
            member_id: MEMBER.into(),
            subject: "sub-member".into(),
        });
}

#[test]
fn a_subject_linked_to_another_member_is_refused() {
    given(and(active(), [linked(ADMIN, "sub-shared")]))
        .when(by(system(), link(MEMBER, "sub-shared")))
        .then_expect_error(TenantError::SubjectLinkedToAnotherMember {
            subject: "sub-shared".into(),
            member_id: ADMIN.into(),
        });
}

#[test]
fn a_blank_subject_is_refused() {
    given(active())
        .when(by(system(), link(MEMBER, "")))
        .then_expect_error(TenantError::Blank {
            field: TextField::Subject,
        });
}

#[test]
fn the_member_saga_records_a_created_mailbox_once() {
    let record = TenantAction::RecordMailboxCreated {
        member_id: OWNER.into(),
    };
    given(active())
        .when(by(system(), record.clone()))
        .then_expect_events(vec![TenantEvent::MemberMailboxCreated {
            member_id: OWNER.into(),
        }]);
    given(and(
        active(),
        [TenantEvent::MemberMailboxCreated {
            member_id: OWNER.into(),
        }],
    ))
    .when(by(system(), record))
    .then_expect_events(vec![]);
}

#[test]
fn only_a_platform_admin_or_processor_records_a_mailbox() {
    given(active())
        .when(by(
            admin(),
            TenantAction::RecordMailboxCreated {
                member_id: OWNER.into(),
            },
        ))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdmin,
        });
}

fn add_at(email: &str, placement: crate::tenant::AddressPlacement) -> TenantAction {
    TenantAction::AddMember {
        member: new_member("m-new", email, "Name of m-new"),
        role: Role::Member,
        placement,
    }
}

#[test]
fn a_member_on_another_workspaces_domain_or_the_platforms_is_refused() {
    use crate::tenant::AddressPlacement as P;
    for placement in [P::OtherWorkspace, P::Platform] {
        given(active())
            .when(by(admin(), add_at("kate@beta.example", placement)))
            .then_expect_error(TenantError::AddressNotOurs {
                address: "kate@beta.example".into(),
                placement,
            });
    }
}

#[test]
fn a_member_on_an_outside_domain_is_added_without_a_mailbox() {
    let outside = crate::tenant::AddressPlacement::Outside;
    given(active())
        .when(by(admin(), add_at("new@gmail.example", outside)))
        .then_expect_events(vec![TenantEvent::MemberAdded {
            member_id: "m-new".into(),
            email: "new@gmail.example".into(),
            display_name: "Name of m-new".into(),
            role: Role::Member,
            has_mailbox: false,
        }]);
}

#[test]
fn a_member_on_the_service_domain_gets_a_mailbox() {
    let service = crate::tenant::AddressPlacement::ServiceDomain;
    given(active())
        .when(by(admin(), add_at("new@acme.dezky.example", service)))
        .then_expect_events(vec![added("m-new", "new@acme.dezky.example", Role::Member)]);
}

#[test]
fn a_plain_member_learns_nothing_about_whose_domain_an_address_is_on() {
    // Authorization comes before the placement: a member without the authority hears
    // NotAuthorized, never that the domain belongs to another workspace.
    let placement = crate::tenant::AddressPlacement::OtherWorkspace;
    given(active())
        .when(by(member(), add_at("kate@beta.example", placement)))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::TenantManager,
        });
}

#[test]
fn a_display_name_with_a_line_break_or_direction_override_is_refused() {
    for (name, code_point) in [("Eve\nBcc: x", 0x0A), ("Eve\u{2066}", 0x2066)] {
        given(active())
            .when(by(
                admin(),
                TenantAction::AddMember {
                    member: new_member("m-new", "new@acme.example", name),
                    role: Role::Member,
                    placement: crate::tenant::AddressPlacement::OwnDomain,
                },
            ))
            .then_expect_error(TenantError::DisallowedCharacter {
                field: TextField::DisplayName,
                code_point,
            });
    }
}

#[test]
fn a_member_links_their_own_identity_only_from_the_same_issuer() {
    let mut principal = Principal::user("sub-member", MEMBER_EMAIL);
    principal.issuer = Some("https://idp.example/".into());
    let link = |issuer: &str| TenantAction::LinkMemberSubject {
        member_id: MEMBER.into(),
        subject: "sub-member".into(),
        issuer: Some(issuer.into()),
    };
    given(active())
        .when(by(principal.clone(), link("https://other.example/")))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrTheMember,
        });
    given(active())
        .when(by(principal, link("https://idp.example/")))
        .then_expect_events(vec![TenantEvent::MemberSubjectLinked {
            member_id: MEMBER.into(),
            subject: "sub-member".into(),
            issuer: Some("https://idp.example/".into()),
        }]);
}

#[test]
fn once_linked_a_member_is_not_recognised_by_their_address_from_another_account() {
    let mut history = active();
    history.push(linked(MEMBER, "sub-member"));
    // Another identity-provider account carrying the member's address: not the member.
    let impostor = Principal::user("sub-impostor", MEMBER_EMAIL);
    given(history)
        .when(by(
            impostor,
            TenantAction::LinkMemberSubject {
                member_id: MEMBER.into(),
                subject: "sub-impostor".into(),
                issuer: None,
            },
        ))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrTheMember,
        });
}
