//! Export of the ledger as JSON Lines for auditors (this module: the writers and the
//! exporter), and offline verification of an export (`parse`: reading one line strictly;
//! `offline`: reading a file in blocks on every core and walking the chain).
//!
//! The format is specified in `docs/ledger-format.md` ("Export"). Payload and metadata are
//! embedded verbatim: the stored canonical JSON text appears unchanged inside the line, so a
//! verifier hashes exactly the bytes the ledger hashed, without re-serializing anything.

use std::borrow::Cow;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::encoding::{EventRecord, Hash32, GENESIS_PREV_HASH};
use crate::merkle::Frontier;
use crate::store::Ledger;
use crate::LedgerError;

mod offline;
mod parse;

pub use offline::{verify_export, VerifyOptions, DEFAULT_MAX_LINE_BYTES};

/// The `format` value of an export's header line.
pub const EXPORT_FORMAT: &str = "dezky-ledger-export";
/// The export format version this code writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// Events read from the store per query while exporting or verifying.
pub const READ_BATCH_EVENTS: usize = 5_000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// First position to export (1 or absent for the whole log).
    pub since: Option<u64>,
    /// Export only this tenant's events in full; other events appear as `elided` lines
    /// (position and hashes only), so the chain and Merkle roots still verify.
    pub tenant: Option<String>,
}

/// Errors while exporting or reading an export. What an export *says* is never an error:
/// anything wrong with its content is a break in the verifier's report.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing or reading the file failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportSummary {
    /// Event lines written in full.
    pub events: u64,
    /// Event lines written as `elided`.
    pub elided: u64,
    /// Checkpoint lines written.
    pub checkpoints: u64,
    /// Last position exported.
    pub up_to: u64,
    /// The largest checkpoint size among the exported positions (the `after` position when
    /// none): positions after it are unsigned, which a strict verifier reports as a break.
    pub signed_to: u64,
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    #[serde(rename = "type")]
    kind: Cow<'a, str>,
    format: Cow<'a, str>,
    version: u32,
    after_position: u64,
    anchor_hash: Cow<'a, str>,
    frontier: Cow<'a, str>,
    up_to: u64,
    tenant: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct EventLineOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    position: u64,
    recorded_at: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    aggregate_version: u64,
    event_type: &'a str,
    event_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_text: Option<&'a str>,
    prev_hash: String,
    hash: String,
}

#[derive(Serialize)]
struct ElidedLineOut {
    #[serde(rename = "type")]
    kind: &'static str,
    position: u64,
    prev_hash: String,
    hash: String,
}

#[derive(Serialize)]
struct CheckpointLineOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    note: &'a str,
}

/// Returns the text as a raw JSON value when it is exactly one JSON value with no
/// surrounding whitespace, so that embedding it keeps its bytes.
fn as_raw(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text)
        .ok()
        .filter(|raw| raw.get().len() == text.len())
}

/// The tenant an event belongs to: the string member `tenant_id` of its stored metadata,
/// which must be a JSON object with that member at most once; anything else belongs to no
/// tenant. The exporter and the verifier both decide tenancy here, from the hashed bytes,
/// never from the index column, so editing the column cannot move an event out of a tenant's
/// export unnoticed.
pub fn tenant_of(metadata: &str) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Metadata<'a> {
        // `dezky_domain::metadata::KEY_TENANT_ID` (serde needs a literal; a test ties them).
        #[serde(borrow, rename = "tenant_id")]
        tenant: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Metadata<'_>>(metadata)
        .ok()
        .and_then(|m| m.tenant)
}

/// Writes an export's header line, exactly as [`export`] does. Public so that tools (the
/// `dezky bench verify` generator) produce exports in the one true format.
pub fn write_header(
    out: &mut impl Write,
    after_position: u64,
    anchor_hash: &Hash32,
    frontier: &Frontier,
    up_to: u64,
    tenant: Option<&str>,
) -> Result<(), ExportError> {
    write_json_line(
        out,
        &HeaderLine {
            kind: "header".into(),
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            after_position,
            anchor_hash: hex::encode(anchor_hash).into(),
            frontier: hex::encode(frontier.to_bytes()).into(),
            up_to,
            tenant: tenant.map(Cow::Borrowed),
        },
    )
}

/// Writes one checkpoint line, exactly as [`export`] does.
pub fn write_checkpoint(out: &mut (impl Write + ?Sized), note: &str) -> Result<(), ExportError> {
    write_json_line(
        out,
        &CheckpointLineOut {
            kind: "checkpoint",
            note,
        },
    )
}

/// Writes one event line in full, exactly as [`export`] does.
pub fn write_event(out: &mut impl Write, record: &EventRecord) -> Result<(), ExportError> {
    let metadata = as_raw(&record.metadata);
    let payload = as_raw(&record.payload);
    let line = EventLineOut {
        kind: "event",
        position: record.position,
        recorded_at: &record.recorded_at,
        aggregate_type: &record.aggregate_type,
        aggregate_id: &record.aggregate_id,
        aggregate_version: record.aggregate_version,
        event_type: &record.event_type,
        event_version: &record.event_version,
        metadata,
        metadata_text: metadata.is_none().then_some(record.metadata.as_str()),
        payload,
        payload_text: payload.is_none().then_some(record.payload.as_str()),
        prev_hash: hex::encode(record.prev_hash),
        hash: hex::encode(record.hash),
    };
    serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes one elided line (position and hashes only), exactly as [`export`] does for another
/// tenant's event.
pub fn write_elided(
    out: &mut impl Write,
    position: u64,
    prev_hash: &Hash32,
    hash: &Hash32,
) -> Result<(), ExportError> {
    write_json_line(
        out,
        &ElidedLineOut {
            kind: "elided",
            position,
            prev_hash: hex::encode(prev_hash),
            hash: hex::encode(hash),
        },
    )
}

fn write_json_line(
    out: &mut (impl Write + ?Sized),
    value: &impl Serialize,
) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The Merkle frontier and hash at `position`, folded from the stored hashes.
pub async fn frontier_at(
    ledger: &Ledger,
    position: u64,
) -> Result<(Frontier, Hash32), LedgerError> {
    let mut frontier = Frontier::default();
    let mut last = GENESIS_PREV_HASH;
    let mut after = 0;
    while after < position {
        let hashes = ledger
            .read_hashes(after, position, READ_BATCH_EVENTS * 4)
            .await?;
        let Some(&(end, _)) = hashes.last() else {
            break;
        };
        for (_, hash) in &hashes {
            frontier.push(hash);
            last = *hash;
        }
        after = end;
    }
    Ok((frontier, last))
}

/// Streams an export of the ledger to `out` (constant memory), calling `progress` with the
/// last position written and the final position.
pub async fn export(
    ledger: &Ledger,
    out: &mut impl Write,
    options: &ExportOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportSummary, ExportError> {
    // Checkpoints first, then the head: every checkpoint read this way was made from a head
    // no later than the one read next, so one beyond it is real evidence of truncation and
    // never a checkpoint signed while the export ran.
    let mut checkpoints = ledger.checkpoints().await?;
    // The order verifiers require (§6): by size, equal sizes by note text (their `time`).
    checkpoints.sort_by(|a, b| (a.tree_size, &a.note).cmp(&(b.tree_size, &b.note)));
    // The same note stored twice (two processes signing one head in the same microsecond)
    // is one checkpoint; written twice it would read as a repeated one.
    checkpoints.dedup_by(|a, b| a.note == b.note);
    let up_to = ledger.head().await?.position;
    let after = options.since.unwrap_or(1).saturating_sub(1).min(up_to);
    let (frontier, anchor) = frontier_at(ledger, after).await?;
    write_header(
        out,
        after,
        &anchor,
        &frontier,
        up_to,
        options.tenant.as_deref(),
    )?;
    let mut summary = ExportSummary {
        up_to,
        signed_to: after,
        ..ExportSummary::default()
    };
    let mut checkpoints = checkpoints.iter().peekable();
    let mut emit_up_to = |out: &mut dyn Write, size: u64, summary: &mut ExportSummary| {
        while let Some(cp) = checkpoints.next_if(|cp| cp.tree_size <= size) {
            write_checkpoint(out, &cp.note)?;
            summary.checkpoints += 1;
            if cp.tree_size <= summary.up_to {
                summary.signed_to = summary.signed_to.max(cp.tree_size);
            }
        }
        Ok::<(), ExportError>(())
    };
    emit_up_to(out, after, &mut summary)?;
    let mut position = after;
    while position < up_to {
        let batch = ledger
            .read_batch(position, up_to, READ_BATCH_EVENTS)
            .await?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        for record in &batch {
            let full = match &options.tenant {
                None => true,
                Some(tenant) => tenant_of(&record.metadata).as_deref() == Some(tenant),
            };
            if full {
                write_event(out, record)?;
                summary.events += 1;
            } else {
                write_elided(out, record.position, &record.prev_hash, &record.hash)?;
                summary.elided += 1;
            }
            emit_up_to(out, record.position, &mut summary)?;
        }
        progress(position, up_to);
    }
    // Checkpoints beyond the last event are exported too: they are evidence of truncation.
    emit_up_to(out, u64::MAX, &mut summary)?;
    out.flush()?;
    Ok(summary)
}
