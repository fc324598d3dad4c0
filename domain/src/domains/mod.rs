//! The Domain aggregate: a mail domain a workspace brings (`acme.eu`), one aggregate per
//! domain name (aggregate id = the canonical name).
//!
//! Keying the aggregate by the name makes "a domain used by any other workspace is refused"
//! an invariant of the aggregate itself, like [`crate::tenant::SlugClaim`] does for slugs:
//! two concurrent adds of one name both decide on version 0, the ledger commits one and
//! answers the other with a conflict, and the retry sees the owner and is refused.
//!
//! Who may manage a workspace's domains (operators, the owning partner, tenant admins) is the
//! API's decision from the tenant's read model, made before the command reaches here; the
//! aggregate enforces what only it can know: which workspace owns the name, and where the name
//! is in its life. Facts from outside — that the mail server created the domain, what the zone
//! file expects, what DNS answered, how many mailboxes use the domain — arrive in commands.

pub mod name;
pub mod records;

#[cfg(test)]
mod tests;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, DomainEvent as CqrsEvent};
use serde::{Deserialize, Serialize};

pub use name::{DomainName, NameProblem};
pub use records::{CheckOutcome, ExpectedRecord, RecordCheck, RecordPurpose, RecordType};

use crate::tenant::{ContextError, Principal};

/// Aggregate type name as stored in the ledger. Never change it.
pub const DOMAIN_AGGREGATE_TYPE: &str = "domain";
/// Schema version of every domain event today.
pub const DOMAIN_EVENT_VERSION: &str = "1.0";

/// The DMARC policy a domain publishes (`p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmarcPolicy {
    /// Monitor only (`p=none`): where every new domain starts, so nothing is rejected before
    /// the reports show the domain's senders are aligned.
    #[default]
    None,
    /// Deliver failing mail as spam.
    Quarantine,
    /// Reject failing mail.
    Reject,
}

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Added; the mail server is being set up (the provisioning saga).
    Provisioning,
    /// Set up on the mail server; waiting for the DNS records.
    Verifying,
    /// Every required record checked ok.
    Verified,
    /// A required record is missing or wrong (after having been checked at least once).
    NeedsAttention,
    /// Removed; the name can be added again, by any workspace.
    Removed,
}

/// Who acts and on behalf of which workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainContext {
    /// The acting principal.
    pub principal: Principal,
    /// The workspace acting (whose domain it is or becomes).
    pub tenant_id: String,
    /// When (RFC 3339, from the caller).
    pub now: String,
}

/// How many things still use a domain, as the read side counts them when removal is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DomainUsage {
    /// Mailboxes with an address at the domain.
    pub mailboxes: u32,
    /// Aliases at the domain.
    pub aliases: u32,
    /// Distribution lists at the domain.
    pub lists: u32,
}

impl DomainUsage {
    /// Whether nothing uses the domain.
    pub fn is_unused(&self) -> bool {
        self.mailboxes == 0 && self.aliases == 0 && self.lists == 0
    }
}

/// Commands a domain accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCommand {
    /// Add the domain to a workspace.
    Add {
        /// Who, for which workspace, when.
        ctx: DomainContext,
        /// The name as typed; must normalize to the aggregate id.
        name: String,
        /// The platform's apex domain (`dezky.eu`), from configuration.
        platform_apex: String,
        /// Whether the acting workspace is the platform tenant (from the platform flag).
        is_platform_tenant: bool,
    },
    /// Record that the mail server holds the domain and what its zone file expects.
    RecordProvisioned {
        /// Who (the provisioning saga) and when.
        ctx: DomainContext,
        /// The records the zone file lists.
        expected: Vec<ExpectedRecord>,
    },
    /// Ask for a DNS check now.
    Recheck {
        /// Who, for which workspace, when.
        ctx: DomainContext,
    },
    /// Record the result of a DNS check.
    RecordDnsCheck {
        /// Who (the DNS checker) and when.
        ctx: DomainContext,
        /// One check per expected record.
        checks: Vec<RecordCheck>,
    },
    /// Change the DMARC policy.
    SetDmarcPolicy {
        /// Who, for which workspace, when.
        ctx: DomainContext,
        /// The new policy.
        policy: DmarcPolicy,
    },
    /// Remove the domain.
    Remove {
        /// Who, for which workspace, when.
        ctx: DomainContext,
        /// What still uses it.
        usage: DomainUsage,
    },
}

impl DomainCommand {
    fn ctx(&self) -> &DomainContext {
        match self {
            DomainCommand::Add { ctx, .. }
            | DomainCommand::RecordProvisioned { ctx, .. }
            | DomainCommand::Recheck { ctx }
            | DomainCommand::RecordDnsCheck { ctx, .. }
            | DomainCommand::SetDmarcPolicy { ctx, .. }
            | DomainCommand::Remove { ctx, .. } => ctx,
        }
    }
}

/// Every stored type name a domain event can have (pinned by a test).
pub const DOMAIN_EVENT_TYPES: [&str; 6] = [
    "DomainAdded",
    "DomainProvisioned",
    "DomainRecheckRequested",
    "DomainChecked",
    "DmarcPolicySet",
    "DomainRemoved",
];

/// Events a domain emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainEvent {
    /// A workspace added the domain; the provisioning saga sets it up on the mail server.
    DomainAdded {
        /// The canonical name.
        name: String,
        /// The owning workspace.
        tenant_id: String,
        /// The DMARC policy it starts with.
        dmarc_policy: DmarcPolicy,
        /// When.
        added_at: String,
    },
    /// The mail server holds the domain; these records are expected in DNS.
    DomainProvisioned {
        /// The owning workspace (every event names it, for tenant-scoped reading).
        tenant_id: String,
        /// From the zone file.
        expected: Vec<ExpectedRecord>,
    },
    /// A DNS check was asked for.
    DomainRecheckRequested {
        /// The owning workspace.
        tenant_id: String,
    },
    /// DNS was checked.
    DomainChecked {
        /// The owning workspace.
        tenant_id: String,
        /// Per record.
        checks: Vec<RecordCheck>,
        /// The status that follows.
        status: DomainStatus,
        /// When.
        checked_at: String,
    },
    /// The DMARC policy changed.
    DmarcPolicySet {
        /// The owning workspace.
        tenant_id: String,
        /// Before.
        from: DmarcPolicy,
        /// After.
        to: DmarcPolicy,
    },
    /// The domain was removed; the teardown saga removes it from the mail server.
    DomainRemoved {
        /// The workspace that owned it.
        tenant_id: String,
    },
}

impl CqrsEvent for DomainEvent {
    fn event_type(&self) -> String {
        match self {
            DomainEvent::DomainAdded { .. } => "DomainAdded",
            DomainEvent::DomainProvisioned { .. } => "DomainProvisioned",
            DomainEvent::DomainRecheckRequested { .. } => "DomainRecheckRequested",
            DomainEvent::DomainChecked { .. } => "DomainChecked",
            DomainEvent::DmarcPolicySet { .. } => "DmarcPolicySet",
            DomainEvent::DomainRemoved { .. } => "DomainRemoved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        DOMAIN_EVENT_VERSION.to_owned()
    }
}

/// Why a domain refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command context is malformed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Not a domain name a workspace can add.
    #[error(transparent)]
    InvalidName(#[from] NameProblem),
    /// The name given does not normalize to this aggregate's name.
    #[error("the domain '{given}' is not this aggregate's domain")]
    NameMismatch {
        /// What was given.
        given: String,
    },
    /// Another workspace uses the domain (which one is that workspace's business).
    #[error("the domain is already used by another workspace")]
    UsedByAnotherWorkspace,
    /// This workspace already has the domain.
    #[error("the domain is already added to this workspace")]
    AlreadyAdded,
    /// The platform's apex domain, asked for by a workspace that is not the platform tenant.
    #[error("the platform's own domain belongs to the platform tenant")]
    PlatformApexReserved,
    /// A name under the platform's apex: those are the workspaces' service domains.
    #[error("names under the platform's domain are reserved")]
    UnderPlatformApex,
    /// The domain does not exist (never added, removed, or another workspace's).
    #[error("no such domain in this workspace")]
    NotFound,
    /// Only the platform (its sagas and operators) records provisioning and DNS results.
    #[error("only the platform records provisioning and DNS results")]
    NotPlatform,
    /// A DNS result or recheck before the mail server holds the domain.
    #[error("the domain is not set up on the mail server yet")]
    NotProvisioned,
    /// A check result that does not cover exactly the expected records.
    #[error("a DNS check must cover each expected record exactly once")]
    IncompleteCheck,
    /// Removal while mailboxes, aliases or lists still use the domain.
    #[error(
        "the domain is still used by {} mailboxes, {} aliases and {} lists",
        usage.mailboxes,
        usage.aliases,
        usage.lists
    )]
    InUse {
        /// What uses it.
        usage: DomainUsage,
    },
}

/// A domain, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The canonical name, once added.
    pub name: Option<String>,
    /// The owning workspace (kept after removal, for the record).
    pub tenant_id: Option<String>,
    /// Where it is in its life; `None` before the first add.
    pub status: Option<DomainStatus>,
    /// The DMARC policy.
    pub dmarc_policy: DmarcPolicy,
    /// The records the zone file expects.
    pub expected: Vec<ExpectedRecord>,
    /// The last DNS check.
    pub last_checks: Vec<RecordCheck>,
}

impl Domain {
    fn live_owner(&self) -> Option<&str> {
        match self.status {
            None | Some(DomainStatus::Removed) => None,
            Some(_) => self.tenant_id.as_deref(),
        }
    }

    /// Decides a command. Pure.
    pub fn decide(&self, command: DomainCommand) -> Result<Vec<DomainEvent>, DomainError> {
        let ctx = command.ctx();
        crate::tenant::CommandContext::new(ctx.principal.clone(), ctx.now.clone()).check()?;
        match command {
            DomainCommand::Add {
                ctx,
                name,
                platform_apex,
                is_platform_tenant,
            } => self.add(ctx, &name, &platform_apex, is_platform_tenant),
            DomainCommand::RecordProvisioned { ctx, expected } => {
                let tenant_id = self.owned_by(&ctx)?;
                if !ctx.principal.platform_admin {
                    return Err(DomainError::NotPlatform);
                }
                Ok(vec![DomainEvent::DomainProvisioned {
                    tenant_id,
                    expected,
                }])
            }
            DomainCommand::Recheck { ctx } => {
                let tenant_id = self.owned_by(&ctx)?;
                if self.status == Some(DomainStatus::Provisioning) {
                    return Err(DomainError::NotProvisioned);
                }
                Ok(vec![DomainEvent::DomainRecheckRequested { tenant_id }])
            }
            DomainCommand::RecordDnsCheck { ctx, checks } => {
                let tenant_id = self.owned_by(&ctx)?;
                if !ctx.principal.platform_admin {
                    return Err(DomainError::NotPlatform);
                }
                if self.status == Some(DomainStatus::Provisioning) {
                    return Err(DomainError::NotProvisioned);
                }
                let covered = checks.len() == self.expected.len()
                    && self
                        .expected
                        .iter()
                        .all(|e| checks.iter().filter(|c| c.expected == *e).count() == 1);
                if !covered {
                    return Err(DomainError::IncompleteCheck);
                }
                let status = if checks.iter().any(RecordCheck::blocks_verification) {
                    DomainStatus::NeedsAttention
                } else {
                    DomainStatus::Verified
                };
                Ok(vec![DomainEvent::DomainChecked {
                    tenant_id,
                    checks,
                    status,
                    checked_at: ctx.now,
                }])
            }
            DomainCommand::SetDmarcPolicy { ctx, policy } => {
                let tenant_id = self.owned_by(&ctx)?;
                if policy == self.dmarc_policy {
                    return Ok(Vec::new());
                }
                Ok(vec![DomainEvent::DmarcPolicySet {
                    tenant_id,
                    from: self.dmarc_policy,
                    to: policy,
                }])
            }
            DomainCommand::Remove { ctx, usage } => {
                let tenant_id = self.owned_by(&ctx)?;
                if !usage.is_unused() {
                    return Err(DomainError::InUse { usage });
                }
                Ok(vec![DomainEvent::DomainRemoved { tenant_id }])
            }
        }
    }

    /// The acting workspace, if it owns this live domain; otherwise the domain does not exist
    /// as far as that workspace is concerned.
    fn owned_by(&self, ctx: &DomainContext) -> Result<String, DomainError> {
        if self.live_owner() == Some(ctx.tenant_id.as_str()) {
            Ok(ctx.tenant_id.clone())
        } else {
            Err(DomainError::NotFound)
        }
    }

    fn add(
        &self,
        ctx: DomainContext,
        name: &str,
        platform_apex: &str,
        is_platform_tenant: bool,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        let name = DomainName::parse(name)?;
        if self.name.as_deref().is_some_and(|own| own != name.as_str()) {
            return Err(DomainError::NameMismatch {
                given: name.as_str().to_owned(),
            });
        }
        // The apex comes from configuration; an unparsable one protects nothing, so it is
        // treated as absent rather than failing every add.
        if let Ok(apex) = DomainName::parse(platform_apex) {
            if name.is(&apex) && !is_platform_tenant {
                return Err(DomainError::PlatformApexReserved);
            }
            if name.is_under(&apex) {
                return Err(DomainError::UnderPlatformApex);
            }
        }
        match self.live_owner() {
            Some(owner) if owner == ctx.tenant_id => Err(DomainError::AlreadyAdded),
            Some(_) => Err(DomainError::UsedByAnotherWorkspace),
            None => Ok(vec![DomainEvent::DomainAdded {
                name: name.as_str().to_owned(),
                tenant_id: ctx.tenant_id,
                dmarc_policy: DmarcPolicy::default(),
                added_at: ctx.now,
            }]),
        }
    }
}

impl Aggregate for Domain {
    const TYPE: &'static str = DOMAIN_AGGREGATE_TYPE;
    type Command = DomainCommand;
    type Event = DomainEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DomainEvent::DomainAdded {
                name,
                tenant_id,
                dmarc_policy,
                ..
            } => {
                *self = Domain {
                    name: Some(name),
                    tenant_id: Some(tenant_id),
                    status: Some(DomainStatus::Provisioning),
                    dmarc_policy,
                    expected: Vec::new(),
                    last_checks: Vec::new(),
                };
            }
            DomainEvent::DomainProvisioned { expected, .. } => {
                self.expected = expected;
                self.last_checks.clear();
                self.status = Some(DomainStatus::Verifying);
            }
            DomainEvent::DomainRecheckRequested { .. } => {}
            DomainEvent::DomainChecked { checks, status, .. } => {
                self.last_checks = checks;
                self.status = Some(status);
            }
            DomainEvent::DmarcPolicySet { to, .. } => self.dmarc_policy = to,
            DomainEvent::DomainRemoved { .. } => self.status = Some(DomainStatus::Removed),
        }
    }
}

/// The upcasters a domain event store must be built with (none yet).
pub fn domain_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}
