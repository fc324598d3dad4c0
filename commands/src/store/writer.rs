//! The ledger's writer task: group commit with a per-event chain.
//!
//! Commands hand their events to this task over a channel. While one transaction commits,
//! the next commands queue up; the task then takes all of them (up to
//! [`MAX_GROUP_COMMIT_EVENTS`]) into one transaction, so the cost of a durable commit (fsync)
//! is shared. Each command is still atomic and still gets its own optimistic-concurrency
//! verdict: a conflicting command is refused alone, never with its batch-mates.
//!
//! Every transaction starts by locking the `ledger_head` row (PostgreSQL `FOR UPDATE`,
//! SQLite `BEGIN IMMEDIATE`), reads the head hash and Merkle frontier, hashes the new events
//! in order, inserts them and writes the new head, then commits. Writers in other processes
//! wait on that lock, so the chain stays linear with no gap and no duplicate position.

use std::collections::HashMap;

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::{mpsc, watch};

use super::{head_from_row, to_i64, AppendBatch, AppendRequest, Appended, Db, Head};
use super::{MAX_EVENT_FIELD_BYTES, MAX_GROUP_COMMIT_EVENTS};
use crate::encoding::{event_hash, format_timestamp, EventFields, EventRecord};
use crate::error::LedgerError;

/// PostgreSQL's SQLSTATE for a unique-constraint violation.
const PG_UNIQUE_VIOLATION: &str = "23505";

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

/// Runs until every [`super::Ledger`] handle is dropped.
pub(crate) async fn run(
    db: Db,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: std::sync::Arc<watch::Sender<u64>>,
) {
    let mut committed = CommittedVersions::default();
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        let mut events = group[0].batch.events.len();
        // Take what queued up while the previous transaction committed; never wait for more.
        while events < MAX_GROUP_COMMIT_EVENTS {
            match requests.try_recv() {
                Ok(next) => {
                    events += next.batch.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<&AppendBatch> = group.iter().map(|r| &r.batch).collect();
        let outcome = match &db {
            Db::Postgres(pool) => match pool.acquire().await {
                Ok(mut conn) => commit_postgres(&mut conn, &batches, &mut committed).await,
                Err(error) => Err(error.into()),
            },
            Db::Sqlite(pool) => match pool.acquire().await {
                Ok(mut conn) => commit_sqlite(&mut conn, &batches).await,
                Err(error) => Err(error.into()),
            },
        };
        match outcome {
            Ok((verdicts, position)) => {
                super::advance(&head, position);
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
}

/// Most aggregate versions the writer remembers before it forgets them all.
const COMMITTED_VERSIONS_CAPACITY: usize = 100_000;

/// The versions this writer itself committed recently. Versions only grow, so a command
/// decided on an older version is refused from memory without a database round trip (and
/// without failing its whole group on the unique constraint); a remembered version is never
/// taken as proof that a command may go in, since another process may have moved on.
#[derive(Default)]
struct CommittedVersions(HashMap<(String, String), u64>);

impl CommittedVersions {
    fn record(&mut self, plan: &Plan) {
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
struct Plan {
    records: Vec<(EventRecord, Option<String>)>,
    verdicts: Vec<Result<Appended, LedgerError>>,
    head: Head,
}

/// Decides, in order, which commands of the group go in, and computes their positions and
/// hashes. `known_versions` holds the stored version of every aggregate in the group when it
/// was read under the head lock; without it (the optimistic path) only conflicts inside the
/// group are caught here and the unique constraint catches the rest.
fn plan(
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
fn snapshots(
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

fn aggregate_keys(batches: &[&AppendBatch]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = batches
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

type GroupOutcome = Result<(Vec<Result<Appended, LedgerError>>, u64), LedgerError>;

async fn commit_postgres(
    conn: &mut PgConnection,
    batches: &[&AppendBatch],
    committed: &mut CommittedVersions,
) -> GroupOutcome {
    // Optimistic path: conflicts across processes are rare, so skip the version query. The
    // insert statement itself refuses a command decided on a version the aggregate never
    // reached, and the unique (aggregate_type, aggregate_id, aggregate_version) constraint one
    // decided on a version already passed.
    match try_commit_postgres(conn, batches, false, committed).await {
        Err(LedgerError::Database(error))
            if error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == PG_UNIQUE_VIOLATION) =>
        {
            // Some command lost a race to another process. Redo the group with the stored
            // versions read under the lock, so only the losers are refused.
            try_commit_postgres(conn, batches, true, committed).await
        }
        Err(LedgerError::VersionGap) => try_commit_postgres(conn, batches, true, committed).await,
        other => other,
    }
}

async fn try_commit_postgres(
    conn: &mut PgConnection,
    batches: &[&AppendBatch],
    read_versions: bool,
    committed: &mut CommittedVersions,
) -> GroupOutcome {
    use sqlx::Connection;
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
        // One statement checks that every aggregate stands at the version its command was
        // decided on (the base version exists), inserts every event and advances the head:
        // one round trip a group. If a base version is missing it writes nothing and says so.
        // The head lock taken by the previous statement means this statement's snapshot
        // already sees every committed event.
        let gaps: i64 = sqlx::query_scalar(
            "WITH gaps AS (
                SELECT count(*) AS n
                FROM UNNEST($16::text[], $17::text[], $18::int8[]) AS b(t, i, v)
                -- A scalar count per base version stays an index probe; a NOT EXISTS here
                -- was planned as a hash anti-join over a scan of the whole table by
                -- connections that planned it while the table was small (BENCHMARKS.md).
                WHERE b.v > 0 AND (
                    SELECT count(*) FROM ledger_events e
                    WHERE e.aggregate_type = b.t AND e.aggregate_id = b.i
                      AND e.aggregate_version = b.v) = 0),
             inserted AS (
                INSERT INTO ledger_events (position, recorded_at, aggregate_type, aggregate_id,
                    aggregate_version, event_type, event_version, tenant_id, metadata, payload,
                    prev_hash, hash)
                SELECT u.* FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[],
                    $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                    $11::bytea[], $12::bytea[]) AS u, gaps
                WHERE gaps.n = 0
                RETURNING 1),
             head AS (
                UPDATE ledger_head SET position = $13, hash = $14, frontier = $15
                WHERE id = 1 AND (SELECT n FROM gaps) = 0
                RETURNING 1)
             SELECT n FROM gaps",
        )
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
        .fetch_one(&mut *tx)
        .await?;
        if gaps > 0 {
            // Only reachable when a caller appends ahead of the stored version, or when the
            // version query was skipped; the redo reads versions and refuses just those.
            if read_versions {
                return Err(LedgerError::Corrupt {
                    position: head.position,
                    reason: "a base version vanished while the head was locked".into(),
                });
            }
            return Err(LedgerError::VersionGap);
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
    Ok((plan.verdicts, plan.head.position))
}

async fn commit_sqlite(conn: &mut SqliteConnection, batches: &[&AppendBatch]) -> GroupOutcome {
    use sqlx::Connection;
    // IMMEDIATE takes the write lock now, so a second process waits here (busy timeout)
    // instead of failing later when a read lock would have to be upgraded.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT position, hash, frontier FROM ledger_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let head = head_from_row(&row)?;
    // In-process queries cost microseconds, so SQLite always reads the stored versions.
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
    Ok((plan.verdicts, plan.head.position))
}

const UPSERT_SNAPSHOT: &str = "INSERT INTO ledger_snapshots
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

    #[test]
    fn an_empty_append_is_invalid() {
        assert!(matches!(
            validate(&batch(vec![])),
            Err(LedgerError::InvalidAppend(_))
        ));
    }
}
