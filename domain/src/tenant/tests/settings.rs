//! Billing details, branding and security policy: validation and field-level changes.

use std::collections::BTreeMap;

use super::*;
use crate::tenant::{
    Accent, Authority, BillingChanges, BillingInfoPatch, BrandingChanges, BrandingPatch,
    EmailTemplate, EmailTemplateKey, FieldChange, MfaMode, SecurityPolicyChanges,
    SecurityPolicyPatch, TextColour, TextField,
};

fn change<T>(from: Option<T>, to: Option<T>) -> Option<FieldChange<T>> {
    Some(FieldChange { from, to })
}

fn billing(patch: BillingInfoPatch) -> TenantAction {
    TenantAction::UpdateBillingInfo(patch)
}

fn billing_updated(changes: BillingChanges) -> TenantEvent {
    TenantEvent::BillingInfoUpdated { changes }
}

/// [`active`] with complete billing details.
fn with_billing() -> Vec<TenantEvent> {
    and(
        active(),
        [billing_updated(BillingChanges {
            company: change(None, Some("Acme ApS".into())),
            vat_id: change(None, Some("DK12345678".into())),
            country: change(None, Some("DK".into())),
            contact_email: change(None, Some("billing@acme.example".into())),
        })],
    )
}

#[test]
fn billing_details_are_set_recording_each_field_from_not_set() {
    given(active())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                company: Some("Acme ApS".into()),
                vat_id: Some("dk 1234 5678".into()),
                country: Some("dk".into()),
                contact_email: Some(" billing@acme.example ".into()),
            }),
        ))
        .then_expect_events(with_billing()[active().len()..].to_vec());
}

#[test]
fn a_billing_update_records_only_the_fields_it_changed() {
    given(with_billing())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                company: Some("Acme ApS".into()),
                vat_id: Some("DK12345678".into()),
                country: Some("SE".into()),
                contact_email: None,
            }),
        ))
        .then_expect_events(vec![billing_updated(BillingChanges {
            country: change(Some("DK".into()), Some("SE".into())),
            ..Default::default()
        })]);
}

#[test]
fn saving_unchanged_billing_details_records_nothing() {
    given(with_billing())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                company: Some(" Acme ApS".into()),
                vat_id: Some("DK 12 34 56 78".into()),
                country: Some("dk".into()),
                contact_email: Some("billing@acme.example".into()),
            }),
        ))
        .then_expect_events(vec![]);
}

#[test]
fn a_blank_billing_email_means_not_set_and_is_no_validation_error() {
    given(active())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                contact_email: Some(String::new()),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![]);
    given(with_billing())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                contact_email: Some("   ".into()),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![billing_updated(BillingChanges {
            contact_email: change(Some("billing@acme.example".into()), None),
            ..Default::default()
        })]);
    let cleared = folded(and(
        with_billing(),
        [billing_updated(BillingChanges {
            contact_email: change(Some("billing@acme.example".into()), None),
            ..Default::default()
        })],
    ));
    assert_eq!(cleared.billing.contact_email, None);
}

#[test]
fn a_billing_email_that_is_not_an_address_is_refused() {
    given(active())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                contact_email: Some("billing at acme".into()),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::InvalidEmail {
            email: "billing at acme".into(),
        });
}

#[test]
fn a_billing_country_that_is_not_iso_3166_alpha_2_is_refused() {
    for code in ["UK", "Denmark", "D"] {
        assert_eq!(
            outcome(
                active(),
                admin(),
                billing(BillingInfoPatch {
                    country: Some(code.into()),
                    ..Default::default()
                })
            ),
            Err(TenantError::UnknownCountry { code: code.into() })
        );
    }
}

#[test]
fn a_vat_id_with_characters_no_vat_id_has_is_refused() {
    given(active())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                vat_id: Some("DK1234;DROP".into()),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::InvalidVatId {
            vat_id: "DK1234;DROP".into(),
        });
}

#[test]
fn a_billing_company_over_200_characters_is_refused() {
    given(active())
        .when(by(
            admin(),
            billing(BillingInfoPatch {
                company: Some("C".repeat(201)),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::TooLong {
            field: TextField::Company,
            max: 200,
            got: 201,
        });
}

#[test]
fn the_owning_partner_and_platform_admins_update_billing_details_too() {
    for principal in [partner_staff(), operator()] {
        let events = outcome(
            active(),
            principal,
            billing(BillingInfoPatch {
                company: Some("Acme".into()),
                ..Default::default()
            }),
        );
        assert!(matches!(
            events.as_deref(),
            Ok([TenantEvent::BillingInfoUpdated { .. }])
        ));
    }
}

#[test]
fn plain_members_and_strangers_cannot_change_settings() {
    for principal in [member(), stranger(), other_partner_staff()] {
        for action in [
            billing(BillingInfoPatch::default()),
            TenantAction::UpdateBranding(BrandingPatch::default()),
            TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch::default()),
        ] {
            assert_eq!(
                outcome(active(), principal.clone(), action),
                Err(TenantError::NotAuthorized {
                    required: Authority::TenantManager
                })
            );
        }
    }
}

fn branding(patch: BrandingPatch) -> TenantAction {
    TenantAction::UpdateBranding(patch)
}

fn accent_patch(colour: &str) -> TenantAction {
    branding(BrandingPatch {
        accent_colour: Some(colour.into()),
        ..Default::default()
    })
}

fn template(subject: &str, body: &str) -> EmailTemplate {
    EmailTemplate {
        subject: subject.into(),
        body: body.into(),
    }
}

fn templates_patch(entries: &[(&str, Option<EmailTemplate>)]) -> TenantAction {
    branding(BrandingPatch {
        email_templates: entries
            .iter()
            .map(|(key, template)| ((*key).to_owned(), template.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    })
}

#[test]
fn an_accent_is_stored_upper_case_with_its_readable_text_colour_and_contrast() {
    given(active())
        .when(by(admin(), accent_patch("#0a84ff")))
        .then_expect_events(vec![TenantEvent::BrandingUpdated {
            changes: BrandingChanges {
                accent: change(
                    None,
                    Some(Accent {
                        colour: "#0A84FF".into(),
                        text_colour: TextColour::Black,
                        contrast_ratio_centi: 575,
                    }),
                ),
                ..Default::default()
            },
        }]);
}

#[test]
fn a_dark_accent_gets_white_text() {
    let events = outcome(active(), admin(), accent_patch("#1A237E")).expect("valid");
    let [TenantEvent::BrandingUpdated { changes }] = events.as_slice() else {
        panic!("one branding event expected, got {events:?}");
    };
    let accent = changes
        .accent
        .as_ref()
        .and_then(|c| c.to.clone())
        .expect("an accent");
    assert_eq!(accent.text_colour, TextColour::White);
    assert!(accent.contrast_ratio_centi >= 450, "{accent:?}");
}

#[test]
fn an_accent_that_is_not_rrggbb_is_refused() {
    for value in ["0A84FF", "#FFF", "blue", "#12345G"] {
        assert_eq!(
            outcome(active(), admin(), accent_patch(value)),
            Err(TenantError::InvalidAccentColour {
                value: value.into()
            })
        );
    }
}

#[test]
fn a_blank_accent_clears_it() {
    let with_accent = and(
        active(),
        outcome(active(), admin(), accent_patch("#000000")).expect("valid"),
    );
    let events = outcome(with_accent, admin(), accent_patch(" ")).expect("valid");
    let [TenantEvent::BrandingUpdated { changes }] = events.as_slice() else {
        panic!("one branding event expected, got {events:?}");
    };
    assert!(changes.accent.as_ref().is_some_and(|c| c.to.is_none()));
}

#[test]
fn a_product_name_over_60_characters_is_refused() {
    given(active())
        .when(by(
            admin(),
            branding(BrandingPatch {
                product_name: Some("P".repeat(61)),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::TooLong {
            field: TextField::ProductName,
            max: 60,
            got: 61,
        });
}

#[test]
fn a_template_override_is_set_for_a_known_key() {
    given(active())
        .when(by(
            admin(),
            templates_patch(&[("invitation", Some(template("Welcome", "Hi {{name}}")))]),
        ))
        .then_expect_events(vec![TenantEvent::BrandingUpdated {
            changes: BrandingChanges {
                invitation_template: change(None, Some(template("Welcome", "Hi {{name}}"))),
                ..Default::default()
            },
        }]);
}

#[test]
fn an_override_for_an_unknown_template_is_refused() {
    given(active())
        .when(by(
            admin(),
            templates_patch(&[("welcome", Some(template("Hi", "Hello")))]),
        ))
        .then_expect_error(TenantError::UnknownEmailTemplate {
            key: "welcome".into(),
        });
}

#[test]
fn a_template_subject_over_200_characters_is_refused() {
    given(active())
        .when(by(
            admin(),
            templates_patch(&[("password_reset", Some(template(&"S".repeat(201), "Body")))]),
        ))
        .then_expect_error(TenantError::TooLong {
            field: TextField::TemplateSubject(EmailTemplateKey::PasswordReset),
            max: 200,
            got: 201,
        });
}

#[test]
fn a_template_body_over_20000_characters_is_refused() {
    given(active())
        .when(by(
            admin(),
            templates_patch(&[(
                "booking_confirmation",
                Some(template("Booked", &"B".repeat(20_001))),
            )]),
        ))
        .then_expect_error(TenantError::TooLong {
            field: TextField::TemplateBody(EmailTemplateKey::BookingConfirmation),
            max: 20_000,
            got: 20_001,
        });
}

#[test]
fn a_template_with_a_blank_subject_or_body_is_refused() {
    assert_eq!(
        outcome(
            active(),
            admin(),
            templates_patch(&[("invitation", Some(template(" ", "Body")))])
        ),
        Err(TenantError::Blank {
            field: TextField::TemplateSubject(EmailTemplateKey::Invitation)
        })
    );
    assert_eq!(
        outcome(
            active(),
            admin(),
            templates_patch(&[("invitation", Some(template("Subject", "\n")))])
        ),
        Err(TenantError::Blank {
            field: TextField::TemplateBody(EmailTemplateKey::Invitation)
        })
    );
}

#[test]
fn removing_a_template_override_records_it_and_removing_an_absent_one_records_nothing() {
    let with_override = and(
        active(),
        outcome(
            active(),
            admin(),
            templates_patch(&[("invitation", Some(template("Welcome", "Hi")))]),
        )
        .expect("valid"),
    );
    assert!(folded(with_override.clone())
        .branding
        .email_templates
        .contains_key(&EmailTemplateKey::Invitation));
    given(with_override)
        .when(by(admin(), templates_patch(&[("invitation", None)])))
        .then_expect_events(vec![TenantEvent::BrandingUpdated {
            changes: BrandingChanges {
                invitation_template: change(Some(template("Welcome", "Hi")), None),
                ..Default::default()
            },
        }]);
    given(active())
        .when(by(admin(), templates_patch(&[("password_reset", None)])))
        .then_expect_events(vec![]);
}

#[test]
fn saving_unchanged_branding_records_nothing() {
    let patch = BrandingPatch {
        product_name: Some("Acme Work".into()),
        accent_colour: Some("#0A84FF".into()),
        email_templates: BTreeMap::from([("invitation".to_owned(), Some(template("W", "B")))]),
    };
    let branded = and(
        active(),
        outcome(active(), admin(), branding(patch.clone())).expect("valid"),
    );
    given(branded)
        .when(by(
            admin(),
            branding(BrandingPatch {
                accent_colour: Some("#0a84ff".into()),
                ..patch
            }),
        ))
        .then_expect_events(vec![]);
}

fn security(patch: SecurityPolicyPatch) -> TenantAction {
    TenantAction::UpdateSecurityPolicy(patch)
}

fn security_updated(changes: SecurityPolicyChanges) -> TenantEvent {
    TenantEvent::SecurityPolicyUpdated { changes }
}

#[test]
fn requiring_mfa_records_only_the_mfa_change() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                mfa_mode: Some(MfaMode::Required),
                session_idle_minutes: Some(60),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![security_updated(SecurityPolicyChanges {
            mfa_mode: change(Some(MfaMode::Optional), Some(MfaMode::Required)),
            ..Default::default()
        })]);
}

#[test]
fn an_idle_timeout_outside_5_to_1440_minutes_is_refused() {
    for minutes in [0, 4, 1_441] {
        assert_eq!(
            outcome(
                active(),
                admin(),
                security(SecurityPolicyPatch {
                    session_idle_minutes: Some(minutes),
                    session_absolute_minutes: Some(43_200),
                    ..Default::default()
                })
            ),
            Err(TenantError::SessionIdleOutOfRange {
                minutes,
                min: 5,
                max: 1_440
            })
        );
    }
}

#[test]
fn idle_timeouts_of_5_and_1440_minutes_are_accepted() {
    for minutes in [5, 1_440] {
        let result = outcome(
            active(),
            admin(),
            security(SecurityPolicyPatch {
                session_idle_minutes: Some(minutes),
                session_absolute_minutes: Some(1_440),
                ..Default::default()
            }),
        );
        assert!(result.is_ok(), "{minutes}: {result:?}");
    }
}

#[test]
fn an_absolute_lifetime_shorter_than_the_idle_timeout_is_refused() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                session_idle_minutes: Some(120),
                session_absolute_minutes: Some(119),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::SessionAbsoluteOutOfRange {
            minutes: 119,
            min: 120,
            max: 43_200,
        });
}

#[test]
fn raising_the_idle_timeout_above_the_current_absolute_lifetime_is_refused() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                session_idle_minutes: Some(721),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::SessionAbsoluteOutOfRange {
            minutes: 720,
            min: 721,
            max: 43_200,
        });
}

#[test]
fn an_absolute_lifetime_over_30_days_is_refused_and_30_days_is_accepted() {
    let patch = |minutes| {
        security(SecurityPolicyPatch {
            session_absolute_minutes: Some(minutes),
            ..Default::default()
        })
    };
    assert_eq!(
        outcome(active(), admin(), patch(43_201)),
        Err(TenantError::SessionAbsoluteOutOfRange {
            minutes: 43_201,
            min: 60,
            max: 43_200
        })
    );
    assert!(outcome(active(), admin(), patch(43_200)).is_ok());
}

#[test]
fn allowed_countries_are_upper_cased_deduplicated_and_sorted() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                allowed_countries: Some(vec!["se".into(), "DK".into(), " dk ".into()]),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![security_updated(SecurityPolicyChanges {
            allowed_countries: change(Some(vec![]), Some(vec!["DK".into(), "SE".into()])),
            ..Default::default()
        })]);
}

#[test]
fn an_unknown_allowed_country_is_refused() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                allowed_countries: Some(vec!["DK".into(), "EU".into()]),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::UnknownCountry { code: "EU".into() });
}

#[test]
fn reordering_the_allowed_countries_records_nothing() {
    let restricted = and(
        active(),
        [security_updated(SecurityPolicyChanges {
            allowed_countries: change(Some(vec![]), Some(vec!["DK".into(), "SE".into()])),
            ..Default::default()
        })],
    );
    given(restricted)
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                allowed_countries: Some(vec!["SE".into(), "DK".into()]),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![]);
}

#[test]
fn the_ip_allow_list_is_stored_as_canonical_deduplicated_cidr() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                ip_allowlist: Some(vec![
                    "2001:DB8::/32".into(),
                    "192.0.2.0/24".into(),
                    "192.0.2.0/24".into(),
                    "198.51.100.7".into(),
                ]),
                ..Default::default()
            }),
        ))
        .then_expect_events(vec![security_updated(SecurityPolicyChanges {
            ip_allowlist: change(
                Some(vec![]),
                Some(vec![
                    "192.0.2.0/24".into(),
                    "198.51.100.7/32".into(),
                    "2001:db8::/32".into(),
                ]),
            ),
            ..Default::default()
        })]);
}

#[test]
fn an_allow_list_network_with_host_bits_set_is_refused() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                ip_allowlist: Some(vec!["192.0.2.1/24".into()]),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::CidrHostBitsSet {
            cidr: "192.0.2.1/24".into(),
            network: "192.0.2.0/24".into(),
        });
}

#[test]
fn an_allow_list_of_more_than_100_networks_is_refused_and_100_are_accepted() {
    let networks = |n: usize| -> Vec<String> { (0..n).map(|i| format!("10.{i}.0.0/16")).collect() };
    assert_eq!(
        outcome(
            active(),
            admin(),
            security(SecurityPolicyPatch {
                ip_allowlist: Some(networks(101)),
                ..Default::default()
            })
        ),
        Err(TenantError::TooManyIpRanges { max: 100, got: 101 })
    );
    assert!(outcome(
        active(),
        admin(),
        security(SecurityPolicyPatch {
            ip_allowlist: Some(networks(100)),
            ..Default::default()
        })
    )
    .is_ok());
}

#[test]
fn a_malformed_allow_list_entry_is_refused() {
    given(active())
        .when(by(
            admin(),
            security(SecurityPolicyPatch {
                ip_allowlist: Some(vec!["office".into()]),
                ..Default::default()
            }),
        ))
        .then_expect_error(TenantError::InvalidCidr {
            cidr: "office".into(),
        });
}

#[test]
fn a_security_update_is_folded_into_the_policy() {
    let changed = and(
        active(),
        outcome(
            active(),
            admin(),
            security(SecurityPolicyPatch {
                mfa_mode: Some(MfaMode::Off),
                session_idle_minutes: Some(15),
                session_absolute_minutes: Some(480),
                allowed_countries: Some(vec!["DK".into()]),
                ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
            }),
        )
        .expect("valid"),
    );
    let policy = folded(changed).security_policy;
    assert_eq!(policy.mfa_mode, MfaMode::Off);
    assert_eq!(
        (policy.session_idle_minutes, policy.session_absolute_minutes),
        (15, 480)
    );
    assert_eq!(policy.allowed_countries, vec!["DK".to_owned()]);
    assert_eq!(policy.ip_allowlist, vec!["192.0.2.0/24".to_owned()]);
}
