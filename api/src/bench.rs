//! `dezky bench …`: synthetic load through the real command path (cqrs-es → ledger), the same
//! load through the stock cqrs-es stores side by side, and offline export verification speed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use dezky_commands::checkpoint::SignedCheckpoint;
use dezky_commands::encoding::{format_timestamp, EventRecord, GENESIS_PREV_HASH};
use dezky_commands::export::{
    verify_export, write_checkpoint, write_event, write_header, VerifyOptions,
};
use dezky_commands::keys::{generate, SigningKey, TrustedKeys};
use dezky_commands::merkle::Frontier;
use dezky_commands::store::{sqlite_connect_options, Db};
use dezky_commands::{Ledger, LedgerOptions, LedgerRepository};
use dezky_domain::probe::{Probe, ProbeCommand, ProbeError, Reading};
use dezky_domain::{Actor, EventMetadata};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{PgPool, SqlitePool};

use crate::cli::BenchCommand;
use crate::progress::thousands;
use crate::scratch::{machine_line, new_run_id, with_database, ScratchDir};
use crate::settings::Settings;

/// Options of `dezky bench append`.
#[derive(Debug, Clone, Args)]
pub struct AppendArgs {
    /// Events to append in total (per run with `--compare`).
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
    /// Run the same load through the ledger and through the stock cqrs-es store of the same
    /// backend (postgres-es or sqlite-es), side by side in scratch databases that are dropped
    /// afterwards, and report the ratio ledger/baseline. The configured database itself is
    /// not written to.
    #[arg(long)]
    pub compare: bool,
    /// Writer counts to compare at (with `--compare`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub compare_writers: Vec<usize>,
    /// Rounds per writer count (with `--compare`); each store's median is compared.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Options of `dezky bench verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Events in the synthetic export.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Times the export is verified; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Directory for the temporary export file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
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

/// Runs one `dezky bench …` subcommand.
pub async fn run(settings: &Settings, command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Append(args) => run_append(settings, args).await,
        BenchCommand::Verify(args) => run_verify(args).await,
    }
}

/// `dezky bench append` on the configured store, or `--compare`d with the stock store.
pub async fn run_append(settings: &Settings, args: AppendArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    if args.compare {
        return run_compare(settings, &args).await;
    }
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    let store = PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()));
    let cqrs = Arc::new(CqrsFramework::new(store, vec![], ()));
    let result = drive(cqrs, &new_run_id(), &args).await?;
    println!("{}", describe("ledger", &result));
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// Side-by-side comparison with postgres-es / sqlite-es.
// ---------------------------------------------------------------------------------------

/// The backend both contenders run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn baseline_name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres-es",
            Backend::Sqlite => "sqlite-es",
        }
    }

    /// The ratio ledger/baseline the issue asks for at this writer count, if it names one:
    /// on PostgreSQL ≥ 0.9× with one writer (the extra hashing and head lock cost little)
    /// and ≥ 2× with 16 (group commit shares each fsync); on SQLite ≥ 1× throughout.
    fn target(self, writers: usize) -> Option<f64> {
        match (self, writers) {
            (Backend::Postgres, 1) => Some(0.9),
            (Backend::Postgres, 16) => Some(2.0),
            (Backend::Postgres, _) => None,
            (Backend::Sqlite, _) => Some(1.0),
        }
    }
}

/// One writer count's medians.
struct Compared {
    writers: usize,
    ours: f64,
    baseline: f64,
}

impl Compared {
    fn ratio(&self) -> f64 {
        self.ours / self.baseline.max(f64::EPSILON)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn run_compare(settings: &Settings, args: &AppendArgs) -> anyhow::Result<ExitCode> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.compare_writers.is_empty() || args.compare_writers.contains(&0) {
        bail!("--compare-writers needs one or more writer counts, each at least 1");
    }
    let url = settings.database_url.expose();
    let pool_size = settings.database_max_connections.max(2);
    println!("{} (at start)", machine_line());
    // Ctrl-C must not leave scratch databases or files behind: the interrupt becomes an error
    // that unwinds through the same clean-up as any other failure.
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        compare_postgres(url, pool_size, args, interrupted).await
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        compare_sqlite(
            Path::new(path.trim_start_matches("//")),
            pool_size,
            args,
            interrupted,
        )
        .await
    } else {
        bail!("--compare needs a sqlite: or postgres:// database URL")
    }
}

/// Runs every writer count for `rounds` rounds, alternating which store goes first so that
/// neither always runs on a warmer (or more fragmented) server; returns each store's median.
async fn compare_stores<E1, E2>(
    backend: Backend,
    ours: Arc<CqrsFramework<Probe, E1>>,
    baseline: Arc<CqrsFramework<Probe, E2>>,
    args: &AppendArgs,
) -> anyhow::Result<Vec<Compared>>
where
    E1: EventStore<Probe> + Send + Sync + 'static,
    E1::AC: Send,
    E2: EventStore<Probe> + Send + Sync + 'static,
    E2::AC: Send,
{
    let base_name = backend.baseline_name();
    // Warm up both: open every pooled connection and prepare the statements, so the first
    // timed run of either store does not pay for its connection set-up.
    let most = args.compare_writers.iter().copied().max().unwrap_or(1);
    let warm_up = AppendArgs {
        events: (most as u64) * 4,
        writers: most,
        ..args.clone()
    };
    drive(baseline.clone(), &new_run_id(), &warm_up).await?;
    drive(ours.clone(), &new_run_id(), &warm_up).await?;

    let mut compared = Vec::new();
    for &writers in &args.compare_writers {
        let run = AppendArgs {
            writers,
            ..args.clone()
        };
        let mut our_rates = Vec::new();
        let mut base_rates = Vec::new();
        for round in 0..args.rounds {
            let tag = format!("writers {writers:>2}, round {}/{}", round + 1, args.rounds);
            let baseline_first = round % 2 == 0;
            for turn in 0..2 {
                if (turn == 0) == baseline_first {
                    let result = drive(baseline.clone(), &new_run_id(), &run).await?;
                    println!("{tag}, {}", describe(base_name, &result));
                    base_rates.push(result.commands_per_second());
                } else {
                    let result = drive(ours.clone(), &new_run_id(), &run).await?;
                    println!("{tag}, {}", describe("ledger", &result));
                    our_rates.push(result.commands_per_second());
                }
            }
        }
        let entry = Compared {
            writers,
            ours: median(our_rates),
            baseline: median(base_rates),
        };
        let verdict = match backend.target(writers) {
            Some(target) if entry.ratio() >= target => format!(" (target ≥ {target:.1}×: met)"),
            Some(target) => format!(" (target ≥ {target:.1}×: MISSED)"),
            None => String::new(),
        };
        println!(
            "writers {writers:>2}: ledger {} commands/s vs {base_name} {} commands/s \
             (medians of {}): ratio ledger/{base_name} {:.2}×{verdict}",
            thousands(entry.ours as u64),
            thousands(entry.baseline as u64),
            args.rounds,
            entry.ratio(),
        );
        compared.push(entry);
    }
    Ok(compared)
}

fn summarize(backend: Backend, settings_line: &str, compared: &[Compared]) {
    let base_name = backend.baseline_name();
    let ratios: Vec<String> = compared
        .iter()
        .map(|c| format!("{:.2}× at {} writer(s)", c.ratio(), c.writers))
        .collect();
    let missed: Vec<String> = compared
        .iter()
        .filter(|c| backend.target(c.writers).is_some_and(|t| c.ratio() < t))
        .map(|c| c.writers.to_string())
        .collect();
    let targets = if missed.is_empty() {
        "every target met".to_owned()
    } else {
        format!("target MISSED at {} writer(s)", missed.join(", "))
    };
    println!(
        "summary ({settings_line}): ledger/{base_name} = {}; {targets}",
        ratios.join(", ")
    );
}

/// postgres-es's `events` and `snapshots` tables, verbatim from its `db/init.sql` (0.5.0);
/// the test view, sample row and test user of that file are left out.
const POSTGRES_ES_SCHEMA: &str = "
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);";

/// sqlite-es's `events` and `snapshots` tables, verbatim from its migration (0.5.0); the
/// test view and sample row of that file are left out.
const SQLITE_ES_SCHEMA: &str = "
CREATE TABLE events
(
  aggregate_type text                          NOT NULL,
  aggregate_id   text                          NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text                          NOT NULL,
  event_version  text                          NOT NULL,
  payload        text                          NOT NULL,
  metadata       text                          NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE TABLE snapshots
(
  aggregate_type   text                                  NOT NULL,
  aggregate_id     text                                  NOT NULL,
  last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
  payload          text                                  NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;";

async fn compare_postgres(
    url: &str,
    pool_size: u32,
    args: &AppendArgs,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let admin_options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin_options)
        .await
        .context("cannot connect to PostgreSQL")?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&admin)
        .await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&admin).await?;
    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&admin)
        .await?;
    let settings_line =
        format!("PostgreSQL {version}, fsync {fsync}, synchronous_commit {synchronous_commit}");
    println!("{settings_line}");
    // Without durable commits both stores skip the very cost group commit is there to share,
    // and the ratio says nothing about production.
    if fsync != "on" || synchronous_commit == "off" {
        bail!(
            "refusing to compare: the server must run with fsync on and synchronous_commit not off"
        );
    }
    let suffix = new_run_id();
    let ours_db = format!("dezky_bench_ledger_{suffix}");
    let base_db = format!("dezky_bench_postgres_es_{suffix}");
    let mut created: Vec<&str> = Vec::new();
    let outcome = async {
        for name in [&ours_db, &base_db] {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .with_context(|| format!("cannot create scratch database {name}"))?;
            created.push(name);
        }
        println!("scratch databases {ours_db} (ledger) and {base_db} (postgres-es)");
        let ledger = Ledger::open(&LedgerOptions {
            database_url: with_database(url, &ours_db)?,
            max_connections: pool_size,
        })
        .await?;
        let base_options = PgConnectOptions::from_str(url)?.database(&base_db);
        let base_pool: PgPool = PgPoolOptions::new()
            .max_connections(pool_size)
            .connect_with(base_options)
            .await?;
        sqlx::raw_sql(POSTGRES_ES_SCHEMA)
            .execute(&base_pool)
            .await?;
        let ours = Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone())),
            vec![],
            (),
        ));
        let baseline = Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(postgres_es::PostgresEventRepository::new(
                base_pool.clone(),
            )),
            vec![],
            (),
        ));
        let compared = compare_stores(Backend::Postgres, ours, baseline, args).await?;
        ledger.close().await;
        base_pool.close().await;
        Ok::<_, anyhow::Error>(compared)
    };
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    // Dropped whatever happened; FORCE ends connections an aborted run left open.
    for name in created {
        if let Err(error) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await
        {
            eprintln!("warning: could not drop scratch database {name}: {error}");
        }
    }
    admin.close().await;
    println!("{} (at end)", machine_line());
    summarize(Backend::Postgres, &settings_line, &outcome?);
    Ok(ExitCode::SUCCESS)
}

async fn sqlite_synchronous(pool: &SqlitePool) -> anyhow::Result<String> {
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await?;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await?;
    let level = match level {
        0 => "OFF",
        1 => "NORMAL",
        2 => "FULL",
        3 => "EXTRA",
        _ => "unknown",
    };
    Ok(format!("journal_mode {journal}, synchronous {level}"))
}

async fn compare_sqlite(
    path: &Path,
    pool_size: u32,
    args: &AppendArgs,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    // The scratch files go beside the configured database: same disk, same fsync cost.
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = ScratchDir::create(parent, ".dezky-bench")?;
    let ours_path = dir.0.join("ledger.db");
    let base_path = dir.0.join("sqlite-es.db");
    let base_file = base_path
        .to_str()
        .context("the scratch path is not UTF-8")?
        .to_owned();
    println!("scratch files in {}", dir.0.display());
    let mut settings_line = String::new();
    let outcome = async {
        let ledger = Ledger::open(&LedgerOptions {
            database_url: format!("sqlite:{}", ours_path.display()),
            max_connections: pool_size,
        })
        .await?;
        let base_pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            .connect_with(sqlite_connect_options(&base_file))
            .await?;
        sqlx::raw_sql(SQLITE_ES_SCHEMA).execute(&base_pool).await?;
        let ours_settings = match ledger.db() {
            Db::Sqlite(pool) => sqlite_synchronous(pool).await?,
            Db::Postgres(_) => bail!("the ledger did not open the SQLite scratch file"),
        };
        let base_settings = sqlite_synchronous(&base_pool).await?;
        settings_line = format!(
            "SQLite {}: ledger {ours_settings}; sqlite-es {base_settings}",
            sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(&base_pool)
                .await?
        );
        println!("{settings_line}");
        let ours = Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone())),
            vec![],
            (),
        ));
        let baseline = Arc::new(CqrsFramework::new(
            PersistedEventStore::new_event_store(sqlite_es::SqliteEventRepository::new(
                base_pool.clone(),
            )),
            vec![],
            (),
        ));
        let compared = compare_stores(Backend::Sqlite, ours, baseline, args).await?;
        ledger.close().await;
        base_pool.close().await;
        Ok::<_, anyhow::Error>(compared)
    };
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    drop(dir);
    println!("{} (at end)", machine_line());
    summarize(Backend::Sqlite, &settings_line, &outcome?);
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// `dezky bench verify`: offline verification speed on a synthetic export.
// ---------------------------------------------------------------------------------------

/// The target for offline verification on the reference 2-core machine.
const VERIFY_TARGET_EVENTS_PER_SECOND: f64 = 1_000_000.0;
/// A signed checkpoint every this many events, as a busy deployment would have.
const VERIFY_CHECKPOINT_EVERY: u64 = 100_000;
/// Origin (and key name) of the synthetic log.
const VERIFY_ORIGIN: &str = "bench.dezky.local/ledger";

/// What the generator wrote.
struct Synthetic {
    bytes: u64,
    checkpoints: u64,
    last_hash: [u8; 32],
}

/// Writes a fully valid export of `events` events: real hashes, a real Merkle frontier and
/// checkpoints signed by `key`, through the export module's own line writers.
fn write_synthetic_export(path: &Path, events: u64, key: &SigningKey) -> anyhow::Result<Synthetic> {
    let file =
        File::create_new(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write_header(
        &mut out,
        0,
        &GENESIS_PREV_HASH,
        &Frontier::default(),
        events,
        None,
    )?;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .context("start time")?
        .with_timezone(&chrono::Utc);
    let mut frontier = Frontier::default();
    let mut prev_hash = GENESIS_PREV_HASH;
    let mut checkpoints = 0;
    let per_aggregate = 10;
    for position in 1..=events {
        let writer = (position % 16) as usize;
        let n = position - 1;
        // The very JSON the ledger stores for a bench command: canonical (sorted keys).
        let payload = serde_json::json!({
            "ReadingRecorded": {
                "label": label(writer, n),
                "reading_no": n % per_aggregate + 1,
                "unit": "ms",
                "value_milli": n,
            }
        });
        let metadata = serde_json::json!({
            "actor_subject": format!("bench-writer-{writer}"),
            "tenant_id": "bench",
        });
        let offset = chrono::Duration::microseconds(i64::try_from(position).unwrap_or(i64::MAX));
        let mut record = EventRecord {
            position,
            recorded_at: format_timestamp(start + offset),
            aggregate_type: dezky_domain::probe::PROBE_AGGREGATE_TYPE.to_owned(),
            aggregate_id: format!("bench-{}", n / per_aggregate),
            aggregate_version: n % per_aggregate + 1,
            event_type: dezky_domain::probe::READING_RECORDED.to_owned(),
            event_version: dezky_domain::probe::READING_RECORDED_VERSION.to_owned(),
            metadata: dezky_commands::encoding::canonical_json(&metadata)?,
            payload: dezky_commands::encoding::canonical_json(&payload)?,
            prev_hash,
            hash: [0; 32],
        };
        record.hash = record.computed_hash();
        write_event(&mut out, &record)?;
        frontier.push(&record.hash);
        prev_hash = record.hash;
        if position % VERIFY_CHECKPOINT_EVERY == 0 || position == events {
            let checkpoint = SignedCheckpoint::sign(
                VERIFY_ORIGIN,
                position,
                &frontier.root(),
                &prev_hash,
                &record.recorded_at,
                key,
            )?;
            write_checkpoint(&mut out, &checkpoint.note)?;
            checkpoints += 1;
        }
    }
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    // Flush the file to disk now: otherwise the kernel writes hundreds of megabytes back
    // while the verifier runs, and the timing measures the disk instead of the verifier.
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    Ok(Synthetic {
        bytes,
        checkpoints,
        last_hash: prev_hash,
    })
}

/// `dezky bench verify`: writes a synthetic export and times offline verification of it.
pub async fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 || args.rounds == 0 {
        bail!("--events and --rounds must be at least 1");
    }
    // Hashing and signing are CPU work; keep them off the async workers.
    tokio::task::spawn_blocking(move || verify_bench(&args)).await?
}

fn verify_bench(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = ScratchDir::create(&parent, ".dezky-bench-verify")?;
    let path = dir.0.join("export.jsonl");
    let generated = generate(VERIFY_ORIGIN)?;
    let key = SigningKey::from_private_line(&generated.private_line, Path::new("bench key"))?;
    let started = Instant::now();
    let synthetic = write_synthetic_export(&path, args.events, &key)?;
    println!(
        "wrote a synthetic export: {} events, {} signed checkpoints, {:.1} MB ({} bytes/line) in {:.1} s",
        thousands(args.events),
        synthetic.checkpoints,
        synthetic.bytes as f64 / 1e6,
        synthetic.bytes / args.events,
        started.elapsed().as_secs_f64()
    );
    println!("{}", machine_line());
    let mut rates = Vec::new();
    for round in 1..=args.rounds {
        let keys = TrustedKeys::from_lines(vec![key.public_line().to_owned()])?;
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let started = Instant::now();
        let report = verify_export(
            BufReader::with_capacity(1 << 20, file),
            keys,
            &VerifyOptions::default(),
            |_, _| {},
        )?;
        let elapsed = started.elapsed().as_secs_f64().max(f64::EPSILON);
        // A benchmark of a verifier that rejects valid input, or skips some of it, measures
        // nothing: insist on the full, intact result.
        if let Some(found) = &report.first_break {
            bail!("the synthetic export did not verify: {found}");
        }
        if report.events != args.events
            || report.checkpoints_verified != synthetic.checkpoints
            || report.last_hash != synthetic.last_hash
        {
            bail!(
                "the verifier walked {} events and {} checkpoints; {} and {} were written",
                report.events,
                report.checkpoints_verified,
                args.events,
                synthetic.checkpoints
            );
        }
        let rate = args.events as f64 / elapsed;
        println!(
            "round {round}/{}: verified {} events and {} checkpoints in {:.3} s = {} events/s, {:.0} MB/s",
            args.rounds,
            thousands(args.events),
            report.checkpoints_verified,
            elapsed,
            thousands(rate as u64),
            synthetic.bytes as f64 / 1e6 / elapsed,
        );
        rates.push(rate);
    }
    let rate = median(rates);
    let verdict = if rate >= VERIFY_TARGET_EVENTS_PER_SECOND {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "summary: offline export verification {} events/s (median of {}, {} cores); target ≥ {} events/s: {verdict}",
        thousands(rate as u64),
        args.rounds,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        thousands(VERIFY_TARGET_EVENTS_PER_SECOND as u64),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server_keeps_credentials_and_parameters() {
        let url = "postgres://u:p@h:5433/app?sslmode=disable&dbname=x";
        assert_eq!(
            with_database(url, "scratch").ok().as_deref(),
            Some("postgres://u:p@h:5433/scratch?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "s").ok().as_deref(),
            Some("postgres://h/s")
        );
    }

    #[test]
    fn the_median_of_an_even_count_averages_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_small_synthetic_export_verifies_intact() {
        let dir = ScratchDir::create(&std::env::temp_dir(), ".dezky-bench-test").expect("dir");
        let path = dir.0.join("export.jsonl");
        let generated = generate(VERIFY_ORIGIN).expect("key");
        let key =
            SigningKey::from_private_line(&generated.private_line, Path::new("k")).expect("key");
        let synthetic = write_synthetic_export(&path, 1_234, &key).expect("export");
        let keys = TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("keys");
        let file = File::open(&path).expect("open");
        let report = verify_export(
            BufReader::new(file),
            keys,
            &VerifyOptions::default(),
            |_, _| {},
        )
        .expect("verify");
        assert!(report.is_intact(), "{:?}", report.first_break);
        assert_eq!(report.events, 1_234);
        assert_eq!(report.checkpoints_verified, 1);
        assert_eq!(report.last_hash, synthetic.last_hash);
    }
}
