//! `dezky sagas status|retry`: the effects sagas drive in external systems, with their state
//! and last error, and an operator's retry of one that was dead-lettered or not configured.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use cqrs_es::AggregateError;
use dezky_commands::Ledger;
use dezky_domain::effects::{Effect, EffectCommand, EffectError, EffectStatus};
use dezky_domain::{Actor, EventMetadata};
use dezky_projections::builds::live_build;
use dezky_projections::effects::{effect_status_name, list_effects, EffectFilter, SagaEffects};
use dezky_projections::host::{holder_id, ProjectionHost};
use dezky_projections::tenants::PageRequest;
use dezky_projections::ProjectionRunner;

use crate::settings::Settings;

/// Exit code of a refused operation (unknown effect, not retryable now).
const EXIT_FAILURE: u8 = 3;
/// Effects listed per page read.
const PAGE: u32 = 100;

/// `dezky sagas …`
#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// Every saga effect with its status, attempts and last error (all but succeeded ones
    /// unless `--all`).
    Status {
        /// Include succeeded effects.
        #[arg(long)]
        all: bool,
        /// Only this saga.
        #[arg(long)]
        saga: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Retry a dead-lettered (or not-configured) effect with a fresh round of attempts.
    Retry {
        /// The effect's key (first column of `sagas status`).
        key: String,
    },
}

/// Runs a `sagas` subcommand.
pub async fn run(settings: &Settings, command: SagasCommand) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    let code = match command {
        SagasCommand::Status { all, saga, json } => status(&ledger, all, saga, json).await?,
        SagasCommand::Retry { key } => retry(&ledger, &key).await?,
    };
    ledger.close().await;
    Ok(code)
}

/// Brings the effects read model up to the ledger's head first, so the listing is current
/// whether or not a server is running (a running server's runner takes turns with this one).
async fn caught_up(ledger: &Ledger) -> anyhow::Result<()> {
    let host = ProjectionHost::new(ledger.clone(), holder_id(), SagaEffects::with_version);
    host.prepare().await?;
    let build = live_build(
        ledger.db(),
        SagaEffects::NAME,
        dezky_projections::builds::FIRST_BUILD,
    )
    .await?;
    ProjectionRunner::new(ledger.clone(), SagaEffects::with_version(build))
        .await?
        .catch_up()
        .await?;
    Ok(())
}

async fn status(
    ledger: &Ledger,
    all: bool,
    saga: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    caught_up(ledger).await?;
    let statuses = if all {
        Vec::new()
    } else {
        vec![
            EffectStatus::Pending,
            EffectStatus::InFlight,
            EffectStatus::Retrying,
            EffectStatus::Unknown,
            EffectStatus::DeadLettered,
            EffectStatus::NotConfigured,
        ]
    };
    let filter = EffectFilter {
        statuses,
        saga,
        tenant_id: None,
    };
    let mut after = None;
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    if !json {
        println!(
            "{:<48} {:<14} {:>8} {:<25} last error",
            "effect", "status", "attempts", "next attempt"
        );
    }
    loop {
        let page = list_effects(
            ledger.db(),
            &filter,
            &PageRequest {
                first: PAGE,
                after: after.clone(),
            },
        )
        .await?;
        for row in &page.items {
            *counts.entry(effect_status_name(row.status)).or_default() += 1;
            if json {
                println!("{}", serde_json::to_string(row)?);
            } else {
                println!(
                    "{:<48} {:<14} {:>8} {:<25} {}",
                    row.key,
                    effect_status_name(row.status),
                    format!("{}/{}", row.attempts, row.attempt_budget),
                    row.retry_at.as_deref().unwrap_or("-"),
                    row.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        if !page.has_next_page {
            break;
        }
        after = page.end_cursor;
    }
    if !json {
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let total: u64 = counts.values().sum();
        println!(
            "{total} effects listed{}",
            if summary.is_empty() {
                String::new()
            } else {
                format!(": {}", summary.join(", "))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(ledger: &Ledger, key: &str) -> anyhow::Result<ExitCode> {
    let effects = dezky_commands::app::registry::framework::<Effect>(ledger);
    let operator = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let now = dezky_commands::encoding::format_timestamp(chrono::Utc::now());
    let metadata = EventMetadata {
        actor: Some(Actor {
            subject: operator.clone(),
            email: None,
        }),
        occurred_at: Some(now.clone()),
        ..EventMetadata::default()
    };
    let command = EffectCommand::OperatorRetry {
        by: operator,
        at: now,
    };
    match effects
        .execute_with_metadata(key, command, metadata.to_map())
        .await
    {
        Ok(()) => {
            println!("retry of {key} requested: a saga worker attempts it again");
            Ok(ExitCode::SUCCESS)
        }
        Err(AggregateError::UserError(EffectError::NotIntended)) => {
            eprintln!("error: no effect with key {key}");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        Err(AggregateError::UserError(error)) => {
            eprintln!("error: {key}: {error}");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        Err(other) => Err(other.into()),
    }
}
