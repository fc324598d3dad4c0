//! The persisted contract: stored type names, versions, JSON shapes, and folding.

use cqrs_es::DomainEvent;
use serde_json::json;

use super::*;
use crate::tenant::{
    tenant_upcasters, BillingChanges, BrandingChanges, FieldChange, SecurityPolicyChanges,
    TenantStatus, TENANT_EVENT_TYPES,
};

/// One event of every type, in the order of [`TENANT_EVENT_TYPES`].
fn one_of_each() -> Vec<TenantEvent> {
    let member_id = || MEMBER.to_owned();
    vec![
        tenant_created(),
        TenantEvent::TenantProvisioned {},
        TenantEvent::TenantSuspended {},
        TenantEvent::TenantResumed {},
        TenantEvent::TenantSoftDeleted {
            deleted_at: NOW.into(),
        },
        TenantEvent::TenantPurged { slug: SLUG.into() },
        TenantEvent::BillingInfoUpdated {
            changes: BillingChanges::default(),
        },
        TenantEvent::BrandingUpdated {
            changes: BrandingChanges::default(),
        },
        TenantEvent::SecurityPolicyUpdated {
            changes: SecurityPolicyChanges::default(),
        },
        owner_invited(),
        added(MEMBER, MEMBER_EMAIL, Role::Member),
        TenantEvent::MemberRoleChanged {
            member_id: member_id(),
            from: Role::Member,
            to: Role::Admin,
        },
        TenantEvent::OwnershipTransferred {
            from_member_id: OWNER.into(),
            to_member_id: member_id(),
        },
        TenantEvent::MemberSuspended {
            member_id: member_id(),
        },
        TenantEvent::MemberResumed {
            member_id: member_id(),
        },
        TenantEvent::MemberLogoutRequested {
            member_id: member_id(),
        },
        TenantEvent::MemberPasswordResetRequested {
            member_id: member_id(),
        },
        TenantEvent::MemberRemoved {
            member_id: member_id(),
        },
        TenantEvent::MemberSubjectLinked {
            member_id: member_id(),
            subject: "sub".into(),
            issuer: Some("https://idp.example/".into()),
        },
        TenantEvent::MemberMailboxCreated {
            member_id: member_id(),
        },
        TenantEvent::MemberAliasAdded {
            member_id: member_id(),
            address: MEMBER_EMAIL.into(),
            alias: "sales@acme.example".into(),
        },
        TenantEvent::MemberAliasRemoved {
            member_id: member_id(),
            address: MEMBER_EMAIL.into(),
            alias: "sales@acme.example".into(),
        },
        TenantEvent::MailingListCreated {
            list_id: "l-team".into(),
            address: "team@acme.example".into(),
            display_name: "Team".into(),
            recipients: vec![MEMBER_EMAIL.into()],
        },
        TenantEvent::MailingListRecipientsSet {
            list_id: "l-team".into(),
            address: "team@acme.example".into(),
            recipients: vec![ADMIN_EMAIL.into()],
        },
        TenantEvent::MailingListDeleted {
            list_id: "l-team".into(),
            address: "team@acme.example".into(),
        },
    ]
}

#[test]
fn the_stored_type_names_are_pinned() {
    // Renaming or dropping one of these would orphan events already on the ledger.
    assert_eq!(
        TENANT_EVENT_TYPES,
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantSuspended",
            "TenantResumed",
            "TenantSoftDeleted",
            "TenantPurged",
            "BillingInfoUpdated",
            "BrandingUpdated",
            "SecurityPolicyUpdated",
            "MemberInvited",
            "MemberAdded",
            "MemberRoleChanged",
            "OwnershipTransferred",
            "MemberSuspended",
            "MemberResumed",
            "MemberLogoutRequested",
            "MemberPasswordResetRequested",
            "MemberRemoved",
            "MemberSubjectLinked",
            "MemberMailboxCreated",
            "MemberAliasAdded",
            "MemberAliasRemoved",
            "MailingListCreated",
            "MailingListRecipientsSet",
            "MailingListDeleted",
        ]
    );
}

#[test]
fn every_event_is_stored_under_its_type_name() {
    let events = one_of_each();
    assert_eq!(events.len(), TENANT_EVENT_TYPES.len());
    for (event, name) in events.iter().zip(TENANT_EVENT_TYPES) {
        assert_eq!(event.event_type(), name);
        let json = serde_json::to_value(event).expect("serializes");
        let object = json.as_object().expect("externally tagged");
        assert_eq!(object.keys().collect::<Vec<_>>(), vec![name], "{json}");
    }
}

#[test]
fn every_event_round_trips_through_json() {
    for event in one_of_each() {
        let bytes = serde_json::to_vec(&event).expect("serializes");
        let back: TenantEvent = serde_json::from_slice(&bytes).expect("deserializes");
        assert_eq!(back, event);
    }
}

#[test]
fn a_subject_link_stored_before_issuers_is_upcast_with_no_issuer() {
    use cqrs_es::persist::SerializedEvent;
    let old = SerializedEvent {
        aggregate_id: "t".into(),
        sequence: 7,
        aggregate_type: "Tenant".into(),
        event_type: "MemberSubjectLinked".into(),
        event_version: "1.0".into(),
        payload: serde_json::json!({"MemberSubjectLinked": {"member_id": "m-1", "subject": "s-1"}}),
        metadata: serde_json::json!({}),
    };
    let upcasters = tenant_upcasters();
    let upcaster = upcasters
        .iter()
        .find(|u| u.can_upcast(&old.event_type, &old.event_version))
        .expect("an upcaster for MemberSubjectLinked 1.0");
    let new = upcaster.upcast(old);
    assert!(!upcaster.can_upcast(&new.event_type, &new.event_version));
    let event: TenantEvent = serde_json::from_value(new.payload).expect("current shape");
    assert_eq!(
        event,
        TenantEvent::MemberSubjectLinked {
            member_id: "m-1".into(),
            subject: "s-1".into(),
            issuer: None,
        }
    );
}

#[test]
fn only_the_subject_link_is_past_its_first_version() {
    use cqrs_es::DomainEvent;
    for event in one_of_each() {
        let expected = if event.event_type() == "MemberSubjectLinked" {
            crate::tenant::MEMBER_SUBJECT_LINKED_VERSION
        } else {
            crate::tenant::TENANT_EVENT_VERSION
        };
        assert_eq!(event.event_version(), expected, "{}", event.event_type());
    }
}

#[test]
fn an_update_event_stores_only_changed_fields_as_from_to_pairs() {
    let event = TenantEvent::BillingInfoUpdated {
        changes: BillingChanges {
            contact_email: Some(FieldChange {
                from: None,
                to: Some("billing@acme.example".into()),
            }),
            country: Some(FieldChange {
                from: Some("DK".into()),
                to: Some("SE".into()),
            }),
            ..Default::default()
        },
    };
    assert_eq!(
        serde_json::to_value(&event).expect("serializes"),
        json!({"BillingInfoUpdated": {"changes": {
            "country": {"from": "DK", "to": "SE"},
            "contact_email": {"from": null, "to": "billing@acme.example"}
        }}})
    );
}

#[test]
fn a_branding_event_stores_the_accent_with_its_text_colour_and_integer_contrast() {
    let events = outcome(
        active(),
        admin(),
        TenantAction::UpdateBranding(crate::tenant::BrandingPatch {
            accent_colour: Some("#1a237e".into()),
            ..Default::default()
        }),
    )
    .expect("valid");
    let json = serde_json::to_value(&events[0]).expect("serializes");
    assert_eq!(
        json,
        json!({"BrandingUpdated": {"changes": {"accent": {
            "from": null,
            "to": {"colour": "#1A237E", "text_colour": "white", "contrast_ratio_centi": 1324}
        }}}})
    );
}

#[test]
fn the_creation_event_has_a_stable_json_shape() {
    assert_eq!(
        serde_json::to_value(tenant_created()).expect("serializes"),
        json!({"TenantCreated": {
            "tenant_id": TENANT_ID,
            "organization_name": "Acme ApS",
            "slug": SLUG,
            "plan": "business",
            "seats": 25,
            "partner_id": PARTNER_ID,
            "created_at": NOW,
            "security_policy": {
                "mfa_mode": "optional",
                "session_idle_minutes": 60,
                "session_absolute_minutes": 720,
                "allowed_countries": [],
                "ip_allowlist": []
            }
        }})
    );
}

#[test]
fn a_history_folds_into_the_state_it_describes() {
    let history = and(
        active(),
        [
            TenantEvent::TenantSuspended {},
            TenantEvent::TenantResumed {},
            TenantEvent::MemberRoleChanged {
                member_id: MEMBER.into(),
                from: Role::Member,
                to: Role::Admin,
            },
            TenantEvent::OwnershipTransferred {
                from_member_id: OWNER.into(),
                to_member_id: MEMBER.into(),
            },
            TenantEvent::MemberSubjectLinked {
                member_id: ADMIN.into(),
                subject: "sub-admin".into(),
                issuer: None,
            },
            TenantEvent::MemberMailboxCreated {
                member_id: OWNER.into(),
            },
        ],
    );
    let tenant = folded(history);
    assert_eq!(tenant.id, TENANT_ID);
    assert_eq!(tenant.status, Some(TenantStatus::Active));
    assert_eq!(tenant.slug, SLUG);
    assert_eq!(tenant.owner_member_id.as_deref(), Some(MEMBER));
    assert_eq!(tenant.members[MEMBER].role, Role::Admin);
    assert_eq!(tenant.members[ADMIN].subject.as_deref(), Some("sub-admin"));
    assert!(tenant.members[OWNER].has_mailbox);
    assert_eq!(tenant.active_admin_count(), 3);
}

#[test]
fn the_tenant_state_survives_a_snapshot_round_trip() {
    let tenant = folded(and(
        active(),
        outcome(
            active(),
            admin(),
            TenantAction::UpdateBranding(crate::tenant::BrandingPatch {
                product_name: Some("Acme Work".into()),
                accent_colour: Some("#0A84FF".into()),
                email_templates: std::collections::BTreeMap::from([(
                    "invitation".to_owned(),
                    Some(crate::tenant::EmailTemplate {
                        subject: "Welcome".into(),
                        body: "Hi".into(),
                    }),
                )]),
            }),
        )
        .expect("valid"),
    ));
    let json = serde_json::to_string(&tenant).expect("serializes");
    let back: Tenant = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, tenant);
}
