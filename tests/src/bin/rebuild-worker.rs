//! A test peer that hosts the tenant directory as its own OS process (with a lease, like an
//! API instance), so the rebuild suite can SIGKILL it in the middle of a shadow build.
//!
//! ```text
//! rebuild-worker --database-url URL [--pause-build BUILD --pause-at POSITION]
//! ```
//!
//! It runs a `ProjectionHost` for the tenant directory until killed. With `--pause-build`,
//! the fold of that build stops inside the transaction that folds `--pause-at` and prints
//! `paused <position>`, so the suite kills the process at a known point with a batch half
//! folded. It prints `holding` once it holds the lease. Errors go to stderr and exit 1.

use std::process::ExitCode;

use dezky_commands::encoding::EventRecord;
use dezky_commands::{Ledger, LedgerOptions};
use dezky_projections::host::{holder_id, ProjectionHost};
use dezky_projections::runner::Dialect;
use dezky_projections::tenants::TenantDirectory;
use dezky_projections::{Projection, ProjectionError, ReadTx};
use tokio::sync::watch;

/// The tenant directory, pausing in the middle of one build's fold.
struct Pausing {
    inner: TenantDirectory,
    pause_at: Option<u64>,
}

impl Projection for Pausing {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn build(&self) -> u32 {
        self.inner.build()
    }
    fn schema_version(&self) -> u32 {
        self.inner.schema_version()
    }
    fn schema(&self, dialect: Dialect) -> Vec<String> {
        self.inner.schema(dialect)
    }
    fn indexes(&self, dialect: Dialect) -> Vec<String> {
        self.inner.indexes(dialect)
    }
    fn tables(&self) -> Vec<String> {
        Projection::tables(&self.inner)
    }
    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let Some(pause_at) = self
            .pause_at
            .filter(|p| events.iter().any(|e| e.position == *p))
        else {
            return self.inner.apply(tx, events).await;
        };
        let upto: Vec<EventRecord> = events
            .iter()
            .take_while(|e| e.position <= pause_at)
            .cloned()
            .collect();
        self.inner.apply(tx, &upto).await?;
        println!("paused {pause_at}");
        // Hold the transaction open until the suite kills the process.
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let url = flag(&args, "--database-url").ok_or("--database-url is required")?;
    let parse = |name: &str| -> Result<Option<u64>, String> {
        flag(&args, name)
            .map(|v| v.parse().map_err(|e| format!("{name} {v:?}: {e}")))
            .transpose()
    };
    let pause_build = parse("--pause-build")?;
    let pause_at = parse("--pause-at")?;
    let ledger = Ledger::open(&LedgerOptions::new(url))
        .await
        .map_err(|e| format!("opening the ledger: {e}"))?;
    let host = ProjectionHost::new(ledger, holder_id(), move |build| Pausing {
        inner: TenantDirectory::with_version(build),
        pause_at: pause_at.filter(|_| pause_build == Some(u64::from(build))),
    });
    let mut state = host.state();
    let (_stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(host.run(shutdown));
    if state.wait_for(|s| s.holder).await.is_ok() {
        println!("holding");
    }
    task.await.map_err(|e| format!("the host panicked: {e}"))?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rebuild-worker: {message}");
            ExitCode::FAILURE
        }
    }
}
