//! The cqrs-es event repository over the ledger, so a `CqrsFramework` runs on the hash chain.
//!
//! cqrs-es hands over serialized events with JSON values; this repository canonicalizes them
//! (RFC 8785) before they reach the ledger, so what is stored is what is hashed.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use serde_json::Value;

use crate::encoding::{canonical_json, EventRecord};
use crate::store::{AppendBatch, Ledger, NewEvent, SnapshotWrite};
use crate::LedgerError;

/// Events pushed into a replay stream before the reader must catch up.
const REPLAY_CHANNEL_EVENTS: usize = 1_000;

/// A cqrs-es [`PersistedEventRepository`] backed by the [`Ledger`].
#[derive(Clone)]
pub struct LedgerRepository {
    ledger: Ledger,
}

impl LedgerRepository {
    /// Wraps a ledger handle.
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }

    /// The ledger behind the repository.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

fn persistence_error(error: LedgerError) -> PersistenceError {
    match error {
        LedgerError::Conflict { .. } => PersistenceError::OptimisticLockError,
        LedgerError::Database(_) | LedgerError::WriterStopped => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        LedgerError::Corrupt { .. } => PersistenceError::DeserializationError(Box::new(error)),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

fn serialized(record: EventRecord) -> Result<SerializedEvent, PersistenceError> {
    Ok(SerializedEvent {
        aggregate_id: record.aggregate_id,
        sequence: usize::try_from(record.aggregate_version)
            .map_err(|e| PersistenceError::DeserializationError(Box::new(e)))?,
        aggregate_type: record.aggregate_type,
        event_type: record.event_type,
        event_version: record.event_version,
        payload: serde_json::from_str(&record.payload)?,
        metadata: serde_json::from_str(&record.metadata)?,
    })
}

fn new_event(event: &SerializedEvent) -> Result<NewEvent, PersistenceError> {
    let tenant_id = event
        .metadata
        .get(dezky_domain::metadata::KEY_TENANT_ID)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(NewEvent {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: event.sequence as u64,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        tenant_id,
        metadata: canonical_json(&event.metadata)?,
        payload: canonical_json(&event.payload)?,
    })
}

impl PersistedEventRepository for LedgerRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let records = self
            .ledger
            .aggregate_events(A::TYPE, aggregate_id, last_sequence as u64)
            .await
            .map_err(persistence_error)?;
        records.into_iter().map(serialized).collect()
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let Some(snapshot) = self
            .ledger
            .snapshot(A::TYPE, aggregate_id)
            .await
            .map_err(persistence_error)?
        else {
            return Ok(None);
        };
        Ok(Some(SerializedSnapshot {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: serde_json::from_str(&snapshot.payload)?,
            current_sequence: snapshot.last_version as usize,
            current_snapshot: snapshot.snapshot_version as usize,
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let snapshot = match snapshot_update {
            Some((aggregate_id, aggregate, snapshot_version)) => {
                // cqrs-es's snapshot reflects the aggregate after the last event it applied,
                // which is the last event of this command.
                let last_version = events.last().map_or(0, |e| e.sequence as u64);
                Some(SnapshotWrite {
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id,
                    last_version,
                    snapshot_version: snapshot_version as u64,
                    payload: serde_json::to_string(&aggregate)?,
                })
            }
            None => None,
        };
        if events.is_empty() && snapshot.is_none() {
            return Ok(());
        }
        let batch = AppendBatch {
            events: events.iter().map(new_event).collect::<Result<_, _>>()?,
            snapshot,
        };
        self.ledger
            .append(batch)
            .await
            .map(|_| ())
            .map_err(persistence_error)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let records = self
            .ledger
            .aggregate_events(A::TYPE, aggregate_id, 0)
            .await
            .map_err(persistence_error)?;
        Ok(replay(records))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        // Unlike the stock repositories, this replays in global position order.
        let records = self
            .ledger
            .events_of_type(A::TYPE)
            .await
            .map_err(persistence_error)?;
        Ok(replay(records))
    }
}

fn replay(records: Vec<EventRecord>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(REPLAY_CHANNEL_EVENTS);
    tokio::spawn(async move {
        for record in records {
            // The receiver went away: nobody is replaying any more.
            if feed.push(serialized(record)).await.is_err() {
                break;
            }
        }
    });
    stream
}
