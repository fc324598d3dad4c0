//! The sagas a server runs beside its API: the process managers that intend effects in the
//! mail server and DNS, and the worker that performs them. Started in one place so `dezky
//! serve` and the test harnesses run the same set.
//!
//! Mutations do not wait for sagas: an answer never hangs on an external system. What a saga
//! did shows in the read models as its effects land (a domain's status, `sagas status`).

use dezky_commands::ports::dns::DnsCheck;
use dezky_commands::ports::mail::MailServer;
use dezky_commands::process::ProcessRunner;
use dezky_commands::saga::domain_provisioning::DomainProvisioning;
use dezky_commands::saga::mailboxes::Mailboxes;
use dezky_commands::saga::request::Systems;
use dezky_commands::saga::tenant_provisioning::TenantProvisioning;
use dezky_commands::saga::worker::EffectWorker;
use dezky_commands::saga::SagaConfig;
use dezky_commands::Ledger;
use dezky_projections::domains::RecheckQueue;
use dezky_projections::effects::EffectsQueue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Running sagas.
pub struct SagaTasks {
    /// Each saga process manager's name and position.
    pub processes: Vec<(&'static str, watch::Receiver<u64>)>,
    /// The tasks, to await on shutdown.
    pub handles: Vec<JoinHandle<()>>,
}

/// Starts every saga and the effect worker on `ledger` until `shutdown` turns true. The
/// worker holds the deployment's single worker lease as `holder`.
pub async fn start<M, D>(
    ledger: &Ledger,
    mail: M,
    dns: D,
    config: &SagaConfig,
    holder: String,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<SagaTasks>
where
    M: MailServer + 'static,
    D: DnsCheck + 'static,
{
    let tenants =
        ProcessRunner::new(ledger.clone(), TenantProvisioning::new(ledger, config)).await?;
    let domains =
        ProcessRunner::new(ledger.clone(), DomainProvisioning::new(ledger, config)).await?;
    let mailboxes = ProcessRunner::new(ledger.clone(), Mailboxes::new(ledger, config)).await?;
    let holder_for_rechecks = holder.clone();
    let worker = EffectWorker::new(
        ledger.clone(),
        Systems { mail, dns },
        EffectsQueue::new(ledger.db().clone()),
        holder,
    );
    let processes = vec![
        ("tenant_provisioning", tenants.position()),
        ("domain_provisioning", domains.position()),
        ("mailboxes", mailboxes.position()),
    ];
    let rechecks = dezky_commands::saga::rechecks::run(
        ledger.clone(),
        config.clone(),
        holder_for_rechecks,
        shutdown.clone(),
        RecheckQueue::new(ledger.db().clone()),
    );
    let handles = vec![
        tokio::spawn(rechecks),
        tokio::spawn(tenants.run(shutdown.clone())),
        tokio::spawn(domains.run(shutdown.clone())),
        tokio::spawn(mailboxes.run(shutdown.clone())),
        tokio::spawn(worker.run(shutdown.clone())),
    ];
    Ok(SagaTasks { processes, handles })
}
