//! The projection runner: catch up from the ledger, then follow it.
//!
//! Each batch is applied in one transaction that first locks the projection's row in
//! `projection_state` (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), reads the position
//! there, folds the events after it and stores the new position. So a crash at any point
//! loses nothing and applies nothing twice, and two runners of the same projection (two API
//! instances) take turns instead of applying a batch twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dezky_commands::encoding::{format_timestamp, EventRecord};
use dezky_commands::store::Db;
use dezky_commands::{Ledger, LedgerError};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Events folded per transaction while following the ledger.
pub const APPLY_BATCH_EVENTS: usize = 1_000;
/// Most events folded per transaction by a build catching up from far behind (a rebuild): each
/// transaction has a fixed cost (the state row's lock, the rows the batch touches read once,
/// the commit's WAL flush), which larger batches spread over more events. Such a runner starts
/// at [`APPLY_BATCH_EVENTS`] and doubles its batch after every full one up to this, so a short
/// catch-up still commits (and shows progress) early and only a long one gets long
/// transactions.
pub const REBUILD_BATCH_EVENTS: usize = 32_000;
/// How often a follower re-reads the stored head even without a notification (appends by
/// another process on SQLite, notifications missed while reconnecting on PostgreSQL).
pub const FOLLOW_POLL_INTERVAL_MS: u64 = 1_000;

/// Errors of the read side.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The read-model database failed.
    #[error("read model database: {0}")]
    Database(#[from] sqlx::Error),
    /// The registry of builds holds something this version cannot use.
    #[error("projection registry: {0}")]
    Registry(String),
    /// An event could not be folded (a payload this version cannot read).
    #[error("cannot fold event {position}: {reason}")]
    Fold {
        /// The event's position.
        position: u64,
        /// Why.
        reason: String,
    },
}

/// A read-model transaction on whichever database the ledger uses.
pub enum ReadTx<'c> {
    /// The embedded default.
    Sqlite(Transaction<'c, Sqlite>),
    /// Production.
    Postgres(Transaction<'c, Postgres>),
}

/// Runs the same statement-building code on either transaction; each arm is type-checked on
/// its own, so projections write their SQL once (`$1`-style placeholders work on both).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::ReadTx::Sqlite($conn) => $body,
            $crate::ReadTx::Postgres($conn) => $body,
        }
    };
}

/// Which SQL dialect a projection's schema is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A read model folded from the ledger.
pub trait Projection: Send + Sync + 'static {
    /// Stable name (also the prefix of its tables).
    fn name(&self) -> &'static str;
    /// The build this instance folds into: its tables are `rm_{name}_v{build}` (see
    /// [`crate::builds`]).
    fn build(&self) -> u32;
    /// The version of the fold and the tables' shape, declared in code. A process whose code
    /// declares another schema version than the live build's rebuilds beside it and switches.
    fn schema_version(&self) -> u32;
    /// Statements creating this build's tables; idempotent (`IF NOT EXISTS`).
    fn schema(&self, dialect: Dialect) -> Vec<String>;
    /// Secondary indexes (idempotent statements) that queries need but the fold does not.
    /// A build that serves at once gets them with its tables; a shadow build catching up
    /// from far behind gets them only when it has caught up, just before it switches
    /// ([`ProjectionRunner::create_indexes`]): one bulk index build over the finished table
    /// is far cheaper than keeping every index up to date row by row for a million events.
    ///
    /// Required, not defaulted, so a wrapper or a new projection cannot drop its indexes by
    /// forgetting to forward them.
    fn indexes(&self, dialect: Dialect) -> Vec<String>;
    /// This build's tables (dropped with it once it is retired).
    fn tables(&self) -> Vec<String>;
    /// Folds `events` (consecutive positions, in order) into the read model inside `tx`.
    fn apply<'a>(
        &'a self,
        tx: &'a mut ReadTx<'_>,
        events: &'a [EventRecord],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;
}

/// Keeps one projection caught up with the ledger.
pub struct ProjectionRunner<P: Projection> {
    ledger: Ledger,
    projection: Arc<P>,
    position: watch::Sender<u64>,
    /// The largest batch this runner folds.
    batch_events: usize,
    /// The size of its next batch (grows after full batches, see [`REBUILD_BATCH_EVENTS`]).
    next_batch: AtomicUsize,
    /// The read of the next batch, started while the previous one was being applied.
    prefetch: Mutex<Option<Prefetch>>,
}

/// A read of the ledger started ahead of the batch that will use it.
///
/// Reading a batch and folding it take comparable time and load different ends (the ledger
/// table, the read model's tables), so while a full batch is applied the next one is already
/// read. The read is only a guess at where the next step starts: a step uses it only if the
/// position it finds under its lock is exactly where the read started, and otherwise reads
/// afresh. The ledger is append-only with gapless positions, so events read early are the
/// events that step would have read, at most fewer of them.
struct Prefetch {
    after: u64,
    read: JoinHandle<Result<Vec<EventRecord>, LedgerError>>,
}

fn dialect(db: &Db) -> Dialect {
    match db {
        Db::Sqlite(_) => Dialect::Sqlite,
        Db::Postgres(_) => Dialect::Postgres,
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl<P: Projection> ProjectionRunner<P> {
    /// Creates the build's tables and state row if missing (the row starts `live` when the
    /// projection has no live build, `building` otherwise). A live build gets its secondary
    /// indexes now; a shadow build when it has caught up ([`Self::create_indexes`]).
    pub async fn new(ledger: Ledger, projection: P) -> Result<Self, ProjectionError> {
        let dialect = dialect(ledger.db());
        run_statements(ledger.db(), projection.schema(dialect)).await?;
        let build = crate::builds::ensure_build(
            ledger.db(),
            projection.name(),
            projection.build(),
            projection.schema_version(),
        )
        .await?;
        if build.status != crate::builds::BuildStatus::Building {
            run_statements(ledger.db(), projection.indexes(dialect)).await?;
        }
        let (position, _) = watch::channel(build.position);
        Ok(Self {
            ledger,
            projection: Arc::new(projection),
            position,
            batch_events: APPLY_BATCH_EVENTS,
            next_batch: AtomicUsize::new(APPLY_BATCH_EVENTS),
            prefetch: Mutex::new(None),
        })
    }

    /// Folds up to `events` events per transaction instead of [`APPLY_BATCH_EVENTS`] (see
    /// [`REBUILD_BATCH_EVENTS`]).
    pub fn with_batch_events(mut self, events: usize) -> Self {
        self.batch_events = events.max(1);
        self.next_batch = AtomicUsize::new(APPLY_BATCH_EVENTS.min(self.batch_events));
        self.prefetch = Mutex::new(None);
        self
    }

    /// Creates the build's secondary indexes if missing (see [`Projection::indexes`]).
    pub async fn create_indexes(&self) -> Result<(), ProjectionError> {
        let db = self.ledger.db();
        run_statements(db, self.projection.indexes(dialect(db))).await
    }

    /// Drops the tables of a retired build.
    pub async fn drop_tables(ledger: &Ledger, projection: &P) -> Result<(), ProjectionError> {
        for table in projection.tables() {
            let statement = format!("DROP TABLE IF EXISTS {table}");
            match ledger.db() {
                Db::Sqlite(pool) => {
                    sqlx::query(&statement).execute(pool).await?;
                }
                Db::Postgres(pool) => {
                    sqlx::query(&statement).execute(pool).await?;
                }
            }
        }
        Ok(())
    }

    /// The projection this runner drives.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Follows the position this runner has folded up to (for read-your-writes waits and lag).
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// Applies one batch; returns how many events it folded (0 when caught up).
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let name = self.projection.name();
        let version = i64::from(self.projection.build());
        let select = "SELECT position FROM projection_state WHERE name = $1 AND version = $2";
        let update = "UPDATE projection_state SET position = $1, updated_at = $2 \
                      WHERE name = $3 AND version = $4";
        let mut tx = match self.ledger.db() {
            // IMMEDIATE takes the write lock now rather than failing to upgrade later.
            Db::Sqlite(pool) => ReadTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // A read model is derived data whose position commits with its rows: if a
                // crash loses the last few batches, the runner folds them again. So its
                // commits need not wait for the WAL flush (and WAL order still puts them after
                // the events they folded, so a surviving batch never covers lost events).
                sqlx::query("SET LOCAL synchronous_commit TO OFF")
                    .execute(&mut *tx)
                    .await?;
                ReadTx::Postgres(tx)
            }
        };
        let position: i64 = on_tx!(&mut tx, conn => {
            let sql = match dialect(self.ledger.db()) {
                Dialect::Postgres => format!("{select} FOR UPDATE"),
                Dialect::Sqlite => select.to_owned(),
            };
            sqlx::query_scalar(&sql).bind(name).bind(version).fetch_one(&mut **conn).await?
        });
        let position = u64::try_from(position).unwrap_or(0);
        let limit = self.next_batch.load(Ordering::Relaxed);
        let events = self.read_from(position, limit).await?;
        // On PostgreSQL only: there the read and the fold run in separate server processes,
        // while SQLite reads and writes one file from this process, and an embedded store
        // gains little from a second connection reading beside the write transaction.
        if events.len() >= limit && matches!(self.ledger.db(), Db::Postgres(_)) {
            // A full batch: more probably follow, so the next read starts now.
            let next = self.next_limit(limit, events.len());
            let after = events.last().map_or(position, |e| e.position);
            let ledger = self.ledger.clone();
            let read = tokio::spawn(async move { ledger.read_batch(after, u64::MAX, next).await });
            if let Some(stale) = self.prefetch_slot().replace(Prefetch { after, read }) {
                stale.read.abort();
            }
        }
        let Some(last) = events.last().map(|e| e.position) else {
            self.position.send_if_modified(|p| advance(p, position));
            return Ok(0);
        };
        self.projection.apply(&mut tx, &events).await?;
        let now = format_timestamp(chrono::Utc::now());
        on_tx!(&mut tx, conn => {
            sqlx::query(update)
                .bind(to_i64(last))
                .bind(&now)
                .bind(name)
                .bind(version)
                .execute(&mut **conn)
                .await?;
        });
        match tx {
            ReadTx::Sqlite(tx) => tx.commit().await?,
            ReadTx::Postgres(tx) => tx.commit().await?,
        }
        self.position.send_if_modified(|p| advance(p, last));
        self.next_batch
            .store(self.next_limit(limit, events.len()), Ordering::Relaxed);
        Ok(events.len())
    }

    /// The size of the batch after one of `read` events asked for `limit`.
    fn next_limit(&self, limit: usize, read: usize) -> usize {
        if read >= limit {
            (limit * 2).min(self.batch_events)
        } else {
            APPLY_BATCH_EVENTS.min(self.batch_events)
        }
    }

    fn prefetch_slot(&self) -> std::sync::MutexGuard<'_, Option<Prefetch>> {
        // The slot holds no invariant a panicking holder could have broken half-way.
        self.prefetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The events after `position`: the read started ahead for exactly this position if there
    /// is one (see [`Prefetch`]), otherwise a fresh read of up to `limit` events.
    async fn read_from(
        &self,
        position: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, ProjectionError> {
        let pending = self.prefetch_slot().take();
        if let Some(pending) = pending {
            if pending.after == position {
                // A read that failed or was cancelled is simply done again.
                if let Ok(Ok(events)) = pending.read.await {
                    return Ok(events);
                }
            } else {
                pending.read.abort();
            }
        }
        Ok(self.ledger.read_batch(position, u64::MAX, limit).await?)
    }

    /// Applies batches until the projection has read every committed event; returns the
    /// position reached.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        while self.step().await? > 0 {}
        Ok(*self.position.borrow())
    }

    /// Catches up, then follows the ledger until `shutdown` turns true. Errors are logged and
    /// retried after a pause, so a database blip does not stop the read side.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut heads = self.ledger.subscribe();
        let poll = Duration::from_millis(FOLLOW_POLL_INTERVAL_MS);
        loop {
            match self.catch_up().await {
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, projection = self.projection.name(), "projection step failed");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = heads.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Runs DDL statements one by one, outside any transaction.
async fn run_statements(db: &Db, statements: Vec<String>) -> Result<(), ProjectionError> {
    for statement in statements {
        match db {
            Db::Sqlite(pool) => {
                sqlx::query(&statement).execute(pool).await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(&statement).execute(pool).await?;
            }
        }
    }
    Ok(())
}

fn advance(current: &mut u64, position: u64) -> bool {
    if position > *current {
        *current = position;
        true
    } else {
        false
    }
}
