//! Tenant provisioning and purge: a new workspace's service domain (`{slug}.{platform
//! domain}`) created on the mail server, after which the workspace is provisioned; a purged
//! workspace's domains torn down — its customer domains removed (which releases their names
//! and deletes them from the mail server) and its service domain deleted. The platform apex
//! itself is never deleted, whoever held it.

use dezky_domain::domains::{
    Domain, DomainCommand, DomainContext, DomainError, DomainEvent, DomainName, DomainUsage,
    DOMAIN_AGGREGATE_TYPE,
};
use dezky_domain::tenant::{
    CommandContext, Principal, Tenant, TenantAction, TenantCommand, TenantError, TenantEvent,
    TENANT_AGGREGATE_TYPE,
};

use super::request::{MailRequest, Request};
use super::{caused_by, framework, now, succeeded, Effects, LedgerCqrs, SagaConfig};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::encoding::EventRecord;
use crate::process::{Process, ProcessError};
use crate::Ledger;

/// The provisioning saga's name.
pub const SAGA: &str = "tenant-provisioning";
/// The purge saga's name.
pub const PURGE_SAGA: &str = "tenant-purge";
/// The subject on the commands these sagas issue.
pub const ACTOR: &str = "tenant-provisioning";

/// A workspace's service domain.
pub fn service_domain(slug: &str, platform_domain: &str) -> String {
    format!(
        "{slug}.{}",
        platform_domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// The process manager.
pub struct TenantProvisioning {
    ledger: Ledger,
    effects: Effects,
    tenants: LedgerCqrs<Tenant>,
    domains: LedgerCqrs<Domain>,
    platform_domain: String,
}

impl TenantProvisioning {
    /// The sagas over `ledger` for the platform domain `platform_domain`.
    pub fn new(ledger: &Ledger, config: &SagaConfig) -> Self {
        Self {
            ledger: ledger.clone(),
            effects: Effects::with_max_attempts(ledger, config.max_attempts),
            tenants: framework(ledger),
            domains: framework(ledger),
            platform_domain: config.platform_domain.clone(),
        }
    }

    fn failed(position: u64, reason: impl ToString) -> ProcessError {
        ProcessError::Command {
            process: SAGA,
            position,
            reason: reason.to_string(),
        }
    }

    fn is_apex(&self, name: &str) -> bool {
        match (
            DomainName::parse(name),
            DomainName::parse(&self.platform_domain),
        ) {
            (Ok(name), Ok(apex)) => name.is(&apex),
            _ => true, // unreadable: never tear it down
        }
    }

    /// The tenant's live customer domains just before `position`, from the domain events on
    /// the ledger (few, next to everything else), so a repeat of the purge sees the same set.
    async fn domains_before(
        &self,
        tenant_id: &str,
        position: u64,
    ) -> Result<Vec<String>, ProcessError> {
        let events = self
            .ledger
            .events_of_type(DOMAIN_AGGREGATE_TYPE)
            .await
            .map_err(ProcessError::Ledger)?;
        let mut live = std::collections::BTreeMap::<String, bool>::new();
        for event in events.iter().filter(|e| e.position < position) {
            match serde_json::from_str::<DomainEvent>(&event.payload) {
                Ok(DomainEvent::DomainAdded { tenant_id: t, .. }) => {
                    live.insert(event.aggregate_id.clone(), t == tenant_id);
                }
                Ok(DomainEvent::DomainRemoved { .. }) => {
                    live.insert(event.aggregate_id.clone(), false);
                }
                _ => {}
            }
        }
        Ok(live
            .into_iter()
            .filter(|(_, own)| *own)
            .map(|(n, _)| n)
            .collect())
    }

    async fn provision(&self, cause: &EventRecord, tenant_id: &str) -> Result<bool, ProcessError> {
        let command = TenantCommand::new(
            CommandContext::new(Principal::system(ACTOR), now()),
            TenantAction::Provision,
        );
        let metadata = caused_by(cause, &format!("system:{ACTOR}"), Some(tenant_id));
        match execute_with_retry(&self.tenants, tenant_id, &metadata, || command.clone()).await {
            // Already provisioned, or gone since: nothing left to do.
            Ok(()) | Err(RetryError::Refused(TenantError::InvalidTransition { .. })) => Ok(true),
            Err(e) => Err(Self::failed(cause.position, e)),
        }
    }

    async fn remove_domain(
        &self,
        cause: &EventRecord,
        tenant_id: &str,
        name: &str,
    ) -> Result<(), ProcessError> {
        let ctx = DomainContext {
            principal: Principal::system(ACTOR),
            tenant_id: tenant_id.to_owned(),
            now: now(),
        };
        let metadata = caused_by(cause, &format!("system:{ACTOR}"), Some(tenant_id));
        // The whole workspace goes: its mailboxes are torn down by the mailbox saga, so
        // nothing of it uses the domain any more.
        let command = || DomainCommand::Remove {
            ctx: ctx.clone(),
            usage: DomainUsage::default(),
        };
        match execute_with_retry(&self.domains, name, &metadata, command).await {
            Ok(()) | Err(RetryError::Refused(DomainError::NotFound)) => Ok(()),
            Err(e) => Err(Self::failed(cause.position, e)),
        }
    }
}

impl Process for TenantProvisioning {
    fn name(&self) -> &'static str {
        "tenant_provisioning"
    }

    async fn handle(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        if event.aggregate_type == TENANT_AGGREGATE_TYPE {
            let tenant_id = event.aggregate_id.as_str();
            return match event.event_type.as_str() {
                "TenantCreated" | "TenantPurged" => {
                    let parsed =
                        serde_json::from_str::<TenantEvent>(&event.payload).map_err(|e| {
                            Self::failed(event.position, format!("unreadable tenant event: {e}"))
                        })?;
                    match parsed {
                        TenantEvent::TenantCreated { slug, .. } => {
                            let request = Request::Mail(MailRequest::EnsureDomain {
                                name: service_domain(&slug, &self.platform_domain),
                            });
                            self.effects
                                .intend(
                                    event,
                                    SAGA,
                                    "create-service-domain",
                                    Some(tenant_id),
                                    &request,
                                )
                                .await?;
                            Ok(true)
                        }
                        TenantEvent::TenantPurged { slug } => {
                            for name in self.domains_before(tenant_id, event.position).await? {
                                self.remove_domain(event, tenant_id, &name).await?;
                            }
                            let service = service_domain(&slug, &self.platform_domain);
                            if !self.is_apex(&service) {
                                let request =
                                    Request::Mail(MailRequest::DestroyDomain { name: service });
                                self.effects
                                    .intend(
                                        event,
                                        PURGE_SAGA,
                                        "destroy-service-domain",
                                        Some(tenant_id),
                                        &request,
                                    )
                                    .await?;
                            }
                            Ok(true)
                        }
                        _ => Ok(false),
                    }
                }
                _ => Ok(false),
            };
        }
        let Some(done) = succeeded(&self.effects, event, SAGA).await? else {
            return Ok(false);
        };
        match (done.intent.step.as_str(), done.intent.tenant_id.as_deref()) {
            ("create-service-domain", Some(tenant_id)) => self.provision(event, tenant_id).await,
            _ => Ok(false),
        }
    }
}
