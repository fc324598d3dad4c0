//! The member mailbox lifecycle: a mailbox created for a member whose address is on one of the
//! workspace's own domains (its service domain or a domain it added), frozen while the member
//! is suspended, deleted when the member goes — unless a member of another workspace still
//! uses the same address (one person in several workspaces keeps one mailbox).
//!
//! Every mailbox created also gets a default address book, as a step of its own once the
//! mailbox exists: the mail server does not create one on a CardDAV client's first request,
//! and answers it with a 404 that fails the whole sign-in of clients that bundle contacts
//! with mail (the seed's Exchange-login failure). Being a step of its own, it is performed,
//! retried and reconciled like any other, and a crash between the mailbox and the address
//! book resumes at the address book.
//!
//! A member whose address is elsewhere (the bootstrap admin's own `@gmail.com`, a partner's
//! staff) gets no mailbox: the mail server could not host it.

use dezky_domain::domains::{Domain, DomainName, DomainStatus};
use dezky_domain::tenant::{
    CommandContext, Principal, Tenant, TenantAction, TenantCommand, TenantEvent,
    TENANT_AGGREGATE_TYPE,
};

use super::request::{MailRequest, Request};
use super::tenant_provisioning::service_domain;
use super::{caused_by, framework, load, now, succeeded, Effects, LedgerCqrs, SagaConfig};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::encoding::EventRecord;
use crate::process::{Process, ProcessError};
use crate::store::Db;
use crate::Ledger;

/// The saga's name.
pub const SAGA: &str = "mailbox";
/// The subject on the tenant commands it issues.
pub const ACTOR: &str = "mailbox";

/// The process manager.
pub struct Mailboxes {
    ledger: Ledger,
    effects: Effects,
    tenants: LedgerCqrs<Tenant>,
    platform_domain: String,
}

fn failed(position: u64, reason: impl ToString) -> ProcessError {
    ProcessError::Command {
        process: SAGA,
        position,
        reason: reason.to_string(),
    }
}

fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    DomainName::parse(domain)
        .ok()
        .map(|d| d.as_str().to_owned())
}

impl Mailboxes {
    /// The saga over `ledger` for the platform domain `platform_domain`.
    pub fn new(ledger: &Ledger, config: &SagaConfig) -> Self {
        Self {
            ledger: ledger.clone(),
            effects: Effects::with_max_attempts(ledger, config.max_attempts),
            tenants: framework(ledger),
            platform_domain: config.platform_domain.clone(),
        }
    }

    async fn tenant(&self, id: &str, position: u64) -> Result<Tenant, ProcessError> {
        load::<Tenant>(&self.ledger, id)
            .await
            .map_err(|e| failed(position, e))
    }

    /// Whether the workspace hosts mail for `address`: its service domain, or a domain it
    /// added (`live`: and still has; otherwise: has had, so a purge after the domain's removal
    /// still finds the mailboxes to delete).
    async fn hosts(
        &self,
        tenant: &Tenant,
        address: &str,
        live: bool,
        position: u64,
    ) -> Result<bool, ProcessError> {
        let Some(domain) = domain_of(address) else {
            return Ok(false);
        };
        if domain == service_domain(&tenant.slug, &self.platform_domain) {
            return Ok(true);
        }
        let record = load::<Domain>(&self.ledger, &domain)
            .await
            .map_err(|e| failed(position, e))?;
        Ok(record.tenant_id.as_deref() == Some(tenant.id.as_str())
            && (!live || record.status.is_some_and(|s| s != DomainStatus::Removed)))
    }

    async fn remember(
        &self,
        tenant_id: &str,
        member_id: &str,
        address: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO saga_mailbox_members (tenant_id, member_id, address) \
                   VALUES ($1, $2, $3) ON CONFLICT (tenant_id, member_id) \
                   DO UPDATE SET address = excluded.address";
        let address = address.to_ascii_lowercase();
        match self.ledger.db() {
            Db::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(member_id)
                    .bind(&address)
                    .execute(pool)
                    .await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(tenant_id)
                    .bind(member_id)
                    .bind(&address)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Forgets the members (one, or the whole tenant's); returns their addresses.
    async fn forget(
        &self,
        tenant_id: &str,
        member_id: Option<&str>,
    ) -> Result<Vec<String>, sqlx::Error> {
        let (select, delete) = if member_id.is_some() {
            (
                "SELECT address FROM saga_mailbox_members WHERE tenant_id = $1 AND member_id = $2",
                "DELETE FROM saga_mailbox_members WHERE tenant_id = $1 AND member_id = $2",
            )
        } else {
            (
                "SELECT address FROM saga_mailbox_members WHERE tenant_id = $1 AND $2 = ''",
                "DELETE FROM saga_mailbox_members WHERE tenant_id = $1 AND $2 = ''",
            )
        };
        let member = member_id.unwrap_or("");
        Ok(match self.ledger.db() {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let found: Vec<String> = sqlx::query_scalar(select)
                    .bind(tenant_id)
                    .bind(member)
                    .fetch_all(&mut *tx)
                    .await?;
                sqlx::query(delete)
                    .bind(tenant_id)
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                found
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let found: Vec<String> = sqlx::query_scalar(select)
                    .bind(tenant_id)
                    .bind(member)
                    .fetch_all(&mut *tx)
                    .await?;
                sqlx::query(delete)
                    .bind(tenant_id)
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                found
            }
        })
    }

    async fn all_addresses(&self) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT DISTINCT address FROM saga_mailbox_members";
        match self.ledger.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
    }

    async fn still_used(&self, address: &str) -> Result<bool, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM saga_mailbox_members WHERE address = $1";
        let n: i64 = match self.ledger.db() {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(address)
                    .fetch_one(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(address)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(n > 0)
    }

    async fn intend(
        &self,
        cause: &EventRecord,
        step: &'static str,
        tenant_id: &str,
        request: MailRequest,
    ) -> Result<bool, ProcessError> {
        self.effects
            .intend(cause, SAGA, step, Some(tenant_id), &Request::Mail(request))
            .await?;
        Ok(true)
    }

    /// The member's address, if it is still a member, for the freeze and thaw steps.
    async fn member_address(&self, tenant: &Tenant, member_id: &str) -> Option<String> {
        tenant
            .members
            .get(member_id)
            .map(|m| m.email.to_ascii_lowercase())
    }

    async fn on_tenant_event(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        let tenant_id = event.aggregate_id.as_str();
        let relevant = matches!(
            event.event_type.as_str(),
            "MemberInvited"
                | "MemberAdded"
                | "MemberSuspended"
                | "MemberResumed"
                | "MemberRemoved"
                | "TenantPurged"
                | "MemberAliasAdded"
                | "MemberAliasRemoved"
                | "MailingListCreated"
                | "MailingListRecipientsSet"
                | "MailingListDeleted"
        );
        if !relevant {
            return Ok(false);
        }
        let parsed = serde_json::from_str::<TenantEvent>(&event.payload)
            .map_err(|e| failed(event.position, format!("unreadable tenant event: {e}")))?;
        let db = |e: sqlx::Error| ProcessError::Database(e);
        match parsed {
            TenantEvent::MemberInvited {
                member_id, email, ..
            } => {
                self.remember(tenant_id, &member_id, &email)
                    .await
                    .map_err(db)?;
                Ok(true)
            }
            TenantEvent::MemberAdded {
                member_id,
                email,
                display_name,
                has_mailbox,
                ..
            } => {
                self.remember(tenant_id, &member_id, &email)
                    .await
                    .map_err(db)?;
                let tenant = self.tenant(tenant_id, event.position).await?;
                if !has_mailbox || !self.hosts(&tenant, &email, true, event.position).await? {
                    return Ok(true);
                }
                let request = MailRequest::EnsureAccount {
                    address: email.to_ascii_lowercase(),
                    display_name: Some(display_name),
                };
                self.intend(event, "create", tenant_id, request).await
            }
            TenantEvent::MemberSuspended { member_id }
            | TenantEvent::MemberResumed { member_id } => {
                let tenant = self.tenant(tenant_id, event.position).await?;
                let Some(address) = self.member_address(&tenant, &member_id).await else {
                    return Ok(false);
                };
                let has_mailbox = tenant
                    .members
                    .get(&member_id)
                    .is_some_and(|m| m.has_mailbox);
                if !has_mailbox || !self.hosts(&tenant, &address, false, event.position).await? {
                    return Ok(false);
                }
                if event.event_type == "MemberSuspended" {
                    self.intend(
                        event,
                        "freeze",
                        tenant_id,
                        MailRequest::FreezeAccount { address },
                    )
                    .await
                } else {
                    self.intend(
                        event,
                        "unfreeze",
                        tenant_id,
                        MailRequest::UnfreezeAccount { address },
                    )
                    .await
                }
            }
            TenantEvent::MemberRemoved { member_id } => {
                let addresses = self.forget(tenant_id, Some(&member_id)).await.map_err(db)?;
                let tenant = self.tenant(tenant_id, event.position).await?;
                self.delete_unused(event, &tenant, addresses, "delete", true)
                    .await
            }
            TenantEvent::MemberAliasAdded { address, alias, .. }
            | TenantEvent::MemberAliasRemoved { address, alias, .. } => {
                let tenant = self.tenant(tenant_id, event.position).await?;
                if !self.hosts(&tenant, &address, false, event.position).await? {
                    return Ok(false);
                }
                let address = address.to_ascii_lowercase();
                if event.event_type == "MemberAliasAdded" {
                    self.intend(
                        event,
                        "add-alias",
                        tenant_id,
                        MailRequest::AddAlias { address, alias },
                    )
                    .await
                } else {
                    self.intend(
                        event,
                        "remove-alias",
                        tenant_id,
                        MailRequest::RemoveAlias { address, alias },
                    )
                    .await
                }
            }
            TenantEvent::MailingListCreated {
                address,
                display_name,
                recipients,
                ..
            } => {
                let request = MailRequest::EnsureList {
                    address,
                    display_name: Some(display_name),
                    recipients,
                };
                self.intend(event, "create-list", tenant_id, request).await
            }
            TenantEvent::MailingListRecipientsSet {
                list_id,
                address,
                recipients,
            } => {
                // The list is brought whole to what is asked, display name included (from
                // the workspace's record of the list).
                let tenant = self.tenant(tenant_id, event.position).await?;
                let display_name = tenant
                    .mailing_lists
                    .get(&list_id)
                    .map(|list| list.display_name.clone());
                let request = MailRequest::EnsureList {
                    address,
                    display_name,
                    recipients,
                };
                self.intend(event, "set-list-recipients", tenant_id, request)
                    .await
            }
            TenantEvent::MailingListDeleted { address, .. } => {
                self.intend(
                    event,
                    "delete-list",
                    tenant_id,
                    MailRequest::DeleteList { address },
                )
                .await
            }
            TenantEvent::TenantPurged { .. } => {
                let mut addresses = self.forget(tenant_id, None).await.map_err(db)?;
                let tenant = self.tenant(tenant_id, event.position).await?;
                // Mailboxes kept earlier for another workspace's member sit on this
                // workspace's domains too, and a domain with mailboxes cannot be deleted.
                addresses.extend(self.all_addresses().await.map_err(db)?);
                addresses.sort();
                addresses.dedup();
                // Lists sit on the domains too, and keep them from being deleted.
                for list in tenant.mailing_lists.values() {
                    let request = Request::Mail(MailRequest::DeleteList {
                        address: list.address.clone(),
                    });
                    self.effects
                        .intend_keyed(
                            event,
                            SAGA,
                            "purge-delete-list",
                            &list.address,
                            Some(tenant_id),
                            &request,
                        )
                        .await?;
                }
                // The workspace's domains go with it, and a domain with mailboxes cannot be
                // deleted: every mailbox on them goes, whoever else used the address.
                self.delete_unused(event, &tenant, addresses, "purge-delete", false)
                    .await
            }
            _ => Ok(false),
        }
    }

    async fn delete_unused(
        &self,
        event: &EventRecord,
        tenant: &Tenant,
        addresses: Vec<String>,
        step: &'static str,
        keep_shared: bool,
    ) -> Result<bool, ProcessError> {
        let mut acted = false;
        let mut hosted = std::collections::HashMap::<Option<String>, bool>::new();
        for address in addresses {
            let domain = domain_of(&address);
            let hosts = match hosted.get(&domain) {
                Some(known) => *known,
                None => {
                    let answer = self.hosts(tenant, &address, false, event.position).await?;
                    hosted.insert(domain, answer);
                    answer
                }
            };
            if !hosts {
                continue;
            }
            if keep_shared
                && self
                    .still_used(&address)
                    .await
                    .map_err(ProcessError::Database)?
            {
                tracing::info!(%address, tenant = %tenant.id, "mailbox kept: another workspace still has a member using it");
                continue;
            }
            // One effect per address: a purge deletes several mailboxes on one trigger.
            let request = Request::Mail(MailRequest::DeleteAccount {
                address: address.clone(),
            });
            self.effects
                .intend_keyed(event, SAGA, step, &address, Some(&tenant.id), &request)
                .await?;
            acted = true;
        }
        Ok(acted)
    }

    async fn on_success(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        let Some(done) = succeeded(&self.effects, event, SAGA).await? else {
            return Ok(false);
        };
        if done.intent.step != "create" {
            return Ok(false);
        }
        let (Some(tenant_id), Some(address)) = (
            done.intent.tenant_id.as_deref(),
            done.intent.request.get("address").and_then(|v| v.as_str()),
        ) else {
            return Ok(false);
        };
        // The mailbox exists: its address book is the next step, triggered by this success
        // (so intending it again after a crash finds the same effect).
        self.intend(
            event,
            "create-address-book",
            tenant_id,
            MailRequest::EnsureDefaultAddressBook {
                address: address.to_ascii_lowercase(),
            },
        )
        .await?;
        let tenant = self.tenant(tenant_id, event.position).await?;
        let Some(member) = tenant
            .members
            .values()
            .find(|m| m.email.eq_ignore_ascii_case(address))
        else {
            return Ok(false);
        };
        let command = TenantCommand::new(
            CommandContext::new(Principal::system(ACTOR), now()),
            TenantAction::RecordMailboxCreated {
                member_id: member.id.clone(),
            },
        );
        let metadata = caused_by(event, &format!("system:{ACTOR}"), Some(tenant_id));
        match execute_with_retry(&self.tenants, tenant_id, &metadata, || command.clone()).await {
            Ok(()) | Err(RetryError::Refused(_)) => Ok(true),
            Err(e) => Err(failed(event.position, e)),
        }
    }
}

impl Process for Mailboxes {
    fn name(&self) -> &'static str {
        "mailboxes"
    }

    async fn handle(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        if event.aggregate_type == TENANT_AGGREGATE_TYPE {
            return self.on_tenant_event(event).await;
        }
        self.on_success(event).await
    }
}
