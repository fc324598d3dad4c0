//! Commands a tenant accepts: the context envelope and the actions.

use super::billing::BillingInfoPatch;
use super::branding::BrandingPatch;
use super::context::CommandContext;
use super::error::Authority;
use super::member::{AddressPlacement, NewMember, Role};
use super::security::SecurityPolicyPatch;

/// A tenant command: who acts, when, and what they ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCommand {
    /// The acting principal and the time.
    pub ctx: CommandContext,
    /// What is asked for.
    pub action: TenantAction,
}

impl TenantCommand {
    /// A command for `action` in `ctx`.
    pub fn new(ctx: CommandContext, action: TenantAction) -> Self {
        Self { ctx, action }
    }
}

/// The data of [`TenantAction::Create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTenant {
    /// The tenant id; must equal the aggregate id (a UUID chosen by the caller).
    pub tenant_id: String,
    /// The organization's name, at most 200 characters.
    pub organization_name: String,
    /// The slug (see [`crate::tenant::Slug`]); claim it with [`crate::tenant::SlugClaim`] first.
    pub slug: String,
    /// The plan id from the price catalog.
    pub plan: String,
    /// Seats, 1 to 10 000.
    pub seats: u32,
    /// The first admin: becomes the owner, mailbox-less until a mailbox is created.
    pub first_admin: NewMember,
    /// The partner (reseller) that owns the tenant, if it is sold through one.
    pub partner_id: Option<String>,
}

/// What a tenant command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantAction {
    /// Create the tenant with its first admin; it starts pending provisioning.
    Create(CreateTenant),
    /// Record that provisioning finished (sent by the provisioning saga).
    Provision,
    /// Suspend an active tenant.
    Suspend,
    /// Resume a suspended tenant.
    Resume,
    /// Soft-delete the tenant (reversible by an operator; the slug stays claimed).
    SoftDelete,
    /// Purge a soft-deleted tenant for good; its slug becomes reusable.
    Purge,
    /// Update billing details.
    UpdateBillingInfo(BillingInfoPatch),
    /// Update branding.
    UpdateBranding(BrandingPatch),
    /// Update the security policy.
    UpdateSecurityPolicy(SecurityPolicyPatch),
    /// Invite an admin who signs in with an outside address (no mailbox).
    InviteAdmin(NewMember),
    /// Add a member: with a workspace mailbox when their address is on one of the
    /// workspace's domains, without one when it is on an outside domain; refused when it is
    /// on another workspace's domain or the platform's.
    AddMember {
        /// The member.
        member: NewMember,
        /// Their role.
        role: Role,
        /// Whose domain the member's address is on, as the write side found it (the use case
        /// loads the Domain aggregate; the tenant cannot know another aggregate's state).
        placement: AddressPlacement,
    },
    /// Change a member's role.
    ChangeMemberRole {
        /// The member.
        member_id: String,
        /// The new role.
        role: Role,
    },
    /// Make an active member the owner (and an admin); the previous owner stays an admin.
    TransferOwnership {
        /// The new owner.
        member_id: String,
    },
    /// Suspend a member.
    SuspendMember {
        /// The member.
        member_id: String,
    },
    /// Resume a suspended member.
    ResumeMember {
        /// The member.
        member_id: String,
    },
    /// End all of a member's sessions.
    ForceLogout {
        /// The member.
        member_id: String,
    },
    /// Give a member a new one-time password.
    ResetPassword {
        /// The member.
        member_id: String,
    },
    /// Remove a member from the tenant.
    RemoveMember {
        /// The member.
        member_id: String,
    },
    /// Link a member to their SSO identity, the pair (issuer, subject).
    LinkMemberSubject {
        /// The member.
        member_id: String,
        /// The identity provider's subject.
        subject: String,
        /// The issuer vouching for `subject` (the API fills in the one it trusts).
        issuer: Option<String>,
    },
    /// Record that a member's mailbox now exists (sent by the member saga).
    RecordMailboxCreated {
        /// The member.
        member_id: String,
    },
    /// Add an alias: an extra address delivering to a member's mailbox. The API has checked
    /// that its domain belongs to the workspace.
    AddAlias {
        /// The member (who must have a mailbox).
        member_id: String,
        /// The alias address, in any case; stored in canonical form.
        alias: String,
    },
    /// Remove one of a member's aliases.
    RemoveAlias {
        /// The member.
        member_id: String,
        /// The alias address, in any case.
        alias: String,
    },
    /// Create a distribution list. The API has checked that its address's domain belongs to
    /// the workspace.
    CreateList {
        /// The list id (chosen by the caller, never reused in the tenant).
        list_id: String,
        /// The list's address, in any case; stored in canonical form.
        address: String,
        /// The name recipients see.
        display_name: String,
        /// Where mail to the list goes (any addresses, duplicates dropped).
        recipients: Vec<String>,
    },
    /// Replace a distribution list's recipients.
    SetListRecipients {
        /// The list.
        list_id: String,
        /// The new recipients, whole (duplicates dropped).
        recipients: Vec<String>,
    },
    /// Delete a distribution list.
    DeleteList {
        /// The list.
        list_id: String,
    },
}

impl TenantAction {
    /// Who may ask for this action. For [`TenantAction::Create`], the owning partner is the
    /// one named in the command.
    pub fn authority(&self) -> Authority {
        match self {
            TenantAction::Provision
            | TenantAction::Purge
            | TenantAction::RecordMailboxCreated { .. } => Authority::PlatformAdmin,
            TenantAction::Create(_)
            | TenantAction::Suspend
            | TenantAction::Resume
            | TenantAction::SoftDelete => Authority::PlatformAdminOrOwningPartner,
            TenantAction::UpdateBillingInfo(_)
            | TenantAction::UpdateBranding(_)
            | TenantAction::UpdateSecurityPolicy(_)
            | TenantAction::InviteAdmin(_)
            | TenantAction::AddMember { .. }
            | TenantAction::ChangeMemberRole { .. }
            | TenantAction::SuspendMember { .. }
            | TenantAction::ResumeMember { .. }
            | TenantAction::ForceLogout { .. }
            | TenantAction::ResetPassword { .. }
            | TenantAction::RemoveMember { .. }
            | TenantAction::AddAlias { .. }
            | TenantAction::RemoveAlias { .. }
            | TenantAction::CreateList { .. }
            | TenantAction::SetListRecipients { .. }
            | TenantAction::DeleteList { .. } => Authority::TenantManager,
            TenantAction::TransferOwnership { .. } => Authority::PlatformAdminOrTenantAdmin,
            TenantAction::LinkMemberSubject { .. } => Authority::PlatformAdminOrTheMember,
        }
    }
}
