//! Members of a tenant: people with an account in the workspace and a role there.
//!
//! Roles are per tenant: the same person can be an admin here and a member elsewhere, so a
//! role is a property of the membership, never of the person.

use serde::{Deserialize, Serialize};

use super::context::Principal;
use super::identity::recognises;
use super::values::same_email;

/// Most members one tenant can have (the largest seat count a tenant can be created with);
/// it bounds the aggregate's size and the events replayed to load it.
pub const MAX_MEMBERS_PER_TENANT: usize = 10_000;

/// A member's role in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uses the workspace.
    Member,
    /// Administers the workspace.
    Admin,
}

/// Whether a member can sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// The member can sign in.
    Active,
    /// The member is suspended: SSO inactive, mailbox frozen.
    Suspended,
}

/// A member of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member id (chosen by the caller).
    pub id: String,
    /// Sign-in e-mail address; unique within the tenant, case-insensitively.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role in this tenant.
    pub role: Role,
    /// Sign-in status.
    pub status: MemberStatus,
    /// Whether the member has a mailbox in the workspace. An invited admin signs in with an
    /// outside address and has none (a "mailbox-less bootstrap admin") until one is created.
    pub has_mailbox: bool,
    /// The SSO subject, once the member's identity-provider account is linked.
    pub subject: Option<String>,
    /// The issuer of [`Member::subject`]; `None` before linking, and for links recorded
    /// before issuers were.
    #[serde(default)]
    pub issuer: Option<String>,
}

impl Member {
    /// The address of the member's mailbox, as the member saga names the account: their
    /// e-mail in ASCII lower case. Aliases deliver here.
    pub fn mailbox_address(&self) -> String {
        self.email.trim().to_ascii_lowercase()
    }

    /// Whether the member is an admin who can currently sign in.
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && self.status == MemberStatus::Active
    }

    /// Whether `principal` is recognised as this member for authorization: by the linked
    /// (issuer, subject), or by a verified e-mail compared strictly while nothing is linked
    /// (the rule in [`super::identity::recognises`], which the API's read side applies too).
    /// Once a subject is linked, an e-mail match alone no longer counts: another
    /// identity-provider account with the same address must not inherit this member's rights.
    pub fn is_recognised_as(&self, principal: &Principal) -> bool {
        recognises(
            self.subject.as_deref(),
            self.issuer.as_deref(),
            &self.email,
            principal,
        )
    }

    /// Whether `principal` may be this member, for the rules that forbid acting on oneself:
    /// the subject matches or the e-mail matches. Deliberately broader than
    /// [`Member::is_recognised_as`]: these rules protect the caller from locking themself
    /// out, so when in doubt they refuse.
    pub fn may_be(&self, principal: &Principal) -> bool {
        self.subject.as_deref() == Some(principal.subject.as_str())
            || principal
                .email
                .as_deref()
                .is_some_and(|email| same_email(email, &self.email))
    }
}

/// Whose domain an address is on, from one workspace's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressPlacement {
    /// The workspace's service domain (`{slug}.{platform domain}`).
    ServiceDomain,
    /// A domain the workspace added and still has.
    OwnDomain,
    /// A domain another workspace has.
    OtherWorkspace,
    /// The platform's own domain or a name under it (reserved for the platform).
    Platform,
    /// A domain nobody here hosts (a member's own `@gmail.com`).
    Outside,
}

impl AddressPlacement {
    /// Whether the workspace's mail server hosts mailboxes for such an address.
    pub fn is_hosted(self) -> bool {
        matches!(
            self,
            AddressPlacement::ServiceDomain | AddressPlacement::OwnDomain
        )
    }

    /// Whether a workspace may give a member such an address at all.
    pub fn is_ours_or_outside(self) -> bool {
        !matches!(
            self,
            AddressPlacement::OtherWorkspace | AddressPlacement::Platform
        )
    }
}

/// A member to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    /// The member id (chosen by the caller, unique within the tenant forever).
    pub member_id: String,
    /// Sign-in e-mail address.
    pub email: String,
    /// Display name.
    pub display_name: String,
}
