//! The processors a server runs beside its API: every projection runner and every process
//! manager, started in one place so `dezky serve` and the test harnesses run the same set.

use dezky_commands::process::slug_release::SlugRelease;
use dezky_commands::process::ProcessRunner;
use dezky_commands::Ledger;
use dezky_projections::host::holder_id;
use dezky_projections::registry::{self, Hosted};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Running processors.
pub struct Processors {
    /// Each read model's name and the position it has folded up to (readiness, lag metrics).
    pub read_models: Vec<(&'static str, watch::Receiver<u64>)>,
    /// Each process manager's position.
    pub processes: Vec<(&'static str, watch::Receiver<u64>)>,
    /// The tasks, to await on shutdown.
    pub handles: Vec<JoinHandle<()>>,
}

impl Processors {
    /// What a mutation waits for before answering (for [`crate::graphql::ApiContext::new`]):
    /// every read model, and every process manager, so that a purge's answer comes after its
    /// slug is free again.
    pub fn positions(&self) -> Vec<watch::Receiver<u64>> {
        self.read_models
            .iter()
            .chain(&self.processes)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

/// Starts a host for every projection (each folds in whichever process holds its lease, and
/// rebuilds beside the live build when its schema version changed or an operator asked) and
/// every process manager on `ledger`, until `shutdown` turns true. Returns once every
/// projection has a live build whose tables exist, so queries can be served at once.
pub async fn start(
    ledger: &Ledger,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Processors> {
    let holder = holder_id();
    let hosts: Vec<Box<dyn Hosted>> = registry::all()
        .iter()
        .map(|projection| projection.host(ledger.clone(), holder.clone()))
        .collect();
    for host in &hosts {
        host.prepare().await?;
    }
    let slug_release = ProcessRunner::new(ledger.clone(), SlugRelease::new(ledger)).await?;
    let read_models = hosts
        .iter()
        .map(|host| (host.name(), host.position()))
        .collect();
    let processes = vec![("slug_release", slug_release.position())];
    let mut handles: Vec<JoinHandle<()>> = hosts
        .into_iter()
        .map(|host| tokio::spawn(host.run(shutdown.clone())))
        .collect();
    handles.push(tokio::spawn(slug_release.run(shutdown.clone())));
    Ok(Processors {
        read_models,
        processes,
        handles,
    })
}
