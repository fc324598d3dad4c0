//! The projection runner: position stored with the rows, catch-up then follow, restarts that
//! lose and repeat nothing, and two runners of one projection that never apply a batch twice.

use std::time::Duration;

use dezky_commands::encoding::EventRecord;
use dezky_commands::Ledger;
use dezky_projections::runner::Dialect;
use dezky_projections::{on_tx, Projection, ProjectionError, ProjectionRunner, ReadTx};
use dezky_tests::{fill, Backend, TestDb};
use tokio::sync::watch;

/// Counts events per aggregate and sums their positions: applying any event twice, or
/// skipping one, changes the sums.
struct Tally {
    version: u32,
}

impl Tally {
    fn table(&self) -> String {
        format!("rm_tally_v{}", self.version)
    }
}

impl Projection for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }

    fn build(&self) -> u32 {
        self.version
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn tables(&self) -> Vec<String> {
        vec![self.table()]
    }

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        Vec::new()
    }
    fn schema(&self, _dialect: Dialect) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (aggregate_id TEXT PRIMARY KEY, events BIGINT NOT NULL, position_sum BIGINT NOT NULL)",
            self.table()
        )]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let sql = format!(
            "INSERT INTO {} (aggregate_id, events, position_sum) VALUES ($1, 1, $2) \
             ON CONFLICT (aggregate_id) DO UPDATE SET events = {0}.events + 1, \
             position_sum = {0}.position_sum + excluded.position_sum",
            self.table()
        );
        for event in events {
            on_tx!(&mut *tx, conn => {
                sqlx::query(&sql)
                    .bind(&event.aggregate_id)
                    .bind(event.position as i64)
                    .execute(&mut **conn)
                    .await?;
            });
        }
        Ok(())
    }
}

async fn tally(ledger: &Ledger, version: u32) -> Vec<(String, i64, i64)> {
    let sql = format!(
        "SELECT aggregate_id, events, position_sum FROM rm_tally_v{version} ORDER BY aggregate_id"
    );
    match ledger.db() {
        dezky_commands::store::Db::Sqlite(pool) => sqlx::query_as(&sql).fetch_all(pool).await,
        dezky_commands::store::Db::Postgres(pool) => sqlx::query_as(&sql).fetch_all(pool).await,
    }
    .expect("read model")
}

/// What the tally must hold: computed straight from the ledger.
async fn expected(ledger: &Ledger) -> Vec<(String, i64, i64)> {
    let mut map = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for event in ledger
        .read_batch(0, u64::MAX, 1_000_000)
        .await
        .expect("events")
    {
        let entry = map.entry(event.aggregate_id).or_default();
        entry.0 += 1;
        entry.1 += event.position as i64;
    }
    map.into_iter().map(|(k, (n, s))| (k, n, s)).collect()
}

async fn a_live_projection_equals_one_rebuilt_from_the_ledger(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let live = ProjectionRunner::new(ledger.clone(), Tally { version: 1 })
        .await
        .expect("runner");
    for round in 0..3 {
        fill(&ledger, 300 + round, 97).await.expect("events");
        live.catch_up().await.expect("catch up");
    }
    let head = ledger.head().await.expect("head").position;
    assert_eq!(*live.position().borrow(), head);
    let rebuilt = ProjectionRunner::new(ledger.clone(), Tally { version: 2 })
        .await
        .expect("runner");
    rebuilt.catch_up().await.expect("rebuild");
    assert_eq!(tally(&ledger, 1).await, tally(&ledger, 2).await);
    assert_eq!(tally(&ledger, 1).await, expected(&ledger).await);
}

#[tokio::test]
async fn a_live_projection_equals_one_rebuilt_from_the_ledger_on_sqlite() {
    a_live_projection_equals_one_rebuilt_from_the_ledger(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_live_projection_equals_one_rebuilt_from_the_ledger_on_postgres() {
    a_live_projection_equals_one_rebuilt_from_the_ledger(Backend::Postgres).await;
}

async fn a_runner_stopped_mid_stream_and_restarted_loses_and_repeats_nothing(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    fill(&ledger, 1_500, 97).await.expect("events");
    for stop_after_ms in [1, 5, 20] {
        let runner = ProjectionRunner::new(ledger.clone(), Tally { version: 1 })
            .await
            .expect("runner");
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(runner.run(shutdown));
        tokio::time::sleep(Duration::from_millis(stop_after_ms)).await;
        // Aborting drops the future wherever it is, mid-transaction included.
        task.abort();
        let _ = task.await;
        fill(&ledger, 50, 97)
            .await
            .expect("more events while stopped");
    }
    let runner = ProjectionRunner::new(ledger.clone(), Tally { version: 1 })
        .await
        .expect("runner");
    runner.catch_up().await.expect("catch up");
    assert_eq!(tally(&ledger, 1).await, expected(&ledger).await);
}

#[tokio::test]
async fn a_runner_stopped_mid_stream_and_restarted_loses_and_repeats_nothing_on_sqlite() {
    a_runner_stopped_mid_stream_and_restarted_loses_and_repeats_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_runner_stopped_mid_stream_and_restarted_loses_and_repeats_nothing_on_postgres() {
    a_runner_stopped_mid_stream_and_restarted_loses_and_repeats_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_of_one_projection_never_apply_a_batch_twice() {
    let db = TestDb::create(Backend::Postgres).await.expect("db");
    let a = db.open().await.expect("ledger a");
    let b = db.open().await.expect("ledger b");
    let writer = {
        let a = a.clone();
        tokio::spawn(async move { fill(&a, 1_500, 97).await })
    };
    let first = ProjectionRunner::new(a.clone(), Tally { version: 1 })
        .await
        .expect("runner");
    let second = ProjectionRunner::new(b.clone(), Tally { version: 1 })
        .await
        .expect("runner");
    let (stop, shutdown) = watch::channel(false);
    let t1 = tokio::spawn(first.run(shutdown.clone()));
    let t2 = tokio::spawn(second.run(shutdown));
    writer.await.expect("join").expect("events");
    let head = a.head().await.expect("head").position;
    let check = ProjectionRunner::new(a.clone(), Tally { version: 1 })
        .await
        .expect("runner");
    let mut position = check.position();
    for _ in 0..200 {
        if check.catch_up().await.expect("read position") >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(*position.borrow_and_update(), head);
    stop.send(true).expect("stop");
    t1.await.expect("runner a stops");
    t2.await.expect("runner b stops");
    assert_eq!(tally(&a, 1).await, expected(&a).await);
}

#[tokio::test]
async fn a_follower_on_postgres_hears_of_appends_made_by_another_process() {
    let db = TestDb::create(Backend::Postgres).await.expect("db");
    // Two handles with separate pools and writers stand for two processes.
    let listener = db.open().await.expect("ledger a");
    let other = db.open().await.expect("ledger b");
    let mut heads = listener.subscribe();
    // Give the LISTEN a moment to be registered before the other process appends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    fill(&other, 3, 1)
        .await
        .expect("events by the other process");
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while *heads.borrow_and_update() < 3 {
            heads.changed().await.expect("ledger alive");
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "no notification of the other process's appends"
    );
}
