//! Crash safety: a writer process killed with SIGKILL mid-stream leaves a ledger whose chain
//! verifies, whose head row is its last event, and in which every command is either whole or
//! absent; and the chain continues cleanly when commands are appended after the crash.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::encoding::EventRecord;
use dezky_commands::keys::{SigningKey, TrustedKeys};
use dezky_commands::merkle::Frontier;
use dezky_commands::Ledger;
use dezky_domain::metadata::KEY_CORRELATION_ID;
use dezky_tests::{metadata_for, probe_cqrs, record, test_key, Backend, TestDb};
use serde_json::Value;

const ORIGIN: &str = "dezky.test/crash";
/// Events per command: three, so a torn command would show as a group of one or two.
const EVENTS_PER_COMMAND: usize = 3;
/// Tasks in the killed worker: many commands in flight, so group commits carry several.
const WORKER_TASKS: usize = 16;
/// More commands than the worker can finish before it is killed.
const WORKER_COMMANDS: usize = 100_000;
/// Commands appended in-process after each crash.
const COMMANDS_AFTER_CRASH: usize = 10;
/// How long a worker may take to reach its kill threshold before the test gives up.
const WORKER_DEADLINE: Duration = Duration::from_secs(60);

/// When to kill the worker: after it committed `events` new events, plus `delay`, so the
/// kills land at different points of the group-commit cycle (loading, planning, inside the
/// transaction, between commit and reply).
struct KillMoment {
    events: u64,
    delay: Duration,
    aggregates: &'static str,
}

const KILL_MOMENTS: [KillMoment; 3] = [
    KillMoment {
        events: 30,
        delay: Duration::ZERO,
        aggregates: "distinct",
    },
    // Shared aggregates put conflicts (and on PostgreSQL the unique-violation redo) in flight
    // at the moment of the kill.
    KillMoment {
        events: 250,
        delay: Duration::from_millis(3),
        aggregates: "shared",
    },
    KillMoment {
        events: 700,
        delay: Duration::from_millis(11),
        aggregates: "distinct",
    },
];

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

fn trusted(key: &SigningKey) -> TrustedKeys {
    TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("public key")
}

/// Checks everything a crash must not break and returns the number of events stored.
///
/// Signs a checkpoint first so the verifier checks Merkle roots, not only hash links; the
/// checkpoints of earlier rounds are checked again, which catches a crash that rewrote
/// history below them.
async fn assert_intact(ledger: &Ledger, key: &SigningKey, checkpoints: &mut u64) -> u64 {
    let events = all_events(ledger).await;
    let count = events.len() as u64;
    sign_checkpoint(ledger, key, ORIGIN)
        .await
        .expect("checkpoint");
    *checkpoints += 1;

    // The chain verifies, with every checkpoint signed so far.
    let report = verify_store(ledger, trusted(key), |_, _| {})
        .await
        .expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, count);
    assert_eq!(report.checkpoints_verified, *checkpoints);

    // The head row is the last event: its position, its hash, and the frontier over all
    // event hashes (a head left behind or ahead by a torn transaction would differ).
    let head = ledger.head().await.expect("head");
    let mut frontier = Frontier::default();
    for event in &events {
        frontier.push(&event.hash);
    }
    assert_eq!(head.position, count);
    assert_eq!(Some(head.hash), events.last().map(|e| e.hash));
    assert_eq!(head.frontier, frontier);

    // Positions are exactly 1..=count, and each aggregate's versions exactly 1..=n.
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=count).collect::<Vec<_>>());
    let mut versions: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for event in &events {
        versions
            .entry((&event.aggregate_type, &event.aggregate_id))
            .or_default()
            .push(event.aggregate_version);
    }
    for (aggregate, versions) in versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "versions of {aggregate:?}");
    }

    // Every command is whole: exactly three events of one aggregate, consecutive versions,
    // consecutive positions.
    let mut commands: BTreeMap<String, Vec<&EventRecord>> = BTreeMap::new();
    for event in &events {
        commands
            .entry(correlation_id(event))
            .or_default()
            .push(event);
    }
    for (id, group) in &commands {
        assert_eq!(group.len(), EVENTS_PER_COMMAND, "command {id} is torn");
        let first = group[0];
        for (offset, event) in group.iter().enumerate() {
            assert_eq!(event.aggregate_id, first.aggregate_id, "command {id}");
            assert_eq!(
                event.aggregate_version,
                first.aggregate_version + offset as u64,
                "command {id}"
            );
            assert_eq!(
                event.position,
                first.position + offset as u64,
                "command {id}"
            );
        }
    }
    count
}

/// Starts a worker that would run far longer than the test lets it.
fn spawn_worker(url: &str, worker_id: &str, aggregates: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger-worker"))
        .args(["--database-url", url])
        .args(["--tasks", &WORKER_TASKS.to_string()])
        .args(["--commands", &WORKER_COMMANDS.to_string()])
        .args(["--aggregates", aggregates])
        .args(["--events-per-command", &EVENTS_PER_COMMAND.to_string()])
        .args(["--worker-id", worker_id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A failed assertion must not leave a writer running against the database.
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts")
}

async fn a_worker_killed_mid_stream_leaves_whole_commands_and_a_chain_that_continues(
    backend: Backend,
) {
    // Given a migrated ledger (migrations applied here, before any worker opens it)
    let db = TestDb::create(backend).await.expect("database");
    let observer = db.open().await.expect("ledger");
    let (key, _) = test_key(ORIGIN);
    let mut checkpoints = 0;

    for (round, moment) in KILL_MOMENTS.iter().enumerate() {
        // When a worker is SIGKILLed while its commands are streaming in
        let before = observer.count_events().await.expect("count");
        let worker_id = format!("crash{round}");
        let mut worker = spawn_worker(&db.url, &worker_id, moment.aggregates);
        let started = Instant::now();
        while observer.count_events().await.expect("count") < before + moment.events {
            if let Some(status) = worker.try_wait().expect("worker status") {
                panic!("round {round}: the worker exited on its own ({status})");
            }
            assert!(
                started.elapsed() < WORKER_DEADLINE,
                "round {round}: the worker committed too little"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(moment.delay).await;
        // tokio's kill is SIGKILL on Unix: no destructor, no rollback, no flush runs.
        worker.kill().await.expect("kill the worker");
        let status = worker.wait().await.expect("reap the worker");
        assert_eq!(
            status.code(),
            None,
            "round {round}: the worker was not killed"
        );

        // Then, opened afresh, the ledger is intact and kept what was committed
        let ledger = db.open().await.expect("reopen the ledger");
        let after_crash = assert_intact(&ledger, &key, &mut checkpoints).await;
        assert!(after_crash >= before + moment.events, "round {round}");

        // And commands appended after the crash continue the chain, including on the
        // aggregates the worker was writing when it died
        let cqrs = probe_cqrs(&ledger);
        for n in 0..COMMANDS_AFTER_CRASH {
            let aggregate_id = match moment.aggregates {
                "shared" => format!("shared-{}", n % 3),
                _ => format!("{worker_id}-t{}", n % WORKER_TASKS),
            };
            let correlation_id = format!("after-{round}-{n}");
            let mut metadata = metadata_for("tenant-a");
            metadata.correlation_id = Some(correlation_id.clone());
            cqrs.execute_with_metadata(
                &aggregate_id,
                record(EVENTS_PER_COMMAND, &correlation_id),
                metadata.to_map(),
            )
            .await
            .expect("a command after the crash");
        }
        let continued = assert_intact(&ledger, &key, &mut checkpoints).await;
        assert_eq!(
            continued,
            after_crash + (COMMANDS_AFTER_CRASH * EVENTS_PER_COMMAND) as u64
        );
        ledger.close().await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_stream_leaves_whole_commands_and_a_chain_that_continues_on_sqlite() {
    a_worker_killed_mid_stream_leaves_whole_commands_and_a_chain_that_continues(Backend::Sqlite)
        .await;
}

#[tokio::test]
async fn a_worker_killed_mid_stream_leaves_whole_commands_and_a_chain_that_continues_on_postgres() {
    a_worker_killed_mid_stream_leaves_whole_commands_and_a_chain_that_continues(Backend::Postgres)
        .await;
}
