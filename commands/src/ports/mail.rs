//! The mail server port: what the product needs from the server that hosts its customers'
//! mail domains, mailboxes and lists (Stalwart in production).
//!
//! Everything is named by what the product knows — domain names and addresses — never by the
//! server's own ids, so a saga step can be retried, or its unknown outcome reconciled, from
//! what is on the ledger alone. The rules every implementation keeps (the contract suite in
//! `tests/tests/stalwart_contract.rs` checks them):
//!
//! * **`ensure_*` is look-up-before-create**: calling it twice leaves one object, and a create
//!   that lost a race to an identical one is answered with the object, not an error.
//! * **Deletes are idempotent**: deleting what is not there is `Ok`.
//! * **Reads reconcile**: after [`MailError::OutcomeUnknown`], the matching read
//!   ([`MailServer::domain`], [`MailServer::account`], [`MailServer::mailing_list`],
//!   [`MailServer::default_address_book`]) says whether the write took effect.
//! * **A system that is not configured says so** ([`MailError::NotConfigured`]) for every
//!   operation; it never pretends to succeed.

use std::future::Future;

use dezky_domain::domains::ExpectedRecord;

use super::Secret;

/// A mail domain as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailDomain {
    /// The domain name (`acme.eu`).
    pub name: String,
    /// Selectors of the DKIM keys the server signs with; empty until the server's key
    /// generation has run (it runs after the domain is created, so a saga polls
    /// [`MailServer::domain`] until [`MailDomain::dkim_ready`]).
    pub dkim_selectors: Vec<String>,
    /// The DNS records the server asks the domain to publish, from its zone file, in the
    /// server's order.
    pub records: Vec<ExpectedRecord>,
}

impl MailDomain {
    /// Whether the DKIM keys exist, and so the records include their TXT entries.
    pub fn dkim_ready(&self) -> bool {
        !self.dkim_selectors.is_empty()
    }
}

/// A mailbox to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The primary address (`ann@acme.eu`); its domain must exist on the server.
    pub address: String,
    /// The initial password.
    pub password: Secret,
    /// A display name.
    pub display_name: Option<String>,
    /// Further addresses delivering to the mailbox; each domain must exist on the server.
    pub aliases: Vec<String>,
}

/// A mailbox as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAccount {
    /// The primary address, lower case.
    pub address: String,
    /// The display name.
    pub display_name: Option<String>,
    /// Alias addresses, lower case, sorted.
    pub aliases: Vec<String>,
    /// Whether login and delivery are stopped ([`MailServer::freeze_account`]).
    pub frozen: bool,
}

/// A distribution list to create or bring up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailingList {
    /// The list's address (`team@acme.eu`); its domain must exist on the server.
    pub address: String,
    /// A display name.
    pub display_name: Option<String>,
    /// Where mail to the list goes (any addresses, on the server or not).
    pub recipients: Vec<String>,
}

/// A distribution list as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailingList {
    /// The list's address, lower case.
    pub address: String,
    /// The display name.
    pub display_name: Option<String>,
    /// The recipients, sorted.
    pub recipients: Vec<String>,
}

/// A mailbox's address book as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBook {
    /// Its name.
    pub name: String,
    /// Whether it is the mailbox's default address book (the one CardDAV clients and the
    /// server's own contact features use when none is named).
    pub is_default: bool,
}

/// The name the product gives the address book it creates for every mailbox.
pub const DEFAULT_ADDRESS_BOOK_NAME: &str = "Contacts";

/// Why the server refused a change, in the product's words (the server's own error type
/// travels in [`MailError::Rejected`]'s `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// A value the server does not accept (a malformed name or address, a missing field).
    InvalidValue,
    /// A reference to something that does not exist (an address on an unknown domain).
    UnknownReference,
    /// The object the change is about does not exist.
    NotFound,
    /// Any other refusal.
    Other,
}

/// What can go wrong talking to the mail server. Only [`MailError::Unavailable`] is worth
/// retrying as is; after [`MailError::OutcomeUnknown`] the caller reads before retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// No mail server is configured; nothing was attempted.
    #[error("the mail server is not configured")]
    NotConfigured,
    /// The server could not be reached or answered that it cannot serve now (connection
    /// refused, HTTP 5xx, 429); nothing was applied. Retryable.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
    /// The request may have been applied: the connection was lost after it was sent, or no
    /// answer came in time. Read the object to learn which.
    #[error("the mail server's answer was lost; the change may have been applied: {0}")]
    OutcomeUnknown(String),
    /// The server refused the change. Retrying the same request will not help.
    #[error("the mail server refused the change ({kind:?}): {detail}")]
    Rejected {
        /// What kind of refusal.
        kind: RejectionKind,
        /// The server's own words (its error type and description).
        detail: String,
    },
    /// The name or address is already taken by another object (another account's alias, a
    /// list, a domain alias).
    #[error("already taken on the mail server: {0}")]
    Conflict(String),
    /// The object is still used by others (a domain with mailboxes, lists or aliases).
    #[error("still in use on the mail server: {0}")]
    InUse(String),
    /// The server refused the configured credentials.
    #[error("the mail server refused the configured credentials")]
    Unauthorized,
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the mail server: {0}")]
    Protocol(String),
}

impl MailError {
    /// Whether the same call may simply be made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MailError::Unavailable(_))
    }
}

/// What the product needs from a mail server. Addresses and domain names are compared
/// case-insensitively; answers carry them in lower case.
pub trait MailServer: Send + Sync {
    /// Creates the domain unless it exists (with the server's automatic DKIM keys) and
    /// returns it as it now is.
    fn ensure_domain(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<MailDomain, MailError>> + Send;

    /// The domain with its DKIM readiness and expected DNS records, or `None` if the server
    /// does not have it.
    fn domain(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<MailDomain>, MailError>> + Send;

    /// Removes the domain and its DKIM keys. [`MailError::InUse`] while mailboxes, lists or
    /// aliases still use it (and then the DKIM keys are kept). `Ok` if it is not there.
    fn destroy_domain(&self, name: &str) -> impl Future<Output = Result<(), MailError>> + Send;

    /// Creates the mailbox unless an account with that address exists, and returns it as it
    /// now is. An existing account is left as it is: a retried create must not reset a
    /// password its owner may already have changed.
    fn ensure_account(
        &self,
        account: &NewAccount,
    ) -> impl Future<Output = Result<MailAccount, MailError>> + Send;

    /// The mailbox whose primary address is `address`, or `None`.
    fn account(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Option<MailAccount>, MailError>> + Send;

    /// Replaces the mailbox's password.
    fn set_password(
        &self,
        address: &str,
        password: &Secret,
    ) -> impl Future<Output = Result<(), MailError>> + Send;

    /// Adds an alias address to the mailbox; `Ok` if it already has it.
    fn add_alias(
        &self,
        address: &str,
        alias: &str,
    ) -> impl Future<Output = Result<MailAccount, MailError>> + Send;

    /// Removes an alias address from the mailbox; `Ok` if it does not have it.
    fn remove_alias(
        &self,
        address: &str,
        alias: &str,
    ) -> impl Future<Output = Result<MailAccount, MailError>> + Send;

    /// Stops login, sending and delivery for the mailbox, keeping its password and mail.
    fn freeze_account(&self, address: &str) -> impl Future<Output = Result<(), MailError>> + Send;

    /// Undoes [`MailServer::freeze_account`].
    fn unfreeze_account(&self, address: &str)
        -> impl Future<Output = Result<(), MailError>> + Send;

    /// Deletes the mailbox; `Ok` if it is not there.
    fn delete_account(&self, address: &str) -> impl Future<Output = Result<(), MailError>> + Send;

    /// Creates the list unless it exists, then brings its display name and recipients to
    /// what `list` says, and returns it as it now is.
    fn ensure_mailing_list(
        &self,
        list: &NewMailingList,
    ) -> impl Future<Output = Result<MailingList, MailError>> + Send;

    /// The list at `address`, or `None`.
    fn mailing_list(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Option<MailingList>, MailError>> + Send;

    /// Deletes the list; `Ok` if it is not there.
    fn delete_mailing_list(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<(), MailError>> + Send;

    /// Gives the mailbox at `address` a default address book unless it has one (named
    /// [`DEFAULT_ADDRESS_BOOK_NAME`]; an existing address book is made the default when none
    /// is), and returns it. Without it, the server answers CardDAV clients' first request with
    /// a 404 instead of an empty address book (the seed's Exchange-login failure). A mailbox
    /// that does not exist is [`MailError::Rejected`] with [`RejectionKind::NotFound`].
    fn ensure_default_address_book(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<AddressBook, MailError>> + Send;

    /// The default address book of the mailbox at `address`; `None` when it has none, or when
    /// there is no such mailbox.
    fn default_address_book(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Option<AddressBook>, MailError>> + Send;
}
