//! [`DnsVerifier`] as the commands' DNS port, for the domain provisioning saga.

use dezky_commands::ports::dns::{DnsCheck, DnsCheckError};
use dezky_domain::domains::{ExpectedRecord, RecordCheck};

use super::{DnsError, DnsVerifier};

impl DnsCheck for DnsVerifier {
    async fn check(&self, expected: &[ExpectedRecord]) -> Result<Vec<RecordCheck>, DnsCheckError> {
        DnsVerifier::check(self, expected)
            .await
            .map_err(|error| match error {
                // A name that cannot be looked up is the records' fault, not DNS's; it still gives
                // no verdict, and retrying cannot help, but the effect's budget bounds the retries
                // and the error says what is wrong.
                DnsError::Config(_) | DnsError::InvalidName { .. } | DnsError::Unavailable(_) => {
                    DnsCheckError::Unavailable(error.to_string())
                }
            })
    }
}
