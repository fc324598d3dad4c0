//! Branding: the product name, the accent colour with its readable text colour, and per-tenant
//! e-mail template overrides.
//!
//! The text colour shown on the accent is computed here, once, when the accent is set, and
//! stored in the event: the portals, the e-mails and the audit record then agree on it, and a
//! later change of the formula cannot silently re-colour history.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::change::{apply_optional, FieldChange};
use super::error::TenantError;
use super::values::{optional_text, required_text, TextField};

/// Longest branded product name, in characters.
pub const MAX_PRODUCT_NAME_CHARS: usize = 60;
/// Longest e-mail template subject, in characters.
pub const MAX_TEMPLATE_SUBJECT_CHARS: usize = 200;
/// Longest e-mail template body, in characters.
pub const MAX_TEMPLATE_BODY_CHARS: usize = 20_000;

/// The e-mails a tenant may override. The set is fixed because each key is a template the
/// platform actually sends; an override for anything else would be stored and never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTemplateKey {
    /// The invitation a new member receives.
    Invitation,
    /// The password-reset message.
    PasswordReset,
    /// The confirmation a booking attendee receives.
    BookingConfirmation,
}

impl EmailTemplateKey {
    /// Every key, in a stable order.
    pub const ALL: [EmailTemplateKey; 3] = [
        EmailTemplateKey::Invitation,
        EmailTemplateKey::PasswordReset,
        EmailTemplateKey::BookingConfirmation,
    ];

    /// The key as it appears in commands and events (`password_reset`).
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTemplateKey::Invitation => "invitation",
            EmailTemplateKey::PasswordReset => "password_reset",
            EmailTemplateKey::BookingConfirmation => "booking_confirmation",
        }
    }

    /// The key named `value`, if it is one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.as_str() == value)
    }
}

impl fmt::Display for EmailTemplateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An e-mail template override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplate {
    /// Subject line (trimmed, non-blank, at most [`MAX_TEMPLATE_SUBJECT_CHARS`]).
    pub subject: String,
    /// Body (non-blank, at most [`MAX_TEMPLATE_BODY_CHARS`]); stored as given, because
    /// leading and trailing whitespace can be part of a template's layout.
    pub body: String,
}

/// Black or white: the text colour that reads best on an accent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextColour {
    /// `#000000`.
    Black,
    /// `#FFFFFF`.
    White,
}

impl TextColour {
    /// The colour as `#RRGGBB`.
    pub fn hex(self) -> &'static str {
        match self {
            TextColour::Black => "#000000",
            TextColour::White => "#FFFFFF",
        }
    }
}

/// An accent colour with the text colour computed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accent {
    /// The accent as `#RRGGBB`, upper case.
    pub colour: String,
    /// Black or white, whichever contrasts more with the accent.
    pub text_colour: TextColour,
    /// The WCAG 2.x contrast ratio of `text_colour` on `colour`, in hundredths, rounded down
    /// (451 = 4.51:1). Integer, like every number on the ledger, so the stored bytes do not
    /// depend on float formatting; rounded down because WCAG forbids rounding a ratio up to
    /// meet a threshold.
    pub contrast_ratio_centi: u32,
}

/// Parses `#RRGGBB` (hex digits in either case) into its channels.
pub fn parse_hex_colour(value: &str) -> Option<[u8; 3]> {
    let hex = value.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |at: usize| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// The WCAG 2.x relative luminance of an sRGB colour, from 0 (black) to 1 (white).
///
/// Uses the sRGB linearization threshold 0.04045 (WCAG 2.0 printed 0.03928; for 8-bit
/// channels both give the same result, and WCAG 2.2 notes the correction).
pub fn relative_luminance([r, g, b]: [u8; 3]) -> f64 {
    fn linear(channel: u8) -> f64 {
        let s = f64::from(channel) / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    }
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

/// The WCAG 2.x contrast ratio of two luminances, from 1 to 21 (order does not matter).
pub fn contrast_ratio(luminance_a: f64, luminance_b: f64) -> f64 {
    let (lighter, darker) = if luminance_a >= luminance_b {
        (luminance_a, luminance_b)
    } else {
        (luminance_b, luminance_a)
    };
    (lighter + 0.05) / (darker + 0.05)
}

/// The accent for `#RRGGBB` with its readable text colour, or `None` if it is not `#RRGGBB`.
///
/// No accent is refused for poor contrast: whichever of black and white contrasts more always
/// reaches at least 4.58:1 (the worst case is a luminance of about 0.179, where both give
/// √21 ≈ 4.58), above the WCAG AA threshold of 4.5:1 for normal text.
pub fn readable_accent(value: &str) -> Option<Accent> {
    let rgb = parse_hex_colour(value)?;
    let luminance = relative_luminance(rgb);
    let on_black = contrast_ratio(luminance, 0.0);
    let on_white = contrast_ratio(luminance, 1.0);
    let (text_colour, ratio) = if on_black >= on_white {
        (TextColour::Black, on_black)
    } else {
        (TextColour::White, on_white)
    };
    // The ratio lies in [1, 21], so the product fits a u32 and the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let contrast_ratio_centi = (ratio * 100.0).floor() as u32;
    Some(Accent {
        colour: value.to_ascii_uppercase(),
        text_colour,
        contrast_ratio_centi,
    })
}

/// A tenant's branding. Every part is optional: unset means the platform's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// The product name shown instead of "dezky".
    pub product_name: Option<String>,
    /// The accent colour.
    pub accent: Option<Accent>,
    /// The overridden e-mail templates.
    pub email_templates: BTreeMap<EmailTemplateKey, EmailTemplate>,
}

/// An update of the branding. Fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandingPatch {
    /// The new product name; blank clears it.
    pub product_name: Option<String>,
    /// The new accent as `#RRGGBB`; blank clears it.
    pub accent_colour: Option<String>,
    /// Template overrides by key (`invitation`, `password_reset`, `booking_confirmation`):
    /// `Some` sets the override, `None` removes it. Keys are strings so that an unknown key
    /// from a client is refused by name instead of failing to deserialize.
    pub email_templates: BTreeMap<String, Option<EmailTemplate>>,
}

impl BrandingPatch {
    /// The branding after this patch, or why the patch is refused.
    pub(crate) fn applied_to(self, current: &Branding) -> Result<Branding, TenantError> {
        let mut next = current.clone();
        if let Some(name) = self.product_name {
            next.product_name =
                optional_text(TextField::ProductName, &name, MAX_PRODUCT_NAME_CHARS)?;
        }
        if let Some(colour) = self.accent_colour {
            let colour = colour.trim();
            next.accent = if colour.is_empty() {
                None
            } else {
                Some(
                    readable_accent(colour).ok_or_else(|| TenantError::InvalidAccentColour {
                        value: colour.to_owned(),
                    })?,
                )
            };
        }
        for (name, template) in self.email_templates {
            let Some(key) = EmailTemplateKey::parse(&name) else {
                return Err(TenantError::UnknownEmailTemplate { key: name });
            };
            match template {
                Some(template) => {
                    next.email_templates
                        .insert(key, checked_template(key, template)?);
                }
                None => {
                    next.email_templates.remove(&key);
                }
            }
        }
        Ok(next)
    }
}

fn checked_template(
    key: EmailTemplateKey,
    template: EmailTemplate,
) -> Result<EmailTemplate, TenantError> {
    let subject = required_text(
        TextField::TemplateSubject(key),
        &template.subject,
        MAX_TEMPLATE_SUBJECT_CHARS,
    )?;
    let field = TextField::TemplateBody(key);
    if template.body.trim().is_empty() {
        return Err(TenantError::Blank { field });
    }
    let chars = template.body.chars().count();
    if chars > MAX_TEMPLATE_BODY_CHARS {
        return Err(TenantError::TooLong {
            field,
            max: MAX_TEMPLATE_BODY_CHARS,
            got: chars,
        });
    }
    Ok(EmailTemplate {
        subject,
        body: template.body,
    })
}

/// The branding fields a command changed. One field per template key (rather than a map)
/// keeps the event a flat `{field: {from, to}}` object like every other update event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandingChanges {
    /// The product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<FieldChange<String>>,
    /// The accent (with its computed text colour and contrast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent: Option<FieldChange<Accent>>,
    /// The invitation template override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_template: Option<FieldChange<EmailTemplate>>,
    /// The password-reset template override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_reset_template: Option<FieldChange<EmailTemplate>>,
    /// The booking-confirmation template override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_confirmation_template: Option<FieldChange<EmailTemplate>>,
}

impl BrandingChanges {
    /// The changes that turn `from` into `to`.
    pub fn between(from: &Branding, to: &Branding) -> Self {
        let template = |key: EmailTemplateKey| {
            FieldChange::between(
                &from.email_templates.get(&key).cloned(),
                &to.email_templates.get(&key).cloned(),
            )
        };
        Self {
            product_name: FieldChange::between(&from.product_name, &to.product_name),
            accent: FieldChange::between(&from.accent, &to.accent),
            invitation_template: template(EmailTemplateKey::Invitation),
            password_reset_template: template(EmailTemplateKey::PasswordReset),
            booking_confirmation_template: template(EmailTemplateKey::BookingConfirmation),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The change of one template's override.
    pub fn template(&self, key: EmailTemplateKey) -> &Option<FieldChange<EmailTemplate>> {
        match key {
            EmailTemplateKey::Invitation => &self.invitation_template,
            EmailTemplateKey::PasswordReset => &self.password_reset_template,
            EmailTemplateKey::BookingConfirmation => &self.booking_confirmation_template,
        }
    }

    /// Applies the changes to `branding`.
    pub fn apply_to(&self, branding: &mut Branding) {
        apply_optional(&mut branding.product_name, &self.product_name);
        apply_optional(&mut branding.accent, &self.accent);
        for key in EmailTemplateKey::ALL {
            if let Some(change) = self.template(key) {
                match &change.to {
                    Some(template) => {
                        branding.email_templates.insert(key, template.clone());
                    }
                    None => {
                        branding.email_templates.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accent(value: &str) -> Accent {
        readable_accent(value).expect("a #RRGGBB colour")
    }

    #[test]
    fn white_takes_black_text_at_the_maximum_ratio_of_21() {
        assert_eq!(
            accent("#ffffff"),
            Accent {
                colour: "#FFFFFF".into(),
                text_colour: TextColour::Black,
                contrast_ratio_centi: 2100
            }
        );
    }

    #[test]
    fn black_takes_white_text_at_the_maximum_ratio_of_21() {
        let black = accent("#000000");
        assert_eq!(black.text_colour, TextColour::White);
        assert_eq!(black.contrast_ratio_centi, 2100);
    }

    #[test]
    fn known_colours_get_their_published_contrast_ratios() {
        // #767676 is the darkest grey that passes AA on white (4.54:1), but black on it
        // reads slightly better (4.62:1); #777777 is the classic 4.48:1-on-white failure.
        let cases = [
            ("#767676", TextColour::Black, 462),
            ("#777777", TextColour::Black, 468),
            ("#0000FF", TextColour::White, 859),
            ("#FF0000", TextColour::Black, 525),
            ("#00FF00", TextColour::Black, 1530),
            ("#FFFF00", TextColour::Black, 1955),
        ];
        for (colour, text_colour, centi) in cases {
            let got = accent(colour);
            assert_eq!(
                (got.text_colour, got.contrast_ratio_centi),
                (text_colour, centi),
                "{colour}"
            );
        }
        let on_white = contrast_ratio(relative_luminance([0x77, 0x77, 0x77]), 1.0);
        assert!((on_white - 4.478).abs() < 0.001, "{on_white}");
    }

    #[test]
    fn every_colour_has_at_least_4_58_to_1_with_black_or_white() {
        // Luminance is monotonic in each channel, so a grid through the whole cube plus the
        // greys around the crossover (luminance ≈ 0.179) covers the minimum.
        let steps: Vec<u8> = (0..=255).step_by(5).collect();
        let mut worst = u32::MAX;
        for &r in &steps {
            for &g in &steps {
                for &b in &steps {
                    let colour = format!("#{r:02X}{g:02X}{b:02X}");
                    worst = worst.min(accent(&colour).contrast_ratio_centi);
                }
            }
        }
        for grey in 0x70..=0x80u8 {
            let colour = format!("#{grey:02X}{grey:02X}{grey:02X}");
            worst = worst.min(accent(&colour).contrast_ratio_centi);
        }
        assert!(worst >= 458, "worst contrast {worst}");
    }

    #[test]
    fn only_six_digit_hex_colours_parse() {
        assert_eq!(parse_hex_colour("#0a84FF"), Some([0x0A, 0x84, 0xFF]));
        for value in [
            "0A84FF", "#0A84F", "#0A84FFF", "#0A84FG", "#fff", "", "#+A84FF",
        ] {
            assert_eq!(parse_hex_colour(value), None, "{value}");
        }
    }

    #[test]
    fn template_keys_round_trip_through_their_names() {
        for key in EmailTemplateKey::ALL {
            assert_eq!(EmailTemplateKey::parse(key.as_str()), Some(key));
            assert_eq!(
                serde_json::to_value(key).expect("serializes"),
                serde_json::Value::from(key.as_str())
            );
        }
        assert_eq!(EmailTemplateKey::parse("welcome"), None);
    }
}
