//! The discovery documents mail clients fetch before anyone signs in: Thunderbird's autoconfig
//! (`clientConfig` version 1.1) and Outlook's POX autodiscover (request schema
//! `…/outlook/requestschema/2006`, response schema `…/outlook/responseschema/2006a`).
//!
//! Reading Outlook's request is the one place the server parses XML from strangers, so the
//! reader is strict and bounded: at most [`MAX_AUTODISCOVER_BODY_BYTES`], UTF-8, no DOCTYPE
//! (so no DTD, no entity declarations, no "billion laughs"), no entity references beyond
//! XML's five predefined ones and character references, at most [`MAX_ELEMENT_DEPTH`] levels
//! of elements. quick-xml itself never expands entities or fetches anything; refusing the
//! DOCTYPE outright means nothing in the body could even ask it to.

use axum::http::HeaderValue;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::profile::escape;
use super::{Address, IMAP_PORT, SUBMISSION_PORT};

/// The longest autodiscover request read (Outlook's is a few hundred bytes).
pub const MAX_AUTODISCOVER_BODY_BYTES: usize = 16 * 1024;
/// The deepest element nesting accepted (Outlook's request is three levels deep).
pub const MAX_ELEMENT_DEPTH: usize = 8;
/// Outlook's request schema (the root element's namespace).
pub const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
/// The response schema Outlook asks for, and the only one answered.
pub const OUTLOOK_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// The namespace of the response's root element.
pub const RESPONSE_ROOT_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";

/// Why an autodiscover request was refused (answered `400 BAD_REQUEST` with this sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutodiscoverRequestError {
    /// Not UTF-8.
    #[error("the request is not UTF-8")]
    NotUtf8,
    /// A DOCTYPE (DTDs and entity declarations are never read).
    #[error("the request may not have a DOCTYPE")]
    DocType,
    /// An entity reference other than the five predefined ones.
    #[error("the request refers to an entity that is not defined")]
    UnknownEntity,
    /// Elements nested deeper than [`MAX_ELEMENT_DEPTH`].
    #[error("the request nests elements too deeply")]
    TooDeep,
    /// Not well-formed XML.
    #[error("the request is not well-formed XML")]
    Malformed,
    /// Not an `Autodiscover` request of the Outlook request schema.
    #[error("the request is not an Outlook autodiscover request")]
    NotAutodiscover,
    /// A response schema other than Outlook's 2006a.
    #[error("only the Outlook response schema (2006a) is answered")]
    UnsupportedSchema,
    /// No usable `EMailAddress`.
    #[error("the request has no valid EMailAddress")]
    NoAddress,
}

/// Whether a `Content-Type` is XML (`text/xml`, `application/xml`), with no charset but UTF-8.
pub fn is_xml(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let xml =
        essence.eq_ignore_ascii_case("text/xml") || essence.eq_ignore_ascii_case("application/xml");
    xml && parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = value.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("us-ascii")
        }
        _ => true,
    })
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// Reads Outlook's request: `<Autodiscover xmlns="…requestschema/2006"><Request>
/// <EMailAddress>…</EMailAddress><AcceptableResponseSchema>…2006a</AcceptableResponseSchema>
/// </Request></Autodiscover>`, and returns the address asked about.
pub fn read_autodiscover_request(body: &[u8]) -> Result<Address, AutodiscoverRequestError> {
    use AutodiscoverRequestError as E;
    let text = std::str::from_utf8(body).map_err(|_| E::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    // The element path from the root, by local name.
    let mut path: Vec<String> = Vec::new();
    let mut root_seen = false;
    let mut email: Option<String> = None;
    let mut schema: Option<String> = None;
    let mut current = String::new();
    loop {
        let event = reader.read_event().map_err(|_| E::Malformed)?;
        match event {
            Event::DocType(_) => return Err(E::DocType),
            // A second root element.
            Event::Start(_) | Event::Empty(_) if path.is_empty() && root_seen => {
                return Err(E::Malformed)
            }
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_owned();
                if path.is_empty() {
                    root_seen = true;
                    let namespace = start
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == "xmlns")
                        .map(|a| a.value.to_string());
                    if name != "Autodiscover" || namespace.as_deref() != Some(REQUEST_SCHEMA) {
                        return Err(E::NotAutodiscover);
                    }
                }
                path.push(name);
                if path.len() > MAX_ELEMENT_DEPTH {
                    return Err(E::TooDeep);
                }
                current.clear();
            }
            Event::Empty(_) if path.is_empty() => return Err(E::NotAutodiscover),
            Event::Empty(_) => {}
            Event::Text(t) => current.push_str(&t.xml10_content()),
            Event::CData(c) => current.push_str(&c),
            Event::GeneralRef(reference) => {
                if reference.is_char_ref() {
                    match reference.resolve_char_ref() {
                        Ok(Some(c)) => current.push(c),
                        _ => return Err(E::Malformed),
                    }
                } else {
                    current.push(predefined(&reference).ok_or(E::UnknownEntity)?);
                }
            }
            Event::End(_) => {
                let inside: Vec<&str> = path.iter().map(String::as_str).collect();
                match inside.as_slice() {
                    ["Autodiscover", "Request", "EMailAddress"] => {
                        email = Some(current.trim().to_owned())
                    }
                    ["Autodiscover", "Request", "AcceptableResponseSchema"] => {
                        schema = Some(current.trim().to_owned())
                    }
                    _ => {}
                }
                current.clear();
                path.pop();
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !root_seen || !path.is_empty() {
        return Err(E::Malformed);
    }
    if schema
        .as_deref()
        .is_some_and(|s| s != OUTLOOK_RESPONSE_SCHEMA)
    {
        return Err(E::UnsupportedSchema);
    }
    email
        .as_deref()
        .and_then(Address::parse)
        .ok_or(E::NoAddress)
}

/// Thunderbird's `clientConfig` 1.1 for `domain`: IMAP on 993 and SMTP on 465, both implicit
/// TLS, the whole address as the user name.
pub fn autoconfig_xml(domain: &str, mail_host: &str) -> String {
    let domain = escape(domain);
    let host = escape(mail_host);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>{domain}</displayName>
    <displayShortName>{domain}</displayShortName>
    <incomingServer type="imap">
      <hostname>{host}</hostname>
      <port>{IMAP_PORT}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{host}</hostname>
      <port>{SUBMISSION_PORT}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"#
    )
}

/// Outlook's POX response for `address`: IMAP and SMTP with TLS and the address as login.
pub fn autodiscover_xml(address: &str, mail_host: &str) -> String {
    let address = escape(address);
    let host = escape(mail_host);
    let protocol = |kind: &str, port: u16| {
        format!(
            r#"      <Protocol>
        <Type>{kind}</Type>
        <Server>{host}</Server>
        <Port>{port}</Port>
        <LoginName>{address}</LoginName>
        <DomainRequired>off</DomainRequired>
        <SPA>off</SPA>
        <SSL>on</SSL>
        <AuthRequired>on</AuthRequired>
      </Protocol>
"#
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{RESPONSE_ROOT_SCHEMA}">
  <Response xmlns="{OUTLOOK_RESPONSE_SCHEMA}">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
{imap}{smtp}    </Account>
  </Response>
</Autodiscover>
"#,
        imap = protocol("IMAP", IMAP_PORT),
        smtp = protocol("SMTP", SUBMISSION_PORT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(address: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{REQUEST_SCHEMA}">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>{OUTLOOK_RESPONSE_SCHEMA}</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#
        )
    }

    #[test]
    fn outlooks_request_yields_its_address() {
        let address = read_autodiscover_request(request("Ann@Acme.EU").as_bytes()).expect("read");
        assert_eq!(address.text(), "ann@acme.eu");
    }

    #[test]
    fn a_doctype_is_refused_before_any_entity_is_read() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>&lol2;</EMailAddress></Request></Autodiscover>"#;
        assert_eq!(
            read_autodiscover_request(bomb.as_bytes()),
            Err(AutodiscoverRequestError::DocType)
        );
    }

    #[test]
    fn an_undeclared_entity_is_refused() {
        let body = request("&ext;");
        assert_eq!(
            read_autodiscover_request(body.as_bytes()),
            Err(AutodiscoverRequestError::UnknownEntity)
        );
    }

    #[test]
    fn deep_nesting_unclosed_tags_and_other_roots_are_refused() {
        let deep = format!(
            "<Autodiscover xmlns=\"{REQUEST_SCHEMA}\">{}",
            "<a>".repeat(20)
        );
        assert_eq!(
            read_autodiscover_request(deep.as_bytes()),
            Err(AutodiscoverRequestError::TooDeep)
        );
        let open = format!("<Autodiscover xmlns=\"{REQUEST_SCHEMA}\"><Request>");
        assert_eq!(
            read_autodiscover_request(open.as_bytes()),
            Err(AutodiscoverRequestError::Malformed)
        );
        assert_eq!(
            read_autodiscover_request(b"<html/>"),
            Err(AutodiscoverRequestError::NotAutodiscover)
        );
        assert_eq!(
            read_autodiscover_request(b"\xff\xfe"),
            Err(AutodiscoverRequestError::NotUtf8)
        );
    }

    #[test]
    fn a_mobilesync_request_is_refused_as_unsupported() {
        let body = request("ann@acme.eu").replace(
            OUTLOOK_RESPONSE_SCHEMA,
            "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006",
        );
        assert_eq!(
            read_autodiscover_request(body.as_bytes()),
            Err(AutodiscoverRequestError::UnsupportedSchema)
        );
    }

    #[test]
    fn xml_content_types_are_recognised_with_a_utf8_charset_only() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_xml(Some(&v("text/xml"))));
        assert!(is_xml(Some(&v("application/xml; charset=utf-8"))));
        assert!(!is_xml(Some(&v("application/json"))));
        assert!(!is_xml(Some(&v("text/xml; charset=utf-16"))));
        assert!(!is_xml(None));
    }
}
