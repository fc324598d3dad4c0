//! Stalwart's `dnsZoneFile` (BIND master-file text) → the records the product expects a
//! domain to publish.
//!
//! The parser reads what RFC 1035 §5.1 allows and Stalwart writes: one record a line,
//! `;` comments, `$ORIGIN` and `$TTL` directives, `@` and relative owner names, a blank owner
//! meaning "the previous one", optional TTL and class, and a TXT record's strings split over
//! several lines inside parentheses (every RSA DKIM key is longer than one 255-byte string).
//!
//! Which records are kept: the ones the product checks and shows — MX, SPF, DKIM (one per
//! selector), DMARC, and the autodiscovery records `_imaps`/`_submissions`/`_pop3s`/`_caldavs`/
//! `_carddavs` SRV and `autoconfig`/`autodiscover` CNAME (all optional: they help clients set
//! themselves up and never gate a domain's status). Everything else Stalwart lists is
//! **skipped**, because an expected record is a promise that DNS verification will check it
//! and the portal will ask the customer to publish it: TLS-RPT (`_smtp._tls`), `_jmap` SRV
//! (webmail is not served), the cleartext
//! `_imap`/`_submission`/`_pop3` SRV (only implicit TLS is reachable in production),
//! `ua-auto-config`, TLSA, CAA and MTA-STS. Stalwart publishes no ownership record; that one is
//! the product's own.

use dezky_domain::domains::{ExpectedRecord, RecordPurpose, RecordType};

/// Why a zone file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// A quoted string is not closed.
    #[error("line {0}: unterminated quoted string")]
    UnterminatedString(usize),
    /// A `(` is not closed, or a `)` has no `(`.
    #[error("line {0}: unbalanced parentheses")]
    UnbalancedParentheses(usize),
    /// A record of a type the parser reads has malformed data.
    #[error("line {line}: malformed {record_type} record")]
    Malformed {
        /// Where the record starts.
        line: usize,
        /// Its type.
        record_type: String,
    },
    /// A relative name appeared before any `$ORIGIN`, with no default origin.
    #[error("line {0}: relative name without an origin")]
    NoOrigin(usize),
}

/// Autodiscovery SRV services the product checks (implicit TLS only). CalDAV and CardDAV are
/// served under the mail host's `/dav` on 443 (the ingress routes `/.well-known/caldav`,
/// `/.well-known/carddav` and `/dav` to Stalwart), so their SRV records point somewhere real.
const AUTODISCOVERY_SRV: &[&str] = &[
    "_imaps._tcp",
    "_submissions._tcp",
    "_pop3s._tcp",
    "_caldavs._tcp",
    "_carddavs._tcp",
];
/// Autodiscovery host names the product checks.
const AUTODISCOVERY_CNAME: &[&str] = &["autoconfig", "autodiscover"];

/// One parsed resource record: owner (absolute, no trailing dot, lower case), type, data
/// tokens (quoted strings unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    line: usize,
    owner: String,
    record_type: String,
    data: Vec<Token>,
    /// The origin in force, for relative names inside the data (MX, SRV and CNAME targets).
    origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Word(s) | Token::Quoted(s) => s,
        }
    }
}

/// The records `domain` is expected to publish, in the zone file's order. Relative names are
/// taken relative to `domain` until a `$ORIGIN` says otherwise.
pub fn expected_records(zone: &str, domain: &str) -> Result<Vec<ExpectedRecord>, ZoneError> {
    let domain = absolute(domain);
    let mut out = Vec::new();
    for record in parse(zone, &domain)? {
        if let Some(expected) = classify(&record, &domain)? {
            out.push(expected);
        }
    }
    Ok(out)
}

fn absolute(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Reads every record of the zone text.
fn parse(zone: &str, default_origin: &str) -> Result<Vec<Record>, ZoneError> {
    let mut origin = Some(default_origin.to_owned()).filter(|o| !o.is_empty());
    let mut previous_owner: Option<String> = None;
    let mut records = Vec::new();
    for (line, starts_blank, tokens) in logical_lines(zone)? {
        let Some(first) = tokens.first() else {
            continue;
        };
        if let Token::Word(word) = first {
            if word.eq_ignore_ascii_case("$ORIGIN") {
                let name = tokens.get(1).map(Token::text).ok_or(ZoneError::Malformed {
                    line,
                    record_type: "$ORIGIN".into(),
                })?;
                origin = Some(resolve(name, origin.as_deref(), line)?);
                continue;
            }
            if word.starts_with('$') {
                // $TTL and $INCLUDE change nothing the product reads.
                continue;
            }
        }
        let mut rest = tokens.as_slice();
        let owner = if starts_blank {
            previous_owner.clone().ok_or(ZoneError::NoOrigin(line))?
        } else {
            let (name, tail) = rest.split_first().ok_or(ZoneError::NoOrigin(line))?;
            rest = tail;
            resolve(name.text(), origin.as_deref(), line)?
        };
        previous_owner = Some(owner.clone());
        // Optional TTL and class, in either order (RFC 1035 §5.1).
        while let Some((Token::Word(word), tail)) = rest.split_first() {
            let is_ttl = word.chars().all(|c| c.is_ascii_digit());
            let is_class = ["IN", "CH", "HS", "CS"]
                .iter()
                .any(|c| word.eq_ignore_ascii_case(c));
            if !(is_ttl || is_class) {
                break;
            }
            rest = tail;
        }
        let Some((record_type, data)) = rest.split_first() else {
            return Err(ZoneError::Malformed {
                line,
                record_type: String::new(),
            });
        };
        records.push(Record {
            line,
            owner,
            record_type: record_type.text().to_ascii_uppercase(),
            data: data.to_vec(),
            origin: origin.clone(),
        });
    }
    Ok(records)
}

/// `@` is the origin; a name ending in `.` is absolute; anything else is relative to it.
fn resolve(name: &str, origin: Option<&str>, line: usize) -> Result<String, ZoneError> {
    if name == "@" {
        return origin.map(str::to_owned).ok_or(ZoneError::NoOrigin(line));
    }
    if name.ends_with('.') {
        return Ok(absolute(name));
    }
    let origin = origin.ok_or(ZoneError::NoOrigin(line))?;
    Ok(format!("{}.{origin}", name.to_ascii_lowercase()))
}

/// Splits the text into logical lines (a parenthesised group joins physical lines), each
/// with its first line number, whether it began with blank space (the previous owner), and
/// its tokens.
fn logical_lines(zone: &str) -> Result<Vec<(usize, bool, Vec<Token>)>, ZoneError> {
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut start = (0, false);
    let mut depth = 0usize;
    for (index, text) in zone.lines().enumerate() {
        let number = index + 1;
        if depth == 0 {
            start = (number, text.starts_with([' ', '\t']));
        }
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ';' => break,
                '(' => depth += 1,
                ')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(ZoneError::UnbalancedParentheses(number))?;
                }
                '"' => {
                    let mut quoted = String::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(escaped) = chars.next() {
                                    quoted.push(escaped);
                                }
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            other => quoted.push(other),
                        }
                    }
                    if !closed {
                        return Err(ZoneError::UnterminatedString(number));
                    }
                    current.push(Token::Quoted(quoted));
                }
                c if c.is_whitespace() => {}
                c => {
                    let mut word = String::from(c);
                    while let Some(&next) = chars.peek() {
                        if next.is_whitespace() || matches!(next, '(' | ')' | '"' | ';') {
                            break;
                        }
                        word.push(next);
                        chars.next();
                    }
                    current.push(Token::Word(word));
                }
            }
        }
        if depth == 0 && !current.is_empty() {
            out.push((start.0, start.1, std::mem::take(&mut current)));
        }
    }
    if depth != 0 {
        return Err(ZoneError::UnbalancedParentheses(start.0));
    }
    Ok(out)
}

/// Whether `owner` is `domain` itself.
fn at_apex(owner: &str, domain: &str) -> bool {
    owner == domain
}

/// The label(s) of `owner` in front of `domain`, if it is under it.
fn under<'a>(owner: &'a str, domain: &str) -> Option<&'a str> {
    owner.strip_suffix(domain)?.strip_suffix('.')
}

fn classify(record: &Record, domain: &str) -> Result<Option<ExpectedRecord>, ZoneError> {
    let malformed = || ZoneError::Malformed {
        line: record.line,
        record_type: record.record_type.clone(),
    };
    let owner = record.owner.as_str();
    let target = |token: &Token| resolve(token.text(), record.origin.as_deref(), record.line);
    let expected = |purpose, record_type, value: String| {
        Some(ExpectedRecord {
            purpose,
            name: owner.to_owned(),
            record_type,
            value,
        })
    };
    Ok(match record.record_type.as_str() {
        "MX" => {
            let [priority, exchange] = record.data.as_slice() else {
                return Err(malformed());
            };
            let priority: u16 = priority.text().parse().map_err(|_| malformed())?;
            if !at_apex(owner, domain) {
                return Ok(None);
            }
            expected(
                RecordPurpose::Mx,
                RecordType::Mx,
                format!("{priority} {}", target(exchange)?),
            )
        }
        "TXT" => {
            if record.data.is_empty() {
                return Err(malformed());
            }
            // A TXT record's strings are one value, concatenated without separators
            // (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
            let text: String = record.data.iter().map(Token::text).collect();
            let lower = text.to_ascii_lowercase();
            if lower.starts_with("v=spf1")
                && (at_apex(owner, domain) || under(owner, domain).is_some())
            {
                // SPF at the domain, and for a mail host under the domain (its HELO name).
                expected(RecordPurpose::Spf, RecordType::Txt, text)
            } else if lower.starts_with("v=dkim1")
                && under(owner, domain).is_some_and(|l| l.ends_with("._domainkey"))
            {
                expected(RecordPurpose::Dkim, RecordType::Txt, text)
            } else if lower.starts_with("v=dmarc1") && under(owner, domain) == Some("_dmarc") {
                expected(RecordPurpose::Dmarc, RecordType::Txt, text)
            } else {
                None
            }
        }
        "SRV" => {
            let [priority, weight, port, host] = record.data.as_slice() else {
                return Err(malformed());
            };
            let numbers: Result<Vec<u16>, _> = [priority, weight, port]
                .iter()
                .map(|t| t.text().parse::<u16>())
                .collect();
            let numbers = numbers.map_err(|_| malformed())?;
            if !under(owner, domain).is_some_and(|l| AUTODISCOVERY_SRV.contains(&l)) {
                return Ok(None);
            }
            expected(
                RecordPurpose::Autodiscovery,
                RecordType::Srv,
                format!(
                    "{} {} {} {}",
                    numbers[0],
                    numbers[1],
                    numbers[2],
                    target(host)?
                ),
            )
        }
        "CNAME" => {
            let [alias] = record.data.as_slice() else {
                return Err(malformed());
            };
            if !under(owner, domain).is_some_and(|l| AUTODISCOVERY_CNAME.contains(&l)) {
                return Ok(None);
            }
            expected(
                RecordPurpose::Autodiscovery,
                RecordType::Cname,
                target(alias)?,
            )
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(purpose: RecordPurpose, name: &str, ty: RecordType, value: &str) -> ExpectedRecord {
        ExpectedRecord {
            purpose,
            name: name.into(),
            record_type: ty,
            value: value.into(),
        }
    }

    /// What Stalwart v0.16 writes for a domain once its DKIM keys exist (shortened keys).
    const STALWART_ZONE: &str = "\
v1-ed25519-20260101._domainkey.acme.test. IN TXT \"v=DKIM1; k=ed25519; h=sha256; p=MCowBQYDK2VwAyEA\"
v1-rsa-20260101._domainkey.acme.test. IN TXT (
    \"v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\"
    \"q83vZ1Bcu\"
)
acme.test. IN TXT \"v=spf1 mx -all\"
acme.test. IN MX 10 mail.dezky.test.
_dmarc.acme.test. IN TXT \"v=DMARC1; p=reject; rua=mailto:postmaster@acme.test\"
_caldavs._tcp.acme.test. IN SRV 0 1 443 mail.dezky.test.
_carddavs._tcp.acme.test. IN SRV 0 1 443 mail.dezky.test.
_imaps._tcp.acme.test. IN SRV 0 1 993 mail.dezky.test.
_jmap._tcp.acme.test. IN SRV 0 1 443 mail.dezky.test.
_pop3s._tcp.acme.test. IN SRV 0 1 995 mail.dezky.test.
_submissions._tcp.acme.test. IN SRV 0 1 465 mail.dezky.test.
_smtp._tls.acme.test. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@acme.test\"
ua-auto-config.acme.test. IN CNAME mail.dezky.test.
_ua-auto-config.acme.test. IN TXT \"v=UAAC1; a=sha256; d=abc=\"
autoconfig.acme.test. IN CNAME mail.dezky.test.
autodiscover.acme.test. IN CNAME mail.dezky.test.
";

    #[test]
    fn stalwarts_zone_file_becomes_the_records_the_product_checks() {
        let records = expected_records(STALWART_ZONE, "acme.test").expect("parses");
        use RecordPurpose as P;
        use RecordType as T;
        assert_eq!(
            records,
            vec![
                record(
                    P::Dkim,
                    "v1-ed25519-20260101._domainkey.acme.test",
                    T::Txt,
                    "v=DKIM1; k=ed25519; h=sha256; p=MCowBQYDK2VwAyEA"
                ),
                record(
                    P::Dkim,
                    "v1-rsa-20260101._domainkey.acme.test",
                    T::Txt,
                    "v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq83vZ1Bcu"
                ),
                record(P::Spf, "acme.test", T::Txt, "v=spf1 mx -all"),
                record(P::Mx, "acme.test", T::Mx, "10 mail.dezky.test"),
                record(
                    P::Dmarc,
                    "_dmarc.acme.test",
                    T::Txt,
                    "v=DMARC1; p=reject; rua=mailto:postmaster@acme.test"
                ),
                record(
                    P::Autodiscovery,
                    "_caldavs._tcp.acme.test",
                    T::Srv,
                    "0 1 443 mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "_carddavs._tcp.acme.test",
                    T::Srv,
                    "0 1 443 mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "_imaps._tcp.acme.test",
                    T::Srv,
                    "0 1 993 mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "_pop3s._tcp.acme.test",
                    T::Srv,
                    "0 1 995 mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "_submissions._tcp.acme.test",
                    T::Srv,
                    "0 1 465 mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "autoconfig.acme.test",
                    T::Cname,
                    "mail.dezky.test"
                ),
                record(
                    P::Autodiscovery,
                    "autodiscover.acme.test",
                    T::Cname,
                    "mail.dezky.test"
                ),
            ]
        );
    }

    #[test]
    fn relative_names_origin_comments_ttl_and_blank_owners_are_read() {
        let zone = "\
$ORIGIN acme.test.
$TTL 3600
; the apex
@ 3600 IN MX 10 mail ; relative target
  IN TXT \"v=spf1 \" \"mx -all\"
_dmarc IN 300 TXT \"v=DMARC1; p=none\" ; a comment with \"quotes\"
$ORIGIN _tcp.acme.test.
_imaps SRV 0 1 993 mail.acme.test.
sel._domainkey.acme.test. TXT ( \"v=DKIM1; k=rsa; \" ; split
  \"p=AB\\\"C\" )
";
        let records = expected_records(zone, "acme.test").expect("parses");
        let values: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            values,
            vec![
                ("acme.test", "10 mail.acme.test"),
                ("acme.test", "v=spf1 mx -all"),
                ("_dmarc.acme.test", "v=DMARC1; p=none"),
                ("_imaps._tcp.acme.test", "0 1 993 mail.acme.test"),
                ("sel._domainkey.acme.test", "v=DKIM1; k=rsa; p=AB\"C"),
            ]
        );
    }

    #[test]
    fn names_are_compared_without_case_and_trailing_dot() {
        let zone = "ACME.Test. IN MX 5 Mail.Dezky.Test.\n";
        let records = expected_records(zone, "acme.test.").expect("parses");
        assert_eq!(
            records,
            vec![record(
                RecordPurpose::Mx,
                "acme.test",
                RecordType::Mx,
                "5 mail.dezky.test"
            )]
        );
    }

    #[test]
    fn records_of_other_domains_are_not_expected_of_this_one() {
        let zone = "other.test. IN MX 10 mail.dezky.test.\n_dmarc.other.test. IN TXT \"v=DMARC1; p=none\"\n";
        assert_eq!(expected_records(zone, "acme.test"), Ok(vec![]));
    }

    #[test]
    fn broken_zone_text_is_an_error_not_a_short_list() {
        assert_eq!(
            expected_records("acme.test. IN TXT \"open\n", "acme.test"),
            Err(ZoneError::UnterminatedString(1))
        );
        assert_eq!(
            expected_records("acme.test. IN TXT ( \"a\"\n", "acme.test"),
            Err(ZoneError::UnbalancedParentheses(1))
        );
        assert_eq!(
            expected_records("acme.test. IN MX ten mail.\n", "acme.test"),
            Err(ZoneError::Malformed {
                line: 1,
                record_type: "MX".into()
            })
        );
        assert_eq!(
            expected_records("acme.test. IN SRV 0 1 mail.\n", "acme.test"),
            Err(ZoneError::Malformed {
                line: 1,
                record_type: "SRV".into()
            })
        );
    }

    #[test]
    fn an_empty_zone_expects_nothing() {
        assert_eq!(expected_records("", "acme.test"), Ok(vec![]));
        assert_eq!(
            expected_records("; only a comment\n\n", "acme.test"),
            Ok(vec![])
        );
    }
}
