//! One line of an export, read strictly (docs/ledger-format.md §6): the fast path for lines
//! as the exporter writes them, the serde path for everything else, and the header.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::encoding::{event_hash, EventFields, Hash32, GENESIS_PREV_HASH};
use crate::merkle::Frontier;
use crate::verify::{Link, Start};

use super::*;

/// Nesting accepted by the fast line parser inside payload and metadata; deeper values take
/// the serde path (whose own limit is 128).
pub(super) const FAST_MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub(super) enum Parsed {
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
pub(super) const HEX_VALUES: [u8; 256] = {
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
pub(super) fn lower_hex(text: &str) -> Option<Vec<u8>> {
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
pub(super) fn parse_hash(text: &str) -> Option<Hash32> {
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
pub(super) struct EventText<'a> {
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
pub(super) fn event_line(text: &EventText<'_>, tenant: Option<&str>) -> Parsed {
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
pub(super) fn elided_line(position: u64, prev_hash: &str, hash: &str) -> Parsed {
    match (parse_hash(prev_hash), parse_hash(hash)) {
        (Some(prev_hash), Some(hash)) => Parsed::Elided(Link::elided(position, prev_hash, hash)),
        _ => Parsed::Bad(format!(
            "elided line {position}'s prev_hash or hash is not 64 lowercase hex digits"
        )),
    }
}

pub(super) fn parse_line(line: &str, tenant: Option<&str>) -> Parsed {
    // Nearly every line is an event or elided line exactly as `export` writes it; read those
    // without serde. Anything else, or anything the fast parser is unsure of, goes to serde.
    fast::parse(line, tenant).unwrap_or_else(|| parse_line_serde(line, tenant))
}

/// A JSON object's members in order, values left as their raw text. The strict reader checks
/// the member names itself: which names a line may carry depends on its `type`, and a
/// repeated name must be refused, neither of which serde's derive does for one flat struct.
pub(super) struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
pub(super) struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

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

pub(super) const EVENT_MEMBERS: [&str; 14] = [
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
pub(super) const EVENT_REQUIRED: [&str; 10] = [
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
pub(super) const ELIDED_MEMBERS: [&str; 4] = ["type", "position", "prev_hash", "hash"];
pub(super) const CHECKPOINT_MEMBERS: [&str; 2] = ["type", "note"];
pub(super) const HEADER_MEMBERS: [&str; 8] = [
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
pub(super) fn parse_line_serde(line: &str, tenant: Option<&str>) -> Parsed {
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

pub(super) fn serde_event(members: &Members<'_>, tenant: Option<&str>) -> Result<Parsed, String> {
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
pub(super) mod fast {
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
    pub(in crate::export) fn parse(line: &str, tenant: Option<&str>) -> Option<Parsed> {
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
pub(super) struct Header {
    pub(super) start: Start,
    pub(super) up_to: u64,
    pub(super) tenant: Option<String>,
}

/// Reads the header line strictly (§6.1); the error is the reason for a `malformed` break.
pub(super) fn parse_header(line: &str) -> Result<Header, String> {
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
