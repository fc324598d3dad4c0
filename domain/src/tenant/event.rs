//! Events a tenant emits: a persisted contract.
//!
//! Each variant's name is its stored type name (the payload is externally tagged, so the
//! JSON reads `{"TenantCreated": {...}}`) and never changes; a change of shape bumps that
//! event's version and adds an upcaster to [`tenant_upcasters`] with a test reading the old bytes.

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::billing::BillingChanges;
use super::branding::BrandingChanges;
use super::member::Role;
use super::security::{SecurityPolicy, SecurityPolicyChanges};

/// Schema version of every tenant event but those listed below.
pub const TENANT_EVENT_VERSION: &str = "1.0";
/// Schema version of `MemberSubjectLinked`: 2.0 added the subject's `issuer` (identity is
/// the pair issuer and subject, ADR 6); 1.0 events carry none and are upcast with `null`.
pub const MEMBER_SUBJECT_LINKED_VERSION: &str = "2.0";

/// Every stored type name a tenant event can have. A test pins this list: removing or renaming
/// an entry would orphan events already on the ledger.
pub const TENANT_EVENT_TYPES: [&str; 25] = [
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
];

/// Events a tenant emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantEvent {
    /// A tenant was created; it is pending provisioning. Followed, in the same command, by
    /// [`TenantEvent::MemberInvited`] for the first admin.
    TenantCreated {
        /// The tenant id (equal to the aggregate id).
        tenant_id: String,
        /// The organization's name.
        organization_name: String,
        /// The slug (claimed in its [`crate::tenant::SlugClaim`]).
        slug: String,
        /// The plan id.
        plan: String,
        /// Seats.
        seats: u32,
        /// The owning partner, if any.
        partner_id: Option<String>,
        /// When (from the command context).
        created_at: String,
        /// The security policy the tenant starts with, recorded so that later changes of the
        /// platform defaults do not rewrite this tenant's history.
        security_policy: SecurityPolicy,
    },
    /// Provisioning finished; the tenant is active.
    TenantProvisioned {},
    /// The tenant was suspended.
    TenantSuspended {},
    /// The tenant was resumed.
    TenantResumed {},
    /// The tenant was soft-deleted.
    TenantSoftDeleted {
        /// When (from the command context).
        deleted_at: String,
    },
    /// The tenant was purged. The purge saga tears down its external resources and releases
    /// `slug`, which it reads from here.
    TenantPurged {
        /// The slug to release.
        slug: String,
    },
    /// Billing details changed (only the changed fields).
    BillingInfoUpdated {
        /// `{field: {from, to}}` of each changed field.
        changes: BillingChanges,
    },
    /// Branding changed (only the changed fields).
    BrandingUpdated {
        /// `{field: {from, to}}` of each changed field.
        changes: BrandingChanges,
    },
    /// The security policy changed (only the changed fields).
    SecurityPolicyUpdated {
        /// `{field: {from, to}}` of each changed field.
        changes: SecurityPolicyChanges,
    },
    /// An admin was invited to sign in with an outside address (the first admin of a new
    /// tenant, or a later one). The saga creates the SSO account and a recovery link.
    MemberInvited {
        /// The member id.
        member_id: String,
        /// Sign-in e-mail.
        email: String,
        /// Display name.
        display_name: String,
        /// Always [`Role::Admin`] today; stored so the event reads on its own.
        role: Role,
        /// Whether the member becomes the owner (the first admin does).
        owner: bool,
        /// Always `false` today: invited admins have no mailbox until one is created.
        has_mailbox: bool,
    },
    /// A member was added with a workspace mailbox. The saga creates the SSO account, the
    /// mailbox and the files space.
    MemberAdded {
        /// The member id.
        member_id: String,
        /// Sign-in e-mail (also the mailbox address).
        email: String,
        /// Display name.
        display_name: String,
        /// Role.
        role: Role,
        /// Always `true` today.
        has_mailbox: bool,
    },
    /// A member's role changed.
    MemberRoleChanged {
        /// The member.
        member_id: String,
        /// The previous role.
        from: Role,
        /// The new role.
        to: Role,
    },
    /// Ownership moved. The previous owner stays an admin; the new owner is an admin (a
    /// [`TenantEvent::MemberRoleChanged`] before this event promotes them if needed).
    OwnershipTransferred {
        /// The previous owner.
        from_member_id: String,
        /// The new owner.
        to_member_id: String,
    },
    /// A member was suspended (SSO inactive, mailbox frozen by the saga).
    MemberSuspended {
        /// The member.
        member_id: String,
    },
    /// A member was resumed.
    MemberResumed {
        /// The member.
        member_id: String,
    },
    /// Ending all of a member's sessions was requested (the saga terminates them).
    MemberLogoutRequested {
        /// The member.
        member_id: String,
    },
    /// A new one-time password for a member was requested (the saga sets it).
    MemberPasswordResetRequested {
        /// The member.
        member_id: String,
    },
    /// A member was removed (the saga tears down their accounts).
    MemberRemoved {
        /// The member.
        member_id: String,
    },
    /// A member was linked to their SSO identity: from now on they are recognised by this
    /// (issuer, subject) pair alone, never by an e-mail claim.
    MemberSubjectLinked {
        /// The member.
        member_id: String,
        /// The identity provider's subject.
        subject: String,
        /// The issuer that vouches for `subject`. `None` only on links recorded before issuers
        /// were (version 1.0 of this event); such a link matches the subject from the one
        /// issuer a deployment trusts.
        #[serde(default)]
        issuer: Option<String>,
    },
    /// A member's mailbox was created.
    MemberMailboxCreated {
        /// The member.
        member_id: String,
    },
    /// An alias now delivers to a member's mailbox. Carries both addresses, so the mail saga
    /// adds the alias to the right account from this event alone.
    MemberAliasAdded {
        /// The member.
        member_id: String,
        /// The member's mailbox address, as the member saga names the account (the member's
        /// e-mail in ASCII lower case).
        address: String,
        /// The alias (canonical form: lower case, canonical ASCII domain).
        alias: String,
    },
    /// An alias no longer delivers to a member's mailbox. A member's removal takes their
    /// aliases with it and records no such event for each.
    MemberAliasRemoved {
        /// The member.
        member_id: String,
        /// The member's mailbox address (as in [`TenantEvent::MemberAliasAdded`]).
        address: String,
        /// The alias removed (canonical form).
        alias: String,
    },
    /// A distribution list was created.
    MailingListCreated {
        /// The list id.
        list_id: String,
        /// The list's address (canonical form).
        address: String,
        /// The name recipients see.
        display_name: String,
        /// Every recipient, distinct, in canonical form.
        recipients: Vec<String>,
    },
    /// A distribution list's recipients were replaced. Carries the whole list, not a
    /// difference, so applying it twice or out of a partial history still gives the list.
    MailingListRecipientsSet {
        /// The list id.
        list_id: String,
        /// The list's address (canonical form).
        address: String,
        /// Every recipient now, distinct, in canonical form.
        recipients: Vec<String>,
    },
    /// A distribution list was deleted; its id is never used again in the tenant.
    MailingListDeleted {
        /// The list id.
        list_id: String,
        /// The list's address (canonical form).
        address: String,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        let name = match self {
            TenantEvent::TenantCreated { .. } => "TenantCreated",
            TenantEvent::TenantProvisioned { .. } => "TenantProvisioned",
            TenantEvent::TenantSuspended { .. } => "TenantSuspended",
            TenantEvent::TenantResumed { .. } => "TenantResumed",
            TenantEvent::TenantSoftDeleted { .. } => "TenantSoftDeleted",
            TenantEvent::TenantPurged { .. } => "TenantPurged",
            TenantEvent::BillingInfoUpdated { .. } => "BillingInfoUpdated",
            TenantEvent::BrandingUpdated { .. } => "BrandingUpdated",
            TenantEvent::SecurityPolicyUpdated { .. } => "SecurityPolicyUpdated",
            TenantEvent::MemberInvited { .. } => "MemberInvited",
            TenantEvent::MemberAdded { .. } => "MemberAdded",
            TenantEvent::MemberRoleChanged { .. } => "MemberRoleChanged",
            TenantEvent::OwnershipTransferred { .. } => "OwnershipTransferred",
            TenantEvent::MemberSuspended { .. } => "MemberSuspended",
            TenantEvent::MemberResumed { .. } => "MemberResumed",
            TenantEvent::MemberLogoutRequested { .. } => "MemberLogoutRequested",
            TenantEvent::MemberPasswordResetRequested { .. } => "MemberPasswordResetRequested",
            TenantEvent::MemberRemoved { .. } => "MemberRemoved",
            TenantEvent::MemberSubjectLinked { .. } => "MemberSubjectLinked",
            TenantEvent::MemberMailboxCreated { .. } => "MemberMailboxCreated",
            TenantEvent::MemberAliasAdded { .. } => "MemberAliasAdded",
            TenantEvent::MemberAliasRemoved { .. } => "MemberAliasRemoved",
            TenantEvent::MailingListCreated { .. } => "MailingListCreated",
            TenantEvent::MailingListRecipientsSet { .. } => "MailingListRecipientsSet",
            TenantEvent::MailingListDeleted { .. } => "MailingListDeleted",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            TenantEvent::MemberSubjectLinked { .. } => MEMBER_SUBJECT_LINKED_VERSION,
            _ => TENANT_EVENT_VERSION,
        }
        .to_owned()
    }
}

/// `MemberSubjectLinked` 1.0 → 2.0: the link gains its issuer, unknown for old links (`null`).
fn upcast_member_subject_linked_v1(mut payload: Value) -> Value {
    if let Some(fields) = payload
        .get_mut("MemberSubjectLinked")
        .and_then(Value::as_object_mut)
    {
        fields.entry("issuer").or_insert(Value::Null);
    }
    payload
}

/// The upcasters a tenant event store must be built with.
pub fn tenant_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "MemberSubjectLinked",
        MEMBER_SUBJECT_LINKED_VERSION,
        Box::new(upcast_member_subject_linked_v1),
    ))]
}
