//! A domain's `dnsZoneFile`, built the way Stalwart v0.16 builds it
//! (`Server::build_bind_dns_records` serialized by dns-update's `BindSerializer`): records in
//! the order DKIM, SPF, MX, DMARC, SRV, TLS-RPT, UA auto-config, `autoconfig`,
//! `autodiscover`; one `name IN TYPE data` line each; a TXT longer than 255 bytes (every RSA
//! DKIM key) split into a parenthesised, multi-line list of quoted chunks. TLSA, CAA and
//! MTA-STS records are left out: upstream emits them only with certificates, an ACME provider
//! or an MTA-STS policy, none of which the fake models. Stalwart publishes no ownership TXT
//! record; domain ownership proof is the product's own.

use base64::Engine;
use serde_json::{Map, Value};

use super::schema::SERVICES;

/// The records, as BIND text.
pub fn zone_file(
    domain: &Map<String, Value>,
    dkim: &[&Map<String, Value>],
    settings: &Map<String, Value>,
) -> String {
    let name = domain
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = settings
        .get("defaultHostname")
        .and_then(Value::as_str)
        .unwrap_or("mail.example.net");
    let mut out = String::new();

    for key in dkim {
        let selector = key
            .get("selector")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let public = key
            .get("publicKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let algorithm = match key.get("@type").and_then(Value::as_str) {
            Some(t) if t.contains("Ed25519") => "ed25519",
            _ => "rsa",
        };
        txt(
            &mut out,
            &format!("{selector}._domainkey.{name}."),
            &format!("v=DKIM1; k={algorithm}; h=sha256; p={}", pem_body(public)),
        );
    }

    let mxs: Vec<(String, u64)> = settings
        .get("mailExchangers")
        .and_then(Value::as_object)
        .map(|list| {
            list.values()
                .map(|mx| {
                    (
                        mx.get("hostname")
                            .and_then(Value::as_str)
                            .unwrap_or(host)
                            .to_owned(),
                        mx.get("priority").and_then(Value::as_u64).unwrap_or(10),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    let mut spf_hosts: Vec<&str> = mxs.iter().map(|(h, _)| h.as_str()).collect();
    spf_hosts.dedup();
    for mx in spf_hosts {
        if mx.ends_with(&format!(".{name}")) {
            txt(&mut out, &format!("{mx}."), "v=spf1 a -all");
        }
    }
    txt(&mut out, &format!("{name}."), "v=spf1 mx -all");

    for (mx, priority) in &mxs {
        out.push_str(&format!("{name}. IN MX {priority} {}\n", fqdn(mx)));
    }

    let report = domain.get("reportAddressUri").and_then(Value::as_str);
    if let Some(uri) = report {
        txt(
            &mut out,
            &format!("_dmarc.{name}."),
            &format!("v=DMARC1; p=reject; rua={}", report_uri(uri, name)),
        );
    }

    let services = settings.get("services").and_then(Value::as_object);
    for protocol in SERVICES {
        let Some(service) = services.and_then(|s| s.get(*protocol)) else {
            continue;
        };
        let target = fqdn(
            service
                .get("hostname")
                .and_then(Value::as_str)
                .unwrap_or(host),
        );
        let cleartext = service.get("cleartext").and_then(Value::as_bool) == Some(true);
        let pairs: &[(&str, u16, bool)] = match *protocol {
            "jmap" => &[("jmap", 443, true)],
            "caldav" => &[("caldavs", 443, true)],
            "carddav" => &[("carddavs", 443, true)],
            "imap" => &[("imap", 143, false), ("imaps", 993, true)],
            "pop3" => &[("pop3", 110, false), ("pop3s", 995, true)],
            "smtp" => &[("submission", 587, false), ("submissions", 465, true)],
            _ => &[],
        };
        for (service_name, port, tls) in pairs {
            if *tls || cleartext {
                out.push_str(&format!(
                    "_{service_name}._tcp.{name}. IN SRV 0 1 {port} {target}\n"
                ));
            }
        }
    }

    if let Some(uri) = report {
        txt(
            &mut out,
            &format!("_smtp._tls.{name}."),
            &format!("v=TLSRPTv1; rua={}", report_uri(uri, name)),
        );
    }

    out.push_str(&format!("ua-auto-config.{name}. IN CNAME {}\n", fqdn(host)));
    let digest = base64::engine::general_purpose::STANDARD.encode(pseudo_bytes(name, 32));
    txt(
        &mut out,
        &format!("_ua-auto-config.{name}."),
        &format!("v=UAAC1; a=sha256; d={digest}"),
    );
    out.push_str(&format!("autoconfig.{name}. IN CNAME {}\n", fqdn(host)));
    out.push_str(&format!("autodiscover.{name}. IN CNAME {}\n", fqdn(host)));
    out
}

fn report_uri(uri: &str, domain: &str) -> String {
    if uri.starts_with("mailto:") && !uri.contains('@') {
        format!("{uri}@{domain}")
    } else {
        uri.to_owned()
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn txt(out: &mut String, name: &str, text: &str) {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    if text.len() <= 255 {
        out.push_str(&format!("{name} IN TXT \"{}\"\n", escape(text)));
    } else {
        out.push_str(&format!("{name} IN TXT (\n"));
        for chunk in text.as_bytes().chunks(255) {
            out.push_str(&format!(
                "    \"{}\"\n",
                escape(&String::from_utf8_lossy(chunk))
            ));
        }
        out.push_str(")\n");
    }
}

/// The base64 body of a PEM block.
pub fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
}

/// Deterministic bytes derived from `seed`, standing in for key material: the fake needs
/// realistic lengths (an RSA-2048 key's DER is 294 bytes, an Ed25519 key 32), not real keys.
pub fn pseudo_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
