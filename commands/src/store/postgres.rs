//! The PostgreSQL writer: one statement per group, pipelined with a separate durability barrier.
//!
//! A group is written by one statement, run outside any explicit transaction: it checks that
//! the stored head is still the one the writer last wrote (which takes the head row's lock),
//! checks every command's base version, inserts the events and advances the head. That is one
//! round trip, where `BEGIN`, `SELECT … FOR UPDATE`, the insert and `COMMIT` took four. When
//! the head moved (another process appended) or a version check failed, the group is redone in
//! a transaction that locks and reads the head first, as before.
//!
//! Durability is pipelined. The writer's connection commits with `synchronous_commit = off`,
//! so the head lock is released as soon as the commit record is written, and the next group
//! starts while the WAL is flushed. The callers of a group are answered only after a separate
//! *durability barrier*: a synchronous commit on another connection, whose WAL flush covers
//! every commit record written before it, so one barrier makes all groups committed before it
//! durable (PostgreSQL's WAL is one ordered stream). The barrier also sends the NOTIFY that
//! followers in other processes listen to; since a notification is delivered only once its
//! transaction is committed, and a synchronous commit counts as committed only after its WAL
//! flush, followers never hear of a position before it is durable. The head row's trigger,
//! which notified at the (now asynchronous) group commit, is dropped by migration 0003.
//!
//! A group alone (one command, nothing queued, no barrier in flight, the case of a single
//! writer) is instead written on the barrier's connection with a synchronous commit that also
//! notifies: one round trip and one flush, with no barrier to wait for afterwards.
//!
//! Both connections are the writer's own, outside the pool (no health-check round trip per
//! group), and use `plan_cache_mode = force_generic_plan`: PostgreSQL otherwise re-plans the
//! array statement on every execution (BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Mutex};

use super::writer::{
    aggregate_keys, answer, has_snapshots, next_group, plan, run_durability, snapshots, Barrier,
    Committed, CommittedVersions, GroupOutcome, Pipeline, Plan, UPSERT_SNAPSHOT,
};
use super::{advance, head_from_row, to_i64, AppendBatch, AppendRequest, Appended, Head};
use crate::encoding::format_timestamp;
use crate::error::LedgerError;

/// PostgreSQL's SQLSTATE for a unique-constraint violation.
const PG_UNIQUE_VIOLATION: &str = "23505";

/// The channel followers listen on; the payload is a durable head position.
pub(crate) const NOTIFY_CHANNEL: &str = "dezky_ledger";

/// A synchronous commit that flushes the WAL past every commit written before it and tells
/// other processes the durable position. PostgreSQL only flushes at commit when the
/// transaction wrote WAL: an xid alone (`txid_current()`) or a `pg_notify` commits without a
/// flush. A transactional logical message is a WAL record of this transaction (at any
/// `wal_level`, executable by any role, nothing to clean up), so the commit waits for it.
pub(crate) const BARRIER: &str =
    "SELECT pg_logical_emit_message(true, 'dezky_ledger', $1), pg_notify('dezky_ledger', $1)";

/// Options of the writer's connection: asynchronous commit (the barrier makes groups durable)
/// and generic plans.
fn writer_options(base: &PgConnectOptions) -> PgConnectOptions {
    base.clone()
        .application_name("dezky-ledger-writer")
        .options([
            ("synchronous_commit", "off"),
            ("plan_cache_mode", "force_generic_plan"),
        ])
}

/// Options of the barrier's connection: the server's own commit durability, generic plans.
fn durable_options(base: &PgConnectOptions) -> PgConnectOptions {
    base.clone()
        .application_name("dezky-ledger-durability")
        .options([("plan_cache_mode", "force_generic_plan")])
}

/// The connection in `slot`, opened first if there is none.
async fn connection<'c>(
    slot: &'c mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<&'c mut PgConnection, LedgerError> {
    let conn = match slot.take() {
        Some(conn) => conn,
        None => PgConnection::connect_with(options).await?,
    };
    Ok(slot.insert(conn))
}

fn is_unique_violation(error: &LedgerError) -> bool {
    match error {
        LedgerError::Database(error) => error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == PG_UNIQUE_VIOLATION),
        _ => false,
    }
}

/// The barrier on its own connection, shared with the writer's synchronous path.
struct PgBarrier {
    conn: Arc<Mutex<Option<PgConnection>>>,
    options: PgConnectOptions,
}

impl Barrier for PgBarrier {
    async fn flush(&mut self, position: u64) -> Result<(), LedgerError> {
        let mut slot = self.conn.lock().await;
        let conn = connection(&mut slot, &self.options).await?;
        match sqlx::query(BARRIER)
            .bind(position.to_string())
            .execute(conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                // Whatever broke, a fresh connection is the safe start for the next barrier.
                *slot = None;
                Err(error.into())
            }
        }
    }
}

/// Runs until every [`super::Ledger`] handle is dropped.
pub(crate) async fn run(
    pool: PgPool,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: Arc<watch::Sender<u64>>,
) {
    let base = (*pool.connect_options()).clone();
    let sync_options = durable_options(&base);
    let sync_conn = Arc::new(Mutex::new(None));
    let pipeline = Arc::new(Pipeline::default());
    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    tokio::spawn(run_durability(
        PgBarrier {
            conn: sync_conn.clone(),
            options: sync_options.clone(),
        },
        committed_rx,
        head.clone(),
        pipeline.clone(),
    ));
    let mut writer = PgWriter {
        options: writer_options(&base),
        conn: None,
        cached: None,
        committed: CommittedVersions::default(),
    };
    while let Some((group, drained)) = next_group(&mut requests).await {
        if pipeline.lost.swap(false, Ordering::SeqCst) {
            writer.forget();
        }
        let batches: Vec<&AppendBatch> = group.iter().map(|r| &r.batch).collect();
        if group.len() == 1 && drained && pipeline.in_flight.load(Ordering::SeqCst) == 0 {
            if let Ok(mut slot) = sync_conn.try_lock() {
                if let Some(outcome) = writer
                    .commit_synchronously(&mut slot, &sync_options, &batches)
                    .await
                {
                    drop(slot);
                    if let Ok((_, position)) = &outcome {
                        advance(&head, *position);
                    }
                    answer(group, outcome.map(|(verdicts, _)| verdicts));
                    continue;
                }
            }
        }
        match writer.commit(&batches).await {
            Ok((verdicts, position)) => {
                pipeline.in_flight.fetch_add(1, Ordering::SeqCst);
                let replies = group.into_iter().map(|r| r.reply).zip(verdicts).collect();
                // Only fails if the durability task is gone; its callers then see the writer
                // stopped, never a success.
                let _ = committed_tx.send(Committed { position, replies });
            }
            Err(error) => answer(group, Err(error)),
        }
    }
}

/// What the group statement did.
enum Inserted {
    /// Events inserted and head advanced.
    Done,
    /// The stored head is not the one planned on: nothing written.
    HeadMoved,
    /// Some command builds on a version its aggregate never reached: nothing written.
    Gap,
}

/// The writer's state between groups.
struct PgWriter {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    /// The head this writer last wrote, which the next group is planned on.
    cached: Option<Head>,
    committed: CommittedVersions,
}

impl PgWriter {
    /// Forgets the cached head and versions, so the next group reads them under the lock.
    fn forget(&mut self) {
        self.cached = None;
        self.committed.clear();
    }

    fn remember(&mut self, plan: Plan) -> (Vec<Result<Appended, LedgerError>>, u64) {
        self.committed.record(&plan);
        let position = plan.head.position;
        self.cached = Some(plan.head);
        (plan.verdicts, position)
    }

    /// Writes a lone group with a synchronous commit on the barrier's connection. `None` when
    /// the group needs the locked path (no cached head, head moved, a version conflict with
    /// another process, snapshots): nothing was written and the pipelined path takes over.
    async fn commit_synchronously(
        &mut self,
        slot: &mut Option<PgConnection>,
        options: &PgConnectOptions,
        batches: &[&AppendBatch],
    ) -> Option<GroupOutcome> {
        let head = self.cached.clone()?;
        let recorded_at = format_timestamp(chrono::Utc::now());
        let plan = plan(&head, batches, None, Some(&self.committed), &recorded_at);
        if plan.records.is_empty() {
            // Refused from memory: nothing to write, nothing to make durable.
            return Some(Ok((plan.verdicts, head.position)));
        }
        if has_snapshots(batches, &plan) {
            return None;
        }
        let conn = match connection(slot, options).await {
            Ok(conn) => conn,
            Err(error) => return Some(Err(error)),
        };
        match insert_group(conn, &head, &plan, true).await {
            Ok(Inserted::Done) => {
                let (verdicts, position) = self.remember(plan);
                Some(Ok((verdicts, position)))
            }
            Ok(Inserted::HeadMoved) => {
                self.cached = None;
                None
            }
            Ok(Inserted::Gap) => None,
            Err(error) if is_unique_violation(&error) => None,
            Err(error) => {
                *slot = None;
                self.forget();
                Some(Err(error))
            }
        }
    }

    /// Commits a group asynchronously on the writer's connection; its callers wait for the
    /// durability barrier.
    async fn commit(&mut self, batches: &[&AppendBatch]) -> GroupOutcome {
        let mut read_versions = false;
        if let Some(head) = self.cached.clone() {
            let recorded_at = format_timestamp(chrono::Utc::now());
            let plan = plan(&head, batches, None, Some(&self.committed), &recorded_at);
            if plan.records.is_empty() {
                return Ok((plan.verdicts, head.position));
            }
            if !has_snapshots(batches, &plan) {
                let conn = connection(&mut self.conn, &self.options).await?;
                match insert_group(conn, &head, &plan, false).await {
                    Ok(Inserted::Done) => return Ok(self.remember(plan)),
                    Ok(Inserted::HeadMoved) => self.cached = None,
                    Ok(Inserted::Gap) => read_versions = true,
                    Err(error) if is_unique_violation(&error) => read_versions = true,
                    Err(error) => {
                        self.conn = None;
                        self.forget();
                        return Err(error);
                    }
                }
            }
        }
        let conn = connection(&mut self.conn, &self.options).await?;
        match commit_locked(conn, batches, read_versions, &mut self.committed).await {
            Ok((verdicts, head)) => {
                let position = head.position;
                self.cached = Some(head);
                Ok((verdicts, position))
            }
            Err(error) => {
                if !matches!(error, LedgerError::Database(ref e) if e.as_database_error().is_some())
                {
                    // Not a statement's error: the connection may be broken.
                    self.conn = None;
                }
                self.forget();
                Err(error)
            }
        }
    }
}

/// The locked path: lock and read the head, then write. Conflicts across processes are rare,
/// so the first attempt skips the version query; the unique constraint and the base-version
/// check catch a command that lost a race, and the group is redone with the stored versions
/// read under the lock, so only the losers are refused.
async fn commit_locked(
    conn: &mut PgConnection,
    batches: &[&AppendBatch],
    read_versions: bool,
    committed: &mut CommittedVersions,
) -> Result<(Vec<Result<Appended, LedgerError>>, Head), LedgerError> {
    if read_versions {
        return try_commit_locked(conn, batches, true, committed).await;
    }
    match try_commit_locked(conn, batches, false, committed).await {
        Err(error) if is_unique_violation(&error) => {
            try_commit_locked(conn, batches, true, committed).await
        }
        Err(LedgerError::VersionGap) => try_commit_locked(conn, batches, true, committed).await,
        other => other,
    }
}

async fn try_commit_locked(
    conn: &mut PgConnection,
    batches: &[&AppendBatch],
    read_versions: bool,
    committed: &mut CommittedVersions,
) -> Result<(Vec<Result<Appended, LedgerError>>, Head), LedgerError> {
    let mut tx = conn.begin().await?;
    let row =
        sqlx::query("SELECT position, hash, frontier FROM ledger_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let head = head_from_row(&row)?;
    let known = if read_versions {
        let (types, ids): (Vec<String>, Vec<String>) = aggregate_keys(batches).into_iter().unzip();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT e.aggregate_type, e.aggregate_id, max(e.aggregate_version) \
             FROM ledger_events e \
             JOIN UNNEST($1::text[], $2::text[]) AS k(t, i) \
               ON e.aggregate_type = k.t AND e.aggregate_id = k.i \
             GROUP BY 1, 2",
        )
        .bind(&types)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        Some(
            rows.into_iter()
                .map(|(t, i, v)| ((t, i), u64::try_from(v).unwrap_or(0)))
                .collect::<HashMap<_, _>>(),
        )
    } else {
        None
    };
    let recorded_at = format_timestamp(chrono::Utc::now());
    let plan = plan(
        &head,
        batches,
        known.as_ref(),
        Some(committed),
        &recorded_at,
    );
    if !plan.records.is_empty() {
        match insert_group(&mut tx, &head, &plan, false).await? {
            Inserted::Done => {}
            // Only reachable when a caller appends ahead of the stored version, or when the
            // version query was skipped; the redo reads versions and refuses just those.
            Inserted::Gap if !read_versions => return Err(LedgerError::VersionGap),
            Inserted::Gap => {
                return Err(LedgerError::Corrupt {
                    position: head.position,
                    reason: "a base version vanished while the head was locked".into(),
                })
            }
            Inserted::HeadMoved => {
                return Err(LedgerError::Corrupt {
                    position: head.position,
                    reason: "the head changed while it was locked".into(),
                })
            }
        }
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
    committed.record(&plan);
    Ok((plan.verdicts, plan.head))
}

/// The group statement. It advances the head only if the stored head is still the planned
/// one (`$19`, `$20`) and every command's base version exists, and inserts the events only if
/// the head advanced; so it writes the whole group or nothing, and says which.
///
/// Run outside a transaction it takes the head row's lock itself: the `UPDATE` waits for any
/// other writer's transaction and then re-checks position and hash on the row that
/// transaction left, so a head that moved meanwhile writes nothing. When the `UPDATE` finds
/// the planned head, no event was committed after the statement's snapshot (every append
/// advances the head), so the base-version check saw every stored event.
const INSERT_GROUP: &str = "WITH gaps AS (
        SELECT count(*) AS n
        FROM UNNEST($16::text[], $17::text[], $18::int8[]) AS b(t, i, v)
        -- A scalar count per base version stays an index probe; a NOT EXISTS here was planned
        -- as a hash anti-join over a scan of the whole table by connections that planned it
        -- while the table was small (BENCHMARKS.md).
        WHERE b.v > 0 AND (
            SELECT count(*) FROM ledger_events e
            WHERE e.aggregate_type = b.t AND e.aggregate_id = b.i
              AND e.aggregate_version = b.v) = 0),
     head AS (
        UPDATE ledger_head SET position = $13, hash = $14, frontier = $15
        WHERE id = 1 AND position = $19 AND hash = $20 AND (SELECT n FROM gaps) = 0
        RETURNING position),
     inserted AS (
        INSERT INTO ledger_events (position, recorded_at, aggregate_type, aggregate_id,
            aggregate_version, event_type, event_version, tenant_id, metadata, payload,
            prev_hash, hash)
        SELECT u.* FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[],
            $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::bytea[], $12::bytea[]) AS u
        WHERE EXISTS (SELECT 1 FROM head)
        RETURNING 1),
     notified AS MATERIALIZED (
        SELECT pg_notify('dezky_ledger', position::text) FROM head WHERE $21)
     SELECT (SELECT n FROM gaps), (SELECT count(*) FROM head), (SELECT count(*) FROM notified)";

/// Runs [`INSERT_GROUP`] for a plan built on `head`; `notify` only on a synchronous commit.
async fn insert_group(
    conn: &mut PgConnection,
    head: &Head,
    plan: &Plan,
    notify: bool,
) -> Result<Inserted, LedgerError> {
    // The version each command's first event of an aggregate builds on (0 = new).
    let mut base_types = Vec::new();
    let mut base_ids = Vec::new();
    let mut base_versions = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (record, _) in &plan.records {
        let key = (record.aggregate_type.as_str(), record.aggregate_id.as_str());
        if seen.insert(key) {
            base_types.push(key.0);
            base_ids.push(key.1);
            base_versions.push(to_i64(record.aggregate_version - 1));
        }
    }
    let n = plan.records.len();
    let mut positions = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut event_types = Vec::with_capacity(n);
    let mut event_versions = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut prevs = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for (record, tenant) in &plan.records {
        positions.push(to_i64(record.position));
        times.push(record.recorded_at.as_str());
        types.push(record.aggregate_type.as_str());
        ids.push(record.aggregate_id.as_str());
        versions.push(to_i64(record.aggregate_version));
        event_types.push(record.event_type.as_str());
        event_versions.push(record.event_version.as_str());
        tenants.push(tenant.as_deref());
        metadata.push(record.metadata.as_str());
        payloads.push(record.payload.as_str());
        prevs.push(record.prev_hash.to_vec());
        hashes.push(record.hash.to_vec());
    }
    let (gaps, advanced, _notified): (i64, i64, i64) = sqlx::query_as(INSERT_GROUP)
        .bind(&positions)
        .bind(&times)
        .bind(&types)
        .bind(&ids)
        .bind(&versions)
        .bind(&event_types)
        .bind(&event_versions)
        .bind(&tenants)
        .bind(&metadata)
        .bind(&payloads)
        .bind(&prevs)
        .bind(&hashes)
        .bind(to_i64(plan.head.position))
        .bind(plan.head.hash.to_vec())
        .bind(plan.head.frontier.to_bytes())
        .bind(&base_types)
        .bind(&base_ids)
        .bind(&base_versions)
        .bind(to_i64(head.position))
        .bind(head.hash.to_vec())
        .bind(notify)
        .fetch_one(conn)
        .await?;
    Ok(if gaps > 0 {
        Inserted::Gap
    } else if advanced == 0 {
        Inserted::HeadMoved
    } else {
        Inserted::Done
    })
}
