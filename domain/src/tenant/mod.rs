//! The tenant (a *workspace*): its lifecycle, settings and members, plus the two small
//! aggregates that hold what no single tenant can decide alone (its slug and the platform flag).
//!
//! # Aggregates
//!
//! * [`Tenant`] (aggregate id = the tenant id, a UUID the caller chooses): status lifecycle,
//!   billing info, branding, security policy, members, and the addresses routed besides their
//!   mailboxes (aliases and distribution lists, see [`canonical_address`]). Everything a tenant
//!   can decide from its own history lives here.
//! * [`SlugClaim`] (aggregate id = the slug): slug uniqueness across tenants. A tenant cannot
//!   see other tenants, so uniqueness is a claim on a second aggregate; the ledger's optimistic
//!   concurrency turns concurrent claims of one slug into exactly one winner (the others get a
//!   conflict, and on retry [`SlugClaimError::SlugTaken`]).
//! * [`PlatformFlag`] (aggregate id [`PLATFORM_FLAG_ID`]): which tenant is the platform tenant
//!   (`isPlatformTenant`). One singleton holds it, so the hand-over from the previous holder is
//!   one event and cannot be half done.
//!
//! # How the API drives them
//!
//! Creating a workspace: parse the slug with [`Slug::parse`], claim it ([`SlugClaimCommand::Claim`]),
//! then send [`TenantAction::Create`]; if the tenant refuses, release the claim again. Purging:
//! [`TenantAction::Purge`] emits [`TenantEvent::TenantPurged`] carrying the slug, and the purge
//! process manager answers it with [`SlugClaimCommand::Release`], which makes the slug reusable.
//!
//! # Who may do what
//!
//! Every tenant command names the [`Authority`] it needs ([`TenantAction::authority`]). The
//! aggregate decides tenant-admin-ness from its own member list (the principal matched by its
//! linked SSO subject, or by e-mail while no subject is linked), not from a fact the caller
//! passes: the member list the decision is made on is then the one the events extend, with no
//! read-model lag in between. Platform admins and partner staff are facts of the [`Principal`]
//! (from the access token); sagas act as [`Principal::system`], a platform admin.

mod aggregate;
mod billing;
mod branding;
mod change;
mod command;
mod context;
mod decide;
mod error;
mod event;
mod identity;
mod mail;
mod member;
mod platform_flag;
mod security;
mod slug;
mod slug_claim;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{Tenant, TenantStatus, TENANT_AGGREGATE_TYPE};
pub use billing::{
    BillingChanges, BillingInfo, BillingInfoPatch, MAX_COMPANY_CHARS, MAX_VAT_ID_CHARS,
};
pub use branding::{
    contrast_ratio, parse_hex_colour, readable_accent, relative_luminance, Accent, Branding,
    BrandingChanges, BrandingPatch, EmailTemplate, EmailTemplateKey, TextColour,
    MAX_PRODUCT_NAME_CHARS, MAX_TEMPLATE_BODY_CHARS, MAX_TEMPLATE_SUBJECT_CHARS,
};
pub use change::FieldChange;
pub use command::{CreateTenant, TenantAction, TenantCommand};
pub use context::{is_rfc3339, CommandContext, ContextError, Principal};
pub use decide::decide;
pub use error::{Authority, LifecycleAction, PrimaryAccountLock, SelfAction, TenantError};
pub use event::{
    tenant_upcasters, TenantEvent, MEMBER_SUBJECT_LINKED_VERSION, TENANT_EVENT_TYPES,
    TENANT_EVENT_VERSION,
};
pub use identity::{
    claimed_email_key, claimed_email_spellings, member_email_key, recognises,
    MAX_IDENTITY_EMAIL_BYTES,
};
pub use mail::{
    address_domain, canonical_address, AddressHolder, MailingList, MAX_ALIASES_PER_MEMBER,
    MAX_LISTS_PER_TENANT, MAX_LIST_RECIPIENTS, MIN_LIST_RECIPIENTS,
};
pub use member::{AddressPlacement, Member, MemberStatus, NewMember, Role, MAX_MEMBERS_PER_TENANT};
pub use platform_flag::{
    platform_flag_upcasters, PlatformFlag, PlatformFlagCommand, PlatformFlagError,
    PlatformFlagEvent, PLATFORM_FLAG_AGGREGATE_TYPE, PLATFORM_FLAG_ID,
};
pub use security::{
    IpRange, MfaMode, SecurityPolicy, SecurityPolicyChanges, SecurityPolicyPatch,
    DEFAULT_SESSION_ABSOLUTE_MINUTES, DEFAULT_SESSION_IDLE_MINUTES, MAX_ALLOWED_COUNTRY_ENTRIES,
    MAX_IP_ALLOWLIST_ENTRIES, MAX_SESSION_ABSOLUTE_MINUTES, MAX_SESSION_IDLE_MINUTES,
    MIN_SESSION_IDLE_MINUTES,
};
pub use slug::{Slug, SlugProblem, MAX_SLUG_CHARS, MIN_SLUG_CHARS, RESERVED_SLUGS};
pub use slug_claim::{
    slug_claim_upcasters, SlugClaim, SlugClaimCommand, SlugClaimError, SlugClaimEvent,
    SLUG_CLAIM_AGGREGATE_TYPE,
};
pub use values::{
    is_country_code, is_plausible_email, TextField, COUNTRY_CODES, MAX_DISPLAY_NAME_CHARS,
    MAX_EMAIL_CHARS, MAX_IDENTIFIER_CHARS, MAX_ORGANIZATION_NAME_CHARS, MAX_SEATS, MIN_SEATS,
};
