//! The property an auditor relies on: no change to an export verifies as intact unless it
//! changes nothing the export says. Random exports of 1,000 events (a whole export and a
//! tenant export) are mutated one change at a time — a single byte, a line deleted,
//! duplicated or swapped, a forged event inserted — and every mutant must break with a named
//! kind, or leave the export's content byte for byte as it was.
//!
//! "Content" is every line but the checkpoint lines: a checkpoint is evidence, and an export
//! cannot show how many there were, so removing one that a later checkpoint makes redundant
//! changes nothing the export proves (docs/ledger-format.md §7). Removing the last one does:
//! that is an `unsigned_tail`. The run is seeded; a failure prints the seed and the mutation.

use std::collections::BTreeMap;

use dezky_commands::checkpoint::SignedCheckpoint;
use dezky_commands::encoding::{canonical_json, EventRecord, Hash32, GENESIS_PREV_HASH};
use dezky_commands::export::{
    tenant_of, verify_export, write_checkpoint, write_elided, write_event, write_header,
    VerifyOptions,
};
use dezky_commands::keys::{SigningKey, TrustedKeys};
use dezky_commands::merkle::Frontier;
use dezky_commands::verify::{BreakKind, Report};

const SEED: u64 = 0x5eed_0fe8_9017_2026;
const EVENTS: u64 = 1_000;
const ORIGIN: &str = "dezky.test/ledger";
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An export as its lines' bytes, without the `\n` after each.
type Lines = Vec<Vec<u8>>;

fn key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[42; 32]).expect("key")
}

fn trusted() -> TrustedKeys {
    TrustedKeys::parse(key().public_line(), "keys.txt").expect("keys")
}

/// A random event at `position`, chained onto `prev_hash`.
fn random_event(rng: &mut Rng, position: u64, prev_hash: Hash32) -> EventRecord {
    let tenant = TENANTS[rng.below(TENANTS.len())];
    let metadata = if rng.below(10) == 0 {
        // Platform events belong to no tenant.
        serde_json::json!({ "actor_subject": "system" })
    } else {
        serde_json::json!({
            "actor_subject": format!("user-{}", rng.below(50)),
            "tenant_id": tenant,
        })
    };
    let payload = serde_json::json!({
        "ReadingRecorded": {
            "label": format!("reading {} of {tenant}: Grüße", rng.below(1_000)),
            "ok": rng.below(2) == 0,
            "value_milli": rng.next() % 100_000,
        }
    });
    let mut record = EventRecord {
        position,
        recorded_at: format!(
            "2026-01-01T{:02}:{:02}:{:02}.000000Z",
            position / 3600,
            position / 60 % 60,
            position % 60
        ),
        aggregate_type: "probe".into(),
        aggregate_id: format!("probe-{}", rng.below(40)),
        aggregate_version: position,
        event_type: "ReadingRecorded".into(),
        event_version: "2.0".into(),
        metadata: canonical_json(&metadata).expect("canonical"),
        payload: canonical_json(&payload).expect("canonical"),
        prev_hash,
        hash: [0; 32],
    };
    record.hash = record.computed_hash();
    record
}

/// A random log with checkpoints at a few random sizes and at its end, written as a whole
/// export (`tenant` None) or as one tenant's export.
fn random_export(rng: &mut Rng, tenant: Option<&str>) -> Lines {
    let mut out = Vec::new();
    write_header(
        &mut out,
        0,
        &GENESIS_PREV_HASH,
        &Frontier::default(),
        EVENTS,
        tenant,
    )
    .expect("header");
    let signed_at: Vec<u64> = (0..4)
        .map(|_| 1 + rng.next() % EVENTS)
        .chain([EVENTS])
        .collect();
    let mut frontier = Frontier::default();
    let mut prev_hash = GENESIS_PREV_HASH;
    for position in 1..=EVENTS {
        let record = random_event(rng, position, prev_hash);
        match tenant {
            Some(tenant) if tenant_of(&record.metadata).as_deref() != Some(tenant) => {
                write_elided(&mut out, position, &record.prev_hash, &record.hash)
            }
            _ => write_event(&mut out, &record),
        }
        .expect("line");
        frontier.push(&record.hash);
        prev_hash = record.hash;
        if signed_at.contains(&position) {
            let checkpoint = SignedCheckpoint::sign(
                ORIGIN,
                position,
                &frontier.root(),
                &prev_hash,
                "2026-01-02T00:00:00.000000Z",
                &key(),
            )
            .expect("sign");
            write_checkpoint(&mut out, &checkpoint.note).expect("checkpoint");
        }
    }
    out.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn verify(lines: &Lines) -> Report {
    let mut file = lines.join(&b'\n');
    file.push(b'\n');
    verify_export(
        file.as_slice(),
        trusted(),
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("in-memory input is always read")
}

fn is_checkpoint(line: &[u8]) -> bool {
    line.starts_with(br#"{"type":"checkpoint""#)
}

/// Every line but the checkpoint lines.
fn content(lines: &Lines) -> Vec<&Vec<u8>> {
    lines.iter().filter(|line| !is_checkpoint(line)).collect()
}

/// The position and hash of the last event or elided line among `lines` (0 and zeros if
/// none): where a forger chains a new event on.
fn last_link_before(lines: &[Vec<u8>]) -> (u64, Hash32) {
    lines
        .iter()
        .rev()
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find(|value| matches!(value["type"].as_str(), Some("event" | "elided")))
        .map_or((0, GENESIS_PREV_HASH), |value| {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(value["hash"].as_str().expect("hash"), &mut hash).expect("hex");
            (value["position"].as_u64().expect("position"), hash)
        })
}

/// One change to an export, described for the failure message.
fn mutate(rng: &mut Rng, lines: &Lines) -> (String, Lines) {
    let mut mutant = lines.clone();
    let i = rng.below(lines.len());
    let what = match rng.below(5) {
        0 => {
            // Any byte of the line, or the newline after it.
            let at = rng.below(lines[i].len() + 1);
            let old = lines[i].get(at).copied().unwrap_or(b'\n');
            // Half the time any byte; otherwise one from the same line, which keeps the line
            // UTF-8 and JSON-like more often and so reaches the rules past the parser.
            let byte = loop {
                let b = match rng.below(2) {
                    0 => rng.next() as u8,
                    _ => lines[i][rng.below(lines[i].len())],
                };
                if b != old {
                    break b;
                }
            };
            if at == lines[i].len() {
                // The newline replaced: this line and the next (if any) become one.
                mutant[i].push(byte);
                if i + 1 < mutant.len() {
                    let next = mutant.remove(i + 1);
                    mutant[i].extend(next);
                }
            } else {
                mutant[i][at] = byte;
            }
            format!("line {} byte {at} set to {byte:#04x}", i + 1)
        }
        1 => {
            mutant.remove(i);
            format!("line {} deleted", i + 1)
        }
        2 => {
            // Half the time right after itself, otherwise anywhere.
            let to = match rng.below(2) {
                0 => i + 1,
                _ => rng.below(lines.len() + 1),
            };
            mutant.insert(to, lines[i].clone());
            format!("line {} copied before line {}", i + 1, to + 1)
        }
        3 => {
            // Half the time with its neighbour, otherwise with any other line.
            let j = match rng.below(2) {
                0 => (i + 1) % lines.len(),
                _ => (i + 1 + rng.below(lines.len() - 1)) % lines.len(),
            };
            mutant.swap(i, j);
            format!("lines {} and {} swapped", i + 1, j + 1)
        }
        _ => {
            let at = 1 + rng.below(lines.len());
            let (position, prev_hash) = last_link_before(&mutant[..at]);
            let mut forged = Vec::new();
            write_event(&mut forged, &random_event(rng, position + 1, prev_hash)).expect("line");
            forged.pop();
            mutant.insert(at, forged);
            format!(
                "a forged event {} inserted before line {}",
                position + 1,
                at + 1
            )
        }
    };
    (what, mutant)
}

/// Verifies `mutants` mutants of a random export; returns how often each outcome occurred.
fn run(tenant: Option<&str>, mutants: usize, seed: u64) -> BTreeMap<&'static str, usize> {
    let mut rng = Rng(seed);
    let original = random_export(&mut rng, tenant);
    let report = verify(&original);
    assert_eq!(report.first_break, None, "the generated export verifies");
    assert_eq!(report.events, EVENTS);
    let mut outcomes = BTreeMap::new();
    for n in 0..mutants {
        let (what, mutant) = mutate(&mut rng, &original);
        let report = verify(&mutant);
        let outcome = match &report.first_break {
            Some(found) => found.kind.code(),
            None => {
                // Intact is allowed only if the content is unchanged and still all signed:
                // a checkpoint line that a later one makes redundant was removed.
                assert!(
                    content(&mutant) == content(&original)
                        && mutant.len() + 1 == original.len()
                        && report.last_position == EVENTS
                        && report.unsigned.is_none(),
                    "seed {seed:#x}, mutant {n}: {what} verified intact but changed the export"
                );
                "intact: a redundant checkpoint removed"
            }
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    outcomes
}

#[test]
fn no_single_change_to_a_whole_export_verifies_unless_it_changes_nothing_the_export_says() {
    let outcomes = run(None, 200, SEED);
    eprintln!("{outcomes:#?}");
    // The mutations reached many of the verifier's rules, not one.
    for kind in [
        BreakKind::Malformed,
        BreakKind::Modified,
        BreakKind::Inserted,
        BreakKind::Deleted,
        BreakKind::Reordered,
    ] {
        assert!(outcomes.contains_key(kind.code()), "{outcomes:#?}");
    }
}

#[test]
fn no_single_change_to_a_tenant_export_verifies_unless_it_changes_nothing_the_export_says() {
    let outcomes = run(Some("acme"), 120, SEED.rotate_left(17));
    eprintln!("{outcomes:#?}");
    for kind in [
        BreakKind::Malformed,
        BreakKind::Modified,
        BreakKind::Inserted,
    ] {
        assert!(outcomes.contains_key(kind.code()), "{outcomes:#?}");
    }
}
