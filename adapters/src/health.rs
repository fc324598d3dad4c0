//! Infrastructure health: whether each service the platform depends on answers, for the
//! operator console and `dezky health`.
//!
//! A probe is a **read-only observation** for operators, not an effect: it changes nothing in
//! the probed system, records nothing on the ledger and decides nothing (no saga waits on it),
//! so it does not go through the effect worker the way every call that *acts* on an outside
//! system does. What it finds is kept in memory only.
//!
//! Targets come from configuration (`DEZKY_HEALTH_<SERVICE>`), never from guessed host names:
//! the seed's console probed docker-compose names that did not resolve in production and
//! showed seven of nine services down. A target is an `http(s)://` URL (probed with a `GET`:
//! any answer below 500 means the service is up — a 401 from an admin API is a live server),
//! `host:port` or another URL (a TCP connect), or `disabled` (left out of the report). An unset
//! target is reported as not configured.
//!
//! All services are probed concurrently, each within the probe timeout, and a report is kept
//! for the cache time: however many operators look at once, each service is probed at most
//! once per cache period (a single flight — concurrent callers wait for the round in
//! progress and share it). Nothing is made up: a report holds each service's status, the
//! latency of this one probe and the last error seen; there is no uptime or percentile,
//! because nothing measures them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest error text kept per service.
pub const MAX_ERROR_CHARS: usize = 200;
/// Default probe timeout.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 2_000;
/// Default time a report is reused.
pub const DEFAULT_CACHE_MS: u64 = 10_000;

/// A service the platform depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// The ledger's database.
    Postgresql,
    /// The mail server.
    Stalwart,
    /// The identity provider.
    Authentik,
    /// Payments.
    Stripe,
    /// Object storage.
    S3,
    /// File storage.
    Ocis,
    /// Calendars (bookings).
    Caldav,
    /// Outgoing mail (booking confirmations).
    Smtp,
    /// DNS (domain verification).
    Dns,
}

impl Service {
    /// Every service, in report order.
    pub const ALL: [Service; 9] = [
        Service::Postgresql,
        Service::Stalwart,
        Service::Authentik,
        Service::Stripe,
        Service::S3,
        Service::Ocis,
        Service::Caldav,
        Service::Smtp,
        Service::Dns,
    ];

    /// The service's name in reports and settings.
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgresql => "postgresql",
            Service::Stalwart => "stalwart",
            Service::Authentik => "authentik",
            Service::Stripe => "stripe",
            Service::S3 => "s3",
            Service::Ocis => "ocis",
            Service::Caldav => "caldav",
            Service::Smtp => "smtp",
            Service::Dns => "dns",
        }
    }

    /// The environment variable naming its target (`DEZKY_HEALTH_STALWART`).
    pub fn env_var(self) -> String {
        format!("DEZKY_HEALTH_{}", self.name().to_ascii_uppercase())
    }
}

/// Where a service is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Left out of the report (`disabled`).
    Disabled,
    /// No target set: reported as not configured, never probed.
    NotConfigured,
    /// `GET` this URL (credentials stripped: a probe never authenticates).
    Http(reqwest::Url),
    /// Open a TCP connection.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}: {value:?} is not a URL, host:port or \"disabled\"")]
pub struct TargetError {
    /// The service.
    pub service: &'static str,
    /// What was given (cut short).
    pub value: String,
}

impl Target {
    /// Reads a target for `service`: `None` or blank is not configured.
    pub fn parse(service: Service, raw: Option<&str>) -> Result<Self, TargetError> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Target::NotConfigured);
        };
        let refused = || TargetError {
            service: service.name(),
            value: raw.chars().take(100).collect(),
        };
        if raw.eq_ignore_ascii_case("disabled") {
            return Ok(Target::Disabled);
        }
        if raw.contains("://") {
            let mut url = reqwest::Url::parse(raw).map_err(|_| refused())?;
            let host = url.host_str().ok_or_else(refused)?.to_owned();
            if matches!(url.scheme(), "http" | "https") {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                return Ok(Target::Http(url));
            }
            let port = url.port_or_known_default().ok_or_else(refused)?;
            return Ok(Target::Tcp { host, port });
        }
        let (host, port) = raw.rsplit_once(':').ok_or_else(refused)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| refused())?;
        if host.is_empty() || port == 0 || host.contains(['/', ' ', '@']) {
            return Err(refused());
        }
        Ok(Target::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// What the report shows as the target (no credentials, no query).
    pub fn display(&self) -> Option<String> {
        match self {
            Target::Disabled | Target::NotConfigured => None,
            Target::Http(url) => {
                let mut shown = url.clone();
                shown.set_query(None);
                shown.set_fragment(None);
                Some(shown.to_string())
            }
            Target::Tcp { host, port } => Some(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It answered.
    Up,
    /// It refused, failed or answered with a server error.
    Down,
    /// No answer within the probe timeout.
    Timeout,
    /// No target is configured.
    NotConfigured,
}

impl Status {
    /// The status's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::Timeout => "timeout",
            Status::NotConfigured => "not configured",
        }
    }
}

/// One service in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    /// The service.
    pub service: Service,
    /// Where it was probed.
    pub target: Option<String>,
    /// What this probe found.
    pub status: Status,
    /// How long this probe took (none when not probed).
    pub latency_ms: Option<u64>,
    /// The last error any probe of it met (kept after it recovers), with when.
    pub last_error: Option<String>,
    /// When that error was met (RFC 3339).
    pub last_error_at: Option<String>,
}

/// One round of probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// When the round started (RFC 3339).
    pub checked_at: String,
    /// The services not disabled, in [`Service::ALL`]'s order.
    pub services: Vec<ServiceHealth>,
}

#[derive(Default)]
struct Cache {
    report: Option<(Instant, Arc<HealthReport>)>,
    last_errors: HashMap<Service, (String, String)>,
}

/// Probes the configured services, concurrently and with a timeout, and keeps the report
/// for the cache time.
pub struct HealthChecker {
    targets: Vec<(Service, Target)>,
    probe_timeout: Duration,
    cache_for: Duration,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
    rounds: AtomicU64,
}

/// The first `MAX_ERROR_CHARS` characters of an error, on one line.
fn short(error: impl std::fmt::Display) -> String {
    error
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect()
}

impl HealthChecker {
    /// A checker for `targets` (services not listed are not configured).
    pub fn new(
        targets: Vec<(Service, Target)>,
        probe_timeout: Duration,
        cache_for: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(probe_timeout)
            .build()?;
        Ok(Self {
            targets,
            probe_timeout,
            cache_for,
            client,
            cache: tokio::sync::Mutex::default(),
            rounds: AtomicU64::new(0),
        })
    }

    /// A checker with nothing configured: every service says so.
    pub fn unconfigured() -> Self {
        Self {
            targets: Vec::new(),
            probe_timeout: Duration::from_millis(DEFAULT_PROBE_TIMEOUT_MS),
            cache_for: Duration::from_millis(DEFAULT_CACHE_MS),
            client: reqwest::Client::new(),
            cache: tokio::sync::Mutex::default(),
            rounds: AtomicU64::new(0),
        }
    }

    /// How many probe rounds have run (each probes every configured service once).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    fn target(&self, service: Service) -> &Target {
        self.targets
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(&Target::NotConfigured, |(_, t)| t)
    }

    /// The current report: the cached one while fresh, otherwise a new round (callers that
    /// arrive during a round wait for it and share its report).
    pub async fn report(&self) -> Arc<HealthReport> {
        let mut cache = self.cache.lock().await;
        if let Some((at, report)) = &cache.report {
            if at.elapsed() < self.cache_for {
                return report.clone();
            }
        }
        let started = Instant::now();
        let report = Arc::new(self.round(&mut cache.last_errors).await);
        cache.report = Some((started, report.clone()));
        report
    }

    async fn round(&self, last_errors: &mut HashMap<Service, (String, String)>) -> HealthReport {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let checked_at = now();
        let mut probes = Vec::new();
        for service in Service::ALL {
            let target = self.target(service).clone();
            if target == Target::Disabled {
                continue;
            }
            let client = self.client.clone();
            let timeout = self.probe_timeout;
            probes.push((
                service,
                target.display(),
                tokio::spawn(async move { probe(&client, &target, timeout).await }),
            ));
        }
        let mut services = Vec::new();
        for (service, target, handle) in probes {
            let (status, latency_ms, error) = handle
                .await
                .unwrap_or_else(|e| (Status::Down, None, Some(format!("the probe failed: {e}"))));
            if let Some(error) = error {
                last_errors.insert(service, (error, now()));
            }
            let last = last_errors.get(&service).cloned();
            services.push(ServiceHealth {
                service,
                target,
                status,
                latency_ms,
                last_error: last.as_ref().map(|(e, _)| e.clone()),
                last_error_at: last.map(|(_, at)| at),
            });
        }
        HealthReport {
            checked_at,
            services,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One probe: status, latency, error.
async fn probe(
    client: &reqwest::Client,
    target: &Target,
    timeout: Duration,
) -> (Status, Option<u64>, Option<String>) {
    let started = Instant::now();
    let elapsed = || Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let timed_out = || {
        (
            Status::Timeout,
            elapsed(),
            Some(format!("no answer within {} ms", timeout.as_millis())),
        )
    };
    match target {
        Target::Disabled | Target::NotConfigured => (Status::NotConfigured, None, None),
        Target::Tcp { host, port } => {
            let connect = tokio::net::TcpStream::connect((host.as_str(), *port));
            match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_stream)) => (Status::Up, elapsed(), None),
                Ok(Err(error)) => (Status::Down, elapsed(), Some(short(error))),
                Err(_) => timed_out(),
            }
        }
        Target::Http(url) => {
            match tokio::time::timeout(timeout, client.get(url.clone()).send()).await {
                Ok(Ok(response)) if response.status().is_server_error() => (
                    Status::Down,
                    elapsed(),
                    Some(format!("answered HTTP {}", response.status().as_u16())),
                ),
                Ok(Ok(_)) => (Status::Up, elapsed(), None),
                Ok(Err(error)) if error.is_timeout() => timed_out(),
                Ok(Err(error)) => {
                    // The error's source says why (refused, reset, TLS); the URL is shown
                    // beside it already.
                    let error = error.without_url();
                    let mut text = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        text = format!("{text}: {cause}");
                        source = cause.source();
                    }
                    (Status::Down, elapsed(), Some(short(text)))
                }
                Err(_) => timed_out(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_urls_host_ports_or_disabled() {
        let s = Service::Stalwart;
        assert_eq!(Target::parse(s, None), Ok(Target::NotConfigured));
        assert_eq!(Target::parse(s, Some(" ")), Ok(Target::NotConfigured));
        assert_eq!(Target::parse(s, Some("DISABLED")), Ok(Target::Disabled));
        assert_eq!(
            Target::parse(s, Some("db.internal:5432")),
            Ok(Target::Tcp {
                host: "db.internal".into(),
                port: 5432
            })
        );
        assert_eq!(
            Target::parse(s, Some("postgres://user:pw@db:5433/dezky")),
            Ok(Target::Tcp {
                host: "db".into(),
                port: 5433
            })
        );
        let http = Target::parse(s, Some("https://admin:secret@mail.example.eu/healthz?x=1"))
            .expect("url");
        assert_eq!(
            http.display().as_deref(),
            Some("https://mail.example.eu/healthz")
        );
        for bad in ["stalwart", "host:notaport", ":80", "host:0", "http://"] {
            assert!(Target::parse(s, Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(Service::Ocis.env_var(), "DEZKY_HEALTH_OCIS");
    }
}
