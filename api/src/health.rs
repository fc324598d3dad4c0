//! Infrastructure health in the composition root: the `DEZKY_HEALTH_*` settings, the checker
//! they configure (`dezky_adapters::health`, shared by the GraphQL field and the CLI), and
//! `dezky health`.
//!
//! Probes are read-only observations for operators, not effects: nothing is recorded on the
//! ledger and nothing acts on what they find (see `dezky_adapters::health`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use dezky_adapters::health::{
    HealthChecker, HealthReport, Service, Status, Target, DEFAULT_CACHE_MS,
    DEFAULT_PROBE_TIMEOUT_MS,
};

/// Where each service is probed: an `http(s)://` URL, `host:port` (or another URL: a TCP
/// connect) or `disabled` (left out); unset is "not configured".
#[derive(Debug, Clone, Default, Args)]
pub struct HealthSettings {
    /// PostgreSQL's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_POSTGRESQL")]
    pub health_postgresql: Option<String>,
    /// Stalwart's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_STALWART")]
    pub health_stalwart: Option<String>,
    /// Authentik's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_AUTHENTIK")]
    pub health_authentik: Option<String>,
    /// Stripe's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_STRIPE")]
    pub health_stripe: Option<String>,
    /// S3's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_S3")]
    pub health_s3: Option<String>,
    /// OCIS's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_OCIS")]
    pub health_ocis: Option<String>,
    /// The CalDAV server's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_CALDAV")]
    pub health_caldav: Option<String>,
    /// The SMTP server's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_SMTP")]
    pub health_smtp: Option<String>,
    /// The DNS server's probe target.
    #[arg(long, global = true, env = "DEZKY_HEALTH_DNS")]
    pub health_dns: Option<String>,
    /// How long one probe may take before it counts as a timeout.
    #[arg(
        long,
        global = true,
        env = "DEZKY_HEALTH_PROBE_TIMEOUT_MS",
        default_value_t = DEFAULT_PROBE_TIMEOUT_MS
    )]
    pub health_probe_timeout_ms: u64,
    /// How long a round of probes is reused, so the console cannot turn into a load test.
    #[arg(
        long,
        global = true,
        env = "DEZKY_HEALTH_CACHE_MS",
        default_value_t = DEFAULT_CACHE_MS
    )]
    pub health_cache_ms: u64,
}

impl HealthSettings {
    fn raw(&self, service: Service) -> Option<&str> {
        match service {
            Service::Postgresql => self.health_postgresql.as_deref(),
            Service::Stalwart => self.health_stalwart.as_deref(),
            Service::Authentik => self.health_authentik.as_deref(),
            Service::Stripe => self.health_stripe.as_deref(),
            Service::S3 => self.health_s3.as_deref(),
            Service::Ocis => self.health_ocis.as_deref(),
            Service::Caldav => self.health_caldav.as_deref(),
            Service::Smtp => self.health_smtp.as_deref(),
            Service::Dns => self.health_dns.as_deref(),
        }
    }

    /// The checker these settings describe; a target that is not one is an error.
    pub fn checker(&self) -> anyhow::Result<HealthChecker> {
        let targets = Service::ALL
            .into_iter()
            .map(|service| Ok((service, Target::parse(service, self.raw(service))?)))
            .collect::<Result<Vec<_>, dezky_adapters::health::TargetError>>()?;
        Ok(HealthChecker::new(
            targets,
            Duration::from_millis(self.health_probe_timeout_ms.max(1)),
            Duration::from_millis(self.health_cache_ms),
        )?)
    }
}

/// Writes `report` as a table; returns whether every configured service is up.
pub fn print_report(report: &HealthReport, out: &mut impl Write) -> std::io::Result<bool> {
    writeln!(
        out,
        "{:<12} {:<15} {:>10}  {:<40} last error",
        "service", "status", "latency", "target"
    )?;
    let mut healthy = true;
    for service in &report.services {
        healthy &= matches!(service.status, Status::Up | Status::NotConfigured);
        writeln!(
            out,
            "{:<12} {:<15} {:>10}  {:<40} {}",
            service.service.name(),
            service.status.name(),
            service
                .latency_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            service.target.as_deref().unwrap_or("-"),
            match (&service.last_error, &service.last_error_at) {
                (Some(error), Some(at)) => format!("{error} ({at})"),
                _ => "-".to_owned(),
            }
        )?;
    }
    let down = report
        .services
        .iter()
        .filter(|s| matches!(s.status, Status::Down | Status::Timeout))
        .count();
    let up = report
        .services
        .iter()
        .filter(|s| s.status == Status::Up)
        .count();
    writeln!(
        out,
        "{up} up, {down} down or timed out, {} not configured (checked at {})",
        report.services.len() - up - down,
        report.checked_at
    )?;
    Ok(healthy)
}

/// `dezky health`: one round of probes, printed; exits 1 when a configured service is down or
/// timed out.
pub async fn run(settings: &HealthSettings) -> anyhow::Result<ExitCode> {
    let report = settings.checker()?.report().await;
    let healthy = print_report(&report, &mut std::io::stdout().lock())?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
