//! The tenant's security policy: MFA mode, session limits, allowed countries and the IP
//! allow-list.
//!
//! The policy is what the tenant asked for; enforcing it is the identity provider's job (the
//! seed labels each setting with its enforcement status). The domain makes sure what is
//! stored is coherent: limits in range, real country codes, well-formed networks.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::change::{apply_value, FieldChange};
use super::error::TenantError;
use super::values::country;

/// Shortest idle timeout, in minutes.
pub const MIN_SESSION_IDLE_MINUTES: u32 = 5;
/// Longest idle timeout, in minutes (one day).
pub const MAX_SESSION_IDLE_MINUTES: u32 = 1_440;
/// Longest absolute session lifetime, in minutes (30 days).
pub const MAX_SESSION_ABSOLUTE_MINUTES: u32 = 43_200;
/// Idle timeout of a new tenant, in minutes.
pub const DEFAULT_SESSION_IDLE_MINUTES: u32 = 60;
/// Absolute session lifetime of a new tenant, in minutes (12 hours: a working day).
pub const DEFAULT_SESSION_ABSOLUTE_MINUTES: u32 = 720;
/// Most networks in the IP allow-list.
pub const MAX_IP_ALLOWLIST_ENTRIES: usize = 100;
/// Most entries one command may list as allowed countries (there are 249 codes; the bound
/// keeps a hostile request from making the aggregate sort megabytes).
pub const MAX_ALLOWED_COUNTRY_ENTRIES: usize = 300;

/// Whether members must use a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaMode {
    /// No second factor is asked for.
    Off,
    /// Members may enroll a second factor.
    #[default]
    Optional,
    /// Every member must use a second factor.
    Required,
}

/// A tenant's security policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPolicy {
    /// MFA mode.
    pub mfa_mode: MfaMode,
    /// Minutes of inactivity after which a session ends.
    pub session_idle_minutes: u32,
    /// Minutes after sign-in after which a session ends regardless of activity.
    pub session_absolute_minutes: u32,
    /// Countries sign-ins may come from (ISO 3166-1 alpha-2, sorted, unique); empty means
    /// anywhere.
    pub allowed_countries: Vec<String>,
    /// Networks sign-ins may come from (canonical CIDR, sorted, unique); empty means any.
    pub ip_allowlist: Vec<String>,
}

impl Default for SecurityPolicy {
    /// The policy a new tenant starts with. It is written into `TenantCreated`, so changing
    /// these defaults later changes new tenants only, never the history of existing ones.
    fn default() -> Self {
        Self {
            mfa_mode: MfaMode::Optional,
            session_idle_minutes: DEFAULT_SESSION_IDLE_MINUTES,
            session_absolute_minutes: DEFAULT_SESSION_ABSOLUTE_MINUTES,
            allowed_countries: Vec::new(),
            ip_allowlist: Vec::new(),
        }
    }
}

/// An update of the security policy. Fields left `None` keep their value; lists given
/// replace the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPolicyPatch {
    /// MFA mode.
    pub mfa_mode: Option<MfaMode>,
    /// Idle timeout, [`MIN_SESSION_IDLE_MINUTES`]..=[`MAX_SESSION_IDLE_MINUTES`].
    pub session_idle_minutes: Option<u32>,
    /// Absolute lifetime, from the idle timeout to [`MAX_SESSION_ABSOLUTE_MINUTES`].
    pub session_absolute_minutes: Option<u32>,
    /// Allowed countries; case and order do not matter, duplicates are dropped.
    pub allowed_countries: Option<Vec<String>>,
    /// Allowed networks as CIDR (`192.0.2.0/24`, `2001:db8::/32`) or single addresses.
    pub ip_allowlist: Option<Vec<String>>,
}

impl SecurityPolicyPatch {
    /// The policy after this patch, or why the patch is refused. The limits are checked on
    /// the resulting policy, because "absolute ≥ idle" relates a field the command may not
    /// touch to one it does.
    pub(crate) fn applied_to(
        self,
        current: &SecurityPolicy,
    ) -> Result<SecurityPolicy, TenantError> {
        let mut next = current.clone();
        if let Some(mode) = self.mfa_mode {
            next.mfa_mode = mode;
        }
        if let Some(minutes) = self.session_idle_minutes {
            next.session_idle_minutes = minutes;
        }
        if let Some(minutes) = self.session_absolute_minutes {
            next.session_absolute_minutes = minutes;
        }
        if let Some(countries) = self.allowed_countries {
            next.allowed_countries = allowed_countries(&countries)?;
        }
        if let Some(networks) = self.ip_allowlist {
            next.ip_allowlist = ip_allowlist(&networks)?;
        }
        let idle = next.session_idle_minutes;
        if !(MIN_SESSION_IDLE_MINUTES..=MAX_SESSION_IDLE_MINUTES).contains(&idle) {
            return Err(TenantError::SessionIdleOutOfRange {
                minutes: idle,
                min: MIN_SESSION_IDLE_MINUTES,
                max: MAX_SESSION_IDLE_MINUTES,
            });
        }
        let absolute = next.session_absolute_minutes;
        if !(idle..=MAX_SESSION_ABSOLUTE_MINUTES).contains(&absolute) {
            return Err(TenantError::SessionAbsoluteOutOfRange {
                minutes: absolute,
                min: idle,
                max: MAX_SESSION_ABSOLUTE_MINUTES,
            });
        }
        Ok(next)
    }
}

fn allowed_countries(values: &[String]) -> Result<Vec<String>, TenantError> {
    if values.len() > MAX_ALLOWED_COUNTRY_ENTRIES {
        return Err(TenantError::TooManyCountries {
            max: MAX_ALLOWED_COUNTRY_ENTRIES,
            got: values.len(),
        });
    }
    let codes = values
        .iter()
        .map(|value| country(value))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(codes.into_iter().collect())
}

fn ip_allowlist(values: &[String]) -> Result<Vec<String>, TenantError> {
    if values.len() > MAX_IP_ALLOWLIST_ENTRIES {
        return Err(TenantError::TooManyIpRanges {
            max: MAX_IP_ALLOWLIST_ENTRIES,
            got: values.len(),
        });
    }
    let ranges = values
        .iter()
        .map(|value| IpRange::parse(value))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(ranges.iter().map(IpRange::to_string).collect())
}

/// A network in CIDR notation whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    /// The network address.
    pub network: IpAddr,
    /// The prefix length (0–32 for IPv4, 0–128 for IPv6).
    pub prefix: u8,
}

impl IpRange {
    /// Parses `address/prefix`, or a bare address as a single host (`/32` or `/128`).
    ///
    /// A network with host bits set (`10.0.0.1/24`) is refused rather than masked: it is
    /// almost always a typo for either `10.0.0.0/24` or `10.0.0.1/32`, and guessing wrong
    /// would lock people out or let too many in. The error names the network it would be.
    pub fn parse(value: &str) -> Result<Self, TenantError> {
        let trimmed = value.trim();
        let invalid = || TenantError::InvalidCidr {
            cidr: trimmed.to_owned(),
        };
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let max_prefix = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also accept a sign ("+24").
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
            None => max_prefix,
        };
        if prefix > max_prefix {
            return Err(invalid());
        }
        let range = Self { network, prefix };
        let masked = range.masked();
        if masked != range {
            return Err(TenantError::CidrHostBitsSet {
                cidr: trimmed.to_owned(),
                network: masked.to_string(),
            });
        }
        Ok(range)
    }

    /// The same prefix with the host bits cleared.
    fn masked(self) -> Self {
        let network = match self.network {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        };
        Self { network, ..self }
    }
}

impl fmt::Display for IpRange {
    /// Canonical CIDR: the standard library's address form (IPv6 compressed) and the prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The security-policy fields a command changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPolicyChanges {
    /// MFA mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_mode: Option<FieldChange<MfaMode>>,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_idle_minutes: Option<FieldChange<u32>>,
    /// Absolute lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_absolute_minutes: Option<FieldChange<u32>>,
    /// Allowed countries (whole list before and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_countries: Option<FieldChange<Vec<String>>>,
    /// IP allow-list (whole list before and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allowlist: Option<FieldChange<Vec<String>>>,
}

impl SecurityPolicyChanges {
    /// The changes that turn `from` into `to`.
    pub fn between(from: &SecurityPolicy, to: &SecurityPolicy) -> Self {
        Self {
            mfa_mode: FieldChange::between_values(&from.mfa_mode, &to.mfa_mode),
            session_idle_minutes: FieldChange::between_values(
                &from.session_idle_minutes,
                &to.session_idle_minutes,
            ),
            session_absolute_minutes: FieldChange::between_values(
                &from.session_absolute_minutes,
                &to.session_absolute_minutes,
            ),
            allowed_countries: FieldChange::between_values(
                &from.allowed_countries,
                &to.allowed_countries,
            ),
            ip_allowlist: FieldChange::between_values(&from.ip_allowlist, &to.ip_allowlist),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the changes to `policy`.
    pub fn apply_to(&self, policy: &mut SecurityPolicy) {
        apply_value(&mut policy.mfa_mode, &self.mfa_mode);
        apply_value(&mut policy.session_idle_minutes, &self.session_idle_minutes);
        apply_value(
            &mut policy.session_absolute_minutes,
            &self.session_absolute_minutes,
        );
        apply_value(&mut policy.allowed_countries, &self.allowed_countries);
        apply_value(&mut policy.ip_allowlist, &self.ip_allowlist);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> String {
        IpRange::parse(value).expect("valid range").to_string()
    }

    #[test]
    fn ipv4_and_ipv6_networks_parse_to_canonical_cidr() {
        assert_eq!(range("192.0.2.0/24"), "192.0.2.0/24");
        assert_eq!(range(" 10.0.0.0/8 "), "10.0.0.0/8");
        assert_eq!(range("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(range("2001:DB8:0:0::/32"), "2001:db8::/32");
        assert_eq!(range("::/0"), "::/0");
        assert_eq!(range("2001:db8::1/128"), "2001:db8::1/128");
    }

    #[test]
    fn a_bare_address_is_a_single_host() {
        assert_eq!(range("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(range("2001:db8::7"), "2001:db8::7/128");
    }

    #[test]
    fn a_network_with_host_bits_set_is_refused_naming_the_network_it_would_be() {
        assert_eq!(
            IpRange::parse("10.0.0.1/24"),
            Err(TenantError::CidrHostBitsSet {
                cidr: "10.0.0.1/24".into(),
                network: "10.0.0.0/24".into()
            })
        );
        assert_eq!(
            IpRange::parse("2001:db8::1/64"),
            Err(TenantError::CidrHostBitsSet {
                cidr: "2001:db8::1/64".into(),
                network: "2001:db8::/64".into()
            })
        );
    }

    #[test]
    fn malformed_networks_are_refused() {
        for value in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/32",
            "example.eu/24",
            "fe80::1%eth0/128",
        ] {
            assert_eq!(
                IpRange::parse(value),
                Err(TenantError::InvalidCidr {
                    cidr: value.trim().to_owned()
                }),
                "{value}"
            );
        }
    }
}
