//! DNS verification against a real DNS server: the expected records come from a Stalwart zone
//! file through the product's own parser, the published ones from dnsmasq on a loopback port,
//! and `DnsVerifier` resolves them with hickory over UDP and TCP as it would in production.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dezky_adapters::dns::{DnsError, DnsVerifier};
use dezky_adapters::stalwart::zone::expected_records;
use dezky_domain::domains::{CheckOutcome, ExpectedRecord, RecordCheck, RecordPurpose, RecordType};
use dezky_tests::dns_server::{DnsServer, DnsServerBuilder};

const DOMAIN: &str = "acme.test";
const MAIL_HOST: &str = "mail.dezky.test";
const OWNERSHIP_NAME: &str = "_dezky.acme.test";
const OWNERSHIP_VALUE: &str = "dezky-verification=7f3a9c1e5b2d";

/// The RSA DKIM record's value, as Stalwart's zone file holds it (split in two strings there).
const RSA_DKIM: &str = "v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VILablLDZguhbtVtnKocmN6zXRm/LYODo/xhGOw5LK6KXA0dPBkrGj3APWwKz3GZvRb3qosyu3NK1FXQQ5N7krys09DCgc0R95jbA6AbJV7poTWQx+16gIDAQAB";
const ED25519_DKIM: &str =
    "v=DKIM1; k=ed25519; h=sha256; p=MCowBQYDK2VwAyEA10JNCeFdAkxYSPI9H6b3Nh1/YY0VMucOIOKmZo3n9H4=";
const RSA_SELECTOR: &str = "v1-rsa-20260101._domainkey.acme.test";
const ED25519_SELECTOR: &str = "v1-ed25519-20260101._domainkey.acme.test";
const SPF: &str = "v=spf1 mx -all";
const DMARC: &str = "v=DMARC1; p=reject; rua=mailto:postmaster@acme.test";

/// `dnsZoneFile` as Stalwart v0.16 writes it for acme.test (the shape the Stalwart fake in
/// `tests/src/stalwart/zone.rs` reproduces): DKIM, SPF, MX, DMARC, SRV, TLS-RPT, UA
/// auto-config, `autoconfig`, `autodiscover`; a TXT over 255 bytes as parenthesised chunks.
const STALWART_ZONE: &str = "\
v1-ed25519-20260101._domainkey.acme.test. IN TXT \"v=DKIM1; k=ed25519; h=sha256; p=MCowBQYDK2VwAyEA10JNCeFdAkxYSPI9H6b3Nh1/YY0VMucOIOKmZo3n9H4=\"
v1-rsa-20260101._domainkey.acme.test. IN TXT (
    \"v=DKIM1; k=rsa; h=sha256; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImr\"
    \"hUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VILablLDZguhbtVtnKocmN6zXRm/LYODo/xhGOw5LK6KXA0dPBkrGj3APWwKz3GZvRb3qosyu3NK1FXQQ5N7krys09DCgc0R95jbA6AbJV7poTWQx+16gIDAQAB\"
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
_ua-auto-config.acme.test. IN TXT \"v=UAAC1; a=sha256; d=k6ZKxQ1yX3m0hQfQ8n2X7xkJ0m8bE3mYt8g1v4oZx2s=\"
autoconfig.acme.test. IN CNAME mail.dezky.test.
autodiscover.acme.test. IN CNAME mail.dezky.test.
";

/// What the product expects of acme.test: the zone file's records, then its ownership record.
fn expected() -> Vec<ExpectedRecord> {
    let mut records = expected_records(STALWART_ZONE, DOMAIN).expect("the zone file parses");
    records.push(ExpectedRecord {
        purpose: RecordPurpose::Ownership,
        name: OWNERSHIP_NAME.into(),
        record_type: RecordType::Txt,
        value: OWNERSHIP_VALUE.into(),
    });
    records
}

/// A server answering for the customer's domain and the mail host's.
fn zones() -> DnsServerBuilder {
    DnsServer::builder().zone(DOMAIN).zone("dezky.test")
}

/// What a DNS host shows after a customer copied every required record: the RSA key split
/// where their DNS host splits it (not where Stalwart did), and other TXT records at the apex.
fn required_records(server: DnsServerBuilder) -> DnsServerBuilder {
    server
        .mx(DOMAIN, 10, MAIL_HOST)
        .txt(DOMAIN, &["google-site-verification=Xk2_9fQ"])
        .txt(DOMAIN, &[SPF])
        .txt(DOMAIN, &["MS=ms81234567"])
        .txt(ED25519_SELECTOR, &[ED25519_DKIM])
        .txt(RSA_SELECTOR, &[&RSA_DKIM[..200], &RSA_DKIM[200..]])
        .txt("_dmarc.acme.test", &[DMARC])
        .txt(OWNERSHIP_NAME, &[OWNERSHIP_VALUE])
}

/// The optional client autodiscovery records, all as expected.
fn autodiscovery_records(server: DnsServerBuilder) -> DnsServerBuilder {
    server
        .srv("_caldavs._tcp.acme.test", 0, 1, 443, MAIL_HOST)
        .srv("_carddavs._tcp.acme.test", 0, 1, 443, MAIL_HOST)
        .srv("_imaps._tcp.acme.test", 0, 1, 993, MAIL_HOST)
        .srv("_pop3s._tcp.acme.test", 0, 1, 995, MAIL_HOST)
        .srv("_submissions._tcp.acme.test", 0, 1, 465, MAIL_HOST)
        .cname("autoconfig.acme.test", MAIL_HOST)
        .cname("autodiscover.acme.test", MAIL_HOST)
        .a(MAIL_HOST, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25)))
}

async fn check(server: &DnsServer, expected: &[ExpectedRecord]) -> Vec<RecordCheck> {
    let verifier = DnsVerifier::new(Some(server.addr())).expect("a verifier");
    match verifier.check(expected).await {
        Ok(checks) => checks,
        Err(error) => panic!("check failed: {error}\ndnsmasq log:\n{}", server.log()),
    }
}

/// The check of the record with this name and type.
fn find<'a>(checks: &'a [RecordCheck], name: &str, record_type: RecordType) -> &'a RecordCheck {
    checks
        .iter()
        .find(|c| c.expected.name == name && c.expected.record_type == record_type)
        .unwrap_or_else(|| panic!("no check for {record_type:?} {name}"))
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[test]
fn the_zone_file_yields_the_records_this_suite_publishes() {
    // Guards the suite itself: if the parser's output changed shape, the cases below would
    // compare against something else than they claim.
    let expected = expected();
    let summary: Vec<(RecordPurpose, &str, RecordType)> = expected
        .iter()
        .map(|r| (r.purpose, r.name.as_str(), r.record_type))
        .collect();
    use RecordPurpose as P;
    use RecordType as T;
    assert_eq!(
        summary,
        vec![
            (P::Dkim, ED25519_SELECTOR, T::Txt),
            (P::Dkim, RSA_SELECTOR, T::Txt),
            (P::Spf, DOMAIN, T::Txt),
            (P::Mx, DOMAIN, T::Mx),
            (P::Dmarc, "_dmarc.acme.test", T::Txt),
            (P::Autodiscovery, "_caldavs._tcp.acme.test", T::Srv),
            (P::Autodiscovery, "_carddavs._tcp.acme.test", T::Srv),
            (P::Autodiscovery, "_imaps._tcp.acme.test", T::Srv),
            (P::Autodiscovery, "_pop3s._tcp.acme.test", T::Srv),
            (P::Autodiscovery, "_submissions._tcp.acme.test", T::Srv),
            (P::Autodiscovery, "autoconfig.acme.test", T::Cname),
            (P::Autodiscovery, "autodiscover.acme.test", T::Cname),
            (P::Ownership, OWNERSHIP_NAME, T::Txt),
        ]
    );
    assert_eq!(expected[1].value, RSA_DKIM);
}

#[tokio::test]
async fn a_correctly_published_zone_is_all_ok_one_check_per_record_in_order() {
    let server = autodiscovery_records(required_records(zones())).start();
    let expected = expected();
    let checks = check(&server, &expected).await;

    let checked: Vec<&ExpectedRecord> = checks.iter().map(|c| &c.expected).collect();
    assert_eq!(checked, expected.iter().collect::<Vec<_>>());
    for c in &checks {
        assert_eq!(
            c.outcome,
            CheckOutcome::Ok,
            "{:?} {} found {:?}",
            c.expected.record_type,
            c.expected.name,
            c.found
        );
        assert!(!c.blocks_verification());
    }
    // Found values are shown in the expected values' format.
    assert_eq!(
        find(&checks, DOMAIN, RecordType::Mx).found,
        strings(&["10 mail.dezky.test"])
    );
    assert_eq!(
        find(&checks, "_imaps._tcp.acme.test", RecordType::Srv).found,
        strings(&["0 1 993 mail.dezky.test"])
    );
    assert_eq!(
        find(&checks, "autoconfig.acme.test", RecordType::Cname).found,
        strings(&[MAIL_HOST])
    );
    assert_eq!(
        find(&checks, RSA_SELECTOR, RecordType::Txt).found,
        strings(&[RSA_DKIM])
    );
}

#[tokio::test]
async fn names_compare_without_case_and_with_or_without_the_trailing_dot() {
    let server = autodiscovery_records(required_records(zones())).start();
    let expected = vec![
        ExpectedRecord {
            purpose: RecordPurpose::Mx,
            name: "ACME.Test.".into(),
            record_type: RecordType::Mx,
            value: "10 Mail.Dezky.TEST.".into(),
        },
        ExpectedRecord {
            purpose: RecordPurpose::Autodiscovery,
            name: "_IMAPS._tcp.acme.test.".into(),
            record_type: RecordType::Srv,
            value: "0 1 993 MAIL.dezky.test.".into(),
        },
        ExpectedRecord {
            purpose: RecordPurpose::Autodiscovery,
            name: "AutoConfig.ACME.test".into(),
            record_type: RecordType::Cname,
            value: "mail.dezky.test.".into(),
        },
    ];
    for c in check(&server, &expected).await {
        assert_eq!(
            c.outcome,
            CheckOutcome::Ok,
            "{:?} found {:?}",
            c.expected,
            c.found
        );
    }
}

#[tokio::test]
async fn records_not_published_are_missing_with_nothing_found() {
    // Only the MX is there: the apex exists (its TXT is NODATA), the other names do not
    // (NXDOMAIN); both are answers that the record is missing.
    let server = zones().mx(DOMAIN, 10, MAIL_HOST).start();
    let checks = check(&server, &expected()).await;
    for c in &checks {
        if c.expected.record_type == RecordType::Mx {
            assert_eq!(c.outcome, CheckOutcome::Ok);
            continue;
        }
        assert_eq!(c.outcome, CheckOutcome::Missing, "{:?}", c.expected);
        assert!(c.found.is_empty(), "{:?}", c.found);
        assert_eq!(c.blocks_verification(), !c.expected.purpose.is_optional());
    }
}

#[tokio::test]
async fn wrong_values_are_wrong_and_show_what_is_published() {
    let wrong_key = RSA_DKIM.replace("p=MIIBIjAN", "p=MIIBxxxx");
    let server = autodiscovery_records(zones())
        .mx(DOMAIN, 10, "mx.oldhost.test")
        .txt(DOMAIN, &["v=spf1 include:_spf.oldhost.test ~all"])
        .txt(DOMAIN, &["google-site-verification=Xk2_9fQ"])
        .txt(ED25519_SELECTOR, &[ED25519_DKIM])
        .txt(RSA_SELECTOR, &[&wrong_key[..255], &wrong_key[255..]])
        .txt(
            "_dmarc.acme.test",
            &["v=DMARC1; p=none; rua=mailto:postmaster@acme.test"],
        )
        .txt(OWNERSHIP_NAME, &["dezky-verification=someoneelse"])
        .start();
    let checks = check(&server, &expected()).await;

    let wrong = |name: &str, record_type: RecordType, found: &[&str]| {
        let c = find(&checks, name, record_type);
        assert_eq!(c.outcome, CheckOutcome::Wrong, "{name}");
        assert_eq!(c.found, strings(found), "{name}");
        assert!(c.blocks_verification());
    };
    wrong(DOMAIN, RecordType::Mx, &["10 mx.oldhost.test"]);
    // Only the SPF record is shown: the site verification beside it is not a wrong SPF.
    wrong(
        DOMAIN,
        RecordType::Txt,
        &["v=spf1 include:_spf.oldhost.test ~all"],
    );
    wrong(RSA_SELECTOR, RecordType::Txt, &[&wrong_key]);
    wrong(
        "_dmarc.acme.test",
        RecordType::Txt,
        &["v=DMARC1; p=none; rua=mailto:postmaster@acme.test"],
    );
    wrong(
        OWNERSHIP_NAME,
        RecordType::Txt,
        &["dezky-verification=someoneelse"],
    );
    assert_eq!(
        find(&checks, ED25519_SELECTOR, RecordType::Txt).outcome,
        CheckOutcome::Ok
    );
}

#[tokio::test]
async fn a_dkim_key_split_over_many_strings_with_folding_whitespace_is_ok() {
    let (head, key) = RSA_DKIM.split_at(RSA_DKIM.find("p=").expect("a key") + 2);
    let folded = format!("{} {} {}", &key[..64], &key[64..128], &key[128..]);
    let server = zones()
        .txt(
            RSA_SELECTOR,
            &[
                head,
                &folded[..50],
                &folded[50..51],
                &folded[51..300],
                &folded[300..],
            ],
        )
        .start();
    let rsa: Vec<ExpectedRecord> = expected()
        .into_iter()
        .filter(|r| r.name == RSA_SELECTOR)
        .collect();
    let checks = check(&server, &rsa).await;
    assert_eq!(checks[0].outcome, CheckOutcome::Ok, "{:?}", checks[0].found);
    assert_eq!(checks[0].found, strings(&[&format!("{head}{folded}")]));
}

#[tokio::test]
async fn spf_beside_other_txt_records_and_dmarc_with_extra_tags_are_ok() {
    let server = zones()
        .txt(DOMAIN, &["google-site-verification=Xk2_9fQ"])
        .txt(DOMAIN, &["v=spf1  mx  -all"])
        .txt(DOMAIN, &["apple-domain-verification=Q1w2"])
        .txt(
            "_dmarc.acme.test",
            &["v=DMARC1; p=reject; rua=mailto:dmarc@reports.example; ruf=mailto:f@reports.example; fo=1"],
        )
        .start();
    let expected: Vec<ExpectedRecord> = expected()
        .into_iter()
        .filter(|r| matches!(r.purpose, RecordPurpose::Spf | RecordPurpose::Dmarc))
        .collect();
    let checks = check(&server, &expected).await;
    assert_eq!(checks[0].outcome, CheckOutcome::Ok);
    assert_eq!(checks[0].found, strings(&["v=spf1  mx  -all"]));
    assert_eq!(checks[1].outcome, CheckOutcome::Ok, "{:?}", checks[1].found);
}

#[tokio::test]
async fn missing_autodiscovery_records_never_block_verification() {
    let server = required_records(zones()).start();
    let checks = check(&server, &expected()).await;
    for c in &checks {
        if c.expected.purpose == RecordPurpose::Autodiscovery {
            assert_eq!(c.outcome, CheckOutcome::Missing, "{:?}", c.expected);
            assert!(c.found.is_empty());
            assert!(!c.blocks_verification());
        } else {
            assert_eq!(
                c.outcome,
                CheckOutcome::Ok,
                "{:?} found {:?}",
                c.expected,
                c.found
            );
        }
    }
}

#[tokio::test]
async fn a_bare_address_where_the_autodiscovery_cname_belongs_is_a_warning() {
    let server = required_records(zones())
        .a(
            "autoconfig.acme.test",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80)),
        )
        .a(
            "autoconfig.acme.test",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80)),
        )
        .cname("autodiscover.acme.test", "autodiscover.outlook.test")
        .start();
    let checks = check(&server, &expected()).await;

    let autoconfig = find(&checks, "autoconfig.acme.test", RecordType::Cname);
    assert_eq!(autoconfig.outcome, CheckOutcome::Warning);
    assert_eq!(autoconfig.found, strings(&["192.0.2.80", "2001:db8::80"]));
    assert!(!autoconfig.blocks_verification());
    // An alias to somewhere else is wrong, not a warning, optional or not.
    let autodiscover = find(&checks, "autodiscover.acme.test", RecordType::Cname);
    assert_eq!(autodiscover.outcome, CheckOutcome::Wrong);
    assert_eq!(autodiscover.found, strings(&["autodiscover.outlook.test"]));
    assert!(!autodiscover.blocks_verification());
}

#[tokio::test]
async fn a_recheck_sees_records_published_since_the_last_check() {
    // The first answers are an old MX (a positive answer) and no autodiscovery records (a
    // negative one), both with an hour's TTL.
    let server = required_records(zones().mx(DOMAIN, 5, "mx.oldhost.test")).start();
    let port = server.addr().port();
    let verifier = DnsVerifier::new(Some(server.addr())).expect("a verifier");
    let expected = expected();

    let before = verifier.check(&expected).await.expect("checked");
    assert_eq!(
        find(&before, DOMAIN, RecordType::Mx).found,
        strings(&["10 mail.dezky.test", "5 mx.oldhost.test"])
    );
    assert_eq!(
        find(&before, "autoconfig.acme.test", RecordType::Cname).outcome,
        CheckOutcome::Missing
    );

    // The customer fixes their zone; the same verifier (and its resolver) checks again.
    drop(server);
    let server = autodiscovery_records(required_records(zones()))
        .port(port)
        .start();
    let after = verifier.check(&expected).await.expect("checked");
    assert_eq!(
        find(&after, DOMAIN, RecordType::Mx).found,
        strings(&["10 mail.dezky.test"])
    );
    for c in &after {
        assert_eq!(
            c.outcome,
            CheckOutcome::Ok,
            "{:?}\n{}",
            c.expected,
            server.log()
        );
    }
}

/// Runs a check against a server that will not answer, and returns its error and how long
/// it took. A hung check fails the test instead of hanging it.
async fn unavailable(nameserver: SocketAddr) -> (DnsError, Duration) {
    let verifier = DnsVerifier::new(Some(nameserver)).expect("a verifier");
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), verifier.check(&expected()))
        .await
        .expect("the check gives up on its own");
    match result {
        Ok(checks) => panic!("a check without answers returned verdicts: {checks:?}"),
        Err(error) => (error, started.elapsed()),
    }
}

#[tokio::test]
async fn a_nameserver_that_never_answers_is_unavailable_not_missing() {
    // A bound UDP socket that nobody reads: queries vanish, as behind a dead resolver.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (error, elapsed) = unavailable(silent.local_addr().expect("address")).await;
    assert!(matches!(error, DnsError::Unavailable(_)), "{error:?}");
    // Two tries of three seconds for the first record, then the check stops.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn a_nameserver_port_with_nothing_listening_is_unavailable() {
    let port = {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address").port()
    };
    let (error, elapsed) = unavailable(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert!(matches!(error, DnsError::Unavailable(_)), "{error:?}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn a_refused_query_is_unavailable_not_missing() {
    // The server does not serve acme.test and forwards nowhere: it answers REFUSED.
    let server = DnsServer::builder().zone("other.test").start();
    let (error, _) = unavailable(server.addr()).await;
    let DnsError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(message.contains("acme.test"), "{message}");
}
