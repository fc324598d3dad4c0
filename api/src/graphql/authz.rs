//! Who may see and do what: every authorization rule of the API, in one place.
//!
//! Roles: **platform admin** (the operator console: everything), **partner staff** (their own
//! partner's tenants only), **tenant admin** and **member** (from the tenant's read model; an
//! admin in one tenant can be a member in another). Finer rules of commands (the last-admin
//! guard, the primary-account lock, who may purge) are the Tenant aggregate's, which the API
//! reaches only after the checks here.

use dezky_commands::store::Db;
use dezky_domain::tenant::{Principal, Role};
use dezky_projections::tenants::{member_role, TenantRow};

use super::error::ApiError;

/// The authenticated caller, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The token's subject.
    pub subject: String,
    /// The token's issuer (the one configured issuer).
    pub issuer: String,
    /// The token's e-mail claim, only when the identity provider marked it verified: an
    /// unverified address never identifies anyone, and is not recorded as the actor's.
    pub email: Option<String>,
    /// Whether the caller is in the platform-admin group.
    pub platform_admin: bool,
    /// The partner the caller is staff of, if any.
    pub partner_id: Option<String>,
}

impl Viewer {
    /// The domain's view of the caller.
    pub fn principal(&self) -> Principal {
        Principal {
            subject: self.subject.clone(),
            issuer: Some(self.issuer.clone()),
            email: self.email.clone(),
            platform_admin: self.platform_admin,
            partner_id: self.partner_id.clone(),
        }
    }
}

/// What the request's token turned out to be.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No token.
    Anonymous,
    /// A valid token.
    Viewer(Viewer),
    /// A token that failed verification (why, for the error message).
    Invalid(String),
}

impl Authentication {
    /// The viewer, or `UNAUTHENTICATED`.
    pub fn viewer(&self) -> Result<&Viewer, ApiError> {
        match self {
            Authentication::Viewer(viewer) => Ok(viewer),
            Authentication::Anonymous => {
                Err(ApiError::unauthenticated("an access token is required"))
            }
            Authentication::Invalid(reason) => Err(ApiError::unauthenticated(reason.clone())),
        }
    }
}

/// How the caller stands towards one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Platform admin.
    Operator,
    /// Staff of the partner that owns the tenant.
    OwningPartner,
    /// A member of the tenant with this role.
    Member(Role),
}

/// The caller's standing towards `tenant`, or `FORBIDDEN` when they have none. The answer for
/// a tenant the caller may not see is the same as for one that does not exist, so nothing
/// leaks about other tenants.
pub async fn standing(db: &Db, viewer: &Viewer, tenant: &TenantRow) -> Result<Standing, ApiError> {
    if viewer.platform_admin {
        return Ok(Standing::Operator);
    }
    if viewer.partner_id.is_some() && viewer.partner_id == tenant.partner_id {
        return Ok(Standing::OwningPartner);
    }
    // The aggregate's own recognition rule decides (reads and writes alike): the linked
    // (issuer, subject), or a verified address before linking.
    match member_role(db, &tenant.id, &viewer.principal()).await? {
        Some(role) => Ok(Standing::Member(role)),
        None => Err(ApiError::forbidden()),
    }
}

/// Reading a tenant's profile and members: anyone with a standing.
pub fn may_read_tenant(_standing: Standing) -> Result<(), ApiError> {
    Ok(())
}

/// Reading a tenant's billing details and security policy: operators, the owning partner,
/// tenant admins (members see neither: billing contacts and network rules are the admins').
pub fn may_read_settings(standing: Standing) -> Result<(), ApiError> {
    may_read_audit(standing)
}

/// Moving the platform flag: operators only (a tenant admin can never make their own tenant
/// the platform tenant; the aggregate checks the same).
pub fn may_assign_platform_tenant(standing: Standing) -> Result<(), ApiError> {
    match standing {
        Standing::Operator => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

/// Operating the platform's machinery (projection status and rebuilds): operators only.
pub fn may_operate(viewer: &Viewer) -> Result<(), ApiError> {
    if viewer.platform_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// Reading a tenant's audit timeline: operators, the owning partner, tenant admins.
pub fn may_read_audit(standing: Standing) -> Result<(), ApiError> {
    match standing {
        Standing::Operator | Standing::OwningPartner | Standing::Member(Role::Admin) => Ok(()),
        Standing::Member(Role::Member) => Err(ApiError::forbidden()),
    }
}

/// Listing the tenant directory: operators see every tenant, partner staff their own; the
/// returned value is the partner filter to force.
pub fn directory_scope(viewer: &Viewer) -> Result<Option<String>, ApiError> {
    if viewer.platform_admin {
        Ok(None)
    } else if let Some(partner) = &viewer.partner_id {
        Ok(Some(partner.clone()))
    } else {
        Err(ApiError::forbidden())
    }
}

/// Creating a tenant: operators, or partner staff for their own partner.
pub fn may_create_tenant(viewer: &Viewer, partner_id: Option<&str>) -> Result<(), ApiError> {
    if viewer.platform_admin
        || (viewer.partner_id.is_some() && viewer.partner_id.as_deref() == partner_id)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}
