//! Durability of what the ledger acknowledges and announces. On PostgreSQL the writer commits
//! groups asynchronously and makes them durable with a separate barrier, so a group is visible
//! a moment before its WAL is flushed: these suites check, against the WAL itself
//! (`pg_walinspect`), that no caller, subscriber or checkpoint ever gets a position whose
//! commit record was not yet flushed; and on both backends that a caller's own position is
//! announced by the time its append returns, and that writers in two processes (whose cached
//! heads go stale) still build one chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::keys::TrustedKeys;
use dezky_commands::{AppendBatch, NewEvent};
use dezky_tests::{test_key, Backend, TestDb};
use sqlx::{Connection, PgConnection};

const ORIGIN: &str = "dezky.test/durability";

/// One command on aggregate `id` at `version`, of `events` events.
fn batch(id: &str, version: u64, events: u64) -> AppendBatch {
    AppendBatch {
        events: (0..events)
            .map(|k| NewEvent {
                aggregate_type: "durable".into(),
                aggregate_id: id.into(),
                aggregate_version: version + k,
                event_type: "Written".into(),
                event_version: "1.0".into(),
                tenant_id: Some("tenant-a".into()),
                metadata: "{}".into(),
                payload: format!(r#"{{"n":{}}}"#, version + k),
            })
            .collect(),
        snapshot: None,
    }
}

/// An LSN (`X/Y`) as a number, so LSNs compare.
fn lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').expect("an LSN is X/Y");
    (u64::from_str_radix(high, 16).expect("hex") << 32) | u64::from_str_radix(low, 16).expect("hex")
}

async fn flushed(conn: &mut PgConnection) -> u64 {
    let text: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(conn)
        .await
        .expect("flush LSN");
    lsn(&text)
}

/// Where each position's commit record ends in the WAL written since `start`.
async fn commit_ends(conn: &mut PgConnection, start: &str) -> HashMap<u64, u64> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT e.position, c.end_lsn::text
         FROM ledger_events e
         JOIN pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn()) c
           ON c.resource_manager = 'Transaction' AND c.record_type LIKE 'COMMIT%'
          AND c.xid::text = e.xmin::text",
    )
    .bind(start)
    .fetch_all(conn)
    .await
    .expect("commit records");
    rows.into_iter()
        .map(|(position, end)| (position as u64, lsn(&end)))
        .collect()
}

/// Positions observed, each with the WAL flush position read right after.
type Observations = Arc<Mutex<Vec<(&'static str, u64, u64)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_caller_subscriber_or_checkpoint_gets_a_position_before_its_commit_is_flushed_on_postgres(
) {
    // Given a ledger on PostgreSQL and the WAL position before anything is appended
    let db = TestDb::create(Backend::Postgres).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let mut admin = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .execute(&mut admin)
        .await
        .expect("pg_walinspect");
    let start: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut admin)
        .await
        .expect("start LSN");
    let observed: Observations = Arc::default();
    let (key, trusted) = test_key("durability");

    // When one writer appends alone (synchronous path), then sixteen at once (pipelined
    // path), while a subscriber and a checkpointer note every position they are given
    const SOLO: u64 = 40;
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 25;
    let total_events = SOLO + TASKS * PER_TASK * 2;
    let subscriber = {
        let mut heads = ledger.subscribe();
        let observed = observed.clone();
        let url = db.url.clone();
        tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect");
            loop {
                let position = *heads.borrow_and_update();
                if position > 0 {
                    let flushed = flushed(&mut conn).await;
                    observed
                        .lock()
                        .expect("observations")
                        .push(("subscriber", position, flushed));
                }
                if position >= total_events || heads.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let checkpointer = {
        let ledger = ledger.clone();
        let observed = observed.clone();
        let url = db.url.clone();
        tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect");
            loop {
                let checkpoint = sign_checkpoint(&ledger, &key, ORIGIN).await.expect("sign");
                let flushed = flushed(&mut conn).await;
                if checkpoint.tree_size > 0 {
                    observed.lock().expect("observations").push((
                        "checkpoint",
                        checkpoint.tree_size,
                        flushed,
                    ));
                }
                if checkpoint.tree_size >= total_events {
                    return;
                }
                // A few hundred checkpoints, not thousands.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    for n in 0..SOLO {
        let appended = ledger
            .append(batch(&format!("solo-{n}"), 1, 1))
            .await
            .expect("append");
        let flushed = flushed(&mut conn).await;
        observed
            .lock()
            .expect("observations")
            .push(("caller", appended.last_position, flushed));
    }
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let ledger = ledger.clone();
        let observed = observed.clone();
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("connect");
            for n in 0..PER_TASK {
                let appended = ledger
                    .append(batch(&format!("task-{task}"), n * 2 + 1, 2))
                    .await
                    .expect("append");
                let flushed = flushed(&mut conn).await;
                observed.lock().expect("observations").push((
                    "caller",
                    appended.last_position,
                    flushed,
                ));
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    subscriber.await.expect("subscriber");
    checkpointer.await.expect("checkpointer");

    // Then every position anyone was given had its commit record flushed by then
    let ends = commit_ends(&mut admin, &start).await;
    assert_eq!(
        ends.len() as u64,
        total_events,
        "a commit record for every event"
    );
    let observed = observed.lock().expect("observations").clone();
    for who in ["caller", "subscriber", "checkpoint"] {
        assert!(
            observed.iter().any(|(w, _, _)| *w == who),
            "no {who} observation"
        );
    }
    for (who, position, flushed) in observed {
        let end = ends[&position];
        assert!(
            flushed >= end,
            "{who} got position {position} before its commit (ending at {end:X}) was flushed \
             (flushed to {flushed:X})"
        );
    }
    // And the chain with its checkpoints verifies
    let report = verify_store(&ledger, trusted, |_, _| {})
        .await
        .expect("verify");
    assert!(report.is_intact(), "{report:?}");
}

async fn a_caller_is_answered_only_after_its_position_is_announced(backend: Backend) {
    // Given a ledger and its subscription
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let heads = ledger.subscribe();
    // When commands are appended one by one and eight at a time
    for n in 0..20 {
        let appended = ledger
            .append(batch(&format!("one-{n}"), 1, 1))
            .await
            .expect("append");
        // Then the subscription already holds each caller's position
        assert!(*heads.borrow() >= appended.last_position);
    }
    let mut tasks = Vec::new();
    for task in 0..8 {
        let ledger = ledger.clone();
        let heads = heads.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                let appended = ledger
                    .append(batch(&format!("many-{task}"), n + 1, 1))
                    .await
                    .expect("append");
                assert!(*heads.borrow() >= appended.last_position);
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    // And the durable head read back is the announced one
    let head = ledger.head().await.expect("head");
    assert_eq!(head.position, 100);
    assert_eq!(*heads.borrow(), head.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_answered_only_after_its_position_is_announced_on_sqlite() {
    a_caller_is_answered_only_after_its_position_is_announced(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_answered_only_after_its_position_is_announced_on_postgres() {
    a_caller_is_answered_only_after_its_position_is_announced(Backend::Postgres).await;
}

async fn two_writers_taking_turns_chain_onto_each_others_heads(backend: Backend) {
    // Given two ledgers (two writers, each caching the head it last wrote) on one database
    let db = TestDb::create(backend).await.expect("database");
    let a = db.open().await.expect("ledger a");
    let b = db.open().await.expect("ledger b");
    let (key, _) = test_key("turns");
    // When they take turns, so each finds the head moved by the other every time, and one
    // also appends to an aggregate the other advanced (a conflict the cached state missed)
    for n in 0..10u64 {
        a.append(batch("shared-a", n + 1, 1))
            .await
            .expect("a appends");
        b.append(batch("shared-b", n + 1, 1))
            .await
            .expect("b appends");
    }
    b.append(batch("shared-a", 11, 1))
        .await
        .expect("b appends to a's aggregate");
    let stale = a.append(batch("shared-a", 11, 1)).await;
    // Then the stale command is a typed conflict
    assert!(
        matches!(
            stale,
            Err(dezky_commands::LedgerError::Conflict {
                expected: 10,
                actual: 11,
                ..
            })
        ),
        "{stale:?}"
    );
    // And the chain is one gapless chain that verifies from either side
    a.append(batch("shared-a", 12, 1))
        .await
        .expect("a continues");
    sign_checkpoint(&b, &key, ORIGIN).await.expect("sign");
    for ledger in [&a, &b] {
        let head = ledger.head().await.expect("head");
        assert_eq!(head.position, 22);
        assert_eq!(ledger.count_events().await.expect("count"), 22);
        let trusted = TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("key");
        let report = verify_store(ledger, trusted, |_, _| {})
            .await
            .expect("verify");
        assert!(report.is_intact(), "{report:?}");
    }
}

#[tokio::test]
async fn two_writers_taking_turns_chain_onto_each_others_heads_on_sqlite() {
    two_writers_taking_turns_chain_onto_each_others_heads(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_writers_taking_turns_chain_onto_each_others_heads_on_postgres() {
    two_writers_taking_turns_chain_onto_each_others_heads(Backend::Postgres).await;
}
