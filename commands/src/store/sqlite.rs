//! The SQLite writer: a group in as few calls into SQLite's thread as possible.
//!
//! sqlx runs each SQLite connection on its own thread, and every statement is a round trip to
//! it (two thread wake-ups), which at one writer cost more than the statements themselves.
//! The writer therefore keeps its own connection (no pool health check per group) and sends a
//! whole group as one multi-statement call: `BEGIN IMMEDIATE`, the head update, one insert per
//! event, snapshots, `COMMIT`. Every statement checks its own precondition and fails the call
//! before `COMMIT` when it does not hold, by producing NULL for a `NOT NULL` column: the head
//! update when the stored head is not the one the writer last wrote (another process
//! appended), an insert when its aggregate does not stand at the version before it (a
//! conflict). The transaction is then rolled back and the group redone on the locked path,
//! which reads head and versions first and refuses just the conflicting commands.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, watch};

use super::writer::{
    aggregate_keys, answer, next_group, plan, snapshots, GroupOutcome, Plan, UPSERT_SNAPSHOT,
};
use super::{advance, head_from_row, to_i64, AppendBatch, AppendRequest, Head, SnapshotWrite};
use crate::encoding::format_timestamp;
use crate::error::LedgerError;

/// Events per call: 12 parameters each keeps a call far below SQLite's 32,766 parameters.
const EVENTS_PER_CALL: usize = 256;

/// Runs until every [`super::Ledger`] handle is dropped.
pub(crate) async fn run(
    pool: SqlitePool,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: Arc<watch::Sender<u64>>,
) {
    let mut writer = SqliteWriter {
        options: (*pool.connect_options()).clone(),
        conn: None,
        cached: None,
    };
    while let Some((group, _)) = next_group(&mut requests).await {
        let batches: Vec<&AppendBatch> = group.iter().map(|r| &r.batch).collect();
        let outcome = writer.commit(&batches).await;
        // `synchronous = FULL`: a commit that returned is durable.
        if let Ok((_, position)) = &outcome {
            advance(&head, *position);
        }
        answer(group, outcome.map(|(verdicts, _)| verdicts));
    }
}

struct SqliteWriter {
    options: SqliteConnectOptions,
    conn: Option<SqliteConnection>,
    /// The head this writer last wrote, which the next group is planned on.
    cached: Option<Head>,
}

impl SqliteWriter {
    async fn commit(&mut self, batches: &[&AppendBatch]) -> GroupOutcome {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        let conn = self.conn.insert(conn);
        if let Some(head) = self.cached.take() {
            let recorded_at = format_timestamp(chrono::Utc::now());
            let plan = plan(&head, batches, None, None, &recorded_at);
            match write_fast(conn, &head, &plan, batches).await {
                Ok(()) => {
                    let position = plan.head.position;
                    self.cached = Some(plan.head);
                    return Ok((plan.verdicts, position));
                }
                Err(error) => {
                    tracing::debug!(%error, "SQLite group redone on the locked path");
                    if let Err(error) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                        // Nothing to roll back (BEGIN itself failed) is fine; anything else
                        // leaves the connection in doubt, so start afresh.
                        if !error.to_string().contains("no transaction is active") {
                            self.conn = None;
                            return self.commit_fresh(batches).await;
                        }
                    }
                }
            }
        }
        let outcome = commit_locked(conn, batches).await;
        match &outcome {
            Ok((_, head)) => self.cached = Some(head.clone()),
            Err(_) => self.conn = None,
        }
        outcome.map(|(verdicts, head)| (verdicts, head.position))
    }

    /// The locked path on a new connection.
    async fn commit_fresh(&mut self, batches: &[&AppendBatch]) -> GroupOutcome {
        let mut conn = SqliteConnection::connect_with(&self.options).await?;
        let (verdicts, head) = commit_locked(&mut conn, batches).await?;
        let position = head.position;
        self.cached = Some(head);
        self.conn = Some(conn);
        Ok((verdicts, position))
    }
}

/// Writes a group planned on `head` with no version knowledge beyond the group itself; any
/// failed precondition is an error that leaves the transaction open for the caller to roll
/// back.
async fn write_fast(
    conn: &mut SqliteConnection,
    head: &Head,
    plan: &Plan,
    batches: &[&AppendBatch],
) -> Result<(), LedgerError> {
    let snapshots = snapshots(batches, &plan.verdicts);
    let chunks: Vec<_> = plan.records.chunks(EVENTS_PER_CALL).collect();
    let calls = chunks.len().max(1);
    for call in 0..calls {
        let records = chunks.get(call).copied().unwrap_or(&[]);
        let first = call == 0;
        let last = call + 1 == calls;
        let sql = fast_sql(
            first,
            records.len(),
            if last { snapshots.len() } else { 0 },
            last,
        );
        let mut query = sqlx::query(&sql);
        if first {
            query = query
                .bind(to_i64(head.position))
                .bind(&head.hash[..])
                .bind(to_i64(plan.head.position))
                .bind(&plan.head.hash[..])
                .bind(plan.head.frontier.to_bytes());
        }
        for (record, tenant) in records {
            query = query
                .bind(to_i64(record.position))
                .bind(&record.recorded_at)
                .bind(&record.aggregate_type)
                .bind(&record.aggregate_id)
                .bind(to_i64(record.aggregate_version))
                .bind(&record.event_type)
                .bind(&record.event_version)
                .bind(tenant.as_deref())
                .bind(&record.metadata)
                .bind(&record.payload)
                .bind(&record.prev_hash[..])
                .bind(&record.hash[..]);
        }
        if last {
            for snapshot in &snapshots {
                let SnapshotWrite {
                    aggregate_type,
                    aggregate_id,
                    last_version,
                    snapshot_version,
                    payload,
                } = snapshot;
                query = query
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .bind(to_i64(*last_version))
                    .bind(to_i64(*snapshot_version))
                    .bind(payload);
            }
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The SQL of one call of the fast path, parameters numbered from `$1` in binding order.
fn fast_sql(first: bool, events: usize, snapshots: usize, last: bool) -> String {
    let mut sql = String::new();
    let mut n = 0;
    if first {
        // The CASE sees the old row: a head other than the planned one makes position NULL,
        // which `NOT NULL` refuses before anything else is written.
        sql.push_str(
            "BEGIN IMMEDIATE; \
             UPDATE ledger_head SET \
                position = CASE WHEN position = $1 AND hash = $2 THEN $3 END, \
                hash = $4, frontier = $5 WHERE id = 1;",
        );
        n = 5;
    }
    for _ in 0..events {
        let p = |k: usize| n + k;
        // The aggregate must stand at the version before this event, or the version
        // becomes NULL and the insert fails: a conflict, or a version never reached.
        let _ = write!(
            sql,
            " INSERT INTO ledger_events (position, recorded_at, aggregate_type, aggregate_id, \
                aggregate_version, event_type, event_version, tenant_id, metadata, payload, \
                prev_hash, hash) \
              SELECT ${}, ${}, ${}, ${}, \
                CASE WHEN (SELECT coalesce(max(aggregate_version), 0) FROM ledger_events \
                           WHERE aggregate_type = ${} AND aggregate_id = ${}) = ${} - 1 \
                     THEN ${} END, \
                ${}, ${}, ${}, ${}, ${}, ${}, ${};",
            p(1),
            p(2),
            p(3),
            p(4),
            p(3),
            p(4),
            p(5),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11),
            p(12),
        );
        n += 12;
    }
    for _ in 0..snapshots {
        let _ = write!(
            sql,
            " INSERT INTO ledger_snapshots \
                (aggregate_type, aggregate_id, last_version, snapshot_version, payload) \
              VALUES (${}, ${}, ${}, ${}, ${}) \
              ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
                last_version = excluded.last_version, \
                snapshot_version = excluded.snapshot_version, \
                payload = excluded.payload;",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
        );
        n += 5;
    }
    if last {
        sql.push_str(" COMMIT;");
    }
    sql
}

/// The locked path: take the write lock, read head and stored versions, then write.
async fn commit_locked(
    conn: &mut SqliteConnection,
    batches: &[&AppendBatch],
) -> Result<(Vec<Result<super::Appended, LedgerError>>, Head), LedgerError> {
    // IMMEDIATE takes the write lock now, so a second process waits here (busy timeout)
    // instead of failing later when a read lock would have to be upgraded.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT position, hash, frontier FROM ledger_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let head = head_from_row(&row)?;
    let mut known = HashMap::new();
    for (aggregate_type, aggregate_id) in aggregate_keys(batches) {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(aggregate_version) FROM ledger_events \
             WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(&aggregate_type)
        .bind(&aggregate_id)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(version) = version {
            known.insert(
                (aggregate_type, aggregate_id),
                u64::try_from(version).unwrap_or(0),
            );
        }
    }
    let recorded_at = format_timestamp(chrono::Utc::now());
    let plan = plan(&head, batches, Some(&known), None, &recorded_at);
    if !plan.records.is_empty() {
        for (record, tenant) in &plan.records {
            sqlx::query(
                "INSERT INTO ledger_events (position, recorded_at, aggregate_type, aggregate_id,
                    aggregate_version, event_type, event_version, tenant_id, metadata, payload,
                    prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(to_i64(record.position))
            .bind(&record.recorded_at)
            .bind(&record.aggregate_type)
            .bind(&record.aggregate_id)
            .bind(to_i64(record.aggregate_version))
            .bind(&record.event_type)
            .bind(&record.event_version)
            .bind(tenant.as_deref())
            .bind(&record.metadata)
            .bind(&record.payload)
            .bind(&record.prev_hash[..])
            .bind(&record.hash[..])
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE ledger_head SET position = $1, hash = $2, frontier = $3 WHERE id = 1")
            .bind(to_i64(plan.head.position))
            .bind(&plan.head.hash[..])
            .bind(plan.head.frontier.to_bytes())
            .execute(&mut *tx)
            .await?;
        for snapshot in snapshots(batches, &plan.verdicts) {
            sqlx::query(UPSERT_SNAPSHOT)
                .bind(snapshot.aggregate_type)
                .bind(snapshot.aggregate_id)
                .bind(to_i64(snapshot.last_version))
                .bind(to_i64(snapshot.snapshot_version))
                .bind(snapshot.payload)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok((plan.verdicts, plan.head))
}
