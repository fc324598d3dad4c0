//! Audit operations on a live ledger: signing checkpoints, the checkpoint schedule, and
//! verifying the stored chain.

use std::time::Duration;

use tokio::sync::watch;

use crate::checkpoint::SignedCheckpoint;
use crate::encoding::format_timestamp;
use crate::export::READ_BATCH_EVENTS;
use crate::keys::{SigningKey, TrustedKeys};
use crate::store::Ledger;
use crate::verify::{BreakKind, ChainVerifier, Link, Report, Rules, Start};
use crate::LedgerError;

/// Errors while signing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The checkpoint could not be formatted (e.g. an origin with a newline).
    #[error("cannot build the checkpoint: {0}")]
    Format(#[from] crate::checkpoint::CheckpointFormatError),
}

/// Signs a checkpoint of the current head and stores it.
pub async fn sign_checkpoint(
    ledger: &Ledger,
    key: &SigningKey,
    origin: &str,
) -> Result<SignedCheckpoint, CheckpointError> {
    let head = ledger.head().await?;
    let now = format_timestamp(chrono::Utc::now());
    let checkpoint = SignedCheckpoint::sign(
        origin,
        head.position,
        &head.frontier.root(),
        &head.hash,
        &now,
        key,
    )?;
    ledger
        .save_checkpoint(checkpoint.tree_size, &checkpoint.note, &now)
        .await?;
    Ok(checkpoint)
}

/// When the checkpointer signs.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointSchedule {
    /// Sign at least this often while new events arrive.
    pub interval: Duration,
    /// Sign as soon as this many events arrived since the last checkpoint.
    pub every_events: u64,
}

/// Signs a checkpoint at start-up, then every `interval` (when the log grew) and after
/// `every_events` new events, until `shutdown` turns true.
pub async fn run_checkpointer(
    ledger: Ledger,
    key: SigningKey,
    origin: String,
    schedule: CheckpointSchedule,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut heads = ledger.subscribe();
    let mut signed_at = match sign_checkpoint(&ledger, &key, &origin).await {
        Ok(cp) => cp.tree_size,
        Err(error) => {
            tracing::error!(%error, "start-up checkpoint failed");
            0
        }
    };
    let mut tick = tokio::time::interval(schedule.interval);
    tick.tick().await;
    loop {
        let due = tokio::select! {
            // The stored head, not this process's watch: with several instances on one
            // PostgreSQL, events appended by the others count too.
            _ = tick.tick() => match ledger.head().await {
                Ok(head) => head.position > signed_at,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the ledger head for the checkpoint schedule");
                    false
                }
            },
            changed = heads.changed() => {
                if changed.is_err() { break; }
                *heads.borrow() >= signed_at + schedule.every_events
            }
            _ = shutdown.changed() => break,
        };
        if due {
            match sign_checkpoint(&ledger, &key, &origin).await {
                Ok(cp) => signed_at = cp.tree_size,
                Err(error) => tracing::error!(%error, "checkpoint failed"),
            }
        }
    }
}

/// Verifies the stored chain, its checkpoints and its head row; `progress` gets the position
/// reached and the head position. Events after the last checkpoint are reported as unsigned,
/// not as a break: the live log always has some between two checkpoints, and the head row
/// vouches for its end instead.
pub async fn verify_store(
    ledger: &Ledger,
    keys: TrustedKeys,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, LedgerError> {
    // Checkpoints before the head, for the reason given in `export::export`; in the order
    // and at the places an export puts them (docs/ledger-format.md §6), so one verifier
    // judges both.
    let mut checkpoints = ledger.checkpoints().await?;
    checkpoints.sort_by(|a, b| (a.tree_size, &a.note).cmp(&(b.tree_size, &b.note)));
    // The same note stored twice (two processes signing one head in the same microsecond)
    // is one checkpoint; written twice it would read as a repeated one.
    checkpoints.dedup_by(|a, b| a.note == b.note);
    let rules = Rules {
        allow_unsigned_tail: true,
        ..Rules::default()
    };
    let mut verifier = ChainVerifier::new(keys, Start::genesis(), rules);
    let head = match ledger.head().await {
        Ok(head) => Some(head),
        Err(LedgerError::Corrupt { position, reason }) => {
            verifier.fail(
                BreakKind::Malformed,
                position,
                format!("the head row: {reason}"),
            );
            None
        }
        Err(other) => return Err(other),
    };
    let up_to = head.as_ref().map_or(u64::MAX, |h| h.position);
    let mut checkpoints = checkpoints.iter().peekable();
    while let Some(cp) = checkpoints.next_if(|cp| cp.tree_size == 0) {
        verifier.push_checkpoint(&cp.note);
    }
    let mut after = 0;
    while !verifier.has_break() {
        let batch = match ledger.read_batch(after, up_to, READ_BATCH_EVENTS).await {
            Ok(batch) => batch,
            Err(LedgerError::Corrupt { position, reason }) => {
                verifier.fail(BreakKind::Malformed, position, reason);
                break;
            }
            Err(other) => return Err(other),
        };
        let Some(last) = batch.last() else { break };
        after = last.position;
        for record in &batch {
            verifier.push(Link::event(
                record.position,
                record.prev_hash,
                record.hash,
                record.computed_hash() == record.hash,
            ));
            while let Some(cp) = checkpoints.next_if(|cp| cp.tree_size <= record.position) {
                verifier.push_checkpoint(&cp.note);
            }
        }
        progress(after, up_to);
    }
    for cp in checkpoints {
        verifier.push_checkpoint(&cp.note);
    }
    Ok(verifier.finish(head.as_ref()))
}
