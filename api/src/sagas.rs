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
use dezky_domain::domains::{DomainCommand, DomainContext, DomainError};
use dezky_domain::tenant::Principal;
use dezky_projections::effects::EffectsQueue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The lease under which one instance schedules domain rechecks.
pub const RECHECK_LEASE: &str = "domain_rechecks";
/// Domains asked to recheck per round.
const RECHECKS_PER_ROUND: u32 = 100;
/// The subject on scheduled rechecks.
const RECHECK_ACTOR: &str = "domain-rechecks";

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
    let rechecks = recheck_domains(
        ledger.clone(),
        config.clone(),
        holder_for_rechecks,
        shutdown.clone(),
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

fn ago(interval: std::time::Duration) -> String {
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let then = chrono::Utc::now()
        .checked_sub_signed(interval)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    dezky_commands::encoding::format_timestamp(then)
}

/// Asks for a DNS recheck of every domain whose interval has passed since its last check, in
/// whichever instance holds the rechecks lease; the domain provisioning saga does the checking.
async fn recheck_domains(
    ledger: Ledger,
    config: SagaConfig,
    holder: String,
    shutdown: watch::Receiver<bool>,
) {
    let domains = dezky_commands::saga::framework::<dezky_domain::domains::Domain>(&ledger);
    // Look several times per (shorter) interval, never more than once a minute in production
    // and never less than once a second in tests.
    let every = (config.recheck_unverified / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let db = ledger.db().clone();
    let round = || async {
        let due = dezky_projections::domains::domains_due_for_recheck(
            ledger.db(),
            &ago(config.recheck_verified),
            &ago(config.recheck_unverified),
            RECHECKS_PER_ROUND,
        )
        .await;
        let due = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "listing domains due for a recheck");
                return;
            }
        };
        for row in due {
            let command = DomainCommand::Recheck {
                ctx: DomainContext {
                    principal: Principal::system(RECHECK_ACTOR),
                    tenant_id: row.tenant_id.clone(),
                    now: dezky_commands::saga::now(),
                },
            };
            let metadata = dezky_domain::EventMetadata {
                actor: Some(dezky_domain::Actor {
                    subject: format!("system:{RECHECK_ACTOR}"),
                    email: None,
                }),
                tenant_id: Some(row.tenant_id.clone()),
                occurred_at: Some(dezky_commands::saga::now()),
                ..Default::default()
            };
            match domains
                .execute_with_metadata(&row.name, command, metadata.to_map())
                .await
            {
                // Removed or re-provisioning meanwhile, or raced by a person's recheck.
                Ok(())
                | Err(cqrs_es::AggregateError::UserError(
                    DomainError::NotFound | DomainError::NotProvisioned,
                ))
                | Err(cqrs_es::AggregateError::AggregateConflict) => {}
                Err(error) => tracing::warn!(domain = %row.name, %error, "scheduled recheck"),
            }
        }
    };
    dezky_commands::lease::run_exclusively(db, RECHECK_LEASE, holder, every, shutdown, round).await;
}
