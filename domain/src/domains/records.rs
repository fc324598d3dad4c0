//! The DNS records a mail domain needs, and what a check of them found.
//!
//! The expected records come from the mail server's zone file for the domain (MX, SPF, DKIM,
//! DMARC, ownership TXT, and the optional autodiscovery records). A check yields, per record,
//! ok / missing / wrong (or a warning for optional records), with the expected and found
//! values, so a portal can show a person exactly what to change at their DNS host.

use serde::{Deserialize, Serialize};

/// The resource record type of an expected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordType {
    /// Mail exchanger.
    #[serde(rename = "MX")]
    Mx,
    /// Text (SPF, DKIM, DMARC, ownership).
    #[serde(rename = "TXT")]
    Txt,
    /// Service locator (autodiscovery).
    #[serde(rename = "SRV")]
    Srv,
    /// Alias (autodiscovery).
    #[serde(rename = "CNAME")]
    Cname,
}

/// What a record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordPurpose {
    /// Where mail for the domain goes.
    Mx,
    /// Which servers may send for the domain.
    Spf,
    /// A DKIM public key (one per selector).
    Dkim,
    /// The DMARC policy.
    Dmarc,
    /// Proof that the workspace controls the domain.
    Ownership,
    /// Client autodiscovery (`_imaps`, `_submissions`, `_pop3s`, `_caldavs`, `_carddavs` SRV; `autoconfig`,
    /// `autodiscover` CNAME). Optional: never gates the domain's status.
    Autodiscovery,
}

impl RecordPurpose {
    /// Whether a domain can be verified without this record.
    pub fn is_optional(self) -> bool {
        matches!(self, RecordPurpose::Autodiscovery)
    }
}

/// One record the domain should publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedRecord {
    /// What it is for.
    pub purpose: RecordPurpose,
    /// The owner name, fully qualified without the trailing dot (`_dmarc.acme.eu`).
    pub name: String,
    /// The record type.
    pub record_type: RecordType,
    /// The value as a DNS host shows it (`10 mail.dezky.eu`, `v=spf1 …`).
    pub value: String,
}

/// What a check found for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Published as expected.
    Ok,
    /// Nothing published under that name and type.
    Missing,
    /// Something else published there.
    Wrong,
    /// Not as expected, but the record is optional and what is there still works (e.g. a
    /// bare A record where the autodiscovery CNAME was expected).
    Warning,
}

/// The check of one expected record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCheck {
    /// The record checked.
    pub expected: ExpectedRecord,
    /// What was found under its name and type (empty when missing).
    pub found: Vec<String>,
    /// The verdict.
    pub outcome: CheckOutcome,
}

impl RecordCheck {
    /// Whether this check keeps the domain from being verified: a required record that is
    /// not ok. Optional records never do, whatever their outcome.
    pub fn blocks_verification(&self) -> bool {
        !self.expected.purpose.is_optional() && self.outcome != CheckOutcome::Ok
    }
}
