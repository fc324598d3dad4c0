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

/// A demo ledger's export and public keys in `dir` (`ledger.jsonl`, `keys.txt`).
fn demo_export(dir: &Path) {
    assert_eq!(
        dezky(dir, &["demo", "--commands", "6"]).status.code(),
        Some(0)
    );
    let export = dezky(dir, &["audit", "export", "--output", "ledger.jsonl"]);
    assert_eq!(export.status.code(), Some(0));
    let keys = dezky(dir, &["keys", "public"]);
    std::fs::write(dir.join("keys.txt"), &keys.stdout).expect("write keys");
}

#[test]
fn verifying_dev_zero_ends_at_once_with_a_line_too_long_break_instead_of_exhausting_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    demo_export(dir.path());
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dezky"))
        .args([
            "audit",
            "verify",
            "--export",
            "/dev/zero",
            "--keys",
            "keys.txt",
            "--json",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dezky runs");
    // Reading 16 MiB takes milliseconds; a verifier that buffers without limit never ends.
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().expect("kill");
            panic!("verifying /dev/zero did not end within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("json");
    let found = (
        report["break"]["kind"]
            .as_str()
            .and_then(dezky_commands::verify::BreakKind::from_code),
        report["break"]["line"].as_u64(),
    );
    assert_eq!(
        found,
        (
            Some(dezky_commands::verify::BreakKind::LineTooLong),
            Some(1)
        )
    );
}

#[test]
fn the_summary_says_which_positions_each_key_signs_and_which_are_unsigned() {
    let dir = tempfile::tempdir().expect("tempdir");
    demo_export(dir.path());
    let key = std::fs::read_to_string(dir.path().join("keys.txt")).expect("keys");
    // `<name>+<key id>+<base64>`: the base64 may itself hold a '+'.
    let mut fields = key.trim().splitn(3, '+');
    let label = format!(
        "{}+{}",
        fields.next().expect("name"),
        fields.next().expect("key id")
    );
    let verify = |file: &str, extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--export", file, "--keys", "keys.txt"];
        args.extend_from_slice(extra);
        dezky(dir.path(), &args)
    };
    // Signed to the end: the summary names the range and the key.
    let signed = verify("ledger.jsonl", &[]);
    assert_eq!(signed.status.code(), Some(0));
    assert!(
        stdout(&signed).contains(&format!("signed: positions 1..6 by {label}")),
        "{}",
        stdout(&signed)
    );
    // Without its checkpoint: nothing is signed, which is a break unless allowed.
    let text = std::fs::read_to_string(dir.path().join("ledger.jsonl")).expect("export");
    let unsigned: String = text
        .lines()
        .filter(|line| !line.contains("\"type\":\"checkpoint\""))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(dir.path().join("unsigned.jsonl"), unsigned).expect("write");
    let refused = verify("unsigned.jsonl", &["--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&refused).trim()).expect("json");
    assert_eq!(report["break"]["kind"], "unsigned_tail");
    assert_eq!(report["unsigned"], serde_json::json!({"from": 1, "to": 6}));
    let allowed = verify("unsigned.jsonl", &["--allow-unsigned-tail"]);
    assert_eq!(allowed.status.code(), Some(0));
    assert!(
        stdout(&allowed)
            .contains("signed: no checkpoint: nothing is signed; positions 1..6 unsigned"),
        "{}",
        stdout(&allowed)
    );
}

/// Reads lines of the server's stdout until the listening line, and returns the address.
fn listening_address(
    stdout: std::process::ChildStdout,
) -> (String, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("stdout") > 0,
            "serve exited early"
        );
        if let Some(rest) = line.strip_prefix("dezky listening on http://") {
            let address = rest.split_whitespace().next().expect("address").to_owned();
            return (address, reader);
        }
    }
}

fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response[9..12].parse().expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_in_dev_mode_answers_health_keys_metrics_and_graphql_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_dezky"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("DEZKY_DATABASE_URL")
        .env_remove("DEZKY_OIDC_ISSUER")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let (address, mut rest) = listening_address(server.stdout.take().expect("stdout"));

    assert_eq!(http(&address, "GET", "/healthz", &[], "").0, 200);
    let (status, ready) = http(&address, "GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{ready}");
    let (_, keys) = http(&address, "GET", "/.well-known/dezky/ledger-keys", &[], "");
    let public = dezky(dir.path(), &["keys", "public"]);
    assert_eq!(
        keys,
        stdout(&public),
        "the endpoint publishes what `keys public` prints"
    );
    let (_, explorer) = http(&address, "GET", "/graphql", &[], "");
    assert!(explorer.contains("dezky API explorer"), "{explorer}");

    let token = stdout(&dezky(
        dir.path(),
        &["dev", "token", "--role", "platform-admin"],
    ));
    let auth = format!("Bearer {}", token.trim());
    let create = r#"{"query":"mutation { createTenant(input:{organization:\"Acme GmbH\", slug:\"acme\", plan:\"standard\", seats:5, firstAdmin:{email:\"ada@acme.eu\", displayName:\"Ada\"}}) { slug members { email isOwner } } }"}"#;
    let (status, body) = http(
        &address,
        "POST",
        "/graphql",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        create,
    );
    assert_eq!(status, 200);
    let created: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(created["data"]["createTenant"]["slug"], "acme", "{body}");

    // The tenant's owner gets a token of their own and sees their workspace.
    let admin = stdout(&dezky(
        dir.path(),
        &["dev", "token", "--role", "tenant-admin", "--tenant", "acme"],
    ));
    let auth = format!("Bearer {}", admin.trim());
    let (_, body) = http(
        &address,
        "POST",
        "/graphql",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"query":"{ tenant(slug:\"acme\") { organization } }"}"#,
    );
    assert!(body.contains("Acme GmbH"), "{body}");

    let (_, metrics) = http(&address, "GET", "/metrics", &[], "");
    assert!(metrics.contains("dezky_ledger_head_position"), "{metrics}");

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = server.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
    let mut tail = String::new();
    std::io::Read::read_to_string(&mut rest, &mut tail).expect("rest of stdout");
    assert!(tail.contains("dezky stopped"));
}

#[test]
fn serve_refuses_to_start_without_an_identity_provider_or_with_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let none = dezky(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no identity provider configured"));
    let both = dezky(
        dir.path(),
        &[
            "serve",
            "--dev",
            "--oidc-issuer",
            "https://idp.example/",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(both.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&both.stderr).contains("--dev cannot be combined"));
}

#[test]
fn projections_are_rebuilt_beside_the_live_build_and_listed_with_their_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        dezky(dir.path(), &["demo", "--commands", "6"])
            .status
            .code(),
        Some(0)
    );
    let first = dezky(dir.path(), &["projections", "rebuild", "tenants"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout(&first).starts_with("rebuilt tenants: build 1 is live at position 6"),
        "{}",
        stdout(&first)
    );
    let second = dezky(
        dir.path(),
        &["projections", "rebuild", "tenants", "--keep-old"],
    );
    assert_eq!(second.status.code(), Some(0));
    let summary = stdout(&second);
    assert!(
        summary.starts_with("rebuilt tenants: build 2 is live at position 6")
            && summary.trim_end().ends_with("; build 1 kept"),
        "{summary}"
    );
    let status = dezky(dir.path(), &["projections", "status", "--json"]);
    assert_eq!(status.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let tenants: Vec<(u64, String)> = report["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .filter(|b| b["name"] == "tenants")
        .map(|b| {
            (
                b["build"].as_u64().expect("build"),
                b["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect();
    assert_eq!(tenants, [(1, "retired".to_owned()), (2, "live".to_owned())]);
    let unknown = dezky(dir.path(), &["projections", "rebuild", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("known: tenants, audit, tenant_settings, saga_effects"));
}

#[test]
fn bench_rebuild_rebuilds_both_projections_on_a_scratch_sqlite_file_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("bench/x.db").display());
    let output = dezky(
        dir.path(),
        &[
            "--database-url",
            &url,
            "bench",
            "rebuild",
            "--events",
            "3000",
            "--members",
            "2",
        ],
    );
    let out = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["tenants", "audit"] {
        assert!(
            out.lines()
                .any(|line| line.starts_with(&format!("summary rebuild {name} "))
                    && line.contains("events/s end to end")
                    && line.contains("× the target")),
            "no summary for {name}: {out}"
        );
    }
    assert!(out.contains("load average"), "{out}");
    // The scratch directory beside the configured path is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("bench"))
        .expect("bench directory")
        .collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}
