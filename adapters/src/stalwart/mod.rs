//! The mail server port ([`MailServer`]) over Stalwart v0.16's JMAP management API.
//!
//! Stalwart v0.16 manages its registry as JMAP objects under the `urn:stalwart:jmap`
//! capability: `x:Domain` (with a computed `dnsZoneFile`), `x:DkimSignature` (created by an
//! asynchronous task after a domain is), `x:Account` (`@type` `User` or `Group`, with
//! credentials, aliases as entries inside the account, and permissions) and `x:MailingList`.
//! Collections travel as JSON objects (`{"0": {…}}`, `{"a@b": true}`), never arrays.
//!
//! How the port's promises are kept here:
//!
//! * **Look-up-before-create**: every `ensure_*` queries by name first; a create refused with
//!   `primaryKeyViolation` is looked up again, so a retry after a lost answer, or a race with
//!   an identical create, returns the object.
//! * **Freezing** an account sets its permissions to `Merge` with `authenticate`, `emailSend`
//!   and `emailReceive` disabled (disabled permissions win over inherited ones): no login, no
//!   sending, no delivery, password and mail untouched. Unfreezing goes back to `Inherit`,
//!   which is what every account the product creates has.
//! * **Destroying a domain** asks the server first and lets its referential integrity decide:
//!   when the only objects holding the domain are its DKIM signatures, they and the domain go
//!   in one request (query, then destroy by back-reference); when anything else holds it, the
//!   answer is [`MailError::InUse`] and the DKIM keys stay, so a domain still in use keeps
//!   signing.
//! * **The default address book** is a JMAP for Contacts (RFC 9610) `AddressBook` in the
//!   user's own account (its JMAP account id is the `x:Account` id), reached with the admin's
//!   `impersonate` permission: `AddressBook/get` first; an existing default is kept, an
//!   existing address book without a default becomes it, and otherwise one is created with
//!   `onSuccessSetIsDefault`. `isDefault` itself is server-set and never written.
//! * **Errors**: see [`jmap`] for transport, HTTP and method errors, and `set_error` for
//!   SetErrors.
//!
//! An adapter built with [`StalwartMail::unconfigured`] answers [`MailError::NotConfigured`]
//! to everything.

mod jmap;
pub mod zone;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dezky_commands::ports::mail::{
    AddressBook, MailAccount, MailDomain, MailError, MailServer, MailingList, NewAccount,
    NewMailingList, RejectionKind, DEFAULT_ADDRESS_BOOK_NAME,
};
use dezky_commands::ports::Secret;
use reqwest::Url;
use serde_json::{json, Map, Value};

use jmap::{Effect, Jmap, CONTACTS_CAPABILITY, CORE_CAPABILITY};

/// Default time limit on one request to Stalwart.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;
/// How many times [`MailServer::destroy_domain`] clears DKIM signatures that keep appearing
/// (a key rotation running meanwhile) before it gives up.
const MAX_DESTROY_DOMAIN_ROUNDS: usize = 3;
/// The permissions a frozen account loses.
const FROZEN_PERMISSIONS: [&str; 3] = ["authenticate", "emailSend", "emailReceive"];
/// How many account ids the adapter remembers before it starts over (a bound, not a tuning
/// knob: a forgotten id only costs a look-up).
const MAX_REMEMBERED_ACCOUNTS: usize = 10_000;

/// Where Stalwart's management API is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct StalwartConfig {
    /// The management listener (`http://stalwart:8080`), not the public host: the session
    /// document's URLs are kept only for their paths.
    pub base_url: String,
    /// The admin user (HTTP Basic).
    pub admin_user: String,
    /// The admin secret.
    pub admin_secret: Secret,
    /// Time limit on one request; a write that runs out of it is [`MailError::OutcomeUnknown`].
    pub request_timeout_seconds: u64,
}

impl StalwartConfig {
    /// A configuration with [`DEFAULT_REQUEST_TIMEOUT_SECONDS`].
    pub fn new(
        base_url: impl Into<String>,
        admin_user: impl Into<String>,
        admin_secret: Secret,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            admin_user: admin_user.into(),
            admin_secret,
            request_timeout_seconds: DEFAULT_REQUEST_TIMEOUT_SECONDS,
        }
    }
}

/// Why a [`StalwartConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StalwartConfigError {
    /// The base URL is not an absolute http(s) URL.
    #[error("the Stalwart base URL {0:?} is not an absolute http(s) URL")]
    BaseUrl(String),
    /// The admin user is empty.
    #[error("the Stalwart admin user is empty")]
    MissingUser,
    /// The timeout is zero, so no request could succeed.
    #[error("the Stalwart request timeout must be at least one second")]
    ZeroTimeout,
}

/// The Stalwart adapter: [`MailServer`] over JMAP.
#[derive(Clone)]
pub struct StalwartMail {
    jmap: Option<Arc<Jmap>>,
}

impl std::fmt::Debug for StalwartMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StalwartMail")
            .field("configured", &self.jmap.is_some())
            .finish()
    }
}

impl StalwartMail {
    /// An adapter for the server `config` names.
    pub fn new(
        config: StalwartConfig,
        http_client: reqwest::Client,
    ) -> Result<Self, StalwartConfigError> {
        let mut base = Url::parse(&config.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| StalwartConfigError::BaseUrl(config.base_url.clone()))?;
        if !base.path().ends_with('/') {
            // So that joining `.well-known/jmap` keeps a path prefix.
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if config.admin_user.is_empty() {
            return Err(StalwartConfigError::MissingUser);
        }
        if config.request_timeout_seconds == 0 {
            return Err(StalwartConfigError::ZeroTimeout);
        }
        Ok(Self {
            jmap: Some(Arc::new(Jmap::new(
                http_client,
                base,
                config.admin_user,
                config.admin_secret,
                Duration::from_secs(config.request_timeout_seconds),
            ))),
        })
    }

    /// An adapter for a deployment without a mail server: every call is
    /// [`MailError::NotConfigured`].
    pub fn unconfigured() -> Self {
        Self { jmap: None }
    }

    /// Whether a server is configured.
    pub fn is_configured(&self) -> bool {
        self.jmap.is_some()
    }

    fn jmap(&self) -> Result<&Jmap, MailError> {
        self.jmap.as_deref().ok_or(MailError::NotConfigured)
    }
}

/// `local@domain` → its two halves, lower case.
fn split_address(address: &str) -> Result<(String, String), MailError> {
    let address = address.trim().to_lowercase();
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            Ok((local.to_owned(), domain.to_owned()))
        }
        _ => Err(MailError::Rejected {
            kind: RejectionKind::InvalidValue,
            detail: format!("{address:?} is not an email address"),
        }),
    }
}

fn normalize_domain(name: &str) -> String {
    name.trim().trim_end_matches('.').to_lowercase()
}

fn unknown_domain(domain: &str) -> MailError {
    MailError::Rejected {
        kind: RejectionKind::UnknownReference,
        detail: format!("the mail server has no domain {domain}"),
    }
}

fn not_found(what: &str) -> MailError {
    MailError::Rejected {
        kind: RejectionKind::NotFound,
        detail: format!("the mail server has no {what}"),
    }
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An account or list as read, with what is needed to write it back.
struct Found {
    id: String,
    value: Map<String, Value>,
}

impl Jmap {
    fn remembered(&self, address: &str) -> Option<String> {
        let ids = self.account_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(address).cloned()
    }

    fn remember(&self, address: String, id: String) {
        let mut ids = self.account_ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.len() >= MAX_REMEMBERED_ACCOUNTS {
            ids.clear();
        }
        ids.insert(address, id);
    }

    fn forget(&self, address: &str) {
        let mut ids = self.account_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.remove(address);
    }

    /// The server ids of `names` (lower case) that exist, in one request.
    async fn domain_ids(&self, names: &[&str]) -> Result<HashMap<String, String>, MailError> {
        let names: BTreeSet<String> = names.iter().map(|n| normalize_domain(n)).collect();
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let call_ids: Vec<String> = (0..names.len()).map(|i| format!("q{i}")).collect();
        let calls = names
            .iter()
            .zip(&call_ids)
            .map(|(name, id)| {
                (
                    "x:Domain/query",
                    json!({"filter": {"name": name}}),
                    id.as_str(),
                )
            })
            .collect();
        let responses = self.request(calls, Effect::Read).await?;
        let mut out = HashMap::new();
        for (name, call) in names.iter().zip(&call_ids) {
            if let Some(id) = responses.ids(call)?.into_iter().next() {
                out.insert(name.clone(), id);
            }
        }
        Ok(out)
    }

    async fn domain_id(&self, name: &str) -> Result<Option<String>, MailError> {
        let name = normalize_domain(name);
        Ok(self.domain_ids(&[&name]).await?.remove(&name))
    }

    async fn domain(&self, name: &str) -> Result<Option<MailDomain>, MailError> {
        let name = normalize_domain(name);
        let Some(id) = self.domain_id(&name).await? else {
            return Ok(None);
        };
        // The signatures are read before the zone file, so a zone file never lacks the TXT
        // record of a selector reported here.
        let responses = self
            .request(
                vec![
                    (
                        "x:DkimSignature/query",
                        json!({"filter": {"domainId": id}}),
                        "q",
                    ),
                    (
                        "x:DkimSignature/get",
                        json!({
                            "#ids": {"resultOf": "q", "name": "x:DkimSignature/query", "path": "/ids"},
                            "properties": ["selector"],
                        }),
                        "s",
                    ),
                    (
                        "x:Domain/get",
                        json!({"ids": [id], "properties": ["name", "dnsZoneFile"]}),
                        "d",
                    ),
                ],
                Effect::Read,
            )
            .await?;
        let dkim_selectors: Vec<String> = responses
            .list("s")?
            .iter()
            .filter_map(|s| text(s, "selector"))
            .collect();
        let Some(domain) = responses.list("d")?.into_iter().next() else {
            return Ok(None); // destroyed between the two requests
        };
        let zone = text(&domain, "dnsZoneFile").unwrap_or_default();
        let records = zone::expected_records(&zone, &name)
            .map_err(|e| MailError::Protocol(format!("dnsZoneFile of {name}: {e}")))?;
        Ok(Some(MailDomain {
            name,
            dkim_selectors,
            records,
        }))
    }

    async fn ensure_domain(&self, name: &str) -> Result<MailDomain, MailError> {
        let name = normalize_domain(name);
        if let Some(domain) = self.domain(&name).await? {
            return Ok(domain);
        }
        // Stalwart's defaults are what the product wants: automatic DKIM (Ed25519 and RSA),
        // reports to postmaster@ the domain.
        let responses = self
            .request(
                vec![(
                    "x:Domain/set",
                    json!({"create": {"d": {"name": name}}}),
                    "c",
                )],
                Effect::Write,
            )
            .await?;
        match responses.created("c", "d") {
            Ok(_) => {}
            // Created meanwhile by a retry whose answer was lost, or by a concurrent call.
            Err(MailError::Conflict(detail)) => {
                if self.domain_id(&name).await?.is_none() {
                    return Err(MailError::Conflict(detail));
                }
            }
            Err(error) => return Err(error),
        }
        self.domain(&name)
            .await?
            .ok_or_else(|| MailError::Protocol(format!("domain {name} created but not found")))
    }

    async fn destroy_domain(&self, name: &str) -> Result<(), MailError> {
        let Some(id) = self.domain_id(name).await? else {
            return Ok(());
        };
        for _ in 0..MAX_DESTROY_DOMAIN_ROUNDS {
            let responses = self
                .request(
                    vec![("x:Domain/set", json!({"destroy": [id]}), "d")],
                    Effect::Write,
                )
                .await?;
            let linked = match responses.destroyed("d", &id) {
                Ok(()) => return Ok(()),
                Err(MailError::InUse(detail)) => detail,
                Err(error) => return Err(error),
            };
            let error: Value = serde_json::from_str(&linked).unwrap_or_default();
            let by_others = match error["linkedObjects"].as_array() {
                Some(objects) if !objects.is_empty() => {
                    objects.iter().any(|o| o["object"] != "DkimSignature")
                }
                // No list to go by: look for what the product itself puts on a domain.
                _ => self.has_addresses(&id).await?,
            };
            if by_others {
                return Err(MailError::InUse(linked));
            }
            let responses = self
                .request(
                    vec![
                        (
                            "x:DkimSignature/query",
                            json!({"filter": {"domainId": id}}),
                            "q",
                        ),
                        (
                            "x:DkimSignature/set",
                            json!({"#destroy": {"resultOf": "q", "name": "x:DkimSignature/query", "path": "/ids"}}),
                            "k",
                        ),
                        ("x:Domain/set", json!({"destroy": [id]}), "d"),
                    ],
                    Effect::Write,
                )
                .await?;
            let keys = responses.get("k")?;
            if let Some((_, error)) = keys["notDestroyed"]
                .as_object()
                .and_then(|n| n.iter().find(|(_, e)| e["type"] != "notFound"))
            {
                return Err(jmap::set_error(error));
            }
            match responses.destroyed("d", &id) {
                Ok(()) => return Ok(()),
                // A signature created between the query and the destroy: go round again.
                Err(MailError::InUse(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(MailError::InUse(format!(
            "domain {name} still has DKIM signatures after {MAX_DESTROY_DOMAIN_ROUNDS} rounds"
        )))
    }

    /// Whether any account or list has its primary address on the domain.
    async fn has_addresses(&self, domain_id: &str) -> Result<bool, MailError> {
        let responses = self
            .request(
                vec![
                    (
                        "x:Account/query",
                        json!({"filter": {"domainId": domain_id}, "limit": 1}),
                        "a",
                    ),
                    (
                        "x:MailingList/query",
                        json!({"filter": {"domainId": domain_id}, "limit": 1}),
                        "l",
                    ),
                ],
                Effect::Read,
            )
            .await?;
        Ok(!responses.ids("a")?.is_empty() || !responses.ids("l")?.is_empty())
    }

    /// The user account or mailing list (`object`) at `address`.
    async fn find(&self, object: &str, address: &str) -> Result<Option<Found>, MailError> {
        let (local, domain) = split_address(address)?;
        let Some(domain_id) = self.domain_id(&domain).await? else {
            return Ok(None);
        };
        let mut filter = json!({"name": local, "domainId": domain_id});
        if object == "x:Account" {
            filter["@type"] = json!("User");
        }
        let query = format!("{object}/query");
        let responses = self
            .request(
                vec![
                    (query.as_str(), json!({"filter": filter}), "q"),
                    (
                        &format!("{object}/get"),
                        json!({"#ids": {"resultOf": "q", "name": query, "path": "/ids"}}),
                        "g",
                    ),
                ],
                Effect::Read,
            )
            .await?;
        let found = responses.list("g")?.into_iter().next().and_then(|value| {
            Some(Found {
                id: text(&value, "id")?,
                value,
            })
        });
        if object == "x:Account" {
            let key = format!("{local}@{domain}");
            match &found {
                Some(found) => self.remember(key, found.id.clone()),
                None => self.forget(&key),
            }
        }
        Ok(found)
    }

    /// Alias entries as `(address, domainId)`, with the domain names looked up.
    async fn alias_addresses(
        &self,
        value: &Map<String, Value>,
    ) -> Result<Vec<(String, Value)>, MailError> {
        let entries: Vec<&Value> = value
            .get("aliases")
            .and_then(Value::as_object)
            .map(|a| a.values().collect())
            .unwrap_or_default();
        let ids: BTreeSet<&str> = entries
            .iter()
            .filter_map(|e| e["domainId"].as_str())
            .collect();
        let mut names = HashMap::new();
        if !ids.is_empty() {
            let responses = self
                .request(
                    vec![(
                        "x:Domain/get",
                        json!({"ids": ids.iter().collect::<Vec<_>>(), "properties": ["name"]}),
                        "d",
                    )],
                    Effect::Read,
                )
                .await?;
            for domain in responses.list("d")? {
                if let (Some(id), Some(name)) = (text(&domain, "id"), text(&domain, "name")) {
                    names.insert(id, name);
                }
            }
        }
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let local = entry["name"].as_str()?;
                let domain = names.get(entry["domainId"].as_str()?)?;
                Some((format!("{local}@{domain}"), entry.clone()))
            })
            .collect())
    }

    async fn render_account(&self, found: &Found) -> Result<MailAccount, MailError> {
        let value = &found.value;
        let mut aliases: Vec<String> = self
            .alias_addresses(value)
            .await?
            .into_iter()
            .map(|(address, _)| address)
            .collect();
        aliases.sort();
        let permissions = value.get("permissions").cloned().unwrap_or_default();
        let frozen = permissions["@type"] != "Inherit"
            && permissions["disabledPermissions"]
                .get("authenticate")
                .is_some_and(|v| v == true);
        Ok(MailAccount {
            address: text(value, "emailAddress").unwrap_or_default(),
            display_name: text(value, "description"),
            aliases,
            frozen,
        })
    }

    async fn account(&self, address: &str) -> Result<Option<MailAccount>, MailError> {
        match self.find("x:Account", address).await? {
            Some(found) => Ok(Some(self.render_account(&found).await?)),
            None => Ok(None),
        }
    }

    async fn ensure_account(&self, account: &NewAccount) -> Result<MailAccount, MailError> {
        if let Some(existing) = self.account(&account.address).await? {
            return Ok(existing);
        }
        let (local, domain) = split_address(&account.address)?;
        let alias_parts = account
            .aliases
            .iter()
            .map(|a| split_address(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut domains: Vec<&str> = alias_parts.iter().map(|(_, d)| d.as_str()).collect();
        domains.push(&domain);
        let ids = self.domain_ids(&domains).await?;
        let domain_id = ids.get(&domain).ok_or_else(|| unknown_domain(&domain))?;
        let mut aliases = Map::new();
        for (index, (alias_local, alias_domain)) in alias_parts.iter().enumerate() {
            let alias_domain_id = ids
                .get(alias_domain)
                .ok_or_else(|| unknown_domain(alias_domain))?;
            aliases.insert(
                index.to_string(),
                json!({"name": alias_local, "domainId": alias_domain_id}),
            );
        }
        let create = json!({
            "@type": "User",
            "name": local,
            "domainId": domain_id,
            "description": account.display_name,
            "credentials": {"0": {"@type": "Password", "secret": account.password.expose()}},
            "aliases": aliases,
        });
        let responses = self
            .request(
                vec![("x:Account/set", json!({"create": {"u": create}}), "c")],
                Effect::Write,
            )
            .await?;
        match responses.created("c", "u") {
            Ok(_) => {}
            Err(MailError::Conflict(detail)) => {
                // A lost answer's retry, or a concurrent identical create: the account is
                // there. Anything else holding the address is a real conflict.
                return match self.account(&account.address).await? {
                    Some(existing) => Ok(existing),
                    None => Err(MailError::Conflict(detail)),
                };
            }
            Err(error) => return Err(error),
        }
        self.account(&account.address).await?.ok_or_else(|| {
            MailError::Protocol(format!("account {} created but not found", account.address))
        })
    }

    async fn update(&self, object: &str, id: &str, patch: Value) -> Result<(), MailError> {
        let responses = self
            .request(
                vec![(
                    &format!("{object}/set"),
                    json!({"update": {id: patch}}),
                    "u",
                )],
                Effect::Write,
            )
            .await?;
        responses.updated("u", id)
    }

    async fn existing_account(&self, address: &str) -> Result<Found, MailError> {
        self.find("x:Account", address)
            .await?
            .ok_or_else(|| not_found(&format!("account {address}")))
    }

    /// Writes `patch` to the account at `address`: straight to the id remembered from an
    /// earlier look-up (one round trip; ids are never reused, so a stale one is `notFound`,
    /// forgotten, and the look-up runs), otherwise after a look-up.
    async fn update_account(&self, address: &str, patch: Value) -> Result<(), MailError> {
        let key = address.trim().to_lowercase();
        if let Some(id) = self.remembered(&key) {
            match self.update("x:Account", &id, patch.clone()).await {
                Err(MailError::Rejected {
                    kind: RejectionKind::NotFound,
                    ..
                }) => self.forget(&key),
                other => return other,
            }
        }
        let found = self.existing_account(address).await?;
        self.update("x:Account", &found.id, patch).await
    }

    async fn set_password(&self, address: &str, password: &Secret) -> Result<(), MailError> {
        // The product manages one password per mailbox; replacing the list keeps it that way.
        self.update_account(
            address,
            json!({"credentials": {"0": {"@type": "Password", "secret": password.expose()}}}),
        )
        .await
    }

    /// Writes an account's aliases back with `change` applied; the whole list is replaced, as
    /// upstream renumbers its entries on every write anyway.
    async fn change_aliases(
        &self,
        address: &str,
        alias: &str,
        add: bool,
    ) -> Result<MailAccount, MailError> {
        let found = self.existing_account(address).await?;
        let alias = alias.trim().to_lowercase();
        let (alias_local, alias_domain) = split_address(&alias)?;
        let current = self.alias_addresses(&found.value).await?;
        let has = current.iter().any(|(a, _)| *a == alias);
        let primary = text(&found.value, "emailAddress").unwrap_or_default();
        if (add && (has || primary == alias)) || (!add && !has) {
            return self.render_account(&found).await;
        }
        let mut entries: Vec<Value> = current
            .into_iter()
            .filter(|(a, _)| *a != alias)
            .map(|(_, entry)| entry)
            .collect();
        if add {
            let domain_id = self
                .domain_id(&alias_domain)
                .await?
                .ok_or_else(|| unknown_domain(&alias_domain))?;
            entries.push(json!({"name": alias_local, "domainId": domain_id}));
        }
        let aliases: Map<String, Value> = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i.to_string(), e))
            .collect();
        self.update("x:Account", &found.id, json!({"aliases": aliases}))
            .await?;
        let found = self.existing_account(address).await?;
        self.render_account(&found).await
    }

    async fn set_frozen(&self, address: &str, frozen: bool) -> Result<(), MailError> {
        let permissions = if frozen {
            let disabled: Map<String, Value> = FROZEN_PERMISSIONS
                .iter()
                .map(|p| ((*p).to_owned(), json!(true)))
                .collect();
            json!({"@type": "Merge", "disabledPermissions": disabled})
        } else {
            json!({"@type": "Inherit"})
        };
        self.update_account(address, json!({"permissions": permissions}))
            .await
    }

    async fn delete(&self, object: &str, address: &str) -> Result<(), MailError> {
        let Some(found) = self.find(object, address).await? else {
            return Ok(());
        };
        let responses = self
            .request(
                vec![(
                    &format!("{object}/set"),
                    json!({"destroy": [found.id]}),
                    "d",
                )],
                Effect::Write,
            )
            .await?;
        responses.destroyed("d", &found.id)?;
        self.forget(&address.trim().to_lowercase());
        Ok(())
    }

    fn render_list(value: &Map<String, Value>) -> MailingList {
        let mut recipients: Vec<String> = value
            .get("recipients")
            .and_then(Value::as_object)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        recipients.sort();
        MailingList {
            address: text(value, "emailAddress").unwrap_or_default(),
            display_name: text(value, "description"),
            recipients,
        }
    }

    async fn mailing_list(&self, address: &str) -> Result<Option<MailingList>, MailError> {
        Ok(self
            .find("x:MailingList", address)
            .await?
            .map(|found| Self::render_list(&found.value)))
    }

    async fn ensure_mailing_list(&self, list: &NewMailingList) -> Result<MailingList, MailError> {
        let recipients: Map<String, Value> = list
            .recipients
            .iter()
            .map(|r| (r.trim().to_lowercase(), json!(true)))
            .collect();
        let mut found = self.find("x:MailingList", &list.address).await?;
        if found.is_none() {
            let (local, domain) = split_address(&list.address)?;
            let domain_id = self
                .domain_id(&domain)
                .await?
                .ok_or_else(|| unknown_domain(&domain))?;
            let create = json!({
                "name": local,
                "domainId": domain_id,
                "description": list.display_name,
                "recipients": recipients,
            });
            let responses = self
                .request(
                    vec![("x:MailingList/set", json!({"create": {"l": create}}), "c")],
                    Effect::Write,
                )
                .await?;
            match responses.created("c", "l") {
                Ok(_) => {}
                Err(MailError::Conflict(detail)) => {
                    found = self.find("x:MailingList", &list.address).await?;
                    if found.is_none() {
                        return Err(MailError::Conflict(detail));
                    }
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(found) = found {
            // Bring an existing list to what was asked.
            let wanted = MailingList {
                address: text(&found.value, "emailAddress").unwrap_or_default(),
                display_name: list.display_name.clone(),
                recipients: {
                    let mut r: Vec<String> = recipients.keys().cloned().collect();
                    r.sort();
                    r
                },
            };
            if Self::render_list(&found.value) != wanted {
                self.update(
                    "x:MailingList",
                    &found.id,
                    json!({"description": list.display_name, "recipients": recipients}),
                )
                .await?;
            }
        }
        self.mailing_list(&list.address).await?.ok_or_else(|| {
            MailError::Protocol(format!("list {} written but not found", list.address))
        })
    }
}

impl Jmap {
    /// The user account at `address`: its id, or `None`.
    async fn user_id(&self, address: &str) -> Result<Option<String>, MailError> {
        Ok(self.find("x:Account", address).await?.map(|found| found.id))
    }

    /// The address books of the user account `account_id`, as `(id, name, isDefault)`.
    async fn address_books(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, String, bool)>, MailError> {
        let responses = self
            .request_for(
                account_id,
                &[CORE_CAPABILITY, CONTACTS_CAPABILITY],
                vec![(
                    "AddressBook/get",
                    json!({"ids": null, "properties": ["id", "name", "isDefault"]}),
                    "g",
                )],
                Effect::Read,
            )
            .await?;
        Ok(responses
            .list("g")?
            .into_iter()
            .filter_map(|book| {
                Some((
                    text(&book, "id")?,
                    text(&book, "name").unwrap_or_default(),
                    book.get("isDefault").and_then(Value::as_bool) == Some(true),
                ))
            })
            .collect())
    }

    async fn default_address_book(&self, address: &str) -> Result<Option<AddressBook>, MailError> {
        let Some(account_id) = self.user_id(address).await? else {
            return Ok(None);
        };
        Ok(self
            .address_books(&account_id)
            .await?
            .into_iter()
            .find(|(_, _, is_default)| *is_default)
            .map(|(_, name, _)| AddressBook {
                name,
                is_default: true,
            }))
    }

    async fn ensure_default_address_book(&self, address: &str) -> Result<AddressBook, MailError> {
        let Some(account_id) = self.user_id(address).await? else {
            return Err(MailError::Rejected {
                kind: RejectionKind::NotFound,
                detail: format!("no mailbox {address}"),
            });
        };
        let books = self.address_books(&account_id).await?;
        if let Some((_, name, _)) = books.iter().find(|(_, _, is_default)| *is_default) {
            return Ok(AddressBook {
                name: name.clone(),
                is_default: true,
            });
        }
        // An address book without a default (made by a client, or by a create whose
        // `onSuccessSetIsDefault` was lost with its answer) becomes the default rather than
        // getting a second one beside it.
        let (arguments, target) = match books.first() {
            Some((id, name, _)) => (
                json!({"onSuccessSetIsDefault": id}),
                (Some(id.clone()), name.clone()),
            ),
            None => (
                json!({
                    "create": {"book": {"name": DEFAULT_ADDRESS_BOOK_NAME}},
                    "onSuccessSetIsDefault": "#book",
                }),
                (None, DEFAULT_ADDRESS_BOOK_NAME.to_owned()),
            ),
        };
        let responses = self
            .request_for(
                &account_id,
                &[CORE_CAPABILITY, CONTACTS_CAPABILITY],
                vec![("AddressBook/set", arguments, "s")],
                Effect::Write,
            )
            .await?;
        if target.0.is_none() {
            responses.created("s", "book")?;
        } else {
            responses.get("s")?;
        }
        // Read back: the default is server-set, so only the server can say it took.
        self.default_address_book(address).await?.ok_or_else(|| {
            MailError::Protocol(format!(
                "the address book {:?} of {address} was written but is not the default",
                target.1
            ))
        })
    }
}

impl MailServer for StalwartMail {
    async fn ensure_domain(&self, name: &str) -> Result<MailDomain, MailError> {
        self.jmap()?.ensure_domain(name).await
    }

    async fn domain(&self, name: &str) -> Result<Option<MailDomain>, MailError> {
        self.jmap()?.domain(name).await
    }

    async fn destroy_domain(&self, name: &str) -> Result<(), MailError> {
        self.jmap()?.destroy_domain(name).await
    }

    async fn ensure_account(&self, account: &NewAccount) -> Result<MailAccount, MailError> {
        self.jmap()?.ensure_account(account).await
    }

    async fn account(&self, address: &str) -> Result<Option<MailAccount>, MailError> {
        self.jmap()?.account(address).await
    }

    async fn set_password(&self, address: &str, password: &Secret) -> Result<(), MailError> {
        self.jmap()?.set_password(address, password).await
    }

    async fn add_alias(&self, address: &str, alias: &str) -> Result<MailAccount, MailError> {
        self.jmap()?.change_aliases(address, alias, true).await
    }

    async fn remove_alias(&self, address: &str, alias: &str) -> Result<MailAccount, MailError> {
        self.jmap()?.change_aliases(address, alias, false).await
    }

    async fn freeze_account(&self, address: &str) -> Result<(), MailError> {
        self.jmap()?.set_frozen(address, true).await
    }

    async fn unfreeze_account(&self, address: &str) -> Result<(), MailError> {
        self.jmap()?.set_frozen(address, false).await
    }

    async fn delete_account(&self, address: &str) -> Result<(), MailError> {
        self.jmap()?.delete("x:Account", address).await
    }

    async fn ensure_mailing_list(&self, list: &NewMailingList) -> Result<MailingList, MailError> {
        self.jmap()?.ensure_mailing_list(list).await
    }

    async fn mailing_list(&self, address: &str) -> Result<Option<MailingList>, MailError> {
        self.jmap()?.mailing_list(address).await
    }

    async fn delete_mailing_list(&self, address: &str) -> Result<(), MailError> {
        self.jmap()?.delete("x:MailingList", address).await
    }

    async fn ensure_default_address_book(&self, address: &str) -> Result<AddressBook, MailError> {
        self.jmap()?.ensure_default_address_book(address).await
    }

    async fn default_address_book(&self, address: &str) -> Result<Option<AddressBook>, MailError> {
        self.jmap()?.default_address_book(address).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_must_name_a_server_and_a_user() {
        let http = reqwest::Client::new();
        let config = |url: &str, user: &str| StalwartConfig::new(url, user, Secret::new("s"));
        assert!(matches!(
            StalwartMail::new(config("stalwart:8080", "admin"), http.clone()),
            Err(StalwartConfigError::BaseUrl(_))
        ));
        assert_eq!(
            StalwartMail::new(config("http://stalwart:8080", ""), http.clone()).err(),
            Some(StalwartConfigError::MissingUser)
        );
        let mut zero = config("http://stalwart:8080", "admin");
        zero.request_timeout_seconds = 0;
        assert_eq!(
            StalwartMail::new(zero, http.clone()).err(),
            Some(StalwartConfigError::ZeroTimeout)
        );
        assert!(
            StalwartMail::new(config("http://stalwart:8080", "admin"), http)
                .is_ok_and(|m| m.is_configured())
        );
    }

    #[test]
    fn the_admin_secret_does_not_print() {
        let config = StalwartConfig::new("http://s", "admin", Secret::new("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn addresses_split_into_local_part_and_domain() {
        assert_eq!(
            split_address(" Ann@Acme.Test ").ok(),
            Some(("ann".into(), "acme.test".into()))
        );
        assert!(matches!(
            split_address("acme.test"),
            Err(MailError::Rejected {
                kind: RejectionKind::InvalidValue,
                ..
            })
        ));
    }
}
