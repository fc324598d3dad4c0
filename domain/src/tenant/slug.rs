//! The tenant slug: the short name in URLs, the tenant's service sub-domain
//! (`{slug}.<platform apex>`), its SSO group and its storage space name.
//!
//! Because it becomes a DNS label and a host name under the platform apex, it obeys DNS label
//! rules and may not shadow the platform's own hosts. Uniqueness across tenants is not checked
//! here but by [`crate::tenant::SlugClaim`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Shortest slug, in characters.
pub const MIN_SLUG_CHARS: usize = 3;
/// Longest slug, in characters: the DNS label limit, since the slug becomes one.
pub const MAX_SLUG_CHARS: usize = 63;

/// Slugs no tenant may take, sorted. They name the platform's own hosts under the apex (a
/// tenant called `auth` would own `auth.<apex>`, the sign-in host), mail-client discovery
/// names, well-known role mailboxes, and words that would make a tenant look like dezky.
pub const RESERVED_SLUGS: &[&str] = &[
    "abuse",
    "account",
    "accounts",
    "admin",
    "administrator",
    "api",
    "app",
    "apps",
    "assets",
    "auth",
    "autoconfig",
    "autodiscover",
    "billing",
    "booking",
    "caldav",
    "carddav",
    "cdn",
    "dav",
    "dezky",
    "docs",
    "ftp",
    "help",
    "hostmaster",
    "imap",
    "jmap",
    "login",
    "mail",
    "minio",
    "mta-sts",
    "ocis",
    "operator",
    "partner",
    "partners",
    "platform",
    "pop",
    "pop3",
    "portal",
    "postmaster",
    "root",
    "smtp",
    "sso",
    "static",
    "status",
    "support",
    "system",
    "webmail",
    "webmaster",
    "www",
];

/// Why a slug is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlugProblem {
    /// Fewer than [`MIN_SLUG_CHARS`] characters.
    TooShort {
        /// The limit.
        min: usize,
        /// The length given.
        got: usize,
    },
    /// More than [`MAX_SLUG_CHARS`] characters.
    TooLong {
        /// The limit.
        max: usize,
        /// The length given.
        got: usize,
    },
    /// A character other than `a`–`z`, `0`–`9` and `-`.
    InvalidCharacter {
        /// The first offending character.
        character: char,
    },
    /// Starts or ends with a hyphen (not a valid DNS label).
    EdgeHyphen,
    /// Contains `--` (reserved in DNS labels for encodings such as punycode's `xn--`).
    DoubleHyphen,
    /// One of [`RESERVED_SLUGS`].
    Reserved,
}

impl fmt::Display for SlugProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlugProblem::TooShort { min, got } => {
                write!(f, "it has {got} characters; the minimum is {min}")
            }
            SlugProblem::TooLong { max, got } => {
                write!(f, "it has {got} characters; the maximum is {max}")
            }
            SlugProblem::InvalidCharacter { character } => {
                write!(f, "'{character}' is not allowed (only a-z, 0-9 and '-')")
            }
            SlugProblem::EdgeHyphen => f.write_str("it starts or ends with a hyphen"),
            SlugProblem::DoubleHyphen => f.write_str("it contains a double hyphen"),
            SlugProblem::Reserved => f.write_str("it is reserved"),
        }
    }
}

/// A valid slug.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Checks a slug. Nothing is normalized: the slug is an identifier the person chose and
    /// sees in URLs, so `Acme` is refused rather than silently becoming `acme`.
    pub fn parse(value: &str) -> Result<Self, SlugProblem> {
        let chars = value.chars().count();
        if chars < MIN_SLUG_CHARS {
            return Err(SlugProblem::TooShort {
                min: MIN_SLUG_CHARS,
                got: chars,
            });
        }
        if chars > MAX_SLUG_CHARS {
            return Err(SlugProblem::TooLong {
                max: MAX_SLUG_CHARS,
                got: chars,
            });
        }
        if let Some(character) = value
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(SlugProblem::InvalidCharacter { character });
        }
        if value.starts_with('-') || value.ends_with('-') {
            return Err(SlugProblem::EdgeHyphen);
        }
        if value.contains("--") {
            return Err(SlugProblem::DoubleHyphen);
        }
        if RESERVED_SLUGS.binary_search(&value).is_ok() {
            return Err(SlugProblem::Reserved);
        }
        Ok(Self(value.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_list_is_sorted_so_binary_search_works() {
        assert!(RESERVED_SLUGS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn lowercase_letters_digits_and_inner_hyphens_make_a_valid_slug() {
        for value in [
            "acme",
            "acme-gmbh",
            "a1b",
            "123",
            &"a".repeat(MAX_SLUG_CHARS),
        ] {
            assert_eq!(
                Slug::parse(value).map(Slug::into_string),
                Ok(value.to_owned())
            );
        }
    }

    #[test]
    fn a_slug_shorter_than_three_characters_is_refused() {
        assert_eq!(
            Slug::parse("ab"),
            Err(SlugProblem::TooShort { min: 3, got: 2 })
        );
    }

    #[test]
    fn a_slug_longer_than_a_dns_label_is_refused() {
        assert_eq!(
            Slug::parse(&"a".repeat(64)),
            Err(SlugProblem::TooLong { max: 63, got: 64 })
        );
    }

    #[test]
    fn uppercase_underscores_dots_and_non_ascii_letters_are_refused() {
        for (value, character) in [("Acme", 'A'), ("ac_me", '_'), ("ac.me", '.'), ("äcme", 'ä')] {
            assert_eq!(
                Slug::parse(value),
                Err(SlugProblem::InvalidCharacter { character }),
                "{value}"
            );
        }
    }

    #[test]
    fn a_slug_with_a_leading_or_trailing_hyphen_is_refused() {
        assert_eq!(Slug::parse("-acme"), Err(SlugProblem::EdgeHyphen));
        assert_eq!(Slug::parse("acme-"), Err(SlugProblem::EdgeHyphen));
    }

    #[test]
    fn a_slug_with_a_double_hyphen_is_refused() {
        assert_eq!(Slug::parse("xn--acme"), Err(SlugProblem::DoubleHyphen));
    }

    #[test]
    fn the_platforms_own_host_names_are_reserved() {
        for value in [
            "admin",
            "api",
            "auth",
            "mail",
            "www",
            "app",
            "portal",
            "dezky",
            "autoconfig",
            "autodiscover",
        ] {
            assert_eq!(Slug::parse(value), Err(SlugProblem::Reserved), "{value}");
        }
    }
}
