//! Domain names as workspaces add them: normalized to one canonical ASCII form, so that one
//! domain has one aggregate whatever the case, trailing dot or script it was typed in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most characters of a domain name in its ASCII form (RFC 1035: 255 octets on the wire, 253
/// as text without the trailing dot).
pub const MAX_DOMAIN_CHARS: usize = 253;
/// Most characters of one label.
pub const MAX_LABEL_CHARS: usize = 63;

/// Why a text is not a domain name a workspace can add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NameProblem {
    /// Nothing but blanks.
    #[error("the domain name is empty")]
    Empty,
    /// Not convertible to ASCII under UTS #46 (invalid characters for a host name).
    #[error("'{0}' is not a valid internationalized domain name")]
    NotIdna(String),
    /// Longer than [`MAX_DOMAIN_CHARS`].
    #[error("the domain name has {got} characters; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// What was given (ASCII form).
        got: usize,
    },
    /// A single label (`localhost`) or an empty label (`a..b`).
    #[error("a domain name needs at least two non-empty labels")]
    TooFewLabels,
    /// A label longer than [`MAX_LABEL_CHARS`].
    #[error("the label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    /// A label with characters other than a–z, 0–9 and '-', or starting or ending with '-'.
    #[error("the label '{0}' may hold only a-z, 0-9 and inner hyphens")]
    InvalidLabel(String),
    /// An all-numeric top-level label (an IP address, or no real TLD).
    #[error("the top-level label '{0}' is numeric")]
    NumericTld(String),
}

/// A domain name in its canonical form: lower-case ASCII (punycode for international names),
/// no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    /// Parses what a person typed: trims, drops one trailing dot, maps through UTS #46 (case
    /// folding, punycode), then checks the host-name rules.
    pub fn parse(value: &str) -> Result<Self, NameProblem> {
        let trimmed = value.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(NameProblem::Empty);
        }
        let ascii =
            idna::domain_to_ascii(trimmed).map_err(|_| NameProblem::NotIdna(trimmed.to_owned()))?;
        if ascii.len() > MAX_DOMAIN_CHARS {
            return Err(NameProblem::TooLong {
                max: MAX_DOMAIN_CHARS,
                got: ascii.len(),
            });
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return Err(NameProblem::TooFewLabels);
        }
        for label in &labels {
            if label.len() > MAX_LABEL_CHARS {
                return Err(NameProblem::LabelTooLong((*label).to_owned()));
            }
            let valid_chars = label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_chars || label.starts_with('-') || label.ends_with('-') {
                return Err(NameProblem::InvalidLabel((*label).to_owned()));
            }
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NameProblem::NumericTld(tld.to_owned()));
        }
        Ok(Self(ascii))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name is `apex` itself.
    pub fn is(&self, apex: &DomainName) -> bool {
        self == apex
    }

    /// Whether this name lies strictly under `apex` (`mail.dezky.eu` under `dezky.eu`).
    pub fn is_under(&self, apex: &DomainName) -> bool {
        self.0
            .strip_suffix(apex.as_str())
            .is_some_and(|head| head.ends_with('.'))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> String {
        DomainName::parse(value).expect(value).as_str().to_owned()
    }

    #[test]
    fn names_are_trimmed_lower_cased_and_lose_a_trailing_dot() {
        assert_eq!(ok("  Acme.EXAMPLE.eu. "), "acme.example.eu");
    }

    #[test]
    fn international_names_become_punycode() {
        assert_eq!(ok("bücher.de"), "xn--bcher-kva.de");
        assert_eq!(ok("xn--bcher-kva.de"), "xn--bcher-kva.de");
    }

    #[test]
    fn host_name_rules_are_enforced() {
        assert_eq!(DomainName::parse(""), Err(NameProblem::Empty));
        assert_eq!(
            DomainName::parse("localhost"),
            Err(NameProblem::TooFewLabels)
        );
        assert_eq!(DomainName::parse("a..b"), Err(NameProblem::TooFewLabels));
        assert_eq!(
            DomainName::parse("-acme.eu"),
            Err(NameProblem::InvalidLabel("-acme".into()))
        );
        assert_eq!(
            DomainName::parse("acme_mail.eu"),
            Err(NameProblem::InvalidLabel("acme_mail".into()))
        );
        assert_eq!(
            DomainName::parse("192.168.1.1"),
            Err(NameProblem::NumericTld("1".into()))
        );
        let long_label = format!("{}.eu", "a".repeat(64));
        assert!(matches!(
            DomainName::parse(&long_label),
            Err(NameProblem::LabelTooLong(_))
        ));
        let long_name = format!("{}eu", "abcdefghi.".repeat(26));
        assert!(matches!(
            DomainName::parse(&long_name),
            Err(NameProblem::TooLong { .. })
        ));
    }

    #[test]
    fn under_means_strictly_below_a_label_boundary() {
        let apex = DomainName::parse("dezky.eu").expect("apex");
        let name = |v: &str| DomainName::parse(v).expect(v);
        assert!(name("acme.dezky.eu").is_under(&apex));
        assert!(name("a.b.dezky.eu").is_under(&apex));
        assert!(!name("dezky.eu").is_under(&apex));
        assert!(!name("notdezky.eu").is_under(&apex));
        assert!(name("dezky.eu").is(&apex));
    }
}
