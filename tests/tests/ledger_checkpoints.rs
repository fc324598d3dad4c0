//! The checkpoint schedule: a checkpoint at start-up, after M new events, every N seconds
//! while the log grows, and on demand; each one signed over the current head.

use std::time::Duration;

use dezky_commands::audit::{run_checkpointer, sign_checkpoint, CheckpointSchedule};
use dezky_commands::checkpoint::SignedCheckpoint;
use dezky_commands::Ledger;
use dezky_tests::{fill, test_key, Backend, TestDb};
use tokio::sync::watch;

/// Polls for a stored checkpoint of at least `size` (bounded: a missing checkpoint fails the
/// test instead of hanging it).
async fn wait_for_checkpoint(ledger: &Ledger, size: u64) -> Option<u64> {
    for _ in 0..200 {
        if let Some(latest) = ledger.latest_checkpoint_size().await.expect("query") {
            if latest >= size {
                return Some(latest);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn the_checkpointer_signs_at_start_up_and_after_every_m_events() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    fill(&ledger, 3, 2).await.expect("events");
    let (key, trusted) = test_key("dezky.test/ledger");
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_checkpointer(
        ledger.clone(),
        key,
        "dezky.test/ledger".into(),
        CheckpointSchedule {
            interval: Duration::from_secs(3600),
            every_events: 5,
        },
        shutdown,
    ));
    assert_eq!(
        wait_for_checkpoint(&ledger, 3).await,
        Some(3),
        "start-up checkpoint"
    );
    fill(&ledger, 5, 2).await.expect("five more events");
    assert_eq!(
        wait_for_checkpoint(&ledger, 8).await,
        Some(8),
        "after M events"
    );
    stop.send(true).expect("stop");
    task.await.expect("checkpointer stops on shutdown");
    for stored in ledger.checkpoints().await.expect("checkpoints") {
        let cp = SignedCheckpoint::parse(&stored.note).expect("parses");
        assert_eq!(cp.verify(&trusted).map(|signers| signers.len()), Ok(1));
    }
}

#[tokio::test]
async fn the_checkpointer_signs_on_its_interval_only_when_the_log_grew() {
    let db = TestDb::create(Backend::Postgres).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let (key, _) = test_key("dezky.test/ledger");
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_checkpointer(
        ledger.clone(),
        key,
        "dezky.test/ledger".into(),
        CheckpointSchedule {
            interval: Duration::from_millis(100),
            every_events: u64::MAX / 2,
        },
        shutdown,
    ));
    assert_eq!(
        wait_for_checkpoint(&ledger, 0).await,
        Some(0),
        "start-up checkpoint"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ledger.checkpoints().await.expect("rows").len(),
        1,
        "no new checkpoint while nothing was appended"
    );
    fill(&ledger, 1, 1).await.expect("one event");
    assert_eq!(
        wait_for_checkpoint(&ledger, 1).await,
        Some(1),
        "interval checkpoint"
    );
    stop.send(true).expect("stop");
    task.await.expect("stops");
}

#[tokio::test]
async fn an_on_demand_checkpoint_covers_the_current_head() {
    let db = TestDb::create(Backend::Postgres).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    fill(&ledger, 4, 2).await.expect("events");
    let (key, trusted) = test_key("dezky.test/ledger");
    let cp = sign_checkpoint(&ledger, &key, "dezky.test/ledger")
        .await
        .expect("sign");
    let head = ledger.head().await.expect("head");
    assert_eq!(cp.tree_size, 4);
    assert_eq!(cp.head, head.hash);
    assert_eq!(cp.root, head.frontier.root());
    assert_eq!(
        cp.verify(&trusted),
        Ok(vec![format!("dezky.test/ledger+{:08x}", key.key_id())])
    );
}

#[tokio::test]
async fn after_a_key_rotation_both_keys_are_trusted_and_each_verifies_its_own_checkpoints() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let (old_key, _) = test_key("dezky.test/ledger");
    let (new_key, _) = test_key("dezky.test/ledger");
    assert_ne!(
        old_key.key_id(),
        new_key.key_id(),
        "same name, new key, new id"
    );
    fill(&ledger, 5, 2).await.expect("events");
    sign_checkpoint(&ledger, &old_key, "dezky.test/ledger")
        .await
        .expect("old");
    fill(&ledger, 5, 2).await.expect("events");
    sign_checkpoint(&ledger, &new_key, "dezky.test/ledger")
        .await
        .expect("new");

    let both = dezky_commands::keys::TrustedKeys::parse(
        &format!(
            "# rotated out\n{}\n{}\n",
            old_key.public_line(),
            new_key.public_line()
        ),
        "keys.txt",
    )
    .expect("keys");
    let report = dezky_commands::audit::verify_store(&ledger, both, |_, _| {})
        .await
        .expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.checkpoints_verified, 2);

    // Trusting only the new key, the old key's checkpoint is the first break.
    let only_new =
        dezky_commands::keys::TrustedKeys::parse(new_key.public_line(), "keys.txt").expect("keys");
    let report = dezky_commands::audit::verify_store(&ledger, only_new, |_, _| {})
        .await
        .expect("verify");
    let found = report.first_break.expect("a break");
    assert_eq!(
        (found.kind, found.position),
        (dezky_commands::verify::BreakKind::UnknownKey, 5)
    );
}
