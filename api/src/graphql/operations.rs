//! Operator views of the platform's machinery: projection builds and a rebuild trigger, saga
//! effects and a retry of one that was dead-lettered or found its system not configured.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use cqrs_es::AggregateError;
use dezky_commands::saga::Effects;
use dezky_domain::effects::{EffectCommand, EffectError, EffectStatus};
use dezky_projections::builds::{leases, list_builds, request_rebuild, Build, BuildStatus};
use dezky_projections::effects::{effect, list_effects, EffectFilter, EffectRow};

use super::authz;
use super::error::{ApiError, Code};
use super::schema::{api, auth};
use crate::projections_cli::is_known;

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// Where a projection build is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "BuildStatus", name = "ProjectionBuildStatus")]
pub enum BuildStatusGql {
    /// Serves queries.
    Live,
    /// Catching up beside the live build.
    Building,
    /// Switched away from; its tables are dropped after a grace period unless kept.
    Retired,
    /// Its tables are gone.
    Dropped,
}

/// One build of a projection.
#[derive(SimpleObject)]
pub struct ProjectionBuild {
    /// The projection.
    pub name: String,
    /// The build number.
    pub build: u32,
    /// The schema version of the code that folds it.
    pub schema_version: u32,
    /// Where it is in its life.
    pub status: BuildStatusGql,
    /// The last ledger position folded into it (a string: positions exceed 2^53).
    pub position: String,
    /// Events the ledger holds beyond it (live and building builds; 0 otherwise).
    pub lag: String,
    /// The process holding the projection's lease, if any holds it now.
    pub lease_holder: Option<String>,
}

async fn builds(ctx: &Context<'_>) -> std::result::Result<Vec<ProjectionBuild>, ApiError> {
    let ledger = &api(ctx).ledger;
    let head = ledger
        .head()
        .await
        .map_err(|e| ApiError::internal(&e))?
        .position;
    let db = ledger.db();
    let all = list_builds(db).await.map_err(|e| ApiError::internal(&e))?;
    let leases = leases(db).await.map_err(|e| ApiError::internal(&e))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    Ok(all
        .into_iter()
        .map(|b: Build| {
            let lag = match b.status {
                BuildStatus::Live | BuildStatus::Building => head.saturating_sub(b.position),
                BuildStatus::Retired | BuildStatus::Dropped => 0,
            };
            ProjectionBuild {
                lease_holder: leases
                    .iter()
                    .find(|(n, _, expires)| *n == b.name && *expires > now_ms)
                    .map(|(_, holder, _)| holder.clone()),
                name: b.name,
                build: b.build,
                schema_version: b.schema_version,
                status: b.status.into(),
                position: b.position.to_string(),
                lag: lag.to_string(),
            }
        })
        .collect())
}

/// Where a saga effect is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "EffectStatus", name = "SagaEffectStatus")]
pub enum EffectStatusGql {
    /// Intended; no attempt yet.
    Pending,
    /// An attempt is running.
    InFlight,
    /// The last attempt failed; another is due at `retryAt`.
    Retrying,
    /// The last attempt's outcome is unknown; the worker reads the system back.
    Unknown,
    /// Done.
    Succeeded,
    /// Out of attempts, or refused for good: waits for an operator.
    DeadLettered,
    /// The system is not configured: waits for an operator once it is.
    NotConfigured,
}

/// One effect a saga drives in an external system.
#[derive(SimpleObject)]
pub struct SagaEffect {
    /// The idempotency key (`{saga}/{step}/{trigger position}`).
    pub key: ID,
    /// The saga.
    pub saga: String,
    /// The step.
    pub step: String,
    /// The external system.
    pub system: String,
    /// The workspace it is for, if any.
    pub tenant_id: Option<ID>,
    /// The ledger position of the event that caused it (a string: positions exceed 2^53).
    pub trigger_position: String,
    /// Where it is.
    pub status: EffectStatusGql,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed before it is dead-lettered.
    pub attempt_budget: u32,
    /// When the next attempt is due.
    pub retry_at: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it last changed.
    pub updated_at: String,
}

impl From<EffectRow> for SagaEffect {
    fn from(row: EffectRow) -> Self {
        Self {
            key: ID(row.key),
            saga: row.saga,
            step: row.step,
            system: row.system,
            tenant_id: row.tenant_id.map(ID),
            trigger_position: row.trigger_position.to_string(),
            status: row.status.into(),
            attempts: row.attempts,
            attempt_budget: row.attempt_budget,
            retry_at: row.retry_at,
            last_error: row.last_error,
            updated_at: row.updated_at,
        }
    }
}

/// A page of saga effects.
#[derive(SimpleObject)]
pub struct SagaEffectPage {
    /// The effects, by key.
    pub items: Vec<SagaEffect>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// Whether another page follows.
    pub has_next_page: bool,
    /// How many match in all.
    pub total_count: u64,
}

async fn effect_by_key(ctx: &Context<'_>, key: &str) -> std::result::Result<SagaEffect, ApiError> {
    effect(api(ctx).ledger.db(), key)
        .await?
        .map(Into::into)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no effect with key {key}")))
}

/// Operator queries.
#[derive(Default)]
pub struct OperationsQuery;

#[Object]
impl OperationsQuery {
    /// Every projection build with its position, lag and lease holder (operators only).
    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionBuild>> {
        authz::may_operate(auth(ctx).viewer()?)?;
        Ok(builds(ctx).await?)
    }

    /// Saga effects with their status, attempts and last error (operators only); by default
    /// every effect not yet succeeded — what needs watching.
    async fn saga_effects(
        &self,
        ctx: &Context<'_>,
        statuses: Option<Vec<EffectStatusGql>>,
        saga: Option<String>,
        tenant_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SagaEffectPage> {
        authz::may_operate(auth(ctx).viewer()?)?;
        let statuses = statuses.map_or_else(
            || {
                vec![
                    EffectStatus::Pending,
                    EffectStatus::InFlight,
                    EffectStatus::Retrying,
                    EffectStatus::Unknown,
                    EffectStatus::DeadLettered,
                    EffectStatus::NotConfigured,
                ]
            },
            |list| list.into_iter().map(Into::into).collect(),
        );
        let filter = EffectFilter {
            statuses,
            saga,
            tenant_id: tenant_id.map(|id| id.0),
        };
        let request = super::schema::page(first, after)?;
        let page = list_effects(api(ctx).ledger.db(), &filter, &request)
            .await
            .map_err(ApiError::from)?;
        Ok(SagaEffectPage {
            items: page.items.into_iter().map(Into::into).collect(),
            end_cursor: page.end_cursor,
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        })
    }
}

/// Operator mutations.
#[derive(Default)]
pub struct OperationsMutation;

#[Object]
impl OperationsMutation {
    /// Rebuilds a projection beside its live build; the instance holding its lease builds it
    /// and switches over once it has caught up. Returns the new (or already running) build.
    async fn rebuild_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] keep_old: bool,
    ) -> Result<ProjectionBuild> {
        authz::may_operate(auth(ctx).viewer()?)?;
        let Some(schema_version) = is_known(&name) else {
            return Err(
                ApiError::new(Code::NotFound, format!("no projection named '{name}'")).into(),
            );
        };
        let db = api(ctx).ledger.db();
        let build = request_rebuild(db, &name, schema_version, keep_old)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let found = builds(ctx)
            .await?
            .into_iter()
            .find(|b| b.name == name && b.build == build.build)
            .ok_or_else(|| ApiError::new(Code::Conflict, "the build vanished; try again"))?;
        Ok(found)
    }

    /// Retries a dead-lettered (or not-configured) saga effect with a fresh round of attempts
    /// (operators only); the saga worker picks it up at once.
    async fn retry_saga_effect(&self, ctx: &Context<'_>, key: ID) -> Result<SagaEffect> {
        let viewer = auth(ctx).viewer()?;
        authz::may_operate(viewer)?;
        let api = api(ctx);
        let effects = Effects::new(&api.ledger);
        let command = EffectCommand::OperatorRetry {
            by: viewer.subject.clone(),
            at: api.clock.now(),
        };
        let metadata = api.metadata(viewer, "");
        match effects.execute(&key, command, metadata).await {
            Ok(()) => {}
            Err(AggregateError::UserError(EffectError::NotIntended)) => {
                return Err(
                    ApiError::new(Code::NotFound, format!("no effect with key {}", *key)).into(),
                )
            }
            Err(AggregateError::UserError(error)) => {
                return Err(ApiError::new(Code::Conflict, error.to_string()).into())
            }
            Err(error) => return Err(ApiError::internal(&error).into()),
        }
        api.read_your_writes(super::schema::read_your_writes_timeout())
            .await;
        Ok(effect_by_key(ctx, &key).await?)
    }
}
