//! The ledger's writer task: group commit with a per-event chain.
//!
//! Commands hand their events to this task over a channel. While one group commits, the next
//! commands queue up; the task then takes all of them (up to [`MAX_GROUP_COMMIT_EVENTS`]) into
//! one transaction, so the cost of a durable commit (fsync) is shared. Each command is still
//! atomic and still gets its own optimistic-concurrency verdict: a conflicting command is
//! refused alone, never with its batch-mates.
//!
//! Every appending transaction holds the `ledger_head` row's lock (PostgreSQL row lock, SQLite
//! `BEGIN IMMEDIATE`) while it hashes the new events onto the head, inserts them and writes
//! the new head, so writers in several processes produce one linear chain with no gap and no
//! duplicate position. The writer remembers the head it last wrote and plans the next group
//! on it; the transaction only goes through if the stored head is still exactly that one
//! (position and hash), and otherwise is redone on the head read under the lock. The backends
//! live in [`super::postgres`] and [`super::sqlite`]; this module holds what they share:
//! validation, planning, and the durability pipeline ([`run_durability`]) through which
//! PostgreSQL answers callers only once their group is durable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::{AppendBatch, AppendRequest, Appended, Db, Head};
use super::{MAX_EVENT_FIELD_BYTES, MAX_GROUP_COMMIT_EVENTS};
use crate::encoding::{event_hash, EventFields, EventRecord};
use crate::error::LedgerError;

/// Checks what can be checked without the database: an append is non-empty, bounded, and the
/// versions of each aggregate in it are consecutive.
pub(crate) fn validate(batch: &AppendBatch) -> Result<(), LedgerError> {
    if batch.events.is_empty() {
        return Err(LedgerError::InvalidAppend("no events".into()));
    }
    if batch.events.len() > MAX_GROUP_COMMIT_EVENTS {
        return Err(LedgerError::InvalidAppend(format!(
            "{} events in one command; the limit is {MAX_GROUP_COMMIT_EVENTS}",
            batch.events.len()
        )));
    }
    let mut last: HashMap<(&str, &str), u64> = HashMap::new();
    for event in &batch.events {
        if event.payload.len() > MAX_EVENT_FIELD_BYTES
            || event.metadata.len() > MAX_EVENT_FIELD_BYTES
        {
            return Err(LedgerError::InvalidAppend(format!(
                "an event's payload or metadata exceeds {MAX_EVENT_FIELD_BYTES} bytes"
            )));
        }
        if event.aggregate_version == 0 {
            return Err(LedgerError::InvalidAppend("versions start at 1".into()));
        }
        let key = (event.aggregate_type.as_str(), event.aggregate_id.as_str());
        if let Some(previous) = last.insert(key, event.aggregate_version) {
            if event.aggregate_version != previous + 1 {
                return Err(LedgerError::InvalidAppend(format!(
                    "versions of {}/{} are not consecutive ({previous} then {})",
                    key.0, key.1, event.aggregate_version
                )));
            }
        }
    }
    Ok(())
}

/// A caller waiting for its command's verdict.
pub(crate) type Reply = oneshot::Sender<Result<Appended, LedgerError>>;

/// Starts the writer for `db`; it runs until every [`super::Ledger`] handle is dropped.
pub(crate) fn spawn(
    db: Db,
    requests: mpsc::Receiver<AppendRequest>,
    head: Arc<watch::Sender<u64>>,
) {
    match db {
        Db::Postgres(pool) => {
            tokio::spawn(super::postgres::run(pool, requests, head));
        }
        Db::Sqlite(pool) => {
            tokio::spawn(super::sqlite::run(pool, requests, head));
        }
    }
}

/// Waits for the next command, then takes what queued up meanwhile (never waiting for more),
/// up to [`MAX_GROUP_COMMIT_EVENTS`]. The flag says whether the queue was left empty.
pub(crate) async fn next_group(
    requests: &mut mpsc::Receiver<AppendRequest>,
) -> Option<(Vec<AppendRequest>, bool)> {
    let first = requests.recv().await?;
    let mut events = first.batch.events.len();
    let mut group = vec![first];
    while events < MAX_GROUP_COMMIT_EVENTS {
        match requests.try_recv() {
            Ok(next) => {
                events += next.batch.events.len();
                group.push(next);
            }
            Err(_) => return Some((group, true)),
        }
    }
    Some((group, false))
}

/// Answers every command of a group with its verdict, or all of them with the group's error.
pub(crate) fn answer(
    group: Vec<AppendRequest>,
    outcome: Result<Vec<Result<Appended, LedgerError>>, LedgerError>,
) {
    match outcome {
        Ok(verdicts) => {
            for (request, verdict) in group.into_iter().zip(verdicts) {
                // A caller that gave up waiting is no reason to stop the writer.
                let _ = request.reply.send(verdict);
            }
        }
        Err(error) => {
            tracing::warn!(%error, commands = group.len(), "ledger group commit failed");
            for request in group {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
    }
}

/// A group that is committed and visible, but not yet known to be durable: its callers wait
/// for the durability barrier.
pub(crate) struct Committed {
    /// The head position after the group.
    pub(crate) position: u64,
    /// Each caller with the verdict it gets once the group is durable.
    pub(crate) replies: Vec<(Reply, Result<Appended, LedgerError>)>,
}

/// Makes everything committed so far durable.
pub(crate) trait Barrier: Send {
    /// Returns once every transaction that committed before the call is durable, telling
    /// followers in other processes that `position` is. An error means durability is unknown.
    fn flush(&mut self, position: u64) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// What the writer and its durability task share.
#[derive(Default)]
pub(crate) struct Pipeline {
    /// Groups handed to the durability task and not yet answered.
    pub(crate) in_flight: AtomicUsize,
    /// Set when a barrier failed: the groups it covered may be lost if the server crashed,
    /// so the writer must forget what it remembers of them (its cached head and versions).
    pub(crate) lost: AtomicBool,
}

/// The durability task: takes every committed group queued meanwhile, runs one barrier for
/// all of them, then publishes the durable position and answers their callers. Callers and
/// followers therefore never learn of a position before it is durable, while the writer
/// already commits the next group.
pub(crate) async fn run_durability<B: Barrier>(
    mut barrier: B,
    mut groups: mpsc::UnboundedReceiver<Committed>,
    head: Arc<watch::Sender<u64>>,
    pipeline: Arc<Pipeline>,
) {
    while let Some(first) = groups.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = groups.try_recv() {
            batch.push(next);
        }
        let position = batch.iter().map(|g| g.position).max().unwrap_or(0);
        let outcome = barrier.flush(position).await;
        match &outcome {
            Ok(()) => super::advance(&head, position),
            Err(error) => {
                pipeline.lost.store(true, Ordering::SeqCst);
                tracing::warn!(%error, groups = batch.len(), "ledger durability barrier failed");
            }
        }
        let groups_answered = batch.len();
        for group in batch {
            for (reply, verdict) in group.replies {
                let verdict = match (&outcome, verdict) {
                    // Committed but not known durable: the caller must not take it as done.
                    (Err(error), Ok(_)) => Err(error.clone()),
                    (_, verdict) => verdict,
                };
                let _ = reply.send(verdict);
            }
        }
        pipeline
            .in_flight
            .fetch_sub(groups_answered, Ordering::SeqCst);
    }
}

/// Most aggregate versions the writer remembers before it forgets them all.
const COMMITTED_VERSIONS_CAPACITY: usize = 100_000;

/// The versions this writer itself committed recently. Versions only grow, so a command
/// decided on an older version is refused from memory without a database round trip (and
/// without failing its whole group on the unique constraint); a remembered version is never
/// taken as proof that a command may go in, since another process may have moved on.
#[derive(Default)]
pub(crate) struct CommittedVersions(HashMap<(String, String), u64>);

impl CommittedVersions {
    /// Forgets everything, e.g. when what it remembers may not have become durable.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// Remembers the versions a committed plan reached.
    pub(crate) fn record(&mut self, plan: &Plan) {
        if self.0.len() > COMMITTED_VERSIONS_CAPACITY {
            self.0.clear();
        }
        for (record, _) in &plan.records {
            self.0.insert(
                (record.aggregate_type.clone(), record.aggregate_id.clone()),
                record.aggregate_version,
            );
        }
    }
}

/// The outcome of planning a group against a head: the rows to write and each command's
/// verdict.
pub(crate) struct Plan {
    /// The rows to insert, each with its tenant.
    pub(crate) records: Vec<(EventRecord, Option<String>)>,
    /// Each command's verdict, in order.
    pub(crate) verdicts: Vec<Result<Appended, LedgerError>>,
    /// The head after the rows.
    pub(crate) head: Head,
}

/// Decides, in order, which commands of the group go in, and computes their positions and
/// hashes. `known_versions` holds the stored version of every aggregate in the group when it
/// was read under the head lock; without it (the optimistic path) only conflicts inside the
/// group are caught here and the unique constraint catches the rest.
pub(crate) fn plan(
    head: &Head,
    batches: &[&AppendBatch],
    known_versions: Option<&HashMap<(String, String), u64>>,
    committed: Option<&CommittedVersions>,
    recorded_at: &str,
) -> Plan {
    let mut versions: HashMap<(&str, &str), u64> = HashMap::new();
    let mut next = head.clone();
    let mut records = Vec::new();
    let mut verdicts = Vec::with_capacity(batches.len());
    'commands: for batch in batches {
        // First event of each aggregate in this command → the version it was decided on.
        let mut expected: Vec<((&str, &str), u64)> = Vec::new();
        for event in &batch.events {
            let key = (event.aggregate_type.as_str(), event.aggregate_id.as_str());
            if !expected.iter().any(|(k, _)| *k == key) {
                expected.push((key, event.aggregate_version - 1));
            }
        }
        for (key, expected_version) in &expected {
            let current = versions.get(key).copied().or_else(|| {
                known_versions.map(|known| {
                    known
                        .get(&(key.0.to_owned(), key.1.to_owned()))
                        .copied()
                        .unwrap_or(0)
                })
            });
            let remembered = committed
                .and_then(|c| c.0.get(&(key.0.to_owned(), key.1.to_owned())))
                .copied()
                .filter(|remembered| remembered > expected_version);
            if let Some(actual) = current.or(remembered) {
                if actual != *expected_version {
                    verdicts.push(Err(LedgerError::Conflict {
                        aggregate_type: key.0.to_owned(),
                        aggregate_id: key.1.to_owned(),
                        expected: *expected_version,
                        actual,
                    }));
                    continue 'commands;
                }
            }
        }
        let first_position = next.position + 1;
        for event in &batch.events {
            let position = next.position + 1;
            let hash = event_hash(&EventFields {
                position,
                recorded_at,
                aggregate_type: &event.aggregate_type,
                aggregate_id: &event.aggregate_id,
                aggregate_version: event.aggregate_version,
                event_type: &event.event_type,
                event_version: &event.event_version,
                metadata: &event.metadata,
                payload: &event.payload,
                prev_hash: &next.hash,
            });
            records.push((
                EventRecord {
                    position,
                    recorded_at: recorded_at.to_owned(),
                    aggregate_type: event.aggregate_type.clone(),
                    aggregate_id: event.aggregate_id.clone(),
                    aggregate_version: event.aggregate_version,
                    event_type: event.event_type.clone(),
                    event_version: event.event_version.clone(),
                    metadata: event.metadata.clone(),
                    payload: event.payload.clone(),
                    prev_hash: next.hash,
                    hash,
                },
                event.tenant_id.clone(),
            ));
            next.frontier.push(&hash);
            next.position = position;
            next.hash = hash;
            versions.insert(
                (event.aggregate_type.as_str(), event.aggregate_id.as_str()),
                event.aggregate_version,
            );
        }
        verdicts.push(Ok(Appended {
            first_position,
            last_position: next.position,
        }));
    }
    Plan {
        records,
        verdicts,
        head: next,
    }
}

/// The snapshots of the commands that were let in.
pub(crate) fn snapshots(
    batches: &[&AppendBatch],
    verdicts: &[Result<Appended, LedgerError>],
) -> Vec<super::SnapshotWrite> {
    batches
        .iter()
        .zip(verdicts)
        .filter(|(_, verdict)| verdict.is_ok())
        .filter_map(|(batch, _)| batch.snapshot.clone())
        .collect()
}

pub(crate) fn aggregate_keys(batches: &[&AppendBatch]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = batches
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Each command's verdict and the head position after the group.
pub(crate) type GroupOutcome = Result<(Vec<Result<Appended, LedgerError>>, u64), LedgerError>;

/// Whether any command of the group that was let in carries a snapshot.
pub(crate) fn has_snapshots(batches: &[&AppendBatch], plan: &Plan) -> bool {
    !snapshots(batches, &plan.verdicts).is_empty()
}

/// Upserts one aggregate snapshot (both backends).
pub(crate) const UPSERT_SNAPSHOT: &str = "INSERT INTO ledger_snapshots
        (aggregate_type, aggregate_id, last_version, snapshot_version, payload)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
        last_version = excluded.last_version,
        snapshot_version = excluded.snapshot_version,
        payload = excluded.payload";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::Frontier;
    use crate::store::NewEvent;

    fn event(id: &str, version: u64) -> NewEvent {
        NewEvent {
            aggregate_type: "probe".into(),
            aggregate_id: id.into(),
            aggregate_version: version,
            event_type: "E".into(),
            event_version: "1.0".into(),
            tenant_id: None,
            metadata: "{}".into(),
            payload: "{}".into(),
        }
    }

    fn batch(events: Vec<NewEvent>) -> AppendBatch {
        AppendBatch {
            events,
            snapshot: None,
        }
    }

    fn empty_head() -> Head {
        Head {
            position: 0,
            hash: [0; 32],
            frontier: Frontier::default(),
        }
    }

    #[test]
    fn two_commands_decided_on_the_same_version_in_one_group_let_only_the_first_in() {
        let a = batch(vec![event("p", 1)]);
        let b = batch(vec![event("p", 1)]);
        let plan = plan(&empty_head(), &[&a, &b], None, None, "t");
        assert!(plan.verdicts[0].is_ok());
        assert!(matches!(
            plan.verdicts[1],
            Err(LedgerError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.head.position, 1);
    }

    #[test]
    fn a_command_behind_the_stored_version_is_refused_and_the_rest_of_the_group_goes_in() {
        let known = HashMap::from([(("probe".to_owned(), "p".to_owned()), 3)]);
        let stale = batch(vec![event("p", 3)]);
        let fresh = batch(vec![event("q", 1), event("q", 2)]);
        let plan = plan(&empty_head(), &[&stale, &fresh], Some(&known), None, "t");
        assert!(matches!(
            plan.verdicts[0],
            Err(LedgerError::Conflict {
                expected: 2,
                actual: 3,
                ..
            })
        ));
        assert_eq!(
            plan.verdicts[1].as_ref().ok(),
            Some(&Appended {
                first_position: 1,
                last_position: 2
            })
        );
    }

    #[test]
    fn planned_events_chain_onto_the_head_and_each_other() {
        let a = batch(vec![event("p", 1), event("p", 2)]);
        let plan = plan(&empty_head(), &[&a], None, None, "t");
        let (first, _) = &plan.records[0];
        let (second, _) = &plan.records[1];
        assert_eq!(first.prev_hash, [0; 32]);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(second.computed_hash(), second.hash);
        assert_eq!(plan.head.hash, second.hash);
        assert_eq!(plan.head.frontier.size(), 2);
    }

    #[test]
    fn a_command_behind_a_version_this_writer_committed_is_refused_from_memory() {
        let mut committed = CommittedVersions::default();
        committed.0.insert(("probe".into(), "p".into()), 4);
        let stale = batch(vec![event("p", 3)]);
        let current = batch(vec![event("q", 5)]);
        let plan = plan(
            &empty_head(),
            &[&stale, &current],
            None,
            Some(&committed),
            "t",
        );
        assert!(matches!(
            plan.verdicts[0],
            Err(LedgerError::Conflict {
                expected: 2,
                actual: 4,
                ..
            })
        ));
        // An aggregate the writer does not remember is left to the database to judge.
        assert!(plan.verdicts[1].is_ok());
    }

    #[test]
    fn an_append_with_non_consecutive_versions_is_invalid() {
        let result = validate(&batch(vec![event("p", 1), event("p", 3)]));
        assert!(matches!(result, Err(LedgerError::InvalidAppend(_))));
    }

    /// A barrier that reports each call and then waits to be told how it ends.
    struct ScriptedBarrier {
        calls: mpsc::UnboundedSender<u64>,
        outcomes: mpsc::UnboundedReceiver<Result<(), LedgerError>>,
    }

    impl Barrier for ScriptedBarrier {
        async fn flush(&mut self, position: u64) -> Result<(), LedgerError> {
            let _ = self.calls.send(position);
            self.outcomes
                .recv()
                .await
                .unwrap_or(Err(LedgerError::WriterStopped))
        }
    }

    struct Harness {
        groups: mpsc::UnboundedSender<Committed>,
        calls: mpsc::UnboundedReceiver<u64>,
        outcomes: mpsc::UnboundedSender<Result<(), LedgerError>>,
        head: watch::Receiver<u64>,
        pipeline: Arc<Pipeline>,
    }

    fn harness() -> Harness {
        let (groups, groups_rx) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let (head_tx, head) = watch::channel(0);
        let pipeline = Arc::new(Pipeline::default());
        tokio::spawn(run_durability(
            ScriptedBarrier {
                calls: calls_tx,
                outcomes: outcomes_rx,
            },
            groups_rx,
            Arc::new(head_tx),
            pipeline.clone(),
        ));
        Harness {
            groups,
            calls,
            outcomes,
            head,
            pipeline,
        }
    }

    /// Hands a committed group to the durability task; returns its callers' answers.
    fn commit(
        harness: &Harness,
        position: u64,
        verdicts: Vec<Result<Appended, LedgerError>>,
    ) -> Vec<oneshot::Receiver<Result<Appended, LedgerError>>> {
        let mut answers = Vec::new();
        let mut replies = Vec::new();
        for verdict in verdicts {
            let (reply, answer) = oneshot::channel();
            replies.push((reply, verdict));
            answers.push(answer);
        }
        harness.pipeline.in_flight.fetch_add(1, Ordering::SeqCst);
        harness
            .groups
            .send(Committed { position, replies })
            .expect("durability task runs");
        answers
    }

    fn appended(first: u64, last: u64) -> Result<Appended, LedgerError> {
        Ok(Appended {
            first_position: first,
            last_position: last,
        })
    }

    #[tokio::test]
    async fn callers_hear_nothing_and_no_position_is_published_until_the_barrier_returns() {
        let mut h = harness();
        let mut answers = commit(&h, 3, vec![appended(1, 3)]);
        assert_eq!(h.calls.recv().await, Some(3));
        // The barrier is running: the group is committed but not durable.
        assert!(answers[0].try_recv().is_err());
        assert_eq!(*h.head.borrow(), 0);
        h.outcomes.send(Ok(())).expect("barrier waits");
        let answer = (&mut answers[0]).await.expect("answered");
        assert_eq!(answer.ok(), appended(1, 3).ok());
        // Published before the caller is answered.
        assert_eq!(*h.head.borrow(), 3);
        assert_eq!(h.pipeline.in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_group_whose_barrier_fails_is_answered_with_the_error_not_success() {
        let mut h = harness();
        let conflict = LedgerError::Conflict {
            aggregate_type: "probe".into(),
            aggregate_id: "p".into(),
            expected: 0,
            actual: 1,
        };
        let answers = commit(&h, 2, vec![appended(1, 2), Err(conflict)]);
        assert_eq!(h.calls.recv().await, Some(2));
        let failure = LedgerError::Database(Arc::new(sqlx::Error::Protocol("flush failed".into())));
        h.outcomes.send(Err(failure)).expect("barrier waits");
        let mut answers = answers.into_iter();
        let first = answers.next().expect("one").await.expect("answered");
        assert!(matches!(first, Err(LedgerError::Database(_))), "{first:?}");
        // A command that was refused stays refused: it was never appended.
        let second = answers.next().expect("two").await.expect("answered");
        assert!(
            matches!(second, Err(LedgerError::Conflict { .. })),
            "{second:?}"
        );
        assert_eq!(*h.head.borrow(), 0, "no durable position was published");
        assert!(
            h.pipeline.lost.load(Ordering::SeqCst),
            "the writer is told to forget"
        );
        assert_eq!(h.pipeline.in_flight.load(Ordering::SeqCst), 0);

        // The next barrier that succeeds covers the next group and publishes its position.
        let mut later = commit(&h, 4, vec![appended(3, 4)]);
        assert_eq!(h.calls.recv().await, Some(4));
        h.outcomes.send(Ok(())).expect("barrier waits");
        assert!((&mut later[0]).await.expect("answered").is_ok());
        assert_eq!(*h.head.borrow(), 4);
    }

    #[tokio::test]
    async fn groups_committed_during_a_barrier_share_the_next_one() {
        let mut h = harness();
        let mut first = commit(&h, 1, vec![appended(1, 1)]);
        assert_eq!(h.calls.recv().await, Some(1));
        let mut second = commit(&h, 2, vec![appended(2, 2)]);
        let mut third = commit(&h, 5, vec![appended(3, 5)]);
        h.outcomes.send(Ok(())).expect("barrier waits");
        assert!((&mut first[0]).await.expect("answered").is_ok());
        // One barrier for both groups that queued meanwhile, up to the later one's head.
        assert_eq!(h.calls.recv().await, Some(5));
        assert!(second[0].try_recv().is_err());
        h.outcomes.send(Ok(())).expect("barrier waits");
        assert!((&mut second[0]).await.expect("answered").is_ok());
        assert!((&mut third[0]).await.expect("answered").is_ok());
        assert_eq!(*h.head.borrow(), 5);
    }

    #[test]
    fn an_empty_append_is_invalid() {
        assert!(matches!(
            validate(&batch(vec![])),
            Err(LedgerError::InvalidAppend(_))
        ));
    }
}
