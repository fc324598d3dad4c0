//! Process managers on both backends: the slug of a purged tenant is released once, a restart
//! that repeats the release (crash before the stored position) changes nothing — not even
//! when another tenant has claimed the slug meanwhile — and progress survives a restart.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext as _, AggregateError, CqrsFramework, EventStore as _};
use dezky_commands::process::slug_release::SlugRelease;
use dezky_commands::process::{load_progress, ProcessRunner};
use dezky_commands::{Ledger, LedgerRepository};
use dezky_domain::tenant::{
    slug_claim_upcasters, tenant_upcasters, CommandContext, CreateTenant, NewMember, Principal,
    SlugClaim, SlugClaimCommand, SlugClaimError, Tenant, TenantAction, TenantCommand,
};
use dezky_tests::{Backend, TestDb};

type Cqrs<A> = CqrsFramework<A, PersistedEventStore<LedgerRepository, A>>;

fn cqrs<A: cqrs_es::Aggregate<Services = ()>>(
    ledger: &Ledger,
    upcasters: Vec<Box<dyn cqrs_es::persist::EventUpcaster>>,
) -> Cqrs<A> {
    let store = PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()))
        .with_upcasters(upcasters);
    CqrsFramework::new(store, vec![], ())
}

fn operator_at(minute: u32) -> CommandContext {
    CommandContext {
        principal: Principal {
            subject: "op".into(),
            issuer: None,
            email: Some("op@dezky.eu".into()),
            platform_admin: true,
            partner_id: None,
        },
        now: format!("2026-11-28T10:{minute:02}:00Z"),
    }
}

async fn created_and_purged(ledger: &Ledger, tenant_id: &str, slug: &str) -> anyhow::Result<()> {
    let slugs: Cqrs<SlugClaim> = cqrs(ledger, slug_claim_upcasters());
    let tenants: Cqrs<Tenant> = cqrs(ledger, tenant_upcasters());
    let claim = SlugClaimCommand::Claim {
        tenant_id: tenant_id.into(),
    };
    slugs.execute(slug, claim).await?;
    let create = TenantAction::Create(CreateTenant {
        tenant_id: tenant_id.into(),
        organization_name: "Gone GmbH".into(),
        slug: slug.into(),
        plan: "standard".into(),
        seats: 1,
        first_admin: NewMember {
            member_id: format!("{tenant_id}-admin"),
            email: "ada@gone.eu".into(),
            display_name: "Ada".into(),
        },
        partner_id: None,
    });
    for (minute, action) in [
        (1, create),
        (2, TenantAction::SoftDelete),
        (3, TenantAction::Purge),
    ] {
        tenants
            .execute(tenant_id, TenantCommand::new(operator_at(minute), action))
            .await?;
    }
    Ok(())
}

async fn holder(ledger: &Ledger, slug: &str) -> anyhow::Result<Option<String>> {
    let store =
        PersistedEventStore::<_, SlugClaim>::new_event_store(LedgerRepository::new(ledger.clone()));
    let mut context = store.load_aggregate(slug).await?;
    Ok(context.aggregate().holder.clone())
}

async fn a_purged_slug_is_released_once_even_when_the_release_is_repeated(
    backend: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::create(backend).await?;
    let ledger = db.open().await?;
    created_and_purged(&ledger, "t-1", "gone").await?;
    assert_eq!(holder(&ledger, "gone").await?.as_deref(), Some("t-1"));

    let runner = ProcessRunner::new(ledger.clone(), SlugRelease::new(&ledger)).await?;
    let reached = runner.catch_up().await?;
    assert_eq!(
        holder(&ledger, "gone").await?,
        None,
        "released after the purge"
    );
    // The position is stored after each action (the purge, one before the release it
    // appended), not after every event read past.
    assert_eq!(
        load_progress(ledger.db(), "slug_release").await?,
        reached - 1
    );

    // Another tenant takes the slug; then the process restarts as if it had crashed before
    // storing its position, and handles the purge again.
    let slugs: Cqrs<SlugClaim> = cqrs(&ledger, slug_claim_upcasters());
    let claim = SlugClaimCommand::Claim {
        tenant_id: "t-2".into(),
    };
    slugs.execute("gone", claim).await?;
    let head_before = ledger.head().await?.position;
    sqlx_reset(&ledger).await?;
    let restarted = ProcessRunner::new(ledger.clone(), SlugRelease::new(&ledger)).await?;
    restarted.catch_up().await?;
    assert_eq!(
        holder(&ledger, "gone").await?.as_deref(),
        Some("t-2"),
        "a repeated release never takes the slug from its new holder"
    );
    assert_eq!(
        ledger.head().await?.position,
        head_before,
        "the repeated release appended nothing"
    );
    // The claim itself refuses a release by a tenant that does not hold it: this is what the
    // process recognises as "already done".
    let foreign = slugs
        .execute(
            "gone",
            SlugClaimCommand::Release {
                tenant_id: "t-1".into(),
            },
        )
        .await;
    assert!(matches!(
        foreign,
        Err(AggregateError::UserError(
            SlugClaimError::HeldByAnotherTenant { .. }
        ))
    ));
    Ok(())
}

/// Moves the stored position back to 0, as a crash between a command and the stored position
/// would leave it (positions never move backwards through `save_progress`).
async fn sqlx_reset(ledger: &Ledger) -> anyhow::Result<()> {
    let sql = "UPDATE process_progress SET position = 0 WHERE name = 'slug_release'";
    match ledger.db() {
        dezky_commands::store::Db::Sqlite(pool) => {
            sqlx::query(sql).execute(pool).await?;
        }
        dezky_commands::store::Db::Postgres(pool) => {
            sqlx::query(sql).execute(pool).await?;
        }
    }
    assert_eq!(load_progress(ledger.db(), "slug_release").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_purged_slug_is_released_once_even_when_the_release_is_repeated_on_sqlite(
) -> anyhow::Result<()> {
    a_purged_slug_is_released_once_even_when_the_release_is_repeated(Backend::Sqlite).await
}

#[tokio::test]
async fn a_purged_slug_is_released_once_even_when_the_release_is_repeated_on_postgres(
) -> anyhow::Result<()> {
    a_purged_slug_is_released_once_even_when_the_release_is_repeated(Backend::Postgres).await
}
