//! A test peer that runs the read side over a ledger as its own OS process, so the crash
//! suite can SIGKILL it mid-stream and restart it.
//!
//! ```text
//! projection-worker --database-url URL --read-model-version V [--pause-at POSITION]
//! ```
//!
//! It drives three projections side by side, each batch through `ProjectionRunner::step`: the
//! real tenant directory and audit timeline, and `applied`, which inserts one row per event
//! position into a table whose primary key is that position, so an event applied twice fails
//! the batch (and the worker) instead of passing unseen.
//!
//! Progress goes to stdout, one line at a time, flushed as it happens:
//!
//! ```text
//! start <projection> <position>       the stored position it resumes from
//! committed <projection> <position>   a batch committed up to here
//! paused <position>                   `applied` reached --pause-at inside its open transaction
//! caught-up <projection> <position>   nothing left to fold
//! done                                every projection caught up; the worker exits 0
//! ```
//!
//! With `--pause-at`, `applied` stops inside the transaction that folds that position and
//! waits forever, so the suite can kill the process at a known point with a batch half
//! folded. Errors go to stderr and exit 1.

use std::process::ExitCode;

use dezky_commands::encoding::EventRecord;
use dezky_commands::{Ledger, LedgerOptions};
use dezky_projections::audit::AuditTimeline;
use dezky_projections::runner::Dialect;
use dezky_projections::tenants::TenantDirectory;
use dezky_projections::{on_tx, Projection, ProjectionError, ProjectionRunner, ReadTx};

/// Connections: one batch per projection plus the ledger reads, with room to spare.
const MAX_CONNECTIONS: u32 = 8;

/// One row per folded event, keyed by its position.
struct Applied {
    version: u32,
    pause_at: Option<u64>,
}

impl Applied {
    /// The projection's name.
    pub const NAME: &'static str = "applied";

    fn table(&self) -> String {
        format!("rm_{}_v{}", Self::NAME, self.version)
    }
}

impl Projection for Applied {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn build(&self) -> u32 {
        self.version
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn tables(&self) -> Vec<String> {
        vec![self.table()]
    }

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        Vec::new()
    }
    fn schema(&self, _dialect: Dialect) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (position BIGINT PRIMARY KEY, \
             aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, \
             aggregate_version BIGINT NOT NULL)",
            self.table()
        )]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        // No ON CONFLICT: a position folded a second time is a primary-key violation.
        let sql = format!(
            "INSERT INTO {} (position, aggregate_type, aggregate_id, aggregate_version) \
             VALUES ($1, $2, $3, $4)",
            self.table()
        );
        for event in events {
            on_tx!(&mut *tx, conn => {
                sqlx::query(&sql)
                    .bind(event.position as i64)
                    .bind(&event.aggregate_type)
                    .bind(&event.aggregate_id)
                    .bind(event.aggregate_version as i64)
                    .execute(&mut **conn)
                    .await?;
            });
            if self.pause_at == Some(event.position) {
                println!("paused {}", event.position);
                // Hold the transaction open until the suite kills the process.
                std::future::pending::<()>().await;
            }
        }
        Ok(())
    }
}

struct Args {
    database_url: String,
    version: u32,
    pause_at: Option<u64>,
}

fn usage() -> String {
    "usage: projection-worker --database-url URL --read-model-version V [--pause-at POSITION]"
        .to_owned()
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut database_url = None;
    let mut version = None;
    let mut pause_at = None;
    while let Some(flag) = raw.next() {
        let value = raw
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--database-url" => database_url = Some(value),
            "--read-model-version" => {
                version = Some(
                    value
                        .parse()
                        .map_err(|e| format!("{flag} {value:?}: {e}"))?,
                )
            }
            "--pause-at" => {
                pause_at = Some(
                    value
                        .parse()
                        .map_err(|e| format!("{flag} {value:?}: {e}"))?,
                )
            }
            other => return Err(format!("unknown flag {other:?}\n{}", usage())),
        }
    }
    Ok(Args {
        database_url: database_url.ok_or_else(|| format!("--database-url\n{}", usage()))?,
        version: version.ok_or_else(|| format!("--read-model-version\n{}", usage()))?,
        pause_at,
    })
}

/// Steps one projection until it has folded everything, reporting each batch.
async fn drive<P: Projection>(ledger: Ledger, projection: P) -> Result<(), String> {
    let name = projection.name();
    let runner = ProjectionRunner::new(ledger, projection)
        .await
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    println!("start {name} {}", *runner.position().borrow());
    loop {
        let folded = runner
            .step()
            .await
            .map_err(|e| format!("{name}: a batch failed: {e}"))?;
        let position = *runner.position().borrow();
        if folded == 0 {
            println!("caught-up {name} {position}");
            return Ok(());
        }
        println!("committed {name} {position}");
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut options = LedgerOptions::new(args.database_url.clone());
    options.max_connections = MAX_CONNECTIONS;
    let ledger = Ledger::open(&options)
        .await
        .map_err(|e| format!("opening the ledger: {e}"))?;
    let tasks = [
        tokio::spawn(drive(
            ledger.clone(),
            TenantDirectory::with_version(args.version),
        )),
        tokio::spawn(drive(
            ledger.clone(),
            AuditTimeline::with_version(args.version),
        )),
        tokio::spawn(drive(
            ledger.clone(),
            Applied {
                version: args.version,
                pause_at: args.pause_at,
            },
        )),
    ];
    for task in tasks {
        task.await
            .map_err(|e| format!("a projection panicked: {e}"))??;
    }
    ledger.close().await;
    Ok(())
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
        Ok(()) => {
            println!("done");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("projection-worker: {message}");
            ExitCode::FAILURE
        }
    }
}
