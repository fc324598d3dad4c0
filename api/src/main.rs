//! The `dezky` binary: parses the command line and runs the chosen operation.
//!
//! Exit codes: 0 success; 1 the ledger verification found a break; 2 usage error; 3 the
//! operation failed (configuration, database, file).

use std::process::ExitCode;

use clap::Parser;
use dezky_api::audit_cli::{json_error, EXIT_FAILURE, EXIT_USAGE};
use dezky_api::cli::{BenchSuite, Cli, Command, DevCommand, KeysCommand};
use dezky_api::{audit_cli, bench, bench_graphql, bench_rebuild, demo};

/// The process's allocator. Folding a batch of events allocates and frees millions of small
/// strings (decoded payloads, summaries, row values) across threads; glibc's allocator spent a
/// fifth of a rebuild's CPU on that (`malloc_consolidate`, `_int_free`), mimalloc a fraction
/// of it (BENCHMARKS.md, "Projection rebuilds"; ADR 0004).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_telemetry() {
    // Logs go to stderr so stdout stays clean for exports and machine-readable output.
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEZKY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve(args) => dezky_api::serve::run(&settings, args).await,
        Command::Dev(DevCommand::Token {
            role,
            tenant,
            partner,
        }) => dezky_api::dev::print_token(&settings, role, tenant.as_deref(), &partner).await,
        Command::Migrate => {
            let ledger = dezky_commands::Ledger::open(&settings.ledger_options()).await?;
            let head = ledger.head().await?;
            println!(
                "migrations applied; the ledger holds {} events",
                head.position
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { commands } => demo::run(&settings, commands).await,
        Command::Keys(KeysCommand::Generate { name, out }) => {
            let name = name.unwrap_or_else(|| settings.origin.clone());
            audit_cli::generate_key(&name, &out)
        }
        Command::Keys(KeysCommand::Public) => {
            for line in settings.trusted_keys()?.lines() {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(command) => audit_cli::run(&settings, command).await,
        Command::Projections(command) => dezky_api::projections_cli::run(&settings, command).await,
        Command::Sagas(command) => dezky_api::sagas_cli::run(&settings, command).await,
        Command::Health => dezky_api::health::run(&settings.health).await,
        Command::Bench(BenchSuite::Ledger(command)) => bench::run(&settings, command).await,
        Command::Bench(BenchSuite::Graphql(args)) => bench_graphql::run(&settings, args).await,
        Command::Bench(BenchSuite::Rebuild(args)) => bench_rebuild::run(&settings, args).await,
    }
}

/// Parses the command line; a usage error exits 2, and answers as one JSON object when the
/// command line asked for `--json` (docs/ledger-format.md §7: every outcome answers).
fn parse_cli() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(error) if error.use_stderr() && std::env::args_os().any(|arg| arg == "--json") => {
            let message = error.render().to_string();
            println!("{}", json_error("usage", EXIT_USAGE, message.trim()));
            Err(ExitCode::from(EXIT_USAGE))
        }
        // Help and version print to stdout and exit 0; other usage errors exit 2.
        Err(error) => error.exit(),
    }
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_telemetry();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
