//! Export of the ledger as JSON Lines for auditors, and offline verification of an export.
//!
//! The format is specified in `docs/ledger-format.md` ("Export"). Payload and metadata are
//! embedded verbatim: the stored canonical JSON text appears unchanged inside the line, so a
//! verifier hashes exactly the bytes the ledger hashed, without re-serializing anything.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::encoding::{event_hash, EventFields, EventRecord, Hash32, GENESIS_PREV_HASH};
use crate::keys::TrustedKeys;
use crate::merkle::Frontier;
use crate::store::Ledger;
use crate::verify::{BreakKind, ChainVerifier, Link, Report, Rules, Start};
use crate::LedgerError;

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

// ---------------------------------------------------------------------------------------
// Offline verification.
//
// The file is read in large blocks cut at line ends on the calling thread (which also owns
// `input` and `progress`, neither of which need be `Send`), parsed and hashed by one worker
// per core, and fed to the chain verifier in order as the blocks come back. Reading, parsing
// and the ordered walk thus overlap; no line is copied into a `String` of its own. No line is
// read beyond the maximum length, so memory stays bounded whatever the file holds.
// ---------------------------------------------------------------------------------------

/// The longest line the offline verifier reads unless told otherwise (16 MiB): far above any
/// event the ledger writes, far below what would exhaust an auditor's machine.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes read per block handed to a worker (a longer line makes its block longer).
const VERIFY_BLOCK_BYTES: usize = 1 << 20;
/// Blocks in flight per worker: enough that a worker never waits for the reader, few enough
/// to bound memory to a handful of blocks.
const VERIFY_BLOCKS_PER_WORKER: usize = 3;
/// Nesting accepted by the fast line parser inside payload and metadata; deeper values take
/// the serde path (whose own limit is 128).
const FAST_MAX_DEPTH: usize = 64;

/// How strictly an export is verified beyond the format's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept events after the last checkpoint, reporting them as unsigned, instead of
    /// reporting an `unsigned_tail` break.
    pub allow_unsigned_tail: bool,
    /// Lines longer than this many bytes (not counting the `\n`) are a `line_too_long` break.
    pub max_line_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            allow_unsigned_tail: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

#[derive(Debug)]
enum Parsed {
    Event(Link),
    Elided(Link),
    Checkpoint(String),
    Header,
    Bad(String),
    /// The line is longer than the maximum; nothing after it is read.
    TooLong,
}

/// Each byte's value as a lowercase hex digit, or 0xff. One table look-up a character
/// instead of a chain of range tests (two hashes a line made hex decoding a third of
/// verification time). Uppercase digits are refused: hex is lowercase (docs/ledger-format.md,
/// conventions), so a hash has one spelling.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Bytes from lowercase hex digits (an even number of them).
fn lower_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let (high, low) = (
                HEX_VALUES[usize::from(pair[0])],
                HEX_VALUES[usize::from(pair[1])],
            );
            ((high | low) < 16).then_some(high << 4 | low)
        })
        .collect()
}

/// A 32-byte hash from exactly 64 lowercase hex digits.
fn parse_hash(text: &str) -> Option<Hash32> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    let mut seen = 0u8;
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        seen |= high | low;
        *byte = high << 4 | low;
    }
    // Valid digits are below 16; a non-digit's 0xff shows in the high bits.
    (seen & 0xf0 == 0).then_some(hash)
}

/// The fields of an event line, borrowed from the line, whichever parser read them.
struct EventText<'a> {
    position: u64,
    recorded_at: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    aggregate_version: u64,
    event_type: &'a str,
    event_version: &'a str,
    metadata: &'a str,
    payload: &'a str,
    prev_hash: &'a str,
    hash: &'a str,
}

/// Judges an event line and hashes its content. Both parsers end here, so a line means the
/// same whichever of them read it. `tenant` is the tenant of a tenant export.
fn event_line(text: &EventText<'_>, tenant: Option<&str>) -> Parsed {
    let (Some(prev_hash), Some(hash)) = (parse_hash(text.prev_hash), parse_hash(text.hash)) else {
        return Parsed::Bad(format!(
            "event {}'s prev_hash or hash is not 64 lowercase hex digits",
            text.position
        ));
    };
    let computed = event_hash(&EventFields {
        position: text.position,
        recorded_at: text.recorded_at,
        aggregate_type: text.aggregate_type,
        aggregate_id: text.aggregate_id,
        aggregate_version: text.aggregate_version,
        event_type: text.event_type,
        event_version: text.event_version,
        metadata: text.metadata,
        payload: text.payload,
        prev_hash: &prev_hash,
    });
    let mut link = Link::event(text.position, prev_hash, hash, computed == hash);
    link.foreign = tenant.is_some_and(|t| tenant_of(text.metadata).as_deref() != Some(t));
    Parsed::Event(link)
}

/// Judges an elided line (see [`event_line`]).
fn elided_line(position: u64, prev_hash: &str, hash: &str) -> Parsed {
    match (parse_hash(prev_hash), parse_hash(hash)) {
        (Some(prev_hash), Some(hash)) => Parsed::Elided(Link::elided(position, prev_hash, hash)),
        _ => Parsed::Bad(format!(
            "elided line {position}'s prev_hash or hash is not 64 lowercase hex digits"
        )),
    }
}

fn parse_line(line: &str, tenant: Option<&str>) -> Parsed {
    // Nearly every line is an event or elided line exactly as `export` writes it; read those
    // without serde. Anything else, or anything the fast parser is unsure of, goes to serde.
    fast::parse(line, tenant).unwrap_or_else(|| parse_line_serde(line, tenant))
}

/// A JSON object's members in order, values left as their raw text. The strict reader checks
/// the member names itself: which names a line may carry depends on its `type`, and a
/// repeated name must be refused, neither of which serde's derive does for one flat struct.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    members.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

impl<'a> Members<'a> {
    /// Checks that every name is one of `allowed`, none repeats, and all of `required` are
    /// there.
    fn check(&self, allowed: &[&str], required: &[&str]) -> Result<(), String> {
        for (index, (name, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&name.as_ref()) {
                return Err(format!("unknown member {name:?}"));
            }
            if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(format!("member {name:?} appears twice"));
            }
        }
        match required.iter().find(|name| self.get(name).is_none()) {
            Some(missing) => Err(format!("missing member {missing:?}")),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// A string member's value (escapes decoded).
    fn text(&self, name: &str) -> Result<Cow<'a, str>, String> {
        self.get(name)
            .and_then(|raw| serde_json::from_str::<Text<'a>>(raw.get()).ok())
            .map(|Text(text)| text)
            .ok_or_else(|| format!("member {name:?} is not a string"))
    }

    /// An integer member's value: digits only (serde alone would read `-0` as 0), within
    /// u64.
    fn integer(&self, name: &str) -> Result<u64, String> {
        self.get(name)
            .map(RawValue::get)
            .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| serde_json::from_str::<u64>(text).ok())
            .ok_or_else(|| format!("member {name:?} is not an integer from 0 to 2^64-1"))
    }

    /// Exactly one of a stored value embedded as JSON (`name`) or as a string
    /// (`name_text`): the stored bytes.
    fn stored(&self, name: &str, as_text: &str) -> Result<Cow<'a, str>, String> {
        match (self.get(name), self.get(as_text)) {
            (Some(raw), None) => Ok(Cow::Borrowed(raw.get())),
            (None, Some(_)) => self.text(as_text),
            _ => Err(format!(
                "exactly one of {name:?} and {as_text:?} must be present"
            )),
        }
    }
}

const EVENT_MEMBERS: [&str; 14] = [
    "type",
    "position",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "event_version",
    "metadata",
    "metadata_text",
    "payload",
    "payload_text",
    "prev_hash",
    "hash",
];
const EVENT_REQUIRED: [&str; 10] = [
    "type",
    "position",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "event_type",
    "event_version",
    "prev_hash",
    "hash",
];
const ELIDED_MEMBERS: [&str; 4] = ["type", "position", "prev_hash", "hash"];
const CHECKPOINT_MEMBERS: [&str; 2] = ["type", "note"];
const HEADER_MEMBERS: [&str; 8] = [
    "type",
    "format",
    "version",
    "after_position",
    "anchor_hash",
    "frontier",
    "up_to",
    "tenant",
];

/// Reads any line the format allows (members in any order, JSON whitespace, escapes,
/// `*_text` members), refusing unknown and repeated members.
fn parse_line_serde(line: &str, tenant: Option<&str>) -> Parsed {
    let members: Members<'_> = match serde_json::from_str(line) {
        Ok(members) => members,
        Err(error) => return Parsed::Bad(format!("not a JSON object ({error})")),
    };
    let kind = match members.text("type") {
        Ok(kind) => kind,
        Err(reason) => return Parsed::Bad(reason),
    };
    let judged = match kind.as_ref() {
        "event" => serde_event(&members, tenant),
        "elided" => members
            .check(&ELIDED_MEMBERS, &ELIDED_MEMBERS)
            .and_then(|()| {
                Ok(elided_line(
                    members.integer("position")?,
                    &members.text("prev_hash")?,
                    &members.text("hash")?,
                ))
            }),
        "checkpoint" => members
            .check(&CHECKPOINT_MEMBERS, &CHECKPOINT_MEMBERS)
            .and_then(|()| Ok(Parsed::Checkpoint(members.text("note")?.into_owned()))),
        "header" => Ok(Parsed::Header),
        other => Err(format!("unknown line type {other:?}")),
    };
    judged.unwrap_or_else(|reason| Parsed::Bad(format!("{kind} line: {reason}")))
}

fn serde_event(members: &Members<'_>, tenant: Option<&str>) -> Result<Parsed, String> {
    members.check(&EVENT_MEMBERS, &EVENT_REQUIRED)?;
    let text = |name| members.text(name);
    let (recorded_at, aggregate_type, aggregate_id) = (
        text("recorded_at")?,
        text("aggregate_type")?,
        text("aggregate_id")?,
    );
    let (event_type, event_version, prev_hash, hash) = (
        text("event_type")?,
        text("event_version")?,
        text("prev_hash")?,
        text("hash")?,
    );
    let metadata = members.stored("metadata", "metadata_text")?;
    let payload = members.stored("payload", "payload_text")?;
    Ok(event_line(
        &EventText {
            position: members.integer("position")?,
            recorded_at: &recorded_at,
            aggregate_type: &aggregate_type,
            aggregate_id: &aggregate_id,
            aggregate_version: members.integer("aggregate_version")?,
            event_type: &event_type,
            event_version: &event_version,
            metadata: &metadata,
            payload: &payload,
            prev_hash: &prev_hash,
            hash: &hash,
        },
        tenant,
    ))
}

/// A parser for exactly the event and elided lines `export` writes: members in the written
/// order, no whitespace, no escapes in the top-level strings, integers only.
///
/// It accepts a strict subset of what the serde path accepts and reads it the same way, so it
/// may decline any line (returning `None`, and the serde path decides) but never accept one
/// that serde would read differently or refuse. In particular it declines: escapes in fields
/// serde would unescape; fractions and exponents; whitespace; deep nesting; and trailing bytes after the
/// closing brace.
mod fast {
    use super::{elided_line, event_line, EventText, Parsed, FAST_MAX_DEPTH};

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// Index of the first byte at or after `i` that is `"`, `\` or a control character:
    /// eight bytes at a time, since most of a line is string content.
    fn string_stop(bytes: &[u8], mut i: usize) -> usize {
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
            // Classic "has zero byte" / "has byte below n" tests; the lowest flagged byte is
            // always exact (false flags only appear above a true one).
            let found = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | w.wrapping_sub(ONES * 0x20) & !w)
                & HIGHS;
            if found != 0 {
                return i + (found.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while let Some(&b) = bytes.get(i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            i += 1;
        }
        i
    }

    struct Cursor<'a> {
        text: &'a str,
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        /// Consumes `literal`. Its length is a constant, so the comparison compiles to a few
        /// loads instead of a `memcmp` call.
        fn expect<const N: usize>(&mut self, literal: &[u8; N]) -> Option<()> {
            let end = self.at + N;
            (self.bytes.get(self.at..end)? == literal.as_slice()).then(|| self.at = end)
        }

        /// A string without escapes; its content.
        fn plain_string(&mut self) -> Option<&'a str> {
            self.expect(b"\"")?;
            let start = self.at;
            let stop = string_stop(self.bytes, start);
            if self.bytes.get(stop) != Some(&b'"') {
                return None;
            }
            self.at = stop + 1;
            self.text.get(start..stop)
        }

        /// A non-negative integer as serde reads into `u64`: no sign, no leading zero, no
        /// fraction or exponent (the caller checks the next byte is a separator).
        fn unsigned(&mut self) -> Option<u64> {
            let start = self.at;
            let mut value: u64 = 0;
            while let Some(b @ b'0'..=b'9') = self.peek() {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                self.at += 1;
            }
            let digits = self.at - start;
            if digits == 0 || (digits > 1 && self.bytes.get(start) == Some(&b'0')) {
                return None;
            }
            Some(value)
        }

        /// A string with JSON escapes, left as it is (inside a raw value).
        fn raw_string(&mut self) -> Option<()> {
            self.expect(b"\"")?;
            loop {
                self.at = string_stop(self.bytes, self.at);
                match self.peek()? {
                    b'"' => {
                        self.at += 1;
                        return Some(());
                    }
                    b'\\' => {
                        self.at += 1;
                        match self.peek()? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                            b'u' => {
                                let hex = self.bytes.get(self.at + 1..self.at + 5)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return None;
                                }
                                self.at += 5;
                            }
                            _ => return None,
                        }
                    }
                    // A control character: serde refuses it.
                    _ => return None,
                }
            }
        }

        /// One JSON value of the accepted subset.
        fn raw_value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.raw_string(),
                b'{' => {
                    if depth >= FAST_MAX_DEPTH {
                        return None;
                    }
                    self.at += 1;
                    if self.peek()? == b'}' {
                        self.at += 1;
                        return Some(());
                    }
                    loop {
                        self.raw_string()?;
                        self.expect(b":")?;
                        self.raw_value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.at += 1,
                            b'}' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'[' => {
                    if depth >= FAST_MAX_DEPTH {
                        return None;
                    }
                    self.at += 1;
                    if self.peek()? == b']' {
                        self.at += 1;
                        return Some(());
                    }
                    loop {
                        self.raw_value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'-' => {
                    self.at += 1;
                    self.unsigned().map(drop)
                }
                b'0'..=b'9' => self.unsigned().map(drop),
                b't' => self.expect(b"true"),
                b'f' => self.expect(b"false"),
                b'n' => self.expect(b"null"),
                _ => None,
            }
        }

        /// A payload or metadata value: its text, exactly as it stands in the line.
        fn raw(&mut self) -> Option<&'a str> {
            let start = self.at;
            self.raw_value(1)?;
            self.text.get(start..self.at)
        }

        fn field<T, const N: usize>(
            &mut self,
            key: &[u8; N],
            read: impl FnOnce(&mut Self) -> Option<T>,
        ) -> Option<T> {
            self.expect(key)?;
            read(self)
        }

        /// The end of the line: the closing brace and nothing after it.
        fn end(&mut self) -> Option<()> {
            self.expect(b"}")?;
            (self.at == self.bytes.len()).then_some(())
        }
    }

    /// Reads an event or elided line as `export` writes it, or declines. `tenant` is the
    /// tenant of a tenant export.
    pub(super) fn parse(line: &str, tenant: Option<&str>) -> Option<Parsed> {
        let mut c = Cursor {
            text: line,
            bytes: line.as_bytes(),
            at: 0,
        };
        c.expect(b"{\"type\":\"")?;
        if c.expect(b"event\",").is_some() {
            let text = EventText {
                position: c.field(b"\"position\":", Cursor::unsigned)?,
                recorded_at: c.field(b",\"recorded_at\":", Cursor::plain_string)?,
                aggregate_type: c.field(b",\"aggregate_type\":", Cursor::plain_string)?,
                aggregate_id: c.field(b",\"aggregate_id\":", Cursor::plain_string)?,
                aggregate_version: c.field(b",\"aggregate_version\":", Cursor::unsigned)?,
                event_type: c.field(b",\"event_type\":", Cursor::plain_string)?,
                event_version: c.field(b",\"event_version\":", Cursor::plain_string)?,
                metadata: c.field(b",\"metadata\":", Cursor::raw)?,
                payload: c.field(b",\"payload\":", Cursor::raw)?,
                prev_hash: c.field(b",\"prev_hash\":", Cursor::plain_string)?,
                hash: c.field(b",\"hash\":", Cursor::plain_string)?,
            };
            c.end()?;
            return Some(event_line(&text, tenant));
        }
        c.expect(b"elided\",")?;
        let position = c.field(b"\"position\":", Cursor::unsigned)?;
        let prev_hash = c.field(b",\"prev_hash\":", Cursor::plain_string)?;
        let hash = c.field(b",\"hash\":", Cursor::plain_string)?;
        c.end()?;
        Some(elided_line(position, prev_hash, hash))
    }
}

/// An export's header line, as the verifier reads it.
#[derive(Debug)]
struct Header {
    start: Start,
    up_to: u64,
    tenant: Option<String>,
}

/// Reads the header line strictly (§6.1); the error is the reason for a `malformed` break.
fn parse_header(line: &str) -> Result<Header, String> {
    let members: Members<'_> =
        serde_json::from_str(line).map_err(|e| format!("line 1 is not a JSON object ({e})"))?;
    if members.text("type").ok().as_deref() != Some("header") {
        return Err("line 1 is not a header".into());
    }
    members.check(&HEADER_MEMBERS, &HEADER_MEMBERS)?;
    if members.text("format")? != EXPORT_FORMAT {
        return Err(format!("the header's format is not {EXPORT_FORMAT:?}"));
    }
    let version = members.integer("version")?;
    if version != u64::from(EXPORT_VERSION) {
        return Err(format!(
            "format version {version} (this verifier reads version {EXPORT_VERSION})"
        ));
    }
    let after = members.integer("after_position")?;
    let anchor = parse_hash(&members.text("anchor_hash")?)
        .ok_or("anchor_hash is not 64 lowercase hex digits")?;
    if after == 0 && anchor != GENESIS_PREV_HASH {
        return Err("anchor_hash must be zeros when after_position is 0".into());
    }
    let frontier = lower_hex(&members.text("frontier")?)
        .and_then(|bytes| Frontier::from_bytes(&bytes).ok())
        .ok_or("frontier is not a Merkle frontier in lowercase hex")?;
    if frontier.size() != after {
        return Err("the header's frontier does not cover after_position".into());
    }
    let up_to = members.integer("up_to")?;
    if up_to < after {
        return Err(format!(
            "up_to ({up_to}) is before after_position ({after})"
        ));
    }
    let tenant = match members.get("tenant").map(RawValue::get) {
        Some("null") => None,
        _ => Some(
            members
                .text("tenant")
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or("tenant is neither null nor a non-empty string")?
                .into_owned(),
        ),
    };
    Ok(Header {
        start: Start {
            after,
            anchor,
            frontier: Some(frontier),
        },
        up_to,
        tenant,
    })
}

/// Parses every line of a block, in order. Lines end at `\n` (which is not part of them); a
/// line longer than `max_line` bytes, or one that is not UTF-8, is the last one parsed.
fn parse_block(block: &[u8], tenant: Option<&str>, max_line: usize) -> Vec<Parsed> {
    let (valid, bad_line_len) = match std::str::from_utf8(block) {
        Ok(text) => (text, None),
        Err(error) => {
            // Lines before the one holding the bad byte are read; that line ends the block.
            let bad = error.valid_up_to();
            let start = block[..bad]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = block[bad..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(block.len(), |p| bad + p);
            (
                std::str::from_utf8(&block[..start]).unwrap_or_default(),
                Some(end - start),
            )
        }
    };
    let mut parsed = Vec::with_capacity(valid.len() / 256 + 1);
    let mut rest = valid;
    while !rest.is_empty() {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        if line.len() > max_line {
            parsed.push(Parsed::TooLong);
            return parsed;
        }
        parsed.push(parse_line(line, tenant));
        rest = after;
    }
    if let Some(len) = bad_line_len {
        parsed.push(if len > max_line {
            Parsed::TooLong
        } else {
            Parsed::Bad("the line is not valid UTF-8".into())
        });
    }
    parsed
}

/// Whole lines read from the input: `buffer[..len]`. Buffers are reused from block to
/// block, so bytes past `len` are stale.
struct Block {
    buffer: Vec<u8>,
    len: usize,
    /// The block is one line that outgrew the maximum line length; reading stops here.
    overlong: bool,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        self.buffer.get(..self.len).unwrap_or_default()
    }
}

/// Reads the next block: whole lines of about [`VERIFY_BLOCK_BYTES`], or the rest of the
/// input at its end, into `buffer`. `carry` holds the start of a line cut off by the
/// previous block; `None` means the input is exhausted. A line is read no further than
/// `max_line + 1` bytes: such a block is marked `overlong`.
fn read_block(
    input: &mut impl BufRead,
    carry: &mut Vec<u8>,
    mut buffer: Vec<u8>,
    max_line: usize,
) -> std::io::Result<Option<Block>> {
    let mut len = carry.len();
    // Room for the carried line start plus a full block: a read at least as large as the
    // caller's `BufReader` goes straight from the file into the block, with no second copy.
    let mut target = len + VERIFY_BLOCK_BYTES;
    if buffer.len() < target {
        // Zeroes only the part that is new; a reused buffer is simply overwritten.
        buffer.resize(target, 0);
    }
    buffer[..len].copy_from_slice(carry);
    carry.clear();
    loop {
        // `carry` and any earlier round of this loop hold no newline.
        let searched = len;
        let mut at_end = false;
        while len < target {
            match input.read(&mut buffer[len..target]) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => len += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if at_end {
            return Ok((len > 0).then_some(Block {
                buffer,
                len,
                overlong: false,
            }));
        }
        if let Some(last) = buffer[searched..len].iter().rposition(|&b| b == b'\n') {
            let cut = searched + last + 1;
            carry.extend_from_slice(&buffer[cut..len]);
            return Ok(Some(Block {
                buffer,
                len: cut,
                overlong: false,
            }));
        }
        // The whole buffer is one unfinished line.
        if len > max_line {
            return Ok(Some(Block {
                buffer,
                len,
                overlong: true,
            }));
        }
        // Keep reading until it ends, but never past the maximum.
        target = (target * 2).min(max_line.saturating_add(1)).max(len + 1);
        if buffer.len() < target {
            buffer.resize(target, 0);
        }
    }
}

/// The first line of an export.
enum FirstLine {
    Empty,
    TooLong,
    Line(Vec<u8>),
}

/// Reads the header line, no further than `max_line + 1` bytes.
fn read_first_line(input: &mut impl BufRead, max_line: usize) -> std::io::Result<FirstLine> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max_line).map_or(u64::MAX, |max| max.saturating_add(1));
    input.by_ref().take(limit).read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Ok(FirstLine::Empty);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    } else if bytes.len() > max_line {
        return Ok(FirstLine::TooLong);
    }
    Ok(FirstLine::Line(bytes))
}

struct Job {
    seq: u64,
    block: Block,
}

struct Done {
    seq: u64,
    /// `None` if parsing the block panicked (a bug; reported as an error, never ignored).
    parsed: Option<Vec<Parsed>>,
    block: Block,
}

fn worker(jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>, tenant: Option<&str>, max_line: usize) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(Job { seq, block }) = job else {
            return;
        };
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parse_block(block.bytes(), tenant, max_line)
        }))
        .ok();
        if done.send(Done { seq, parsed, block }).is_err() {
            return;
        }
    }
}

/// The report for an export whose header line is not a header: a break at position 0,
/// line 1.
fn header_break(keys: TrustedKeys, kind: BreakKind, detail: String) -> Report {
    let mut verifier = ChainVerifier::new(keys, Start::genesis(), Rules::default());
    verifier.set_line(1);
    verifier.fail(kind, 0, detail);
    verifier.finish(None)
}

/// Verifies an export offline with nothing but the trusted public keys. Blocks of lines are
/// parsed and hashed in parallel; linkage is then checked in order. `progress` gets the
/// position reached and the header's final position.
///
/// Whatever the file holds, the answer is a [`Report`]; an error means the input could not
/// be read.
pub fn verify_export(
    mut input: impl BufRead,
    keys: TrustedKeys,
    options: &VerifyOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, ExportError> {
    let max_line = options.max_line_bytes;
    let line = match read_first_line(&mut input, max_line)? {
        FirstLine::Empty => {
            return Ok(header_break(
                keys,
                BreakKind::Malformed,
                "the file is empty".into(),
            ))
        }
        FirstLine::TooLong => {
            return Ok(header_break(
                keys,
                BreakKind::LineTooLong,
                format!("line 1 is longer than {max_line} bytes"),
            ))
        }
        FirstLine::Line(bytes) => bytes,
    };
    let header = match std::str::from_utf8(&line) {
        Ok(text) => parse_header(text),
        Err(_) => Err("line 1 is not valid UTF-8".into()),
    };
    let header = match header {
        Ok(header) => header,
        Err(reason) => return Ok(header_break(keys, BreakKind::Malformed, reason)),
    };
    let up_to = header.up_to;
    let tenant = header.tenant.as_deref();
    let rules = Rules {
        elided_allowed: tenant.is_some(),
        up_to: Some(up_to),
        allow_unsigned_tail: options.allow_unsigned_tail,
    };
    let mut verifier = ChainVerifier::new(keys, header.start, rules);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, done) = (&job_rx, done_tx.clone());
            scope.spawn(move || worker(jobs, &done, tenant, max_line));
        }
        drop(done_tx);
        // Dropping `job_tx` on the way out, success or error, lets the workers finish.
        walk(
            &mut input,
            job_tx,
            &done_rx,
            workers * VERIFY_BLOCKS_PER_WORKER,
            &mut verifier,
            max_line,
            |position| progress(position, up_to),
        )
    })?;
    let mut report = verifier.finish(None);
    report.tenant = header.tenant;
    Ok(report)
}

/// The calling thread's part: reads blocks ahead, and feeds parsed lines to the verifier in
/// file order as their blocks come back. Stops at the first break.
fn walk(
    input: &mut impl BufRead,
    jobs: Sender<Job>,
    done: &Receiver<Done>,
    in_flight_limit: usize,
    verifier: &mut ChainVerifier,
    max_line: usize,
    mut progress: impl FnMut(u64),
) -> Result<(), ExportError> {
    let worker_failed = || {
        ExportError::Io(std::io::Error::other(
            "an export verification worker failed",
        ))
    };
    let mut carry = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let (mut sent, mut fed) = (0u64, 0u64);
    let mut at_end = false;
    // The header was line 1.
    let mut line_no: u64 = 1;
    loop {
        while !at_end && sent - fed < in_flight_limit as u64 {
            match read_block(input, &mut carry, spare.pop().unwrap_or_default(), max_line)? {
                Some(block) => {
                    // An overlong line is the last thing read: its block reports it.
                    at_end = block.overlong;
                    jobs.send(Job { seq: sent, block })
                        .map_err(|_| worker_failed())?;
                    sent += 1;
                }
                None => at_end = true,
            }
        }
        if fed == sent {
            return Ok(());
        }
        let next = loop {
            if let Some(next) = waiting.remove(&fed) {
                break next;
            }
            let arrived = done.recv().map_err(|_| worker_failed())?;
            waiting.insert(arrived.seq, arrived);
        };
        fed += 1;
        spare.push(next.block.buffer);
        for parsed in next.parsed.ok_or_else(worker_failed)? {
            line_no += 1;
            verifier.set_line(line_no);
            match parsed {
                Parsed::Event(link) | Parsed::Elided(link) => verifier.push(link),
                Parsed::Checkpoint(note) => verifier.push_checkpoint(&note),
                Parsed::Header => verifier.fail_line(BreakKind::Malformed, "a second header"),
                Parsed::Bad(reason) => verifier.fail_line(BreakKind::Malformed, reason),
                Parsed::TooLong => verifier.fail_line(
                    BreakKind::LineTooLong,
                    format!("the line is longer than {max_line} bytes"),
                ),
            }
            if verifier.has_break() {
                break;
            }
        }
        progress(verifier.position());
        if verifier.has_break() {
            return Ok(());
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn event_json(metadata: &str, payload: &str) -> String {
        format!(
            "{{\"type\":\"event\",\"position\":7,\"recorded_at\":\"2026-01-01T00:00:00.000001Z\",\
             \"aggregate_type\":\"probe\",\"aggregate_id\":\"p-1\",\"aggregate_version\":3,\
             \"event_type\":\"ReadingRecorded\",\"event_version\":\"2.0\",\"metadata\":{metadata},\
             \"payload\":{payload},\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
        )
    }

    /// What the serde path alone makes of a line, for comparing with the fast parser.
    fn slow(line: &str) -> String {
        format!("{:?}", parse_line_serde(line, Some("t-1")))
    }

    fn is_bad(parsed: &Parsed, containing: &str) -> bool {
        matches!(parsed, Parsed::Bad(reason) if reason.contains(containing))
    }

    #[test]
    fn the_fast_parser_reads_what_export_writes_as_serde_does() {
        let record = EventRecord {
            position: 1,
            recorded_at: "2026-01-01T00:00:00.000001Z".into(),
            aggregate_type: "probe".into(),
            aggregate_id: "p-\u{e9}".into(),
            aggregate_version: 1,
            event_type: "ReadingRecorded".into(),
            event_version: "2.0".into(),
            metadata:
                r#"{"a":[1,-2,true,false,null,{}],"b":"x\"y\\u00e9\u00e9","tenant_id":"t-1"}"#
                    .into(),
            payload: r#"{"ReadingRecorded":{"label":"l","reading_no":1}}"#.into(),
            prev_hash: GENESIS_PREV_HASH,
            hash: [0; 32],
        };
        let mut record = record;
        record.hash = record.computed_hash();
        let mut out = Vec::new();
        write_event(&mut out, &record).expect("write");
        let line = std::str::from_utf8(&out).expect("utf-8").trim_end();
        let fast = fast::parse(line, Some("t-1")).expect("the fast parser reads export lines");
        assert!(
            matches!(fast, Parsed::Event(link) if link.content_ok && !link.foreign && link.hash == record.hash),
            "{fast:?}"
        );
        assert_eq!(format!("{fast:?}"), slow(line));
        // The same event in another tenant's export is foreign.
        assert!(matches!(fast::parse(line, Some("t-2")), Some(Parsed::Event(l)) if l.foreign));
    }

    #[test]
    fn the_fast_parser_declines_what_it_cannot_read_exactly_as_serde() {
        let declined = [
            // Fractions, exponents, leading zeros, whitespace, unknown escapes, deep nesting.
            event_json("{\"a\":1.5}", "{}"),
            event_json("{\"a\":1e3}", "{}"),
            event_json("{\"a\":01}", "{}"),
            event_json("{\"a\": 1}", "{}"),
            event_json("{\"a\":\"\\x\"}", "{}"),
            event_json(&format!("{}1{}", "[".repeat(70), "]".repeat(70)), "{}"),
            // A control character inside a string.
            event_json("{\"a\":\"\u{1}\"}", "{}"),
            // Trailing bytes, and a top-level string serde would unescape.
            format!("{} ", event_json("{}", "{}")),
            event_json("{}", "{}").replace("\"p-1\"", "\"p-\\u0031\""),
        ];
        for line in &declined {
            assert!(fast::parse(line, None).is_none(), "accepted {line}");
        }
        // Declined lines still parse (or are refused) on the serde path.
        assert!(matches!(parse_line(&declined[0], None), Parsed::Event(_)));
        assert!(is_bad(&parse_line(&declined[6], None), "not a JSON object"));
        assert!(matches!(parse_line(&declined[7], None), Parsed::Event(_)));
    }

    #[test]
    fn accepted_lines_mean_the_same_to_both_parsers() {
        for metadata in [
            // `null` is four stored bytes like any other value, not an absent member.
            "null",
            "{}",
            "[]",
            "\"s\"",
            "-0",
            "12",
            "true",
            "{\"k\":[{},[],\"\\u00e9\"]}",
        ] {
            let line = event_json(metadata, "{\"p\":[1,2]}");
            let fast = fast::parse(&line, Some("t-1")).expect("accepted");
            assert_eq!(format!("{fast:?}"), slow(&line), "{line}");
        }
        let elided = format!(
            "{{\"type\":\"elided\",\"position\":9,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
        );
        assert!(
            matches!(fast::parse(&elided, None), Some(Parsed::Elided(l)) if l.position == 9 && l.elided)
        );
        // A malformed hash is judged by the shared code, the same on both paths.
        let short = elided.replacen(HASH_A, "00", 1);
        assert!(matches!(fast::parse(&short, None), Some(Parsed::Bad(_))));
        assert!(matches!(parse_line_serde(&short, None), Parsed::Bad(_)));
    }

    #[test]
    fn an_unknown_member_makes_a_line_malformed_on_either_path() {
        let extra = event_json("{}", "{}").replacen(
            "\"type\":\"event\",",
            "\"type\":\"event\",\"approved_by\":\"CFO\",",
            1,
        );
        assert!(fast::parse(&extra, None).is_none());
        assert!(is_bad(
            &parse_line(&extra, None),
            "unknown member \"approved_by\""
        ));
        let checkpoint = r#"{"type":"checkpoint","note":"x","signed":true}"#;
        assert!(is_bad(
            &parse_line(checkpoint, None),
            "unknown member \"signed\""
        ));
        let elided = format!(
            "{{\"type\":\"elided\",\"position\":9,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\",\"tenant\":null}}"
        );
        assert!(is_bad(
            &parse_line(&elided, None),
            "unknown member \"tenant\""
        ));
    }

    #[test]
    fn a_repeated_member_makes_a_line_malformed() {
        let twice =
            event_json("{}", "{}").replacen("\"position\":7,", "\"position\":7,\"position\":8,", 1);
        assert!(is_bad(&parse_line(&twice, None), "appears twice"));
    }

    #[test]
    fn metadata_given_both_embedded_and_as_text_is_malformed() {
        let both = event_json("{}", "{}").replacen(
            "\"metadata\":{},",
            "\"metadata\":{},\"metadata_text\":\"{}\",",
            1,
        );
        assert!(is_bad(&parse_line(&both, None), "exactly one of"));
    }

    #[test]
    fn a_signed_zero_is_not_an_integer_although_json_reads_it_as_zero() {
        let header = r#"{"type":"header","format":"dezky-ledger-export","version":1,"after_position":-0,"anchor_hash":"0000000000000000000000000000000000000000000000000000000000000000","frontier":"0000000000000000","up_to":0,"tenant":null}"#;
        assert_eq!(
            parse_header(header).map(|h| h.up_to),
            Err("member \"after_position\" is not an integer from 0 to 2^64-1".into())
        );
        assert_eq!(
            parse_header(&header.replace("-0", "0")).map(|h| h.up_to),
            Ok(0)
        );
    }

    #[test]
    fn an_uppercase_hash_is_malformed_although_it_names_the_same_bytes() {
        let upper = event_json("{}", "{}").replace(HASH_A, &HASH_A.to_uppercase());
        assert!(matches!(parse_line(&upper, None), Parsed::Bad(_)));
    }

    /// Mutates a valid line byte by byte (xorshift-driven, so the run is reproducible) and
    /// checks that whenever the fast parser accepts a mutant, serde reads it the same way.
    #[test]
    fn the_fast_parser_never_disagrees_with_serde_on_mutated_lines() {
        let seeds = [
            event_json(
                "{\"actor_subject\":\"u-1\",\"n\":[-1,0,10,{\"x\":\"a\\\"b\\u00e9\"}],\"tenant_id\":\"t-1\"}",
                "{\"ReadingRecorded\":{\"label\":\"l\",\"ok\":true,\"v\":null}}",
            ),
            format!(
                "{{\"type\":\"elided\",\"position\":12,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
            ),
        ];
        let alphabet = b"\"\\{}[],: 0129-.eEnulftraAF/\x01\x7f";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for seed in &seeds {
            for _ in 0..20_000 {
                let mut bytes = seed.clone().into_bytes();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % bytes.len() as u64) as usize;
                    let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ => {
                            bytes.remove(at);
                        }
                    }
                }
                let Ok(line) = String::from_utf8(bytes) else {
                    continue;
                };
                if let Some(fast) = fast::parse(&line, Some("t-1")) {
                    accepted += 1;
                    assert_eq!(
                        format!("{fast:?}"),
                        slow(&line),
                        "the parsers disagree on {line}"
                    );
                }
            }
        }
        // Some mutants (in label text, say) stay valid: the comparison did happen.
        assert!(accepted > 1_000, "only {accepted} mutants accepted");
    }

    #[test]
    fn blocks_split_lines_at_newlines_and_stop_at_a_line_that_is_not_utf8() {
        let parsed = parse_block(b"{}\r\n\n{\"type\":\"header\"}\r", None, 100);
        assert_eq!(parsed.len(), 3);
        assert!(is_bad(&parsed[0], "type"));
        assert!(is_bad(&parsed[1], "not a JSON object"));
        // A `\r` stays in the line, where JSON reads it as whitespace.
        assert!(matches!(parsed[2], Parsed::Header));
        let bad = parse_block(b"{\"type\":\"header\"}\nab\xff\ncd\n", None, 100);
        assert!(matches!(bad[..], [Parsed::Header, Parsed::Bad(ref r)] if r.contains("UTF-8")));
    }

    #[test]
    fn a_line_longer_than_the_maximum_ends_the_block_with_too_long() {
        let parsed = parse_block(b"{}\n0123456789\n{}\n", None, 9);
        assert!(matches!(parsed[..], [Parsed::Bad(_), Parsed::TooLong]));
        let exact = parse_block(b"012345678\n", None, 9);
        assert!(matches!(exact[..], [Parsed::Bad(_)]));
        // Too long wins over invalid UTF-8 in the same line.
        let both = parse_block(b"0123456789\xff\n", None, 9);
        assert!(matches!(both[..], [Parsed::TooLong]));
    }

    #[test]
    fn blocks_are_cut_after_whole_lines_and_long_lines_grow_them() {
        let long = "x".repeat(VERIFY_BLOCK_BYTES * 2 + 3);
        let text = format!("a\n{long}\nb");
        let mut input = text.as_bytes();
        let mut carry = Vec::new();
        let mut seen = Vec::new();
        while let Some(block) =
            read_block(&mut input, &mut carry, Vec::new(), DEFAULT_MAX_LINE_BYTES).expect("read")
        {
            assert!(!block.overlong);
            seen.extend_from_slice(block.bytes());
            assert!(block.bytes().ends_with(b"\n") || carry.is_empty());
        }
        assert_eq!(seen, text.as_bytes());
    }

    #[test]
    fn a_line_without_end_stops_growing_its_block_past_the_maximum() {
        let max = VERIFY_BLOCK_BYTES + 10;
        let mut endless = std::io::repeat(b'x');
        let mut input = std::io::BufReader::new(&mut endless);
        let mut carry = Vec::new();
        let block = read_block(&mut input, &mut carry, Vec::new(), max)
            .expect("read")
            .expect("a block");
        assert!(block.overlong);
        assert!(block.len > max && block.len <= VERIFY_BLOCK_BYTES * 2);
        assert!(matches!(
            parse_block(block.bytes(), None, max)[..],
            [Parsed::TooLong]
        ));
    }

    #[test]
    fn the_first_line_is_read_no_further_than_the_maximum() {
        let mut endless = std::io::BufReader::new(std::io::repeat(0));
        assert!(matches!(
            read_first_line(&mut endless, 1_000).expect("read"),
            FirstLine::TooLong
        ));
        let mut short: &[u8] = b"abc\nrest";
        assert!(matches!(
            read_first_line(&mut short, 3).expect("read"),
            FirstLine::Line(ref line) if line == b"abc"
        ));
    }

    #[test]
    fn tenancy_is_the_metadata_string_member_tenant_id_and_nothing_else() {
        assert_eq!(
            tenant_of(r#"{"tenant_id":"acme"}"#).as_deref(),
            Some("acme")
        );
        assert_eq!(tenant_of(r#"{"actor":"x"}"#), None);
        assert_eq!(tenant_of(r#"{"tenant_id":7}"#), None);
        assert_eq!(tenant_of(r#"{"tenant_id":"a","tenant_id":"b"}"#), None);
        assert_eq!(tenant_of("null"), None);
        // The member is the one the domain writes.
        assert_eq!(dezky_domain::metadata::KEY_TENANT_ID, "tenant_id");
    }
}
