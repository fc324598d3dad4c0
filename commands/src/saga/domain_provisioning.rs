//! Domain provisioning: a workspace's domain created on the mail server, its records read from
//! the server's zone file once the DKIM keys exist, then checked against DNS — and checked
//! again on request, and torn down on removal (never the platform apex).
//!
//! ```text
//! DomainAdded ─▶ create-domain ─ok▶ fetch-records ─ok▶ RecordProvisioned ─▶ DomainProvisioned
//! DomainProvisioned | DomainRecheckRequested ─▶ check-dns ─ok▶ RecordDnsCheck ─▶ DomainChecked
//! DmarcPolicySet ─▶ RecordProvisioned (the DMARC record changes) ─▶ …check-dns
//! DomainRemoved ─▶ destroy-domain (unless it is the platform apex)
//! ```
//!
//! The DKIM keys appear later than the domain (the server creates them in an asynchronous
//! task): `fetch-records` fails retryably until they exist, so the saga polls with the
//! effect's back-off and the zone file it reads always carries every DKIM record.

use dezky_domain::domains::{
    DmarcPolicy, Domain, DomainCommand, DomainContext, DomainError, DomainEvent, DomainName,
    DomainStatus, ExpectedRecord, RecordCheck, RecordPurpose, RecordType, DOMAIN_AGGREGATE_TYPE,
};
use dezky_domain::tenant::Principal;
use sha2::{Digest, Sha256};

use super::request::{DnsRequest, MailRequest, Request};
use super::{caused_by, framework, load, now, succeeded, Effects, LedgerCqrs, SagaConfig};
use crate::app::retry::{execute_with_retry, RetryError};
use crate::encoding::EventRecord;
use crate::process::{Process, ProcessError};
use crate::Ledger;

/// The saga's name (the first part of its effects' keys).
pub const SAGA: &str = "domain-provisioning";
/// The saga tearing a removed domain down.
pub const REMOVAL_SAGA: &str = "domain-removal";
/// The subject on the domain commands this saga issues.
pub const ACTOR: &str = "domain-provisioning";
/// Where the ownership record lives under a domain.
pub const OWNERSHIP_LABEL: &str = "_dezky";

/// The ownership record the product asks a workspace to publish for `name`: specific to the
/// workspace, so a domain moved to another workspace must prove itself again.
pub fn ownership_record(tenant_id: &str, name: &str) -> ExpectedRecord {
    let digest = Sha256::digest(format!("dezky-domain-ownership\n{tenant_id}\n{name}"));
    ExpectedRecord {
        purpose: RecordPurpose::Ownership,
        name: format!("{OWNERSHIP_LABEL}.{name}"),
        record_type: RecordType::Txt,
        value: format!("dezky-verification={}", &hex::encode(digest)[..32]),
    }
}

fn policy_tag(policy: DmarcPolicy) -> &'static str {
    match policy {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    }
}

/// The DMARC value with its `p=` tag set to `policy` (other tags kept as the server wrote
/// them), so what the workspace is asked to publish is the policy it chose.
pub fn with_dmarc_policy(value: &str, policy: DmarcPolicy) -> String {
    let mut tags: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let p = format!("p={}", policy_tag(policy));
    match tags.iter_mut().find(|t| {
        t.split('=')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("p"))
    }) {
        Some(tag) => *tag = p,
        None => tags.insert(1.min(tags.len()), p),
    }
    tags.join("; ")
}

/// The records a workspace must publish: the server's, with the DMARC policy the workspace
/// chose and the product's ownership record.
pub fn expected_records(
    server: &[ExpectedRecord],
    tenant_id: &str,
    name: &str,
    policy: DmarcPolicy,
) -> Vec<ExpectedRecord> {
    let mut records: Vec<ExpectedRecord> = server
        .iter()
        .filter(|r| r.purpose != RecordPurpose::Ownership)
        .cloned()
        .map(|mut r| {
            if r.purpose == RecordPurpose::Dmarc {
                r.value = with_dmarc_policy(&r.value, policy);
            }
            r
        })
        .collect();
    records.push(ownership_record(tenant_id, name));
    records
}

/// The process manager.
pub struct DomainProvisioning {
    ledger: Ledger,
    effects: Effects,
    domains: LedgerCqrs<Domain>,
    platform_domain: String,
}

impl DomainProvisioning {
    /// The saga over `ledger`; `platform_domain` is the apex it never tears down.
    pub fn new(ledger: &Ledger, config: &SagaConfig) -> Self {
        Self {
            ledger: ledger.clone(),
            effects: Effects::with_max_attempts(ledger, config.max_attempts),
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

    async fn domain(&self, name: &str, position: u64) -> Result<Domain, ProcessError> {
        load::<Domain>(&self.ledger, name)
            .await
            .map_err(|e| Self::failed(position, e))
    }

    /// Runs a platform command on domain `name`; refusals that mean the step no longer
    /// applies (the domain was removed, or a newer provisioning replaced what a check covers)
    /// are done, not errors.
    async fn command(
        &self,
        cause: &EventRecord,
        name: &str,
        tenant_id: &str,
        make: impl Fn(DomainContext) -> DomainCommand,
    ) -> Result<bool, ProcessError> {
        let ctx = DomainContext {
            principal: Principal::system(ACTOR),
            tenant_id: tenant_id.to_owned(),
            now: now(),
        };
        let metadata = caused_by(cause, &format!("system:{ACTOR}"), Some(tenant_id));
        match execute_with_retry(&self.domains, name, &metadata, || make(ctx.clone())).await {
            Ok(()) => Ok(true),
            Err(RetryError::Refused(
                DomainError::NotFound | DomainError::IncompleteCheck | DomainError::NotProvisioned,
            )) => Ok(false),
            Err(e) => Err(Self::failed(cause.position, e)),
        }
    }

    fn is_apex(&self, name: &str) -> bool {
        match (
            DomainName::parse(name),
            DomainName::parse(&self.platform_domain),
        ) {
            (Ok(name), Ok(apex)) => name.is(&apex),
            _ => false,
        }
    }

    async fn on_domain_event(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        let name = event.aggregate_id.as_str();
        let parsed = serde_json::from_str::<DomainEvent>(&event.payload)
            .map_err(|e| Self::failed(event.position, format!("unreadable domain event: {e}")))?;
        match parsed {
            DomainEvent::DomainAdded { tenant_id, .. } => {
                let request = Request::Mail(MailRequest::EnsureDomain {
                    name: name.to_owned(),
                });
                self.effects
                    .intend(event, SAGA, "create-domain", Some(&tenant_id), &request)
                    .await?;
                Ok(true)
            }
            DomainEvent::DomainProvisioned {
                tenant_id,
                expected,
            } => {
                self.check_dns(event, "check-dns", name, &tenant_id, expected)
                    .await
            }
            DomainEvent::DomainRecheckRequested { tenant_id } => {
                let domain = self.domain(name, event.position).await?;
                if domain.status == Some(DomainStatus::Removed) {
                    return Ok(false);
                }
                self.check_dns(event, "recheck-dns", name, &tenant_id, domain.expected)
                    .await
            }
            DomainEvent::DmarcPolicySet { tenant_id, to, .. } => {
                let domain = self.domain(name, event.position).await?;
                if domain.expected.is_empty() || domain.dmarc_policy != to {
                    // Not provisioned yet (provisioning will use the policy), or a newer
                    // change follows.
                    return Ok(false);
                }
                let expected = expected_records(&domain.expected, &tenant_id, name, to);
                self.command(event, name, &tenant_id, |ctx| {
                    DomainCommand::RecordProvisioned {
                        ctx,
                        expected: expected.clone(),
                    }
                })
                .await
            }
            DomainEvent::DomainRemoved { tenant_id } => {
                if self.is_apex(name) {
                    // The platform's own domain carries its infrastructure and staff mail: a
                    // workspace letting it go never deletes it from the mail server.
                    return Ok(false);
                }
                let request = Request::Mail(MailRequest::DestroyDomain {
                    name: name.to_owned(),
                });
                self.effects
                    .intend(
                        event,
                        REMOVAL_SAGA,
                        "destroy-domain",
                        Some(&tenant_id),
                        &request,
                    )
                    .await?;
                Ok(true)
            }
            DomainEvent::DomainChecked { .. } => Ok(false),
        }
    }

    async fn check_dns(
        &self,
        event: &EventRecord,
        step: &'static str,
        name: &str,
        tenant_id: &str,
        expected: Vec<ExpectedRecord>,
    ) -> Result<bool, ProcessError> {
        let request = Request::Dns(DnsRequest::CheckRecords {
            domain: name.to_owned(),
            expected,
        });
        self.effects
            .intend(event, SAGA, step, Some(tenant_id), &request)
            .await?;
        Ok(true)
    }

    async fn on_success(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        let Some(done) = succeeded(&self.effects, event, SAGA).await? else {
            return Ok(false);
        };
        let tenant_id = done.intent.tenant_id.clone().unwrap_or_default();
        match done.intent.step.as_str() {
            "create-domain" => {
                let Some(name) = done.intent.request.get("name").and_then(|v| v.as_str()) else {
                    return Err(Self::failed(event.position, "create-domain without a name"));
                };
                let request = Request::Mail(MailRequest::DomainRecords {
                    name: name.to_owned(),
                });
                self.effects
                    .intend(event, SAGA, "fetch-records", Some(&tenant_id), &request)
                    .await?;
                Ok(true)
            }
            "fetch-records" => {
                let Some(name) = done.intent.request.get("name").and_then(|v| v.as_str()) else {
                    return Err(Self::failed(event.position, "fetch-records without a name"));
                };
                let server: Vec<ExpectedRecord> = done
                    .result
                    .get("records")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| Self::failed(event.position, format!("unreadable records: {e}")))?
                    .unwrap_or_default();
                let domain = self.domain(name, event.position).await?;
                if domain.status == Some(DomainStatus::Removed)
                    || domain.tenant_id.as_deref() != Some(tenant_id.as_str())
                {
                    return Ok(false);
                }
                let expected = expected_records(&server, &tenant_id, name, domain.dmarc_policy);
                self.command(event, name, &tenant_id, |ctx| {
                    DomainCommand::RecordProvisioned {
                        ctx,
                        expected: expected.clone(),
                    }
                })
                .await
            }
            "check-dns" | "recheck-dns" => {
                let Some(name) = done.intent.request.get("domain").and_then(|v| v.as_str()) else {
                    return Err(Self::failed(event.position, "check-dns without a domain"));
                };
                let checks: Vec<RecordCheck> = done
                    .result
                    .get("checks")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| Self::failed(event.position, format!("unreadable checks: {e}")))?
                    .unwrap_or_default();
                self.command(event, name, &tenant_id, |ctx| {
                    DomainCommand::RecordDnsCheck {
                        ctx,
                        checks: checks.clone(),
                    }
                })
                .await
            }
            _ => Ok(false),
        }
    }
}

impl Process for DomainProvisioning {
    fn name(&self) -> &'static str {
        "domain_provisioning"
    }

    async fn handle(&self, event: &EventRecord) -> Result<bool, ProcessError> {
        if event.aggregate_type == DOMAIN_AGGREGATE_TYPE {
            return self.on_domain_event(event).await;
        }
        self.on_success(event).await
    }
}
