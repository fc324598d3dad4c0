//! The Apple configuration profile (`.mobileconfig`): one install sets up Mail (IMAP and
//! SMTP), Calendar (CalDAV) and Contacts (CardDAV) for one member's mailbox.
//!
//! The profile holds no password: the device asks for it on first use, so a profile that
//! leaks (a forwarded download, a backup) gives nobody access. Its identifiers are derived,
//! not random ([`payload_uuid`]): downloading it again gives the same `PayloadIdentifier`
//! and `PayloadUUID`s, so installing it again replaces the earlier install instead of adding
//! a second account.
//!
//! The profile is not signed: CMS signing with a configured certificate is not implemented,
//! and there is no setting for it. Devices show such a profile as "Not Verified", and install
//! it all the same.

use sha2::{Digest, Sha256};

use super::{DavBase, IMAP_PORT, SUBMISSION_PORT};

/// The profile's media type, which makes Safari hand it to the profile installer.
pub const CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// One member's profile.
#[derive(Debug, Clone)]
pub struct Profile<'a> {
    /// The platform domain, reversed into the identifiers' prefix.
    pub platform_domain: &'a str,
    /// The workspace's organization name (shown by the installer).
    pub organization: &'a str,
    /// The workspace.
    pub tenant_id: &'a str,
    /// The member.
    pub member_id: &'a str,
    /// The mailbox's address (also the user name everywhere).
    pub address: &'a str,
    /// The member's display name (the mail account's sender name).
    pub display_name: &'a str,
    /// The mail host.
    pub mail_host: &'a str,
    /// The DAV base; `None` leaves the CalDAV and CardDAV payloads out.
    pub dav: Option<&'a DavBase>,
}

/// A stable UUID for one payload of one member's profile: SHA-256 over the workspace, the
/// member and the payload kind, cut to 128 bits and marked as an RFC 9562 version 8 (custom)
/// UUID. The same inputs always give the same UUID; different members never share one.
pub fn payload_uuid(tenant_id: &str, member_id: &str, kind: &str) -> String {
    let mut hash = Sha256::new();
    for part in ["dezky client set-up", tenant_id, member_id, kind] {
        // Length-prefixed, so no two different triples hash the same bytes.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
        .hyphenated()
        .to_string()
        .to_uppercase()
}

/// A name for the downloaded file: the address with anything unusual replaced.
pub fn file_stem(address: &str) -> String {
    address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Escapes text for an XML text node.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and line breaks are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A plist value, as much of it as a profile needs.
enum Value {
    Text(String),
    Integer(u64),
    Bool(bool),
    Dict(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

impl Value {
    fn write(&self, out: &mut String, indent: usize) {
        let pad = "\t".repeat(indent);
        match self {
            Value::Text(s) => out.push_str(&format!("{pad}<string>{}</string>\n", escape(s))),
            Value::Integer(n) => out.push_str(&format!("{pad}<integer>{n}</integer>\n")),
            Value::Bool(true) => out.push_str(&format!("{pad}<true/>\n")),
            Value::Bool(false) => out.push_str(&format!("{pad}<false/>\n")),
            Value::Dict(entries) => {
                out.push_str(&format!("{pad}<dict>\n"));
                for (key, value) in entries {
                    out.push_str(&format!("{pad}\t<key>{}</key>\n", escape(key)));
                    value.write(out, indent + 1);
                }
                out.push_str(&format!("{pad}</dict>\n"));
            }
            Value::Array(items) => {
                out.push_str(&format!("{pad}<array>\n"));
                for item in items {
                    item.write(out, indent + 1);
                }
                out.push_str(&format!("{pad}</array>\n"));
            }
        }
    }
}

impl Profile<'_> {
    /// The profile's `PayloadIdentifier` (reverse-DNS of the platform domain, then the
    /// workspace and member): stable per member and workspace.
    pub fn identifier(&self) -> String {
        let reversed: Vec<&str> = self
            .platform_domain
            .trim_end_matches('.')
            .split('.')
            .rev()
            .collect();
        format!(
            "{}.client-setup.{}.{}",
            reversed.join("."),
            self.tenant_id,
            self.member_id
        )
    }

    fn common(&self, kind: &str, payload_type: &str, name: String) -> Vec<(&'static str, Value)> {
        vec![
            ("PayloadType", text(payload_type)),
            ("PayloadVersion", Value::Integer(1)),
            (
                "PayloadIdentifier",
                text(format!("{}.{kind}", self.identifier())),
            ),
            (
                "PayloadUUID",
                text(payload_uuid(self.tenant_id, self.member_id, kind)),
            ),
            ("PayloadDisplayName", text(name)),
        ]
    }

    fn mail(&self) -> Value {
        let mut entries = self.common(
            "mail",
            "com.apple.mail.managed",
            format!("Mail ({})", self.address),
        );
        entries.extend([
            ("EmailAccountDescription", text(self.organization)),
            ("EmailAccountName", text(self.display_name)),
            ("EmailAccountType", text("EmailTypeIMAP")),
            ("EmailAddress", text(self.address)),
            ("IncomingMailServerHostName", text(self.mail_host)),
            (
                "IncomingMailServerPortNumber",
                Value::Integer(IMAP_PORT.into()),
            ),
            ("IncomingMailServerUseSSL", Value::Bool(true)),
            ("IncomingMailServerUsername", text(self.address)),
            (
                "IncomingMailServerAuthentication",
                text("EmailAuthPassword"),
            ),
            ("OutgoingMailServerHostName", text(self.mail_host)),
            (
                "OutgoingMailServerPortNumber",
                Value::Integer(SUBMISSION_PORT.into()),
            ),
            ("OutgoingMailServerUseSSL", Value::Bool(true)),
            ("OutgoingMailServerUsername", text(self.address)),
            (
                "OutgoingMailServerAuthentication",
                text("EmailAuthPassword"),
            ),
            ("OutgoingPasswordSameAsIncomingPassword", Value::Bool(true)),
        ]);
        Value::Dict(entries)
    }

    fn caldav(&self, dav: &DavBase) -> Value {
        let mut entries = self.common(
            "caldav",
            "com.apple.caldav.account",
            format!("Calendar ({})", self.address),
        );
        entries.extend([
            ("CalDAVAccountDescription", text(self.organization)),
            ("CalDAVHostName", text(dav.host())),
            ("CalDAVPort", Value::Integer(dav.port().into())),
            (
                "CalDAVPrincipalURL",
                text(DavBase::path(&dav.caldav_url(self.address))),
            ),
            ("CalDAVUseSSL", Value::Bool(dav.tls())),
            ("CalDAVUsername", text(self.address)),
        ]);
        Value::Dict(entries)
    }

    fn carddav(&self, dav: &DavBase) -> Value {
        let mut entries = self.common(
            "carddav",
            "com.apple.carddav.account",
            format!("Contacts ({})", self.address),
        );
        entries.extend([
            ("CardDAVAccountDescription", text(self.organization)),
            ("CardDAVHostName", text(dav.host())),
            ("CardDAVPort", Value::Integer(dav.port().into())),
            (
                "CardDAVPrincipalURL",
                text(DavBase::path(&dav.carddav_url(self.address))),
            ),
            ("CardDAVUseSSL", Value::Bool(dav.tls())),
            ("CardDAVUsername", text(self.address)),
        ]);
        Value::Dict(entries)
    }

    /// The profile as an XML property list.
    pub fn render(&self) -> String {
        let mut payloads = vec![self.mail()];
        if let Some(dav) = self.dav {
            payloads.push(self.caldav(dav));
            payloads.push(self.carddav(dav));
        }
        let root = Value::Dict(vec![
            ("PayloadType", text("Configuration")),
            ("PayloadVersion", Value::Integer(1)),
            ("PayloadIdentifier", text(self.identifier())),
            (
                "PayloadUUID",
                text(payload_uuid(self.tenant_id, self.member_id, "profile")),
            ),
            ("PayloadDisplayName", text(format!("{} ({})", self.organization, self.address))),
            (
                "PayloadDescription",
                text("Mail, calendar and contacts for your workspace mailbox. You will be asked for your password."),
            ),
            ("PayloadOrganization", text(self.organization)),
            ("PayloadRemovalDisallowed", Value::Bool(false)),
            ("PayloadContent", Value::Array(payloads)),
        ]);
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n",
        );
        root.write(&mut out, 0);
        out.push_str("</plist>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_uuids_are_stable_and_differ_by_member_and_kind() {
        let a = payload_uuid("t1", "m1", "mail");
        assert_eq!(a, payload_uuid("t1", "m1", "mail"));
        assert_ne!(a, payload_uuid("t1", "m2", "mail"));
        assert_ne!(a, payload_uuid("t1", "m1", "caldav"));
        assert_ne!(
            payload_uuid("t1m", "1", "mail"),
            payload_uuid("t1", "m1", "mail")
        );
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 8);
    }

    #[test]
    fn text_with_markup_is_escaped() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
