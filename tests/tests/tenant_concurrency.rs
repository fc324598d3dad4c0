//! Uniqueness under concurrency, on the real ledger: twenty concurrent creations of one slug
//! yield exactly one claim, and ten concurrent platform-flag claims leave exactly one holder
//! whose hand-overs form one unbroken line.

use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use dezky_commands::{Ledger, LedgerRepository};
use dezky_domain::tenant::{
    CommandContext, PlatformFlag, PlatformFlagCommand, PlatformFlagError, PlatformFlagEvent,
    Principal, SlugClaim, SlugClaimCommand, SlugClaimError, PLATFORM_FLAG_ID,
};
use dezky_tests::{Backend, TestDb};

fn framework<A>(ledger: &Ledger) -> Arc<CqrsFramework<A, PersistedEventStore<LedgerRepository, A>>>
where
    A: cqrs_es::Aggregate<Services = ()>,
{
    let store = PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()));
    Arc::new(CqrsFramework::new(store, vec![], ()))
}

const NOW: &str = "2026-11-28T12:00:00Z";

async fn twenty_concurrent_claims_of_one_slug_let_exactly_one_tenant_have_it(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let cqrs = framework::<SlugClaim>(&ledger);
    let mut tasks = Vec::new();
    for n in 0..20 {
        let cqrs = cqrs.clone();
        tasks.push(tokio::spawn(async move {
            // The API retries a conflict once it has reloaded: a lost race then reads as
            // "taken", never as a second owner.
            loop {
                let claim = SlugClaimCommand::Claim {
                    tenant_id: format!("tenant-{n}"),
                };
                match cqrs.execute("acme", claim).await {
                    Err(AggregateError::AggregateConflict) => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => won += 1,
            Err(AggregateError::UserError(SlugClaimError::SlugTaken { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let events = ledger
        .aggregate_events("slug_claim", "acme", 0)
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "one claim on the record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claims_of_one_slug_let_exactly_one_tenant_have_it_on_sqlite() {
    twenty_concurrent_claims_of_one_slug_let_exactly_one_tenant_have_it(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claims_of_one_slug_let_exactly_one_tenant_have_it_on_postgres() {
    twenty_concurrent_claims_of_one_slug_let_exactly_one_tenant_have_it(Backend::Postgres).await;
}

async fn ten_concurrent_platform_flag_claims_leave_exactly_one_holder(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let cqrs = framework::<PlatformFlag>(&ledger);
    let mut tasks = Vec::new();
    for n in 0..10 {
        let cqrs = cqrs.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let assign = PlatformFlagCommand::Assign {
                    ctx: CommandContext {
                        principal: Principal::platform_admin("op", "op@dezky.eu"),
                        now: NOW.into(),
                    },
                    tenant_id: format!("tenant-{n}"),
                };
                match cqrs.execute(PLATFORM_FLAG_ID, assign).await {
                    Err(AggregateError::AggregateConflict) => continue,
                    other => return other,
                }
            }
        }));
    }
    for task in tasks {
        let result: Result<(), AggregateError<PlatformFlagError>> = task.await.expect("join");
        result.expect("every claim goes in, one after the other");
    }
    // Every hand-over names the holder before it: one unbroken line, so one holder at the end.
    let events = ledger
        .aggregate_events("platform_flag", PLATFORM_FLAG_ID, 0)
        .await
        .expect("events");
    assert_eq!(events.len(), 10);
    let mut holder: Option<String> = None;
    for record in events {
        let event: PlatformFlagEvent = serde_json::from_str(&record.payload).expect("event");
        let PlatformFlagEvent::PlatformTenantAssigned {
            tenant_id,
            previous,
        } = event;
        assert_eq!(
            previous, holder,
            "hand-over at version {}",
            record.aggregate_version
        );
        holder = Some(tenant_id);
    }
    assert!(holder.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_platform_flag_claims_leave_exactly_one_holder_on_sqlite() {
    ten_concurrent_platform_flag_claims_leave_exactly_one_holder(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_platform_flag_claims_leave_exactly_one_holder_on_postgres() {
    ten_concurrent_platform_flag_claims_leave_exactly_one_holder(Backend::Postgres).await;
}

async fn twenty_concurrent_adds_of_one_domain_let_exactly_one_workspace_have_it(backend: Backend) {
    use dezky_domain::domains::{Domain, DomainCommand, DomainContext, DomainError};
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let cqrs = framework::<Domain>(&ledger);
    let mut tasks = Vec::new();
    for n in 0..20 {
        let cqrs = cqrs.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let add = DomainCommand::Add {
                    ctx: DomainContext {
                        principal: Principal::user(format!("sub-{n}"), format!("a@t{n}.example")),
                        tenant_id: format!("tenant-{n}"),
                        now: NOW.into(),
                    },
                    name: "Acme.eu".into(),
                    platform_apex: "dezky.eu".into(),
                    is_platform_tenant: false,
                };
                // The aggregate id is the canonical name, as the API derives it.
                match cqrs.execute("acme.eu", add).await {
                    Err(AggregateError::AggregateConflict) => continue,
                    other => return other,
                }
            }
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => won += 1,
            Err(AggregateError::UserError(DomainError::UsedByAnotherWorkspace)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let events = ledger
        .aggregate_events("domain", "acme.eu", 0)
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "one add on the record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_adds_of_one_domain_let_exactly_one_workspace_have_it_on_sqlite() {
    twenty_concurrent_adds_of_one_domain_let_exactly_one_workspace_have_it(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_adds_of_one_domain_let_exactly_one_workspace_have_it_on_postgres() {
    twenty_concurrent_adds_of_one_domain_let_exactly_one_workspace_have_it(Backend::Postgres).await;
}
