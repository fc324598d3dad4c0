//! Billing details: the company invoices are made out to, its VAT id, country and billing
//! contact. (Plan, seats and money live in the Subscription aggregate.)

use serde::{Deserialize, Serialize};

use super::change::{apply_optional, FieldChange};
use super::error::TenantError;
use super::values::{country, optional_email, optional_text, TextField};

/// Longest billing company name, in characters.
pub const MAX_COMPANY_CHARS: usize = 200;
/// Longest VAT id after normalization, in characters (the longest national formats, such as
/// Switzerland's `CHE-123.456.789MWST`, stay well below it).
pub const MAX_VAT_ID_CHARS: usize = 32;

/// A tenant's billing details. Every field is optional: a workspace can exist before anyone
/// has filled in the billing form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingInfo {
    /// Company name on invoices.
    pub company: Option<String>,
    /// VAT id, upper case without spaces (`DE123456789`).
    pub vat_id: Option<String>,
    /// Country, ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Billing contact e-mail.
    pub contact_email: Option<String>,
}

/// An update of the billing details. Fields left `None` keep their value; a blank string
/// clears the field (for the e-mail too: blank means "not set", never a validation error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingInfoPatch {
    /// Company name.
    pub company: Option<String>,
    /// VAT id; spaces are removed and letters upper-cased.
    pub vat_id: Option<String>,
    /// Country code; trimmed and upper-cased.
    pub country: Option<String>,
    /// Billing contact e-mail.
    pub contact_email: Option<String>,
}

impl BillingInfoPatch {
    /// The billing details after this patch, or why the patch is refused.
    pub(crate) fn applied_to(self, current: &BillingInfo) -> Result<BillingInfo, TenantError> {
        let mut next = current.clone();
        if let Some(company) = self.company {
            next.company = optional_text(TextField::Company, &company, MAX_COMPANY_CHARS)?;
        }
        if let Some(vat_id) = self.vat_id {
            next.vat_id = normalized_vat_id(&vat_id)?;
        }
        if let Some(code) = self.country {
            next.country = if code.trim().is_empty() {
                None
            } else {
                Some(country(&code)?)
            };
        }
        if let Some(email) = self.contact_email {
            next.contact_email = optional_email(&email)?;
        }
        Ok(next)
    }
}

/// A VAT id as people type it (`de 123 456 789`) in the one form invoices and tax lookups use
/// (`DE123456789`). Only the shape is checked (letters, digits, `-`, `.`, `/`): VAT formats
/// differ per country and the authoritative check is the tax authority's (VIES), not ours.
fn normalized_vat_id(value: &str) -> Result<Option<String>, TenantError> {
    let normalized: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    let Some(normalized) = optional_text(TextField::VatId, &normalized, MAX_VAT_ID_CHARS)? else {
        return Ok(None);
    };
    if !normalized
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '/'))
    {
        return Err(TenantError::InvalidVatId {
            vat_id: value.trim().to_owned(),
        });
    }
    Ok(Some(normalized))
}

/// The billing fields a command changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingChanges {
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<FieldChange<String>>,
    /// VAT id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<FieldChange<String>>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<FieldChange<String>>,
    /// Billing contact e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<FieldChange<String>>,
}

impl BillingChanges {
    /// The changes that turn `from` into `to`.
    pub fn between(from: &BillingInfo, to: &BillingInfo) -> Self {
        Self {
            company: FieldChange::between(&from.company, &to.company),
            vat_id: FieldChange::between(&from.vat_id, &to.vat_id),
            country: FieldChange::between(&from.country, &to.country),
            contact_email: FieldChange::between(&from.contact_email, &to.contact_email),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the changes to `billing`.
    pub fn apply_to(&self, billing: &mut BillingInfo) {
        apply_optional(&mut billing.company, &self.company);
        apply_optional(&mut billing.vat_id, &self.vat_id);
        apply_optional(&mut billing.country, &self.country);
        apply_optional(&mut billing.contact_email, &self.contact_email);
    }
}
