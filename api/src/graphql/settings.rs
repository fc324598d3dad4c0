//! Tenant settings over GraphQL: billing details, branding and security policy (read and
//! update), plus the operator-only lifecycle mutations that sit beside them.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use dezky_domain::tenant::{
    BillingInfo, BillingInfoPatch, Branding, BrandingPatch, EmailTemplate, MfaMode,
    PlatformFlagCommand, SecurityPolicy, SecurityPolicyPatch, TenantAction, TenantStatus,
    PLATFORM_FLAG_ID,
};

use super::authz;
use super::error::{from_aggregate, ApiError, Code};
use super::schema::{api, auth, find_tenant, run_tenant_command, Tenant};

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// Whether members must use a second factor.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "MfaMode", name = "MfaMode")]
pub enum MfaModeGql {
    /// No second factor is asked for.
    Off,
    /// Members may enroll a second factor.
    Optional,
    /// Every member must use a second factor.
    Required,
}

/// A tenant's billing details; unset fields are null.
#[derive(SimpleObject)]
#[graphql(name = "BillingInfo")]
pub struct BillingInfoGql {
    /// Company name.
    pub company: Option<String>,
    /// VAT id, normalized (`DE123456789`).
    pub vat_id: Option<String>,
    /// Country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Billing contact e-mail.
    pub contact_email: Option<String>,
}

impl From<BillingInfo> for BillingInfoGql {
    fn from(value: BillingInfo) -> Self {
        Self {
            company: value.company,
            vat_id: value.vat_id,
            country: value.country,
            contact_email: value.contact_email,
        }
    }
}

/// An e-mail template override.
#[derive(SimpleObject)]
pub struct EmailTemplateOverride {
    /// Which template (`invitation`, `password_reset`, `booking_confirmation`).
    pub key: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// A tenant's branding; unset parts mean the platform's default.
#[derive(SimpleObject)]
#[graphql(name = "Branding")]
pub struct BrandingGql {
    /// The product name shown instead of "dezky".
    pub product_name: Option<String>,
    /// The accent colour as `#RRGGBB`.
    pub accent_colour: Option<String>,
    /// The text colour computed to read best on the accent (`#000000` or `#FFFFFF`).
    pub accent_text_colour: Option<String>,
    /// The WCAG contrast ratio of that text on the accent, rounded down to hundredths.
    pub accent_contrast_ratio: Option<f64>,
    /// The overridden e-mail templates.
    pub email_templates: Vec<EmailTemplateOverride>,
}

impl From<Branding> for BrandingGql {
    fn from(value: Branding) -> Self {
        let accent = value.accent;
        Self {
            product_name: value.product_name,
            accent_colour: accent.as_ref().map(|a| a.colour.clone()),
            accent_text_colour: accent.as_ref().map(|a| a.text_colour.hex().to_owned()),
            accent_contrast_ratio: accent
                .as_ref()
                .map(|a| f64::from(a.contrast_ratio_centi) / 100.0),
            email_templates: value
                .email_templates
                .into_iter()
                .map(|(key, template)| EmailTemplateOverride {
                    key: key.as_str().to_owned(),
                    subject: template.subject,
                    body: template.body,
                })
                .collect(),
        }
    }
}

/// A tenant's security policy.
#[derive(SimpleObject)]
#[graphql(name = "SecurityPolicy")]
pub struct SecurityPolicyGql {
    /// MFA mode.
    pub mfa_mode: MfaModeGql,
    /// Minutes of inactivity after which a session ends.
    pub session_idle_minutes: u32,
    /// Minutes after sign-in after which a session ends regardless of activity.
    pub session_absolute_minutes: u32,
    /// Countries sign-ins may come from; empty means anywhere.
    pub allowed_countries: Vec<String>,
    /// Networks sign-ins may come from (CIDR); empty means any.
    pub ip_allowlist: Vec<String>,
}

impl From<SecurityPolicy> for SecurityPolicyGql {
    fn from(value: SecurityPolicy) -> Self {
        Self {
            mfa_mode: value.mfa_mode.into(),
            session_idle_minutes: value.session_idle_minutes,
            session_absolute_minutes: value.session_absolute_minutes,
            allowed_countries: value.allowed_countries,
            ip_allowlist: value.ip_allowlist,
        }
    }
}

/// `updateBillingInfo` input: fields left out keep their value, a blank string clears one
/// (a blank contact e-mail means "not set").
#[derive(InputObject)]
pub struct BillingInfoInput {
    /// Company name.
    pub company: Option<String>,
    /// VAT id (spaces are removed, letters upper-cased).
    pub vat_id: Option<String>,
    /// Country code (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Billing contact e-mail.
    pub contact_email: Option<String>,
}

/// An e-mail template to set.
#[derive(InputObject)]
pub struct EmailTemplateInput {
    /// Which template (`invitation`, `password_reset`, `booking_confirmation`).
    pub key: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// `updateBranding` input: fields left out keep their value, a blank string clears one.
#[derive(InputObject)]
pub struct BrandingInput {
    /// Product name.
    pub product_name: Option<String>,
    /// Accent colour as `#RRGGBB`; the readable text colour is computed.
    pub accent_colour: Option<String>,
    /// Templates to set or replace.
    #[graphql(default)]
    pub set_email_templates: Vec<EmailTemplateInput>,
    /// Keys of overrides to remove (back to the platform's template).
    #[graphql(default)]
    pub remove_email_templates: Vec<String>,
}

/// `updateSecurityPolicy` input: fields left out keep their value; lists replace the whole list.
#[derive(InputObject)]
pub struct SecurityPolicyInput {
    /// MFA mode.
    pub mfa_mode: Option<MfaModeGql>,
    /// Idle timeout in minutes.
    pub session_idle_minutes: Option<u32>,
    /// Absolute session lifetime in minutes.
    pub session_absolute_minutes: Option<u32>,
    /// Allowed countries (ISO 3166-1 alpha-2); empty allows every country.
    pub allowed_countries: Option<Vec<String>>,
    /// Allowed networks (CIDR or single addresses); empty allows every network.
    pub ip_allowlist: Option<Vec<String>>,
}

/// `inviteAdmin` input.
#[derive(InputObject)]
pub struct InviteAdminInput {
    /// The tenant.
    pub tenant_id: ID,
    /// The outside address the admin signs in with.
    pub email: String,
    /// Display name.
    pub display_name: String,
}

/// The settings documents of a tenant, read once per request field.
async fn settings_of(
    ctx: &Context<'_>,
    tenant: &Tenant,
) -> std::result::Result<dezky_projections::settings::SettingsRow, ApiError> {
    let db = api(ctx).ledger.db();
    dezky_projections::settings::tenant_settings(db, tenant.id_str())
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "the tenant has no settings (purged)"))
}

/// Settings fields of [`Tenant`] (merged into its object in `schema.rs`).
impl Tenant {
    pub(super) async fn billing_info_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<BillingInfoGql, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let standing = authz::standing(api(ctx).ledger.db(), viewer, self.row()).await?;
        authz::may_read_settings(standing)?;
        Ok(settings_of(ctx, self).await?.billing.into())
    }

    pub(super) async fn branding_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<BrandingGql, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let standing = authz::standing(api(ctx).ledger.db(), viewer, self.row()).await?;
        authz::may_read_tenant(standing)?;
        Ok(settings_of(ctx, self).await?.branding.into())
    }

    pub(super) async fn security_policy_field(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<SecurityPolicyGql, ApiError> {
        let viewer = auth(ctx).viewer()?;
        let standing = authz::standing(api(ctx).ledger.db(), viewer, self.row()).await?;
        authz::may_read_settings(standing)?;
        Ok(settings_of(ctx, self).await?.security_policy.into())
    }
}

/// Mutations on a tenant's settings and the operator-only lifecycle.
#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Updates billing details (tenant admins, the owning partner, operators).
    async fn update_billing_info(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        input: BillingInfoInput,
    ) -> Result<Tenant> {
        let patch = BillingInfoPatch {
            company: input.company,
            vat_id: input.vat_id,
            country: input.country,
            contact_email: input.contact_email,
        };
        let action = TenantAction::UpdateBillingInfo(patch);
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Updates branding (tenant admins, the owning partner, operators).
    async fn update_branding(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        input: BrandingInput,
    ) -> Result<Tenant> {
        let mut email_templates = BTreeMap::new();
        for template in input.set_email_templates {
            let value = EmailTemplate {
                subject: template.subject,
                body: template.body,
            };
            if email_templates
                .insert(template.key.clone(), Some(value))
                .is_some()
            {
                return Err(ApiError::new(
                    Code::Validation,
                    format!("template '{}' is given twice", template.key),
                )
                .into());
            }
        }
        for key in input.remove_email_templates {
            if email_templates.insert(key.clone(), None).is_some() {
                return Err(ApiError::new(
                    Code::Validation,
                    format!("template '{key}' is both set and removed"),
                )
                .into());
            }
        }
        let patch = BrandingPatch {
            product_name: input.product_name,
            accent_colour: input.accent_colour,
            email_templates,
        };
        let action = TenantAction::UpdateBranding(patch);
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Updates the security policy (tenant admins, the owning partner, operators).
    async fn update_security_policy(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        input: SecurityPolicyInput,
    ) -> Result<Tenant> {
        let patch = SecurityPolicyPatch {
            mfa_mode: input.mfa_mode.map(Into::into),
            session_idle_minutes: input.session_idle_minutes,
            session_absolute_minutes: input.session_absolute_minutes,
            allowed_countries: input.allowed_countries,
            ip_allowlist: input.ip_allowlist,
        };
        let action = TenantAction::UpdateSecurityPolicy(patch);
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Invites an admin who signs in with an outside address and has no mailbox.
    async fn invite_admin(&self, ctx: &Context<'_>, input: InviteAdminInput) -> Result<Tenant> {
        let member = dezky_domain::tenant::NewMember {
            member_id: api(ctx).ids.next(),
            email: input.email,
            display_name: input.display_name,
        };
        let action = TenantAction::InviteAdmin(member);
        Ok(run_tenant_command(ctx, &input.tenant_id, action).await?)
    }

    /// Ends all of a member's sessions (never one's own: sign out instead).
    async fn force_logout(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::ForceLogout {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Gives a member a new one-time password (set by the identity provider's saga).
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
    ) -> Result<Tenant> {
        let action = TenantAction::ResetPassword {
            member_id: member_id.0,
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Links a member to their single sign-on identity (this deployment's issuer and
    /// `subject`): operators for anyone, a member for themself with the subject of their own
    /// token. From then on the member is recognised by that identity alone.
    async fn link_member_subject(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        member_id: ID,
        subject: String,
    ) -> Result<Tenant> {
        let issuer = auth(ctx).viewer()?.issuer.clone();
        let action = TenantAction::LinkMemberSubject {
            member_id: member_id.0,
            subject,
            issuer: Some(issuer),
        };
        Ok(run_tenant_command(ctx, &tenant_id, action).await?)
    }

    /// Purges a soft-deleted tenant for good (operators only); its slug becomes reusable.
    async fn purge_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> Result<Tenant> {
        Ok(run_tenant_command(ctx, &tenant_id, TenantAction::Purge).await?)
    }

    /// Makes a tenant the platform tenant, clearing the flag on the previous one in the same
    /// event (operators only).
    async fn set_platform_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> Result<Tenant> {
        let viewer = auth(ctx).viewer()?;
        let row = find_tenant(ctx, Some(&tenant_id), None).await?;
        let standing = authz::standing(api(ctx).ledger.db(), viewer, &row).await?;
        authz::may_assign_platform_tenant(standing)?;
        if matches!(row.status, TenantStatus::SoftDeleted | TenantStatus::Purged) {
            return Err(ApiError::new(
                Code::Conflict,
                "a deleted tenant cannot be the platform tenant",
            )
            .into());
        }
        let api = api(ctx);
        let command = PlatformFlagCommand::Assign {
            ctx: super::schema::command_context(ctx, viewer),
            tenant_id: row.id.clone(),
        };
        api.platform_flag
            .execute_with_metadata(PLATFORM_FLAG_ID, command, api.metadata(viewer, &row.id))
            .await
            .map_err(from_aggregate)?;
        api.read_your_writes(super::schema::read_your_writes_timeout())
            .await;
        Ok(Tenant::from_row(
            find_tenant(ctx, Some(&tenant_id), None).await?,
        ))
    }
}
