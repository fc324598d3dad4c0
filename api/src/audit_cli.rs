//! `dezky audit …` and `dezky keys generate`: the auditor's and operator's commands.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::export::{export, verify_export, ExportOptions};
use dezky_commands::keys::{generate, TrustedKeys};
use dezky_commands::verify::Report;
use dezky_commands::Ledger;

use crate::cli::AuditCommand;
use crate::progress::{events_bar, thousands, update};
use crate::settings::Settings;

/// Exit code when verification finds a break.
pub const EXIT_BREAK: u8 = 1;

/// Writes a new private key to `out` (mode 0600, never overwriting) and prints its public line.
pub fn generate_key(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let key = generate(name)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    writeln!(file, "{}", key.private_line)?;
    file.sync_all()?;
    println!("{}", key.public_line);
    eprintln!(
        "private key written to {}; the line above is its public key",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &Report, seconds: f64, json: bool) -> ExitCode {
    let rate = if seconds > 0.0 {
        report.events as f64 / seconds
    } else {
        0.0
    };
    if json {
        let value = serde_json::json!({
            "intact": report.is_intact(),
            "events": report.events,
            "elided": report.elided,
            "last_position": report.last_position,
            "last_hash": hex::encode(report.last_hash),
            "checkpoints_verified": report.checkpoints_verified,
            "checkpoints_before_start": report.checkpoints_before_start,
            "break": report.first_break.as_ref().map(|b| serde_json::json!({
                "kind": b.kind.code(),
                "position": b.position,
                "detail": b.detail,
            })),
            "seconds": seconds,
        });
        println!("{value}");
    } else {
        match &report.first_break {
            None => println!(
                "ledger intact: {} events and {} checkpoints verified, head {} at position {} ({:.2} s, {} events/s)",
                thousands(report.events),
                thousands(report.checkpoints_verified),
                &hex::encode(report.last_hash)[..16],
                report.last_position,
                seconds,
                thousands(rate as u64),
            ),
            Some(found) => println!(
                "LEDGER BROKEN: {} at position {}: {} ({} events verified before it)",
                found.kind.code(),
                found.position,
                found.detail,
                thousands(report.events),
            ),
        }
    }
    if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BREAK)
    }
}

/// Runs an `audit` subcommand.
pub async fn run(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            export: Some(path),
            keys: Some(keys),
            json,
        } => {
            let keys = TrustedKeys::load(&keys)?;
            let file =
                File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let started = Instant::now();
            let report = tokio::task::spawn_blocking(move || {
                let bar = events_bar("verifying export");
                let report = verify_export(
                    BufReader::with_capacity(1 << 20, file),
                    keys,
                    |done, total| update(&bar, done, total),
                );
                bar.finish_and_clear();
                report
            })
            .await??;
            Ok(print_report(&report, started.elapsed().as_secs_f64(), json))
        }
        AuditCommand::Verify { json, .. } => {
            let keys = settings.trusted_keys()?;
            let ledger = Ledger::open(&settings.ledger_options()).await?;
            let bar = events_bar("verifying ledger");
            let started = Instant::now();
            let report =
                verify_store(&ledger, keys, |done, total| update(&bar, done, total)).await?;
            bar.finish_and_clear();
            Ok(print_report(&report, started.elapsed().as_secs_f64(), json))
        }
        AuditCommand::Export {
            since,
            tenant,
            output,
        } => {
            let ledger = Ledger::open(&settings.ledger_options()).await?;
            let options = ExportOptions { since, tenant };
            let bar = events_bar("exporting");
            let started = Instant::now();
            let summary = match &output {
                Some(path) => {
                    let file = File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut out = BufWriter::with_capacity(1 << 20, file);
                    let summary =
                        export(&ledger, &mut out, &options, |d, t| update(&bar, d, t)).await?;
                    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    summary
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
                    export(&ledger, &mut out, &options, |d, t| update(&bar, d, t)).await?
                }
            };
            bar.finish_and_clear();
            eprintln!(
                "exported {} events ({} elided) and {} checkpoints up to position {} in {:.2} s",
                thousands(summary.events),
                thousands(summary.elided),
                thousands(summary.checkpoints),
                summary.up_to,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint => {
            let key = settings.signing_key()?;
            let ledger = Ledger::open(&settings.ledger_options()).await?;
            let checkpoint = sign_checkpoint(&ledger, &key, &settings.origin).await?;
            print!("{}", checkpoint.note);
            eprintln!(
                "signed checkpoint at size {} with key {}",
                checkpoint.tree_size,
                checkpoint.signers.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
