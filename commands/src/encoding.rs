//! The canonical byte encoding of a ledger event and its SHA-256 chain hash.
//!
//! `docs/ledger-format.md` specifies this byte for byte; the test vectors there are checked by
//! `tests::the_documented_test_vector_hashes_as_published`. Change nothing here without a new
//! domain tag: every stored hash depends on it.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash32 = [u8; 32];

/// The `prev_hash` of the first event of a ledger.
pub const GENESIS_PREV_HASH: Hash32 = [0; 32];

/// Domain-separation tag that starts every hashed event encoding (version 1 of the format).
pub const EVENT_HASH_TAG: &[u8] = b"dezky-ledger-event-v1\n";

/// One event as stored in the ledger: every field that the hash covers, plus the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Gapless global position, starting at 1.
    pub position: u64,
    /// When the ledger committed the event (RFC 3339, UTC, microseconds).
    pub recorded_at: String,
    /// Aggregate type (or external audit source, e.g. `audit.authentik`).
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// 1-based version of the aggregate after this event (optimistic concurrency).
    pub aggregate_version: u64,
    /// Stored event type name.
    pub event_type: String,
    /// Schema version of the payload (semantic version text, e.g. `2.0`).
    pub event_version: String,
    /// Metadata as canonical JSON (RFC 8785).
    pub metadata: String,
    /// Payload as canonical JSON (RFC 8785).
    pub payload: String,
    /// Hash of the previous event ([`GENESIS_PREV_HASH`] for position 1).
    pub prev_hash: Hash32,
    /// Hash of this event: [`event_hash`] of the fields above.
    pub hash: Hash32,
}

/// The hashed fields of an event, borrowed, so that verifiers can hash straight from a parse
/// buffer without allocating.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    /// See [`EventRecord::position`].
    pub position: u64,
    /// See [`EventRecord::recorded_at`].
    pub recorded_at: &'a str,
    /// See [`EventRecord::aggregate_type`].
    pub aggregate_type: &'a str,
    /// See [`EventRecord::aggregate_id`].
    pub aggregate_id: &'a str,
    /// See [`EventRecord::aggregate_version`].
    pub aggregate_version: u64,
    /// See [`EventRecord::event_type`].
    pub event_type: &'a str,
    /// See [`EventRecord::event_version`].
    pub event_version: &'a str,
    /// See [`EventRecord::metadata`].
    pub metadata: &'a str,
    /// See [`EventRecord::payload`].
    pub payload: &'a str,
    /// See [`EventRecord::prev_hash`].
    pub prev_hash: &'a Hash32,
}

impl EventRecord {
    /// Borrows the hashed fields.
    pub fn fields(&self) -> EventFields<'_> {
        EventFields {
            position: self.position,
            recorded_at: &self.recorded_at,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            aggregate_version: self.aggregate_version,
            event_type: &self.event_type,
            event_version: &self.event_version,
            metadata: &self.metadata,
            payload: &self.payload,
            prev_hash: &self.prev_hash,
        }
    }

    /// Recomputes the hash from the stored fields.
    pub fn computed_hash(&self) -> Hash32 {
        event_hash(&self.fields())
    }
}

fn put_str(hasher: &mut Sha256, value: &str) {
    // Length prefixes make the encoding unambiguous: no field can bleed into the next.
    // Every field is far below 4 GiB (the ledger refuses larger payloads).
    hasher.update((value.len() as u32).to_be_bytes());
    hasher.update(value.as_bytes());
}

/// Computes an event's hash: SHA-256 over the canonical encoding of docs/ledger-format.md.
///
/// ```text
/// tag || u64be(position) || prev_hash || str(recorded_at) || str(aggregate_type)
///     || str(aggregate_id) || u64be(aggregate_version) || str(event_type)
///     || str(event_version) || str(metadata) || str(payload)
/// where str(s) = u32be(byte length of s) || UTF-8 bytes of s
/// ```
pub fn event_hash(fields: &EventFields<'_>) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(EVENT_HASH_TAG);
    hasher.update(fields.position.to_be_bytes());
    hasher.update(fields.prev_hash);
    put_str(&mut hasher, fields.recorded_at);
    put_str(&mut hasher, fields.aggregate_type);
    put_str(&mut hasher, fields.aggregate_id);
    hasher.update(fields.aggregate_version.to_be_bytes());
    put_str(&mut hasher, fields.event_type);
    put_str(&mut hasher, fields.event_version);
    put_str(&mut hasher, fields.metadata);
    put_str(&mut hasher, fields.payload);
    hasher.finalize().into()
}

/// Serializes a JSON value in RFC 8785 canonical form: the bytes the ledger stores and hashes.
pub fn canonical_json(value: &serde_json::Value) -> Result<String, serde_json::Error> {
    serde_json_canonicalizer::to_string(value)
}

/// Formats a ledger timestamp: RFC 3339, UTC, exactly six fractional digits, `Z`.
pub fn format_timestamp(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EventRecord {
        EventRecord {
            position: 1,
            recorded_at: "2026-11-28T12:00:00.000000Z".into(),
            aggregate_type: "probe".into(),
            aggregate_id: "p-1".into(),
            aggregate_version: 1,
            event_type: "ReadingRecorded".into(),
            event_version: "2.0".into(),
            metadata: r#"{"actor_subject":"user-1"}"#.into(),
            payload:
                r#"{"ReadingRecorded":{"label":"a","reading_no":1,"unit":"ms","value_milli":5}}"#
                    .into(),
            prev_hash: GENESIS_PREV_HASH,
            hash: [0; 32],
        }
    }

    #[test]
    fn moving_bytes_between_adjacent_fields_changes_the_hash() {
        let a = record();
        let mut b = record();
        b.aggregate_type = "probep".into();
        b.aggregate_id = "-1".into();
        assert_ne!(a.computed_hash(), b.computed_hash());
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = record().computed_hash();
        type Mutation = Box<dyn Fn(&mut EventRecord)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|r| r.position = 2),
            Box::new(|r| r.recorded_at.push('x')),
            Box::new(|r| r.aggregate_type.push('x')),
            Box::new(|r| r.aggregate_id.push('x')),
            Box::new(|r| r.aggregate_version = 2),
            Box::new(|r| r.event_type.push('x')),
            Box::new(|r| r.event_version.push('x')),
            Box::new(|r| r.metadata.push(' ')),
            Box::new(|r| r.payload.push(' ')),
            Box::new(|r| r.prev_hash[31] = 1),
        ];
        for (index, mutate) in mutations.iter().enumerate() {
            let mut changed = record();
            mutate(&mut changed);
            assert_ne!(
                changed.computed_hash(),
                base,
                "mutation {index} left the hash unchanged"
            );
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1, "a": [1, 2.50, "é"] }"#).expect("json");
        assert_eq!(
            canonical_json(&value).expect("canonical"),
            r#"{"a":[1,2.5,"é"],"b":1}"#
        );
    }

    #[test]
    fn timestamps_have_six_fractional_digits_and_a_z() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00.5+01:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(format_timestamp(time), "2026-11-28T11:00:00.500000Z");
    }
}
