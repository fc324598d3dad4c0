//! Who a caller is inside a tenant: one rule, used by the write side (the aggregate's
//! authorization) and the read side (the API's standing check) alike.
//!
//! Identity is the pair (issuer, subject) the identity provider vouches for. A member is
//! linked to that pair once, through an explicit step ([`crate::tenant::TenantAction::LinkMemberSubject`]),
//! and from then on recognised by it alone. Before linking, and only then, a member is
//! recognised by an e-mail claim the provider marked verified (the API passes no other into a
//! [`Principal`]), compared strictly: the local part exactly as written, the domain in its
//! IDNA ASCII form, ASCII case-folded. No Unicode case folding happens anywhere, so a look-alike
//! such as the Kelvin sign `K` (U+212A) in `Kate@…` never stands for `Kate@…`, and a `sub`
//! is never compared with an e-mail.

use super::context::Principal;

/// Longest e-mail claim considered (RFC 5321's path limit); longer ones identify nobody.
pub const MAX_IDENTITY_EMAIL_BYTES: usize = 254;

/// The form of an e-mail **claim** that identity compares, or `None` when the claim cannot
/// identify anyone: surrounding or inner white space, control characters, no `@`, an empty
/// part, or a domain that is not already in IDNA-normalised form (upper-case or compatibility
/// look-alikes in an international domain, say). An ASCII domain is folded to lower case.
pub fn claimed_email_key(claim: &str) -> Option<String> {
    if claim.len() > MAX_IDENTITY_EMAIL_BYTES
        || claim.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (local, domain) = claim.rsplit_once('@')?;
    if local.is_empty() {
        return None;
    }
    let domain = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        let ascii = idna::domain_to_ascii(domain).ok()?;
        // Only a domain that is its own normalised form: UTS #46 would fold look-alikes
        // (fullwidth letters, the Kelvin sign, upper case) into another name.
        let (unicode, errors) = idna::domain_to_unicode(&ascii);
        if errors.is_err() || unicode != domain {
            return None;
        }
        ascii
    };
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// The form of a **member's** stored address that identity compares: the address as the
/// workspace's admin typed it (surrounding white space dropped), its domain mapped to IDNA
/// ASCII form and lower-cased. `None` for an address no claim can match.
pub fn member_email_key(stored: &str) -> Option<String> {
    let stored = stored.trim();
    let (local, domain) = stored.rsplit_once('@')?;
    if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let domain = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain).ok()?
    };
    (!domain.is_empty()).then(|| format!("{local}@{domain}"))
}

/// The spellings under which a member recognised by `claim` may have been stored: the claim's
/// domain in IDNA ASCII and in Unicode form (admins type either). Empty when the claim
/// identifies nobody. For narrowing a look-up only: [`recognises`] decides.
pub fn claimed_email_spellings(claim: &str) -> Vec<String> {
    let Some(key) = claimed_email_key(claim) else {
        return Vec::new();
    };
    let mut spellings = vec![key.clone()];
    if let Some((local, ascii)) = key.rsplit_once('@') {
        let (unicode, errors) = idna::domain_to_unicode(ascii);
        if errors.is_ok() && unicode != ascii {
            spellings.push(format!("{local}@{unicode}"));
        }
    }
    spellings
}

/// Whether `principal` is the member whose link and address are given: by the linked
/// (issuer, subject) once linked, by a verified e-mail claim only before.
///
/// A link recorded before issuers were (`member_issuer` is `None`) matches the subject from
/// whichever issuer the deployment trusts: there has only ever been one at a time.
pub fn recognises(
    member_subject: Option<&str>,
    member_issuer: Option<&str>,
    member_email: &str,
    principal: &Principal,
) -> bool {
    match member_subject {
        Some(subject) => {
            subject == principal.subject
                && member_issuer.is_none_or(|issuer| principal.issuer.as_deref() == Some(issuer))
        }
        None => principal
            .email
            .as_deref()
            .and_then(claimed_email_key)
            .is_some_and(|claim| member_email_key(member_email).as_deref() == Some(claim.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(subject: &str, email: &str) -> Principal {
        Principal {
            issuer: Some("https://idp.example/".into()),
            ..Principal::user(subject, email)
        }
    }

    #[test]
    fn an_exact_verified_address_recognises_an_unlinked_member() {
        assert!(recognises(
            None,
            None,
            "Kate@beta.example",
            &person("s-1", "Kate@beta.example")
        ));
    }

    #[test]
    fn the_domain_is_compared_without_regard_to_ascii_case() {
        assert!(recognises(
            None,
            None,
            "kate@beta.example",
            &person("s-1", "kate@BETA.Example")
        ));
    }

    #[test]
    fn a_kelvin_sign_in_the_local_part_is_not_a_k() {
        assert!(!recognises(
            None,
            None,
            "Kate@beta.example",
            &person("s-1", "\u{212A}ate@beta.example")
        ));
        assert!(!recognises(
            None,
            None,
            "kate@beta.example",
            &person("s-1", "\u{212A}ate@beta.example")
        ));
    }

    #[test]
    fn the_local_part_is_not_case_folded() {
        assert!(!recognises(
            None,
            None,
            "kate@beta.example",
            &person("s-1", "KATE@beta.example")
        ));
    }

    #[test]
    fn a_look_alike_letter_in_the_domain_is_refused() {
        // The Kelvin sign and fullwidth letters map to ASCII under UTS #46; a claim that needs
        // that mapping identifies nobody.
        assert_eq!(claimed_email_key("kate@\u{212A}beta.example"), None);
        assert_eq!(claimed_email_key("kate@ｂeta.example"), None);
        assert!(!recognises(
            None,
            None,
            "kate@kbeta.example",
            &person("s-1", "kate@\u{212A}beta.example")
        ));
    }

    #[test]
    fn an_international_domain_in_normal_form_is_accepted_in_either_spelling() {
        assert_eq!(
            claimed_email_key("anna@müller.example").as_deref(),
            Some("anna@xn--mller-kva.example")
        );
        assert!(recognises(
            None,
            None,
            "anna@xn--mller-kva.example",
            &person("s-1", "anna@müller.example")
        ));
    }

    #[test]
    fn a_padded_or_broken_claim_identifies_nobody() {
        for claim in [
            " kate@beta.example",
            "kate@beta.example ",
            "kate@beta.example\n",
            "ka te@beta.example",
            "kate",
            "@beta.example",
            "kate@",
            "kate@beta.example.",
        ] {
            assert_eq!(claimed_email_key(claim), None, "{claim:?}");
            assert!(
                !recognises(None, None, "kate@beta.example", &person("s-1", claim)),
                "{claim:?}"
            );
        }
    }

    #[test]
    fn a_subject_is_never_compared_with_an_address() {
        let principal = Principal {
            email: None,
            ..person("kate@beta.example", "x@y.example")
        };
        assert!(!recognises(None, None, "kate@beta.example", &principal));
    }

    #[test]
    fn a_linked_member_is_recognised_by_issuer_and_subject_only() {
        let kate = person("s-kate", "kate@beta.example");
        let link = Some("https://idp.example/");
        assert!(recognises(Some("s-kate"), link, "kate@beta.example", &kate));
        // Her address in another account's token no longer counts...
        assert!(!recognises(
            Some("s-kate"),
            link,
            "kate@beta.example",
            &person("s-other", "kate@beta.example")
        ));
        // ...nor her subject from another issuer.
        let elsewhere = Principal {
            issuer: Some("https://other-idp.example/".into()),
            ..kate.clone()
        };
        assert!(!recognises(
            Some("s-kate"),
            link,
            "kate@beta.example",
            &elsewhere
        ));
    }

    #[test]
    fn a_link_recorded_before_issuers_matches_the_subject_alone() {
        assert!(recognises(
            Some("s-kate"),
            None,
            "kate@beta.example",
            &person("s-kate", "changed@beta.example")
        ));
    }
}
