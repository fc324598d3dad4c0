//! Billing details, branding and security policy: each update records only what it changed,
//! and an update that changes nothing records nothing.

use super::super::aggregate::Tenant;
use super::super::billing::{BillingChanges, BillingInfoPatch};
use super::super::branding::{BrandingChanges, BrandingPatch};
use super::super::error::TenantError;
use super::super::event::TenantEvent;
use super::super::security::{SecurityPolicyChanges, SecurityPolicyPatch};

/// Updates billing details.
pub(super) fn billing(
    state: &Tenant,
    patch: BillingInfoPatch,
) -> Result<Vec<TenantEvent>, TenantError> {
    let next = patch.applied_to(&state.billing)?;
    let changes = BillingChanges::between(&state.billing, &next);
    Ok(if changes.is_empty() {
        Vec::new()
    } else {
        vec![TenantEvent::BillingInfoUpdated { changes }]
    })
}

/// Updates branding.
pub(super) fn branding(
    state: &Tenant,
    patch: BrandingPatch,
) -> Result<Vec<TenantEvent>, TenantError> {
    let next = patch.applied_to(&state.branding)?;
    let changes = BrandingChanges::between(&state.branding, &next);
    Ok(if changes.is_empty() {
        Vec::new()
    } else {
        vec![TenantEvent::BrandingUpdated { changes }]
    })
}

/// Updates the security policy.
pub(super) fn security_policy(
    state: &Tenant,
    patch: SecurityPolicyPatch,
) -> Result<Vec<TenantEvent>, TenantError> {
    let next = patch.applied_to(&state.security_policy)?;
    let changes = SecurityPolicyChanges::between(&state.security_policy, &next);
    Ok(if changes.is_empty() {
        Vec::new()
    } else {
        vec![TenantEvent::SecurityPolicyUpdated { changes }]
    })
}
