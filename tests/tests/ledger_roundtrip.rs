//! Round trips through the real command path on both backends: commands in, a chain that
//! verifies out, live and offline from an export.

use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::export::{export, verify_export, ExportOptions, VerifyOptions};
use dezky_commands::verify::BreakKind;
use dezky_tests::{fill, test_key, Backend, TestDb};

async fn commands_produce_a_chain_that_verifies_live_and_offline(backend: Backend) {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, trusted) = test_key("dezky.test/ledger");
    fill(&ledger, 40, 7).await.expect("commands");
    sign_checkpoint(&ledger, &key, "dezky.test/ledger")
        .await
        .expect("checkpoint");
    fill(&ledger, 10, 3).await.expect("more commands");
    sign_checkpoint(&ledger, &key, "dezky.test/ledger")
        .await
        .expect("checkpoint");
    // Two more after the last checkpoint: the export says they are unsigned, and the strict
    // verifier accepts them only when told to.
    fill(&ledger, 2, 1).await.expect("unsigned commands");

    let live = verify_store(&ledger, trusted, |_, _| {})
        .await
        .expect("verify");
    assert_eq!(live.first_break, None);
    assert_eq!(live.events, 52);
    assert_eq!(live.checkpoints_verified, 2);
    assert_eq!(
        live.unsigned.map(|range| (range.from, range.to)),
        Some((51, 52))
    );

    let mut file = Vec::new();
    let summary = export(&ledger, &mut file, &ExportOptions::default(), |_, _| {})
        .await
        .expect("export");
    assert_eq!((summary.signed_to, summary.up_to), (50, 52));
    // Offline: only the export bytes and the public key text cross over.
    let public = dezky_commands::keys::TrustedKeys::parse(key.public_line(), "keys.txt")
        .expect("public key file");
    let strict = verify_export(
        file.as_slice(),
        public,
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("read export");
    assert_eq!(
        strict.first_break.map(|b| (b.kind, b.position)),
        Some((BreakKind::UnsignedTail, 51))
    );
    let allow = VerifyOptions {
        allow_unsigned_tail: true,
        ..VerifyOptions::default()
    };
    let public = dezky_commands::keys::TrustedKeys::parse(key.public_line(), "keys.txt")
        .expect("public key file");
    let offline = verify_export(file.as_slice(), public, &allow, |_, _| {}).expect("read export");
    assert_eq!(offline.first_break, None);
    assert_eq!(offline.events, 52);
    assert_eq!(offline.checkpoints_verified, 2);
    assert_eq!(offline.last_hash, live.last_hash);
}

#[tokio::test]
async fn commands_produce_a_chain_that_verifies_live_and_offline_on_sqlite() {
    commands_produce_a_chain_that_verifies_live_and_offline(Backend::Sqlite).await;
}

#[tokio::test]
async fn commands_produce_a_chain_that_verifies_live_and_offline_on_postgres() {
    commands_produce_a_chain_that_verifies_live_and_offline(Backend::Postgres).await;
}

async fn partial_exports_verify_against_the_signed_roots(backend: Backend) {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let (key, trusted) = test_key("dezky.test/ledger");
    fill(&ledger, 10, 4).await.expect("commands");
    sign_checkpoint(&ledger, &key, "dezky.test/ledger")
        .await
        .expect("checkpoint at 10");
    fill(&ledger, 20, 4).await.expect("commands");
    sign_checkpoint(&ledger, &key, "dezky.test/ledger")
        .await
        .expect("checkpoint at 30");

    // Since position 21: the header's frontier lets the verifier recompute the root at 30.
    let mut since = Vec::new();
    let options = ExportOptions {
        since: Some(21),
        tenant: None,
    };
    let summary = export(&ledger, &mut since, &options, |_, _| {})
        .await
        .expect("export");
    assert_eq!(
        summary.signed_to, 30,
        "the exporter knows the export is signed to its end"
    );
    let report = verify_export(
        since.as_slice(),
        trusted_copy(&key),
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("read");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, 10);
    assert_eq!(report.checkpoints_verified, 1, "the checkpoint at 30");
    assert_eq!(report.checkpoints_before_start, 1, "the checkpoint at 10");

    // One tenant: the other tenant's events are elided but still chain and still count in
    // the Merkle roots; none of their content is in the file.
    let mut tenant = Vec::new();
    let options = ExportOptions {
        since: None,
        tenant: Some("tenant-a".into()),
    };
    export(&ledger, &mut tenant, &options, |_, _| {})
        .await
        .expect("export");
    let text = String::from_utf8(tenant.clone()).expect("utf-8");
    assert!(
        !text.contains("tenant-b"),
        "no other tenant's content leaks"
    );
    let report = verify_export(
        tenant.as_slice(),
        trusted,
        &VerifyOptions::default(),
        |_, _| {},
    )
    .expect("read");
    assert_eq!(report.first_break, None);
    assert_eq!(report.events, 30);
    assert_eq!(report.elided, 15);
    assert_eq!(report.checkpoints_verified, 2);
}

fn trusted_copy(key: &dezky_commands::keys::SigningKey) -> dezky_commands::keys::TrustedKeys {
    dezky_commands::keys::TrustedKeys::parse(key.public_line(), "keys.txt").expect("keys")
}

#[tokio::test]
async fn partial_exports_verify_against_the_signed_roots_on_sqlite() {
    partial_exports_verify_against_the_signed_roots(Backend::Sqlite).await;
}

#[tokio::test]
async fn partial_exports_verify_against_the_signed_roots_on_postgres() {
    partial_exports_verify_against_the_signed_roots(Backend::Postgres).await;
}
