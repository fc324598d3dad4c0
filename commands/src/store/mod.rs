//! The ledger store: one append-only, hash-chained event table on SQLite or PostgreSQL.
//!
//! Writes go through one writer task per process ([`writer`]), which gathers the commands that
//! arrive while the previous group commits and appends them in one transaction (group
//! commit), advancing the chain per event. Every appending transaction holds the single
//! `ledger_head` row's lock, so writers in several processes still produce one linear chain.
//!
//! Positions this module publishes (the [`Ledger::subscribe`] watch, [`Ledger::head`], the
//! PostgreSQL notifications) are *durable* positions: on PostgreSQL a group may be visible a
//! moment before its WAL is flushed ([`postgres`]), and nothing that signs or announces a
//! position may get ahead of the flush.

mod postgres;
mod sqlite;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

use crate::encoding::{EventRecord, Hash32};
use crate::error::LedgerError;
use crate::merkle::Frontier;

/// Largest canonical payload or metadata accepted for one event, in bytes.
pub const MAX_EVENT_FIELD_BYTES: usize = 1024 * 1024;
/// Most events one group-commit transaction carries.
pub const MAX_GROUP_COMMIT_EVENTS: usize = 4096;
/// Requests queued for the writer before callers wait.
const WRITER_QUEUE_REQUESTS: usize = 4096;
/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;

/// How to reach the ledger's database.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// `sqlite:PATH` (file created if missing) or `postgres://…`.
    pub database_url: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl LedgerOptions {
    /// Options for a URL with the default pool size.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_connections: 16,
        }
    }
}

/// The database behind the ledger.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// Production, and several processes over one database.
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the ledger has. Each arm is type-checked on its
/// own, so SQL shared by both backends is written once.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// One event to append: the fields a command decides. Position, time and hashes are assigned
/// by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// The aggregate's version after this event.
    pub aggregate_version: u64,
    /// Stored event type.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: String,
    /// Tenant the event belongs to (copied from metadata into an index column).
    pub tenant_id: Option<String>,
    /// Canonical JSON metadata.
    pub metadata: String,
    /// Canonical JSON payload.
    pub payload: String,
}

/// A snapshot to store with a command's events (outside the chain; derived data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWrite {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Version of the aggregate the snapshot reflects.
    pub last_version: u64,
    /// Snapshot counter (cqrs-es's `current_snapshot`).
    pub snapshot_version: u64,
    /// Serialized aggregate state.
    pub payload: String,
}

/// The events of one command: appended all together or not at all.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// An optional snapshot update committed in the same transaction.
    pub snapshot: Option<SnapshotWrite>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Position of the first event.
    pub first_position: u64,
    /// Position of the last event.
    pub last_position: u64,
}

/// The chain head as stored: what the last committed transaction left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Number of events (the last position).
    pub position: u64,
    /// Hash of the last event (zeros for an empty ledger).
    pub hash: Hash32,
    /// Merkle frontier over all event hashes.
    pub frontier: Frontier,
}

/// A checkpoint row as stored (not yet parsed or verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size the row claims (indexed copy; the signed text is authoritative).
    pub tree_size: u64,
    /// The signed-note text.
    pub note: String,
}

/// A stored aggregate snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Version the snapshot reflects.
    pub last_version: u64,
    /// Snapshot counter.
    pub snapshot_version: u64,
    /// Serialized aggregate.
    pub payload: String,
}

pub(crate) struct AppendRequest {
    batch: AppendBatch,
    reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

struct Inner {
    db: Db,
    writer: mpsc::Sender<AppendRequest>,
    /// The durable head position, as far as this process knows.
    head: watch::Receiver<u64>,
    head_tx: Arc<watch::Sender<u64>>,
}

/// A handle on the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

const EVENT_COLUMNS: &str = "position, recorded_at, aggregate_type, aggregate_id, \
    aggregate_version, event_type, event_version, metadata, payload, prev_hash, hash";

fn to_u64(value: i64, position: u64, what: &str) -> Result<u64, LedgerError> {
    u64::try_from(value).map_err(|_| LedgerError::Corrupt {
        position,
        reason: format!("negative {what}"),
    })
}

fn to_hash(bytes: Vec<u8>, position: u64, what: &str) -> Result<Hash32, LedgerError> {
    Hash32::try_from(bytes.as_slice()).map_err(|_| LedgerError::Corrupt {
        position,
        reason: format!("{what} is {} bytes, not 32", bytes.len()),
    })
}

fn record_from_row<R: Row>(row: &R) -> Result<EventRecord, LedgerError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let position = to_u64(row.try_get(0)?, 0, "position")?;
    Ok(EventRecord {
        position,
        recorded_at: row.try_get(1)?,
        aggregate_type: row.try_get(2)?,
        aggregate_id: row.try_get(3)?,
        aggregate_version: to_u64(row.try_get(4)?, position, "aggregate_version")?,
        event_type: row.try_get(5)?,
        event_version: row.try_get(6)?,
        metadata: row.try_get(7)?,
        payload: row.try_get(8)?,
        prev_hash: to_hash(row.try_get(9)?, position, "prev_hash")?,
        hash: to_hash(row.try_get(10)?, position, "hash")?,
    })
}

fn to_i64(value: u64) -> i64 {
    // Positions and versions stay far below 2^63; saturate rather than wrap if one ever
    // does not, so a query bound is never negative.
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Ledger {
    /// Connects to the database, applies pending migrations and starts the writer task.
    pub async fn open(options: &LedgerOptions) -> Result<Self, LedgerError> {
        let db = open_store(options).await?;
        let head = read_head(&db).await?;
        // Another process may have committed the stored head without its flush yet.
        make_durable(&db, head.position).await?;
        let (head_tx, head_rx) = watch::channel(head.position);
        let head_tx = Arc::new(head_tx);
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_REQUESTS);
        writer::spawn(db.clone(), rx, head_tx.clone());
        if let Db::Postgres(pool) = &db {
            tokio::spawn(listen_for_heads(pool.clone(), head_tx.clone()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                writer: tx,
                head: head_rx,
                head_tx,
            }),
        })
    }

    /// The database pool, for read models and tests that inspect rows.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Appends the events of one command atomically, advancing the chain. Returns once the
    /// events are durable; an error means they were not appended or, if the database failed
    /// during or after the commit, that their durability is unknown (a retry then surfaces
    /// as a conflict if they were kept).
    pub async fn append(&self, batch: AppendBatch) -> Result<Appended, LedgerError> {
        writer::validate(&batch)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(AppendRequest { batch, reply })
            .await
            .map_err(|_| LedgerError::WriterStopped)?;
        answer.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// Follows the last durable position: this process's appends as soon as they are
    /// durable, and on PostgreSQL every other process's too (LISTEN/NOTIFY, sent by each
    /// writer's synchronous commits only). On SQLite, appends by other processes are seen
    /// only by polling [`Ledger::head`]. The value never exceeds a durable position.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.clone()
    }

    /// Reads the stored chain head, once it is durable. On PostgreSQL a stored head beyond
    /// the durable position this process knows of is first made durable by a synchronous
    /// commit (whose WAL flush covers every commit before it), so a checkpoint signed over
    /// the returned head never covers events a server crash could still lose.
    pub async fn head(&self) -> Result<Head, LedgerError> {
        let head = read_head(&self.inner.db).await?;
        if head.position > *self.inner.head.borrow() {
            make_durable(&self.inner.db, head.position).await?;
            advance(&self.inner.head_tx, head.position);
        }
        Ok(head)
    }

    /// Reads up to `limit` events with positions in `(after, up_to]`, in position order.
    ///
    /// Rows are read as committed. With `up_to` from [`Ledger::subscribe`] or
    /// [`Ledger::head`] they are durable; beyond that, on PostgreSQL, the newest group may
    /// not be durable yet. A reader that records what it read in the same database (a
    /// projection) is safe either way, even committing asynchronously: its commit comes after
    /// those events' commit in the WAL, which is flushed in order, so a crash never keeps what
    /// it recorded while losing the events. A reader that acts outside the database must bound
    /// `up_to`.
    pub async fn read_batch(
        &self,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ledger_events \
             WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(&sql)
                .bind(to_i64(after))
                .bind(to_i64(up_to))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(record_from_row).collect()
        })
    }

    /// Reads the hashes of positions `(after, up_to]`, in order, in batches of `limit`.
    pub async fn read_hashes(
        &self,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash32)>, LedgerError> {
        let sql = "SELECT position, hash FROM ledger_events \
                   WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sql)
                .bind(to_i64(after))
                .bind(to_i64(up_to))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    let position = to_u64(row.try_get(0)?, 0, "position")?;
                    Ok((position, to_hash(row.try_get(1)?, position, "hash")?))
                })
                .collect()
        })
    }

    /// The events of one aggregate with a version above `after_version`, in version order.
    pub async fn aggregate_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_version: u64,
    ) -> Result<Vec<EventRecord>, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ledger_events WHERE aggregate_type = $1 \
             AND aggregate_id = $2 AND aggregate_version > $3 ORDER BY aggregate_version"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(&sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(to_i64(after_version))
                .fetch_all(pool)
                .await?;
            rows.iter().map(record_from_row).collect()
        })
    }

    /// Reads up to `limit` events of `aggregate_type` with positions after `after`, in
    /// position order (the `ledger_events_by_type` index): what a follower of one aggregate
    /// type reads each turn, bounded whatever the ledger's size.
    pub async fn events_of_type_after(
        &self,
        aggregate_type: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ledger_events \
             WHERE aggregate_type = $1 AND position > $2 ORDER BY position LIMIT $3"
        );
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(&sql)
                .bind(aggregate_type)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(record_from_row).collect()
        })
    }

    /// Every event of one aggregate type, in global position order.
    pub async fn events_of_type(
        &self,
        aggregate_type: &str,
    ) -> Result<Vec<EventRecord>, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ledger_events WHERE aggregate_type = $1 ORDER BY position"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(&sql).bind(aggregate_type).fetch_all(pool).await?;
            rows.iter().map(record_from_row).collect()
        })
    }

    /// The stored snapshot of an aggregate, if any.
    pub async fn snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<StoredSnapshot>, LedgerError> {
        let sql = "SELECT last_version, snapshot_version, payload FROM ledger_snapshots \
                   WHERE aggregate_type = $1 AND aggregate_id = $2";
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_optional(pool)
                .await?;
            row.map(|row| {
                Ok(StoredSnapshot {
                    last_version: to_u64(row.try_get(0)?, 0, "snapshot version")?,
                    snapshot_version: to_u64(row.try_get(1)?, 0, "snapshot counter")?,
                    payload: row.try_get(2)?,
                })
            })
            .transpose()
        })
    }

    /// Stores a signed checkpoint.
    pub async fn save_checkpoint(
        &self,
        tree_size: u64,
        note: &str,
        created_at: &str,
    ) -> Result<(), LedgerError> {
        let sql =
            "INSERT INTO ledger_checkpoints (tree_size, note, created_at) VALUES ($1, $2, $3)";
        on_pool!(&self.inner.db, pool => {
            sqlx::query(sql)
                .bind(to_i64(tree_size))
                .bind(note)
                .bind(created_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every stored checkpoint, by tree size then insertion order.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        let sql = "SELECT tree_size, note FROM ledger_checkpoints ORDER BY tree_size, id";
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredCheckpoint {
                        tree_size: to_u64(row.try_get(0)?, 0, "checkpoint size")?,
                        note: row.try_get(1)?,
                    })
                })
                .collect()
        })
    }

    /// The largest tree size any stored checkpoint claims, if any.
    pub async fn latest_checkpoint_size(&self) -> Result<Option<u64>, LedgerError> {
        let sql = "SELECT max(tree_size) FROM ledger_checkpoints";
        on_pool!(&self.inner.db, pool => {
            let size: Option<i64> = sqlx::query_scalar(sql).fetch_one(pool).await?;
            size.map(|s| to_u64(s, 0, "checkpoint size")).transpose()
        })
    }

    /// The number of events stored (rows, not head position: they differ only if the table
    /// was tampered with).
    pub async fn count_events(&self) -> Result<u64, LedgerError> {
        on_pool!(&self.inner.db, pool => {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_events")
                .fetch_one(pool)
                .await?;
            to_u64(count, 0, "count")
        })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        on_pool!(&self.inner.db, pool => pool.close().await)
    }
}

/// Pause before the head listener retries after a failure.
const LISTENER_RETRY_MS: u64 = 500;

/// Raises `head` to `position` if that is newer; positions only grow.
pub(crate) fn advance(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|current| {
        if position > *current {
            *current = position;
            true
        } else {
            false
        }
    });
}

/// Relays the durable positions other processes' writers announce into `head` until every
/// ledger handle is gone.
async fn listen_for_heads(pool: PgPool, head: Arc<watch::Sender<u64>>) {
    let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for ledger heads; followers fall back to polling");
            return;
        }
    };
    if let Err(error) = listener.listen(postgres::NOTIFY_CHANNEL).await {
        tracing::warn!(%error, "cannot listen for ledger heads; followers fall back to polling");
        return;
    }
    loop {
        tokio::select! {
            _ = head.closed() => return,
            notification = listener.recv() => match notification {
                Ok(notification) => {
                    if let Ok(position) = notification.payload().parse::<u64>() {
                        advance(&head, position);
                    }
                }
                // PgListener reconnects by itself; what was missed meanwhile is caught by the
                // followers' polling. A closed pool means the ledger is shutting down; any
                // other failure is retried after a pause, never in a tight loop.
                Err(error) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::debug!(%error, "ledger head listener interrupted");
                    tokio::time::sleep(Duration::from_millis(LISTENER_RETRY_MS)).await;
                }
            }
        }
    }
}

async fn connect(options: &LedgerOptions) -> Result<Db, LedgerError> {
    let url = options.database_url.as_str();
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(LedgerError::UnsupportedUrl(url.to_owned()));
        }
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| LedgerError::Database(Arc::new(sqlx::Error::Io(e))))?;
            }
        }
        let connect = sqlite_connect_options(path);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect_with(connect)
            .await?;
        Ok(Db::Sqlite(pool))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect_with(connect)
            .await?;
        Ok(Db::Postgres(pool))
    } else {
        Err(LedgerError::UnsupportedUrl(url.to_owned()))
    }
}

/// The SQLite settings the ledger runs with: WAL (readers never block the writer), and
/// `synchronous = FULL` so that a committed event survives power loss, as on PostgreSQL with
/// fsync on. Public so benchmarks give their baselines the very same settings.
pub fn sqlite_connect_options(path: &str) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .foreign_keys(true)
}

/// Connects and migrates. Two processes opening one fresh SQLite file at once can meet
/// "database is locked" while the other switches the file to WAL or creates the schema; that
/// passes within moments, so opening retries it a few times before giving up.
async fn open_store(options: &LedgerOptions) -> Result<Db, LedgerError> {
    let mut attempt = 1;
    loop {
        let opened = match connect(options).await {
            Ok(db) => migrate(&db).await.map(|()| db),
            Err(error) => Err(error),
        };
        match opened {
            Err(error)
                if attempt < SQLITE_MIGRATION_ATTEMPTS
                    && options.database_url.starts_with("sqlite:")
                    && error.to_string().contains("locked") =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// How often opening a SQLite ledger retries migrations another process is applying.
const SQLITE_MIGRATION_ATTEMPTS: u32 = 10;

async fn migrate(db: &Db) -> Result<(), LedgerError> {
    match db {
        Db::Sqlite(pool) => {
            // sqlx's SQLite migrator reads which migrations are applied before it takes any
            // lock, so two processes opening a fresh file can both try to create the tables.
            // Each migration runs in its own transaction, so the loser sees it applied on a
            // second pass.
            let migrator = sqlx::migrate!("migrations/sqlite");
            let mut attempt = 1;
            loop {
                match migrator.run(pool).await {
                    Ok(()) => break,
                    Err(error) if attempt < SQLITE_MIGRATION_ATTEMPTS => {
                        tracing::debug!(%error, attempt, "SQLite migration raced; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Db::Postgres(pool) => {
            // Several instances may start at once; sqlx takes an advisory lock on PostgreSQL
            // so only one applies each migration.
            sqlx::migrate!("migrations/postgres").run(pool).await?
        }
    }
    Ok(())
}

/// Makes every commit so far durable, announcing `position` to other processes. SQLite
/// commits with `synchronous = FULL`, so only PostgreSQL needs the barrier.
async fn make_durable(db: &Db, position: u64) -> Result<(), LedgerError> {
    if let Db::Postgres(pool) = db {
        sqlx::query(postgres::BARRIER)
            .bind(position.to_string())
            .execute(pool)
            .await?;
    }
    Ok(())
}

async fn read_head(db: &Db) -> Result<Head, LedgerError> {
    let sql = "SELECT position, hash, frontier FROM ledger_head WHERE id = 1";
    on_pool!(db, pool => {
        let row = sqlx::query(sql).fetch_one(pool).await?;
        head_from_row(&row)
    })
}

pub(crate) fn head_from_row<R: Row>(row: &R) -> Result<Head, LedgerError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let position = to_u64(row.try_get(0)?, 0, "head position")?;
    let hash = to_hash(row.try_get(1)?, position, "head hash")?;
    let frontier_bytes: Vec<u8> = row.try_get(2)?;
    let frontier = Frontier::from_bytes(&frontier_bytes).map_err(|e| LedgerError::Corrupt {
        position,
        reason: e.to_string(),
    })?;
    if frontier.size() != position {
        return Err(LedgerError::Corrupt {
            position,
            reason: format!("head frontier covers {} events", frontier.size()),
        });
    }
    Ok(Head {
        position,
        hash,
        frontier,
    })
}
