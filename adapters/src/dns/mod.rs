//! DNS verification: looks up the records a mail domain is expected to publish and says, per
//! record, whether it is there, missing, wrong, or (for optional records) a warning.
//!
//! It asks a nameserver through `hickory-resolver` (ADR 8): the system's resolvers from
//! `resolv.conf`, or exactly one configured server over UDP and TCP. The resolver's cache is
//! off, so a recheck after a customer fixed their records sees the fix. A failure that is not
//! an answer (a timeout, SERVFAIL, REFUSED, a refused connection) is [`DnsError::Unavailable`],
//! never "missing": the caller retries later rather than flag a domain on a flaky resolver.
//! The comparison rules live in `compare.rs`.

mod compare;
mod port;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use dezky_domain::domains::{ExpectedRecord, RecordCheck, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ResolveError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType as QueryType};
use hickory_resolver::TokioResolver;

/// How long one query waits for an answer before it counts as a failed try.
pub const DNS_TIMEOUT_MS: u64 = 3_000;
/// How many times one query is sent before the lookup fails: the first try and one retry.
pub const DNS_TRIES: usize = 2;

/// Why a check could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The system's resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("cannot read the system's DNS configuration: {0}")]
    Config(String),
    /// An expected record's name is not a valid DNS name, so it cannot be looked up.
    #[error("{name:?} is not a valid DNS name: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The nameserver gave no answer (timeout, refused connection) or an error instead of one
    /// (SERVFAIL, REFUSED, …). Nothing is known about the records: try again later.
    #[error("DNS is unavailable: {0}")]
    Unavailable(String),
}

/// Checks expected records against DNS.
#[derive(Clone)]
pub struct DnsVerifier {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsVerifier").finish_non_exhaustive()
    }
}

impl DnsVerifier {
    /// A verifier that asks `nameserver` (over UDP, and TCP for long answers), or the system's
    /// resolvers from `resolv.conf` when `None`.
    pub fn new(nameserver: Option<SocketAddr>) -> Result<Self, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match nameserver {
            Some(address) => {
                let mut server = NameServerConfig::udp_and_tcp(address.ip());
                for connection in &mut server.connections {
                    connection.port = address.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => {
                TokioResolver::builder(provider).map_err(|e| DnsError::Config(e.to_string()))?
            }
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_millis(DNS_TIMEOUT_MS);
        // hickory counts retries after the first try.
        options.attempts = DNS_TRIES - 1;
        // No cache: a recheck must see what is published now, not what was an hour ago. The
        // TTL clamps make anything that still reaches the cache expire at once.
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        // Public DNS is the truth, not this machine's /etc/hosts.
        options.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// One check per expected record, in the same order. Stops at the first lookup that gets
    /// no answer ([`DnsError::Unavailable`]): a partial result would show records as missing
    /// that were never looked at.
    pub async fn check(&self, expected: &[ExpectedRecord]) -> Result<Vec<RecordCheck>, DnsError> {
        // Belt and braces with the disabled cache: nothing answered before this check began
        // may decide it.
        self.resolver.clear_cache();
        // Records that share a name and type (two MX records) are judged on one answer.
        let mut answers: HashMap<(String, QueryType), Vec<String>> = HashMap::new();
        let mut checks = Vec::with_capacity(expected.len());
        for record in expected {
            let name = compare::host(&record.name);
            let query_type = query_type(record.record_type);
            let published = self.lookup_once(&mut answers, &name, query_type).await?;
            let check = if record.record_type == RecordType::Cname && published.is_empty() {
                // No alias: is there a host of that name instead?
                let mut addresses = self.lookup_once(&mut answers, &name, QueryType::A).await?;
                addresses.extend(
                    self.lookup_once(&mut answers, &name, QueryType::AAAA)
                        .await?,
                );
                compare::judge_bare_addresses(record, addresses)
            } else {
                compare::judge(record, &published)
            };
            checks.push(check);
        }
        Ok(checks)
    }

    async fn lookup_once(
        &self,
        answers: &mut HashMap<(String, QueryType), Vec<String>>,
        name: &str,
        query_type: QueryType,
    ) -> Result<Vec<String>, DnsError> {
        let key = (name.to_owned(), query_type);
        if let Some(values) = answers.get(&key) {
            return Ok(values.clone());
        }
        let values = self.lookup(name, query_type).await?;
        answers.insert(key, values.clone());
        Ok(values)
    }

    /// The values published under `name` and `query_type`, rendered like expected values and
    /// sorted (servers rotate record order; a recheck should not see a change where there is
    /// none). Empty when the name has no such record or does not exist.
    async fn lookup(&self, name: &str, query_type: QueryType) -> Result<Vec<String>, DnsError> {
        // Fully qualified (trailing dot), so no search domain from resolv.conf is tried.
        let query = Name::from_utf8(format!("{name}.")).map_err(|e| DnsError::InvalidName {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        let result = self.resolver.lookup(query, query_type).await;
        let answers = answer(result)
            .map_err(|e| DnsError::Unavailable(format!("{query_type} {name}: {e}")))?;
        let mut values: Vec<String> = answers
            .iter()
            .filter_map(|data| render(data, query_type))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

/// The record data a lookup answered with; empty for NXDOMAIN and NODATA, which are answers
/// ("there is no such record"). Every other failure is not an answer and is returned as is.
fn answer(result: Result<Lookup, NetError>) -> Result<Vec<RData>, NetError> {
    match result {
        Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
        Err(NetError::Dns(ResolveError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NoError | ResponseCode::NXDomain,
            ..
        }))) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

fn query_type(record_type: RecordType) -> QueryType {
    match record_type {
        RecordType::Mx => QueryType::MX,
        RecordType::Txt => QueryType::TXT,
        RecordType::Srv => QueryType::SRV,
        RecordType::Cname => QueryType::CNAME,
    }
}

/// One answer's data in the expected-record format, or `None` for data of another type (the
/// CNAME a resolver follows on the way to a TXT record, say).
fn render(data: &RData, query_type: QueryType) -> Option<String> {
    let host = |name: &Name| compare::host(&name.to_ascii());
    match (data, query_type) {
        (RData::MX(mx), QueryType::MX) => Some(format!("{} {}", mx.preference, host(&mx.exchange))),
        (RData::SRV(srv), QueryType::SRV) => Some(format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            host(&srv.target)
        )),
        (RData::CNAME(cname), QueryType::CNAME) => Some(host(&cname.0)),
        // A TXT record's character-strings are one value (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
        (RData::TXT(txt), QueryType::TXT) => Some(
            txt.txt_data
                .iter()
                .map(|part| String::from_utf8_lossy(part))
                .collect(),
        ),
        (RData::A(a), QueryType::A) => Some(a.0.to_string()),
        (RData::AAAA(aaaa), QueryType::AAAA) => Some(aaaa.0.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::{CNAME, MX, SRV, TXT};

    fn no_records(code: ResponseCode) -> NetError {
        NetError::Dns(ResolveError::NoRecordsFound(NoRecords::new(
            Query::default(),
            code,
        )))
    }

    #[test]
    fn the_system_configuration_is_read() {
        assert!(DnsVerifier::new(None).is_ok());
    }

    #[test]
    fn a_check_can_run_on_any_tokio_worker() {
        // Sagas and the API spawn checks; a future that is not Send could not be spawned.
        fn send<T: Send>(_: T) {}
        let verifier = DnsVerifier::new(Some(SocketAddr::from(([127, 0, 0, 1], 53))));
        let verifier = verifier.expect("a verifier");
        send(verifier.check(&[]));
    }

    #[test]
    fn nxdomain_and_nodata_are_answers_with_no_records() {
        for code in [ResponseCode::NXDomain, ResponseCode::NoError] {
            assert_eq!(answer(Err(no_records(code))).map(|r| r.len()).ok(), Some(0));
        }
    }

    #[test]
    fn failures_that_are_not_answers_stay_errors() {
        for error in [
            NetError::Timeout,
            NetError::Dns(ResolveError::ResponseCode(ResponseCode::ServFail)),
            NetError::Dns(ResolveError::ResponseCode(ResponseCode::Refused)),
            no_records(ResponseCode::ServFail),
            NetError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(answer(Err(error)).is_err());
        }
    }

    #[test]
    fn answers_render_like_expected_values() {
        let name = |s: &str| Name::from_ascii(s).expect("name");
        assert_eq!(
            render(
                &RData::MX(MX::new(10, name("Mail.Dezky.Test."))),
                QueryType::MX
            )
            .as_deref(),
            Some("10 mail.dezky.test")
        );
        assert_eq!(
            render(
                &RData::SRV(SRV::new(0, 1, 993, name("mail.dezky.test."))),
                QueryType::SRV
            )
            .as_deref(),
            Some("0 1 993 mail.dezky.test")
        );
        assert_eq!(
            render(
                &RData::CNAME(CNAME(name("mail.dezky.test."))),
                QueryType::CNAME
            )
            .as_deref(),
            Some("mail.dezky.test")
        );
        let split = TXT::new(vec!["v=DKIM1; k=rsa; ".into(), "p=AB".into(), "CD".into()]);
        assert_eq!(
            render(&RData::TXT(split), QueryType::TXT).as_deref(),
            Some("v=DKIM1; k=rsa; p=ABCD")
        );
        // The alias a resolver followed to reach a TXT record is not a TXT value.
        assert_eq!(
            render(
                &RData::CNAME(CNAME(name("elsewhere.test."))),
                QueryType::TXT
            ),
            None
        );
    }
}
