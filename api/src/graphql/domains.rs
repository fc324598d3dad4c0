//! Mail domains over GraphQL: a workspace's domains with the DNS records to publish and what
//! DNS answered, the needs-attention counts, and the mutations that add, recheck, set the
//! DMARC policy of and remove a domain.
//!
//! # Who may
//!
//! * **Read** a workspace's domains and its needs-attention count: anyone with standing in the
//!   workspace (operators, the owning partner, its admins and its members). A member sees at
//!   which domains addresses can exist and why mail may not arrive; the records themselves are
//!   published in DNS for anyone to read, so nothing here is an admin's secret.
//! * **Change** them (add, recheck, DMARC policy, remove): operators, the owning partner and
//!   the workspace's admins — the standing that also manages its billing and security
//!   settings ([`authz::may_read_settings`]); members may not.
//! * The **platform-wide** needs-attention count: operators only.
//!
//! The aggregate knows nothing of roles (see `dezky_domain::domains`): these checks run before
//! any command, and a caller without standing gets `FORBIDDEN` whatever the domain.
//!
//! # Error codes
//!
//! Refusals of the Domain aggregate carry their own stable `extensions.code`, so a portal can
//! say exactly what is wrong: `INVALID_DOMAIN`, `DOMAIN_TAKEN`, `DOMAIN_ALREADY_ADDED`,
//! `PLATFORM_DOMAIN_RESERVED`, `PLATFORM_SUBDOMAIN_RESERVED`, `DOMAIN_NOT_PROVISIONED`,
//! `DOMAIN_IN_USE` (with the counts in `extensions.usage`); a domain the workspace does not
//! have is `NOT_FOUND`. All are declared, and mapped from `DomainError`, in
//! [`super::error`].

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use cqrs_es::AggregateError;
use dezky_domain::domains::{
    CheckOutcome, DmarcPolicy, DomainCommand, DomainContext, DomainError, DomainName, DomainStatus,
    DomainUsage, RecordPurpose, RecordType,
};
use dezky_projections::domains::{
    domain, domains_of_tenant, needs_attention_count, DomainRow, RecordStatus,
};
use dezky_projections::tenants::TenantRow;

use super::authz::{self, Viewer};
use super::error::{ApiError, Code};
use super::schema::{api, auth, find_tenant, managed_tenant, read_your_writes_timeout, Tenant};
use dezky_commands::app::retry::execute_with_retry;

type Result<T> = std::result::Result<T, async_graphql::Error>;

// ---------------------------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------------------------

/// Where a domain is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "DomainStatus")]
pub enum DomainStatusGql {
    /// Added; the mail server is being set up.
    Provisioning,
    /// Set up on the mail server; waiting for the DNS records.
    Verifying,
    /// Every required record checked ok.
    Verified,
    /// A required record is missing or wrong.
    NeedsAttention,
}

/// The DMARC policy a domain publishes (`p=`).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "DmarcPolicy", name = "DmarcPolicy")]
pub enum DmarcPolicyGql {
    /// Monitor only (`p=none`), where every domain starts.
    None,
    /// Deliver failing mail as spam.
    Quarantine,
    /// Reject failing mail.
    Reject,
}

/// What a DNS record is for.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "RecordPurpose", name = "DnsRecordPurpose")]
pub enum RecordPurposeGql {
    /// Where mail for the domain goes.
    Mx,
    /// Which servers may send for the domain.
    Spf,
    /// A DKIM public key.
    Dkim,
    /// The DMARC policy.
    Dmarc,
    /// Proof that the workspace controls the domain.
    Ownership,
    /// Client autodiscovery (optional).
    Autodiscovery,
}

/// A DNS resource record type.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "RecordType", name = "DnsRecordType")]
pub enum RecordTypeGql {
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Service locator.
    Srv,
    /// Alias.
    Cname,
}

/// What the last DNS check found for a record.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "DnsCheckOutcome")]
pub enum CheckOutcomeGql {
    /// Published as expected.
    Ok,
    /// Nothing published under that name and type.
    Missing,
    /// Something else published there.
    Wrong,
    /// Not as expected, but the record is optional and what is there still works.
    Warning,
    /// Not checked yet.
    Unchecked,
}

impl From<Option<CheckOutcome>> for CheckOutcomeGql {
    fn from(value: Option<CheckOutcome>) -> Self {
        match value {
            None => CheckOutcomeGql::Unchecked,
            Some(CheckOutcome::Ok) => CheckOutcomeGql::Ok,
            Some(CheckOutcome::Missing) => CheckOutcomeGql::Missing,
            Some(CheckOutcome::Wrong) => CheckOutcomeGql::Wrong,
            Some(CheckOutcome::Warning) => CheckOutcomeGql::Warning,
        }
    }
}

/// One record a domain should publish, with what DNS answered at the last check.
#[derive(SimpleObject)]
#[graphql(name = "DnsRecord")]
pub struct DnsRecordGql {
    /// What it is for.
    pub purpose: RecordPurposeGql,
    /// The owner name, fully qualified without the trailing dot (`_dmarc.acme.eu`).
    pub name: String,
    /// The record type.
    #[graphql(name = "type")]
    pub record_type: RecordTypeGql,
    /// The value to publish, as a DNS host shows it.
    pub value: String,
    /// Whether the domain is verified without it (autodiscovery records).
    pub optional: bool,
    /// The verdict of the last check.
    pub outcome: CheckOutcomeGql,
    /// What DNS answered under its name and type (empty when missing or unchecked).
    pub found: Vec<String>,
}

impl From<RecordStatus> for DnsRecordGql {
    fn from(value: RecordStatus) -> Self {
        let expected = value.expected;
        Self {
            purpose: expected.purpose.into(),
            optional: expected.purpose.is_optional(),
            name: expected.name,
            record_type: expected.record_type.into(),
            value: expected.value,
            outcome: value.outcome.into(),
            found: value.found,
        }
    }
}

/// A mail domain of a workspace.
pub struct DomainGql(DomainRow);

/// A mail domain of a workspace, with the DNS records it should publish.
#[Object(name = "Domain")]
impl DomainGql {
    /// The canonical name (lower case; punycode for international names).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Where it is in its life.
    async fn status(&self) -> Result<DomainStatusGql> {
        Ok(match self.0.status {
            DomainStatus::Provisioning => DomainStatusGql::Provisioning,
            DomainStatus::Verifying => DomainStatusGql::Verifying,
            DomainStatus::Verified => DomainStatusGql::Verified,
            DomainStatus::NeedsAttention => DomainStatusGql::NeedsAttention,
            // The read model deletes removed domains, so this is a broken read model.
            DomainStatus::Removed => {
                return Err(ApiError::internal(&"a removed domain in the read model").into())
            }
        })
    }
    /// The DMARC policy.
    async fn dmarc_policy(&self) -> DmarcPolicyGql {
        self.0.dmarc_policy.into()
    }
    /// When the workspace added it.
    async fn added_at(&self) -> &str {
        &self.0.added_at
    }
    /// When DNS was last checked.
    async fn checked_at(&self) -> Option<&str> {
        self.0.checked_at.as_deref()
    }
    /// When a recheck was asked for that no check has answered yet.
    async fn recheck_requested_at(&self) -> Option<&str> {
        self.0.recheck_requested_at.as_deref()
    }
    /// Each record to publish with what the last check found (empty while provisioning).
    async fn records(&self) -> Vec<DnsRecordGql> {
        self.0.records().into_iter().map(Into::into).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// A refusal of the Domain aggregate as the client sees it (mapped in `super::error`).
fn domain_refusal(error: DomainError) -> async_graphql::Error {
    ApiError::from(error).into()
}

/// A failed domain command: the aggregate's refusals by [`domain_refusal`], the store's
/// failures as `super::error::from_aggregate` maps them for every other aggregate.
fn command_error(error: AggregateError<DomainError>) -> async_graphql::Error {
    match error {
        AggregateError::UserError(error) => domain_refusal(error),
        AggregateError::AggregateConflict => ApiError::new(
            Code::Conflict,
            "someone else changed this domain at the same time; reload and try again",
        )
        .into(),
        AggregateError::DatabaseConnectionError(e) => {
            tracing::error!(error = %e, "store unavailable");
            ApiError::new(Code::Unavailable, "the store is unavailable; try again").into()
        }
        other => ApiError::internal(&other).into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

/// Domain fields of [`Tenant`] (resolved from its object in `schema.rs`).
impl Tenant {
    pub(super) async fn domains_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<Vec<DomainGql>, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_tenant(authz::standing(db, viewer, self.row()).await?)?;
        Ok(domains_of_tenant(db, None, self.id_str())
            .await?
            .into_iter()
            .map(DomainGql)
            .collect())
    }

    pub(super) async fn domains_needing_attention_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<u64, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let db = api(ctx).ledger.db();
        authz::may_read_tenant(authz::standing(db, viewer, self.row()).await?)?;
        Ok(needs_attention_count(db, Some(self.id_str())).await?)
    }
}

/// Platform-wide domain queries.
#[derive(Default)]
pub struct DomainsQuery;

#[Object]
impl DomainsQuery {
    /// How many domains of all workspaces need attention (operators only).
    async fn domains_needing_attention(&self, ctx: &Context<'_>) -> Result<u64> {
        authz::may_operate(auth(ctx).viewer()?)?;
        let db = api(ctx).ledger.db();
        Ok(needs_attention_count(db, None)
            .await
            .map_err(ApiError::from)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------------------------

/// The canonical form of a name a person typed: the aggregate id.
fn canonical(name: &str) -> Result<String> {
    DomainName::parse(name)
        .map(|n| n.as_str().to_owned())
        .map_err(|problem| domain_refusal(DomainError::InvalidName(problem)))
}

/// Runs a domain command for `tenant` under the one retry-on-conflict policy: each attempt
/// is decided afresh on the stored state, so a retry never merges anything silently, it only
/// turns a race into the answer the loser would get now.
async fn run(
    ctx: &Context<'_>,
    viewer: &Viewer,
    tenant: &TenantRow,
    name: &str,
    command: impl Fn(DomainContext) -> DomainCommand,
) -> Result<()> {
    let api = api(ctx);
    let metadata = api.metadata(viewer, &tenant.id);
    let attempt = || {
        command(DomainContext {
            principal: viewer.principal(),
            tenant_id: tenant.id.clone(),
            now: api.clock.now(),
        })
    };
    execute_with_retry(&api.domains, name, &metadata, attempt)
        .await
        .map_err(|e| command_error(e.into_aggregate()))
}

/// The domain as the read models show it once they have folded the mutation.
async fn after_write(ctx: &Context<'_>, tenant: &TenantRow, name: &str) -> Result<DomainGql> {
    let api = api(ctx);
    api.read_your_writes(read_your_writes_timeout()).await;
    match domain(api.ledger.db(), name)
        .await
        .map_err(ApiError::from)?
    {
        Some(row) if row.tenant_id == tenant.id => Ok(DomainGql(row)),
        // The command was recorded but the read model has not shown it within the wait.
        _ => Err(ApiError::new(
            Code::Unavailable,
            "the change is recorded but not visible yet; reload shortly",
        )
        .into()),
    }
}

/// What still uses a domain in a workspace, for removal: decided on the write side, from the
/// Tenant aggregate (`Tenant::domain_usage`), so an alias or member added a moment ago counts
/// even while the read models lag.
async fn usage_of(
    ctx: &Context<'_>,
    tenant: &TenantRow,
    name: &str,
) -> std::result::Result<DomainUsage, ApiError> {
    dezky_commands::app::domains::domain_usage(&api(ctx).ledger, &tenant.id, name)
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// Domain mutations.
#[derive(Default)]
pub struct DomainsMutation;

#[Object]
impl DomainsMutation {
    /// Adds a mail domain to a workspace (its admins, the owning partner, operators). Refused
    /// when another workspace has it, for the platform's apex unless the workspace is the
    /// platform tenant, and for every name under the apex.
    async fn add_domain(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
    ) -> Result<DomainGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let name = canonical(&name)?;
        if tenant.status.is_deleted() {
            return Err(
                ApiError::new(Code::Conflict, "a deleted workspace cannot add domains").into(),
            );
        }
        let platform_apex = api(ctx).platform_domain.clone();
        let is_platform_tenant = tenant.is_platform_tenant;
        run(ctx, viewer, &tenant, &name, |ctx| DomainCommand::Add {
            ctx,
            name: name.clone(),
            platform_apex: platform_apex.clone(),
            is_platform_tenant,
        })
        .await?;
        after_write(ctx, &tenant, &name).await
    }

    /// Asks for a DNS check of a domain now (its workspace's admins, the owning partner,
    /// operators).
    async fn recheck_domain(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
    ) -> Result<DomainGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let name = canonical(&name)?;
        run(ctx, viewer, &tenant, &name, |ctx| DomainCommand::Recheck {
            ctx,
        })
        .await?;
        after_write(ctx, &tenant, &name).await
    }

    /// Sets a domain's DMARC policy (its workspace's admins, the owning partner, operators).
    async fn set_domain_dmarc(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
        policy: DmarcPolicyGql,
    ) -> Result<DomainGql> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let name = canonical(&name)?;
        let policy: DmarcPolicy = policy.into();
        run(ctx, viewer, &tenant, &name, |ctx| {
            DomainCommand::SetDmarcPolicy { ctx, policy }
        })
        .await?;
        after_write(ctx, &tenant, &name).await
    }

    /// Removes a domain (its workspace's admins, the owning partner, operators); refused with
    /// `DOMAIN_IN_USE` while members' addresses, aliases or lists are at it. Returns the
    /// workspace.
    async fn remove_domain(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        name: String,
    ) -> Result<Tenant> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let name = canonical(&name)?;
        let usage = usage_of(ctx, &tenant, &name).await?;
        run(ctx, viewer, &tenant, &name, |ctx| DomainCommand::Remove {
            ctx,
            usage,
        })
        .await?;
        api(ctx).read_your_writes(read_your_writes_timeout()).await;
        Ok(Tenant::from_row(
            find_tenant(ctx, Some(&tenant.id), None).await?,
        ))
    }
}
