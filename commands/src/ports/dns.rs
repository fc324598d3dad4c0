//! The DNS port: what domain verification needs from DNS — the answers for a domain's
//! expected records, compared one by one.

use std::future::Future;

use dezky_domain::domains::{ExpectedRecord, RecordCheck};

/// Why a check produced no verdict. A verdict of "missing" needs an answer from DNS; a
/// resolver that did not answer says nothing about the domain, so it is an error the caller
/// retries, never a record reported missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsCheckError {
    /// No resolver is configured.
    #[error("DNS verification is not configured")]
    NotConfigured,
    /// The resolver gave no answer (timeout, SERVFAIL, refused).
    #[error("DNS did not answer: {0}")]
    Unavailable(String),
}

/// Checks expected records against DNS.
pub trait DnsCheck: Send + Sync {
    /// One check per expected record, in the same order.
    fn check(
        &self,
        expected: &[ExpectedRecord],
    ) -> impl Future<Output = Result<Vec<RecordCheck>, DnsCheckError>> + Send;
}
