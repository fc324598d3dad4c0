//! A test peer that drives probe commands through the real command path (cqrs-es over the
//! ledger repository) from many tasks, so the concurrency and crash suites can run several
//! writer processes against one database and kill them mid-stream.
//!
//! ```text
//! ledger-worker --database-url URL --tasks 8 --commands N --aggregates shared|distinct \
//!     --events-per-command K --worker-id ID [--shared-aggregates 3]
//! ```
//!
//! Every command carries the correlation id `{worker}-{task}-{n}`, so the suites can find its
//! events in the ledger. At the end one JSON line on stdout says which commands committed,
//! which were refused with an optimistic-concurrency conflict, and how many failed otherwise.
//! A conflicted command is recorded and not retried: the suites check that its events are
//! absent, which a retry under the same correlation id would blur.

use std::process::ExitCode;

use cqrs_es::AggregateError;
use dezky_commands::{Ledger, LedgerOptions};
use dezky_tests::{metadata_for, probe_cqrs, record};
use serde::Serialize;

/// Error messages kept in the summary, so a failing suite can show why without a flood.
const ERROR_SAMPLES: usize = 5;
/// Connections per worker: enough for every task to load while the writer commits, and few
/// enough that several workers and suites fit in PostgreSQL's default 100.
const MAX_CONNECTIONS: u32 = 12;

/// Which aggregates the commands go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregates {
    /// One aggregate per task: no command ever conflicts.
    Distinct,
    /// A few aggregates shared by every task (and every worker): commands race and conflict.
    Shared,
}

#[derive(Debug, Clone)]
struct Args {
    database_url: String,
    tasks: usize,
    commands: usize,
    aggregates: Aggregates,
    shared_aggregates: usize,
    events_per_command: usize,
    worker_id: String,
}

/// The one line the worker prints when every task is done.
#[derive(Debug, Default, Serialize)]
struct Summary {
    worker_id: String,
    events_per_command: usize,
    /// Correlation ids of the commands that committed.
    committed: Vec<String>,
    /// Correlation ids of the commands refused with `AggregateError::AggregateConflict`.
    conflicted: Vec<String>,
    conflicts: usize,
    other_errors: usize,
    error_samples: Vec<String>,
}

fn usage() -> String {
    "usage: ledger-worker --database-url URL --tasks N --commands N \
     --aggregates shared|distinct --events-per-command K --worker-id ID \
     [--shared-aggregates N]"
        .to_owned()
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut database_url = None;
    let mut tasks = 8;
    let mut commands = None;
    let mut aggregates = None;
    let mut shared_aggregates = 3;
    let mut events_per_command = 1;
    let mut worker_id = None;
    let number = |flag: &str, value: String| {
        value
            .parse::<usize>()
            .map_err(|e| format!("{flag} {value:?}: {e}"))
    };
    while let Some(flag) = raw.next() {
        let value = raw
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--database-url" => database_url = Some(value),
            "--tasks" => tasks = number(&flag, value)?,
            "--commands" => commands = Some(number(&flag, value)?),
            "--aggregates" => {
                aggregates = Some(match value.as_str() {
                    "shared" => Aggregates::Shared,
                    "distinct" => Aggregates::Distinct,
                    other => return Err(format!("--aggregates {other:?}\n{}", usage())),
                })
            }
            "--shared-aggregates" => shared_aggregates = number(&flag, value)?.max(1),
            "--events-per-command" => events_per_command = number(&flag, value)?,
            "--worker-id" => worker_id = Some(value),
            other => return Err(format!("unknown flag {other:?}\n{}", usage())),
        }
    }
    let missing = |what: &str| format!("{what} is required\n{}", usage());
    Ok(Args {
        database_url: database_url.ok_or_else(|| missing("--database-url"))?,
        tasks,
        commands: commands.ok_or_else(|| missing("--commands"))?,
        aggregates: aggregates.ok_or_else(|| missing("--aggregates"))?,
        shared_aggregates,
        events_per_command,
        worker_id: worker_id.ok_or_else(|| missing("--worker-id"))?,
    })
}

/// What one task saw.
#[derive(Default)]
struct TaskOutcome {
    committed: Vec<String>,
    conflicted: Vec<String>,
    errors: Vec<String>,
}

async fn run_task(ledger: Ledger, args: Args, task: usize) -> TaskOutcome {
    let cqrs = probe_cqrs(&ledger);
    let mut outcome = TaskOutcome::default();
    for n in 0..args.commands {
        let correlation_id = format!("{}-{task}-{n}", args.worker_id);
        let aggregate_id = match args.aggregates {
            Aggregates::Distinct => format!("{}-t{task}", args.worker_id),
            // Rotating through the shared ids keeps every aggregate contended by several
            // tasks at once, in this worker and in its peers.
            Aggregates::Shared => format!("shared-{}", (task + n) % args.shared_aggregates),
        };
        let mut metadata = metadata_for("tenant-a");
        metadata.correlation_id = Some(correlation_id.clone());
        let result = cqrs
            .execute_with_metadata(
                &aggregate_id,
                record(args.events_per_command, &correlation_id),
                metadata.to_map(),
            )
            .await;
        match result {
            Ok(()) => outcome.committed.push(correlation_id),
            Err(AggregateError::AggregateConflict) => outcome.conflicted.push(correlation_id),
            Err(other) => outcome.errors.push(format!("{correlation_id}: {other}")),
        }
    }
    outcome
}

async fn run(args: Args) -> Result<Summary, String> {
    let mut options = LedgerOptions::new(args.database_url.clone());
    options.max_connections = MAX_CONNECTIONS;
    let ledger = Ledger::open(&options)
        .await
        .map_err(|e| format!("opening the ledger: {e}"))?;
    let handles: Vec<_> = (0..args.tasks)
        .map(|task| tokio::spawn(run_task(ledger.clone(), args.clone(), task)))
        .collect();
    let mut summary = Summary {
        worker_id: args.worker_id.clone(),
        events_per_command: args.events_per_command,
        ..Summary::default()
    };
    for handle in handles {
        let outcome = handle.await.map_err(|e| format!("a task panicked: {e}"))?;
        summary.committed.extend(outcome.committed);
        summary.conflicted.extend(outcome.conflicted);
        summary.other_errors += outcome.errors.len();
        let room = ERROR_SAMPLES.saturating_sub(summary.error_samples.len());
        summary
            .error_samples
            .extend(outcome.errors.into_iter().take(room));
    }
    summary.conflicts = summary.conflicted.len();
    ledger.close().await;
    Ok(summary)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(summary) => match serde_json::to_string(&summary) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot encode the summary: {e}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
