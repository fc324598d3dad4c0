//! Mail address decisions: aliases of members' mailboxes and distribution lists.
//!
//! One rule spans all of them: an address routes one way in a tenant, so an alias or a list
//! address may not be a member's address, another alias or another list's address. Whether the
//! address's domain belongs to the workspace is checked by the API before the command arrives
//! (domains are their own aggregates).

use super::super::aggregate::Tenant;
use super::super::error::TenantError;
use super::super::event::TenantEvent;
use super::super::mail::{
    canonical_address, checked_recipients, MailingList, MAX_ALIASES_PER_MEMBER,
    MAX_LISTS_PER_TENANT,
};
use super::super::values::{identifier, required_text, TextField, MAX_DISPLAY_NAME_CHARS};
use super::members::find;

/// Adds an alias to a member's mailbox. Adding an alias the member already has changes
/// nothing, so a retried request is harmless.
pub(super) fn add_alias(
    state: &Tenant,
    member_id: &str,
    alias: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    let alias = canonical_address(alias)?;
    if !member.has_mailbox {
        return Err(TenantError::MemberHasNoMailbox {
            member_id: member.id.clone(),
        });
    }
    if state.aliases.get(&alias) == Some(&member.id) {
        return Ok(Vec::new());
    }
    if let Some(holder) = state.address_holder(&alias) {
        return Err(TenantError::AddressInUse {
            address: alias,
            holder,
        });
    }
    if state.alias_count(&member.id) >= MAX_ALIASES_PER_MEMBER {
        return Err(TenantError::TooManyAliases {
            member_id: member.id.clone(),
            max: MAX_ALIASES_PER_MEMBER,
        });
    }
    Ok(vec![TenantEvent::MemberAliasAdded {
        member_id: member.id.clone(),
        address: member.mailbox_address(),
        alias,
    }])
}

/// Removes one of a member's aliases.
pub(super) fn remove_alias(
    state: &Tenant,
    member_id: &str,
    alias: &str,
) -> Result<Vec<TenantEvent>, TenantError> {
    let member = find(state, member_id)?;
    let alias = canonical_address(alias)?;
    if state.aliases.get(&alias) != Some(&member.id) {
        return Err(TenantError::AliasNotFound {
            member_id: member.id.clone(),
            alias,
        });
    }
    Ok(vec![TenantEvent::MemberAliasRemoved {
        member_id: member.id.clone(),
        address: member.mailbox_address(),
        alias,
    }])
}

/// Creates a distribution list.
pub(super) fn create_list(
    state: &Tenant,
    list_id: String,
    address: &str,
    display_name: &str,
    recipients: Vec<String>,
) -> Result<Vec<TenantEvent>, TenantError> {
    let list_id = identifier(TextField::ListId, list_id)?;
    if state.mailing_lists.contains_key(&list_id) || state.retired_list_ids.contains(&list_id) {
        return Err(TenantError::ListAlreadyExists { list_id });
    }
    let address = canonical_address(address)?;
    let display_name = required_text(TextField::DisplayName, display_name, MAX_DISPLAY_NAME_CHARS)?;
    let recipients = checked_recipients(recipients)?;
    refuse_self_delivery(&address, &recipients)?;
    if let Some(holder) = state.address_holder(&address) {
        return Err(TenantError::AddressInUse { address, holder });
    }
    if state.mailing_lists.len() >= MAX_LISTS_PER_TENANT {
        return Err(TenantError::TooManyLists {
            max: MAX_LISTS_PER_TENANT,
        });
    }
    Ok(vec![TenantEvent::MailingListCreated {
        list_id,
        address,
        display_name,
        recipients,
    }])
}

/// Replaces a list's recipients; the same recipients in the same order change nothing.
pub(super) fn set_list_recipients(
    state: &Tenant,
    list_id: &str,
    recipients: Vec<String>,
) -> Result<Vec<TenantEvent>, TenantError> {
    let list = find_list(state, list_id)?;
    let recipients = checked_recipients(recipients)?;
    refuse_self_delivery(&list.address, &recipients)?;
    if recipients == list.recipients {
        return Ok(Vec::new());
    }
    Ok(vec![TenantEvent::MailingListRecipientsSet {
        list_id: list.id.clone(),
        address: list.address.clone(),
        recipients,
    }])
}

/// Deletes a list.
pub(super) fn delete_list(state: &Tenant, list_id: &str) -> Result<Vec<TenantEvent>, TenantError> {
    let list = find_list(state, list_id)?;
    Ok(vec![TenantEvent::MailingListDeleted {
        list_id: list.id.clone(),
        address: list.address.clone(),
    }])
}

fn find_list<'a>(state: &'a Tenant, list_id: &str) -> Result<&'a MailingList, TenantError> {
    state
        .mailing_lists
        .get(list_id)
        .ok_or_else(|| TenantError::ListNotFound {
            list_id: list_id.to_owned(),
        })
}

/// A list among its own recipients would send every message back to itself.
fn refuse_self_delivery(address: &str, recipients: &[String]) -> Result<(), TenantError> {
    if recipients.iter().any(|r| r == address) {
        return Err(TenantError::ListIncludesItself {
            address: address.to_owned(),
        });
    }
    Ok(())
}
