//! `dezky bench append`: synthetic load through the real command path (cqrs-es → ledger).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use dezky_domain::probe::{Probe, ProbeCommand, ProbeError, Reading};
use dezky_domain::{Actor, EventMetadata};

use crate::progress::thousands;
use crate::settings::Settings;

/// Options of `dezky bench append`.
#[derive(Debug, Clone, Args)]
pub struct AppendArgs {
    /// Events to append in total.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Concurrent writer tasks.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Events each command emits.
    #[arg(long, default_value_t = 1)]
    pub events_per_command: usize,
    /// Commands sent to one aggregate before a writer moves to a fresh one (bounds the cost
    /// of loading an aggregate, the same for every store compared).
    #[arg(long, default_value_t = 10)]
    pub commands_per_aggregate: u64,
}

/// The outcome of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Commands that committed.
    pub commands: u64,
    /// Events appended.
    pub events: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Median command latency.
    pub p50: Duration,
    /// 99th percentile command latency.
    pub p99: Duration,
}

impl LoadResult {
    /// Commands per second.
    pub fn commands_per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// A label that makes one `ReadingRecorded` event about 300 bytes of payload and metadata.
fn label(writer: usize, n: u64) -> String {
    format!("bench writer {writer} command {n} {}", "x".repeat(120))
}

fn metadata(writer: usize) -> EventMetadata {
    EventMetadata {
        actor: Some(Actor {
            subject: format!("bench-writer-{writer}"),
            email: None,
        }),
        tenant_id: Some("bench".into()),
        ..EventMetadata::default()
    }
}

/// Runs the workload against any cqrs-es event store, so the ledger and the baselines are
/// driven by the very same code.
pub async fn drive<ES>(
    cqrs: Arc<CqrsFramework<Probe, ES>>,
    run_id: &str,
    args: &AppendArgs,
) -> anyhow::Result<LoadResult>
where
    ES: EventStore<Probe> + Send + Sync + 'static,
    ES::AC: Send,
{
    let per_command = args.events_per_command.max(1) as u64;
    let commands = args.events.div_ceil(per_command);
    let writers = args.writers.max(1) as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let share = commands / writers + u64::from(writer < commands % writers);
        let cqrs = cqrs.clone();
        let run_id = run_id.to_owned();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share as usize);
            for n in 0..share {
                let aggregate = format!(
                    "bench-{run_id}-{writer}-{}",
                    n / args.commands_per_aggregate.max(1)
                );
                let command = ProbeCommand::Record {
                    label: label(writer as usize, n),
                    readings: vec![
                        Reading {
                            value_milli: n as i64,
                            unit: "ms".into(),
                        };
                        args.events_per_command.max(1)
                    ],
                };
                let t = Instant::now();
                cqrs.execute_with_metadata(&aggregate, command, metadata(writer as usize).to_map())
                    .await
                    .map_err(|e: AggregateError<ProbeError>| anyhow::anyhow!("{e}"))?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(LoadResult {
        commands: latencies.len() as u64,
        events: latencies.len() as u64 * per_command,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
    })
}

fn describe(name: &str, result: &LoadResult) -> String {
    format!(
        "{name}: {} commands ({} events) in {:.2} s = {} commands/s, p50 {:.2} ms, p99 {:.2} ms",
        thousands(result.commands),
        thousands(result.events),
        result.elapsed.as_secs_f64(),
        thousands(result.commands_per_second() as u64),
        result.p50.as_secs_f64() * 1e3,
        result.p99.as_secs_f64() * 1e3,
    )
}

/// `dezky bench append` on the configured store.
pub async fn run_append(settings: &Settings, args: AppendArgs) -> anyhow::Result<ExitCode> {
    let ledger = dezky_commands::Ledger::open(&settings.ledger_options()).await?;
    let store =
        PersistedEventStore::new_event_store(dezky_commands::LedgerRepository::new(ledger.clone()));
    let cqrs = Arc::new(CqrsFramework::new(store, vec![], ()));
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let result = drive(cqrs, &run_id[..8], &args).await?;
    println!("{}", describe("ledger", &result));
    Ok(ExitCode::SUCCESS)
}
