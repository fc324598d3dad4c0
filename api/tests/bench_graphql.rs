//! `dezky bench graphql` end to end with tiny parameters: it starts the server on a scratch
//! SQLite database, seeds, runs every scenario, prints its summary and leaves nothing behind.
//! A smoke test of the harness, not a measurement: no figure is judged here.

use std::process::Command;

#[test]
fn bench_graphql_runs_every_scenario_prints_a_summary_and_removes_its_scratch_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("dezky.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_dezky"))
        .args(["--database-url", &url, "bench", "graphql"])
        .args(["--tenants", "3", "--members", "2"])
        .args(["--rate", "20", "--seconds", "1", "--warmup-seconds", "1"])
        .args(["--mutation-rates", "2", "--mutation-seconds", "1"])
        .current_dir(dir.path())
        .env_remove("DEZKY_SIGNING_KEY_FILE")
        .env_remove("DEZKY_TRUSTED_KEYS_FILE")
        .output()
        .expect("dezky runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("seeded 3 tenants with 3 members each"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tenant query at 20/s for 1 s: 20 sent, 20 ok, 0 errors"),
        "{stdout}"
    );
    assert!(
        stdout.contains("createTenant at 2/s for 1 s: 2 sent, 2 ok, 0 errors"),
        "{stdout}"
    );
    assert!(stdout.contains("(at end)"), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("summary (SQLite"), "{stdout}");
    // The scratch directory (database, keys) is gone; the configured database was never
    // created.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
