//! What a saga step asks of an external system, as recorded in the effect's intent, and how
//! the worker performs it and reads it back.
//!
//! The request is the whole of what the step needs: the worker performs an effect from its
//! intent on the ledger alone, so a restart, another instance or an operator's retry does
//! exactly what was intended. Every write has a read that says whether it took effect; that
//! read settles an unknown outcome (a timeout, a connection lost after sending) instead of a
//! blind re-send.

use dezky_domain::domains::ExpectedRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ports::dns::{DnsCheck, DnsCheckError};
use crate::ports::mail::{
    AddressBook, MailDomain, MailError, MailServer, NewAccount, NewMailingList, RejectionKind,
};
use crate::ports::Secret;

/// The external system a request goes to (the intent's `system`).
pub const SYSTEM_MAIL: &str = "stalwart";
/// DNS, for verification reads.
pub const SYSTEM_DNS: &str = "dns";

/// A request to the mail server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MailRequest {
    /// Create the domain (look-up-before-create).
    EnsureDomain {
        /// The domain.
        name: String,
    },
    /// Read the domain's records; fails (retryably) until its DKIM keys exist, which the
    /// server creates later in an asynchronous task.
    DomainRecords {
        /// The domain.
        name: String,
    },
    /// Delete the domain.
    DestroyDomain {
        /// The domain.
        name: String,
    },
    /// Create a mailbox (look-up-before-create). Its password is random and never recorded:
    /// people sign in through SSO, and a password reset sets a new one.
    EnsureAccount {
        /// The address.
        address: String,
        /// The display name.
        display_name: Option<String>,
    },
    /// Add an alias to a mailbox.
    AddAlias {
        /// The mailbox.
        address: String,
        /// The alias.
        alias: String,
    },
    /// Remove an alias from a mailbox.
    RemoveAlias {
        /// The mailbox.
        address: String,
        /// The alias.
        alias: String,
    },
    /// Stop a mailbox from signing in and sending (mail is kept).
    FreezeAccount {
        /// The mailbox.
        address: String,
    },
    /// Undo a freeze.
    UnfreezeAccount {
        /// The mailbox.
        address: String,
    },
    /// Delete a mailbox.
    DeleteAccount {
        /// The mailbox.
        address: String,
    },
    /// Create a distribution list.
    EnsureList {
        /// Its address.
        address: String,
        /// Its display name.
        display_name: Option<String>,
        /// Who receives its mail.
        recipients: Vec<String>,
    },
    /// Delete a distribution list.
    DeleteList {
        /// Its address.
        address: String,
    },
    /// Give a mailbox its default address book (look-up-before-create).
    EnsureDefaultAddressBook {
        /// The mailbox.
        address: String,
    },
}

impl MailRequest {
    /// Whether performing it changes nothing (so an answer lost on the way back is simply
    /// asked again rather than reconciled).
    pub fn is_read(&self) -> bool {
        matches!(self, MailRequest::DomainRecords { .. })
    }
}

/// A DNS request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DnsRequest {
    /// Check a domain's expected records.
    CheckRecords {
        /// The domain.
        domain: String,
        /// What it should publish.
        expected: Vec<ExpectedRecord>,
    },
}

/// Any request, by system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// To the mail server.
    Mail(MailRequest),
    /// To DNS.
    Dns(DnsRequest),
}

impl Request {
    /// Reads a request from an intent's `system` and `request`.
    pub fn parse(system: &str, request: &Value) -> Result<Self, String> {
        match system {
            SYSTEM_MAIL => serde_json::from_value(request.clone())
                .map(Request::Mail)
                .map_err(|e| format!("unreadable mail request: {e}")),
            SYSTEM_DNS => serde_json::from_value(request.clone())
                .map(Request::Dns)
                .map_err(|e| format!("unreadable DNS request: {e}")),
            other => Err(format!("no adapter for the system {other:?}")),
        }
    }

    /// The system name for the intent.
    pub fn system(&self) -> &'static str {
        match self {
            Request::Mail(_) => SYSTEM_MAIL,
            Request::Dns(_) => SYSTEM_DNS,
        }
    }

    /// The request as recorded in the intent.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Request::Mail(r) => serde_json::to_value(r),
            Request::Dns(r) => serde_json::to_value(r),
        };
        value.unwrap_or(Value::Null)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; what the system answered (ids and records, never secrets).
    Done(Value),
    /// Not applied.
    Failed {
        /// Why.
        error: String,
        /// Whether another attempt can help.
        retryable: bool,
    },
    /// Perhaps applied: reconcile by reading back.
    Unknown(String),
    /// The system is not configured.
    NotConfigured,
}

/// What reading back after an unknown outcome found.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadBack {
    /// The effect is in place; what was found (the same shape as a success's result).
    Applied(Value),
    /// It is not; what was found.
    NotApplied(Value),
}

/// The systems the worker reaches.
pub struct Systems<M, D> {
    /// The mail server.
    pub mail: M,
    /// DNS.
    pub dns: D,
}

fn domain_result(domain: &MailDomain) -> Value {
    json!({
        "name": domain.name,
        "dkimSelectors": domain.dkim_selectors,
        "records": domain.records,
    })
}

fn address_book_result(address: &str, book: &AddressBook) -> Value {
    json!({ "address": address, "addressBook": book.name, "isDefault": book.is_default })
}

fn mail_outcome(error: MailError, read: bool) -> Outcome {
    match error {
        MailError::NotConfigured => Outcome::NotConfigured,
        // A read changes nothing, so a lost answer is a failure to ask again.
        MailError::OutcomeUnknown(reason) if read => Outcome::Failed {
            error: reason,
            retryable: true,
        },
        MailError::OutcomeUnknown(reason) => Outcome::Unknown(reason),
        // Wrong credentials get fixed by an operator; the effect waits through its retries
        // (and, once out of them, for an operator's retry) rather than failing for good.
        MailError::Unauthorized | MailError::InUse(_) => Outcome::Failed {
            error: error.to_string(),
            retryable: true,
        },
        other => Outcome::Failed {
            retryable: other.is_retryable(),
            error: other.to_string(),
        },
    }
}

fn random_password() -> Secret {
    use rand_core::RngCore;
    let mut bytes = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut bytes);
    Secret::new(hex::encode(bytes))
}

impl<M: MailServer, D: DnsCheck> Systems<M, D> {
    /// Performs `request` once.
    pub async fn perform(&self, request: &Request) -> Outcome {
        match request {
            Request::Mail(r) => self.perform_mail(r).await,
            Request::Dns(DnsRequest::CheckRecords { expected, .. }) => {
                match self.dns.check(expected).await {
                    Ok(checks) => Outcome::Done(json!({ "checks": checks })),
                    Err(DnsCheckError::NotConfigured) => Outcome::NotConfigured,
                    Err(DnsCheckError::Unavailable(e)) => Outcome::Failed {
                        error: format!("DNS did not answer: {e}"),
                        retryable: true,
                    },
                }
            }
        }
    }

    async fn perform_mail(&self, request: &MailRequest) -> Outcome {
        let mail = &self.mail;
        let result = match request {
            MailRequest::EnsureDomain { name } => {
                mail.ensure_domain(name).await.map(|d| domain_result(&d))
            }
            MailRequest::DomainRecords { name } => match mail.domain(name).await {
                Ok(Some(domain)) if domain.dkim_ready() => Ok(domain_result(&domain)),
                Ok(Some(_)) => {
                    return Outcome::Failed {
                        error: format!("the DKIM keys of {name} do not exist yet"),
                        retryable: true,
                    }
                }
                Ok(None) => {
                    return Outcome::Failed {
                        error: format!("{name} is not on the mail server"),
                        retryable: true,
                    }
                }
                Err(e) => Err(e),
            },
            MailRequest::DestroyDomain { name } => mail
                .destroy_domain(name)
                .await
                .map(|()| json!({ "destroyed": name })),
            MailRequest::EnsureAccount {
                address,
                display_name,
            } => {
                let account = NewAccount {
                    address: address.clone(),
                    password: random_password(),
                    display_name: display_name.clone(),
                    aliases: Vec::new(),
                };
                mail.ensure_account(&account)
                    .await
                    .map(|a| json!({ "address": a.address, "aliases": a.aliases }))
            }
            MailRequest::AddAlias { address, alias } => mail
                .add_alias(address, alias)
                .await
                .map(|a| json!({ "address": a.address, "aliases": a.aliases })),
            MailRequest::RemoveAlias { address, alias } => mail
                .remove_alias(address, alias)
                .await
                .map(|a| json!({ "address": a.address, "aliases": a.aliases })),
            MailRequest::FreezeAccount { address } => mail
                .freeze_account(address)
                .await
                .map(|()| json!({ "address": address, "frozen": true })),
            MailRequest::UnfreezeAccount { address } => mail
                .unfreeze_account(address)
                .await
                .map(|()| json!({ "address": address, "frozen": false })),
            MailRequest::DeleteAccount { address } => mail
                .delete_account(address)
                .await
                .map(|()| json!({ "deleted": address })),
            MailRequest::EnsureList {
                address,
                display_name,
                recipients,
            } => {
                let list = NewMailingList {
                    address: address.clone(),
                    display_name: display_name.clone(),
                    recipients: recipients.clone(),
                };
                mail.ensure_mailing_list(&list)
                    .await
                    .map(|l| json!({ "address": l.address, "recipients": l.recipients }))
            }
            MailRequest::DeleteList { address } => mail
                .delete_mailing_list(address)
                .await
                .map(|()| json!({ "deleted": address })),
            MailRequest::EnsureDefaultAddressBook { address } => {
                match mail.ensure_default_address_book(address).await {
                    Ok(book) => Ok(address_book_result(address, &book)),
                    // The member went (and the mailbox with them) before this step ran:
                    // there is nothing left to give an address book to.
                    Err(MailError::Rejected {
                        kind: RejectionKind::NotFound,
                        ..
                    }) => Ok(json!({ "address": address, "mailbox": "gone" })),
                    Err(e) => Err(e),
                }
            }
        };
        result.map_or_else(|e| mail_outcome(e, request.is_read()), Outcome::Done)
    }

    /// Reads back whether `request` took effect, after an unknown outcome. `Err` when the read
    /// itself failed: the outcome stays unknown and is read again later.
    pub async fn read_back(&self, request: &Request) -> Result<ReadBack, String> {
        let Request::Mail(request) = request else {
            // DNS requests are reads: an unknown outcome never happens to them.
            return Ok(ReadBack::NotApplied(Value::Null));
        };
        let mail = &self.mail;
        let err = |e: MailError| e.to_string();
        let verdict = |applied: bool, found: Value| {
            if applied {
                ReadBack::Applied(found)
            } else {
                ReadBack::NotApplied(found)
            }
        };
        Ok(match request {
            MailRequest::EnsureDomain { name } | MailRequest::DomainRecords { name } => {
                match mail.domain(name).await.map_err(err)? {
                    Some(d) => ReadBack::Applied(domain_result(&d)),
                    None => ReadBack::NotApplied(Value::Null),
                }
            }
            MailRequest::DestroyDomain { name } => {
                let found = mail.domain(name).await.map_err(err)?;
                verdict(found.is_none(), json!({ "exists": found.is_some() }))
            }
            MailRequest::EnsureAccount { address, .. } => {
                match mail.account(address).await.map_err(err)? {
                    Some(a) => {
                        ReadBack::Applied(json!({ "address": a.address, "aliases": a.aliases }))
                    }
                    None => ReadBack::NotApplied(Value::Null),
                }
            }
            MailRequest::AddAlias { address, alias }
            | MailRequest::RemoveAlias { address, alias } => {
                let adding = matches!(request, MailRequest::AddAlias { .. });
                let account = mail.account(address).await.map_err(err)?;
                let has = account
                    .as_ref()
                    .is_some_and(|a| a.aliases.iter().any(|x| x.eq_ignore_ascii_case(alias)));
                let found = account.map_or(
                    Value::Null,
                    |a| json!({ "address": a.address, "aliases": a.aliases }),
                );
                verdict(has == adding, found)
            }
            MailRequest::FreezeAccount { address } | MailRequest::UnfreezeAccount { address } => {
                let freezing = matches!(request, MailRequest::FreezeAccount { .. });
                let account = mail.account(address).await.map_err(err)?;
                let frozen = account.as_ref().map(|a| a.frozen);
                verdict(
                    frozen == Some(freezing),
                    json!({ "address": address, "frozen": frozen }),
                )
            }
            MailRequest::DeleteAccount { address } => {
                let found = mail.account(address).await.map_err(err)?;
                verdict(found.is_none(), json!({ "exists": found.is_some() }))
            }
            MailRequest::EnsureList { address, .. } => {
                match mail.mailing_list(address).await.map_err(err)? {
                    Some(l) => ReadBack::Applied(
                        json!({ "address": l.address, "recipients": l.recipients }),
                    ),
                    None => ReadBack::NotApplied(Value::Null),
                }
            }
            MailRequest::DeleteList { address } => {
                let found = mail.mailing_list(address).await.map_err(err)?;
                verdict(found.is_none(), json!({ "exists": found.is_some() }))
            }
            MailRequest::EnsureDefaultAddressBook { address } => {
                match mail.default_address_book(address).await.map_err(err)? {
                    Some(book) => ReadBack::Applied(address_book_result(address, &book)),
                    None => ReadBack::NotApplied(Value::Null),
                }
            }
        })
    }
}
