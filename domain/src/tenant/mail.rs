//! Addresses a workspace routes besides its members' mailboxes: **aliases** (an extra address
//! delivering to one member's mailbox) and **distribution lists** (one address fanning out to
//! many recipients).
//!
//! Every address is kept in one canonical form ([`canonical_address`]): the local part in lower
//! case, the domain in its canonical ASCII form (the one `crate::domains::DomainName` gives
//! the workspace's domains). Uniqueness within a tenant is then a comparison of strings, and the
//! API's check that an address lies on one of the workspace's domains compares the address's
//! domain with those names as they are stored.
//!
//! Which domains belong to the workspace is not the tenant's knowledge (domains are their own
//! aggregates): the API checks that before it sends the command.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::error::TenantError;
use super::values::is_plausible_email;
use crate::domains::DomainName;

/// Most aliases one member can have. The mail server accepts more, but an address book of
/// aliases is a sign of a shared mailbox that should be a list; it also bounds the events a
/// member's history replays.
pub const MAX_ALIASES_PER_MEMBER: usize = 20;
/// Most distinct recipients of one distribution list (each `MailingListRecipientsSet` carries
/// the whole list, so this also bounds an event's size).
pub const MAX_LIST_RECIPIENTS: usize = 500;
/// Fewest recipients of a distribution list: a list delivering nowhere loses mail silently.
pub const MIN_LIST_RECIPIENTS: usize = 1;
/// Most distribution lists one tenant can have; it bounds the aggregate's size.
pub const MAX_LISTS_PER_TENANT: usize = 200;

/// A distribution list of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingList {
    /// The list id (chosen by the caller, never reused in the tenant).
    pub id: String,
    /// The list's own address (canonical form).
    pub address: String,
    /// The name recipients see as the sender's list.
    pub display_name: String,
    /// Where mail to the list goes: distinct canonical addresses, in the order first given.
    pub recipients: Vec<String>,
}

/// What already uses an address in a tenant (in [`TenantError::AddressInUse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressHolder {
    /// A member's own address (their sign-in and mailbox address).
    Member {
        /// The member.
        member_id: String,
    },
    /// An alias of a member's mailbox.
    Alias {
        /// The member whose mailbox it delivers to.
        member_id: String,
    },
    /// A distribution list's address.
    List {
        /// The list.
        list_id: String,
    },
}

impl std::fmt::Display for AddressHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressHolder::Member { member_id } => write!(f, "the address of member {member_id}"),
            AddressHolder::Alias { member_id } => write!(f, "an alias of member {member_id}"),
            AddressHolder::List { list_id } => write!(f, "the address of list {list_id}"),
        }
    }
}

/// An e-mail address in canonical form: trimmed, the local part lower-cased, the domain mapped
/// to its canonical ASCII form (punycode for international names). Refuses anything that is
/// not an address with [`TenantError::InvalidEmail`].
///
/// The local part is lower-cased although RFC 5321 lets a server treat its case as
/// significant: no mail system dezky runs does, and `Sales@` and `sales@` as two addresses
/// would route one name two ways.
pub fn canonical_address(value: &str) -> Result<String, TenantError> {
    let trimmed = value.trim();
    let invalid = || TenantError::InvalidEmail {
        email: trimmed.to_owned(),
    };
    if !is_plausible_email(trimmed) {
        return Err(invalid());
    }
    let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
    let domain = DomainName::parse(domain).map_err(|_| invalid())?;
    Ok(format!("{}@{}", local.to_lowercase(), domain.as_str()))
}

/// The domain of an address in canonical form (everything after the last `@`).
pub fn address_domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// The form an address is compared in: its canonical form, or, for a stored address that does
/// not parse (a member's sign-in address accepted before a rule change), its trimmed lower case.
pub(crate) fn address_key(value: &str) -> String {
    canonical_address(value).unwrap_or_else(|_| value.trim().to_lowercase())
}

/// Recipients as a list stores them: each in canonical form, duplicates dropped (the first
/// occurrence keeps its place), between [`MIN_LIST_RECIPIENTS`] and [`MAX_LIST_RECIPIENTS`].
pub(crate) fn checked_recipients(values: Vec<String>) -> Result<Vec<String>, TenantError> {
    let mut seen = HashSet::new();
    let mut recipients = Vec::new();
    for value in values {
        let address = canonical_address(&value)?;
        if seen.insert(address.clone()) {
            recipients.push(address);
        }
    }
    if !(MIN_LIST_RECIPIENTS..=MAX_LIST_RECIPIENTS).contains(&recipients.len()) {
        return Err(TenantError::RecipientsOutOfRange {
            got: recipients.len(),
            min: MIN_LIST_RECIPIENTS,
            max: MAX_LIST_RECIPIENTS,
        });
    }
    Ok(recipients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased_with_a_canonical_domain() {
        assert_eq!(
            canonical_address("  Sales@ACME.eu "),
            Ok("sales@acme.eu".to_owned())
        );
        assert_eq!(
            canonical_address("Jürgen@Müller.de"),
            Ok("jürgen@xn--mller-kva.de".to_owned())
        );
    }

    #[test]
    fn text_that_is_no_address_is_refused() {
        for value in ["", "sales", "sales@acme", "sa les@acme.eu", "@acme.eu"] {
            assert_eq!(
                canonical_address(value),
                Err(TenantError::InvalidEmail {
                    email: value.trim().to_owned()
                }),
                "{value}"
            );
        }
    }

    #[test]
    fn the_domain_of_an_address_is_what_follows_the_last_at() {
        assert_eq!(address_domain("sales@acme.eu"), "acme.eu");
        assert_eq!(address_domain("no-at"), "");
    }

    #[test]
    fn recipients_are_deduplicated_keeping_the_first_occurrence_in_place() {
        let recipients = checked_recipients(vec![
            "b@acme.eu".into(),
            "A@acme.eu".into(),
            " b@ACME.eu".into(),
            "a@acme.eu".into(),
        ]);
        assert_eq!(
            recipients,
            Ok(vec!["b@acme.eu".to_owned(), "a@acme.eu".to_owned()])
        );
    }
}
