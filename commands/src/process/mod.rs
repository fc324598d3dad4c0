//! Process managers: ledger followers that turn one aggregate's events into another's
//! commands, with durable progress.
//!
//! A process manager reads committed events after its stored position, issues the commands
//! they call for, and then stores the position of the last event it handled. A crash between
//! a command and the stored position repeats the command on restart, so every handler must be
//! idempotent: a repeated command either changes nothing or is refused in a way the handler
//! recognises as "already done". Progress lives in `process_progress`, never in
//! `projection_state`, so a read-model rebuild can never make a process manager act twice.

pub mod slug_release;

use std::time::Duration;

use tokio::sync::watch;

use crate::encoding::{format_timestamp, EventRecord};
use crate::store::Db;
use crate::{Ledger, LedgerError};

/// Events a process manager reads per batch.
pub const PROCESS_BATCH_EVENTS: usize = 500;
/// Pause after a failed step before the next attempt.
pub const PROCESS_RETRY_DELAY_MS: u64 = 1_000;
/// How often a follower re-reads the head even without a signal (appends by other processes).
pub const PROCESS_POLL_INTERVAL_MS: u64 = 1_000;
/// Most events read past without acting before the position is stored anyway. Storing only
/// after an action keeps a process manager from adding a write to every append; the bound
/// keeps a restart from re-reading much.
pub const PROCESS_SAVE_EVERY_EVENTS: u64 = 10_000;

/// A process manager's reaction to events.
pub trait Process: Send + Sync + 'static {
    /// Stable name: the key of its progress row.
    fn name(&self) -> &'static str;
    /// Handles one event: `Ok(true)` when it acted, `Ok(false)` when the event calls for
    /// nothing. `Err` stops the batch at this event; it is retried after a pause.
    fn handle<'a>(
        &'a self,
        event: &'a EventRecord,
    ) -> impl std::future::Future<Output = Result<bool, ProcessError>> + Send + 'a;
}

/// Why a process manager could not handle an event (it retries later).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The ledger or its database failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The progress table failed.
    #[error("process progress: {0}")]
    Database(#[from] sqlx::Error),
    /// A command the event calls for failed for a reason other than "already done".
    #[error("{process} at event {position}: {reason}")]
    Command {
        /// The process manager.
        process: &'static str,
        /// The event being handled.
        position: u64,
        /// Why.
        reason: String,
    },
}

/// The stored position of process `name` (0 before its first event).
pub async fn load_progress(db: &Db, name: &str) -> Result<u64, sqlx::Error> {
    let sql = "SELECT position FROM process_progress WHERE name = $1";
    let position: Option<i64> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(sql)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(position.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
}

/// Stores the position of process `name`; never moves it backwards.
pub async fn save_progress(db: &Db, name: &str, position: u64) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO process_progress (name, position, updated_at) VALUES ($1, $2, $3) \
               ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
               updated_at = excluded.updated_at \
               WHERE process_progress.position < excluded.position";
    let position = i64::try_from(position).unwrap_or(i64::MAX);
    let now = format_timestamp(chrono::Utc::now());
    match db {
        Db::Sqlite(pool) => {
            sqlx::query(sql)
                .bind(name)
                .bind(position)
                .bind(&now)
                .execute(pool)
                .await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(sql)
                .bind(name)
                .bind(position)
                .bind(&now)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Drives one process manager over the ledger.
pub struct ProcessRunner<P: Process> {
    ledger: Ledger,
    process: P,
    position: watch::Sender<u64>,
    saved: std::sync::atomic::AtomicU64,
}

impl<P: Process> ProcessRunner<P> {
    /// Loads the process's stored position.
    pub async fn new(ledger: Ledger, process: P) -> Result<Self, ProcessError> {
        let position = load_progress(ledger.db(), process.name()).await?;
        let saved = std::sync::atomic::AtomicU64::new(position);
        let (position, _) = watch::channel(position);
        Ok(Self {
            ledger,
            process,
            position,
            saved,
        })
    }

    /// Follows the position this process has handled up to.
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// Handles one batch of durable events; returns how many it handled (0 when caught up).
    /// On an error, the events before the failing one stay handled and stored.
    pub async fn step(&self) -> Result<usize, ProcessError> {
        let after = *self.position.borrow();
        // Only durable events: what a process manager does must not rest on an event a crash
        // could still take back.
        let durable = *self.ledger.subscribe().borrow();
        let events = self
            .ledger
            .read_batch(after, durable, PROCESS_BATCH_EVENTS)
            .await?;
        let mut handled = 0;
        let mut acted = false;
        let mut failure = None;
        for event in &events {
            match self.process.handle(event).await {
                Ok(did) => acted |= did,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            handled += 1;
        }
        if let Some(last) = events.get(..handled).and_then(<[EventRecord]>::last) {
            use std::sync::atomic::Ordering;
            let saved = self.saved.load(Ordering::Relaxed);
            if acted || last.position.saturating_sub(saved) >= PROCESS_SAVE_EVERY_EVENTS {
                save_progress(self.ledger.db(), self.process.name(), last.position).await?;
                self.saved.store(last.position, Ordering::Relaxed);
            }
            self.position.send_replace(last.position);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(handled),
        }
    }

    /// Handles batches until caught up with the durable head; returns the position reached.
    pub async fn catch_up(&self) -> Result<u64, ProcessError> {
        while self.step().await? > 0 {}
        Ok(*self.position.borrow())
    }

    /// Catches up, then follows the ledger until `shutdown` turns true; failures are logged and
    /// retried after [`PROCESS_RETRY_DELAY_MS`].
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut heads = self.ledger.subscribe();
        loop {
            let pause = match self.catch_up().await {
                Ok(_) => Duration::from_millis(PROCESS_POLL_INTERVAL_MS),
                Err(error) => {
                    tracing::warn!(%error, process = self.process.name(), "process step failed; retrying");
                    Duration::from_millis(PROCESS_RETRY_DELAY_MS)
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = heads.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
