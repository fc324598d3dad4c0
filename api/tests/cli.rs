//! The `dezky` binary as an operator and an auditor use it: the README's first run, export,
//! offline verification, and the exit codes (0 intact, 1 break, 2 usage, 3 failure).

use std::path::Path;
use std::process::{Command, Output};

fn dezky(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dezky"))
        .args(args)
        .current_dir(dir)
        .env_remove("DEZKY_DATABASE_URL")
        .env_remove("DEZKY_SIGNING_KEY_FILE")
        .env_remove("DEZKY_TRUSTED_KEYS_FILE")
        .output()
        .expect("dezky runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_first_run_creates_the_embedded_store_and_a_private_key_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dezky(dir.path(), &["demo", "--commands", "12"]);
    assert_eq!(
        demo.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(stdout(&demo).contains("chain intact"));
    assert!(dir.path().join("data/dezky.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("data/ledger.key");
        let mode = std::fs::metadata(key)
            .expect("key file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let verify = dezky(dir.path(), &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0));
    assert!(stdout(&verify).starts_with("ledger intact: 12 events"));
}

#[test]
fn an_export_verifies_offline_with_the_public_keys_and_a_tampered_one_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        dezky(dir.path(), &["demo", "--commands", "8"])
            .status
            .code(),
        Some(0)
    );
    let export = dezky(dir.path(), &["audit", "export", "--output", "ledger.jsonl"]);
    assert_eq!(export.status.code(), Some(0));
    let keys = dezky(dir.path(), &["keys", "public"]);
    std::fs::write(dir.path().join("keys.txt"), &keys.stdout).expect("write keys");

    // The offline check runs from a directory holding nothing but the two files.
    let offline = tempfile::tempdir().expect("tempdir");
    for file in ["ledger.jsonl", "keys.txt"] {
        std::fs::copy(dir.path().join(file), offline.path().join(file)).expect("copy");
    }
    let ok = dezky(
        offline.path(),
        &[
            "audit",
            "verify",
            "--export",
            "ledger.jsonl",
            "--keys",
            "keys.txt",
            "--json",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let report: serde_json::Value = serde_json::from_str(stdout(&ok).trim()).expect("json");
    assert_eq!(report["intact"], true);
    assert_eq!(report["events"], 8);
    assert!(
        !offline.path().join("data").exists(),
        "offline verification opens no store"
    );

    let text = std::fs::read_to_string(offline.path().join("ledger.jsonl")).expect("read");
    let tampered = text.replacen("demo reading 3", "demo reading 9", 1);
    std::fs::write(offline.path().join("ledger.jsonl"), tampered).expect("write");
    let broken = dezky(
        offline.path(),
        &[
            "audit",
            "verify",
            "--export",
            "ledger.jsonl",
            "--keys",
            "keys.txt",
            "--json",
        ],
    );
    assert_eq!(broken.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&broken).trim()).expect("json");
    assert_eq!(report["break"]["kind"], "modified");
    assert_eq!(report["break"]["position"], 4);
}

#[test]
fn bad_usage_exits_2_and_a_failed_operation_exits_3_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usage = dezky(dir.path(), &["audit", "verify", "--export", "x.jsonl"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--export without --keys is a usage error"
    );
    let missing = dezky(
        dir.path(),
        &[
            "audit",
            "verify",
            "--export",
            "missing.jsonl",
            "--keys",
            "missing.txt",
        ],
    );
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.txt"));
    let bad_url = dezky(dir.path(), &["--database-url", "mysql://x", "migrate"]);
    assert_eq!(bad_url.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("unsupported database URL"));
    let no_key = dezky(
        dir.path(),
        &[
            "--database-url",
            "postgres://postgres@127.0.0.1/postgres",
            "audit",
            "checkpoint",
        ],
    );
    assert_eq!(no_key.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("DEZKY_SIGNING_KEY_FILE"));
}
