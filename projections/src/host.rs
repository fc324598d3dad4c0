//! The projection host: runs one projection in whichever process holds its lease, rebuilds it
//! beside the live build when asked or when the code's schema version changed, and switches
//! over atomically once the new build has caught up.
//!
//! Every process that serves queries runs a host for every projection. The lease holder folds
//! events (live build, and a shadow build when there is one); the others only publish the live
//! build's stored position, so their read-your-writes waits and lag figures stay true. When the
//! holder dies its lease expires within [`LEASE_TTL_MS`] and another host takes over; a
//! half-done shadow build resumes from its stored position, because its position and its rows
//! commit together like any build's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dezky_commands::Ledger;
use tokio::sync::watch;

use crate::builds::{
    builds_of, ensure_build, mark_dropped, request_rebuild, switch_live, Build, BuildStatus,
    DROP_RETIRED_AFTER_SECS, LEASE_RENEW_MS, LEASE_TTL_MS,
};
use crate::runner::{
    Projection, ProjectionError, ProjectionRunner, FOLLOW_POLL_INTERVAL_MS, REBUILD_BATCH_EVENTS,
};
use dezky_commands::lease::{acquire as acquire_lease, release as release_lease};

/// Batches a shadow build folds before the host looks at the live build and its lease again.
pub const REBUILD_BATCHES_PER_TURN: usize = 20;
/// How often a host that does not hold the lease tries to take it.
pub const LEASE_RETRY_MS: u64 = 1_000;
/// How often a host that does not hold the lease re-reads the live build's position while the
/// ledger is ahead of it (someone may be waiting to read their write).
pub const FOLLOWER_POLL_MS: u64 = 100;

/// What a host reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The live build's position (what queries see).
    pub live_position: u64,
    /// Whether this process holds the lease and folds events.
    pub holder: bool,
    /// The shadow build being built, with its position.
    pub building: Option<(u32, u64)>,
}

/// Runs one projection; `make(build)` gives the projection folding into a build's tables.
pub struct ProjectionHost<P: Projection> {
    ledger: Ledger,
    name: &'static str,
    schema_version: u32,
    make: Arc<dyn Fn(u32) -> P + Send + Sync>,
    holder_id: String,
    state: watch::Sender<HostState>,
    position: watch::Sender<u64>,
}

/// A unique id for this process's hosts (host name, pid, random suffix).
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{host}:{}:{:08x}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    // The time's low bits are enough to tell apart two processes with one pid (containers).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

struct Runners<P: Projection> {
    live: Option<(u32, ProjectionRunner<P>)>,
    building: Option<(u32, ProjectionRunner<P>)>,
}

impl<P: Projection> ProjectionHost<P> {
    /// A host for the projection `make` builds, under lease holder id `holder_id`.
    pub fn new(
        ledger: Ledger,
        holder_id: String,
        make: impl Fn(u32) -> P + Send + Sync + 'static,
    ) -> Self {
        let probe = make(0);
        let (state, _) = watch::channel(HostState {
            live_position: 0,
            holder: false,
            building: None,
        });
        let (position, _) = watch::channel(0);
        Self {
            name: probe.name(),
            schema_version: probe.schema_version(),
            ledger,
            make: Arc::new(make),
            holder_id,
            state,
            position,
        }
    }

    /// Makes sure queries can be served before the host runs: a projection with no build yet
    /// gets its first build (live, empty, tables created). Safe to race with other processes.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        let builds = builds_of(self.ledger.db(), self.name).await?;
        if builds.iter().any(|b| b.status == BuildStatus::Live) {
            return Ok(());
        }
        let next = builds.iter().map(|b| b.build).max().unwrap_or(0) + 1;
        if builds.iter().all(|b| b.status != BuildStatus::Building) {
            self.create_tables(next).await?;
        }
        Ok(())
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The live build's position, for read-your-writes waits, readiness and lag.
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// The host's state (holder or not, shadow build progress).
    pub fn state(&self) -> watch::Receiver<HostState> {
        self.state.subscribe()
    }

    fn publish(&self, live_position: u64, holder: bool, building: Option<(u32, u64)>) {
        self.position.send_if_modified(|p| {
            if live_position > *p {
                *p = live_position;
                true
            } else {
                false
            }
        });
        self.state.send_if_modified(|s| {
            let next = HostState {
                live_position,
                holder,
                building,
            };
            if *s == next {
                false
            } else {
                *s = next;
                true
            }
        });
    }

    /// Runs until `shutdown` turns true; gives the lease back on the way out.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut heads = self.ledger.subscribe();
        loop {
            if *shutdown.borrow() {
                break;
            }
            match acquire_lease(self.ledger.db(), self.name, &self.holder_id).await {
                Ok(true) => {
                    tracing::info!(projection = self.name, "holding the projection lease");
                    match self.hold(&mut shutdown).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, projection = self.name, "projection host step failed; retrying");
                        }
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, projection = self.name, "cannot reach the projection lease");
                }
            }
            // Not the holder (or failed): publish what the holder has folded, and try again.
            let wait = match self.follow_stored().await {
                Ok(true) => Duration::from_millis(FOLLOWER_POLL_MS),
                _ => Duration::from_millis(LEASE_RETRY_MS),
            };
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = heads.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(error) = release_lease(self.ledger.db(), self.name, &self.holder_id).await {
            tracing::warn!(%error, projection = self.name, "could not give the projection lease back");
        }
    }

    /// Publishes the live build's stored position; true when the ledger is ahead of it.
    async fn follow_stored(&self) -> Result<bool, ProjectionError> {
        let builds = builds_of(self.ledger.db(), self.name).await?;
        let live = builds.iter().find(|b| b.status == BuildStatus::Live);
        let building = builds
            .iter()
            .find(|b| b.status == BuildStatus::Building)
            .map(|b| (b.build, b.position));
        let position = live.map_or(0, |b| b.position);
        self.publish(position, false, building);
        Ok(*self.ledger.subscribe().borrow() > position)
    }

    /// Works while holding the lease; returns `Ok` on shutdown, `Err` when the lease was lost
    /// or a step failed (the caller retries from the top).
    async fn hold(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let mut heads = self.ledger.subscribe();
        let mut renewed = Instant::now();
        let mut runners = Runners {
            live: None,
            building: None,
        };
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if renewed.elapsed() >= Duration::from_millis(LEASE_RENEW_MS) {
                if !acquire_lease(self.ledger.db(), self.name, &self.holder_id).await? {
                    return Err(ProjectionError::Registry(format!(
                        "lost the lease on {} (not renewed within {LEASE_TTL_MS} ms)",
                        self.name
                    )));
                }
                renewed = Instant::now();
            }
            let builds = builds_of(self.ledger.db(), self.name).await?;
            if self.settle(&builds).await? {
                continue;
            }
            let live = builds.iter().find(|b| b.status == BuildStatus::Live);
            let building = builds.iter().find(|b| b.status == BuildStatus::Building);
            self.attach(&mut runners, live, building).await?;

            // The live build keeps up with the ledger (unless it was folded by other code and
            // is frozen until the shadow build replaces it), in bounded turns like the shadow
            // build: a long catch-up (a first start on a big ledger) must not outlast the lease
            // between renewals.
            let mut live_position = live.map_or(0, |b| b.position);
            let mut busy = false;
            // A turn ends after a bounded number of batches or once it has taken as long as
            // the lease may go unrenewed, whichever comes first: batch times vary with the
            // machine and the batch size, and a turn must never outlast the lease.
            let turn = Instant::now();
            let turn_over = || turn.elapsed() >= Duration::from_millis(LEASE_RENEW_MS);
            if let Some((_, runner)) = &runners.live {
                for _ in 0..REBUILD_BATCHES_PER_TURN {
                    let n = runner.step().await?;
                    busy |= n > 0;
                    if n == 0 {
                        busy = false;
                        break;
                    }
                    if turn_over() {
                        break;
                    }
                }
                live_position = *runner.position().borrow();
            }
            let mut building_state = None;
            if let Some((build, runner)) = &runners.building {
                let build = *build;
                let mut folded = 0;
                let mut reached_head = false;
                for _ in 0..REBUILD_BATCHES_PER_TURN {
                    let n = runner.step().await?;
                    folded += n;
                    if n == 0 {
                        reached_head = true;
                        break;
                    }
                    if turn_over() {
                        break;
                    }
                }
                let position = *runner.position().borrow();
                building_state = Some((build, position));
                busy |= folded > 0;
                // Caught up: the shadow build read to the ledger's head this turn and stands at
                // least where the live build does, so readers never see the published position
                // go back. Waiting for a turn with nothing new to fold instead would never come
                // while writers keep appending.
                if reached_head && position >= live_position {
                    // Its secondary indexes were left until now (see `Projection::indexes`):
                    // built over the finished tables, before any query can reach them.
                    if let Some((_, runner)) = &runners.building {
                        self.create_indexes(runner).await?;
                        renewed = Instant::now();
                    }
                    // Switch, in one transaction over the two rows.
                    if switch_live(self.ledger.db(), self.name, build).await? {
                        tracing::info!(
                            projection = self.name,
                            build,
                            position,
                            "switched to the new build"
                        );
                        runners.live = runners.building.take();
                        live_position = position;
                        building_state = None;
                    }
                }
            }
            self.publish(live_position, true, building_state);
            self.drop_retired(&builds).await?;
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = heads.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_INTERVAL_MS.min(LEASE_RENEW_MS))) => {}
            }
        }
    }

    /// Builds a shadow build's secondary indexes, renewing the lease meanwhile: on a large
    /// model this takes longer than the lease lives.
    async fn create_indexes(&self, runner: &ProjectionRunner<P>) -> Result<(), ProjectionError> {
        let started = Instant::now();
        let keep_lease = async {
            loop {
                tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS)).await;
                if !acquire_lease(self.ledger.db(), self.name, &self.holder_id).await? {
                    return Err(ProjectionError::Registry(format!(
                        "lost the lease on {} while building indexes",
                        self.name
                    )));
                }
            }
        };
        tokio::select! {
            built = runner.create_indexes() => built?,
            lost = keep_lease => return lost,
        }
        tracing::info!(
            projection = self.name,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "built the new build's indexes"
        );
        Ok(())
    }

    /// Brings the registry into a state the host can run; true when it changed something (the
    /// caller re-reads the builds).
    async fn settle(&self, builds: &[Build]) -> Result<bool, ProjectionError> {
        let live = builds.iter().find(|b| b.status == BuildStatus::Live);
        let building = builds.iter().find(|b| b.status == BuildStatus::Building);
        let next = builds.iter().map(|b| b.build).max().unwrap_or(0) + 1;
        match (live, building) {
            (None, None) => {
                // First start: the first build is live at once (there is nothing else to serve).
                self.create_tables(next).await?;
                ensure_build(self.ledger.db(), self.name, next, self.schema_version).await?;
                Ok(true)
            }
            (None, Some(b)) if b.schema_version == self.schema_version => {
                // A build with nothing live beside it (the live one was dropped by hand): serve it.
                Ok(switch_live(self.ledger.db(), self.name, b.build).await?)
            }
            (_, Some(b)) if b.schema_version != self.schema_version => {
                // A shadow build requested by code of another version: this process cannot fold
                // it; abandon it (a build for this code's version is requested next turn).
                tracing::warn!(
                    projection = self.name,
                    build = b.build,
                    "abandoning a build of another schema version"
                );
                self.retire_building(b.build).await?;
                Ok(true)
            }
            (Some(l), None) if l.schema_version != self.schema_version => {
                tracing::info!(
                    projection = self.name,
                    from = l.schema_version,
                    to = self.schema_version,
                    "schema version changed; rebuilding beside the live build"
                );
                let created =
                    request_rebuild(self.ledger.db(), self.name, self.schema_version, false)
                        .await?;
                self.create_tables(created.build).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn create_tables(&self, build: u32) -> Result<(), ProjectionError> {
        // Creating the runner creates the tables (idempotent) and the row if missing.
        ProjectionRunner::new(self.ledger.clone(), (self.make)(build)).await?;
        Ok(())
    }

    async fn retire_building(&self, build: u32) -> Result<(), ProjectionError> {
        let sql = "UPDATE projection_state SET status = 'retired' \
                   WHERE name = $1 AND version = $2 AND status = 'building'";
        match self.ledger.db() {
            dezky_commands::store::Db::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(self.name)
                    .bind(i64::from(build))
                    .execute(pool)
                    .await?;
            }
            dezky_commands::store::Db::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(self.name)
                    .bind(i64::from(build))
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Makes the runners match the registry's live and shadow builds.
    async fn attach(
        &self,
        runners: &mut Runners<P>,
        live: Option<&Build>,
        building: Option<&Build>,
    ) -> Result<(), ProjectionError> {
        let foldable = |b: &&Build| b.schema_version == self.schema_version;
        let want_live = live.filter(foldable).map(|b| b.build);
        if runners.live.as_ref().map(|(b, _)| *b) != want_live {
            runners.live = match want_live {
                Some(build) => Some((
                    build,
                    ProjectionRunner::new(self.ledger.clone(), (self.make)(build)).await?,
                )),
                None => None,
            };
        }
        let want_building = building.filter(foldable).map(|b| b.build);
        if runners.building.as_ref().map(|(b, _)| *b) != want_building {
            runners.building = match want_building {
                Some(build) => Some((
                    build,
                    ProjectionRunner::new(self.ledger.clone(), (self.make)(build))
                        .await?
                        .with_batch_events(REBUILD_BATCH_EVENTS),
                )),
                None => None,
            };
        }
        Ok(())
    }

    /// Drops the tables of builds retired longer than the grace period, unless kept.
    async fn drop_retired(&self, builds: &[Build]) -> Result<(), ProjectionError> {
        let grace = chrono::Duration::seconds(i64::try_from(DROP_RETIRED_AFTER_SECS).unwrap_or(30));
        let now = chrono::Utc::now();
        for build in builds
            .iter()
            .filter(|b| b.status == BuildStatus::Retired && !b.keep_old)
        {
            let retired_at = chrono::DateTime::parse_from_rfc3339(&build.updated_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or(now);
            if now - retired_at < grace {
                continue;
            }
            ProjectionRunner::drop_tables(&self.ledger, &(self.make)(build.build)).await?;
            mark_dropped(self.ledger.db(), self.name, build.build).await?;
            tracing::info!(
                projection = self.name,
                build = build.build,
                "dropped a retired build"
            );
        }
        Ok(())
    }
}
