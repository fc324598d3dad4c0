//! Mail addresses: aliases of members' mailboxes and distribution lists, one address routed
//! one way in a tenant, and who may change them.

use serde_json::json;

use super::*;
use crate::tenant::{
    AddressHolder, Authority, TenantStatus, TextField, MAX_ALIASES_PER_MEMBER,
    MAX_LISTS_PER_TENANT, MAX_LIST_RECIPIENTS,
};

const LIST: &str = "l-team";
const LIST_ADDRESS: &str = "team@acme.example";

fn add_alias(member_id: &str, alias: &str) -> TenantAction {
    TenantAction::AddAlias {
        member_id: member_id.into(),
        alias: alias.into(),
    }
}

fn remove_alias(member_id: &str, alias: &str) -> TenantAction {
    TenantAction::RemoveAlias {
        member_id: member_id.into(),
        alias: alias.into(),
    }
}

fn alias_added(member_id: &str, address: &str, alias: &str) -> TenantEvent {
    TenantEvent::MemberAliasAdded {
        member_id: member_id.into(),
        address: address.into(),
        alias: alias.into(),
    }
}

fn create_list(list_id: &str, address: &str, recipients: &[&str]) -> TenantAction {
    TenantAction::CreateList {
        list_id: list_id.into(),
        address: address.into(),
        display_name: "The Team".into(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn list_created(list_id: &str, address: &str, recipients: &[&str]) -> TenantEvent {
    TenantEvent::MailingListCreated {
        list_id: list_id.into(),
        address: address.into(),
        display_name: "The Team".into(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn set_recipients(list_id: &str, recipients: &[&str]) -> TenantAction {
    TenantAction::SetListRecipients {
        list_id: list_id.into(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn delete_list(list_id: &str) -> TenantAction {
    TenantAction::DeleteList {
        list_id: list_id.into(),
    }
}

/// [`active`] with the member holding `sales@` and the team list.
fn with_alias_and_list() -> Vec<TenantEvent> {
    and(
        active(),
        [
            alias_added(MEMBER, MEMBER_EMAIL, "sales@acme.example"),
            list_created(LIST, LIST_ADDRESS, &[MEMBER_EMAIL, ADMIN_EMAIL]),
        ],
    )
}

fn recipients(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}@elsewhere.example")).collect()
}

// Aliases.

#[test]
fn an_admin_adds_an_alias_in_canonical_form_delivering_to_the_members_mailbox() {
    given(active())
        .when(by(admin(), add_alias(MEMBER, "  Sales@ACME.Example ")))
        .then_expect_events(vec![alias_added(
            MEMBER,
            MEMBER_EMAIL,
            "sales@acme.example",
        )]);
}

#[test]
fn an_international_alias_domain_is_stored_in_its_canonical_ascii_form() {
    given(active())
        .when(by(admin(), add_alias(MEMBER, "Info@Bücher.example")))
        .then_expect_events(vec![alias_added(
            MEMBER,
            MEMBER_EMAIL,
            "info@xn--bcher-kva.example",
        )]);
}

#[test]
fn the_owning_partner_and_platform_admins_add_aliases_too() {
    for principal in [partner_staff(), operator()] {
        let events = outcome(active(), principal, add_alias(MEMBER, "sales@acme.example"));
        assert!(
            matches!(
                events.as_deref(),
                Ok([TenantEvent::MemberAliasAdded { .. }])
            ),
            "{events:?}"
        );
    }
}

#[test]
fn plain_members_strangers_and_other_partners_cannot_change_addresses() {
    let actions = [
        add_alias(MEMBER, "sales@acme.example"),
        remove_alias(MEMBER, "sales@acme.example"),
        create_list("l-new", "new@acme.example", &[MEMBER_EMAIL]),
        set_recipients(LIST, &[MEMBER_EMAIL]),
        delete_list(LIST),
    ];
    for principal in [member(), stranger(), other_partner_staff()] {
        for action in actions.clone() {
            assert_eq!(
                outcome(with_alias_and_list(), principal.clone(), action.clone()),
                Err(TenantError::NotAuthorized {
                    required: Authority::TenantManager
                }),
                "{principal:?} / {action:?}"
            );
        }
    }
}

#[test]
fn an_alias_for_a_member_without_a_mailbox_is_refused() {
    given(active())
        .when(by(admin(), add_alias(OWNER, "boss@acme.example")))
        .then_expect_error(TenantError::MemberHasNoMailbox {
            member_id: OWNER.into(),
        });
}

#[test]
fn an_alias_for_a_member_once_their_mailbox_exists_is_accepted() {
    let history = and(
        active(),
        [TenantEvent::MemberMailboxCreated {
            member_id: OWNER.into(),
        }],
    );
    given(history)
        .when(by(admin(), add_alias(OWNER, "boss@acme.example")))
        .then_expect_events(vec![alias_added(OWNER, OWNER_EMAIL, "boss@acme.example")]);
}

#[test]
fn an_alias_for_an_unknown_member_is_refused() {
    given(active())
        .when(by(admin(), add_alias("m-nobody", "sales@acme.example")))
        .then_expect_error(TenantError::MemberNotFound {
            member_id: "m-nobody".into(),
        });
}

#[test]
fn an_alias_that_is_not_an_address_is_refused() {
    given(active())
        .when(by(admin(), add_alias(MEMBER, "sales at acme")))
        .then_expect_error(TenantError::InvalidEmail {
            email: "sales at acme".into(),
        });
}

#[test]
fn adding_an_alias_the_member_already_has_records_nothing() {
    given(with_alias_and_list())
        .when(by(admin(), add_alias(MEMBER, "SALES@acme.example")))
        .then_expect_events(vec![]);
}

#[test]
fn an_alias_of_another_member_is_refused_whatever_its_case() {
    given(with_alias_and_list())
        .when(by(admin(), add_alias(ADMIN, "Sales@Acme.Example")))
        .then_expect_error(TenantError::AddressInUse {
            address: "sales@acme.example".into(),
            holder: AddressHolder::Alias {
                member_id: MEMBER.into(),
            },
        });
}

#[test]
fn an_alias_equal_to_a_members_own_address_is_refused() {
    for (target, address, holder) in [
        (MEMBER, MEMBER_EMAIL, MEMBER),
        (MEMBER, ADMIN_EMAIL, ADMIN),
        (ADMIN, "FOUNDER@acme.example", OWNER),
    ] {
        assert_eq!(
            outcome(active(), admin(), add_alias(target, address)),
            Err(TenantError::AddressInUse {
                address: address.to_lowercase(),
                holder: AddressHolder::Member {
                    member_id: holder.into()
                },
            }),
            "{address}"
        );
    }
}

#[test]
fn an_alias_equal_to_a_list_address_is_refused() {
    given(with_alias_and_list())
        .when(by(admin(), add_alias(ADMIN, LIST_ADDRESS)))
        .then_expect_error(TenantError::AddressInUse {
            address: LIST_ADDRESS.into(),
            holder: AddressHolder::List {
                list_id: LIST.into(),
            },
        });
}

#[test]
fn a_member_has_at_most_twenty_aliases() {
    let full = and(
        active(),
        (0..MAX_ALIASES_PER_MEMBER)
            .map(|i| alias_added(MEMBER, MEMBER_EMAIL, &format!("a{i}@acme.example"))),
    );
    given(full.clone())
        .when(by(admin(), add_alias(MEMBER, "one-more@acme.example")))
        .then_expect_error(TenantError::TooManyAliases {
            member_id: MEMBER.into(),
            max: MAX_ALIASES_PER_MEMBER,
        });
    // The limit is per member: another member still has room.
    given(full)
        .when(by(admin(), add_alias(ADMIN, "one-more@acme.example")))
        .then_expect_events(vec![alias_added(
            ADMIN,
            ADMIN_EMAIL,
            "one-more@acme.example",
        )]);
}

#[test]
fn removing_an_alias_records_it_with_the_mailbox_it_delivered_to() {
    given(with_alias_and_list())
        .when(by(
            partner_staff(),
            remove_alias(MEMBER, " Sales@acme.example"),
        ))
        .then_expect_events(vec![TenantEvent::MemberAliasRemoved {
            member_id: MEMBER.into(),
            address: MEMBER_EMAIL.into(),
            alias: "sales@acme.example".into(),
        }]);
}

#[test]
fn removing_an_alias_the_member_does_not_have_is_refused() {
    for (member_id, alias) in [
        (MEMBER, "nobody@acme.example"),
        // Another member's alias is not this member's to remove.
        (ADMIN, "sales@acme.example"),
    ] {
        assert_eq!(
            outcome(
                with_alias_and_list(),
                admin(),
                remove_alias(member_id, alias)
            ),
            Err(TenantError::AliasNotFound {
                member_id: member_id.into(),
                alias: alias.into(),
            }),
            "{member_id} / {alias}"
        );
    }
    assert_eq!(
        outcome(
            with_alias_and_list(),
            admin(),
            remove_alias("m-nobody", "sales@acme.example")
        ),
        Err(TenantError::MemberNotFound {
            member_id: "m-nobody".into()
        })
    );
}

#[test]
fn a_removed_members_aliases_go_with_them_and_are_free_again() {
    let history = and(
        with_alias_and_list(),
        [TenantEvent::MemberRemoved {
            member_id: MEMBER.into(),
        }],
    );
    assert!(folded(history.clone()).aliases.is_empty());
    given(history)
        .when(by(admin(), add_alias(ADMIN, "sales@acme.example")))
        .then_expect_events(vec![alias_added(ADMIN, ADMIN_EMAIL, "sales@acme.example")]);
}

#[test]
fn a_new_member_cannot_take_an_address_an_alias_or_a_list_routes() {
    for (email, holder) in [
        (
            "Sales@acme.example",
            AddressHolder::Alias {
                member_id: MEMBER.into(),
            },
        ),
        (
            LIST_ADDRESS,
            AddressHolder::List {
                list_id: LIST.into(),
            },
        ),
    ] {
        assert_eq!(
            outcome(
                with_alias_and_list(),
                admin(),
                TenantAction::AddMember {
                    member: new_member("m-new", email, "New"),
                    role: Role::Member,
                    placement: crate::tenant::AddressPlacement::OwnDomain,
                },
            ),
            Err(TenantError::AddressInUse {
                address: email.to_lowercase(),
                holder,
            }),
            "{email}"
        );
    }
}

#[test]
fn addresses_of_a_deleted_tenant_cannot_change() {
    let deleted = and(
        with_alias_and_list(),
        [TenantEvent::TenantSoftDeleted {
            deleted_at: NOW.into(),
        }],
    );
    for action in [
        add_alias(ADMIN, "ops@acme.example"),
        remove_alias(MEMBER, "sales@acme.example"),
        create_list("l-new", "new@acme.example", &[MEMBER_EMAIL]),
        set_recipients(LIST, &[MEMBER_EMAIL]),
        delete_list(LIST),
    ] {
        assert_eq!(
            outcome(deleted.clone(), operator(), action.clone()),
            Err(TenantError::Deleted {
                status: TenantStatus::SoftDeleted
            }),
            "{action:?}"
        );
    }
}

// Distribution lists.

#[test]
fn an_admin_creates_a_list_with_canonical_deduplicated_recipients() {
    given(active())
        .when(by(
            admin(),
            TenantAction::CreateList {
                list_id: LIST.into(),
                address: " Team@ACME.example".into(),
                display_name: "  The Team ".into(),
                recipients: vec![
                    "Member@acme.example".into(),
                    "partner@elsewhere.example".into(),
                    "member@ACME.example ".into(),
                ],
            },
        ))
        .then_expect_events(vec![list_created(
            LIST,
            LIST_ADDRESS,
            &["member@acme.example", "partner@elsewhere.example"],
        )]);
}

#[test]
fn the_owning_partner_and_platform_admins_manage_lists_too() {
    for principal in [partner_staff(), operator()] {
        let created = outcome(
            active(),
            principal.clone(),
            create_list(LIST, LIST_ADDRESS, &[MEMBER_EMAIL]),
        );
        assert!(
            matches!(
                created.as_deref(),
                Ok([TenantEvent::MailingListCreated { .. }])
            ),
            "{created:?}"
        );
        let deleted = outcome(with_alias_and_list(), principal, delete_list(LIST));
        assert!(
            matches!(
                deleted.as_deref(),
                Ok([TenantEvent::MailingListDeleted { .. }])
            ),
            "{deleted:?}"
        );
    }
}

#[test]
fn a_list_needs_one_to_five_hundred_distinct_recipients() {
    for (given_recipients, got) in [
        (Vec::new(), 0),
        (recipients(MAX_LIST_RECIPIENTS + 1), MAX_LIST_RECIPIENTS + 1),
    ] {
        let create = TenantAction::CreateList {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
            display_name: "Team".into(),
            recipients: given_recipients.clone(),
        };
        let expected = Err(TenantError::RecipientsOutOfRange {
            got,
            min: 1,
            max: MAX_LIST_RECIPIENTS,
        });
        assert_eq!(outcome(active(), admin(), create), expected, "create {got}");
        let set = TenantAction::SetListRecipients {
            list_id: LIST.into(),
            recipients: given_recipients,
        };
        assert_eq!(
            outcome(with_alias_and_list(), admin(), set),
            expected,
            "set {got}"
        );
    }
    // Duplicates do not count: 501 entries naming 500 addresses are a full list.
    let mut full = recipients(MAX_LIST_RECIPIENTS);
    full.push(full[0].to_uppercase());
    let created = outcome(
        active(),
        admin(),
        TenantAction::CreateList {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
            display_name: "Team".into(),
            recipients: full,
        },
    )
    .expect("500 distinct recipients are allowed");
    assert!(matches!(
        &created[..],
        [TenantEvent::MailingListCreated { recipients, .. }] if recipients.len() == MAX_LIST_RECIPIENTS
    ));
}

#[test]
fn a_list_with_an_invalid_address_name_or_id_is_refused() {
    let cases = [
        (
            TenantAction::CreateList {
                list_id: "l-new".into(),
                address: "team".into(),
                display_name: "Team".into(),
                recipients: vec![MEMBER_EMAIL.into()],
            },
            TenantError::InvalidEmail {
                email: "team".into(),
            },
        ),
        (
            TenantAction::CreateList {
                list_id: "l-new".into(),
                address: "new@acme.example".into(),
                display_name: "Team".into(),
                recipients: vec![MEMBER_EMAIL.into(), "not an address".into()],
            },
            TenantError::InvalidEmail {
                email: "not an address".into(),
            },
        ),
        (
            TenantAction::CreateList {
                list_id: "l-new".into(),
                address: "new@acme.example".into(),
                display_name: "  ".into(),
                recipients: vec![MEMBER_EMAIL.into()],
            },
            TenantError::Blank {
                field: TextField::DisplayName,
            },
        ),
        (
            TenantAction::CreateList {
                list_id: "l team".into(),
                address: "new@acme.example".into(),
                display_name: "Team".into(),
                recipients: vec![MEMBER_EMAIL.into()],
            },
            TenantError::InvalidIdentifier {
                field: TextField::ListId,
                value: "l team".into(),
            },
        ),
        (
            set_recipients(LIST, &[MEMBER_EMAIL, "@acme.example"]),
            TenantError::InvalidEmail {
                email: "@acme.example".into(),
            },
        ),
    ];
    for (action, error) in cases {
        assert_eq!(
            outcome(with_alias_and_list(), admin(), action.clone()),
            Err(error),
            "{action:?}"
        );
    }
}

#[test]
fn a_list_address_already_routed_in_the_tenant_is_refused() {
    for (address, holder) in [
        (
            MEMBER_EMAIL,
            AddressHolder::Member {
                member_id: MEMBER.into(),
            },
        ),
        (
            "SALES@acme.example",
            AddressHolder::Alias {
                member_id: MEMBER.into(),
            },
        ),
        (
            LIST_ADDRESS,
            AddressHolder::List {
                list_id: LIST.into(),
            },
        ),
    ] {
        assert_eq!(
            outcome(
                with_alias_and_list(),
                admin(),
                create_list("l-new", address, &[ADMIN_EMAIL])
            ),
            Err(TenantError::AddressInUse {
                address: address.to_lowercase(),
                holder,
            }),
            "{address}"
        );
    }
}

#[test]
fn a_list_id_in_use_or_once_used_is_refused() {
    given(with_alias_and_list())
        .when(by(
            admin(),
            create_list(LIST, "other@acme.example", &[MEMBER_EMAIL]),
        ))
        .then_expect_error(TenantError::ListAlreadyExists {
            list_id: LIST.into(),
        });
    let deleted = and(
        with_alias_and_list(),
        [TenantEvent::MailingListDeleted {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
        }],
    );
    given(deleted)
        .when(by(
            admin(),
            create_list(LIST, LIST_ADDRESS, &[MEMBER_EMAIL]),
        ))
        .then_expect_error(TenantError::ListAlreadyExists {
            list_id: LIST.into(),
        });
}

#[test]
fn a_list_cannot_be_among_its_own_recipients() {
    assert_eq!(
        outcome(
            active(),
            admin(),
            create_list(LIST, LIST_ADDRESS, &[MEMBER_EMAIL, "TEAM@acme.example"])
        ),
        Err(TenantError::ListIncludesItself {
            address: LIST_ADDRESS.into()
        })
    );
    assert_eq!(
        outcome(
            with_alias_and_list(),
            admin(),
            set_recipients(LIST, &[LIST_ADDRESS])
        ),
        Err(TenantError::ListIncludesItself {
            address: LIST_ADDRESS.into()
        })
    );
}

#[test]
fn a_tenant_has_at_most_two_hundred_lists() {
    let full = and(
        active(),
        (0..MAX_LISTS_PER_TENANT).map(|i| {
            list_created(
                &format!("l-{i}"),
                &format!("list-{i}@acme.example"),
                &[MEMBER_EMAIL],
            )
        }),
    );
    given(full)
        .when(by(
            admin(),
            create_list("l-more", "more@acme.example", &[MEMBER_EMAIL]),
        ))
        .then_expect_error(TenantError::TooManyLists {
            max: MAX_LISTS_PER_TENANT,
        });
}

#[test]
fn setting_recipients_records_the_whole_list_with_its_address() {
    given(with_alias_and_list())
        .when(by(
            admin(),
            set_recipients(LIST, &["Outside@elsewhere.example", MEMBER_EMAIL]),
        ))
        .then_expect_events(vec![TenantEvent::MailingListRecipientsSet {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
            recipients: vec!["outside@elsewhere.example".into(), MEMBER_EMAIL.into()],
        }]);
}

#[test]
fn setting_the_recipients_a_list_has_records_nothing() {
    given(with_alias_and_list())
        .when(by(
            admin(),
            set_recipients(LIST, &["MEMBER@acme.example", ADMIN_EMAIL, MEMBER_EMAIL]),
        ))
        .then_expect_events(vec![]);
}

#[test]
fn an_unknown_list_is_refused() {
    for action in [
        set_recipients("l-nope", &[MEMBER_EMAIL]),
        delete_list("l-nope"),
    ] {
        assert_eq!(
            outcome(with_alias_and_list(), admin(), action.clone()),
            Err(TenantError::ListNotFound {
                list_id: "l-nope".into()
            }),
            "{action:?}"
        );
    }
}

#[test]
fn deleting_a_list_records_its_address_and_frees_it() {
    given(with_alias_and_list())
        .when(by(admin(), delete_list(LIST)))
        .then_expect_events(vec![TenantEvent::MailingListDeleted {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
        }]);
    let deleted = and(
        with_alias_and_list(),
        [TenantEvent::MailingListDeleted {
            list_id: LIST.into(),
            address: LIST_ADDRESS.into(),
        }],
    );
    given(deleted)
        .when(by(admin(), add_alias(ADMIN, LIST_ADDRESS)))
        .then_expect_events(vec![alias_added(ADMIN, ADMIN_EMAIL, LIST_ADDRESS)]);
}

// The persisted contract and the fold.

#[test]
fn the_mail_events_have_a_stable_json_shape() {
    assert_eq!(
        serde_json::to_value(alias_added(MEMBER, MEMBER_EMAIL, "sales@acme.example"))
            .expect("serializes"),
        json!({"MemberAliasAdded": {
            "member_id": MEMBER, "address": MEMBER_EMAIL, "alias": "sales@acme.example"
        }})
    );
    assert_eq!(
        serde_json::to_value(list_created(LIST, LIST_ADDRESS, &[MEMBER_EMAIL]))
            .expect("serializes"),
        json!({"MailingListCreated": {
            "list_id": LIST, "address": LIST_ADDRESS, "display_name": "The Team",
            "recipients": [MEMBER_EMAIL]
        }})
    );
}

#[test]
fn the_mailbox_address_is_the_members_email_in_ascii_lower_case() {
    let history = and(
        pending(),
        [
            TenantEvent::TenantProvisioned {},
            added("m-mixed", "Mixed.Case@ACME.example", Role::Member),
        ],
    );
    given(history)
        .when(by(owner(), add_alias("m-mixed", "mc@acme.example")))
        .then_expect_events(vec![alias_added(
            "m-mixed",
            "mixed.case@acme.example",
            "mc@acme.example",
        )]);
}

#[test]
fn a_mail_history_folds_into_the_aliases_and_lists_it_describes() {
    let tenant = folded(and(
        with_alias_and_list(),
        [
            alias_added(ADMIN, ADMIN_EMAIL, "ops@acme.example"),
            alias_added(MEMBER, MEMBER_EMAIL, "info@acme.example"),
            TenantEvent::MemberAliasRemoved {
                member_id: MEMBER.into(),
                address: MEMBER_EMAIL.into(),
                alias: "sales@acme.example".into(),
            },
            TenantEvent::MailingListRecipientsSet {
                list_id: LIST.into(),
                address: LIST_ADDRESS.into(),
                recipients: vec![ADMIN_EMAIL.into()],
            },
            list_created("l-other", "other@acme.example", &[MEMBER_EMAIL]),
            TenantEvent::MailingListDeleted {
                list_id: "l-other".into(),
                address: "other@acme.example".into(),
            },
        ],
    ));
    assert_eq!(
        tenant.aliases.into_iter().collect::<Vec<_>>(),
        vec![
            ("info@acme.example".to_owned(), MEMBER.to_owned()),
            ("ops@acme.example".to_owned(), ADMIN.to_owned()),
        ]
    );
    assert_eq!(tenant.mailing_lists.len(), 1);
    assert_eq!(tenant.mailing_lists[LIST].recipients, vec![ADMIN_EMAIL]);
    assert!(tenant.retired_list_ids.contains("l-other"));
}
