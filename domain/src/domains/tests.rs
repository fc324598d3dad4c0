//! Given/when/then tests of the Domain aggregate, one per rule, named as the rule.

use cqrs_es::test::TestFramework;

use super::*;
use crate::tenant::Principal;

const NOW: &str = "2026-11-28T10:00:00Z";
const ACME: &str = "tenant-acme";
const OTHER: &str = "tenant-other";
const PLATFORM: &str = "tenant-platform";
const APEX: &str = "dezky.eu";

fn admin_of(tenant: &str) -> DomainContext {
    DomainContext {
        principal: Principal::user(format!("sub-{tenant}"), format!("admin@{tenant}.example")),
        tenant_id: tenant.into(),
        now: NOW.into(),
    }
}

fn system_for(tenant: &str) -> DomainContext {
    DomainContext {
        principal: Principal::system("domain-provisioning"),
        tenant_id: tenant.into(),
        now: NOW.into(),
    }
}

fn add(tenant: &str, name: &str) -> DomainCommand {
    DomainCommand::Add {
        ctx: admin_of(tenant),
        name: name.into(),
        platform_apex: APEX.into(),
        is_platform_tenant: tenant == PLATFORM,
    }
}

fn added(tenant: &str, name: &str) -> DomainEvent {
    DomainEvent::DomainAdded {
        name: name.into(),
        tenant_id: tenant.into(),
        dmarc_policy: DmarcPolicy::None,
        added_at: NOW.into(),
    }
}

fn record(
    purpose: RecordPurpose,
    name: &str,
    record_type: RecordType,
    value: &str,
) -> ExpectedRecord {
    ExpectedRecord {
        purpose,
        name: name.into(),
        record_type,
        value: value.into(),
    }
}

fn expected() -> Vec<ExpectedRecord> {
    vec![
        record(
            RecordPurpose::Mx,
            "acme.eu",
            RecordType::Mx,
            "10 mail.dezky.eu",
        ),
        record(
            RecordPurpose::Spf,
            "acme.eu",
            RecordType::Txt,
            "v=spf1 mx -all",
        ),
        record(
            RecordPurpose::Dmarc,
            "_dmarc.acme.eu",
            RecordType::Txt,
            "v=DMARC1; p=none",
        ),
        record(
            RecordPurpose::Autodiscovery,
            "autoconfig.acme.eu",
            RecordType::Cname,
            "mail.dezky.eu",
        ),
    ]
}

fn provisioned(tenant: &str) -> DomainEvent {
    DomainEvent::DomainProvisioned {
        tenant_id: tenant.into(),
        expected: expected(),
    }
}

fn checks(outcomes: [CheckOutcome; 4]) -> Vec<RecordCheck> {
    expected()
        .into_iter()
        .zip(outcomes)
        .map(|(expected, outcome)| RecordCheck {
            found: if outcome == CheckOutcome::Missing {
                vec![]
            } else {
                vec![expected.value.clone()]
            },
            expected,
            outcome,
        })
        .collect()
}

fn outcome(
    given: Vec<DomainEvent>,
    command: DomainCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    TestFramework::<Domain>::with(())
        .given(given)
        .when(command)
        .inspect_result()
}

#[test]
fn a_workspace_adds_a_domain_which_starts_provisioning_with_dmarc_monitoring_only() {
    TestFramework::<Domain>::with(())
        .given_no_previous_events()
        .when(add(ACME, " Acme.EU. "))
        .then_expect_events(vec![added(ACME, "acme.eu")]);
}

#[test]
fn a_domain_used_by_another_workspace_is_refused_without_naming_it() {
    let refused = outcome(vec![added(OTHER, "acme.eu")], add(ACME, "acme.eu"));
    assert_eq!(refused, Err(DomainError::UsedByAnotherWorkspace));
    assert!(!DomainError::UsedByAnotherWorkspace
        .to_string()
        .contains(OTHER));
}

#[test]
fn adding_a_domain_the_workspace_already_has_is_refused() {
    assert_eq!(
        outcome(vec![added(ACME, "acme.eu")], add(ACME, "acme.eu")),
        Err(DomainError::AlreadyAdded)
    );
}

#[test]
fn a_removed_domain_can_be_added_again_by_any_workspace() {
    let history = vec![
        added(OTHER, "acme.eu"),
        DomainEvent::DomainRemoved {
            tenant_id: OTHER.into(),
        },
    ];
    assert_eq!(
        outcome(history, add(ACME, "acme.eu")),
        Ok(vec![added(ACME, "acme.eu")])
    );
}

#[test]
fn the_platform_apex_is_only_for_the_platform_tenant() {
    assert_eq!(
        outcome(vec![], add(ACME, "dezky.eu")),
        Err(DomainError::PlatformApexReserved)
    );
    assert_eq!(
        outcome(vec![], add(PLATFORM, "DEZKY.eu")),
        Ok(vec![added(PLATFORM, "dezky.eu")])
    );
}

#[test]
fn every_name_under_the_platform_apex_is_reserved_even_for_the_platform_tenant() {
    for tenant in [ACME, PLATFORM] {
        assert_eq!(
            outcome(vec![], add(tenant, "acme.dezky.eu")),
            Err(DomainError::UnderPlatformApex)
        );
    }
    // A look-alike outside the apex is an ordinary domain.
    assert_eq!(
        outcome(vec![], add(ACME, "notdezky.eu")),
        Ok(vec![added(ACME, "notdezky.eu")])
    );
}

#[test]
fn an_invalid_name_is_refused_with_the_problem() {
    assert_eq!(
        outcome(vec![], add(ACME, "localhost")),
        Err(DomainError::InvalidName(NameProblem::TooFewLabels))
    );
}

#[test]
fn only_the_owning_workspace_acts_on_a_domain_and_others_see_no_such_domain() {
    let history = vec![added(OTHER, "acme.eu"), provisioned(OTHER)];
    for command in [
        DomainCommand::Recheck {
            ctx: admin_of(ACME),
        },
        DomainCommand::SetDmarcPolicy {
            ctx: admin_of(ACME),
            policy: DmarcPolicy::Reject,
        },
        DomainCommand::Remove {
            ctx: admin_of(ACME),
            usage: DomainUsage::default(),
        },
    ] {
        assert_eq!(
            outcome(history.clone(), command),
            Err(DomainError::NotFound)
        );
    }
}

#[test]
fn only_the_platform_records_provisioning_and_dns_results() {
    let refused = outcome(
        vec![added(ACME, "acme.eu")],
        DomainCommand::RecordProvisioned {
            ctx: admin_of(ACME),
            expected: expected(),
        },
    );
    assert_eq!(refused, Err(DomainError::NotPlatform));
    let refused = outcome(
        vec![added(ACME, "acme.eu"), provisioned(ACME)],
        DomainCommand::RecordDnsCheck {
            ctx: admin_of(ACME),
            checks: checks([CheckOutcome::Ok; 4]),
        },
    );
    assert_eq!(refused, Err(DomainError::NotPlatform));
}

#[test]
fn dns_results_and_rechecks_wait_for_the_mail_server() {
    let history = vec![added(ACME, "acme.eu")];
    assert_eq!(
        outcome(
            history.clone(),
            DomainCommand::Recheck {
                ctx: admin_of(ACME)
            }
        ),
        Err(DomainError::NotProvisioned)
    );
    assert_eq!(
        outcome(
            history,
            DomainCommand::RecordDnsCheck {
                ctx: system_for(ACME),
                checks: vec![],
            }
        ),
        Err(DomainError::NotProvisioned)
    );
}

#[test]
fn every_required_record_ok_verifies_the_domain_whatever_the_optional_ones_say() {
    use CheckOutcome::{Missing, Ok as Fine, Warning};
    for optional in [Fine, Missing, Warning] {
        let result = outcome(
            vec![added(ACME, "acme.eu"), provisioned(ACME)],
            DomainCommand::RecordDnsCheck {
                ctx: system_for(ACME),
                checks: checks([Fine, Fine, Fine, optional]),
            },
        )
        .expect("checked");
        assert!(matches!(
            result.as_slice(),
            [DomainEvent::DomainChecked {
                status: DomainStatus::Verified,
                ..
            }]
        ));
    }
}

#[test]
fn a_missing_or_wrong_required_record_needs_attention() {
    use CheckOutcome::{Missing, Ok as Fine, Wrong};
    for checks in [
        checks([Missing, Fine, Fine, Fine]),
        checks([Fine, Fine, Wrong, Fine]),
    ] {
        let result = outcome(
            vec![added(ACME, "acme.eu"), provisioned(ACME)],
            DomainCommand::RecordDnsCheck {
                ctx: system_for(ACME),
                checks,
            },
        )
        .expect("checked");
        assert!(matches!(
            result.as_slice(),
            [DomainEvent::DomainChecked {
                status: DomainStatus::NeedsAttention,
                ..
            }]
        ));
    }
}

#[test]
fn a_dns_check_must_cover_each_expected_record_exactly_once() {
    let mut partial = checks([CheckOutcome::Ok; 4]);
    partial.pop();
    let mut doubled = checks([CheckOutcome::Ok; 4]);
    doubled[3] = doubled[2].clone();
    for checks in [partial, doubled] {
        assert_eq!(
            outcome(
                vec![added(ACME, "acme.eu"), provisioned(ACME)],
                DomainCommand::RecordDnsCheck {
                    ctx: system_for(ACME),
                    checks,
                }
            ),
            Err(DomainError::IncompleteCheck)
        );
    }
}

#[test]
fn the_dmarc_policy_changes_with_its_before_and_after_and_an_unchanged_policy_emits_nothing() {
    let history = vec![added(ACME, "acme.eu"), provisioned(ACME)];
    assert_eq!(
        outcome(
            history.clone(),
            DomainCommand::SetDmarcPolicy {
                ctx: admin_of(ACME),
                policy: DmarcPolicy::Quarantine,
            }
        ),
        Ok(vec![DomainEvent::DmarcPolicySet {
            tenant_id: ACME.into(),
            from: DmarcPolicy::None,
            to: DmarcPolicy::Quarantine,
        }])
    );
    assert_eq!(
        outcome(
            history,
            DomainCommand::SetDmarcPolicy {
                ctx: admin_of(ACME),
                policy: DmarcPolicy::None,
            }
        ),
        Ok(vec![])
    );
}

#[test]
fn removal_is_refused_while_mailboxes_aliases_or_lists_use_the_domain() {
    let history = vec![added(ACME, "acme.eu"), provisioned(ACME)];
    for usage in [
        DomainUsage {
            mailboxes: 1,
            ..DomainUsage::default()
        },
        DomainUsage {
            aliases: 2,
            ..DomainUsage::default()
        },
        DomainUsage {
            lists: 1,
            ..DomainUsage::default()
        },
    ] {
        assert_eq!(
            outcome(
                history.clone(),
                DomainCommand::Remove {
                    ctx: admin_of(ACME),
                    usage,
                }
            ),
            Err(DomainError::InUse { usage })
        );
    }
    assert_eq!(
        outcome(
            history,
            DomainCommand::Remove {
                ctx: admin_of(ACME),
                usage: DomainUsage::default(),
            }
        ),
        Ok(vec![DomainEvent::DomainRemoved {
            tenant_id: ACME.into()
        }])
    );
}

#[test]
fn a_removed_domain_accepts_nothing_but_a_new_add() {
    let history = vec![
        added(ACME, "acme.eu"),
        DomainEvent::DomainRemoved {
            tenant_id: ACME.into(),
        },
    ];
    assert_eq!(
        outcome(
            history,
            DomainCommand::Recheck {
                ctx: admin_of(ACME)
            }
        ),
        Err(DomainError::NotFound)
    );
}

#[test]
fn a_command_without_an_identified_principal_or_with_a_bad_time_is_refused() {
    let mut ctx = admin_of(ACME);
    ctx.now = "yesterday".into();
    let refused = outcome(
        vec![],
        DomainCommand::Add {
            ctx,
            name: "acme.eu".into(),
            platform_apex: APEX.into(),
            is_platform_tenant: false,
        },
    );
    assert!(matches!(refused, Err(DomainError::Context(_))));
}

#[test]
fn the_stored_event_type_names_are_pinned() {
    let events = [
        added(ACME, "acme.eu"),
        provisioned(ACME),
        DomainEvent::DomainRecheckRequested {
            tenant_id: ACME.into(),
        },
        DomainEvent::DomainChecked {
            tenant_id: ACME.into(),
            checks: vec![],
            status: DomainStatus::Verified,
            checked_at: NOW.into(),
        },
        DomainEvent::DmarcPolicySet {
            tenant_id: ACME.into(),
            from: DmarcPolicy::None,
            to: DmarcPolicy::Reject,
        },
        DomainEvent::DomainRemoved {
            tenant_id: ACME.into(),
        },
    ];
    let names: Vec<String> = events.iter().map(CqrsEvent::event_type).collect();
    assert_eq!(names, DOMAIN_EVENT_TYPES);
    // Externally tagged, like every aggregate's events, so the read side decodes one shape.
    let json = serde_json::to_value(&events[0]).expect("json");
    assert!(json.get("DomainAdded").is_some());
}
