//! The processors a server runs beside its API: every projection runner and every process
//! manager, started in one place so `dezky serve` and the test harnesses run the same set.

use dezky_commands::process::slug_release::SlugRelease;
use dezky_commands::process::ProcessRunner;
use dezky_commands::Ledger;
use dezky_projections::audit::AuditTimeline;
use dezky_projections::bookings::Bookings;
use dezky_projections::domains::DomainDirectory;
use dezky_projections::effects::SagaEffects;
use dezky_projections::host::{holder_id, ProjectionHost};
use dezky_projections::mail_addresses::MailAddresses;
use dezky_projections::settings::TenantSettings;
use dezky_projections::tenants::TenantDirectory;
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
    let directory = ProjectionHost::new(
        ledger.clone(),
        holder.clone(),
        TenantDirectory::with_version,
    );
    let audit = ProjectionHost::new(ledger.clone(), holder.clone(), AuditTimeline::with_version);
    let settings =
        ProjectionHost::new(ledger.clone(), holder.clone(), TenantSettings::with_version);
    let effects = ProjectionHost::new(ledger.clone(), holder.clone(), SagaEffects::with_version);
    let domains = ProjectionHost::new(
        ledger.clone(),
        holder.clone(),
        DomainDirectory::with_version,
    );
    let mail = ProjectionHost::new(ledger.clone(), holder.clone(), MailAddresses::with_version);
    let bookings = ProjectionHost::new(ledger.clone(), holder, Bookings::with_version);
    directory.prepare().await?;
    audit.prepare().await?;
    settings.prepare().await?;
    effects.prepare().await?;
    domains.prepare().await?;
    mail.prepare().await?;
    bookings.prepare().await?;
    let slug_release = ProcessRunner::new(ledger.clone(), SlugRelease::new(ledger)).await?;
    let read_models = vec![
        (TenantDirectory::NAME, directory.position()),
        (AuditTimeline::NAME, audit.position()),
        (TenantSettings::NAME, settings.position()),
        (SagaEffects::NAME, effects.position()),
        (DomainDirectory::NAME, domains.position()),
        (MailAddresses::NAME, mail.position()),
        (Bookings::NAME, bookings.position()),
    ];
    let processes = vec![("slug_release", slug_release.position())];
    let handles = vec![
        tokio::spawn(directory.run(shutdown.clone())),
        tokio::spawn(audit.run(shutdown.clone())),
        tokio::spawn(settings.run(shutdown.clone())),
        tokio::spawn(effects.run(shutdown.clone())),
        tokio::spawn(domains.run(shutdown.clone())),
        tokio::spawn(mail.run(shutdown.clone())),
        tokio::spawn(bookings.run(shutdown.clone())),
        tokio::spawn(slug_release.run(shutdown.clone())),
    ];
    Ok(Processors {
        read_models,
        processes,
        handles,
    })
}
