//! `dezky audit …` and `dezky keys generate`: the auditor's and operator's commands.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use dezky_commands::audit::{sign_checkpoint, verify_store};
use dezky_commands::export::{export, verify_export, ExportOptions, VerifyOptions};
use dezky_commands::keys::{generate, TrustedKeys};
use dezky_commands::verify::{BreakKind, PositionRange, Report, TenantCompleteness};
use dezky_commands::Ledger;

use crate::cli::AuditCommand;
use crate::progress::{events_bar, thousands, update};
use crate::settings::Settings;

/// Exit code when verification finds a break.
pub const EXIT_BREAK: u8 = 1;
/// Exit code for a command line that cannot be parsed (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when an operation fails; for verification, when a file cannot be read.
pub const EXIT_FAILURE: u8 = 3;

/// The one JSON object `--json` prints when there is no report: a usage error (`usage`, exit
/// 2) or a file that cannot be read (`cannot_read`, exit 3).
pub fn json_error(outcome: &str, exit_code: u8, error: &str) -> String {
    serde_json::json!({
        "outcome": outcome,
        "exit_code": exit_code,
        "error": error,
    })
    .to_string()
}

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

/// What the report says about signatures, for the summary: each signed range with its keys,
/// then what is unsigned.
fn signed_summary(report: &Report) -> String {
    let span = |range: PositionRange| match range.from == range.to {
        true => format!("position {}", range.from),
        false => format!("positions {}..{}", range.from, range.to),
    };
    let mut parts: Vec<String> = report
        .signed
        .iter()
        .map(|range| format!("{} by {}", span(range.positions), range.keys.join(" and ")))
        .collect();
    if parts.is_empty() {
        parts.push("no checkpoint: nothing is signed".into());
    }
    if let Some(unsigned) = report.unsigned {
        parts.push(format!(
            "{} unsigned (no checkpoint covers it)",
            span(unsigned)
        ));
    }
    format!("signed: {}", parts.join("; "))
}

/// What a tenant export shows, for the summary.
fn tenant_summary(report: &Report) -> Option<String> {
    let tenant = report.tenant.as_deref()?;
    Some(match report.tenant_completeness()? {
        TenantCompleteness::Proven => {
            format!("tenant export for {tenant}: every event in full and {tenant}'s")
        }
        TenantCompleteness::NotProven { elided } => format!(
            "tenant export for {tenant}: {} events in full, {} elided; nothing shows the elided \
             events belong to other workspaces, so this export does not prove it holds all of \
             {tenant}'s events",
            thousands(report.events - elided),
            thousands(elided)
        ),
    })
}

fn print_report(report: &Report, seconds: f64, json: bool) -> ExitCode {
    let rate = if seconds > 0.0 {
        report.events as f64 / seconds
    } else {
        0.0
    };
    let exit = if report.is_intact() { 0 } else { EXIT_BREAK };
    if json {
        let value = serde_json::json!({
            "outcome": if report.is_intact() { "intact" } else { "break" },
            "exit_code": exit,
            "intact": report.is_intact(),
            "events": report.events,
            "elided": report.elided,
            "last_position": report.last_position,
            "last_hash": hex::encode(report.last_hash),
            "checkpoints_verified": report.checkpoints_verified,
            "checkpoints_before_start": report.checkpoints_before_start,
            "signed": report.signed.iter().map(|range| serde_json::json!({
                "from": range.positions.from,
                "to": range.positions.to,
                "keys": range.keys,
            })).collect::<Vec<_>>(),
            "unsigned": report.unsigned.map(|range| serde_json::json!({
                "from": range.from,
                "to": range.to,
            })),
            "tenant": report.tenant,
            "tenant_completeness": report.tenant_completeness().map(|c| match c {
                TenantCompleteness::Proven => "proven",
                TenantCompleteness::NotProven { .. } => "not_proven",
            }),
            "break": report.first_break.as_ref().map(|b| serde_json::json!({
                "kind": b.kind.code(),
                "position": b.position,
                "line": b.line,
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
            // An unsigned tail is a break although its chain links: say what holds.
            Some(found) if found.kind == BreakKind::UnsignedTail => println!(
                "LEDGER BROKEN: {found} (the chain of {} events links; what is signed follows)",
                thousands(report.events),
            ),
            Some(found) => println!(
                "LEDGER BROKEN: {found} ({} events verified before it)",
                thousands(report.events),
            ),
        }
        println!("{}", signed_summary(report));
        if let Some(tenant) = tenant_summary(report) {
            println!("{tenant}");
        }
    }
    ExitCode::from(exit)
}

/// Verifies an export file offline.
async fn verify_export_file(
    path: &Path,
    keys: &Path,
    options: VerifyOptions,
) -> anyhow::Result<Report> {
    let keys = TrustedKeys::load(keys)?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let path = path.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        let bar = events_bar("verifying export");
        let report = verify_export(
            BufReader::with_capacity(1 << 20, file),
            keys,
            &options,
            |done, total| update(&bar, done, total),
        );
        bar.finish_and_clear();
        report
    })
    .await?
    .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(report)
}

/// Verifies the configured store.
async fn verify_configured_store(settings: &Settings) -> anyhow::Result<Report> {
    let keys = settings.trusted_keys()?;
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    let bar = events_bar("verifying ledger");
    let report = verify_store(&ledger, keys, |done, total| update(&bar, done, total)).await?;
    bar.finish_and_clear();
    Ok(report)
}

/// Runs an `audit` subcommand.
pub async fn run(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            export,
            keys,
            allow_unsigned_tail,
            max_line_bytes,
            json,
        } => {
            let started = Instant::now();
            let report = match (export, keys) {
                (Some(path), Some(keys)) => {
                    let options = VerifyOptions {
                        allow_unsigned_tail,
                        max_line_bytes,
                    };
                    verify_export_file(&path, &keys, options).await
                }
                _ => verify_configured_store(settings).await,
            };
            match report {
                Ok(report) => Ok(print_report(&report, started.elapsed().as_secs_f64(), json)),
                // Even a verification that could not start answers in JSON when asked to.
                Err(error) if json => {
                    println!(
                        "{}",
                        json_error("cannot_read", EXIT_FAILURE, &format!("{error:#}"))
                    );
                    Ok(ExitCode::from(EXIT_FAILURE))
                }
                Err(error) => Err(error),
            }
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
            if summary.up_to > summary.signed_to {
                // The auditor's verification refuses an unsigned tail unless told otherwise.
                eprintln!(
                    "positions {}..{} are covered by no checkpoint: sign one (`dezky audit checkpoint`) and export again, or the auditor must pass --allow-unsigned-tail",
                    summary.signed_to + 1,
                    summary.up_to
                );
            }
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
