//! Operator views of the platform's machinery: projection builds, and a rebuild trigger.

use async_graphql::{Context, Enum, Object, SimpleObject};
use dezky_projections::builds::{leases, list_builds, request_rebuild, Build, BuildStatus};

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
}
