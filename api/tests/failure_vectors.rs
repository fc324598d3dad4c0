//! The failure test vectors of docs/ledger-format.md §9: small tampered exports in
//! `docs/ledger-format/failures/`, one or more per break kind, each with the verdict the
//! format gives it in `manifest.json` (outcome, exit code, kind, position, line).
//!
//! Two tests keep them honest. One regenerates every file from the generator below and
//! compares it with the committed one, so the vectors stay reproducible (run with
//! `DEZKY_WRITE_FAILURE_VECTORS=1` to write them after a deliberate change). The other runs
//! the real `dezky audit verify` on each committed vector exactly as the manifest says and
//! checks the verdict, so the vectors and the binary can never drift apart.
//!
//! The expected verdicts are written here by hand, from the rules of §7, never taken from the
//! verifier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dezky_commands::checkpoint::SignedCheckpoint;
use dezky_commands::encoding::{canonical_json, EventRecord, Hash32, GENESIS_PREV_HASH};
use dezky_commands::export::{write_checkpoint, write_elided, write_event, write_header};
use dezky_commands::keys::SigningKey;
use dezky_commands::merkle::Frontier;
use dezky_commands::verify::BreakKind;
use serde_json::{json, Value};

const ORIGIN: &str = "dezky.example/ledger";
/// The trusted key's seed. A published test key, never a production one.
const TRUSTED_SEED: [u8; 32] = [0x11; 32];
/// A key of the same name the auditor does not trust.
const UNTRUSTED_SEED: [u8; 32] = [0x22; 32];
/// When the vectors' checkpoints were signed.
const SIGNED_AT: &str = "2026-11-28T12:01:00.000000Z";
/// Positions of the base ledger and their tenants: `globex` owns 3, 6 and 10.
const TENANT_OF: [&str; 10] = [
    "acme", "acme", "globex", "acme", "acme", "globex", "acme", "acme", "acme", "globex",
];
/// The base exports are signed at these sizes.
const SIGNED: [u64; 2] = [4, 8];
/// Set to regenerate the committed files instead of comparing with them.
const WRITE_ENV: &str = "DEZKY_WRITE_FAILURE_VECTORS";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/ledger-format/failures")
}

fn key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_seed(ORIGIN, seed).expect("key")
}

/// The ten events of the base ledger, chained from genesis.
fn base_events() -> Vec<EventRecord> {
    let mut events: Vec<EventRecord> = Vec::new();
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, tenant) in TENANT_OF.iter().enumerate() {
        let position = index as u64 + 1;
        let version = versions.entry(tenant).or_insert(0);
        *version += 1;
        let payload = match *version {
            1 => json!({"TenantCreated": {"seats": 5, "slug": tenant}}),
            _ => json!({"MemberAdded": {
                "email": format!("member{position}@{tenant}.example"),
                "role": if position.is_multiple_of(2) { "admin" } else { "member" },
            }}),
        };
        let prev_hash = events.last().map_or(GENESIS_PREV_HASH, |e| e.hash);
        events.push(event(position, tenant, *version, &payload, prev_hash));
    }
    events
}

fn event(
    position: u64,
    tenant: &str,
    version: u64,
    payload: &Value,
    prev_hash: Hash32,
) -> EventRecord {
    let event_type = payload
        .as_object()
        .and_then(|o| o.keys().next())
        .expect("a tagged payload")
        .clone();
    let metadata = json!({
        "actor_email": format!("admin@{tenant}.example"),
        "actor_subject": format!("{tenant}-admin"),
        "tenant_id": tenant,
    });
    let mut record = EventRecord {
        position,
        recorded_at: format!("2026-11-28T12:00:{:02}.000000Z", position),
        aggregate_type: "tenant".into(),
        aggregate_id: tenant.into(),
        aggregate_version: version,
        event_type,
        event_version: "1.0".into(),
        metadata: canonical_json(&metadata).expect("canonical"),
        payload: canonical_json(payload).expect("canonical"),
        prev_hash,
        hash: [0; 32],
    };
    record.hash = record.computed_hash();
    record
}

/// Re-chains `events` from `prev` and re-hashes each, as an attacker who knows the format.
fn rehash(events: &mut [EventRecord], mut prev: Hash32) {
    for event in events {
        event.prev_hash = prev;
        event.hash = event.computed_hash();
        prev = event.hash;
    }
}

/// A signed checkpoint over the first `size` of `events`.
fn checkpoint(events: &[EventRecord], size: u64, seed: &[u8; 32]) -> String {
    let covered = &events[..size as usize];
    let mut frontier = Frontier::default();
    for event in covered {
        frontier.push(&event.hash);
    }
    let head = covered.last().map_or(GENESIS_PREV_HASH, |e| e.hash);
    SignedCheckpoint::sign(ORIGIN, size, &frontier.root(), &head, SIGNED_AT, &key(seed))
        .expect("sign")
        .note
}

/// An export of `events` (whole, or for `tenant`), with checkpoints of the true log
/// (`truth`) at `signed` sizes placed right after the event at their size.
fn export(
    events: &[EventRecord],
    truth: &[EventRecord],
    signed: &[u64],
    tenant: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    let up_to = events.last().map_or(0, |e| e.position);
    write_header(
        &mut out,
        0,
        &GENESIS_PREV_HASH,
        &Frontier::default(),
        up_to,
        tenant,
    )
    .expect("header");
    for event in events {
        let theirs = TENANT_OF[event.position as usize - 1];
        match tenant {
            Some(tenant) if tenant != theirs => {
                write_elided(&mut out, event.position, &event.prev_hash, &event.hash)
            }
            _ => write_event(&mut out, event),
        }
        .expect("line");
        if signed.contains(&event.position) {
            write_checkpoint(&mut out, &checkpoint(truth, event.position, &TRUSTED_SEED))
                .expect("checkpoint");
        }
    }
    lines(out)
}

fn lines(bytes: Vec<u8>) -> Vec<String> {
    String::from_utf8(bytes)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn joined(lines: &[String]) -> Vec<u8> {
    let mut file = lines.join("\n").into_bytes();
    file.push(b'\n');
    file
}

/// The line index (0-based) holding the event or elided line of `position`.
fn at(lines: &[String], position: u64) -> usize {
    lines
        .iter()
        .position(|line| {
            let value: Value = serde_json::from_str(line).expect("JSON");
            value["position"] == position && value["type"] != "checkpoint"
        })
        .expect("a line for the position")
}

fn event_line(event: &EventRecord) -> String {
    let mut out = Vec::new();
    write_event(&mut out, event).expect("line");
    lines(out).remove(0)
}

fn elided_line(event: &EventRecord) -> String {
    let mut out = Vec::new();
    write_elided(&mut out, event.position, &event.prev_hash, &event.hash).expect("line");
    lines(out).remove(0)
}

/// What the binary must answer for one vector.
struct Verdict {
    outcome: &'static str,
    exit_code: u8,
    found: Option<(BreakKind, u64, Option<u64>)>,
    tenant_completeness: Option<&'static str>,
}

fn intact() -> Verdict {
    Verdict {
        outcome: "intact",
        exit_code: 0,
        found: None,
        tenant_completeness: None,
    }
}

fn broken(kind: BreakKind, position: u64, line: Option<u64>) -> Verdict {
    Verdict {
        outcome: "break",
        exit_code: 1,
        found: Some((kind, position, line)),
        tenant_completeness: None,
    }
}

/// One vector: a file (absent for usage and read errors), the command line after `dezky`,
/// and its verdict.
struct Vector {
    name: &'static str,
    what: &'static str,
    file: Option<(String, Vec<u8>)>,
    command: Vec<String>,
    verdict: Verdict,
}

fn verify_command(file: &str, extra: &[&str]) -> Vec<String> {
    let mut command: Vec<String> = ["audit", "verify", "--export", file, "--keys", "keys.txt"]
        .map(str::to_owned)
        .to_vec();
    command.extend(extra.iter().map(|s| (*s).to_owned()));
    command.push("--json".into());
    command
}

/// A vector verified with the trusted keys.
fn vector(name: &'static str, what: &'static str, lines: Vec<String>, verdict: Verdict) -> Vector {
    vector_bytes(name, what, joined(&lines), &[], verdict)
}

fn vector_bytes(
    name: &'static str,
    what: &'static str,
    bytes: Vec<u8>,
    extra: &[&str],
    verdict: Verdict,
) -> Vector {
    let file = format!("{name}.jsonl");
    Vector {
        name,
        what,
        command: verify_command(&file, extra),
        file: Some((file, bytes)),
        verdict,
    }
}

/// Every vector, in the order of §7's table.
fn vectors() -> Vec<Vector> {
    use BreakKind::*;
    let all = base_events();
    let truth = &all[..8];
    let whole = export(truth, truth, &SIGNED, None);
    let acme = export(truth, truth, &SIGNED, Some("acme"));
    let mut vectors = Vec::new();

    vectors.push(vector(
        "intact",
        "the base export: 8 events, signed at 4 and 8",
        whole.clone(),
        intact(),
    ));
    vectors.push(vector(
        "intact-tenant",
        "acme's export of the base ledger: globex's events 3 and 6 elided",
        acme.clone(),
        Verdict {
            tenant_completeness: Some("not_proven"),
            ..intact()
        },
    ));

    let mut lines = whole.clone();
    lines[0] = lines[0].replacen("\"version\":1", "\"version\":2", 1);
    vectors.push(vector(
        "header-version-2",
        "the header claims format version 2",
        lines,
        broken(Malformed, 0, Some(1)),
    ));
    vectors.push(vector_bytes(
        "empty",
        "an empty file",
        Vec::new(),
        &[],
        broken(Malformed, 0, Some(1)),
    ));
    let mut lines = whole.clone();
    let index = at(&lines, 5);
    lines[index] = lines[index].replacen('{', r#"{"approved_by":"CFO","#, 1);
    vectors.push(vector(
        "unknown-member",
        "event 5 carries a member the hash does not cover",
        lines,
        broken(Malformed, 5, Some(7)),
    ));
    let mut bytes = joined(&whole);
    let label = bytes
        .windows(b"member5@".len())
        .position(|w| w == b"member5@")
        .expect("event 5's e-mail");
    bytes[label] = 0xff;
    vectors.push(vector_bytes(
        "invalid-utf8",
        "a byte of event 5's payload is not UTF-8",
        bytes,
        &[],
        broken(Malformed, 5, Some(7)),
    ));
    let mut long = truth.to_vec();
    long[4].payload = canonical_json(&json!({"MemberAdded": {
        "email": "member5@acme.example",
        "note": "x".repeat(1_000),
        "role": "member",
    }}))
    .expect("canonical");
    rehash(&mut long[4..], truth[3].hash);
    let long_export = joined(&export(&long, &long, &SIGNED, None));
    vectors.push(vector_bytes(
        "line-too-long",
        "a genuine export whose event 5 is longer than --max-line-bytes 1000",
        long_export,
        &["--max-line-bytes", "1000"],
        broken(LineTooLong, 5, Some(7)),
    ));
    vectors.push(Vector {
        name: "line-too-long-default",
        what: "the same export under the default maximum (16 MiB) is intact",
        file: None,
        command: verify_command("line-too-long.jsonl", &[]),
        verdict: intact(),
    });

    let mut lines = whole.clone();
    let index = at(&lines, 5);
    lines[index] = lines[index].replacen("member5@", "member9@", 1);
    vectors.push(vector(
        "modified",
        "event 5's payload changed",
        lines,
        broken(Modified, 5, Some(7)),
    ));
    let mut events = truth.to_vec();
    events[5].payload = events[5].payload.replacen("member6@", "intruder@", 1);
    events[5].hash = events[5].computed_hash();
    let mut lines = whole.clone();
    lines[at(&whole, 6)] = event_line(&events[5]);
    vectors.push(vector(
        "rewritten",
        "event 6 rewritten and re-hashed; event 7 still points at the original",
        lines,
        broken(Modified, 6, Some(8)),
    ));

    let mut forged = truth[5].clone();
    forged.payload = forged.payload.replacen("member6@", "intruder@", 1);
    forged.hash = forged.computed_hash();
    let mut lines = whole.clone();
    lines.insert(at(&whole, 6), event_line(&forged));
    vectors.push(vector(
        "inserted",
        "a forged event 6 with a valid hash, linked onto event 5, before the genuine event 6",
        lines,
        broken(Inserted, 6, Some(8)),
    ));

    let mut lines = whole.clone();
    lines.remove(at(&whole, 6));
    vectors.push(vector(
        "deleted",
        "event 6's line removed",
        lines,
        broken(Deleted, 7, Some(8)),
    ));

    let mut lines = whole.clone();
    lines.swap(at(&whole, 6), at(&whole, 7));
    vectors.push(vector(
        "reordered",
        "events 6 and 7 swapped",
        lines,
        broken(Reordered, 7, Some(8)),
    ));

    let mut events = truth.to_vec();
    events.remove(5);
    rehash(&mut events[5..], truth[4].hash);
    let mut lines = whole.clone();
    lines.remove(at(&whole, 6));
    lines[at(&whole, 7) - 1] = event_line(&events[5]);
    lines[at(&whole, 8) - 1] = event_line(&events[6]);
    vectors.push(vector(
        "position-gap",
        "event 6 removed and 7 and 8 re-hashed to link across the hole, positions unchanged",
        lines,
        broken(PositionGap, 7, Some(8)),
    ));

    let mut lines = whole.clone();
    lines.drain(at(&whole, 7)..=at(&whole, 8));
    vectors.push(vector(
        "truncated",
        "events 7 and 8 removed; the checkpoint of size 8 left at the end",
        lines,
        broken(Truncated, 7, Some(9)),
    ));

    let mut events = truth.to_vec();
    events[5].payload = events[5].payload.replacen("member6@", "intruder@", 1);
    rehash(&mut events[5..], truth[4].hash);
    let mut lines = whole.clone();
    for event in &events[5..] {
        lines[at(&whole, event.position)] = event_line(event);
    }
    vectors.push(vector(
        "rolled-back",
        "events 6 to 8 rewritten and re-hashed so every link holds; the checkpoint of size 8 disagrees",
        lines,
        broken(RolledBack, 8, Some(11)),
    ));

    let mut lines = whole.clone();
    let index = at(&whole, 4) + 1;
    lines[index] = lines[index].replacen("\\n4\\n", "\\n5\\n", 1);
    vectors.push(vector(
        "bad-checkpoint-signature",
        "the size line of the checkpoint of size 4 changed to 5",
        lines,
        broken(BadCheckpointSignature, 5, Some(6)),
    ));

    let mut lines = whole.clone();
    let mut out = Vec::new();
    write_checkpoint(&mut out, &checkpoint(truth, 8, &UNTRUSTED_SEED)).expect("checkpoint");
    lines[at(&whole, 8) + 1] = crate::lines(out).remove(0);
    vectors.push(vector(
        "unknown-key",
        "the checkpoint of size 8 re-signed by a key of the same name that is not trusted",
        lines,
        broken(UnknownKey, 8, Some(11)),
    ));

    let mut lines = whole.clone();
    lines.push(whole[at(&whole, 4) + 1].clone());
    vectors.push(vector(
        "checkpoint-misplaced",
        "the valid checkpoint of size 4 repeated after the checkpoint of size 8",
        lines,
        broken(CheckpointMisplaced, 8, Some(12)),
    ));

    vectors.push(vector(
        "no-checkpoints",
        "every checkpoint removed; the chain left as it was",
        whole
            .iter()
            .filter(|line| !line.contains("\"type\":\"checkpoint\""))
            .cloned()
            .collect(),
        broken(UnsignedTail, 1, Some(2)),
    ));
    let tail = export(&all, &all, &SIGNED, None);
    vectors.push(vector(
        "unsigned-tail",
        "a genuine export of 10 events whose last checkpoint is of size 8",
        tail,
        broken(UnsignedTail, 9, Some(12)),
    ));
    vectors.push(Vector {
        name: "unsigned-tail-allowed",
        what: "the same export with --allow-unsigned-tail: intact, 9..10 reported unsigned",
        file: None,
        command: verify_command("unsigned-tail.jsonl", &["--allow-unsigned-tail"]),
        verdict: intact(),
    });
    let mut forged_tail = truth.to_vec();
    let mut appended = all[8].clone();
    appended.payload = appended.payload.replacen("member9@", "intruder@", 1);
    forged_tail.push(appended);
    rehash(&mut forged_tail[8..], truth[7].hash);
    let mut lines = whole.clone();
    lines.push(event_line(&forged_tail[8]));
    lines[0] = lines[0].replacen("\"up_to\":8", "\"up_to\":9", 1);
    vectors.push(vector(
        "forged-event-appended",
        "a forged event 9 with a valid hash appended after the last checkpoint, header raised to 9",
        lines,
        broken(UnsignedTail, 9, Some(12)),
    ));

    let mut lines = whole.clone();
    lines[0] = lines[0].replacen("\"up_to\":8", "\"up_to\":7", 1);
    vectors.push(vector(
        "header-mismatch",
        "the header announces up_to 7 but event 8 follows",
        lines,
        broken(HeaderMismatch, 8, Some(10)),
    ));

    let mut lines = whole.clone();
    lines[at(&whole, 3)] = elided_line(&truth[2]);
    vectors.push(vector(
        "elided-in-whole-export",
        "an export of the whole log with event 3 replaced by an elided line",
        lines,
        broken(ElidedInWholeExport, 3, Some(4)),
    ));

    let mut lines = acme.clone();
    lines[at(&acme, 3)] = event_line(&truth[2]);
    vectors.push(vector(
        "foreign-event",
        "acme's export holding globex's event 3 in full",
        lines,
        broken(ForeignEvent, 3, Some(4)),
    ));
    let mut lines = acme.clone();
    lines[0] = lines[0].replacen("\"tenant\":\"acme\"", "\"tenant\":\"globex\"", 1);
    vectors.push(vector(
        "tenant-header-changed",
        "acme's export whose header names globex",
        lines,
        broken(ForeignEvent, 1, Some(2)),
    ));
    let mut lines = acme.clone();
    lines[at(&acme, 5)] = elided_line(&truth[4]);
    vectors.push(vector(
        "own-event-elided",
        "acme's export with acme's own event 5 elided: undetectable today, so never claimed complete",
        lines,
        Verdict {
            tenant_completeness: Some("not_proven"),
            ..intact()
        },
    ));

    vectors.push(Vector {
        name: "usage",
        what: "--export without --keys",
        file: None,
        command: ["audit", "verify", "--export", "intact.jsonl", "--json"]
            .map(str::to_owned)
            .to_vec(),
        verdict: Verdict {
            outcome: "usage",
            exit_code: 2,
            found: None,
            tenant_completeness: None,
        },
    });
    vectors.push(Vector {
        name: "cannot-read",
        what: "an export file that does not exist",
        file: None,
        command: verify_command("missing.jsonl", &[]),
        verdict: Verdict {
            outcome: "cannot_read",
            exit_code: 3,
            found: None,
            tenant_completeness: None,
        },
    });
    vectors
}

/// One line of `manifest.json`, members in the order a reader wants them.
#[derive(serde::Serialize)]
struct ManifestEntry<'a> {
    name: &'a str,
    command: &'a [String],
    outcome: &'a str,
    exit_code: u8,
    kind: Option<&'a str>,
    position: Option<u64>,
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_completeness: Option<&'a str>,
    what: &'a str,
}

/// Every file of the directory, by name: the vectors, the keys and the manifest.
fn generated() -> BTreeMap<String, Vec<u8>> {
    let vectors = vectors();
    let mut files = BTreeMap::new();
    let mut entries = Vec::new();
    for vector in &vectors {
        if let Some((name, bytes)) = &vector.file {
            files.insert(name.clone(), bytes.clone());
        }
        let verdict = &vector.verdict;
        let entry = ManifestEntry {
            name: vector.name,
            command: &vector.command,
            outcome: verdict.outcome,
            exit_code: verdict.exit_code,
            kind: verdict.found.map(|(kind, _, _)| kind.code()),
            position: verdict.found.map(|(_, position, _)| position),
            line: verdict.found.and_then(|(_, _, line)| line),
            tenant_completeness: verdict.tenant_completeness,
            what: vector.what,
        };
        entries.push(serde_json::to_string(&entry).expect("entry"));
    }
    // One vector a line: easy to read, and a change shows as one changed line.
    let text = format!("[\n{}\n]\n", entries.join(",\n"));
    files.insert("manifest.json".into(), text.into_bytes());
    files.insert(
        "keys.txt".into(),
        format!(
            "# The trusted key of the failure vectors (docs/ledger-format.md §9). Not a production key.\n{}\n",
            key(&TRUSTED_SEED).public_line()
        )
        .into_bytes(),
    );
    files
}

fn on_disk(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.expect("directory entry"))
                .map(|entry| {
                    let name = entry.file_name().into_string().expect("UTF-8 name");
                    (name, std::fs::read(entry.path()).expect("read"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_committed_failure_vectors_are_exactly_what_the_generator_writes() {
    let generated = generated();
    if std::env::var_os(WRITE_ENV).is_some() {
        std::fs::create_dir_all(dir()).expect("create the directory");
        for (name, _) in on_disk(&dir()) {
            if !generated.contains_key(&name) {
                std::fs::remove_file(dir().join(name)).expect("remove a stale file");
            }
        }
        // Each file is replaced whole (write, then rename), so the test that runs the binary
        // on them meanwhile never reads half a file.
        for (name, bytes) in &generated {
            let partial = dir().join(format!(".{name}.partial"));
            std::fs::write(&partial, bytes).expect("write");
            std::fs::rename(&partial, dir().join(name)).expect("replace");
        }
    }
    let committed = on_disk(&dir());
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "the files differ; run with {WRITE_ENV}=1 after a deliberate change"
    );
    for (name, bytes) in &generated {
        assert!(
            committed[name] == *bytes,
            "{name} differs from the generator's; run with {WRITE_ENV}=1 after a deliberate change"
        );
    }
}

#[test]
fn every_committed_failure_vector_gets_its_manifest_verdict_from_the_dezky_binary() {
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir().join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    assert!(!manifest.is_empty());
    for entry in &manifest {
        let name = entry["name"].as_str().expect("name");
        let command: Vec<&str> = entry["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|arg| arg.as_str().expect("argument"))
            .collect();
        let output = Command::new(env!("CARGO_BIN_EXE_dezky"))
            .args(&command)
            .current_dir(dir())
            .env_remove("DEZKY_DATABASE_URL")
            .env_remove("DEZKY_TRUSTED_KEYS_FILE")
            .output()
            .expect("dezky runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{name}: not one JSON object ({e}): {stdout}"));
        assert_eq!(
            output.status.code(),
            entry["exit_code"].as_i64().map(|c| c as i32),
            "{name}: exit code; {answer}"
        );
        assert_eq!(answer["exit_code"], entry["exit_code"], "{name}");
        assert_eq!(answer["outcome"], entry["outcome"], "{name}: {answer}");
        let expected = entry["kind"].as_str().map(|code| {
            (
                BreakKind::from_code(code).expect("a kind the verifier knows"),
                entry["position"].as_u64().expect("position"),
                entry["line"].as_u64(),
            )
        });
        let found = answer["break"]["kind"].as_str().map(|code| {
            (
                BreakKind::from_code(code).expect("a kind the verifier knows"),
                answer["break"]["position"].as_u64().expect("position"),
                answer["break"]["line"].as_u64(),
            )
        });
        assert_eq!(found, expected, "{name}: {answer}");
        if let Some(completeness) = entry.get("tenant_completeness") {
            assert_eq!(&answer["tenant_completeness"], completeness, "{name}");
        }
    }
}

#[test]
fn the_failure_vectors_name_every_break_kind() {
    let named: Vec<BreakKind> = vectors()
        .iter()
        .filter_map(|vector| vector.verdict.found.map(|(kind, _, _)| kind))
        .collect();
    for kind in BreakKind::ALL {
        assert!(named.contains(&kind), "no vector for {}", kind.code());
    }
}
