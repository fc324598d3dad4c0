//! `dezky projections status|rebuild`: what every projection's builds are doing, and a
//! rebuild beside the live build with progress and a one-line summary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use dezky_commands::Ledger;
use dezky_projections::builds::{builds_of, leases, list_builds, request_rebuild, BuildStatus};
use dezky_projections::host::holder_id;
use dezky_projections::registry;
use tokio::sync::watch;

use crate::progress::{events_bar, thousands, update};
use crate::settings::Settings;

/// Exit code for a projection name nobody knows (a usage error).
const EXIT_USAGE: u8 = 2;
/// How often the rebuild's progress is read back.
const PROGRESS_POLL_MS: u64 = 200;

/// `dezky projections …`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Every projection's builds: build number, schema version, status, position, lag, and
    /// which process holds its lease.
    Status {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection beside the live build, then switch over atomically. Queries keep
    /// reading the live build until the switch. A rebuild interrupted by a crash resumes where
    /// it stopped (run this again, or let `dezky serve` finish it).
    Rebuild {
        /// The projection (see `dezky projections status`).
        name: String,
        /// Keep the old build's tables after the switch instead of dropping them after the
        /// grace period.
        #[arg(long)]
        keep_old: bool,
    },
}

/// The projections this version knows, with the schema version its code folds (the
/// registry's).
pub fn known_projections() -> Vec<(&'static str, u32)> {
    registry::all()
        .iter()
        .map(|p| (p.name, p.schema_version))
        .collect()
}

/// Runs a `projections` subcommand.
pub async fn run(settings: &Settings, command: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    let code = match command {
        ProjectionsCommand::Status { json } => status(&ledger, json).await?,
        ProjectionsCommand::Rebuild { name, keep_old } => rebuild(&ledger, &name, keep_old).await?,
    };
    ledger.close().await;
    Ok(code)
}

async fn status(ledger: &Ledger, json: bool) -> anyhow::Result<ExitCode> {
    let head = ledger.head().await?.position;
    let builds = list_builds(ledger.db()).await?;
    let leases = leases(ledger.db()).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let holder_of = |name: &str| {
        leases
            .iter()
            .find(|(n, _, expires)| n == name && *expires > now_ms)
            .map(|(_, holder, _)| holder.clone())
    };
    if json {
        let rows: Vec<serde_json::Value> = builds
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name, "build": b.build, "schema_version": b.schema_version,
                    "status": b.status, "position": b.position,
                    "lag": head.saturating_sub(b.position), "lease_holder": holder_of(&b.name),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"ledger_position": head, "builds": rows})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:>5} {:>6} {:<9} {:>12} {:>10}  lease holder",
        "projection", "build", "schema", "status", "position", "lag"
    );
    for b in &builds {
        let lag = match b.status {
            BuildStatus::Live | BuildStatus::Building => thousands(head.saturating_sub(b.position)),
            BuildStatus::Retired | BuildStatus::Dropped => "-".into(),
        };
        println!(
            "{:<16} {:>5} {:>6} {:<9} {:>12} {:>10}  {}",
            b.name,
            b.build,
            b.schema_version,
            b.status.as_str(),
            thousands(b.position),
            lag,
            holder_of(&b.name).unwrap_or_else(|| "-".into())
        );
    }
    let live = builds
        .iter()
        .filter(|b| b.status == BuildStatus::Live)
        .count();
    let building = builds
        .iter()
        .filter(|b| b.status == BuildStatus::Building)
        .count();
    println!(
        "{live} live, {building} building; the ledger holds {} events",
        thousands(head)
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts a host for `name` in this process (it folds if it gets the lease, else a running
/// server does) and returns its shutdown switch.
fn spawn_host(
    ledger: &Ledger,
    name: &str,
) -> Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let projection = registry::find(name)?;
    let (stop, shutdown) = watch::channel(false);
    let handle = tokio::spawn(projection.host(ledger.clone(), holder_id()).run(shutdown));
    Some((stop, handle))
}

async fn rebuild(ledger: &Ledger, name: &str, keep_old: bool) -> anyhow::Result<ExitCode> {
    let Some((_, schema_version)) = known_projections().into_iter().find(|(n, _)| *n == name)
    else {
        let names: Vec<&str> = known_projections().iter().map(|(n, _)| *n).collect();
        eprintln!(
            "error: no projection named '{name}' (known: {})",
            names.join(", ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let started = Instant::now();
    let requested = request_rebuild(ledger.db(), name, schema_version, keep_old).await?;
    let previous = builds_of(ledger.db(), name)
        .await?
        .into_iter()
        .find(|b| b.status == BuildStatus::Live)
        .map(|b| b.build);
    let first_position = requested.position;
    eprintln!(
        "rebuilding {name} as build {} beside the live build{}",
        requested.build,
        previous.map(|b| format!(" {b}")).unwrap_or_default()
    );
    let Some((stop, host)) = spawn_host(ledger, name) else {
        anyhow::bail!("no host for projection {name}");
    };
    let bar = events_bar("rebuilding");
    // Done when the build is live and has folded what the ledger held when we started (a
    // first build is live from the start, so being live alone is not enough).
    let target = ledger.head().await?.position;
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(PROGRESS_POLL_MS)).await;
        let head = ledger.head().await?.position;
        let builds = builds_of(ledger.db(), name).await?;
        let Some(build) = builds.iter().find(|b| b.build == requested.build) else {
            break Err(anyhow::anyhow!(
                "build {} of {name} vanished",
                requested.build
            ));
        };
        update(&bar, build.position, head);
        match build.status {
            BuildStatus::Live if build.position >= target => break Ok(build.position),
            BuildStatus::Live => {}
            BuildStatus::Building => {}
            BuildStatus::Retired | BuildStatus::Dropped => {
                break Err(anyhow::anyhow!(
                    "build {} of {name} was abandoned (a process with another schema version of {name} holds its lease)",
                    requested.build
                ))
            }
        }
        if host.is_finished() {
            break Err(anyhow::anyhow!("the projection host stopped"));
        }
    };
    bar.finish_and_clear();
    let _ = stop.send(true);
    let _ = host.await;
    let position = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let folded = position.saturating_sub(first_position);
    #[allow(clippy::cast_precision_loss)]
    let rate = folded as f64 / seconds.max(1e-9);
    let old = match (previous, keep_old) {
        (Some(b), true) => format!("; build {b} kept"),
        (Some(b), false) => format!(
            "; build {b} retired (its tables are dropped after {} s)",
            dezky_projections::builds::DROP_RETIRED_AFTER_SECS
        ),
        (None, _) => String::new(),
    };
    println!(
        "rebuilt {name}: build {} is live at position {}, {} events in {seconds:.1} s ({} events/s){old}",
        requested.build,
        thousands(position),
        thousands(folded),
        thousands(rate as u64),
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether a projection type exists under `name` (GraphQL's check before a request).
pub fn is_known(name: &str) -> Option<u32> {
    known_projections()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}
