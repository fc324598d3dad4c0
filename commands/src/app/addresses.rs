//! Whose domain a member's address is on, from one workspace's point of view: the fact the
//! Tenant aggregate needs to add a member, which it cannot know itself (it lives in the
//! Domain aggregates and the platform's configuration).

use dezky_domain::domains::{Domain, DomainName, DomainStatus};
use dezky_domain::tenant::AddressPlacement;

use crate::saga::load;
use crate::saga::tenant_provisioning::service_domain;
use crate::Ledger;

/// Why an address could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The Domain aggregate could not be loaded.
    #[error("the domain's record could not be read: {0}")]
    Store(String),
}

/// Places `address` for the workspace `tenant_id` with slug `slug`, on a platform whose own
/// domain is `platform_domain`:
///
/// * the workspace's service domain (`{slug}.{platform domain}`) → [`AddressPlacement::ServiceDomain`];
/// * a domain whose Domain aggregate this workspace holds and has not removed → [`AddressPlacement::OwnDomain`];
/// * a domain another workspace holds → [`AddressPlacement::OtherWorkspace`];
/// * the platform domain or any name under it → [`AddressPlacement::Platform`] (unless the
///   workspace holds it, as the platform tenant holds the apex);
/// * anything else, or an address with no parsable domain (the aggregate refuses those
///   itself) → [`AddressPlacement::Outside`].
///
/// Read from the ledger, not the domain read model: a domain added a moment ago counts.
pub async fn place_address(
    ledger: &Ledger,
    tenant_id: &str,
    slug: &str,
    platform_domain: &str,
    address: &str,
) -> Result<AddressPlacement, PlacementError> {
    let Some(name) = address
        .trim()
        .rsplit_once('@')
        .and_then(|(_, domain)| DomainName::parse(domain).ok())
    else {
        return Ok(AddressPlacement::Outside);
    };
    if name.as_str() == service_domain(slug, platform_domain) {
        return Ok(AddressPlacement::ServiceDomain);
    }
    let record = load::<Domain>(ledger, name.as_str())
        .await
        .map_err(PlacementError::Store)?;
    let live = record
        .status
        .is_some_and(|status| status != DomainStatus::Removed);
    match record.tenant_id.as_deref() {
        Some(holder) if live && holder == tenant_id => return Ok(AddressPlacement::OwnDomain),
        Some(_) if live => return Ok(AddressPlacement::OtherWorkspace),
        _ => {}
    }
    if let Ok(apex) = DomainName::parse(platform_domain) {
        if name.is(&apex) || name.is_under(&apex) {
            return Ok(AddressPlacement::Platform);
        }
    }
    Ok(AddressPlacement::Outside)
}
