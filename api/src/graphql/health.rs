//! `infrastructureHealth`: the operator console's view of the services the platform depends
//! on (operators only). Reports come from the shared checker, which probes each service at
//! most once per cache period however many operators ask (`dezky_adapters::health`).

use async_graphql::{Context, Enum, Object, SimpleObject};
use dezky_adapters::health::{ServiceHealth, Status};

use super::authz;
use super::schema::{api, auth};

/// What a probe found.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "Status", name = "ServiceStatus")]
pub enum ServiceStatusGql {
    /// It answered.
    Up,
    /// It refused, failed or answered with a server error.
    Down,
    /// No answer within the probe timeout.
    Timeout,
    /// No target is configured (`DEZKY_HEALTH_<SERVICE>` unset).
    NotConfigured,
}

/// One service's health.
#[derive(SimpleObject)]
#[graphql(name = "ServiceHealth")]
pub struct ServiceHealthGql {
    /// `postgresql`, `stalwart`, `authentik`, `stripe`, `s3`, `ocis`, `caldav`, `smtp` or `dns`.
    pub service: String,
    /// Where it is probed (no credentials); null when not configured.
    pub target: Option<String>,
    /// What the last probe found.
    pub status: ServiceStatusGql,
    /// How long the last probe took, in milliseconds; null when not probed.
    pub latency_ms: Option<u64>,
    /// The last error any probe of it met (kept after it recovers).
    pub last_error: Option<String>,
    /// When that error was met.
    pub last_error_at: Option<String>,
}

impl From<&ServiceHealth> for ServiceHealthGql {
    fn from(s: &ServiceHealth) -> Self {
        Self {
            service: s.service.name().to_owned(),
            target: s.target.clone(),
            status: s.status.into(),
            latency_ms: s.latency_ms,
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at.clone(),
        }
    }
}

/// A round of probes.
#[derive(SimpleObject)]
#[graphql(name = "InfrastructureHealth")]
pub struct InfrastructureHealthGql {
    /// When the round ran (reports are reused for a few seconds).
    pub checked_at: String,
    /// Every service not `disabled`.
    pub services: Vec<ServiceHealthGql>,
}

/// The health query.
#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// The health of the services the platform depends on (operators only). No uptime or
    /// percentiles: only what the probes saw.
    async fn infrastructure_health(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<InfrastructureHealthGql> {
        authz::may_operate(auth(ctx).viewer()?)?;
        let report = api(ctx).health.report().await;
        Ok(InfrastructureHealthGql {
            checked_at: report.checked_at.clone(),
            services: report.services.iter().map(Into::into).collect(),
        })
    }
}
