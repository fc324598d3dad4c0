//! Creating a workspace: two aggregates, one use case. The slug is claimed first (its own
//! aggregate makes concurrent creations of one slug yield exactly one workspace), then the
//! tenant is created; should the tenant refuse, the slug is given back so the next attempt can
//! use it.

use std::collections::HashMap;

use dezky_domain::tenant::{
    SlugClaim, SlugClaimCommand, SlugClaimError, Tenant, TenantAction, TenantCommand, TenantError,
};

use super::registry::Cqrs;
use super::retry::{execute_with_retry, RetryError};

/// Why a workspace was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTenantError {
    /// The slug could not be claimed (taken, invalid, or the store failed).
    #[error(transparent)]
    Slug(RetryError<SlugClaimError>),
    /// The tenant refused or could not be stored; the slug was given back.
    #[error(transparent)]
    Tenant(RetryError<TenantError>),
}

/// Creates the workspace `command` describes (a [`TenantAction::Create`]) under `slug`,
/// recording both commands with `metadata`.
pub async fn create_tenant(
    slugs: &Cqrs<SlugClaim>,
    tenants: &Cqrs<Tenant>,
    slug: &str,
    command: TenantCommand,
    metadata: &HashMap<String, String>,
) -> Result<(), CreateTenantError> {
    let tenant_id = match &command.action {
        TenantAction::Create(create) => create.tenant_id.clone(),
        // Not a creation: the tenant aggregate says what it says of a stray command.
        _ => String::new(),
    };
    let claim = || SlugClaimCommand::Claim {
        tenant_id: tenant_id.clone(),
    };
    execute_with_retry(slugs, slug, metadata, claim)
        .await
        .map_err(CreateTenantError::Slug)?;
    if let Err(error) = execute_with_retry(tenants, &tenant_id, metadata, || command.clone()).await
    {
        let release = || SlugClaimCommand::Release {
            tenant_id: tenant_id.clone(),
        };
        if let Err(release_error) = execute_with_retry(slugs, slug, metadata, release).await {
            // The slug stays claimed by a tenant that does not exist; the operator sees it.
            tracing::error!(%release_error, %slug, "could not release the slug of a refused creation");
        }
        return Err(CreateTenantError::Tenant(error));
    }
    Ok(())
}
