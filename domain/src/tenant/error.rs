//! Why a tenant refused a command: one error enum, with the data a caller needs to explain it.

use std::fmt;

use super::aggregate::TenantStatus;
use super::context::ContextError;
use super::mail::AddressHolder;
use super::member::AddressPlacement;
use super::slug::SlugProblem;
use super::values::TextField;

/// Who may issue a command. Named by who is admitted, so an error reads as the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// Platform admins only (operators, and system processors reporting back).
    PlatformAdmin,
    /// Platform admins, or staff of the partner that owns the tenant.
    PlatformAdminOrOwningPartner,
    /// Platform admins, staff of the owning partner, or active admins of the tenant.
    TenantManager,
    /// Platform admins or active admins of the tenant (the owner is always an admin).
    PlatformAdminOrTenantAdmin,
    /// Platform admins, or the member the command is about, acting for themself.
    PlatformAdminOrTheMember,
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Authority::PlatformAdmin => "a platform admin",
            Authority::PlatformAdminOrOwningPartner => "a platform admin or the owning partner",
            Authority::TenantManager => "a platform admin, the owning partner or a tenant admin",
            Authority::PlatformAdminOrTenantAdmin => "a platform admin or a tenant admin",
            Authority::PlatformAdminOrTheMember => "a platform admin or the member themself",
        })
    }
}

/// A status change named in [`TenantError::InvalidTransition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// Provision (from pending provisioning).
    Provision,
    /// Suspend (from active).
    Suspend,
    /// Resume (from suspended).
    Resume,
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LifecycleAction::Provision => "provision",
            LifecycleAction::Suspend => "suspend",
            LifecycleAction::Resume => "resume",
        })
    }
}

/// Why a member's role is locked (the primary-account lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryAccountLock {
    /// The member owns the tenant; transfer ownership first.
    Owner,
    /// The member is a mailbox-less bootstrap admin: demoting them could leave the tenant
    /// with no one able to administer it before its mailboxes exist.
    MailboxlessBootstrapAdmin,
    /// The member is the caller: nobody changes their own role.
    Actor,
}

impl fmt::Display for PrimaryAccountLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrimaryAccountLock::Owner => "the owner",
            PrimaryAccountLock::MailboxlessBootstrapAdmin => "a mailbox-less bootstrap admin",
            PrimaryAccountLock::Actor => "the caller",
        })
    }
}

/// A member action that nobody may take on themself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfAction {
    /// Suspending.
    Suspend,
    /// Ending all sessions.
    ForceLogout,
    /// Removing.
    Remove,
}

impl fmt::Display for SelfAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelfAction::Suspend => "suspend",
            SelfAction::ForceLogout => "force the logout of",
            SelfAction::Remove => "remove",
        })
    }
}

/// Why a tenant refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The command context is malformed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The tenant does not exist (only `Create` is accepted).
    #[error("the tenant does not exist")]
    NotFound,
    /// `Create` on a tenant that exists.
    #[error("tenant {tenant_id} already exists")]
    AlreadyExists {
        /// The existing tenant's id.
        tenant_id: String,
    },
    /// The caller lacks the authority the command needs.
    #[error("only {required} may do this")]
    NotAuthorized {
        /// Who may.
        required: Authority,
    },
    /// The tenant is soft-deleted or purged; only purging a soft-deleted tenant is accepted.
    #[error("the tenant is {status}")]
    Deleted {
        /// Its status.
        status: TenantStatus,
    },
    /// The status does not allow this change.
    #[error("cannot {action} a tenant that is {from}")]
    InvalidTransition {
        /// What was asked.
        action: LifecycleAction,
        /// The current status.
        from: TenantStatus,
    },
    /// Purge of a tenant that was not soft-deleted first.
    #[error("only a soft-deleted tenant can be purged; this one is {status}")]
    PurgeRequiresSoftDeletion {
        /// The current status.
        status: TenantStatus,
    },
    /// A required text is blank.
    #[error("the {field} must not be blank")]
    Blank {
        /// Which text.
        field: TextField,
    },
    /// A text is too long.
    #[error("the {field} has {got} characters; the limit is {max}")]
    TooLong {
        /// Which text.
        field: TextField,
        /// The limit.
        max: usize,
        /// The length given.
        got: usize,
    },
    /// A text holds a control character (a line break in a one-line field) or an invisible
    /// direction override (see [`crate::text`]). The value is not echoed: it is what an
    /// injection would look like in a log line.
    #[error("the {field} contains a character that is not allowed there (U+{code_point:04X})")]
    DisallowedCharacter {
        /// Which text.
        field: TextField,
        /// The first character refused, as its Unicode code point.
        code_point: u32,
    },
    /// A member's address is on another workspace's domain or the platform's.
    #[error("{address} is on a domain that is not this workspace's")]
    AddressNotOurs {
        /// The address.
        address: String,
        /// Whose domain it is on.
        placement: AddressPlacement,
    },
    /// An identifier contains whitespace or control characters.
    #[error("the {field} '{value}' contains whitespace or control characters")]
    InvalidIdentifier {
        /// Which identifier.
        field: TextField,
        /// What was given.
        value: String,
    },
    /// The slug is not acceptable.
    #[error("the slug '{slug}' is not acceptable: {problem}")]
    InvalidSlug {
        /// What was given.
        slug: String,
        /// Why not.
        problem: SlugProblem,
    },
    /// Seats outside the allowed range.
    #[error("{seats} seats is outside {min}..={max}")]
    SeatsOutOfRange {
        /// What was given.
        seats: u32,
        /// Fewest allowed.
        min: u32,
        /// Most allowed.
        max: u32,
    },
    /// Not an e-mail address.
    #[error("'{email}' is not an e-mail address")]
    InvalidEmail {
        /// What was given.
        email: String,
    },
    /// Not an assigned ISO 3166-1 alpha-2 code.
    #[error("'{code}' is not an ISO 3166-1 alpha-2 country code")]
    UnknownCountry {
        /// What was given.
        code: String,
    },
    /// A VAT id with characters no VAT id has.
    #[error("'{vat_id}' is not a VAT id")]
    InvalidVatId {
        /// What was given.
        vat_id: String,
    },
    /// Not a `#RRGGBB` colour.
    #[error("'{value}' is not a #RRGGBB colour")]
    InvalidAccentColour {
        /// What was given.
        value: String,
    },
    /// A template key outside the fixed set.
    #[error(
        "'{key}' is not an e-mail template (invitation, password_reset, booking_confirmation)"
    )]
    UnknownEmailTemplate {
        /// What was given.
        key: String,
    },
    /// Idle timeout out of range.
    #[error("an idle timeout of {minutes} minutes is outside {min}..={max}")]
    SessionIdleOutOfRange {
        /// What the policy would be.
        minutes: u32,
        /// Shortest allowed.
        min: u32,
        /// Longest allowed.
        max: u32,
    },
    /// Absolute lifetime shorter than the idle timeout or too long.
    #[error("an absolute session lifetime of {minutes} minutes is outside {min}..={max}")]
    SessionAbsoluteOutOfRange {
        /// What the policy would be.
        minutes: u32,
        /// Shortest allowed (the idle timeout).
        min: u32,
        /// Longest allowed.
        max: u32,
    },
    /// Too many allowed-country entries.
    #[error("{got} allowed countries given; the limit is {max}")]
    TooManyCountries {
        /// The limit.
        max: usize,
        /// What was given.
        got: usize,
    },
    /// Not a network in CIDR notation (or a single address).
    #[error("'{cidr}' is not a network in CIDR notation")]
    InvalidCidr {
        /// What was given.
        cidr: String,
    },
    /// A network with host bits set.
    #[error("'{cidr}' has host bits set; did you mean {network}?")]
    CidrHostBitsSet {
        /// What was given.
        cidr: String,
        /// The network with the host bits cleared.
        network: String,
    },
    /// Too many IP allow-list entries.
    #[error("{got} networks given; the limit is {max}")]
    TooManyIpRanges {
        /// The limit.
        max: usize,
        /// What was given.
        got: usize,
    },
    /// The member id is or was in use in this tenant.
    #[error("member id {member_id} is already used in this tenant")]
    MemberAlreadyExists {
        /// The id.
        member_id: String,
    },
    /// Another member of this tenant has this e-mail address.
    #[error("{email} is already a member of this tenant ({member_id})")]
    DuplicateMemberEmail {
        /// The address.
        email: String,
        /// The member who has it.
        member_id: String,
    },
    /// The tenant has the most members it can have.
    #[error("the tenant has the maximum of {max} members")]
    TooManyMembers {
        /// The limit.
        max: usize,
    },
    /// No such member in this tenant.
    #[error("member {member_id} is not a member of this tenant")]
    MemberNotFound {
        /// The id.
        member_id: String,
    },
    /// The primary-account lock: this member's role cannot be changed.
    #[error("the role of {member_id} cannot be changed: they are {lock}")]
    PrimaryAccountLocked {
        /// The member.
        member_id: String,
        /// Why.
        lock: PrimaryAccountLock,
    },
    /// The last-admin guard: the tenant would have no active admin left.
    #[error("{member_id} is the last active admin of this tenant")]
    LastActiveAdmin {
        /// The member.
        member_id: String,
    },
    /// The owner cannot be removed; transfer ownership first.
    #[error("{member_id} owns the tenant; transfer ownership before removing them")]
    OwnerCannotBeRemoved {
        /// The owner.
        member_id: String,
    },
    /// Nobody may suspend, log out or remove themself.
    #[error("you cannot {action} yourself")]
    RefusedOnSelf {
        /// The member (the caller).
        member_id: String,
        /// What was asked.
        action: SelfAction,
    },
    /// Suspend of a suspended member.
    #[error("{member_id} is already suspended")]
    MemberAlreadySuspended {
        /// The member.
        member_id: String,
    },
    /// Resume of a member who is not suspended.
    #[error("{member_id} is not suspended")]
    MemberNotSuspended {
        /// The member.
        member_id: String,
    },
    /// Ownership can only go to an active member.
    #[error("ownership can only be transferred to an active member; {member_id} is suspended")]
    TransferTargetNotActive {
        /// The intended owner.
        member_id: String,
    },
    /// The member already owns the tenant.
    #[error("{member_id} already owns the tenant")]
    AlreadyOwner {
        /// The owner.
        member_id: String,
    },
    /// The member is already linked to a different SSO subject.
    #[error("{member_id} is already linked to SSO subject {subject}")]
    MemberAlreadyLinked {
        /// The member.
        member_id: String,
        /// The subject they are linked to.
        subject: String,
    },
    /// Another member of this tenant is linked to this SSO subject.
    #[error("SSO subject {subject} is already linked to {member_id}")]
    SubjectLinkedToAnotherMember {
        /// The subject.
        subject: String,
        /// The member linked to it.
        member_id: String,
    },
    /// An alias for a member without a mailbox (a mailbox-less admin): it would deliver
    /// nowhere.
    #[error("{member_id} has no mailbox for an alias to deliver to")]
    MemberHasNoMailbox {
        /// The member.
        member_id: String,
    },
    /// The member has the most aliases a member can have.
    #[error("{member_id} already has the maximum of {max} aliases")]
    TooManyAliases {
        /// The member.
        member_id: String,
        /// The limit.
        max: usize,
    },
    /// The address is already a member's address, an alias or a list's address in this tenant.
    #[error("{address} is already {holder}")]
    AddressInUse {
        /// The address (canonical form).
        address: String,
        /// What uses it.
        holder: AddressHolder,
    },
    /// The member has no such alias.
    #[error("{alias} is not an alias of {member_id}")]
    AliasNotFound {
        /// The member.
        member_id: String,
        /// The alias asked for (canonical form).
        alias: String,
    },
    /// The list id is or was in use in this tenant.
    #[error("list id {list_id} is already used in this tenant")]
    ListAlreadyExists {
        /// The id.
        list_id: String,
    },
    /// No such distribution list in this tenant.
    #[error("there is no distribution list {list_id} in this tenant")]
    ListNotFound {
        /// The id.
        list_id: String,
    },
    /// The tenant has the most distribution lists it can have.
    #[error("the tenant has the maximum of {max} distribution lists")]
    TooManyLists {
        /// The limit.
        max: usize,
    },
    /// Too few or too many distinct recipients for a distribution list.
    #[error("a distribution list needs {min} to {max} distinct recipients; {got} given")]
    RecipientsOutOfRange {
        /// Distinct recipients given.
        got: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
    /// A distribution list among its own recipients: every message would loop back to it.
    #[error("the list {address} cannot be one of its own recipients")]
    ListIncludesItself {
        /// The list's address.
        address: String,
    },
}
