//! Creating a tenant.

use super::*;
use crate::tenant::{
    Authority, ContextError, SlugProblem, TextField, MAX_ORGANIZATION_NAME_CHARS, MAX_SEATS,
};

fn create_with(change: impl FnOnce(&mut CreateTenant)) -> TenantAction {
    let mut create = create_tenant();
    change(&mut create);
    TenantAction::Create(create)
}

#[test]
fn a_platform_admin_creates_a_pending_tenant_whose_first_admin_is_its_mailboxless_owner() {
    given_nothing()
        .when(by(operator(), TenantAction::Create(create_tenant())))
        .then_expect_events(vec![tenant_created(), owner_invited()]);
}

#[test]
fn a_created_tenant_is_pending_provisioning_with_the_owner_as_its_only_member() {
    let tenant = folded(pending());
    assert_eq!(
        tenant.status,
        Some(crate::tenant::TenantStatus::PendingProvisioning)
    );
    assert_eq!(tenant.owner_member_id.as_deref(), Some(OWNER));
    assert_eq!(tenant.members.len(), 1);
    let owner = &tenant.members[OWNER];
    assert_eq!((owner.role, owner.has_mailbox), (Role::Admin, false));
    assert_eq!(tenant.security_policy, SecurityPolicy::default());
}

#[test]
fn partner_staff_create_tenants_owned_by_their_own_partner() {
    given_nothing()
        .when(by(partner_staff(), TenantAction::Create(create_tenant())))
        .then_expect_events(vec![tenant_created(), owner_invited()]);
}

#[test]
fn partner_staff_cannot_create_a_tenant_owned_by_another_partner() {
    given_nothing()
        .when(by(
            other_partner_staff(),
            TenantAction::Create(create_tenant()),
        ))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
}

#[test]
fn partner_staff_cannot_create_a_tenant_without_a_partner() {
    given_nothing()
        .when(by(partner_staff(), create_with(|c| c.partner_id = None)))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
}

#[test]
fn a_person_without_platform_or_partner_role_cannot_create_a_tenant() {
    given_nothing()
        .when(by(stranger(), TenantAction::Create(create_tenant())))
        .then_expect_error(TenantError::NotAuthorized {
            required: Authority::PlatformAdminOrOwningPartner,
        });
}

#[test]
fn creating_a_tenant_that_exists_is_refused() {
    given(pending())
        .when(by(operator(), TenantAction::Create(create_tenant())))
        .then_expect_error(TenantError::AlreadyExists {
            tenant_id: TENANT_ID.into(),
        });
}

#[test]
fn creating_a_tenant_that_was_purged_is_refused() {
    let purged = and(
        soft_deleted(),
        [TenantEvent::TenantPurged { slug: SLUG.into() }],
    );
    given(purged)
        .when(by(operator(), TenantAction::Create(create_tenant())))
        .then_expect_error(TenantError::AlreadyExists {
            tenant_id: TENANT_ID.into(),
        });
}

#[test]
fn the_organization_name_is_trimmed() {
    let events = outcome(
        vec![],
        operator(),
        create_with(|c| c.organization_name = "  Acme ApS \n".into()),
    )
    .expect("valid");
    assert_eq!(events[0], tenant_created());
}

#[test]
fn an_organization_name_with_a_line_break_nul_or_direction_override_is_refused() {
    for (name, code_point) in [
        ("Acme\r\nBcc: all@x.example", 0x0D),
        ("Acme\0 ApS", 0x00),
        ("Acme \u{202E}SpA", 0x202E),
    ] {
        given_nothing()
            .when(by(
                operator(),
                create_with(|c| c.organization_name = name.into()),
            ))
            .then_expect_error(TenantError::DisallowedCharacter {
                field: TextField::OrganizationName,
                code_point,
            });
    }
}

#[test]
fn a_blank_organization_name_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.organization_name = "   ".into()),
        ))
        .then_expect_error(TenantError::Blank {
            field: TextField::OrganizationName,
        });
}

#[test]
fn an_organization_name_over_200_characters_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.organization_name = "A".repeat(MAX_ORGANIZATION_NAME_CHARS + 1)),
        ))
        .then_expect_error(TenantError::TooLong {
            field: TextField::OrganizationName,
            max: 200,
            got: 201,
        });
}

#[test]
fn an_invalid_slug_is_refused_with_the_reason() {
    let cases = [
        ("ab", SlugProblem::TooShort { min: 3, got: 2 }),
        ("Acme", SlugProblem::InvalidCharacter { character: 'A' }),
        ("-acme", SlugProblem::EdgeHyphen),
        ("ac--me", SlugProblem::DoubleHyphen),
        ("autodiscover", SlugProblem::Reserved),
    ];
    for (slug, problem) in cases {
        assert_eq!(
            outcome(vec![], operator(), create_with(|c| c.slug = slug.into())),
            Err(TenantError::InvalidSlug {
                slug: slug.into(),
                problem
            }),
            "{slug}"
        );
    }
}

#[test]
fn a_blank_plan_is_refused() {
    given_nothing()
        .when(by(operator(), create_with(|c| c.plan = String::new())))
        .then_expect_error(TenantError::Blank {
            field: TextField::Plan,
        });
}

#[test]
fn zero_seats_are_refused() {
    given_nothing()
        .when(by(operator(), create_with(|c| c.seats = 0)))
        .then_expect_error(TenantError::SeatsOutOfRange {
            seats: 0,
            min: 1,
            max: 10_000,
        });
}

#[test]
fn more_than_ten_thousand_seats_are_refused() {
    given_nothing()
        .when(by(operator(), create_with(|c| c.seats = MAX_SEATS + 1)))
        .then_expect_error(TenantError::SeatsOutOfRange {
            seats: 10_001,
            min: 1,
            max: 10_000,
        });
}

#[test]
fn one_and_ten_thousand_seats_are_accepted() {
    for seats in [1, MAX_SEATS] {
        let events = outcome(vec![], operator(), create_with(|c| c.seats = seats)).expect("valid");
        assert!(matches!(events[0], TenantEvent::TenantCreated { seats: s, .. } if s == seats));
    }
}

#[test]
fn a_first_admin_with_an_invalid_email_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.first_admin.email = "frida@".into()),
        ))
        .then_expect_error(TenantError::InvalidEmail {
            email: "frida@".into(),
        });
}

#[test]
fn a_first_admin_without_an_email_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.first_admin.email = " ".into()),
        ))
        .then_expect_error(TenantError::InvalidEmail { email: " ".into() });
}

#[test]
fn a_first_admin_without_a_display_name_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.first_admin.display_name = String::new()),
        ))
        .then_expect_error(TenantError::Blank {
            field: TextField::DisplayName,
        });
}

#[test]
fn a_first_admin_without_a_member_id_is_refused() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.first_admin.member_id = String::new()),
        ))
        .then_expect_error(TenantError::Blank {
            field: TextField::MemberId,
        });
}

#[test]
fn a_blank_tenant_id_is_refused() {
    given_nothing()
        .when(by(operator(), create_with(|c| c.tenant_id = String::new())))
        .then_expect_error(TenantError::Blank {
            field: TextField::TenantId,
        });
}

#[test]
fn a_blank_partner_id_is_refused_rather_than_read_as_no_partner() {
    given_nothing()
        .when(by(
            operator(),
            create_with(|c| c.partner_id = Some(" ".into())),
        ))
        .then_expect_error(TenantError::Blank {
            field: TextField::PartnerId,
        });
}

#[test]
fn a_tenant_without_a_partner_is_sold_directly() {
    let events = outcome(vec![], operator(), create_with(|c| c.partner_id = None)).expect("valid");
    assert!(matches!(
        &events[0],
        TenantEvent::TenantCreated {
            partner_id: None,
            ..
        }
    ));
}

#[test]
fn a_command_without_an_identifiable_actor_is_refused() {
    let anonymous = Principal {
        platform_admin: true,
        ..Principal::default()
    };
    given_nothing()
        .when(by(anonymous, TenantAction::Create(create_tenant())))
        .then_expect_error(TenantError::Context(ContextError::UnidentifiedPrincipal));
}

#[test]
fn a_command_with_a_malformed_time_is_refused() {
    given_nothing()
        .when(TenantCommand::new(
            CommandContext::new(operator(), "28/11/2026"),
            TenantAction::Create(create_tenant()),
        ))
        .then_expect_error(TenantError::Context(ContextError::InvalidTimestamp {
            value: "28/11/2026".into(),
        }));
}
