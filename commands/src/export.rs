//! Export of the ledger as JSON Lines for auditors, and offline verification of an export.
//!
//! The format is specified in `docs/ledger-format.md` ("Export"). Payload and metadata are
//! embedded verbatim: the stored canonical JSON text appears unchanged inside the line, so a
//! verifier hashes exactly the bytes the ledger hashed, without re-serializing anything.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::encoding::{event_hash, EventFields, EventRecord, Hash32, GENESIS_PREV_HASH};
use crate::keys::TrustedKeys;
use crate::merkle::Frontier;
use crate::store::Ledger;
use crate::verify::{BreakKind, ChainVerifier, Link, Report, Start};
use crate::LedgerError;

/// The `format` value of an export's header line.
pub const EXPORT_FORMAT: &str = "dezky-ledger-export";
/// The export format version this code writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// Events read from the store per query while exporting or verifying.
pub const READ_BATCH_EVENTS: usize = 5_000;
/// Lines parsed and hashed per parallel chunk while verifying an export.
const VERIFY_CHUNK_LINES: usize = 8_192;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// First position to export (1 or absent for the whole log).
    pub since: Option<u64>,
    /// Export only this tenant's events in full; other events appear as `elided` lines
    /// (position and hashes only), so the chain and Merkle roots still verify.
    pub tenant: Option<String>,
}

/// Errors while exporting or reading an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing or reading the file failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not an export this version can read.
    #[error("not a dezky ledger export: {0}")]
    NotAnExport(String),
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
}

#[derive(Serialize, Deserialize)]
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

/// Every field any line kind may carry; one flat struct parses fastest and lets
/// `RawValue` borrow the exact payload bytes (serde's tagged enums cannot).
#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    position: Option<u64>,
    #[serde(borrow)]
    recorded_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aggregate_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aggregate_id: Option<Cow<'a, str>>,
    aggregate_version: Option<u64>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata_text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    payload_text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prev_hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hash: Option<Cow<'a, str>>,
    note: Option<String>,
}

/// Returns the text as a raw JSON value when it is exactly one JSON value with no
/// surrounding whitespace, so that embedding it keeps its bytes.
fn as_raw(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text)
        .ok()
        .filter(|raw| raw.get().len() == text.len())
}

fn tenant_of(metadata: &str) -> Option<String> {
    // The hashed metadata decides tenancy, not the index column, so that editing the column
    // cannot move an event out of a tenant's export unnoticed.
    let value: serde_json::Value = serde_json::from_str(metadata).ok()?;
    value
        .get(dezky_domain::metadata::KEY_TENANT_ID)?
        .as_str()
        .map(str::to_owned)
}

fn write_event(out: &mut impl Write, record: &EventRecord) -> Result<(), ExportError> {
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
    let checkpoints = ledger.checkpoints().await?;
    let up_to = ledger.head().await?.position;
    let after = options.since.unwrap_or(1).saturating_sub(1).min(up_to);
    let (frontier, anchor) = frontier_at(ledger, after).await?;
    write_json_line(
        out,
        &HeaderLine {
            kind: "header".into(),
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            after_position: after,
            anchor_hash: hex::encode(anchor).into(),
            frontier: hex::encode(frontier.to_bytes()).into(),
            up_to,
            tenant: options.tenant.as_deref().map(Cow::Borrowed),
        },
    )?;
    let mut summary = ExportSummary {
        up_to,
        ..ExportSummary::default()
    };
    let mut checkpoints = checkpoints.iter().peekable();
    let mut emit_up_to = |out: &mut dyn Write, size: u64, summary: &mut ExportSummary| {
        while let Some(cp) = checkpoints.next_if(|cp| cp.tree_size <= size) {
            write_json_line(
                out,
                &CheckpointLineOut {
                    kind: "checkpoint",
                    note: &cp.note,
                },
            )?;
            summary.checkpoints += 1;
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
                Some(tenant) => tenant_of(&record.metadata).as_deref() == Some(tenant.as_str()),
            };
            if full {
                write_event(out, record)?;
                summary.events += 1;
            } else {
                write_json_line(
                    out,
                    &ElidedLineOut {
                        kind: "elided",
                        position: record.position,
                        prev_hash: hex::encode(record.prev_hash),
                        hash: hex::encode(record.hash),
                    },
                )?;
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

enum Parsed {
    Event(Link),
    Elided(Link),
    Checkpoint(String),
    Header,
    Bad(String),
}

fn parse_hash(text: Option<&str>) -> Option<Hash32> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text?, &mut hash).ok()?;
    Some(hash)
}

fn parse_line(line: &str) -> Parsed {
    let parsed: LineIn<'_> = match serde_json::from_str(line) {
        Ok(parsed) => parsed,
        Err(error) => return Parsed::Bad(format!("not a JSON object ({error})")),
    };
    match parsed.kind.as_ref() {
        "event" => {
            let (Some(position), Some(prev_hash), Some(hash)) = (
                parsed.position,
                parse_hash(parsed.prev_hash.as_deref()),
                parse_hash(parsed.hash.as_deref()),
            ) else {
                return Parsed::Bad("an event line lacks its position or hashes".into());
            };
            let metadata = parsed
                .metadata
                .map(RawValue::get)
                .or(parsed.metadata_text.as_deref());
            let payload = parsed
                .payload
                .map(RawValue::get)
                .or(parsed.payload_text.as_deref());
            let (
                Some(recorded_at),
                Some(aggregate_type),
                Some(aggregate_id),
                Some(aggregate_version),
                Some(event_type),
                Some(event_version),
                Some(metadata),
                Some(payload),
            ) = (
                parsed.recorded_at.as_deref(),
                parsed.aggregate_type.as_deref(),
                parsed.aggregate_id.as_deref(),
                parsed.aggregate_version,
                parsed.event_type.as_deref(),
                parsed.event_version.as_deref(),
                metadata,
                payload,
            )
            else {
                return Parsed::Bad(format!("event line {position} lacks a field"));
            };
            let computed = event_hash(&EventFields {
                position,
                recorded_at,
                aggregate_type,
                aggregate_id,
                aggregate_version,
                event_type,
                event_version,
                metadata,
                payload,
                prev_hash: &prev_hash,
            });
            Parsed::Event(Link {
                position,
                prev_hash,
                hash,
                content_ok: computed == hash,
            })
        }
        "elided" => match (
            parsed.position,
            parse_hash(parsed.prev_hash.as_deref()),
            parse_hash(parsed.hash.as_deref()),
        ) {
            (Some(position), Some(prev_hash), Some(hash)) => Parsed::Elided(Link {
                position,
                prev_hash,
                hash,
                content_ok: true,
            }),
            _ => Parsed::Bad("an elided line lacks its position or hashes".into()),
        },
        "checkpoint" => match parsed.note {
            Some(note) => Parsed::Checkpoint(note),
            None => Parsed::Bad("a checkpoint line lacks its note".into()),
        },
        "header" => Parsed::Header,
        other => Parsed::Bad(format!("unknown line type {other:?}")),
    }
}

fn parse_header(line: &str) -> Result<(Start, Option<String>, u64), ExportError> {
    let header: HeaderLine<'_> = serde_json::from_str(line)
        .map_err(|e| ExportError::NotAnExport(format!("first line is not a header ({e})")))?;
    if header.kind != "header" || header.format != EXPORT_FORMAT {
        return Err(ExportError::NotAnExport(
            "first line is not a header".into(),
        ));
    }
    if header.version != EXPORT_VERSION {
        return Err(ExportError::NotAnExport(format!(
            "format version {} (this verifier reads {EXPORT_VERSION})",
            header.version
        )));
    }
    let anchor = parse_hash(Some(&header.anchor_hash))
        .ok_or_else(|| ExportError::NotAnExport("malformed anchor_hash".into()))?;
    let frontier_bytes = hex::decode(header.frontier.as_ref())
        .map_err(|_| ExportError::NotAnExport("malformed frontier".into()))?;
    let frontier = Frontier::from_bytes(&frontier_bytes)
        .map_err(|_| ExportError::NotAnExport("malformed frontier".into()))?;
    if frontier.size() != header.after_position {
        return Err(ExportError::NotAnExport(
            "the header's frontier does not cover after_position".into(),
        ));
    }
    Ok((
        Start {
            after: header.after_position,
            anchor,
            frontier: Some(frontier),
        },
        header.tenant.map(Cow::into_owned),
        header.up_to,
    ))
}

fn parse_chunk(lines: &[String]) -> Vec<Parsed> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers < 2 || lines.len() < 256 {
        return lines.iter().map(|l| parse_line(l)).collect();
    }
    let per_worker = lines.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .chunks(per_worker)
            .map(|part| scope.spawn(move || part.iter().map(|l| parse_line(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Verifies an export offline with nothing but the trusted public keys. Lines are parsed and
/// hashed in parallel chunks; linkage is then checked in order. `progress` gets the number of
/// lines read and the header's final position.
pub fn verify_export(
    input: impl BufRead,
    keys: TrustedKeys,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, ExportError> {
    let mut lines = input.lines();
    let header = lines
        .next()
        .ok_or_else(|| ExportError::NotAnExport("the file is empty".into()))??;
    let (start, _tenant, up_to) = parse_header(&header)?;
    let mut verifier = ChainVerifier::new(keys, start);
    let mut line_no: u64 = 1;
    let mut chunk: Vec<String> = Vec::with_capacity(VERIFY_CHUNK_LINES);
    loop {
        chunk.clear();
        for line in lines.by_ref().take(VERIFY_CHUNK_LINES) {
            chunk.push(line?);
        }
        if chunk.is_empty() {
            break;
        }
        for parsed in parse_chunk(&chunk) {
            line_no += 1;
            match parsed {
                Parsed::Event(link) => verifier.push(link),
                Parsed::Elided(link) => {
                    verifier.push_elided(link.position, link.prev_hash, link.hash)
                }
                Parsed::Checkpoint(note) => verifier.push_checkpoint(&note),
                Parsed::Header => verifier.fail(
                    BreakKind::Malformed,
                    verifier.position() + 1,
                    format!("line {line_no}: a second header"),
                ),
                Parsed::Bad(reason) => verifier.fail(
                    BreakKind::Malformed,
                    verifier.position() + 1,
                    format!("line {line_no}: {reason}"),
                ),
            }
        }
        progress(verifier.position(), up_to);
        if verifier.has_break() {
            break;
        }
    }
    let mut report = verifier.finish(None);
    if report.first_break.is_none() && report.last_position < up_to {
        report.first_break = Some(crate::verify::Break {
            kind: BreakKind::Truncated,
            position: report.last_position + 1,
            detail: format!(
                "the export's header announces events up to {up_to} but it ends at {}",
                report.last_position
            ),
        });
    }
    Ok(report)
}
