//! The domain-recheck schedule, part of the domain provisioning saga: in whichever instance
//! holds the `domain_rechecks` lease, every round asks for a DNS recheck of each domain whose
//! interval has passed since its last check (a day for verified domains, minutes for those
//! still verifying or needing attention); the saga's DNS step then does the checking.
//!
//! Which domains are due is read from the domain read model through [`DueForRecheck`] (a port:
//! this crate cannot read projections). A stale answer only makes a recheck early or late: the
//! command itself is decided on the Domain aggregate, which refuses one for a domain removed or
//! not provisioned meanwhile.

use std::future::Future;
use std::time::Duration;

use cqrs_es::AggregateError;
use dezky_domain::domains::{Domain, DomainCommand, DomainContext, DomainError};
use dezky_domain::tenant::Principal;
use dezky_domain::{Actor, EventMetadata};
use tokio::sync::watch;

use super::{framework, now, SagaConfig};
use crate::lease::run_exclusively;
use crate::Ledger;

/// The lease under which one instance schedules domain rechecks.
pub const RECHECK_LEASE: &str = "domain_rechecks";
/// Domains asked to recheck per round.
pub const RECHECKS_PER_ROUND: u32 = 100;
/// The subject on scheduled rechecks.
pub const RECHECK_ACTOR: &str = "domain-rechecks";
/// The shortest pause between two rounds.
const MIN_ROUND_INTERVAL: Duration = Duration::from_secs(1);
/// The longest pause between two rounds.
const MAX_ROUND_INTERVAL: Duration = Duration::from_secs(60);

/// A domain due for a recheck, and its workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDomain {
    /// The canonical domain name.
    pub name: String,
    /// The workspace that has it.
    pub tenant_id: String,
}

/// Where the schedule finds the domains due for a recheck.
pub trait DueForRecheck: Send + Sync {
    /// At most `limit` domains last checked before `verified_before` (verified ones) or
    /// `unverified_before` (the others), with no recheck pending, oldest check first; times
    /// are RFC 3339.
    fn due(
        &self,
        verified_before: &str,
        unverified_before: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DueDomain>, String>> + Send;
}

/// The time `interval` ago, as the ledger writes times.
fn ago(interval: Duration) -> String {
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let then = chrono::Utc::now()
        .checked_sub_signed(interval)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    crate::encoding::format_timestamp(then)
}

/// Runs the schedule as `holder` until `shutdown` turns true.
pub async fn run(
    ledger: Ledger,
    config: SagaConfig,
    holder: String,
    shutdown: watch::Receiver<bool>,
    queue: impl DueForRecheck,
) {
    let domains = framework::<Domain>(&ledger);
    // Look several times per (shorter) interval, never more than once a minute in production
    // and never less than once a second in tests.
    let every = (config.recheck_unverified / 4).clamp(MIN_ROUND_INTERVAL, MAX_ROUND_INTERVAL);
    let round = || async {
        let due = queue
            .due(
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
        for domain in due {
            let command = DomainCommand::Recheck {
                ctx: DomainContext {
                    principal: Principal::system(RECHECK_ACTOR),
                    tenant_id: domain.tenant_id.clone(),
                    now: now(),
                },
            };
            let metadata = EventMetadata {
                actor: Some(Actor {
                    subject: format!("system:{RECHECK_ACTOR}"),
                    email: None,
                }),
                tenant_id: Some(domain.tenant_id.clone()),
                occurred_at: Some(now()),
                ..Default::default()
            };
            match domains
                .execute_with_metadata(&domain.name, command, metadata.to_map())
                .await
            {
                // Removed or re-provisioning meanwhile, or raced by a person's recheck.
                Ok(())
                | Err(AggregateError::UserError(
                    DomainError::NotFound | DomainError::NotProvisioned,
                ))
                | Err(AggregateError::AggregateConflict) => {}
                Err(error) => tracing::warn!(domain = %domain.name, %error, "scheduled recheck"),
            }
        }
    };
    let db = ledger.db().clone();
    run_exclusively(db, RECHECK_LEASE, holder, every, shutdown, round).await;
}
