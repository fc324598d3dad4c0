//! Who is acting, and when: the context every tenant and platform-flag command carries.
//!
//! cqrs-es's `Aggregate::handle` receives only the command and the services, so the context
//! travels inside the command envelope ([`crate::tenant::TenantCommand`]). The API builds it
//! from the verified access token and its own clock; the domain never reads a clock.

/// The authenticated caller of a command, as the API resolved it from the access token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// Stable subject identifier: the OIDC `sub`, or `system:<name>` for processors.
    pub subject: String,
    /// The issuer that vouches for `subject` (the OIDC `iss`); `None` for processors. Identity
    /// is the pair (issuer, subject).
    pub issuer: Option<String>,
    /// The caller's e-mail address, when it is a person and the identity provider asserts it
    /// as verified (the API passes no unverified address in): it identifies a member only
    /// until the member is linked to a subject (see [`crate::tenant::recognises`]).
    pub email: Option<String>,
    /// Whether the caller is a platform admin (dezky operator staff, or a system processor).
    pub platform_admin: bool,
    /// The partner (reseller) the caller is staff of, if any.
    pub partner_id: Option<String>,
}

impl Principal {
    /// A person with no platform or partner role; what they may do in a tenant follows from
    /// their membership there.
    pub fn user(subject: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            issuer: None,
            email: Some(email.into()),
            platform_admin: false,
            partner_id: None,
        }
    }

    /// A platform admin (operator console).
    pub fn platform_admin(subject: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            platform_admin: true,
            ..Self::user(subject, email)
        }
    }

    /// Staff of a partner (partner portal).
    pub fn partner_staff(
        subject: impl Into<String>,
        email: impl Into<String>,
        partner_id: impl Into<String>,
    ) -> Self {
        Self {
            partner_id: Some(partner_id.into()),
            ..Self::user(subject, email)
        }
    }

    /// A saga or processor reporting back (e.g. "provisioning finished"). Processors act with
    /// platform-admin authority because they only ever carry out what an authorized command
    /// already decided; their subject `system:<process>` keeps them apart on the audit record.
    pub fn system(process: &str) -> Self {
        Self {
            subject: format!("system:{process}"),
            issuer: None,
            email: None,
            platform_admin: true,
            partner_id: None,
        }
    }
}

/// The acting principal and the time the command was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Who issues the command.
    pub principal: Principal,
    /// When, as an RFC 3339 timestamp chosen by the caller (the domain has no clock).
    pub now: String,
}

impl CommandContext {
    /// A context for `principal` at `now` (RFC 3339).
    pub fn new(principal: Principal, now: impl Into<String>) -> Self {
        Self {
            principal,
            now: now.into(),
        }
    }

    /// Refuses a context the API should never have built: an anonymous principal (every
    /// recorded change must name its actor) or a malformed time (it is stored in events).
    pub fn check(&self) -> Result<(), ContextError> {
        if self.principal.subject.trim().is_empty() {
            return Err(ContextError::UnidentifiedPrincipal);
        }
        if !is_rfc3339(&self.now) {
            return Err(ContextError::InvalidTimestamp {
                value: self.now.clone(),
            });
        }
        Ok(())
    }
}

/// Why a command context was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The principal has no subject.
    #[error("the acting principal has no subject")]
    UnidentifiedPrincipal,
    /// `now` is not an RFC 3339 timestamp.
    #[error("'{value}' is not an RFC 3339 timestamp")]
    InvalidTimestamp {
        /// What was given.
        value: String,
    },
}

/// Whether `value` is an RFC 3339 date-time (`2026-11-28T10:00:00Z`,
/// `2026-11-28T10:00:00.123+01:00`). Checks shape and field ranges, not the calendar (a
/// 31 February passes); the API formats this value from its clock, so this only catches
/// wiring mistakes.
pub fn is_rfc3339(value: &str) -> bool {
    rfc3339(value.as_bytes()).is_some()
}

fn rfc3339(bytes: &[u8]) -> Option<()> {
    let number = |from: usize, len: usize| -> Option<u32> {
        let part = bytes.get(from..from + len)?;
        part.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(*d - b'0'))
        })
    };
    let expect = |at: usize, allowed: &[u8]| -> Option<()> {
        bytes.get(at).filter(|b| allowed.contains(b)).map(|_| ())
    };
    let (month, day) = (number(5, 2)?, number(8, 2)?);
    number(0, 4)?;
    expect(4, b"-")?;
    expect(7, b"-")?;
    expect(10, b"Tt")?;
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    expect(13, b":")?;
    expect(16, b":")?;
    let in_range = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60; // 60: a leap second is valid RFC 3339.
    if !in_range {
        return None;
    }
    let mut at = 19;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
    }
    match bytes.get(at)? {
        b'Z' | b'z' => (at + 1 == bytes.len()).then_some(()),
        b'+' | b'-' => {
            let (hours, minutes) = (number(at + 1, 2)?, number(at + 4, 2)?);
            expect(at + 3, b":")?;
            (hours <= 23 && minutes <= 59 && at + 6 == bytes.len()).then_some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_in_utc_with_offsets_and_fractions_are_accepted() {
        for value in [
            "2026-11-28T10:00:00Z",
            "2026-11-28t10:00:00z",
            "2026-11-28T10:00:00.123456Z",
            "2026-11-28T10:00:00+01:00",
            "2026-12-31T23:59:60-05:30",
        ] {
            assert!(is_rfc3339(value), "{value}");
        }
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for value in [
            "",
            "2026-11-28",
            "2026-11-28 10:00:00Z",
            "2026-11-28T10:00:00",
            "2026-13-28T10:00:00Z",
            "2026-11-00T10:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T10:00:00.Z",
            "2026-11-28T10:00:00+0100",
            "2026-11-28T10:00:00Zjunk",
            "yesterday at noon",
        ] {
            assert!(!is_rfc3339(value), "{value}");
        }
    }

    #[test]
    fn a_context_without_a_subject_is_refused() {
        let ctx = CommandContext::new(Principal::user(" ", "a@example.eu"), "2026-11-28T10:00:00Z");
        assert_eq!(ctx.check(), Err(ContextError::UnidentifiedPrincipal));
    }

    #[test]
    fn a_context_with_a_malformed_time_is_refused() {
        let ctx = CommandContext::new(Principal::system("test"), "now");
        assert_eq!(
            ctx.check(),
            Err(ContextError::InvalidTimestamp {
                value: "now".into()
            })
        );
    }
}
