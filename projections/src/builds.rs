//! Builds of a projection and the leases that say which process runs them.
//!
//! A projection's read model lives in a **build**: a set of tables `rm_{name}_v{build}` and a
//! row in `projection_state` (whose `version` column is the build number) holding the build's
//! position, the schema version of the code that folds it, and its status:
//!
//! * `live` — serves queries; at most one per projection;
//! * `building` — a shadow build catching up beside the live one; at most one per projection;
//! * `retired` — switched away from; its tables are dropped after [`DROP_RETIRED_AFTER_SECS`]
//!   unless the rebuild asked to keep them;
//! * `dropped` — its tables are gone; the row stays as history.
//!
//! Queries read the live build through [`live_build`]. The switch from one build to the next
//! is one transaction over the two rows, so every query reads one complete build.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use dezky_commands::encoding::format_timestamp;
use dezky_commands::store::Db;
use serde::Serialize;

use crate::runner::ProjectionError;

/// Runs the same statements on whichever pool the ledger has; each arm type-checks on its own.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// How long a retired build's tables stay before they are dropped: longer than any query and
/// than [`LIVE_BUILD_CACHE_MS`], so a query that looked the build up just before the switch
/// still finds its tables.
pub const DROP_RETIRED_AFTER_SECS: u64 = 30;
/// How long a process trusts its cached answer of which build is live (other instances switch
/// builds too; this bounds how long it keeps reading the old one, which still exists).
pub const LIVE_BUILD_CACHE_MS: u64 = 500;
pub use dezky_commands::lease::{LEASE_RENEW_MS, LEASE_TTL_MS};

/// The build a fresh database starts each projection with. Build numbers count a projection's
/// builds; they are not schema versions (a database may be rebuilt several times at one
/// version, and a new version starts a new build).
pub const FIRST_BUILD: u32 = 1;

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Serves queries.
    Live,
    /// Catching up beside the live build.
    Building,
    /// Switched away from; tables kept until the grace period ends (or for good if asked).
    Retired,
    /// Tables dropped.
    Dropped,
}

impl BuildStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Live => "live",
            BuildStatus::Building => "building",
            BuildStatus::Retired => "retired",
            BuildStatus::Dropped => "dropped",
        }
    }

    fn parse(value: &str) -> Result<Self, ProjectionError> {
        Ok(match value {
            "live" => BuildStatus::Live,
            "building" => BuildStatus::Building,
            "retired" => BuildStatus::Retired,
            "dropped" => BuildStatus::Dropped,
            other => {
                return Err(ProjectionError::Registry(format!(
                    "unknown build status '{other}'"
                )))
            }
        })
    }
}

/// One build of one projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    /// The projection.
    pub name: String,
    /// The build number (its tables are `rm_{name}_v{build}`).
    pub build: u32,
    /// The schema version of the code that folds it.
    pub schema_version: u32,
    /// The last ledger position folded into it.
    pub position: u64,
    /// Where it is in its life.
    pub status: BuildStatus,
    /// Whether its tables stay after it is retired.
    pub keep_old: bool,
    /// When its row last changed (RFC 3339).
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct BuildRecord {
    name: String,
    version: i64,
    schema_version: i64,
    position: i64,
    status: String,
    keep_old: bool,
    updated_at: String,
}

impl BuildRecord {
    fn into_build(self) -> Result<Build, ProjectionError> {
        Ok(Build {
            build: u32::try_from(self.version).unwrap_or(0),
            schema_version: u32::try_from(self.schema_version).unwrap_or(0),
            position: u64::try_from(self.position).unwrap_or(0),
            status: BuildStatus::parse(&self.status)?,
            keep_old: self.keep_old,
            updated_at: self.updated_at,
            name: self.name,
        })
    }
}

/// `version` and `schema_version` are `INTEGER` (4 bytes on PostgreSQL): read them widened.
const BUILD_COLUMNS: &str = "name, CAST(version AS BIGINT) AS version, \
     CAST(schema_version AS BIGINT) AS schema_version, position, status, keep_old, updated_at";

fn now_text() -> String {
    format_timestamp(chrono::Utc::now())
}

/// Every build of every projection, by name then build.
pub async fn list_builds(db: &Db) -> Result<Vec<Build>, ProjectionError> {
    let sql = format!("SELECT {BUILD_COLUMNS} FROM projection_state ORDER BY name, version");
    let records: Vec<BuildRecord> = on_db!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
    records.into_iter().map(BuildRecord::into_build).collect()
}

/// The builds of one projection, by build number.
pub async fn builds_of(db: &Db, name: &str) -> Result<Vec<Build>, ProjectionError> {
    let sql =
        format!("SELECT {BUILD_COLUMNS} FROM projection_state WHERE name = $1 ORDER BY version");
    let records: Vec<BuildRecord> =
        on_db!(db, pool => sqlx::query_as(&sql).bind(name).fetch_all(pool).await?);
    records.into_iter().map(BuildRecord::into_build).collect()
}

/// Creates the row of build `build` if missing. It starts `live` when the projection has no
/// live build (nothing else could serve), `building` otherwise.
pub async fn ensure_build(
    db: &Db,
    name: &str,
    build: u32,
    schema_version: u32,
) -> Result<Build, ProjectionError> {
    let sql = "INSERT INTO projection_state \
               (name, version, schema_version, position, status, keep_old, updated_at) \
               SELECT $1, $2, $3, 0, \
                 CASE WHEN EXISTS (SELECT 1 FROM projection_state \
                                   WHERE name = $1 AND status = 'live') \
                      THEN 'building' ELSE 'live' END, \
                 $4, $5 \
               ON CONFLICT (name, version) DO NOTHING";
    let now = now_text();
    on_db!(db, pool => {
        sqlx::query(sql)
            .bind(name)
            .bind(i64::from(build))
            .bind(i64::from(schema_version))
            .bind(false)
            .bind(&now)
            .execute(pool)
            .await?;
    });
    builds_of(db, name)
        .await?
        .into_iter()
        .find(|b| b.build == build)
        .ok_or_else(|| ProjectionError::Registry(format!("build {build} of {name} vanished")))
}

/// Asks for a new build of `name` folded by code of `schema_version`, beside the live one;
/// returns it (or the build already in progress, which a second request joins).
pub async fn request_rebuild(
    db: &Db,
    name: &str,
    schema_version: u32,
    keep_old: bool,
) -> Result<Build, ProjectionError> {
    let builds = builds_of(db, name).await?;
    if let Some(building) = builds.iter().find(|b| b.status == BuildStatus::Building) {
        return Ok(building.clone());
    }
    let next = builds.iter().map(|b| b.build).max().unwrap_or(0) + 1;
    let created = ensure_build(db, name, next, schema_version).await?;
    if keep_old {
        set_keep_old(db, name, true).await?;
    }
    Ok(created)
}

async fn set_keep_old(db: &Db, name: &str, keep: bool) -> Result<(), ProjectionError> {
    // The flag travels with the request; it is read off the live build at the switch.
    let sql = "UPDATE projection_state SET keep_old = $2 WHERE name = $1 AND status = 'live'";
    on_db!(db, pool => {
        sqlx::query(sql).bind(name).bind(keep).execute(pool).await?;
    });
    Ok(())
}

/// Makes `to` the live build of `name` and retires the live one, in one transaction; returns
/// whether it switched (false when `to` is no longer building, e.g. another holder did it).
pub async fn switch_live(db: &Db, name: &str, to: u32) -> Result<bool, ProjectionError> {
    let now = now_text();
    // Retire first: the unique index allows one live build per projection at any moment. Both
    // updates are conditional, so a second switcher promotes nothing and rolls back.
    let retire = "UPDATE projection_state SET status = 'retired', updated_at = $3 \
                  WHERE name = $1 AND status = 'live' AND version <> $2 \
                    AND EXISTS (SELECT 1 FROM projection_state \
                                WHERE name = $1 AND version = $2 AND status = 'building')";
    let promote = "UPDATE projection_state SET status = 'live', updated_at = $3 \
                   WHERE name = $1 AND version = $2 AND status = 'building'";
    let promoted = on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        for sql in [retire, promote] {
            let done = sqlx::query(sql)
                .bind(name)
                .bind(i64::from(to))
                .bind(&now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if sql == promote && done != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        true
    });
    if promoted {
        forget_live_build(db, name);
    }
    Ok(promoted)
}

/// Marks a build whose tables were dropped.
pub async fn mark_dropped(db: &Db, name: &str, build: u32) -> Result<(), ProjectionError> {
    let sql = "UPDATE projection_state SET status = 'dropped', updated_at = $3 \
               WHERE name = $1 AND version = $2 AND status = 'retired'";
    let now = now_text();
    on_db!(db, pool => {
        sqlx::query(sql)
            .bind(name)
            .bind(i64::from(build))
            .bind(&now)
            .execute(pool)
            .await?;
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Which build queries read.
// ---------------------------------------------------------------------------------------------

type CacheKey = (usize, String);

/// A cached live build, with a weak handle on the pool's options it was read for. The handle
/// keeps that allocation's address from being reused by a later pool while the entry exists
/// (so one database's answer is never served for another opened in its place, as happens when
/// tests open and close databases), and tells when the pool is gone.
struct Cached {
    build: u32,
    schema_version: u32,
    at: Instant,
    pool: Weak<dyn Any + Send + Sync>,
}

fn cache() -> &'static Mutex<HashMap<CacheKey, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The pool's shared options (one allocation per pool, shared by its clones).
fn pool_identity(db: &Db) -> Arc<dyn Any + Send + Sync> {
    on_db!(db, pool => {
        let options: Arc<dyn Any + Send + Sync> = pool.connect_options();
        options
    })
}

/// Identifies a database by its pool's shared options (stable across clones of one pool).
fn db_key(db: &Db) -> usize {
    Arc::as_ptr(&pool_identity(db)).cast::<()>() as usize
}

fn forget_live_build(db: &Db, name: &str) {
    if let Ok(mut cache) = cache().lock() {
        cache.remove(&(db_key(db), name.to_owned()));
    }
}

/// The build queries of `name` read: the live one, or `fallback` before any build exists.
/// Cached for [`LIVE_BUILD_CACHE_MS`]; a switch in this process takes effect at once.
pub async fn live_build(db: &Db, name: &str, fallback: u32) -> Result<u32, sqlx::Error> {
    Ok(live_build_and_schema(db, name, fallback, 0).await?.0)
}

/// The build queries of `name` read and the schema version it was folded at, or
/// `(fallback_build, fallback_schema)` before any build exists. A query whose tables grew a
/// column reads an older live build (one still serving while its successor is built) without
/// it. Cached like [`live_build`].
pub async fn live_build_and_schema(
    db: &Db,
    name: &str,
    fallback_build: u32,
    fallback_schema: u32,
) -> Result<(u32, u32), sqlx::Error> {
    let key = (db_key(db), name.to_owned());
    if let Ok(cache) = cache().lock() {
        if let Some(cached) = cache.get(&key) {
            if cached.pool.strong_count() > 0
                && cached.at.elapsed() < Duration::from_millis(LIVE_BUILD_CACHE_MS)
            {
                return Ok((cached.build, cached.schema_version));
            }
        }
    }
    let sql = "SELECT CAST(version AS BIGINT), CAST(schema_version AS BIGINT) \
               FROM projection_state WHERE name = $1 AND status = 'live'";
    let found: Option<(i64, i64)> = on_db!(db, pool => {
        sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    let (build, schema_version) = found
        .and_then(|(b, v)| Some((u32::try_from(b).ok()?, u32::try_from(v).ok()?)))
        .unwrap_or((fallback_build, fallback_schema));
    if let Ok(mut cache) = cache().lock() {
        // Entries of closed pools are dropped here, which frees their addresses.
        cache.retain(|_, cached| cached.pool.strong_count() > 0);
        cache.insert(
            key,
            Cached {
                build,
                schema_version,
                at: Instant::now(),
                pool: Arc::downgrade(&pool_identity(db)),
            },
        );
    }
    Ok((build, schema_version))
}

// ---------------------------------------------------------------------------------------------
// Leases.
// ---------------------------------------------------------------------------------------------

/// Who holds each lease, and until when (Unix ms).
pub async fn leases(db: &Db) -> Result<Vec<(String, String, i64)>, ProjectionError> {
    let sql = "SELECT name, holder, expires_at FROM projection_leases ORDER BY name";
    Ok(on_db!(db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
}
