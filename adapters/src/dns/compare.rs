//! The verdict on one expected record, given what DNS published under its name: pure
//! comparisons, no I/O, so every rule is tested without a server.
//!
//! Published values arrive in the same shape the Stalwart zone parser gives expected values
//! (`adapters/src/stalwart/zone.rs`): MX `priority host`, SRV `priority weight port target`,
//! CNAME `target`, host names lower case without the trailing dot, and a TXT record's
//! character-strings concatenated into one value. Both sides are normalized again here, so an
//! expected record written by hand (`Mail.Dezky.Test.`) compares the same.

use dezky_domain::domains::{CheckOutcome, ExpectedRecord, RecordCheck, RecordPurpose, RecordType};

/// The check of `expected` against the values published under its name and type (`published`
/// is empty when the name has no record of that type or does not exist).
pub(crate) fn judge(expected: &ExpectedRecord, published: &[String]) -> RecordCheck {
    let (outcome, found) = match expected.record_type {
        RecordType::Txt => judge_txt(expected, published),
        RecordType::Mx => judge_fields(published, |value| {
            mx_fields(value).is_some_and(|found| Some(found) == mx_fields(&expected.value))
        }),
        RecordType::Srv => judge_fields(published, |value| {
            srv_fields(value).is_some_and(|found| Some(found) == srv_fields(&expected.value))
        }),
        RecordType::Cname => judge_fields(published, |value| host(value) == host(&expected.value)),
    };
    RecordCheck {
        expected: expected.clone(),
        found,
        outcome,
    }
}

/// The check of an expected CNAME whose name has no CNAME but bare addresses (A/AAAA).
///
/// For an optional record that is a warning: the name still reaches a host, so clients that
/// look it up (`autoconfig`, `autodiscover`) may still work, only not through the mail server's
/// own name. A required CNAME with addresses in its place is wrong.
pub(crate) fn judge_bare_addresses(
    expected: &ExpectedRecord,
    addresses: Vec<String>,
) -> RecordCheck {
    let outcome = if addresses.is_empty() {
        CheckOutcome::Missing
    } else if expected.purpose.is_optional() {
        CheckOutcome::Warning
    } else {
        CheckOutcome::Wrong
    };
    RecordCheck {
        expected: expected.clone(),
        found: addresses,
        outcome,
    }
}

/// MX, SRV and CNAME: missing when nothing is published, ok when any published record equals
/// the expected one field by field, wrong otherwise; `found` lists everything published.
fn judge_fields(
    published: &[String],
    matches: impl Fn(&str) -> bool,
) -> (CheckOutcome, Vec<String>) {
    let outcome = if published.is_empty() {
        CheckOutcome::Missing
    } else if published.iter().any(|value| matches(value)) {
        CheckOutcome::Ok
    } else {
        CheckOutcome::Wrong
    };
    (outcome, published.to_vec())
}

/// TXT: only the records of the expected kind are compared and reported, because a name
/// holds TXT records of other owners too (an SPF record next to a `google-site-verification`);
/// those are not a wrong SPF record, and no customer should be told to change them.
fn judge_txt(expected: &ExpectedRecord, published: &[String]) -> (CheckOutcome, Vec<String>) {
    let kind: Vec<String> = published
        .iter()
        .filter(|value| is_of_kind(expected.purpose, value))
        .cloned()
        .collect();
    let outcome = if kind.is_empty() {
        CheckOutcome::Missing
    } else if kind.len() > 1
        && matches!(expected.purpose, RecordPurpose::Spf | RecordPurpose::Dmarc)
    {
        // Receivers ignore the policy when a name publishes two: SPF evaluates to permerror
        // (RFC 7208 §4.5) and DMARC to "no policy" (RFC 7489 §6.6.3), even if one is right.
        CheckOutcome::Wrong
    } else if kind.iter().any(|value| txt_matches(expected, value)) {
        CheckOutcome::Ok
    } else {
        CheckOutcome::Wrong
    };
    (outcome, kind)
}

/// Whether a TXT value is the kind of record `purpose` expects.
fn is_of_kind(purpose: RecordPurpose, value: &str) -> bool {
    let value = value.trim_start();
    match purpose {
        RecordPurpose::Spf => is_spf(value),
        RecordPurpose::Dmarc => tags(value)
            .first()
            .is_some_and(|(key, version)| key == "v" && version.eq_ignore_ascii_case("DMARC1")),
        // `v=DKIM1` is optional in a key record (RFC 6376 §3.6.1); a key without it is still
        // a key, and one with the wrong `p=` is a wrong key, not a missing one.
        RecordPurpose::Dkim => {
            let tags = tags(value);
            tags.first()
                .is_some_and(|(key, version)| key == "v" && version.eq_ignore_ascii_case("DKIM1"))
                || tags.iter().any(|(key, _)| key == "p")
        }
        RecordPurpose::Ownership => value.starts_with(OWNERSHIP_PREFIX),
        // No other purpose is published as TXT; compare whatever is there.
        RecordPurpose::Mx | RecordPurpose::Autodiscovery => true,
    }
}

/// The product's ownership record's value starts with this (`dezky-verification={token}`).
const OWNERSHIP_PREFIX: &str = "dezky-verification=";

/// `v=spf1` followed by a space or nothing (RFC 7208 §4.5: `v=spf10` is not SPF).
fn is_spf(value: &str) -> bool {
    let Some(prefix) = value.get(..6) else {
        return false;
    };
    prefix.eq_ignore_ascii_case("v=spf1")
        && value[6..].chars().next().is_none_or(|c| c.is_whitespace())
}

/// Whether a published TXT value of the expected kind says what the expected one says.
fn txt_matches(expected: &ExpectedRecord, found: &str) -> bool {
    match expected.purpose {
        // SPF terms are case-insensitive and separated by any run of spaces.
        RecordPurpose::Spf => spf_terms(&expected.value) == spf_terms(found),
        // The version and the policy are what the product sets; a customer may add report
        // addresses (`rua`, `ruf`) or other tags of their own.
        RecordPurpose::Dmarc => ["v", "p"].iter().all(|tag| {
            let wanted = tag_value(&expected.value, tag);
            wanted.is_some()
                && wanted.map(|v| v.to_ascii_lowercase())
                    == tag_value(found, tag).map(|v| v.to_ascii_lowercase())
        }),
        RecordPurpose::Dkim => dkim_matches(&expected.value, found),
        RecordPurpose::Ownership => expected.value.trim() == found.trim(),
        RecordPurpose::Mx | RecordPurpose::Autodiscovery => expected.value == found,
    }
}

/// DKIM keys compare on their tags with all whitespace removed (RFC 6376 §3.6.1 allows
/// folding whitespace inside the base64 key): the public key `p=` must be equal, and so must
/// the key type `k=` (`rsa` when absent). Other tags (`h=`, `t=`, `n=`) do not change which
/// key verifies a signature.
fn dkim_matches(expected: &str, found: &str) -> bool {
    let key = |value: &str| tag_value(value, "p").map(|p| strip_whitespace(&p));
    let key_type = |value: &str| {
        tag_value(value, "k")
            .map(|k| strip_whitespace(&k).to_ascii_lowercase())
            .unwrap_or_else(|| "rsa".to_owned())
    };
    let wanted = key(expected);
    wanted.as_deref().is_some_and(|p| !p.is_empty())
        && wanted == key(found)
        && key_type(expected) == key_type(found)
}

/// `tag=value` pairs separated by `;` (DKIM, DMARC), names and values trimmed.
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(key, value)| (strip_whitespace(key), value.trim().to_owned()))
        .collect()
}

/// The value of the first `tag` in a tag list.
fn tag_value(value: &str, tag: &str) -> Option<String> {
    tags(value)
        .into_iter()
        .find(|(key, _)| key == tag)
        .map(|(_, value)| value)
}

fn strip_whitespace(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

fn spf_terms(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A host name as DNS compares it: case-insensitive, the trailing dot optional.
pub(crate) fn host(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `priority host` → its fields.
fn mx_fields(value: &str) -> Option<(u16, String)> {
    let mut parts = value.split_whitespace();
    let priority = parts.next()?.parse().ok()?;
    let exchange = host(parts.next()?);
    parts.next().is_none().then_some((priority, exchange))
}

/// `priority weight port target` → its fields.
fn srv_fields(value: &str) -> Option<(u16, u16, u16, String)> {
    let mut parts = value.split_whitespace();
    let priority = parts.next()?.parse().ok()?;
    let weight = parts.next()?.parse().ok()?;
    let port = parts.next()?.parse().ok()?;
    let target = host(parts.next()?);
    parts
        .next()
        .is_none()
        .then_some((priority, weight, port, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(purpose: RecordPurpose, record_type: RecordType, value: &str) -> ExpectedRecord {
        ExpectedRecord {
            purpose,
            name: "acme.test".into(),
            record_type,
            value: value.into(),
        }
    }

    fn published(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn outcome(purpose: RecordPurpose, ty: RecordType, want: &str, found: &[&str]) -> CheckOutcome {
        judge(&expected(purpose, ty, want), &published(found)).outcome
    }

    use CheckOutcome::{Missing, Ok, Warning, Wrong};
    use RecordPurpose as P;
    use RecordType as T;

    #[test]
    fn nothing_published_is_missing_with_nothing_found() {
        for (purpose, ty, value) in [
            (P::Mx, T::Mx, "10 mail.dezky.test"),
            (P::Spf, T::Txt, "v=spf1 mx -all"),
            (P::Autodiscovery, T::Srv, "0 1 993 mail.dezky.test"),
            (P::Autodiscovery, T::Cname, "mail.dezky.test"),
        ] {
            let check = judge(&expected(purpose, ty, value), &[]);
            assert_eq!(check.outcome, Missing, "{ty:?}");
            assert!(check.found.is_empty());
        }
    }

    #[test]
    fn host_names_compare_without_case_and_trailing_dot() {
        assert_eq!(
            outcome(P::Mx, T::Mx, "10 Mail.Dezky.Test.", &["10 mail.dezky.test"]),
            Ok
        );
        assert_eq!(
            outcome(
                P::Autodiscovery,
                T::Srv,
                "0 1 993 mail.dezky.test",
                &["0 1 993 MAIL.dezky.test."]
            ),
            Ok
        );
        assert_eq!(
            outcome(
                P::Autodiscovery,
                T::Cname,
                "mail.dezky.test.",
                &["Mail.Dezky.Test"]
            ),
            Ok
        );
    }

    #[test]
    fn mx_compares_priority_and_host() {
        assert_eq!(
            outcome(P::Mx, T::Mx, "10 mail.dezky.test", &["20 mail.dezky.test"]),
            Wrong
        );
        assert_eq!(
            outcome(P::Mx, T::Mx, "10 mail.dezky.test", &["10 mx.other.test"]),
            Wrong
        );
        let check = judge(
            &expected(P::Mx, T::Mx, "10 mail.dezky.test"),
            &published(&["10 mail.dezky.test", "20 backup.other.test"]),
        );
        assert_eq!(check.outcome, Ok);
        assert_eq!(
            check.found,
            published(&["10 mail.dezky.test", "20 backup.other.test"])
        );
    }

    #[test]
    fn srv_compares_every_field() {
        let want = "0 1 993 mail.dezky.test";
        for found in [
            "1 1 993 mail.dezky.test",
            "0 5 993 mail.dezky.test",
            "0 1 143 mail.dezky.test",
            "0 1 993 imap.other.test",
        ] {
            assert_eq!(
                outcome(P::Autodiscovery, T::Srv, want, &[found]),
                Wrong,
                "{found}"
            );
        }
    }

    #[test]
    fn a_wrong_record_lists_everything_found() {
        let check = judge(
            &expected(P::Autodiscovery, T::Cname, "mail.dezky.test"),
            &published(&["elsewhere.test"]),
        );
        assert_eq!(check.outcome, Wrong);
        assert_eq!(check.found, published(&["elsewhere.test"]));
    }

    #[test]
    fn spf_is_picked_among_other_txt_records_and_compared_with_whitespace_normalized() {
        let check = judge(
            &expected(P::Spf, T::Txt, "v=spf1 mx -all"),
            &published(&["google-site-verification=abc", "v=spf1   MX  -all "]),
        );
        assert_eq!(check.outcome, Ok);
        assert_eq!(check.found, published(&["v=spf1   MX  -all "]));
        assert_eq!(
            outcome(P::Spf, T::Txt, "v=spf1 mx -all", &["v=spf1 mx ~all"]),
            Wrong
        );
    }

    #[test]
    fn other_txt_records_without_the_expected_kind_are_missing_not_wrong() {
        let check = judge(
            &expected(P::Spf, T::Txt, "v=spf1 mx -all"),
            &published(&["google-site-verification=abc", "v=spf10 mx"]),
        );
        assert_eq!(check.outcome, Missing);
        assert!(check.found.is_empty());
    }

    #[test]
    fn two_spf_or_dmarc_records_are_wrong_even_if_one_matches() {
        let check = judge(
            &expected(P::Spf, T::Txt, "v=spf1 mx -all"),
            &published(&["v=spf1 mx -all", "v=spf1 include:old.test ~all"]),
        );
        assert_eq!(check.outcome, Wrong);
        assert_eq!(check.found.len(), 2);
        assert_eq!(
            outcome(
                P::Dmarc,
                T::Txt,
                "v=DMARC1; p=reject",
                &["v=DMARC1; p=reject", "v=DMARC1; p=none"]
            ),
            Wrong
        );
    }

    #[test]
    fn dmarc_compares_version_and_policy_and_allows_extra_tags() {
        let want = "v=DMARC1; p=reject; rua=mailto:postmaster@acme.test";
        assert_eq!(outcome(P::Dmarc, T::Txt, want, &["v=DMARC1;p=reject"]), Ok);
        assert_eq!(
            outcome(P::Dmarc, T::Txt, want, &["v=DMARC1; p=reject; rua=mailto:d@report.test; ruf=mailto:f@report.test; pct=100"]),
            Ok
        );
        assert_eq!(
            outcome(
                P::Dmarc,
                T::Txt,
                want,
                &["v=DMARC1; p=none; rua=mailto:postmaster@acme.test"]
            ),
            Wrong
        );
        assert_eq!(
            outcome(
                P::Dmarc,
                T::Txt,
                want,
                &["v=DMARC1; rua=mailto:postmaster@acme.test"]
            ),
            Wrong
        );
    }

    #[test]
    fn dkim_compares_key_and_type_with_whitespace_removed() {
        let want = "v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkq";
        assert_eq!(
            outcome(P::Dkim, T::Txt, want, &["v=DKIM1; k=rsa; p=MIIB IjAN Bgkq"]),
            Ok
        );
        // Without `v=` or `k=` it is still an RSA key (RFC 6376 §3.6.1 defaults).
        assert_eq!(outcome(P::Dkim, T::Txt, want, &["p=MIIBIjANBgkq"]), Ok);
        assert_eq!(
            outcome(P::Dkim, T::Txt, want, &["v=DKIM1; k=rsa; p=MIIBOTHERKEY"]),
            Wrong
        );
        assert_eq!(
            outcome(
                P::Dkim,
                T::Txt,
                want,
                &["v=DKIM1; k=ed25519; p=MIIBIjANBgkq"]
            ),
            Wrong
        );
        // A revoked key (empty p=) is not the expected key.
        assert_eq!(outcome(P::Dkim, T::Txt, want, &["v=DKIM1; p="]), Wrong);
    }

    #[test]
    fn ownership_is_the_dezky_verification_record_compared_exactly() {
        let want = "dezky-verification=Tok3n";
        let check = judge(
            &expected(P::Ownership, T::Txt, want),
            &published(&["v=spf1 -all", "dezky-verification=Tok3n"]),
        );
        assert_eq!((check.outcome, check.found.len()), (Ok, 1));
        assert_eq!(
            outcome(P::Ownership, T::Txt, want, &["dezky-verification=tok3n"]),
            Wrong
        );
        assert_eq!(
            outcome(P::Ownership, T::Txt, want, &["something-else=Tok3n"]),
            Missing
        );
    }

    #[test]
    fn bare_addresses_instead_of_an_optional_cname_are_a_warning() {
        let cname = expected(P::Autodiscovery, T::Cname, "mail.dezky.test");
        let check = judge_bare_addresses(&cname, published(&["192.0.2.7"]));
        assert_eq!(check.outcome, Warning);
        assert_eq!(check.found, published(&["192.0.2.7"]));
        assert!(!check.blocks_verification());

        let required = expected(P::Mx, T::Cname, "mail.dezky.test");
        assert_eq!(
            judge_bare_addresses(&required, published(&["192.0.2.7"])).outcome,
            Wrong
        );
        assert_eq!(judge_bare_addresses(&cname, vec![]).outcome, Missing);
    }
}
