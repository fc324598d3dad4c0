//! `dezky demo`: the ledger at work for a newcomer, on the embedded default.

use std::process::ExitCode;

use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::Ledger;
use dezky_domain::probe::{Probe, ProbeCommand, Reading};
use dezky_domain::{Actor, EventMetadata};

use crate::progress::thousands;
use crate::settings::Settings;

/// The cqrs-es framework for probes on the ledger, with the probe's upcasters.
pub fn probe_framework(ledger: &Ledger) -> dezky_commands::app::registry::Cqrs<Probe> {
    dezky_commands::app::registry::framework(ledger)
}

/// Runs `commands` probe commands, signs a checkpoint, verifies the chain, and says how to
/// look further.
pub async fn run(settings: &Settings, commands: u32) -> anyhow::Result<ExitCode> {
    let key = settings.signing_key()?;
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    let before = ledger.head().await?.position;
    let cqrs = probe_framework(&ledger);
    for n in 0..commands {
        let metadata = EventMetadata {
            actor: Some(Actor {
                subject: "demo-operator".into(),
                email: Some("operator@dezky.local".into()),
            }),
            tenant_id: Some(format!("demo-tenant-{}", n % 2)),
            correlation_id: Some(uuid::Uuid::new_v4().to_string()),
            occurred_at: Some(dezky_commands::encoding::format_timestamp(
                chrono::Utc::now(),
            )),
            ..EventMetadata::default()
        };
        let command = ProbeCommand::Record {
            label: format!("demo reading {n}"),
            readings: vec![Reading {
                value_milli: i64::from(n) * 1_500,
                unit: "ms".into(),
            }],
        };
        cqrs.execute_with_metadata(&format!("demo-probe-{}", n % 5), command, metadata.to_map())
            .await?;
    }
    let checkpoint = sign_checkpoint(&ledger, &key, &settings.origin).await?;
    let report = verify_store(&ledger, settings.trusted_keys()?, |_, _| {}).await?;
    println!(
        "appended {} events through cqrs-es (positions {}..{}), signed a checkpoint at size {}:\n",
        thousands(u64::from(commands)),
        before + 1,
        checkpoint.tree_size,
        checkpoint.tree_size
    );
    print!("{}", checkpoint.note);
    match &report.first_break {
        None => println!(
            "\nverified: {} events, {} checkpoints, chain intact.",
            thousands(report.events),
            thousands(report.checkpoints_verified)
        ),
        Some(found) => println!("\nverification found a break: {found}"),
    }
    println!("\nNext: `dezky audit export --output ledger.jsonl`, `dezky keys public > keys.txt`,");
    println!("      `dezky audit verify --export ledger.jsonl --keys keys.txt` (offline).");
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::audit_cli::EXIT_BREAK)
    })
}
