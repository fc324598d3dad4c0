//! Mail addresses over GraphQL: a workspace's aliases (extra addresses delivering to a
//! member's mailbox) and distribution lists (one address fanning out to many recipients), and
//! the mutations that add, remove, create, re-address and delete them.
//!
//! # Who may
//!
//! * **Read** a workspace's aliases and lists: anyone with standing in the workspace
//!   (operators, the owning partner, its admins and its members): members see where the
//!   workspace's addresses deliver, as in any shared address book.
//! * **Change** them: operators, the owning partner and the workspace's admins (the standing
//!   that also manages its domains, [`authz::may_read_settings`]); the Tenant aggregate checks
//!   the same authority again.
//!
//! # Which domains
//!
//! An alias's or a list's address must lie on the workspace's service domain
//! (`{slug}.{platform domain}`) or on one of its domains in the domain read model; the Tenant
//! aggregate cannot know domains, so the check is made here, before the command. A domain
//! removed between this check and the command is the race `removeDomain` closes from its side:
//! it refuses while an alias or list uses the domain.
//!
//! # Error codes
//!
//! `DOMAIN_NOT_IN_WORKSPACE`, and the mail rules' codes as [`super::error::mail_refusal`] maps
//! them (`INVALID_ADDRESS`, `ADDRESS_IN_USE`, `MEMBER_HAS_NO_MAILBOX`, `TOO_MANY_ALIASES`,
//! `TOO_MANY_LISTS`, `RECIPIENTS_OUT_OF_RANGE`, `LIST_INCLUDES_ITSELF`); an unknown member,
//! alias or list is `NOT_FOUND`. All are declared in [`super::error::Code`].

use async_graphql::{Context, Object, SimpleObject, ID};
use dezky_commands::app::addresses::place_address;
use dezky_domain::tenant::{address_domain, canonical_address, TenantAction, TenantCommand};
use dezky_projections::mail_addresses::{
    aliases_of_tenant, lists_of_tenant, mailing_list, AliasRow, ListRow,
};
use dezky_projections::tenants::TenantRow;

use super::authz::{self, Viewer};
use super::error::{from_aggregate, mail_refusal, ApiError, Code};
use super::schema::{
    api, auth, command_context, find_tenant, managed_tenant, read_your_writes_timeout, Tenant,
};
use dezky_commands::app::retry::{execute_with_retry, RetryError};

type Result<T> = std::result::Result<T, async_graphql::Error>;

// ---------------------------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------------------------

/// An extra address delivering to a member's mailbox.
#[derive(SimpleObject)]
#[graphql(name = "MailAlias")]
pub struct MailAliasGql {
    /// The alias (lower case; punycode for international domains).
    pub alias: String,
    /// The mailbox it delivers to.
    pub mailbox_address: String,
    /// The member whose mailbox that is.
    pub member_id: ID,
}

impl From<AliasRow> for MailAliasGql {
    fn from(row: AliasRow) -> Self {
        Self {
            alias: row.alias,
            mailbox_address: row.mailbox,
            member_id: ID(row.member_id),
        }
    }
}

/// A distribution list: one address fanning out to many recipients.
#[derive(SimpleObject)]
#[graphql(name = "MailingList")]
pub struct MailingListGql {
    /// The list id.
    pub id: ID,
    /// The list's address (lower case; punycode for international domains).
    pub address: String,
    /// The name recipients see.
    pub display_name: String,
    /// Where its mail goes: distinct addresses, in the order they were given.
    pub recipients: Vec<String>,
}

impl From<ListRow> for MailingListGql {
    fn from(row: ListRow) -> Self {
        Self {
            id: ID(row.list_id),
            address: row.address,
            display_name: row.display_name,
            recipients: row.recipients,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

/// Mail fields of [`Tenant`] (resolved from its object in `schema.rs`).
impl Tenant {
    pub(super) async fn aliases_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<Vec<MailAliasGql>, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_tenant(authz::standing(db, viewer, self.row()).await?)?;
        Ok(aliases_of_tenant(db, self.id_str())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub(super) async fn mailing_lists_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<Vec<MailingListGql>, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_tenant(authz::standing(db, viewer, self.row()).await?)?;
        Ok(lists_of_tenant(db, self.id_str())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------------------------

/// Refuses an address (alias or list) whose domain is not the workspace's: its service domain
/// or one of its domains, as the Domain aggregates on the ledger have it (a domain added a
/// moment ago counts; one removed a moment ago does not), never a read model that may lag.
async fn check_domain(ctx: &Context<'_>, tenant: &TenantRow, address: &str) -> Result<()> {
    let address =
        canonical_address(address).map_err(|e| async_graphql::Error::from(mail_refusal(e)))?;
    let api = api(ctx);
    let placement = place_address(
        &api.ledger,
        &tenant.id,
        &tenant.slug,
        &api.platform_domain,
        &address,
    )
    .await
    .map_err(|e| ApiError::internal(&e))?;
    if placement.is_hosted() {
        return Ok(());
    }
    Err(ApiError::new(
        Code::DomainNotInWorkspace,
        format!(
            "{} is not one of this workspace's domains",
            address_domain(&address)
        ),
    )
    .into())
}

/// Runs a tenant command for a mail mutation under the one retry-on-conflict policy (each
/// attempt decided afresh on the stored state), then waits until the read models show it.
async fn run(
    ctx: &Context<'_>,
    viewer: &Viewer,
    tenant_id: &str,
    action: TenantAction,
) -> Result<()> {
    let api = api(ctx);
    let metadata = api.metadata(viewer, tenant_id);
    let command = || TenantCommand {
        ctx: command_context(ctx, viewer),
        action: action.clone(),
    };
    match execute_with_retry(&api.tenants, tenant_id, &metadata, command).await {
        Ok(()) => {}
        Err(RetryError::Refused(error)) => return Err(mail_refusal(error).into()),
        Err(other) => return Err(from_aggregate(other.into_aggregate()).into()),
    }
    api.read_your_writes(read_your_writes_timeout()).await;
    Ok(())
}

/// The answer when the command was recorded but the read model has not shown it within the
/// wait.
fn not_visible_yet() -> async_graphql::Error {
    ApiError::new(
        Code::Unavailable,
        "the change is recorded but not visible yet; reload shortly",
    )
    .into()
}

/// The list as the read model shows it once it has folded the mutation.
async fn list_after_write(
    ctx: &Context<'_>,
    tenant_id: &str,
    list_id: &str,
) -> Result<MailingListGql> {
    match mailing_list(api(ctx).ledger.db(), tenant_id, list_id)
        .await
        .map_err(ApiError::from)?
    {
        Some(row) => Ok(row.into()),
        None => Err(not_visible_yet()),
    }
}

/// Mail address mutations.
#[derive(Default)]
pub struct MailMutation;

#[Object]
impl MailMutation {
    /// Adds an alias delivering to a member's mailbox (the workspace's admins, the owning
    /// partner, operators). The alias must be on one of the workspace's domains and not yet
    /// routed in the workspace; adding an alias the member already has changes nothing.
    async fn add_alias(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
        alias: String,
    ) -> Result<MailAliasGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        check_domain(ctx, &tenant, &alias).await?;
        let canonical =
            canonical_address(&alias).map_err(|e| async_graphql::Error::from(mail_refusal(e)))?;
        let action = TenantAction::AddAlias {
            member_id: member_id.0.clone(),
            alias,
        };
        run(ctx, viewer, &tenant.id, action).await?;
        aliases_of_tenant(api(ctx).ledger.db(), &tenant.id)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .find(|row| row.alias == canonical && row.member_id == member_id.0)
            .map(Into::into)
            .ok_or_else(not_visible_yet)
    }

    /// Removes one of a member's aliases (the workspace's admins, the owning partner,
    /// operators). Returns the workspace.
    async fn remove_alias(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
        alias: String,
    ) -> Result<Tenant> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let action = TenantAction::RemoveAlias {
            member_id: member_id.0,
            alias,
        };
        run(ctx, viewer, &tenant.id, action).await?;
        Ok(Tenant::from_row(
            find_tenant(ctx, Some(&tenant.id), None).await?,
        ))
    }

    /// Creates a distribution list (the workspace's admins, the owning partner, operators).
    /// Its address must be on one of the workspace's domains and not yet routed in the
    /// workspace; recipients may be any addresses, duplicates are dropped.
    async fn create_mailing_list(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        address: String,
        display_name: String,
        recipients: Vec<String>,
    ) -> Result<MailingListGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        check_domain(ctx, &tenant, &address).await?;
        let list_id = api(ctx).ids.next();
        let action = TenantAction::CreateList {
            list_id: list_id.clone(),
            address,
            display_name,
            recipients,
        };
        run(ctx, viewer, &tenant.id, action).await?;
        list_after_write(ctx, &tenant.id, &list_id).await
    }

    /// Replaces a distribution list's recipients, whole (the workspace's admins, the owning
    /// partner, operators).
    async fn set_mailing_list_recipients(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        list_id: ID,
        recipients: Vec<String>,
    ) -> Result<MailingListGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let action = TenantAction::SetListRecipients {
            list_id: list_id.0.clone(),
            recipients,
        };
        run(ctx, viewer, &tenant.id, action).await?;
        list_after_write(ctx, &tenant.id, &list_id).await
    }

    /// Deletes a distribution list (the workspace's admins, the owning partner, operators).
    /// Returns the workspace.
    async fn delete_mailing_list(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        list_id: ID,
    ) -> Result<Tenant> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let action = TenantAction::DeleteList { list_id: list_id.0 };
        run(ctx, viewer, &tenant.id, action).await?;
        Ok(Tenant::from_row(
            find_tenant(ctx, Some(&tenant.id), None).await?,
        ))
    }
}
