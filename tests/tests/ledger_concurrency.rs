//! Concurrent writers on one ledger: several processes and tasks appending at once leave one
//! gapless, verifiable chain, and two commands decided on the same aggregate version never
//! both get in — one commits, the other is refused with a typed conflict.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cqrs_es::persist::{
    PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream, SerializedEvent,
    SerializedSnapshot,
};
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::encoding::EventRecord;
use dezky_commands::keys::{SigningKey, TrustedKeys};
use dezky_commands::merkle::Frontier;
use dezky_commands::{AppendBatch, Appended, Ledger, LedgerError, LedgerRepository, NewEvent};
use dezky_domain::metadata::KEY_CORRELATION_ID;
use dezky_domain::probe::{self, Probe, ProbeError, PROBE_AGGREGATE_TYPE};
use dezky_tests::{metadata_for, probe_cqrs, record, test_key, Backend, TestDb};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Barrier;

const ORIGIN: &str = "dezky.test/concurrency";
/// Tasks per worker process: more than the cores, so commands really interleave.
const TASKS: usize = 8;
/// Commands per task; 2 workers × 8 tasks × 25 = 400 commands a scenario.
const COMMANDS_PER_TASK: usize = 25;
/// Events per command, so "all or nothing" has something to split.
const EVENTS_PER_COMMAND: usize = 2;
/// Aggregates every task of both workers shares in the contended scenario.
const SHARED_AGGREGATES: usize = 3;
/// Races per same-version test; each one is a fresh pair of commands on one aggregate.
const RACE_ROUNDS: u64 = 8;

/// The JSON line `ledger-worker` prints when it is done.
#[derive(Debug, Deserialize)]
struct WorkerSummary {
    worker_id: String,
    events_per_command: usize,
    committed: Vec<String>,
    conflicted: Vec<String>,
    conflicts: usize,
    other_errors: usize,
    error_samples: Vec<String>,
}

/// Runs one `ledger-worker` process to completion and reads its summary.
async fn run_worker(url: &str, worker_id: &str, aggregates: &str) -> WorkerSummary {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger-worker"))
        .args(["--database-url", url])
        .args(["--tasks", &TASKS.to_string()])
        .args(["--commands", &COMMANDS_PER_TASK.to_string()])
        .args(["--aggregates", aggregates])
        .args(["--shared-aggregates", &SHARED_AGGREGATES.to_string()])
        .args(["--events-per-command", &EVENTS_PER_COMMAND.to_string()])
        .args(["--worker-id", worker_id])
        // A failed assertion elsewhere must not leave a writer running against the database.
        .kill_on_drop(true)
        .output()
        .await
        .expect("the worker starts");
    assert!(
        output.status.success(),
        "worker {worker_id} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: WorkerSummary =
        serde_json::from_slice(&output.stdout).expect("the worker prints one JSON summary");
    assert_eq!(summary.worker_id, worker_id);
    assert_eq!(summary.events_per_command, EVENTS_PER_COMMAND);
    assert_eq!(summary.conflicts, summary.conflicted.len());
    assert_eq!(
        summary.other_errors, 0,
        "worker {worker_id} hit errors other than conflicts: {:?}",
        summary.error_samples
    );
    assert_eq!(
        summary.committed.len() + summary.conflicted.len(),
        TASKS * COMMANDS_PER_TASK,
        "worker {worker_id} lost track of some commands"
    );
    summary
}

/// Every stored event, in position order, through the ledger's own typed reader.
async fn all_events(ledger: &Ledger) -> Vec<EventRecord> {
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &EventRecord| e.position);
        let batch = ledger
            .read_batch(after, u64::MAX, 1_000)
            .await
            .expect("read events");
        if batch.is_empty() {
            return events;
        }
        events.extend(batch);
    }
}

fn correlation_id(event: &EventRecord) -> String {
    let metadata: HashMap<String, Value> =
        serde_json::from_str(&event.metadata).expect("metadata is a JSON object");
    metadata
        .get(KEY_CORRELATION_ID)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("event {} has no correlation id", event.position))
        .to_owned()
}

/// Positions are exactly 1..=n, and each aggregate's versions, read in position order, are
/// exactly 1..=m: no gap, no duplicate, and no version committed after a later one.
fn assert_gapless(events: &[EventRecord]) {
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(positions, expected, "positions have a gap or a duplicate");
    let mut versions: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for event in events {
        versions
            .entry((&event.aggregate_type, &event.aggregate_id))
            .or_default()
            .push(event.aggregate_version);
    }
    for (aggregate, versions) in versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "versions of {aggregate:?}");
    }
}

/// Groups events by correlation id and checks each group is one whole command: `per_command`
/// events of one aggregate at consecutive versions and consecutive positions.
fn commands_in(events: &[EventRecord], per_command: usize) -> BTreeSet<String> {
    let mut groups: BTreeMap<String, Vec<&EventRecord>> = BTreeMap::new();
    for event in events {
        groups.entry(correlation_id(event)).or_default().push(event);
    }
    for (id, group) in &groups {
        assert_eq!(group.len(), per_command, "command {id} is not whole");
        let first = group[0];
        for (offset, event) in group.iter().enumerate() {
            assert_eq!(
                (event.aggregate_type.as_str(), event.aggregate_id.as_str()),
                (first.aggregate_type.as_str(), first.aggregate_id.as_str()),
                "command {id} spans aggregates"
            );
            assert_eq!(
                event.aggregate_version,
                first.aggregate_version + offset as u64,
                "command {id} has non-consecutive versions"
            );
            assert_eq!(
                event.position,
                first.position + offset as u64,
                "command {id} is interleaved with another command"
            );
        }
    }
    groups.into_keys().collect()
}

fn trusted(key: &SigningKey) -> TrustedKeys {
    TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("public key")
}

/// Signs a checkpoint (so the verifier recomputes the Merkle root) and verifies the stored
/// chain; also checks the head row against the last event and the recomputed frontier.
async fn assert_verifies(ledger: &Ledger, key: &SigningKey, events: &[EventRecord]) {
    let checkpoint = sign_checkpoint(ledger, key, ORIGIN)
        .await
        .expect("checkpoint");
    assert_eq!(checkpoint.tree_size, events.len() as u64);
    let report = verify_store(ledger, trusted(key), |_, _| {})
        .await
        .expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, events.len() as u64);
    assert_eq!(report.checkpoints_verified, 1);
    let head = ledger.head().await.expect("head");
    let mut frontier = Frontier::default();
    for event in events {
        frontier.push(&event.hash);
    }
    assert_eq!(head.position, events.len() as u64);
    assert_eq!(Some(head.hash), events.last().map(|e| e.hash));
    assert_eq!(head.hash, report.last_hash);
    assert_eq!(head.frontier, frontier);
}

async fn two_worker_processes_appending_to_distinct_aggregates_leave_one_gapless_verified_chain(
    backend: Backend,
) {
    // Given an empty ledger, migrated before any worker starts (two processes migrating one
    // fresh SQLite file at once is a separate, reported issue)
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, _) = test_key(ORIGIN);

    // When two processes of 8 tasks each run commands on their own aggregates
    let (a, b) = tokio::join!(
        run_worker(&db.url, "pa", "distinct"),
        run_worker(&db.url, "pb", "distinct")
    );

    // Then every command committed, once, whole, in one gapless chain that verifies
    assert_eq!((a.conflicts, b.conflicts), (0, 0));
    let events = all_events(&ledger).await;
    let committed: BTreeSet<String> = a.committed.iter().chain(&b.committed).cloned().collect();
    assert_eq!(committed.len(), 2 * TASKS * COMMANDS_PER_TASK);
    assert_eq!(events.len(), committed.len() * EVENTS_PER_COMMAND);
    assert_gapless(&events);
    assert_eq!(commands_in(&events, EVENTS_PER_COMMAND), committed);
    assert_verifies(&ledger, &key, &events).await;
}

async fn two_worker_processes_racing_on_shared_aggregates_commit_the_winners_whole_and_refuse_the_losers(
    backend: Backend,
) {
    // Given an empty ledger, migrated before any worker starts
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, _) = test_key(ORIGIN);

    // When two processes of 8 tasks each run commands on the same 3 aggregates
    let (a, b) = tokio::join!(
        run_worker(&db.url, "pa", "shared"),
        run_worker(&db.url, "pb", "shared")
    );

    // Then commands conflicted, and exactly the committed ones are stored, each whole
    assert!(
        a.conflicts + b.conflicts > 0,
        "16 tasks on 3 aggregates should have raced"
    );
    let committed: BTreeSet<String> = a.committed.iter().chain(&b.committed).cloned().collect();
    let conflicted: BTreeSet<String> = a.conflicted.iter().chain(&b.conflicted).cloned().collect();
    assert!(committed.is_disjoint(&conflicted));
    let events = all_events(&ledger).await;
    assert_eq!(events.len(), committed.len() * EVENTS_PER_COMMAND);
    assert_gapless(&events);
    let stored = commands_in(&events, EVENTS_PER_COMMAND);
    assert_eq!(stored, committed);
    assert!(
        stored.is_disjoint(&conflicted),
        "a refused command left events"
    );
    assert_verifies(&ledger, &key, &events).await;
}

#[tokio::test]
async fn two_worker_processes_appending_to_distinct_aggregates_leave_one_gapless_verified_chain_on_postgres(
) {
    two_worker_processes_appending_to_distinct_aggregates_leave_one_gapless_verified_chain(
        Backend::Postgres,
    )
    .await;
}

#[tokio::test]
async fn two_worker_processes_racing_on_shared_aggregates_commit_the_winners_whole_and_refuse_the_losers_on_postgres(
) {
    two_worker_processes_racing_on_shared_aggregates_commit_the_winners_whole_and_refuse_the_losers(
        Backend::Postgres,
    )
    .await;
}

// SQLite is the embedded default, but its writers in several processes share one chain too
// (BEGIN IMMEDIATE serialises them), so the same two scenarios run on it.

#[tokio::test]
async fn two_worker_processes_appending_to_distinct_aggregates_leave_one_gapless_verified_chain_on_sqlite(
) {
    two_worker_processes_appending_to_distinct_aggregates_leave_one_gapless_verified_chain(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn two_worker_processes_racing_on_shared_aggregates_commit_the_winners_whole_and_refuse_the_losers_on_sqlite(
) {
    two_worker_processes_racing_on_shared_aggregates_commit_the_winners_whole_and_refuse_the_losers(
        Backend::Sqlite,
    )
    .await;
}

/// Whether the two racing commands go through one ledger handle (one writer task, so they may
/// meet in one group commit) or two (two writers, so they meet in the database).
#[derive(Debug, Clone, Copy)]
enum Writers {
    One,
    Two,
}

async fn two_ledgers(db: &TestDb, writers: Writers) -> (Ledger, Ledger) {
    let a = db.open().await.expect("ledger");
    let b = match writers {
        Writers::One => a.clone(),
        Writers::Two => db.open().await.expect("second ledger"),
    };
    (a, b)
}

/// Two events on the `race` aggregate, decided on `decided_on`, tagged with who sent them.
fn race_batch(decided_on: u64, side: &str) -> AppendBatch {
    let event = |version: u64| NewEvent {
        aggregate_type: "race".into(),
        aggregate_id: "r".into(),
        aggregate_version: version,
        event_type: "Raced".into(),
        event_version: "1.0".into(),
        tenant_id: None,
        metadata: format!(r#"{{"correlation_id":"{side}"}}"#),
        payload: "{}".into(),
    };
    AppendBatch {
        events: vec![event(decided_on + 1), event(decided_on + 2)],
        snapshot: None,
    }
}

async fn appends_decided_on_the_same_version_let_exactly_one_in(
    backend: Backend,
    writers: Writers,
) {
    // Given a ledger reached through one or two writers
    let db = TestDb::create(backend).await.expect("database");
    let (a, b) = two_ledgers(&db, writers).await;
    let (key, _) = test_key(ORIGIN);
    let mut winners = Vec::new();

    for round in 0..RACE_ROUNDS {
        // When two commands decided on the same version are appended at once
        let decided_on = 2 * round;
        let (side_a, side_b) = (format!("a{round}"), format!("b{round}"));
        let (batch_a, batch_b) = (
            race_batch(decided_on, &side_a),
            race_batch(decided_on, &side_b),
        );
        let (ledger_a, ledger_b) = (a.clone(), b.clone());
        let task_a = tokio::spawn(async move { ledger_a.append(batch_a).await });
        let task_b = tokio::spawn(async move { ledger_b.append(batch_b).await });
        let verdicts = (task_a.await.expect("task a"), task_b.await.expect("task b"));

        // Then exactly one is in and the other is refused with the versions it raced on
        let (winner, appended, refusal): (&str, Appended, LedgerError) = match verdicts {
            (Ok(appended), Err(refusal)) => (&side_a, appended, refusal),
            (Err(refusal), Ok(appended)) => (&side_b, appended, refusal),
            other => panic!("round {round}: expected one Ok and one conflict, got {other:?}"),
        };
        assert!(
            matches!(
                &refusal,
                LedgerError::Conflict { aggregate_type, aggregate_id, expected, actual }
                    if aggregate_type == "race"
                        && aggregate_id == "r"
                        && *expected == decided_on
                        && *actual == decided_on + 2
            ),
            "round {round}: {refusal:?}"
        );
        assert_eq!(
            appended,
            Appended {
                first_position: decided_on + 1,
                last_position: decided_on + 2
            }
        );
        // And the stored versions are the winner's alone, never a mix of both commands
        let stored = a
            .aggregate_events("race", "r", decided_on)
            .await
            .expect("read aggregate");
        let stored: Vec<(u64, String)> = stored
            .iter()
            .map(|e| (e.aggregate_version, correlation_id(e)))
            .collect();
        assert_eq!(
            stored,
            vec![
                (decided_on + 1, winner.to_owned()),
                (decided_on + 2, winner.to_owned())
            ]
        );
        winners.push(winner.to_owned());
    }

    let events = all_events(&a).await;
    assert_gapless(&events);
    assert_eq!(
        commands_in(&events, 2),
        winners.into_iter().collect::<BTreeSet<_>>()
    );
    assert_verifies(&a, &key, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_decided_on_the_same_version_through_one_writer_let_exactly_one_in_on_sqlite() {
    appends_decided_on_the_same_version_let_exactly_one_in(Backend::Sqlite, Writers::One).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_decided_on_the_same_version_through_two_writers_let_exactly_one_in_on_sqlite()
{
    appends_decided_on_the_same_version_let_exactly_one_in(Backend::Sqlite, Writers::Two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_decided_on_the_same_version_through_one_writer_let_exactly_one_in_on_postgres()
{
    appends_decided_on_the_same_version_let_exactly_one_in(Backend::Postgres, Writers::One).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_decided_on_the_same_version_through_two_writers_let_exactly_one_in_on_postgres(
) {
    appends_decided_on_the_same_version_let_exactly_one_in(Backend::Postgres, Writers::Two).await;
}

/// The ledger repository with a gate in front of `persist`: both racing commands must have
/// loaded the aggregate before either may commit, so they are decided on the same version
/// every time instead of only when the scheduler happens to interleave them.
struct GatedRepository {
    inner: LedgerRepository,
    gate: Arc<Barrier>,
}

impl PersistedEventRepository for GatedRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        self.gate.wait().await;
        self.inner.persist::<A>(events, snapshot_update).await
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

type GatedCqrs = CqrsFramework<Probe, PersistedEventStore<GatedRepository, Probe>>;

/// The probe framework as the product wires it (`probe_cqrs`), plus the gate.
fn gated_cqrs(ledger: &Ledger, gate: &Arc<Barrier>) -> GatedCqrs {
    let repository = GatedRepository {
        inner: LedgerRepository::new(ledger.clone()),
        gate: gate.clone(),
    };
    let store = PersistedEventStore::new_event_store(repository).with_upcasters(probe::upcasters());
    CqrsFramework::new(store, vec![], ())
}

async fn execute(cqrs: &GatedCqrs, correlation_id: &str) -> Result<(), AggregateError<ProbeError>> {
    let mut metadata = metadata_for("tenant-a");
    metadata.correlation_id = Some(correlation_id.to_owned());
    cqrs.execute_with_metadata(
        "contested",
        record(EVENTS_PER_COMMAND, correlation_id),
        metadata.to_map(),
    )
    .await
}

async fn cqrs_commands_loaded_at_the_same_version_commit_one_and_conflict_the_other(
    backend: Backend,
    writers: Writers,
) {
    // Given a probe that already has events, and two frameworks whose commands both load it
    // before either commits
    let db = TestDb::create(backend).await.expect("database");
    let (a, b) = two_ledgers(&db, writers).await;
    let (key, _) = test_key(ORIGIN);
    let mut prime = metadata_for("tenant-a");
    prime.correlation_id = Some("prime".into());
    probe_cqrs(&a)
        .execute_with_metadata("contested", record(EVENTS_PER_COMMAND, "p"), prime.to_map())
        .await
        .expect("priming command");
    let gate = Arc::new(Barrier::new(2));
    let (cqrs_a, cqrs_b) = (gated_cqrs(&a, &gate), gated_cqrs(&b, &gate));
    let mut winners = BTreeSet::from(["prime".to_owned()]);
    let mut losers = BTreeSet::new();

    for round in 0..RACE_ROUNDS {
        // When both commands run at once
        let (side_a, side_b) = (format!("a{round}"), format!("b{round}"));
        let verdicts = tokio::join!(execute(&cqrs_a, &side_a), execute(&cqrs_b, &side_b));

        // Then one commits and the other surfaces cqrs-es's typed conflict
        let (winner, loser, refusal) = match verdicts {
            (Ok(()), Err(refusal)) => (side_a, side_b, refusal),
            (Err(refusal), Ok(())) => (side_b, side_a, refusal),
            other => panic!("round {round}: expected one Ok and one conflict, got {other:?}"),
        };
        assert!(
            matches!(refusal, AggregateError::AggregateConflict),
            "round {round}: {refusal:?}"
        );
        // And the aggregate moved on by exactly the winner's events
        let decided_on = (round + 1) * EVENTS_PER_COMMAND as u64;
        let stored = a
            .aggregate_events(PROBE_AGGREGATE_TYPE, "contested", decided_on)
            .await
            .expect("read aggregate");
        let stored: Vec<(u64, String)> = stored
            .iter()
            .map(|e| (e.aggregate_version, correlation_id(e)))
            .collect();
        let expected: Vec<(u64, String)> = (1..=EVENTS_PER_COMMAND as u64)
            .map(|i| (decided_on + i, winner.clone()))
            .collect();
        assert_eq!(stored, expected, "round {round}");
        winners.insert(winner);
        losers.insert(loser);
    }

    // And across all rounds no refused command left a trace
    let events = all_events(&a).await;
    assert_gapless(&events);
    let stored = commands_in(&events, EVENTS_PER_COMMAND);
    assert_eq!(stored, winners);
    assert!(stored.is_disjoint(&losers));
    assert_verifies(&a, &key, &events).await;
}

#[tokio::test]
async fn two_cqrs_commands_loaded_at_the_same_version_through_one_writer_commit_one_and_conflict_the_other_on_sqlite(
) {
    cqrs_commands_loaded_at_the_same_version_commit_one_and_conflict_the_other(
        Backend::Sqlite,
        Writers::One,
    )
    .await;
}

#[tokio::test]
async fn two_cqrs_commands_loaded_at_the_same_version_through_two_writers_commit_one_and_conflict_the_other_on_sqlite(
) {
    cqrs_commands_loaded_at_the_same_version_commit_one_and_conflict_the_other(
        Backend::Sqlite,
        Writers::Two,
    )
    .await;
}

#[tokio::test]
async fn two_cqrs_commands_loaded_at_the_same_version_through_one_writer_commit_one_and_conflict_the_other_on_postgres(
) {
    cqrs_commands_loaded_at_the_same_version_commit_one_and_conflict_the_other(
        Backend::Postgres,
        Writers::One,
    )
    .await;
}

#[tokio::test]
async fn two_cqrs_commands_loaded_at_the_same_version_through_two_writers_commit_one_and_conflict_the_other_on_postgres(
) {
    cqrs_commands_loaded_at_the_same_version_commit_one_and_conflict_the_other(
        Backend::Postgres,
        Writers::Two,
    )
    .await;
}

#[tokio::test]
async fn an_append_decided_on_a_version_the_aggregate_never_reached_is_refused_on_postgres() {
    an_append_decided_on_a_version_the_aggregate_never_reached_is_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn an_append_decided_on_a_version_the_aggregate_never_reached_is_refused_on_sqlite() {
    an_append_decided_on_a_version_the_aggregate_never_reached_is_refused(Backend::Sqlite).await;
}

async fn an_append_decided_on_a_version_the_aggregate_never_reached_is_refused(backend: Backend) {
    // Given an aggregate at version 2
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    ledger
        .append(race_batch(0, "first"))
        .await
        .expect("first command");

    // When a command decided on version 5 is appended
    let result = ledger.append(race_batch(5, "ahead")).await;

    // Then it is refused with the versions, and no version gap is stored
    assert!(
        matches!(
            result,
            Err(LedgerError::Conflict {
                expected: 5,
                actual: 2,
                ..
            })
        ),
        "{result:?}"
    );
    let events = all_events(&ledger).await;
    assert_gapless(&events);
    // And the writer goes on: the next command decided on the real version commits.
    ledger
        .append(race_batch(2, "next"))
        .await
        .expect("a correct command after the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_opening_a_fresh_sqlite_ledger_at_once_both_open_on_sqlite() {
    for attempt in 0..20 {
        // Given a fresh SQLite file
        let db = TestDb::create(Backend::Sqlite).await.expect("database");
        // When two ledgers open it at once (as two processes starting together would)
        let (a, b) = tokio::join!(db.open(), db.open());
        // Then both open: the second sees the schema the first created
        assert!(
            a.is_ok() && b.is_ok(),
            "attempt {attempt}: {:?} / {:?}",
            a.err(),
            b.err()
        );
    }
}
