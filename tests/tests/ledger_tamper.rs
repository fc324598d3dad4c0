//! Tamper suite: the verifier names every kind of break and the exact position where the chain
//! stops being trustworthy, whether the ledger was edited in its database (SQLite and
//! PostgreSQL) or an export file was edited on its way to the auditor.
//!
//! Every test is given/when/then: a ledger of [`EVENTS`] events with signed checkpoints at
//! [`CHECKPOINTS`], one attack written the way an attacker with write access and full knowledge
//! of the format would write it, and the one break the auditor must be told about: its kind
//! and its position, never its wording.

use std::ops::RangeInclusive;

use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::checkpoint::SignedCheckpoint;
use dezky_commands::encoding::{canonical_json, EventRecord, Hash32};
use dezky_commands::export::{export, verify_export, ExportOptions, VerifyOptions};
use dezky_commands::keys::{SigningKey, TrustedKeys};
use dezky_commands::merkle::Frontier;
use dezky_commands::store::Db;
use dezky_commands::verify::{BreakKind, PositionRange, Report, TenantCompleteness};
use dezky_commands::{AppendBatch, Ledger, NewEvent};
use dezky_tests::{metadata_for, probe_cqrs, record, test_key, Backend, TestDb};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The ledger every test starts from.
// ---------------------------------------------------------------------------------------------

const ORIGIN: &str = "dezky.test/ledger";
/// Events in the given ledger, one per command.
const EVENTS: u64 = 30;
/// Sizes at which the trusted key signed a checkpoint.
const CHECKPOINTS: [u64; 3] = [10, 20, 30];
/// A position in the middle of the log, between two checkpoints.
const MIDDLE: u64 = 14;

/// Every third event belongs to `tenant-b`, the rest to `tenant-a`: a `tenant-b` export has
/// runs of two elided lines, a `tenant-a` export single ones.
fn tenant_at(position: u64) -> &'static str {
    if position.is_multiple_of(3) {
        "tenant-b"
    } else {
        "tenant-a"
    }
}

/// A ledger with checkpoints, its signing key, and the throw-away database under it.
struct Given {
    // Declared before the database so the pool goes first when the test ends.
    ledger: Ledger,
    key: SigningKey,
    _db: TestDb,
}

/// Given a ledger of [`EVENTS`] events written through the real command path, with a
/// checkpoint signed by the trusted key at each size in [`CHECKPOINTS`].
async fn given_a_checkpointed_ledger(backend: Backend) -> Given {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, _) = test_key(ORIGIN);
    let cqrs = probe_cqrs(&ledger);
    for position in 1..=EVENTS {
        cqrs.execute_with_metadata(
            &format!("probe-{}", position % 4),
            record(1, &format!("command {position}")),
            metadata_for(tenant_at(position)).to_map(),
        )
        .await
        .expect("command");
        if CHECKPOINTS.contains(&position) {
            sign_checkpoint(&ledger, &key, ORIGIN)
                .await
                .expect("checkpoint");
        }
    }
    Given {
        ledger,
        key,
        _db: db,
    }
}

impl Given {
    /// The auditor's trusted-keys set: the public half of the key that signed.
    fn trusted(&self) -> TrustedKeys {
        TrustedKeys::parse(self.key.public_line(), "trusted-keys.txt").expect("public key")
    }

    /// When the auditor verifies the live store.
    async fn verify_store(&self) -> Report {
        verify_store(&self.ledger, self.trusted(), |_, _| {})
            .await
            .expect("verification runs")
    }

    /// The export file's lines.
    async fn export(&self, options: ExportOptions) -> Vec<String> {
        let mut file = Vec::new();
        export(&self.ledger, &mut file, &options, |_, _| {})
            .await
            .expect("export");
        String::from_utf8(file)
            .expect("an export is UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The whole log as stored, in position order.
    async fn rows(&self) -> Vec<EventRecord> {
        self.ledger
            .read_batch(0, u64::MAX, 100_000)
            .await
            .expect("read events")
    }
}

/// Then: the report names exactly this break kind at exactly this position.
#[track_caller]
fn assert_break(report: &Report, kind: BreakKind, position: u64) {
    let found = report.first_break.as_ref().map(|b| (b.kind, b.position));
    assert_eq!(found, Some((kind, position)), "report: {report:#?}");
}

/// Then: the report finds nothing wrong and confirms every checkpoint.
#[track_caller]
fn assert_intact(report: &Report) {
    assert_eq!(report.first_break, None, "report: {report:#?}");
    assert_eq!(report.events, EVENTS);
    assert_eq!(report.last_position, EVENTS);
    assert_eq!(report.checkpoints_verified, CHECKPOINTS.len() as u64);
}

/// Runs an `async fn(Backend)` scenario as one test per backend, `<scenario>::on_sqlite` and
/// `<scenario>::on_postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                super::$scenario(super::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                super::$scenario(super::Backend::Postgres).await;
            }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// The attacker's toolkit: raw SQL on either backend, re-hashing, export line surgery.
// ---------------------------------------------------------------------------------------------

/// A bind value for [`exec`].
enum Arg {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn int(value: u64) -> Arg {
    Arg::Int(i64::try_from(value).expect("small position"))
}

fn text(value: &str) -> Arg {
    Arg::Text(value.to_owned())
}

fn bytes(hash: &Hash32) -> Arg {
    Arg::Bytes(hash.to_vec())
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.clone()),
                Arg::Bytes(value) => query.bind(value.clone()),
            };
        }
        query
    }};
}

/// Runs one statement (`$1`, `$2`… placeholders on both backends) behind the ledger's back and
/// returns the number of rows it touched.
async fn exec(ledger: &Ledger, sql: &str, args: &[Arg]) -> u64 {
    let result = match ledger.db() {
        Db::Sqlite(pool) => bind_all!(sqlx::query(sql), args)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        Db::Postgres(pool) => bind_all!(sqlx::query(sql), args)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
    };
    result.unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Overwrites the row at `record.position` with every field of `record`, hashes included.
async fn overwrite_row(ledger: &Ledger, record: &EventRecord) {
    let touched = exec(
        ledger,
        "UPDATE ledger_events SET recorded_at = $2, aggregate_type = $3, aggregate_id = $4, \
         aggregate_version = $5, event_type = $6, event_version = $7, metadata = $8, \
         payload = $9, prev_hash = $10, hash = $11 WHERE position = $1",
        &[
            int(record.position),
            text(&record.recorded_at),
            text(&record.aggregate_type),
            text(&record.aggregate_id),
            int(record.aggregate_version),
            text(&record.event_type),
            text(&record.event_version),
            text(&record.metadata),
            text(&record.payload),
            bytes(&record.prev_hash),
            bytes(&record.hash),
        ],
    )
    .await;
    assert_eq!(touched, 1, "no row at position {}", record.position);
}

/// Inserts `record` as a new row.
async fn insert_row(ledger: &Ledger, record: &EventRecord) {
    exec(
        ledger,
        "INSERT INTO ledger_events (position, recorded_at, aggregate_type, aggregate_id, \
         aggregate_version, event_type, event_version, metadata, payload, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            int(record.position),
            text(&record.recorded_at),
            text(&record.aggregate_type),
            text(&record.aggregate_id),
            int(record.aggregate_version),
            text(&record.event_type),
            text(&record.event_version),
            text(&record.metadata),
            text(&record.payload),
            bytes(&record.prev_hash),
            bytes(&record.hash),
        ],
    )
    .await;
}

/// Deletes the rows at `positions`.
async fn delete_rows(ledger: &Ledger, positions: RangeInclusive<u64>) {
    exec(
        ledger,
        "DELETE FROM ledger_events WHERE position >= $1 AND position <= $2",
        &[int(*positions.start()), int(*positions.end())],
    )
    .await;
}

/// Moves every row at `from` or later up by `by` positions. Positions are a primary key, so
/// the rows are first parked far above the log, then brought down to their new place.
async fn shift_rows_up(ledger: &Ledger, from: u64, by: u64) {
    const PARK: u64 = 1_000_000;
    exec(
        ledger,
        "UPDATE ledger_events SET position = position + $1 WHERE position >= $2",
        &[int(PARK), int(from)],
    )
    .await;
    exec(
        ledger,
        "UPDATE ledger_events SET position = position - $1 WHERE position >= $2",
        &[int(PARK - by), int(PARK)],
    )
    .await;
}

/// Swaps the position values of two rows (their contents and hashes stay as they are).
async fn swap_rows(ledger: &Ledger, a: u64, b: u64) {
    const PARK: u64 = 1_000_000;
    let set = "UPDATE ledger_events SET position = $1 WHERE position = $2";
    exec(ledger, set, &[int(PARK), int(a)]).await;
    exec(ledger, set, &[int(a), int(b)]).await;
    exec(ledger, set, &[int(b), int(PARK)]).await;
}

/// The Merkle frontier over the hashes of `records`.
fn frontier_of(records: &[EventRecord]) -> Frontier {
    let mut frontier = Frontier::default();
    for record in records {
        frontier.push(&record.hash);
    }
    frontier
}

/// Makes the head row agree with the rows as they now are, as a careful attacker would.
async fn align_head_with_rows(given: &Given) {
    let rows = given.rows().await;
    let last = rows.last().expect("a non-empty log");
    exec(
        &given.ledger,
        "UPDATE ledger_head SET position = $1, hash = $2, frontier = $3 WHERE id = 1",
        &[
            int(last.position),
            bytes(&last.hash),
            Arg::Bytes(frontier_of(&rows).to_bytes()),
        ],
    )
    .await;
}

/// Replaces the note of the stored checkpoint of `tree_size`.
async fn replace_checkpoint_note(ledger: &Ledger, tree_size: u64, note: &str) {
    let touched = exec(
        ledger,
        "UPDATE ledger_checkpoints SET note = $1 WHERE tree_size = $2",
        &[text(note), int(tree_size)],
    )
    .await;
    assert_eq!(touched, 1, "no checkpoint of size {tree_size}");
}

/// The stored note of the checkpoint of `tree_size`.
async fn checkpoint_note(ledger: &Ledger, tree_size: u64) -> String {
    ledger
        .checkpoints()
        .await
        .expect("checkpoints")
        .into_iter()
        .find(|cp| cp.tree_size == tree_size)
        .expect("a checkpoint of that size")
        .note
}

/// A checkpoint note with its size line changed from `from` to `to` (signature untouched).
fn with_size_line(note: &str, from: u64, to: u64) -> String {
    let forged = note.replacen(&format!("\n{from}\n"), &format!("\n{to}\n"), 1);
    assert_ne!(forged, note, "the note has a size line {from}");
    forged
}

/// The attacker's knowledge of the format: chains `records` onto `prev` and gives each the
/// hash its fields now call for.
fn rehash(records: &mut [EventRecord], mut prev: Hash32) {
    for record in records {
        record.prev_hash = prev;
        record.hash = record.computed_hash();
        prev = record.hash;
    }
}

/// Raises the first reading's value: the attacker's edit of a payload (still canonical JSON).
fn doctored_payload(payload: &str) -> String {
    let doctored = payload.replacen("\"value_milli\":", "\"value_milli\":9", 1);
    assert_ne!(doctored, payload, "a probe payload carries a value");
    doctored
}

/// Puts another actor's e-mail in the metadata (still canonical JSON).
fn doctored_metadata(metadata: &str) -> String {
    let doctored = metadata.replacen("auditor@example.eu", "nobody@example.eu", 1);
    assert_ne!(doctored, metadata, "the metadata names an actor");
    doctored
}

/// Index of the event or elided line at `position`.
fn line_at(lines: &[String], position: u64) -> usize {
    lines
        .iter()
        .position(|line| {
            let value: Value = serde_json::from_str(line).expect("JSON line");
            matches!(value["type"].as_str(), Some("event" | "elided"))
                && value["position"].as_u64() == Some(position)
        })
        .unwrap_or_else(|| panic!("no line for position {position}"))
}

/// Swaps the event lines of two positions (nothing on them changes).
fn swap_lines(lines: &mut [String], a: u64, b: u64) {
    let (a, b) = (line_at(lines, a), line_at(lines, b));
    lines.swap(a, b);
}

/// Edits one line as JSON (payload and metadata are canonical JSON, which re-serializes to
/// the same bytes, so untouched fields keep hashing as before).
fn edit_line(line: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(line).expect("JSON line");
    change(&mut value);
    serde_json::to_string(&value).expect("serialize line")
}

fn hash_field(value: &Value, field: &str) -> Hash32 {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(value[field].as_str().expect("hex hash"), &mut hash).expect("hash");
    hash
}

/// A line's `prev_hash`.
fn prev_hash_of(line: &str) -> Hash32 {
    hash_field(&serde_json::from_str(line).expect("JSON line"), "prev_hash")
}

/// A line's `hash`.
fn hash_of(line: &str) -> Hash32 {
    hash_field(&serde_json::from_str(line).expect("JSON line"), "hash")
}

/// The event an export line describes, as the attacker reads it back to re-hash it.
fn record_of(line: &str) -> EventRecord {
    let value: Value = serde_json::from_str(line).expect("JSON line");
    let string = |field: &str| value[field].as_str().expect("text field").to_owned();
    let json = |field: &str| match value.get(field) {
        Some(embedded) => canonical_json(embedded).expect("canonical JSON"),
        None => string(&format!("{field}_text")),
    };
    EventRecord {
        position: value["position"].as_u64().expect("position"),
        recorded_at: string("recorded_at"),
        aggregate_type: string("aggregate_type"),
        aggregate_id: string("aggregate_id"),
        aggregate_version: value["aggregate_version"].as_u64().expect("version"),
        event_type: string("event_type"),
        event_version: string("event_version"),
        metadata: json("metadata"),
        payload: json("payload"),
        prev_hash: hash_field(&value, "prev_hash"),
        hash: hash_field(&value, "hash"),
    }
}

/// Sets a line's `prev_hash` and `hash`.
fn with_links(line: &str, prev_hash: &Hash32, hash: &Hash32) -> String {
    edit_line(line, |value| {
        value["prev_hash"] = Value::String(hex::encode(prev_hash));
        value["hash"] = Value::String(hex::encode(hash));
    })
}

/// Re-hashes every event line from `index` on so that it chains onto `prev`, leaving
/// positions, checkpoints and elided lines as they are.
fn rehash_lines_from(lines: &mut [String], index: usize, mut prev: Hash32) {
    for line in &mut lines[index..] {
        if !line.contains("\"type\":\"event\"") {
            continue;
        }
        let mut record = record_of(line);
        record.prev_hash = prev;
        record.hash = record.computed_hash();
        *line = with_links(line, &record.prev_hash, &record.hash);
        prev = record.hash;
    }
}

/// Index of the checkpoint line of `tree_size`.
fn checkpoint_line(lines: &[String], tree_size: u64) -> usize {
    lines
        .iter()
        .position(|line| {
            let value: Value = serde_json::from_str(line).expect("JSON line");
            value["type"] == "checkpoint"
                && value["note"]
                    .as_str()
                    .is_some_and(|note| note.contains(&format!("\n{tree_size}\n")))
        })
        .unwrap_or_else(|| panic!("no checkpoint line of size {tree_size}"))
}

/// Applies `change` to the note of a checkpoint line.
fn edit_note(line: &str, change: impl FnOnce(&str) -> String) -> String {
    edit_line(line, |value| {
        let note = change(value["note"].as_str().expect("note"));
        value["note"] = Value::String(note);
    })
}

/// When the auditor verifies the export offline with `keys`.
fn verify_lines(lines: &[String], keys: TrustedKeys) -> Report {
    verify_lines_with(lines, keys, &VerifyOptions::default())
}

/// When the auditor verifies the export offline with `keys` and `options`.
fn verify_lines_with(lines: &[String], keys: TrustedKeys, options: &VerifyOptions) -> Report {
    let mut file = lines.join("\n");
    file.push('\n');
    verify_export(file.as_bytes(), keys, options, |_, _| {}).expect("the file is read")
}

// ---------------------------------------------------------------------------------------------
// Tampering in the database.
// ---------------------------------------------------------------------------------------------

on_both_backends!(
    a_ledger_nobody_touched_verifies_with_no_break_and_every_checkpoint_confirmed,
    a_payload_changed_in_the_database_is_reported_as_modified_at_its_position,
    metadata_changed_in_the_database_is_reported_as_modified_at_its_position,
    an_event_rewritten_and_rehashed_in_the_database_is_reported_as_modified_at_the_rewritten_position,
    a_row_deleted_from_the_middle_is_reported_as_deleted_at_the_position_after_the_hole,
    an_event_inserted_in_the_middle_with_later_rows_shifted_is_reported_as_inserted_at_its_position,
    a_row_deleted_and_every_later_row_rehashed_is_reported_as_a_position_gap_at_the_position_after_the_gap,
    two_events_swapped_in_the_database_are_reported_as_reordered_at_the_first_swapped_position,
    events_deleted_from_the_end_after_a_checkpoint_covered_them_are_reported_as_truncated_at_the_first_missing_position,
    history_rewritten_and_rehashed_behind_a_checkpoint_is_reported_as_rolled_back_at_that_checkpoint_size,
    a_log_rolled_back_and_appended_to_again_is_reported_as_rolled_back_at_the_checkpoint_it_contradicts,
    a_checkpoint_whose_size_line_was_altered_in_the_database_is_reported_as_a_bad_signature_at_the_size_it_claims,
    a_checkpoint_re_signed_by_a_key_outside_the_trusted_set_is_reported_as_unknown_key_at_its_size,
    of_two_modified_payloads_the_earlier_position_is_reported,
    a_deletion_still_being_classified_wins_over_a_foreign_checkpoint_after_it,
    the_last_event_rewritten_and_rehashed_after_the_last_checkpoint_is_caught_by_the_head_row,
    a_tampered_head_frontier_is_reported_before_it_can_sign_a_wrong_root,
);

async fn a_ledger_nobody_touched_verifies_with_no_break_and_every_checkpoint_confirmed(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    let report = given.verify_store().await;
    // Then
    assert_intact(&report);
}

async fn a_payload_changed_in_the_database_is_reported_as_modified_at_its_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    let mut event = given.rows().await[MIDDLE as usize - 1].clone();
    event.payload = doctored_payload(&event.payload);
    overwrite_row(&given.ledger, &event).await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Modified, MIDDLE);
}

async fn metadata_changed_in_the_database_is_reported_as_modified_at_its_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    let mut event = given.rows().await[6].clone();
    event.metadata = doctored_metadata(&event.metadata);
    overwrite_row(&given.ledger, &event).await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Modified, 7);
}

async fn an_event_rewritten_and_rehashed_in_the_database_is_reported_as_modified_at_the_rewritten_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    let rows = given.rows().await;
    // When: the event's own hash is made to fit, but its successor still names the original.
    let mut event = rows[MIDDLE as usize - 1].clone();
    event.payload = doctored_payload(&event.payload);
    rehash(
        std::slice::from_mut(&mut event),
        rows[MIDDLE as usize - 2].hash,
    );
    overwrite_row(&given.ledger, &event).await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Modified, MIDDLE);
}

async fn a_row_deleted_from_the_middle_is_reported_as_deleted_at_the_position_after_the_hole(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    delete_rows(&given.ledger, MIDDLE..=MIDDLE).await;
    // Then: the break shows at the event after the hole, which points at a missing one.
    assert_break(&given.verify_store().await, BreakKind::Deleted, MIDDLE + 1);
}

async fn an_event_inserted_in_the_middle_with_later_rows_shifted_is_reported_as_inserted_at_its_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    let rows = given.rows().await;
    // When: rows from MIDDLE on move up one, and a forged event that links correctly onto
    // its predecessor takes their place; the head is brought in line.
    let mut forged = rows[MIDDLE as usize - 1].clone();
    forged.aggregate_id = "probe-forged".into();
    forged.aggregate_version = 1;
    forged.payload = doctored_payload(&forged.payload);
    rehash(
        std::slice::from_mut(&mut forged),
        rows[MIDDLE as usize - 2].hash,
    );
    shift_rows_up(&given.ledger, MIDDLE, 1).await;
    insert_row(&given.ledger, &forged).await;
    align_head_with_rows(&given).await;
    // Then: the forged event is named, and not counted among the verified ones.
    let report = given.verify_store().await;
    assert_break(&report, BreakKind::Inserted, MIDDLE);
    assert_eq!(report.events, MIDDLE - 1);
}

async fn a_row_deleted_and_every_later_row_rehashed_is_reported_as_a_position_gap_at_the_position_after_the_gap(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    let mut rows = given.rows().await;
    // When: the hashes are made to link across the hole; no position is renumbered.
    delete_rows(&given.ledger, MIDDLE..=MIDDLE).await;
    let mut tail = rows.split_off(MIDDLE as usize);
    rehash(&mut tail, rows[MIDDLE as usize - 2].hash);
    for row in &tail {
        overwrite_row(&given.ledger, row).await;
    }
    // Then
    assert_break(
        &given.verify_store().await,
        BreakKind::PositionGap,
        MIDDLE + 1,
    );
}

async fn two_events_swapped_in_the_database_are_reported_as_reordered_at_the_first_swapped_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    swap_rows(&given.ledger, MIDDLE, MIDDLE + 1).await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Reordered, MIDDLE);
}

async fn events_deleted_from_the_end_after_a_checkpoint_covered_them_are_reported_as_truncated_at_the_first_missing_position(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When: the last three events go, and the head row is made to agree, so that only the
    // checkpoint of size 30 still knows they existed.
    delete_rows(&given.ledger, EVENTS - 2..=EVENTS).await;
    align_head_with_rows(&given).await;
    // Then
    let report = given.verify_store().await;
    assert_break(&report, BreakKind::Truncated, EVENTS - 2);
    assert_eq!(report.checkpoints_verified, 2);
}

async fn history_rewritten_and_rehashed_behind_a_checkpoint_is_reported_as_rolled_back_at_that_checkpoint_size(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    let mut rows = given.rows().await;
    // When: from MIDDLE on, the history is rewritten and the whole tail re-hashed, head
    // included, so that every link is clean.
    let from = MIDDLE as usize - 1;
    rows[from].payload = doctored_payload(&rows[from].payload);
    let prev = rows[from - 1].hash;
    rehash(&mut rows[from..], prev);
    for row in &rows[from..] {
        overwrite_row(&given.ledger, row).await;
    }
    align_head_with_rows(&given).await;
    // Then: the checkpoint of size 10 still holds; the one of size 20 does not.
    let report = given.verify_store().await;
    assert_break(&report, BreakKind::RolledBack, 20);
    assert_eq!(report.checkpoints_verified, 1);
}

async fn a_log_rolled_back_and_appended_to_again_is_reported_as_rolled_back_at_the_checkpoint_it_contradicts(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When: the log is rolled back to position 25 (head included), and the ledger itself
    // appends five other events in place of the lost ones.
    delete_rows(&given.ledger, 26..=EVENTS).await;
    align_head_with_rows(&given).await;
    let events = (1..=5)
        .map(|version| NewEvent {
            aggregate_type: "probe".into(),
            aggregate_id: "probe-rewritten".into(),
            aggregate_version: version,
            event_type: "ReadingRecorded".into(),
            event_version: "2.0".into(),
            tenant_id: Some("tenant-a".into()),
            metadata: r#"{"tenant_id":"tenant-a"}"#.into(),
            payload: format!(
                r#"{{"ReadingRecorded":{{"label":"rewritten","reading_no":{version},"unit":"ms","value_milli":0}}}}"#
            ),
        })
        .collect();
    given
        .ledger
        .append(AppendBatch {
            events,
            snapshot: None,
        })
        .await
        .expect("append");
    // Then
    let report = given.verify_store().await;
    assert_break(&report, BreakKind::RolledBack, EVENTS);
    assert_eq!(report.checkpoints_verified, 2);
}

async fn a_checkpoint_whose_size_line_was_altered_in_the_database_is_reported_as_a_bad_signature_at_the_size_it_claims(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When
    let note = checkpoint_note(&given.ledger, 20).await;
    replace_checkpoint_note(&given.ledger, 20, &with_size_line(&note, 20, 21)).await;
    // Then
    assert_break(
        &given.verify_store().await,
        BreakKind::BadCheckpointSignature,
        21,
    );
}

/// A checkpoint of the first `size` stored events, correct in every field but signed by
/// `key`.
async fn checkpoint_signed_by(given: &Given, size: u64, key: &SigningKey) -> SignedCheckpoint {
    let rows = given.rows().await;
    let covered = &rows[..size as usize];
    SignedCheckpoint::sign(
        ORIGIN,
        size,
        &frontier_of(covered).root(),
        &covered.last().expect("covered events").hash,
        "2026-11-28T12:00:00.000000Z",
        key,
    )
    .expect("sign")
}

async fn a_checkpoint_re_signed_by_a_key_outside_the_trusted_set_is_reported_as_unknown_key_at_its_size(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When: the checkpoint of size 20 is replaced by one with the same content, signed by a
    // key of the same name that the auditor does not trust.
    let (foreign, _) = test_key(ORIGIN);
    let forged = checkpoint_signed_by(&given, 20, &foreign).await;
    replace_checkpoint_note(&given.ledger, 20, &forged.note).await;
    // Then
    let report = given.verify_store().await;
    assert_break(&report, BreakKind::UnknownKey, 20);
    assert_eq!(report.checkpoints_verified, 1);
}

async fn of_two_modified_payloads_the_earlier_position_is_reported(backend: Backend) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    let rows = given.rows().await;
    // When: the later one is edited first.
    for position in [22, 8] {
        let mut event = rows[position - 1].clone();
        event.payload = doctored_payload(&event.payload);
        overwrite_row(&given.ledger, &event).await;
    }
    // Then
    assert_break(&given.verify_store().await, BreakKind::Modified, 8);
}

async fn a_deletion_still_being_classified_wins_over_a_foreign_checkpoint_after_it(
    backend: Backend,
) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When: a row goes at MIDDLE, and the checkpoint of size 20 (which the verifier meets
    // while it still reads ahead to name the first break) is re-signed by a foreign key.
    let (foreign, _) = test_key(ORIGIN);
    let forged = checkpoint_signed_by(&given, 20, &foreign).await;
    replace_checkpoint_note(&given.ledger, 20, &forged.note).await;
    delete_rows(&given.ledger, MIDDLE..=MIDDLE).await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Deleted, MIDDLE + 1);
}

// ---------------------------------------------------------------------------------------------
// Tampering in an export file (the store under it is SQLite; the file is the same either way).
// ---------------------------------------------------------------------------------------------

/// Given a checkpointed ledger and its full export.
async fn given_an_export() -> (Given, Vec<String>) {
    let given = given_a_checkpointed_ledger(Backend::Sqlite).await;
    let lines = given.export(ExportOptions::default()).await;
    (given, lines)
}

/// Given a checkpointed ledger and an export for one tenant.
async fn given_a_tenant_export(tenant: &str) -> (Given, Vec<String>) {
    let given = given_a_checkpointed_ledger(Backend::Sqlite).await;
    let lines = given
        .export(ExportOptions {
            since: None,
            tenant: Some(tenant.to_owned()),
        })
        .await;
    (given, lines)
}

#[tokio::test]
async fn an_export_nobody_touched_verifies_offline_with_no_break_and_every_checkpoint_confirmed() {
    // Given
    let (given, lines) = given_an_export().await;
    // When
    let report = verify_lines(&lines, given.trusted());
    // Then
    assert_intact(&report);
    assert_eq!(report.elided, 0);
}

#[tokio::test]
async fn a_payload_changed_in_an_export_is_reported_as_modified_at_its_position() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    let index = line_at(&lines, MIDDLE);
    lines[index] = edit_line(&lines[index], |value| {
        value["payload"]["ReadingRecorded"]["value_milli"] = Value::from(9_000);
    });
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Modified,
        MIDDLE,
    );
}

#[tokio::test]
async fn an_event_rewritten_and_rehashed_in_an_export_is_reported_as_modified_at_the_rewritten_position(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    let index = line_at(&lines, MIDDLE);
    let mut event = record_of(&lines[index]);
    event.payload = doctored_payload(&event.payload);
    event.hash = event.computed_hash();
    lines[index] = edit_line(&lines[index], |value| {
        value["payload"] = serde_json::from_str(&event.payload).expect("payload");
        value["hash"] = Value::String(hex::encode(event.hash));
    });
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Modified,
        MIDDLE,
    );
}

#[tokio::test]
async fn two_event_lines_swapped_in_an_export_are_reported_as_reordered_at_the_first_line_out_of_place(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    swap_lines(&mut lines, MIDDLE, MIDDLE + 1);
    // Then: the line for MIDDLE + 1 stands where MIDDLE belongs.
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Reordered,
        MIDDLE + 1,
    );
}

#[tokio::test]
async fn an_event_line_removed_from_an_export_is_reported_as_deleted_at_the_position_after_the_hole(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    lines.remove(line_at(&lines, MIDDLE));
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Deleted,
        MIDDLE + 1,
    );
}

#[tokio::test]
async fn an_event_line_removed_and_every_later_event_rehashed_is_reported_as_a_position_gap_at_the_position_after_the_gap(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: the hashes are made to link across the hole; no position is renumbered.
    let index = line_at(&lines, MIDDLE);
    let before = hash_of(&lines[index - 1]);
    lines.remove(index);
    rehash_lines_from(&mut lines, index, before);
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::PositionGap,
        MIDDLE + 1,
    );
}

#[tokio::test]
async fn an_export_cut_short_is_reported_as_truncated_at_the_first_missing_position() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: everything after event 27 goes, checkpoint 30 included.
    lines.truncate(line_at(&lines, EVENTS - 3) + 1);
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Truncated,
        EVENTS - 2,
    );
}

#[tokio::test]
async fn an_export_cut_short_with_its_header_lowered_is_still_reported_truncated_by_the_checkpoint_that_covers_the_cut(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: events 28 to 30 go and the header announces 27, but the checkpoint of size 30
    // is left in the file.
    let first_cut = line_at(&lines, EVENTS - 2);
    let last_cut = line_at(&lines, EVENTS);
    lines.drain(first_cut..=last_cut);
    lines[0] = edit_line(&lines[0], |header| {
        header["up_to"] = Value::from(EVENTS - 3)
    });
    assert!(lines[first_cut].contains("\"type\":\"checkpoint\""));
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Truncated,
        EVENTS - 2,
    );
}

#[tokio::test]
async fn a_checkpoint_whose_size_line_was_altered_in_an_export_is_reported_as_a_bad_signature_at_the_size_it_claims(
) {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    let index = checkpoint_line(&lines, 20);
    lines[index] = edit_note(&lines[index], |note| with_size_line(note, 20, 19));
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::BadCheckpointSignature,
        19,
    );
}

#[tokio::test]
async fn an_export_verified_with_the_wrong_public_key_file_reports_unknown_key_at_the_first_checkpoint(
) {
    // Given
    let (_given, lines) = given_an_export().await;
    let (other, _) = test_key(ORIGIN);
    let wrong_file = format!("# not the ledger's key\n{}\n", other.public_line());
    // When
    let report = verify_lines(
        &lines,
        TrustedKeys::parse(&wrong_file, "keys.txt").expect("keys file"),
    );
    // Then
    assert_break(&report, BreakKind::UnknownKey, CHECKPOINTS[0]);
}

#[tokio::test]
async fn a_swap_still_being_classified_in_an_export_wins_over_an_altered_checkpoint_after_it() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    swap_lines(&mut lines, MIDDLE, MIDDLE + 1);
    let index = checkpoint_line(&lines, 20);
    lines[index] = edit_note(&lines[index], |note| with_size_line(note, 20, 21));
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Reordered,
        MIDDLE + 1,
    );
}

#[tokio::test]
async fn a_tenant_export_verifies_with_the_other_tenants_events_elided() {
    // Given
    let (given, lines) = given_a_tenant_export("tenant-a").await;
    // When
    let report = verify_lines(&lines, given.trusted());
    // Then
    assert_intact(&report);
    assert_eq!(report.elided, EVENTS / 3);
}

#[tokio::test]
async fn a_hash_changed_on_an_elided_line_is_reported_as_modified_by_the_next_events_link() {
    // Given: in a tenant-b export, 14 is elided and 15 is the tenant's own event.
    let (given, mut lines) = given_a_tenant_export("tenant-b").await;
    let index = line_at(&lines, MIDDLE);
    assert!(lines[index].contains("\"type\":\"elided\""));
    // When
    lines[index] = edit_line(&lines[index], |value| {
        value["hash"] = Value::String(hex::encode([7u8; 32]));
    });
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Modified,
        MIDDLE,
    );
}

#[tokio::test]
async fn an_elided_hash_changed_with_its_successors_link_is_reported_as_rolled_back_by_the_checkpoint_root(
) {
    // Given: in a tenant-b export, 13 and 14 are both elided.
    let (given, mut lines) = given_a_tenant_export("tenant-b").await;
    let (thirteen, fourteen) = (line_at(&lines, 13), line_at(&lines, 14));
    assert!(lines[thirteen].contains("\"type\":\"elided\""));
    assert!(lines[fourteen].contains("\"type\":\"elided\""));
    // When: the links stay clean; only the Merkle root can tell.
    let forged = [7u8; 32];
    let prev = prev_hash_of(&lines[thirteen]);
    let kept = hash_of(&lines[fourteen]);
    lines[thirteen] = with_links(&lines[thirteen], &prev, &forged);
    lines[fourteen] = with_links(&lines[fourteen], &forged, &kept);
    // Then: the checkpoint of size 10 holds, the one of size 20 does not.
    let report = verify_lines(&lines, given.trusted());
    assert_break(&report, BreakKind::RolledBack, 20);
    assert_eq!(report.checkpoints_verified, 1);
}

#[tokio::test]
async fn an_elided_hash_changed_just_before_a_checkpoint_is_reported_as_rolled_back_at_that_checkpoint(
) {
    // Given: in a tenant-b export, 10 is elided and the checkpoint of size 10 follows it.
    let (given, mut lines) = given_a_tenant_export("tenant-b").await;
    let index = line_at(&lines, 10);
    assert!(lines[index].contains("\"type\":\"elided\""));
    // When
    lines[index] = edit_line(&lines[index], |value| {
        value["hash"] = Value::String(hex::encode([7u8; 32]));
    });
    // Then
    let report = verify_lines(&lines, given.trusted());
    assert_break(&report, BreakKind::RolledBack, 10);
    assert_eq!(report.checkpoints_verified, 0);
}

async fn the_last_event_rewritten_and_rehashed_after_the_last_checkpoint_is_caught_by_the_head_row(
    backend: Backend,
) {
    // Given two events after the last checkpoint
    let given = given_a_checkpointed_ledger(backend).await;
    let cqrs = probe_cqrs(&given.ledger);
    for n in 0..2 {
        cqrs.execute_with_metadata(
            "late",
            record(1, &format!("late {n}")),
            metadata_for("tenant-a").to_map(),
        )
        .await
        .expect("command");
    }
    let rows = given.rows().await;
    let last = rows.len() as u64;
    // When the last one is rewritten and re-hashed (no successor, no checkpoint covers it)
    let mut event = rows[last as usize - 1].clone();
    event.payload = doctored_payload(&event.payload);
    rehash(
        std::slice::from_mut(&mut event),
        rows[last as usize - 2].hash,
    );
    overwrite_row(&given.ledger, &event).await;
    // Then the head row, which recorded the original hash, reveals it
    assert_break(&given.verify_store().await, BreakKind::Modified, last);
}

async fn a_tampered_head_frontier_is_reported_before_it_can_sign_a_wrong_root(backend: Backend) {
    // Given
    let given = given_a_checkpointed_ledger(backend).await;
    // When the stored frontier is replaced by that of a different history of the same size
    let mut rows = given.rows().await;
    rows[0].payload = doctored_payload(&rows[0].payload);
    rehash(&mut rows, [0; 32]);
    exec(
        &given.ledger,
        "UPDATE ledger_head SET frontier = $1 WHERE id = 1",
        &[Arg::Bytes(frontier_of(&rows).to_bytes())],
    )
    .await;
    // Then
    assert_break(&given.verify_store().await, BreakKind::Malformed, EVENTS);
}

// ---------------------------------------------------------------------------------------------
// What a strict verifier refuses although every hash still links (issue: exports that lie).
// ---------------------------------------------------------------------------------------------

/// The elided line the exporter would write for the event on `line`.
fn elided_from(line: &str) -> String {
    let value: Value = serde_json::from_str(line).expect("JSON line");
    format!(
        r#"{{"type":"elided","position":{},"prev_hash":{},"hash":{}}}"#,
        value["position"], value["prev_hash"], value["hash"]
    )
}

/// Drops every checkpoint line.
fn without_checkpoints(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| !line.contains("\"type\":\"checkpoint\""))
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_event_line_replaced_by_an_elided_line_in_a_whole_export_is_a_break_at_its_position() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: the content of MIDDLE is withheld from an export that claims to be the whole log.
    let index = line_at(&lines, MIDDLE);
    lines[index] = elided_from(&lines[index]);
    // Then
    let report = verify_lines(&lines, given.trusted());
    assert_break(&report, BreakKind::ElidedInWholeExport, MIDDLE);
    assert_eq!(report.elided, 0);
}

#[tokio::test]
async fn an_event_line_with_an_extra_unhashed_member_is_malformed_at_its_position() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: a member the hash does not cover is added, as if it were part of the event.
    let index = line_at(&lines, MIDDLE);
    lines[index] = lines[index].replacen("{", r#"{"approved_by":"CFO","#, 1);
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::Malformed,
        MIDDLE,
    );
}

#[tokio::test]
async fn another_workspaces_full_event_in_a_tenant_export_is_a_foreign_event_at_its_position() {
    // Given: position 15 is tenant-b's, elided in tenant-a's export.
    let (given, mut lines) = given_a_tenant_export("tenant-a").await;
    let whole = given.export(ExportOptions::default()).await;
    let index = line_at(&lines, MIDDLE + 1);
    assert!(lines[index].contains("\"type\":\"elided\""));
    // When: its full line takes the elided line's place; every hash still links.
    lines[index] = whole[line_at(&whole, MIDDLE + 1)].clone();
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::ForeignEvent,
        MIDDLE + 1,
    );
}

#[tokio::test]
async fn a_tenant_export_whose_header_names_another_tenant_is_a_foreign_event_at_its_first_event() {
    // Given
    let (given, mut lines) = given_a_tenant_export("tenant-a").await;
    // When
    lines[0] = lines[0].replacen("\"tenant-a\"", "\"tenant-b\"", 1);
    // Then: event 1 is tenant-a's, by its hashed metadata.
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::ForeignEvent,
        1,
    );
}

#[tokio::test]
async fn an_export_with_every_checkpoint_removed_is_an_unsigned_tail_from_its_first_position() {
    // Given
    let (given, lines) = given_an_export().await;
    // When: the chain is left as it was; only the signatures go.
    let report = verify_lines(&without_checkpoints(&lines), given.trusted());
    // Then: the keys file protects nothing, and the report says so.
    assert_break(&report, BreakKind::UnsignedTail, 1);
    assert!(report.signed.is_empty());
    assert_eq!(
        report.unsigned,
        Some(PositionRange {
            from: 1,
            to: EVENTS
        })
    );
}

#[tokio::test]
async fn events_after_the_last_checkpoint_are_an_unsigned_tail_unless_the_auditor_allows_it() {
    // Given two events after the last checkpoint
    let given = given_a_checkpointed_ledger(Backend::Sqlite).await;
    let cqrs = probe_cqrs(&given.ledger);
    for n in 0..2 {
        cqrs.execute_with_metadata(
            "late",
            record(1, &format!("late {n}")),
            metadata_for("tenant-a").to_map(),
        )
        .await
        .expect("command");
    }
    let lines = given.export(ExportOptions::default()).await;
    // When
    let strict = verify_lines(&lines, given.trusted());
    let allowed = verify_lines_with(
        &lines,
        given.trusted(),
        &VerifyOptions {
            allow_unsigned_tail: true,
            ..VerifyOptions::default()
        },
    );
    // Then
    assert_break(&strict, BreakKind::UnsignedTail, EVENTS + 1);
    assert_eq!(allowed.first_break, None);
    assert_eq!(
        allowed.unsigned,
        Some(PositionRange {
            from: EVENTS + 1,
            to: EVENTS + 2
        })
    );
    assert_eq!(allowed.signed[0].positions.to, EVENTS);
}

#[tokio::test]
async fn a_tenant_export_with_its_own_event_elided_verifies_but_never_claims_completeness() {
    // Given: MIDDLE is tenant-a's own event.
    let (given, mut lines) = given_a_tenant_export("tenant-a").await;
    let index = line_at(&lines, MIDDLE);
    assert!(lines[index].contains("\"type\":\"event\""));
    // When: it is turned into an elided line, which no verifier can tell from another
    // workspace's (ADR 0005).
    lines[index] = elided_from(&lines[index]);
    // Then: the chain is intact, and the report does not claim the export is complete.
    let report = verify_lines(&lines, given.trusted());
    assert_eq!(report.first_break, None);
    assert_eq!(
        report.tenant_completeness(),
        Some(TenantCompleteness::NotProven {
            elided: EVENTS / 3 + 1
        })
    );
}

#[tokio::test]
async fn a_tenant_export_without_elided_lines_proves_it_holds_all_of_its_tenants_events() {
    // Given: a ledger of one tenant's events only.
    let db = TestDb::create(Backend::Sqlite).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, trusted) = test_key(ORIGIN);
    let cqrs = probe_cqrs(&ledger);
    for n in 0..5 {
        cqrs.execute_with_metadata(
            "only",
            record(1, &format!("only {n}")),
            metadata_for("tenant-a").to_map(),
        )
        .await
        .expect("command");
    }
    sign_checkpoint(&ledger, &key, ORIGIN)
        .await
        .expect("checkpoint");
    let mut file = Vec::new();
    let options = ExportOptions {
        since: None,
        tenant: Some("tenant-a".into()),
    };
    export(&ledger, &mut file, &options, |_, _| {})
        .await
        .expect("export");
    // When
    let report = verify_export(
        file.as_slice(),
        trusted,
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("read");
    // Then
    assert_eq!(report.first_break, None);
    assert_eq!(
        report.tenant_completeness(),
        Some(TenantCompleteness::Proven)
    );
}

#[tokio::test]
async fn a_forged_event_inserted_in_an_export_is_inserted_at_its_own_position_and_not_counted() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: a forged event, hashed onto MIDDLE - 1 with the attacker's full knowledge of the
    // format, is put before the genuine MIDDLE.
    let index = line_at(&lines, MIDDLE);
    let mut forged = record_of(&lines[index]);
    forged.payload = doctored_payload(&forged.payload);
    forged.hash = forged.computed_hash();
    let forged_line = edit_line(&lines[index], |value| {
        value["payload"] = serde_json::from_str(&forged.payload).expect("payload");
        value["hash"] = Value::String(hex::encode(forged.hash));
    });
    lines.insert(index, forged_line);
    // Then
    let report = verify_lines(&lines, given.trusted());
    assert_break(&report, BreakKind::Inserted, MIDDLE);
    assert_eq!(report.events, MIDDLE - 1);
}

#[tokio::test]
async fn a_valid_checkpoint_repeated_later_in_an_export_is_misplaced_where_it_stands() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When: the checkpoint of size 10 is copied after event 25.
    let copy = lines[checkpoint_line(&lines, 10)].clone();
    lines.insert(line_at(&lines, 25) + 1, copy);
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::CheckpointMisplaced,
        25,
    );
}

#[tokio::test]
async fn an_export_whose_header_announces_fewer_events_is_a_header_mismatch_at_the_first_beyond() {
    // Given
    let (given, mut lines) = given_an_export().await;
    // When
    lines[0] = edit_line(&lines[0], |header| {
        header["up_to"] = Value::from(EVENTS - 1)
    });
    // Then
    assert_break(
        &verify_lines(&lines, given.trusted()),
        BreakKind::HeaderMismatch,
        EVENTS,
    );
}

#[tokio::test]
async fn invalid_utf8_inside_an_event_line_is_a_malformed_break_at_its_position() {
    // Given
    let (given, lines) = given_an_export().await;
    let mut file = Vec::new();
    for line in &lines {
        file.extend_from_slice(line.as_bytes());
        file.push(b'\n');
    }
    // When: one byte of MIDDLE's payload label is not UTF-8.
    let at = file
        .windows(b"command 14".len())
        .position(|w| w == b"command 14")
        .expect("event 14's label");
    file[at] = 0xff;
    // Then
    let report = verify_export(
        file.as_slice(),
        given.trusted(),
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("the file is read");
    assert_break(&report, BreakKind::Malformed, MIDDLE);
}

#[tokio::test]
async fn a_line_longer_than_the_maximum_is_a_line_too_long_break_at_its_position() {
    // Given
    let (given, lines) = given_an_export().await;
    let longest_before = lines[..line_at(&lines, MIDDLE)]
        .iter()
        .map(String::len)
        .max()
        .expect("lines");
    // When: event MIDDLE's line is made longer than every line before it, and the limit
    // sits between the two.
    let mut longer = lines.clone();
    let index = line_at(&longer, MIDDLE);
    longer[index] = longer[index].replacen("{", &format!("{}{{", " ".repeat(longest_before)), 1);
    let options = VerifyOptions {
        max_line_bytes: longest_before,
        ..VerifyOptions::default()
    };
    // Then
    let report = verify_lines_with(&longer, given.trusted(), &options);
    assert_break(&report, BreakKind::LineTooLong, MIDDLE);
    assert_eq!(
        report.first_break.and_then(|b| b.line),
        Some(index as u64 + 1)
    );
}

#[tokio::test]
async fn a_checkpoint_stored_twice_is_one_checkpoint_in_the_store_and_in_its_export() {
    // Given: the same note stored again, as two processes signing one head in the same
    // microsecond would.
    let given = given_a_checkpointed_ledger(Backend::Sqlite).await;
    let note = checkpoint_note(&given.ledger, 20).await;
    given
        .ledger
        .save_checkpoint(20, &note, "2026-11-28T12:00:00.000000Z")
        .await
        .expect("store the copy");
    // When
    let live = given.verify_store().await;
    let exported = verify_lines(
        &given.export(ExportOptions::default()).await,
        given.trusted(),
    );
    // Then: an honest ledger's export never reads as a repeated checkpoint.
    assert_intact(&live);
    assert_intact(&exported);
}
