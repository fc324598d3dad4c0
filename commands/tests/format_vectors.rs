//! The test vectors of docs/ledger-format.md, checked by an independent re-implementation of
//! the documented encoding (it never calls the ledger's own encoder or Merkle code), and by
//! the ledger's offline verifier.

use std::path::PathBuf;

use dezky_commands::export::{verify_export, VerifyOptions};
use dezky_commands::keys::TrustedKeys;
use sha2::{Digest, Sha256};

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(docs().join(path)).expect("the docs file exists")
}

/// `str(s)` of §3: the byte length as u32 big-endian, then the bytes.
fn put_str(bytes: &mut Vec<u8>, s: &str) {
    bytes.extend_from_slice(&(s.len() as u32).to_be_bytes());
    bytes.extend_from_slice(s.as_bytes());
}

/// Returns the raw text of a JSON value embedded in a line: the bytes between `"key":` and
/// the next top-level `,"` — which §6 promises are exactly the stored bytes.
fn raw_value<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("\"{key}\":")).expect("key present") + key.len() + 3;
    let rest = &line[start..];
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &rest[..=i];
                }
            }
            _ => {}
        }
    }
    panic!("unterminated value for {key}");
}

fn spec_hash(line: &str, event: &serde_json::Value) -> [u8; 32] {
    let text = |k: &str| event[k].as_str().expect("text field").to_owned();
    let number = |k: &str| event[k].as_u64().expect("number field");
    let mut bytes = b"dezky-ledger-event-v1\n".to_vec();
    assert_eq!(bytes.len(), 22, "the tag is 22 bytes as documented");
    bytes.extend_from_slice(&number("position").to_be_bytes());
    bytes.extend_from_slice(&hex::decode(text("prev_hash")).expect("hex"));
    put_str(&mut bytes, &text("recorded_at"));
    put_str(&mut bytes, &text("aggregate_type"));
    put_str(&mut bytes, &text("aggregate_id"));
    bytes.extend_from_slice(&number("aggregate_version").to_be_bytes());
    put_str(&mut bytes, &text("event_type"));
    put_str(&mut bytes, &text("event_version"));
    put_str(&mut bytes, raw_value(line, "metadata"));
    put_str(&mut bytes, raw_value(line, "payload"));
    Sha256::digest(&bytes).into()
}

/// RFC 6962 MTH, recursively, straight from §4.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(leaves[0]);
            h.finalize().into()
        }
        n => {
            // k is the largest power of two smaller than n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(mth(&leaves[..k]));
            h.update(mth(&leaves[k..]));
            h.finalize().into()
        }
    }
}

#[test]
fn the_documented_test_vector_hashes_follow_from_the_documented_encoding() {
    let doc = read("ledger-format.md");
    let export = read("ledger-format/vector.jsonl");
    let mut prev = [0u8; 32];
    let mut leaves = Vec::new();
    for line in export.lines().filter(|l| l.contains(r#""type":"event""#)) {
        let event: serde_json::Value = serde_json::from_str(line).expect("json line");
        let hash = spec_hash(line, &event);
        let stored = event["hash"].as_str().expect("hash");
        assert_eq!(hex::encode(hash), stored, "hash of {line}");
        assert_eq!(
            event["prev_hash"].as_str(),
            Some(hex::encode(prev).as_str())
        );
        assert!(doc.contains(stored), "the doc lists {stored}");
        prev = hash;
        leaves.push(hash);
    }
    assert_eq!(leaves.len(), 3);
    let root = hex::encode(mth(&leaves));
    assert!(doc.contains(&root), "the doc lists the Merkle root {root}");
}

#[test]
fn the_recursive_merkle_split_matches_rfc_6962_for_small_trees() {
    // Guard the test's own MTH: k must be the largest power of two below n.
    let leaf = |i: u8| [i; 32];
    let leaves: Vec<[u8; 32]> = (0..5).map(leaf).collect();
    let node = |l: [u8; 32], r: [u8; 32]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    };
    let l = |i: usize| mth(&leaves[i..=i]);
    let expected = node(node(node(l(0), l(1)), node(l(2), l(3))), l(4));
    assert_eq!(mth(&leaves), expected);
}

#[test]
fn the_test_vector_export_verifies_offline_with_its_public_key() {
    let keys = TrustedKeys::parse(&read("ledger-format/vector-keys.txt"), "vector-keys.txt")
        .expect("public key file");
    let export = read("ledger-format/vector.jsonl");
    let report = verify_export(
        export.as_bytes(),
        keys,
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("readable export");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, 3);
    assert_eq!(report.checkpoints_verified, 1);
}
