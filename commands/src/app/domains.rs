//! Removing a mail domain: the domain refuses while the workspace still uses it, and what
//! uses it is read from the Tenant aggregate (members, aliases, lists), never from a read
//! model that may not show an alias made a moment ago.

use dezky_domain::domains::DomainUsage;
use dezky_domain::tenant::Tenant;

use super::registry::load;
use crate::Ledger;

/// What of workspace `tenant_id` uses the domain `name` (canonical), from the ledger.
pub async fn domain_usage(
    ledger: &Ledger,
    tenant_id: &str,
    name: &str,
) -> Result<DomainUsage, String> {
    let (tenant, _) = load::<Tenant>(ledger, tenant_id).await?;
    Ok(tenant.domain_usage(name))
}
