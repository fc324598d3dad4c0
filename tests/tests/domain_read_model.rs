//! The domain directory read model on SQLite and PostgreSQL: real Domain commands through
//! cqrs-es onto the ledger, the runner caught up, then its queries checked — the fold of each
//! event, a name removed by one workspace and added by another, the needs-attention counts,
//! and a live model equal to one rebuilt from the ledger.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_commands::store::Db;
use dezky_commands::{Ledger, LedgerRepository};
use dezky_domain::domains::{
    domain_upcasters, CheckOutcome, DmarcPolicy, Domain, DomainCommand, DomainContext,
    DomainStatus, DomainUsage, ExpectedRecord, RecordCheck, RecordPurpose, RecordType,
};
use dezky_domain::tenant::Principal;
use dezky_projections::domains::{
    all_domains, domain, domains_of_tenant, needs_attention_count, DomainDirectory, DomainRow,
};
use dezky_projections::ProjectionRunner;
use dezky_tests::{metadata_for, Backend, TestDb};

/// Runs each named scenario as two tests, `<scenario>::on_sqlite` and `<scenario>::on_postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() -> anyhow::Result<()> {
                super::$scenario(dezky_tests::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn on_postgres() -> anyhow::Result<()> {
                super::$scenario(dezky_tests::Backend::Postgres).await
            }
        }
    )*};
}

on_both_backends!(
    each_domain_event_folds_into_the_domains_row,
    a_name_removed_by_one_workspace_and_added_by_another_shows_under_the_new_owner_only,
    needs_attention_is_counted_per_workspace_and_platform_wide,
    a_live_read_model_equals_one_rebuilt_from_the_ledger,
);

const ACME: &str = "tenant-acme";
const OTHER: &str = "tenant-other";
const THIRD: &str = "tenant-third";
const APEX: &str = "dezky.eu";
const ADDED_AT: &str = "2026-11-28T10:00:00Z";
const CHECKED_AT: &str = "2026-11-28T10:05:00Z";

type Domains = CqrsFramework<Domain, PersistedEventStore<LedgerRepository, Domain>>;

struct World {
    _db: TestDb,
    ledger: Ledger,
    domains: Domains,
    runner: ProjectionRunner<DomainDirectory>,
}

impl World {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        let db = TestDb::create(backend).await?;
        let ledger = db.open().await?;
        let store = PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()))
            .with_upcasters(domain_upcasters());
        Ok(Self {
            domains: CqrsFramework::new(store, vec![], ()),
            runner: ProjectionRunner::new(ledger.clone(), DomainDirectory::new()).await?,
            ledger,
            _db: db,
        })
    }

    fn db(&self) -> &Db {
        self.ledger.db()
    }

    /// Runs a command on `name` with metadata naming the acting workspace, as the API does.
    async fn run(&self, name: &str, command: DomainCommand) -> anyhow::Result<()> {
        let tenant = context_of(&command).tenant_id.clone();
        self.domains
            .execute_with_metadata(name, command, metadata_for(&tenant).to_map())
            .await?;
        Ok(())
    }

    /// Runs commands, then folds them.
    async fn apply(&self, commands: Vec<(&str, DomainCommand)>) -> anyhow::Result<()> {
        for (name, command) in commands {
            self.run(name, command).await?;
        }
        self.runner.catch_up().await?;
        Ok(())
    }

    async fn row(&self, name: &str) -> anyhow::Result<DomainRow> {
        domain(self.db(), name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row for {name}"))
    }
}

fn context_of(command: &DomainCommand) -> &DomainContext {
    match command {
        DomainCommand::Add { ctx, .. }
        | DomainCommand::RecordProvisioned { ctx, .. }
        | DomainCommand::Recheck { ctx }
        | DomainCommand::RecordDnsCheck { ctx, .. }
        | DomainCommand::SetDmarcPolicy { ctx, .. }
        | DomainCommand::Remove { ctx, .. } => ctx,
    }
}

fn admin_of(tenant: &str, now: &str) -> DomainContext {
    DomainContext {
        principal: Principal::user(format!("sub-{tenant}"), format!("admin@{tenant}.example")),
        tenant_id: tenant.into(),
        now: now.into(),
    }
}

fn system_for(tenant: &str, now: &str) -> DomainContext {
    DomainContext {
        principal: Principal::system("domain-provisioning"),
        tenant_id: tenant.into(),
        now: now.into(),
    }
}

fn add(tenant: &str, name: &str) -> DomainCommand {
    DomainCommand::Add {
        ctx: admin_of(tenant, ADDED_AT),
        name: name.into(),
        platform_apex: APEX.into(),
        is_platform_tenant: false,
    }
}

fn expected(name: &str) -> Vec<ExpectedRecord> {
    let record = |purpose, owner: String, record_type, value: &str| ExpectedRecord {
        purpose,
        name: owner,
        record_type,
        value: value.into(),
    };
    vec![
        record(
            RecordPurpose::Mx,
            name.into(),
            RecordType::Mx,
            "10 mail.dezky.eu",
        ),
        record(
            RecordPurpose::Spf,
            name.into(),
            RecordType::Txt,
            "v=spf1 mx -all",
        ),
        record(
            RecordPurpose::Dkim,
            format!("202611e._domainkey.{name}"),
            RecordType::Txt,
            "v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA",
        ),
        record(
            RecordPurpose::Dmarc,
            format!("_dmarc.{name}"),
            RecordType::Txt,
            "v=DMARC1; p=none",
        ),
        record(
            RecordPurpose::Autodiscovery,
            format!("autoconfig.{name}"),
            RecordType::Cname,
            "mail.dezky.eu",
        ),
    ]
}

fn provisioned(tenant: &str, name: &str) -> DomainCommand {
    DomainCommand::RecordProvisioned {
        ctx: system_for(tenant, ADDED_AT),
        expected: expected(name),
    }
}

/// A DNS check of `name`'s records with these outcomes, in the order of [`expected`].
fn checked(tenant: &str, name: &str, outcomes: [CheckOutcome; 5]) -> DomainCommand {
    let checks = expected(name)
        .into_iter()
        .zip(outcomes)
        .map(|(expected, outcome)| RecordCheck {
            found: match outcome {
                CheckOutcome::Missing => vec![],
                CheckOutcome::Ok => vec![expected.value.clone()],
                CheckOutcome::Wrong | CheckOutcome::Warning => vec!["something else".into()],
            },
            expected,
            outcome,
        })
        .collect();
    DomainCommand::RecordDnsCheck {
        ctx: system_for(tenant, CHECKED_AT),
        checks,
    }
}

const ALL_OK: [CheckOutcome; 5] = [CheckOutcome::Ok; 5];

fn remove(tenant: &str) -> DomainCommand {
    DomainCommand::Remove {
        ctx: admin_of(tenant, CHECKED_AT),
        usage: DomainUsage::default(),
    }
}

async fn each_domain_event_folds_into_the_domains_row(backend: Backend) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    world.apply(vec![("acme.eu", add(ACME, "Acme.EU"))]).await?;
    let row = world.row("acme.eu").await?;
    assert_eq!(
        (
            row.name.as_str(),
            row.tenant_id.as_str(),
            row.status,
            row.dmarc_policy
        ),
        (
            "acme.eu",
            ACME,
            DomainStatus::Provisioning,
            DmarcPolicy::None
        )
    );
    assert_eq!(row.added_at, ADDED_AT);
    assert!(row.expected.is_empty() && row.records().is_empty());
    assert_eq!(row.checked_at, None);

    world
        .apply(vec![("acme.eu", provisioned(ACME, "acme.eu"))])
        .await?;
    let row = world.row("acme.eu").await?;
    assert_eq!(row.status, DomainStatus::Verifying);
    assert_eq!(row.expected, expected("acme.eu"));
    assert!(
        row.records()
            .iter()
            .all(|r| r.outcome.is_none() && r.found.is_empty()),
        "nothing checked yet: {row:?}"
    );

    let recheck = DomainCommand::Recheck {
        ctx: admin_of(ACME, ADDED_AT),
    };
    world.apply(vec![("acme.eu", recheck)]).await?;
    let row = world.row("acme.eu").await?;
    assert!(row.recheck_requested_at.is_some(), "{row:?}");
    assert_eq!(row.status, DomainStatus::Verifying);

    // The MX is missing and the autodiscovery record only warns: the MX alone blocks.
    let outcomes = [
        CheckOutcome::Missing,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Warning,
    ];
    world
        .apply(vec![("acme.eu", checked(ACME, "acme.eu", outcomes))])
        .await?;
    let row = world.row("acme.eu").await?;
    assert_eq!(row.status, DomainStatus::NeedsAttention);
    assert_eq!(row.checked_at.as_deref(), Some(CHECKED_AT));
    assert_eq!(row.recheck_requested_at, None, "the check answered it");
    let records = row.records();
    let seen: Vec<(RecordPurpose, Option<CheckOutcome>, Vec<String>)> = records
        .iter()
        .map(|r| (r.expected.purpose, r.outcome, r.found.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (RecordPurpose::Mx, Some(CheckOutcome::Missing), vec![]),
            (
                RecordPurpose::Spf,
                Some(CheckOutcome::Ok),
                vec!["v=spf1 mx -all".to_owned()]
            ),
            (
                RecordPurpose::Dkim,
                Some(CheckOutcome::Ok),
                vec!["v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEA".to_owned()]
            ),
            (
                RecordPurpose::Dmarc,
                Some(CheckOutcome::Ok),
                vec!["v=DMARC1; p=none".to_owned()]
            ),
            (
                RecordPurpose::Autodiscovery,
                Some(CheckOutcome::Warning),
                vec!["something else".to_owned()]
            ),
        ]
    );

    let dmarc = DomainCommand::SetDmarcPolicy {
        ctx: admin_of(ACME, CHECKED_AT),
        policy: DmarcPolicy::Quarantine,
    };
    world
        .apply(vec![
            ("acme.eu", dmarc),
            ("acme.eu", checked(ACME, "acme.eu", ALL_OK)),
        ])
        .await?;
    let row = world.row("acme.eu").await?;
    assert_eq!(
        (row.status, row.dmarc_policy),
        (DomainStatus::Verified, DmarcPolicy::Quarantine)
    );

    // Provisioning again (a new zone file) forgets the old checks.
    world
        .apply(vec![("acme.eu", provisioned(ACME, "acme.eu"))])
        .await?;
    let row = world.row("acme.eu").await?;
    assert_eq!(row.status, DomainStatus::Verifying);
    assert!(row.last_checks.is_empty());

    world.apply(vec![("acme.eu", remove(ACME))]).await?;
    assert_eq!(domain(world.db(), "acme.eu").await?, None);
    assert!(domains_of_tenant(world.db(), None, ACME).await?.is_empty());
    Ok(())
}

async fn a_name_removed_by_one_workspace_and_added_by_another_shows_under_the_new_owner_only(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let outcomes = [
        CheckOutcome::Ok,
        CheckOutcome::Wrong,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
    ];
    let dmarc = DomainCommand::SetDmarcPolicy {
        ctx: admin_of(ACME, ADDED_AT),
        policy: DmarcPolicy::Reject,
    };
    world
        .apply(vec![
            ("shared.eu", add(ACME, "shared.eu")),
            ("shared.eu", provisioned(ACME, "shared.eu")),
            ("shared.eu", checked(ACME, "shared.eu", outcomes)),
            ("shared.eu", dmarc),
            ("acme.eu", add(ACME, "acme.eu")),
        ])
        .await?;
    assert_eq!(needs_attention_count(world.db(), Some(ACME)).await?, 1);
    world
        .apply(vec![
            ("shared.eu", remove(ACME)),
            ("shared.eu", add(OTHER, "shared.eu")),
        ])
        .await?;
    let row = world.row("shared.eu").await?;
    assert_eq!(
        (
            row.tenant_id.as_str(),
            row.status,
            row.dmarc_policy,
            row.checked_at.as_deref()
        ),
        (OTHER, DomainStatus::Provisioning, DmarcPolicy::None, None),
        "nothing of the first life shows: {row:?}"
    );
    assert!(row.expected.is_empty() && row.last_checks.is_empty());
    let names = |rows: Vec<DomainRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(domains_of_tenant(world.db(), None, ACME).await?),
        ["acme.eu"]
    );
    assert_eq!(
        names(domains_of_tenant(world.db(), None, OTHER).await?),
        ["shared.eu"]
    );
    assert_eq!(needs_attention_count(world.db(), Some(ACME)).await?, 0);
    assert_eq!(needs_attention_count(world.db(), None).await?, 0);
    Ok(())
}

async fn needs_attention_is_counted_per_workspace_and_platform_wide(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let broken = [
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Missing,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
    ];
    // An optional record that is wrong never needs attention.
    let optional_wrong = [
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Ok,
        CheckOutcome::Wrong,
    ];
    let mut commands = Vec::new();
    for (tenant, name, outcomes) in [
        (ACME, "a1.eu", Some(broken)),
        (ACME, "a2.eu", Some(optional_wrong)),
        (ACME, "a3.eu", Some(broken)),
        (OTHER, "o1.eu", Some(broken)),
        (THIRD, "t1.eu", None),
    ] {
        commands.push((name, add(tenant, name)));
        if let Some(outcomes) = outcomes {
            commands.push((name, provisioned(tenant, name)));
            commands.push((name, checked(tenant, name, outcomes)));
        }
    }
    world.apply(commands).await?;
    assert_eq!(counts(world.db()).await?, [2, 1, 0, 3]);
    assert_eq!(
        world.row("a2.eu").await?.status,
        DomainStatus::Verified,
        "an optional record never gates the status"
    );
    // Fixing one, removing another: the counts follow.
    world
        .apply(vec![
            ("a1.eu", checked(ACME, "a1.eu", ALL_OK)),
            ("o1.eu", remove(OTHER)),
        ])
        .await?;
    assert_eq!(counts(world.db()).await?, [1, 0, 0, 1]);
    Ok(())
}

/// The needs-attention counts of ACME, OTHER, THIRD and the whole platform.
async fn counts(db: &Db) -> anyhow::Result<Vec<u64>> {
    let mut counts = Vec::new();
    for tenant in [Some(ACME), Some(OTHER), Some(THIRD), None] {
        counts.push(needs_attention_count(db, tenant).await?);
    }
    Ok(counts)
}

async fn a_live_read_model_equals_one_rebuilt_from_the_ledger(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let mut commands = Vec::new();
    for n in 0..12 {
        let tenant = [ACME, OTHER, THIRD][n % 3];
        let name = format!("d{n}.eu");
        commands.push((name.clone(), add(tenant, &name)));
        if n % 4 != 0 {
            commands.push((name.clone(), provisioned(tenant, &name)));
            let mut outcomes = ALL_OK;
            outcomes[n % 5] = CheckOutcome::Wrong;
            commands.push((name.clone(), checked(tenant, &name, outcomes)));
        }
        if n % 3 == 1 {
            let dmarc = DomainCommand::SetDmarcPolicy {
                ctx: admin_of(tenant, CHECKED_AT),
                policy: DmarcPolicy::Reject,
            };
            commands.push((name.clone(), dmarc));
        }
        if n % 5 == 2 {
            commands.push((name.clone(), remove(tenant)));
            // Taken up again by the next workspace.
            let next = [ACME, OTHER, THIRD][(n + 1) % 3];
            commands.push((name.clone(), add(next, &name)));
        }
    }
    for (name, command) in &commands {
        world.run(name, command.clone()).await?;
    }
    world.runner.catch_up().await?;
    let live = all_domains(world.db(), DomainDirectory::VERSION).await?;
    assert_eq!(live.len(), 12);

    let rebuilt =
        ProjectionRunner::new(world.ledger.clone(), DomainDirectory::with_version(2)).await?;
    rebuilt.catch_up().await?;
    assert_eq!(all_domains(world.db(), 2).await?, live);
    for tenant in [ACME, OTHER, THIRD] {
        assert_eq!(
            domains_of_tenant(world.db(), Some(2), tenant).await?,
            domains_of_tenant(world.db(), None, tenant).await?,
            "{tenant}"
        );
    }
    // Serving the rebuilt build, the queries answer the same.
    let before = needs_attention_count(world.db(), None).await?;
    dezky_projections::builds::switch_live(world.db(), DomainDirectory::NAME, 2).await?;
    assert_eq!(needs_attention_count(world.db(), None).await?, before);
    assert_eq!(all_domains(world.db(), 2).await?, live);
    Ok(())
}
