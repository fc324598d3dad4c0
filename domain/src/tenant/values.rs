//! Validated values the tenant's commands share: identifiers, bounded text, e-mail addresses
//! and ISO 3166-1 alpha-2 country codes.
//!
//! Lengths are counted in characters, not bytes, because they are limits people meet in
//! forms; text is trimmed before it is checked and stored, so "  Acme " and "Acme" are the
//! same value and re-saving one over the other records no change.

use std::fmt;

use super::branding::EmailTemplateKey;
use super::error::TenantError;
use crate::text::{first_disallowed_char, is_bidi_control, TextShape};

/// Longest identifier (tenant, member, partner and plan ids, SSO subjects), in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 64;
/// Longest organization name, in characters.
pub const MAX_ORGANIZATION_NAME_CHARS: usize = 200;
/// Longest member display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// Longest e-mail address (RFC 5321 path limit minus the angle brackets), in characters.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest local part of an e-mail address (RFC 5321), in characters.
const MAX_EMAIL_LOCAL_CHARS: usize = 64;
/// Longest DNS label, in characters.
const MAX_DNS_LABEL_CHARS: usize = 63;
/// Fewest seats a tenant can be created with.
pub const MIN_SEATS: u32 = 1;
/// Most seats a tenant can be created with.
pub const MAX_SEATS: u32 = 10_000;

/// A text field named in [`TenantError::Blank`], [`TenantError::TooLong`] and
/// [`TenantError::InvalidIdentifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// The tenant id.
    TenantId,
    /// A member id.
    MemberId,
    /// The owning partner's id.
    PartnerId,
    /// The plan id.
    Plan,
    /// An SSO subject.
    Subject,
    /// A distribution list id.
    ListId,
    /// The organization name.
    OrganizationName,
    /// A member's display name.
    DisplayName,
    /// The billing company name.
    Company,
    /// The billing VAT id.
    VatId,
    /// The branded product name.
    ProductName,
    /// The subject of an e-mail template override.
    TemplateSubject(EmailTemplateKey),
    /// The body of an e-mail template override.
    TemplateBody(EmailTemplateKey),
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextField::TenantId => f.write_str("tenant id"),
            TextField::MemberId => f.write_str("member id"),
            TextField::PartnerId => f.write_str("partner id"),
            TextField::Plan => f.write_str("plan"),
            TextField::Subject => f.write_str("SSO subject"),
            TextField::ListId => f.write_str("list id"),
            TextField::OrganizationName => f.write_str("organization name"),
            TextField::DisplayName => f.write_str("display name"),
            TextField::Company => f.write_str("company"),
            TextField::VatId => f.write_str("VAT id"),
            TextField::ProductName => f.write_str("product name"),
            TextField::TemplateSubject(key) => write!(f, "subject of the {key} template"),
            TextField::TemplateBody(key) => write!(f, "body of the {key} template"),
        }
    }
}

/// An identifier chosen by the caller: non-blank, at most [`MAX_IDENTIFIER_CHARS`], without
/// whitespace or control characters. Not trimmed: an id is compared byte for byte, so a
/// stray space is a caller bug to report, not to repair.
pub(crate) fn identifier(field: TextField, value: String) -> Result<String, TenantError> {
    if value.trim().is_empty() {
        return Err(TenantError::Blank { field });
    }
    let chars = value.chars().count();
    if chars > MAX_IDENTIFIER_CHARS {
        return Err(TenantError::TooLong {
            field,
            max: MAX_IDENTIFIER_CHARS,
            got: chars,
        });
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c))
    {
        return Err(TenantError::InvalidIdentifier { field, value });
    }
    Ok(value)
}

/// Required free text: trimmed, non-blank, at most `max` characters.
pub(crate) fn required_text(
    field: TextField,
    value: &str,
    max: usize,
) -> Result<String, TenantError> {
    optional_text(field, value, max)?.ok_or(TenantError::Blank { field })
}

/// Optional free text: trimmed; blank means "not set"; otherwise at most `max` characters,
/// on one line unless the field is a body of text, and free of control and direction-override
/// characters ([`crate::text`]).
pub(crate) fn optional_text(
    field: TextField,
    value: &str,
    max: usize,
) -> Result<Option<String>, TenantError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let shape = match field {
        TextField::TemplateBody(_) => TextShape::MultiLine,
        _ => TextShape::SingleLine,
    };
    if let Some(c) = first_disallowed_char(value, shape) {
        return Err(TenantError::DisallowedCharacter {
            field,
            code_point: u32::from(c),
        });
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(TenantError::TooLong {
            field,
            max,
            got: chars,
        });
    }
    Ok(Some(value.to_owned()))
}

/// A required e-mail address, trimmed.
pub(crate) fn email(value: &str) -> Result<String, TenantError> {
    optional_email(value)?.ok_or_else(|| TenantError::InvalidEmail {
        email: value.to_owned(),
    })
}

/// An optional e-mail address: blank means "not set" (the seed's `@IsEmail` on an empty
/// string turned an untouched form field into a validation error); anything else must look
/// like an address.
pub(crate) fn optional_email(value: &str) -> Result<Option<String>, TenantError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !is_plausible_email(value) {
        return Err(TenantError::InvalidEmail {
            email: value.to_owned(),
        });
    }
    Ok(Some(value.to_owned()))
}

/// Whether two e-mail addresses name the same mailbox for dezky's purposes. Case-insensitive
/// in full: RFC 5321 allows case-sensitive local parts, but no mail system dezky talks to uses
/// them, and treating `Ada@` and `ada@` as two people would let one person hold two seats.
pub(crate) fn same_email(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Whether `value` looks like an e-mail address: `local@domain`, a local part of printable
/// characters without spaces or leading, trailing or doubled dots, and a domain of at least
/// two DNS labels (letters, digits and inner hyphens; international letters allowed) whose
/// last label is not numeric. Deliverability is the mail system's business; this catches
/// typos and pasted junk.
pub fn is_plausible_email(value: &str) -> bool {
    if value.chars().count() > MAX_EMAIL_CHARS {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= MAX_EMAIL_LOCAL_CHARS
        && !local.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.chars().any(|c| {
            c.is_whitespace() || c.is_control() || is_bidi_control(c) || "()<>[]\\,;:\"".contains(c)
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.chars().count() <= MAX_DNS_LABEL_CHARS
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    local_ok && labels_ok
}

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted. Reserved and user-assigned
/// codes (`UK`, `EU`, `XK`) are not in it: a billing country must be one a tax authority
/// recognises, and an allow-list entry one a geo-IP database reports.
pub const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Whether `code` is an officially assigned ISO 3166-1 alpha-2 code (upper case).
pub fn is_country_code(code: &str) -> bool {
    COUNTRY_CODES.binary_search(&code).is_ok()
}

/// A country code from a form: trimmed and upper-cased, then checked against
/// [`COUNTRY_CODES`].
pub(crate) fn country(value: &str) -> Result<String, TenantError> {
    let code = value.trim().to_ascii_uppercase();
    if is_country_code(&code) {
        Ok(code)
    } else {
        Err(TenantError::UnknownCountry {
            code: value.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_list_is_sorted_and_unique_so_binary_search_works() {
        assert!(COUNTRY_CODES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(COUNTRY_CODES
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn assigned_country_codes_are_known_and_reserved_ones_are_not() {
        for code in ["DE", "DK", "FR", "GB", "AX", "ZW"] {
            assert!(is_country_code(code), "{code}");
        }
        for code in ["UK", "EU", "XK", "de", "D", "DEU", ""] {
            assert!(!is_country_code(code), "{code}");
        }
    }

    #[test]
    fn a_country_from_a_form_is_trimmed_and_upper_cased() {
        assert_eq!(country(" dk "), Ok("DK".to_owned()));
        assert_eq!(
            country("uk"),
            Err(TenantError::UnknownCountry { code: "uk".into() })
        );
    }

    #[test]
    fn plausible_email_addresses_are_accepted() {
        for value in [
            "ada@example.eu",
            "ada.lovelace+dezky@mail.example.co.uk",
            "o'brien@example.ie",
            "jürgen@müller.de",
            "x@a-b.io",
        ] {
            assert!(is_plausible_email(value), "{value}");
        }
    }

    #[test]
    fn implausible_email_addresses_are_refused() {
        for value in [
            "",
            "ada",
            "@example.eu",
            "ada@",
            "ada@example",
            "ada@@example.eu",
            "ada lovelace@example.eu",
            ".ada@example.eu",
            "ada.@example.eu",
            "a..da@example.eu",
            "ada@-example.eu",
            "ada@example-.eu",
            "ada@example..eu",
            "ada@example.123",
            "ada@exa_mple.eu",
            "<ada@example.eu>",
        ] {
            assert!(!is_plausible_email(value), "{value}");
        }
        let long_local = format!("{}@example.eu", "a".repeat(65));
        assert!(!is_plausible_email(&long_local));
    }

    #[test]
    fn e_mail_addresses_compare_case_insensitively() {
        assert!(same_email("Ada@Example.EU", "ada@example.eu"));
        assert!(!same_email("ada@example.eu", "ada@example.de"));
    }

    #[test]
    fn identifiers_with_spaces_are_refused_rather_than_trimmed() {
        assert_eq!(
            identifier(TextField::MemberId, "m 1".into()),
            Err(TenantError::InvalidIdentifier {
                field: TextField::MemberId,
                value: "m 1".into()
            })
        );
        assert_eq!(
            identifier(TextField::MemberId, " ".into()),
            Err(TenantError::Blank {
                field: TextField::MemberId
            })
        );
        assert_eq!(
            identifier(TextField::MemberId, "m".repeat(65)),
            Err(TenantError::TooLong {
                field: TextField::MemberId,
                max: MAX_IDENTIFIER_CHARS,
                got: 65
            })
        );
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let name = "ø".repeat(MAX_ORGANIZATION_NAME_CHARS);
        assert_eq!(
            required_text(
                TextField::OrganizationName,
                &name,
                MAX_ORGANIZATION_NAME_CHARS
            ),
            Ok(name.clone())
        );
    }
}
