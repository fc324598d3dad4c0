//! The mail address read model on SQLite and PostgreSQL: real Tenant commands through cqrs-es
//! onto the ledger, the runner caught up, then its queries checked — the fold of each alias and
//! list event, a removed member's aliases and a purged workspace's addresses gone, a domain's
//! usage counted per workspace, and a live model equal to one rebuilt from the ledger.

use dezky_commands::store::Db;
use dezky_commands::Ledger;
use dezky_domain::tenant::{TenantAction, TenantCommand};
use dezky_projections::mail_addresses::{
    aliases_of_tenant, all_mail_addresses, lists_of_tenant, mailing_list, usage_of_domain,
    AliasRow, ListRow, MailAddressKind, MailAddresses,
};
use dezky_projections::ProjectionRunner;
use dezky_tests::{
    metadata_for, operator_context, seed_tenant, tenant_cqrs, Backend, TenantCqrs, TestDb,
};

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
    each_alias_and_list_event_folds_into_its_row,
    a_removed_members_aliases_and_a_purged_workspaces_addresses_are_gone,
    a_domains_usage_is_counted_per_workspace,
    a_live_read_model_equals_one_rebuilt_from_the_ledger,
);

struct World {
    _db: TestDb,
    ledger: Ledger,
    tenants: TenantCqrs,
    runner: ProjectionRunner<MailAddresses>,
}

impl World {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        let db = TestDb::create(backend).await?;
        let ledger = db.open().await?;
        Ok(Self {
            tenants: tenant_cqrs(&ledger),
            runner: ProjectionRunner::new(ledger.clone(), MailAddresses::new()).await?,
            ledger,
            _db: db,
        })
    }

    fn db(&self) -> &Db {
        self.ledger.db()
    }

    /// Runs an action on `tenant` as an operator, as the API does for a workspace's admins.
    async fn run(&self, tenant: &str, action: TenantAction) -> anyhow::Result<()> {
        self.tenants
            .execute_with_metadata(
                tenant,
                TenantCommand::new(operator_context(), action),
                metadata_for(tenant).to_map(),
            )
            .await?;
        Ok(())
    }

    /// Runs actions, then folds them.
    async fn apply(&self, tenant: &str, actions: Vec<TenantAction>) -> anyhow::Result<()> {
        for action in actions {
            self.run(tenant, action).await?;
        }
        self.runner.catch_up().await?;
        Ok(())
    }
}

fn add_alias(member_id: &str, alias: &str) -> TenantAction {
    TenantAction::AddAlias {
        member_id: member_id.into(),
        alias: alias.into(),
    }
}

fn create_list(list_id: &str, address: &str, recipients: &[&str]) -> TenantAction {
    TenantAction::CreateList {
        list_id: list_id.into(),
        address: address.into(),
        display_name: format!("List {list_id}"),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn alias(alias: &str, mailbox: &str, member_id: &str) -> AliasRow {
    AliasRow {
        alias: alias.into(),
        mailbox: mailbox.into(),
        member_id: member_id.into(),
    }
}

async fn each_alias_and_list_event_folds_into_its_row(backend: Backend) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let t = seed_tenant(&world.tenants, 1, 2).await?;
    let (m0, m1) = (format!("{t}-m0"), format!("{t}-m1"));
    world
        .apply(
            &t,
            vec![
                add_alias(&m0, "Sales@Seed-1.eu"),
                add_alias(&m1, "ops@seed-1.eu"),
                add_alias(&m0, "info@seed-1.eu"),
                create_list(
                    "l-team",
                    "Team@seed-1.eu",
                    &["m0@seed-1.eu", "friend@elsewhere.eu", "M0@seed-1.eu"],
                ),
            ],
        )
        .await?;
    assert_eq!(
        aliases_of_tenant(world.db(), &t).await?,
        vec![
            alias("info@seed-1.eu", "m0@seed-1.eu", &m0),
            alias("ops@seed-1.eu", "m1@seed-1.eu", &m1),
            alias("sales@seed-1.eu", "m0@seed-1.eu", &m0),
        ]
    );
    let team = ListRow {
        list_id: "l-team".into(),
        address: "team@seed-1.eu".into(),
        display_name: "List l-team".into(),
        recipients: vec!["m0@seed-1.eu".into(), "friend@elsewhere.eu".into()],
    };
    assert_eq!(lists_of_tenant(world.db(), &t).await?, vec![team.clone()]);
    assert_eq!(
        mailing_list(world.db(), &t, "l-team").await?,
        Some(team.clone())
    );
    assert_eq!(mailing_list(world.db(), &t, "l-none").await?, None);

    world
        .apply(
            &t,
            vec![
                TenantAction::SetListRecipients {
                    list_id: "l-team".into(),
                    recipients: vec!["m1@seed-1.eu".into()],
                },
                TenantAction::RemoveAlias {
                    member_id: m0.clone(),
                    alias: "SALES@seed-1.eu".into(),
                },
            ],
        )
        .await?;
    assert_eq!(
        mailing_list(world.db(), &t, "l-team").await?,
        Some(ListRow {
            recipients: vec!["m1@seed-1.eu".into()],
            ..team
        })
    );
    assert_eq!(
        aliases_of_tenant(world.db(), &t).await?,
        vec![
            alias("info@seed-1.eu", "m0@seed-1.eu", &m0),
            alias("ops@seed-1.eu", "m1@seed-1.eu", &m1),
        ]
    );
    // A deleted list's address is free again, and the next use of it starts a row afresh.
    world
        .apply(
            &t,
            vec![
                TenantAction::DeleteList {
                    list_id: "l-team".into(),
                },
                add_alias(&m1, "team@seed-1.eu"),
            ],
        )
        .await?;
    assert_eq!(lists_of_tenant(world.db(), &t).await?, vec![]);
    let rows = all_mail_addresses(world.db(), MailAddresses::VERSION).await?;
    let team_row = rows
        .iter()
        .find(|r| r.address == "team@seed-1.eu")
        .expect("the alias row");
    assert_eq!(team_row.kind, MailAddressKind::Alias);
    assert_eq!(team_row.owner_id, m1);
    assert_eq!(team_row.display_name, None);
    assert!(team_row.recipients.is_empty());
    assert_eq!(team_row.domain, "seed-1.eu");
    Ok(())
}

async fn a_removed_members_aliases_and_a_purged_workspaces_addresses_are_gone(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let t1 = seed_tenant(&world.tenants, 1, 2).await?;
    let t2 = seed_tenant(&world.tenants, 2, 1).await?;
    world
        .apply(
            &t1,
            vec![
                add_alias(&format!("{t1}-m0"), "a@seed-1.eu"),
                add_alias(&format!("{t1}-m0"), "b@seed-1.eu"),
                add_alias(&format!("{t1}-m1"), "c@seed-1.eu"),
                create_list("l-1", "list@seed-1.eu", &["m0@seed-1.eu"]),
            ],
        )
        .await?;
    world
        .apply(
            &t2,
            vec![
                add_alias(&format!("{t2}-m0"), "a@seed-2.eu"),
                create_list("l-1", "list@seed-2.eu", &["m0@seed-2.eu"]),
            ],
        )
        .await?;
    world
        .apply(
            &t1,
            vec![TenantAction::RemoveMember {
                member_id: format!("{t1}-m0"),
            }],
        )
        .await?;
    // The list keeps the removed member's address as a recipient: recipients are addresses,
    // not members, and an admin decides whether the list should change.
    assert_eq!(
        aliases_of_tenant(world.db(), &t1).await?,
        vec![alias("c@seed-1.eu", "m1@seed-1.eu", &format!("{t1}-m1"))]
    );
    assert_eq!(lists_of_tenant(world.db(), &t1).await?.len(), 1);

    world
        .apply(&t1, vec![TenantAction::SoftDelete, TenantAction::Purge])
        .await?;
    assert_eq!(aliases_of_tenant(world.db(), &t1).await?, vec![]);
    assert_eq!(lists_of_tenant(world.db(), &t1).await?, vec![]);
    // The other workspace, with a list of the same id, is untouched.
    assert_eq!(aliases_of_tenant(world.db(), &t2).await?.len(), 1);
    assert_eq!(
        mailing_list(world.db(), &t2, "l-1")
            .await?
            .map(|l| l.address),
        Some("list@seed-2.eu".to_owned())
    );
    Ok(())
}

async fn a_domains_usage_is_counted_per_workspace(backend: Backend) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let t1 = seed_tenant(&world.tenants, 1, 1).await?;
    let t2 = seed_tenant(&world.tenants, 2, 1).await?;
    let m1 = format!("{t1}-m0");
    world
        .apply(
            &t1,
            vec![
                add_alias(&m1, "a@acme.eu"),
                add_alias(&m1, "b@ACME.eu"),
                add_alias(&m1, "c@seed-1.eu"),
                create_list("l-1", "all@acme.eu", &["m0@seed-1.eu"]),
                create_list("l-2", "news@Bücher.de", &["m0@seed-1.eu"]),
            ],
        )
        .await?;
    world
        .apply(&t2, vec![add_alias(&format!("{t2}-m0"), "x@acme.eu")])
        .await?;
    assert_eq!(usage_of_domain(world.db(), &t1, "acme.eu").await?, (2, 1));
    assert_eq!(usage_of_domain(world.db(), &t1, "seed-1.eu").await?, (1, 0));
    // International domains are counted under their canonical ASCII name.
    assert_eq!(
        usage_of_domain(world.db(), &t1, "xn--bcher-kva.de").await?,
        (0, 1)
    );
    assert_eq!(usage_of_domain(world.db(), &t1, "other.eu").await?, (0, 0));
    // Only the workspace asked about counts: another's address at a same-named domain is its
    // own business (and a domain has one owner anyway).
    assert_eq!(usage_of_domain(world.db(), &t2, "acme.eu").await?, (1, 0));
    assert_eq!(
        usage_of_domain(world.db(), "tenant-none", "acme.eu").await?,
        (0, 0)
    );
    world
        .apply(
            &t1,
            vec![
                TenantAction::RemoveAlias {
                    member_id: m1.clone(),
                    alias: "a@acme.eu".into(),
                },
                TenantAction::DeleteList {
                    list_id: "l-1".into(),
                },
            ],
        )
        .await?;
    assert_eq!(usage_of_domain(world.db(), &t1, "acme.eu").await?, (1, 0));
    Ok(())
}

/// Tenants in the rebuild scenario.
const TENANTS: usize = 3;

async fn a_live_read_model_equals_one_rebuilt_from_the_ledger(
    backend: Backend,
) -> anyhow::Result<()> {
    let world = World::new(backend).await?;
    let mut tenants = Vec::new();
    for n in 0..TENANTS {
        tenants.push(seed_tenant(&world.tenants, n, 3).await?);
    }
    for (n, t) in tenants.iter().enumerate() {
        let domain = format!("seed-{n}.eu");
        for m in 0..3 {
            let member = format!("{t}-m{m}");
            for a in 0..=m {
                world
                    .run(t, add_alias(&member, &format!("a{m}-{a}@{domain}")))
                    .await?;
            }
            if m == 1 {
                world
                    .run(
                        t,
                        TenantAction::RemoveAlias {
                            member_id: member.clone(),
                            alias: format!("a{m}-0@{domain}"),
                        },
                    )
                    .await?;
            }
        }
        for l in 0..3 {
            let recipients: Vec<String> = (0..=l).map(|r| format!("m{r}@{domain}")).collect();
            let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
            world
                .run(
                    t,
                    create_list(&format!("l-{l}"), &format!("list-{l}@{domain}"), &refs),
                )
                .await?;
        }
        world
            .run(
                t,
                TenantAction::SetListRecipients {
                    list_id: "l-0".into(),
                    recipients: vec!["outside@elsewhere.eu".into(), format!("m2@{domain}")],
                },
            )
            .await?;
        if n == 1 {
            world
                .run(
                    t,
                    TenantAction::DeleteList {
                        list_id: "l-2".into(),
                    },
                )
                .await?;
            world
                .run(
                    t,
                    TenantAction::RemoveMember {
                        member_id: format!("{t}-m2"),
                    },
                )
                .await?;
        }
    }
    world.runner.catch_up().await?;
    let live = all_mail_addresses(world.db(), MailAddresses::VERSION).await?;
    // Per tenant: aliases 1 + (2 - 1) + 3, lists 3; tenant 1 lost member 2's 3 aliases and a list.
    assert_eq!(live.len(), TENANTS * 8 - 4);

    let rebuilt =
        ProjectionRunner::new(world.ledger.clone(), MailAddresses::with_version(2)).await?;
    rebuilt.catch_up().await?;
    assert_eq!(all_mail_addresses(world.db(), 2).await?, live);
    // Serving the rebuilt build, the queries answer the same.
    let mut before = Vec::new();
    for t in &tenants {
        before.push((
            aliases_of_tenant(world.db(), t).await?,
            lists_of_tenant(world.db(), t).await?,
            usage_of_domain(world.db(), t, "seed-1.eu").await?,
        ));
    }
    dezky_projections::builds::switch_live(world.db(), MailAddresses::NAME, 2).await?;
    for (t, before) in tenants.iter().zip(before) {
        let after = (
            aliases_of_tenant(world.db(), t).await?,
            lists_of_tenant(world.db(), t).await?,
            usage_of_domain(world.db(), t, "seed-1.eu").await?,
        );
        assert_eq!(after, before, "{t}");
    }
    Ok(())
}
