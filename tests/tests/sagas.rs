//! The sagas end to end, against the faithful Stalwart fake and a real DNS server (dnsmasq):
//! a domain provisioned, its records shown and verified against DNS; a workspace's service
//! domain and mailboxes; teardown on purge that never touches the platform apex; a step that
//! keeps failing dead-lettered and completed by an operator's retry; an unknown outcome
//! settled by reading back, never by sending again.

use std::time::Duration;

use dezky_commands::saga::{framework, Effects};
use dezky_commands::Ledger;
use dezky_domain::domains::{
    CheckOutcome, Domain, DomainCommand, DomainContext, DomainStatus, RecordPurpose,
};
use dezky_domain::effects::{Effect, EffectCommand, EffectStatus};
use dezky_domain::tenant::{
    NewMember, Principal, Role, Tenant, TenantAction, TenantCommand, TenantStatus,
};
use dezky_tests::dns_server::DnsServer;
use dezky_tests::saga_rig::{publish, stalwart, Platform, APEX};
use dezky_tests::stalwart::StalwartFake;
use dezky_tests::{operator_context, seed_tenant, tenant_cqrs, Backend, TestDb};

/// A generous bound on waits for something that must happen (a failure, not a measurement).
const PATIENCE: Duration = Duration::from_secs(90);

async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn load<A>(ledger: &Ledger, id: &str) -> A
where
    A: dezky_commands::app::registry::Registered + Clone,
{
    dezky_commands::saga::load::<A>(ledger, id)
        .await
        .expect("load")
}

async fn domain_state(ledger: &Ledger, name: &str) -> Domain {
    load::<Domain>(ledger, name).await
}

fn operator_ctx(tenant_id: &str) -> DomainContext {
    DomainContext {
        principal: Principal::platform_admin("op", "op@dezky.eu"),
        tenant_id: tenant_id.to_owned(),
        now: "2026-11-29T10:00:00Z".into(),
    }
}

async fn add_domain(ledger: &Ledger, tenant_id: &str, name: &str, platform: bool) {
    let domains = framework::<Domain>(ledger);
    domains
        .execute(
            name,
            DomainCommand::Add {
                ctx: operator_ctx(tenant_id),
                name: name.to_owned(),
                platform_apex: APEX.to_owned(),
                is_platform_tenant: platform,
            },
        )
        .await
        .expect("domain added");
}

async fn tenant_command(ledger: &Ledger, tenant_id: &str, action: TenantAction) {
    tenant_cqrs(ledger)
        .execute(tenant_id, TenantCommand::new(operator_context(), action))
        .await
        .expect("tenant command");
}

fn domain_names(fake: &StalwartFake) -> Vec<String> {
    let mut names: Vec<String> = fake
        .domains()
        .iter()
        .filter_map(|d| {
            d.value
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

async fn has_account(fake: &StalwartFake, address: &str) -> bool {
    use dezky_commands::ports::mail::MailServer;
    stalwart(&fake.base_url)
        .account(address)
        .await
        .expect("account lookup")
        .is_some()
}

/// Effects of a saga with their status, from the ledger.
async fn effects_of(ledger: &Ledger, saga: &str) -> Vec<(String, Effect)> {
    let events = ledger
        .events_of_type("effect")
        .await
        .expect("effect events");
    let mut keys: Vec<String> = events
        .iter()
        .filter(|e| e.aggregate_id.starts_with(&format!("{saga}/")))
        .map(|e| e.aggregate_id.clone())
        .collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    let effects = Effects::new(ledger);
    let mut out = Vec::new();
    for key in keys {
        out.push((key.clone(), effects.load(&key).await.expect("effect")));
    }
    out
}

async fn a_domain_is_provisioned_shown_and_verified_against_dns(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    // The DKIM keys stay pending until the test runs the server's task.
    let fake = StalwartFake::builder()
        .dkim_after_polls(None)
        .start()
        .await
        .expect("fake");
    let empty = DnsServer::builder().zone("acme.eu").start();
    let port = empty.addr().port();
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), empty.addr(), 8)
        .await
        .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 0, 0)
        .await
        .expect("tenant");

    // The workspace's service domain is created and the workspace provisioned.
    wait_for("the tenant is provisioned", || {
        let ledger = ledger.clone();
        let tenant_id = tenant_id.clone();
        async move {
            let tenant = load::<Tenant>(&ledger, &tenant_id).await;
            (tenant.status == Some(TenantStatus::Active)).then_some(())
        }
    })
    .await;
    assert_eq!(domain_names(&fake), vec![format!("seed-0.{APEX}")]);

    // A domain: created, its records read once the DKIM keys exist, checked against DNS where
    // nothing is published yet.
    add_domain(&ledger, &tenant_id, "acme.eu", false).await;
    // Without DKIM keys the records are not read: the step waits and polls.
    wait_for("fetch-records waiting for the DKIM keys", || {
        let ledger = ledger.clone();
        async move {
            effects_of(&ledger, "domain-provisioning")
                .await
                .into_iter()
                .find(|(_, e)| {
                    e.intent.as_ref().is_some_and(|i| i.step == "fetch-records")
                        && e.status == Some(EffectStatus::Retrying)
                        && e.last_error.as_deref().is_some_and(|m| m.contains("DKIM"))
                })
        }
    })
    .await;
    assert!(domain_state(&ledger, "acme.eu").await.expected.is_empty());
    fake.complete_pending_tasks();
    let domain = wait_for("the first DNS check", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            (d.status == Some(DomainStatus::NeedsAttention)).then_some(d)
        }
    })
    .await;
    let purposes: Vec<RecordPurpose> = domain.expected.iter().map(|r| r.purpose).collect();
    for needed in [
        RecordPurpose::Mx,
        RecordPurpose::Spf,
        RecordPurpose::Dkim,
        RecordPurpose::Dmarc,
        RecordPurpose::Ownership,
    ] {
        assert!(
            purposes.contains(&needed),
            "{needed:?} missing from {purposes:?}"
        );
    }
    assert!(
        domain
            .last_checks
            .iter()
            .all(|c| c.outcome == CheckOutcome::Missing),
        "nothing is published yet: {:?}",
        domain.last_checks
    );
    assert_eq!(
        domain_names(&fake),
        vec!["acme.eu".to_owned(), format!("seed-0.{APEX}")]
    );

    // Published: a recheck verifies it.
    drop(empty);
    let published = publish(
        DnsServer::builder().zone("acme.eu").port(port),
        &domain.expected,
    )
    .start();
    framework::<Domain>(&ledger)
        .execute(
            "acme.eu",
            DomainCommand::Recheck {
                ctx: operator_ctx(&tenant_id),
            },
        )
        .await
        .expect("recheck");
    let verified = wait_for("the domain is verified", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            (d.status == Some(DomainStatus::Verified)).then_some(d)
        }
    })
    .await;
    assert!(verified
        .last_checks
        .iter()
        .all(|c| c.outcome == CheckOutcome::Ok));

    // Every effect is on the ledger, succeeded, each attempted as often as it had to be.
    let effects = effects_of(&ledger, "domain-provisioning").await;
    let steps: Vec<&str> = effects
        .iter()
        .filter_map(|(_, e)| e.intent.as_ref().map(|i| i.step.as_str()))
        .collect();
    for step in ["create-domain", "fetch-records", "check-dns", "recheck-dns"] {
        assert!(steps.contains(&step), "no {step} effect in {steps:?}");
    }
    for (key, effect) in &effects {
        assert_eq!(effect.status, Some(EffectStatus::Succeeded), "{key}");
    }
    let fetch = effects
        .iter()
        .find(|(_, e)| e.intent.as_ref().is_some_and(|i| i.step == "fetch-records"))
        .expect("fetch-records");
    assert!(
        fetch.1.attempts >= 2,
        "the DKIM keys appear only after the first read; the step polls"
    );
    drop(published);
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_is_provisioned_shown_and_verified_against_dns_on_sqlite() {
    a_domain_is_provisioned_shown_and_verified_against_dns(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_is_provisioned_shown_and_verified_against_dns_on_postgres() {
    a_domain_is_provisioned_shown_and_verified_against_dns(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_that_keeps_failing_is_dead_lettered_and_an_operator_retry_completes_it() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::start().await.expect("fake");
    let dns = DnsServer::builder().zone("acme.eu").start();
    // The next two API calls fail: both attempts of the first step (each gives up at its
    // first failed call).
    fake.fail_next(2, 503);
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), dns.addr(), 2)
        .await
        .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 1, 0)
        .await
        .expect("tenant");
    let (key, dead) = wait_for("the step is dead-lettered", || {
        let ledger = ledger.clone();
        async move {
            effects_of(&ledger, "tenant-provisioning")
                .await
                .into_iter()
                .find(|(_, e)| e.status == Some(EffectStatus::DeadLettered))
        }
    })
    .await;
    assert_eq!(
        dead.attempts, 2,
        "dead-lettered after its limit: {:?}",
        dead.last_error
    );
    assert!(dead.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(domain_names(&fake).is_empty());
    let tenant = load::<Tenant>(&ledger, &tenant_id).await;
    assert_eq!(tenant.status, Some(TenantStatus::PendingProvisioning));

    // The server is back; an operator retries.
    Effects::new(&ledger)
        .execute(
            &key,
            EffectCommand::OperatorRetry {
                by: "op".into(),
                at: "2026-11-29T10:00:00Z".into(),
            },
            std::collections::HashMap::new(),
        )
        .await
        .expect("operator retry");
    wait_for("the tenant is provisioned after the retry", || {
        let ledger = ledger.clone();
        let tenant_id = tenant_id.clone();
        async move {
            let tenant = load::<Tenant>(&ledger, &tenant_id).await;
            (tenant.status == Some(TenantStatus::Active)).then_some(())
        }
    })
    .await;
    assert_eq!(domain_names(&fake), vec![format!("seed-1.{APEX}")]);
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_outcome_is_settled_by_reading_back_never_by_sending_again() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::start().await.expect("fake");
    let dns = DnsServer::builder().zone("acme.eu").start();
    // The server applies the domain's creation and the connection drops before the answer.
    fake.drop_after_applying("x:Domain/set");
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), dns.addr(), 8)
        .await
        .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 2, 0)
        .await
        .expect("tenant");
    wait_for("the tenant is provisioned", || {
        let ledger = ledger.clone();
        let tenant_id = tenant_id.clone();
        async move {
            let tenant = load::<Tenant>(&ledger, &tenant_id).await;
            (tenant.status == Some(TenantStatus::Active)).then_some(())
        }
    })
    .await;
    assert_eq!(domain_names(&fake), vec![format!("seed-2.{APEX}")]);
    let effects = effects_of(&ledger, "tenant-provisioning").await;
    let (key, effect) = &effects[0];
    assert_eq!(effect.status, Some(EffectStatus::Succeeded));
    let types: Vec<String> = ledger
        .aggregate_events("effect", key, 0)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "EffectIntended",
            "EffectAttempted",
            "EffectOutcomeUnknown",
            "EffectReconciled"
        ],
        "one attempt, its unknown outcome settled by reading back"
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mailboxes_follow_members_and_a_purge_tears_down_everything_but_the_apex() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let dns = DnsServer::builder().zone("acme.eu").start();
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), dns.addr(), 8)
        .await
        .expect("platform");
    let tenants = tenant_cqrs(&ledger);
    let acme = seed_tenant(&tenants, 3, 0).await.expect("tenant");
    let other = seed_tenant(&tenants, 4, 0).await.expect("tenant");
    let staff = seed_tenant(&tenants, 5, 0).await.expect("platform tenant");
    add_domain(&ledger, &acme, "acme.eu", false).await;
    add_domain(&ledger, &staff, APEX, true).await;
    let provisioned = |name: &'static str| {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, name).await;
            (!d.expected.is_empty()).then_some(())
        }
    };
    wait_for("acme.eu provisioned", || provisioned("acme.eu")).await;
    wait_for("the apex provisioned", || provisioned(APEX)).await;

    // A member on the workspace's own domain gets a mailbox; one elsewhere does not.
    // The saga decides what to host from the Domain aggregates itself; the placement the
    // command carries only sets the directory's mailbox flag.
    let add = |id: &str, email: &str| TenantAction::AddMember {
        member: NewMember {
            member_id: id.to_owned(),
            email: email.to_owned(),
            display_name: "Ada".into(),
        },
        role: Role::Member,
        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
    };
    tenant_command(&ledger, &acme, add("ada", "ada@acme.eu")).await;
    tenant_command(&ledger, &acme, add("bob", "bob@gmail.example")).await;
    // The same person is also a member of another workspace.
    tenant_command(&ledger, &other, add("ada-too", "ada@acme.eu")).await;
    let (key, created) = wait_for("ada's mailbox effect settles", || {
        let ledger = ledger.clone();
        async move {
            effects_of(&ledger, "mailbox")
                .await
                .into_iter()
                .find(|(_, e)| {
                    matches!(
                        e.status,
                        Some(EffectStatus::Succeeded | EffectStatus::DeadLettered)
                    )
                })
        }
    })
    .await;
    assert_eq!(
        created.status,
        Some(EffectStatus::Succeeded),
        "{key}: {:?}",
        created.last_error
    );
    assert!(has_account(&fake, "ada@acme.eu").await);
    assert!(!has_account(&fake, "bob@gmail.example").await);

    // Suspend freezes, resume thaws.
    tenant_command(
        &ledger,
        &acme,
        TenantAction::SuspendMember {
            member_id: "ada".into(),
        },
    )
    .await;
    wait_for("ada's mailbox frozen", || {
        let mail = stalwart(&fake.base_url);
        async move {
            use dezky_commands::ports::mail::MailServer;
            let a = mail.account("ada@acme.eu").await.ok().flatten()?;
            a.frozen.then_some(())
        }
    })
    .await;
    tenant_command(
        &ledger,
        &acme,
        TenantAction::ResumeMember {
            member_id: "ada".into(),
        },
    )
    .await;
    wait_for("ada's mailbox thawed", || {
        let mail = stalwart(&fake.base_url);
        async move {
            use dezky_commands::ports::mail::MailServer;
            let a = mail.account("ada@acme.eu").await.ok().flatten()?;
            (!a.frozen).then_some(())
        }
    })
    .await;

    // Removing ada here keeps the mailbox: the other workspace still has her.
    tenant_command(
        &ledger,
        &acme,
        TenantAction::RemoveMember {
            member_id: "ada".into(),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(has_account(&fake, "ada@acme.eu").await);
    tenant_command(&ledger, &acme, add("cleo", "cleo@acme.eu")).await;
    wait_for("cleo's mailbox", || {
        let fake = &fake;
        async move { has_account(fake, "cleo@acme.eu").await.then_some(()) }
    })
    .await;

    // An alias routes to cleo's mailbox; a list fans out; both follow their changes.
    tenant_command(
        &ledger,
        &acme,
        TenantAction::AddAlias {
            member_id: "cleo".into(),
            alias: "hello@acme.eu".into(),
        },
    )
    .await;
    tenant_command(
        &ledger,
        &acme,
        TenantAction::CreateList {
            list_id: "team".into(),
            address: "team@acme.eu".into(),
            display_name: "Team".into(),
            recipients: vec!["cleo@acme.eu".into(), "ada@acme.eu".into()],
        },
    )
    .await;
    tenant_command(
        &ledger,
        &acme,
        TenantAction::SetListRecipients {
            list_id: "team".into(),
            recipients: vec!["cleo@acme.eu".into()],
        },
    )
    .await;
    wait_for("the alias and the list on the mail server", || {
        let mail = stalwart(&fake.base_url);
        async move {
            use dezky_commands::ports::mail::MailServer;
            let cleo = mail.account("cleo@acme.eu").await.ok().flatten()?;
            let list = mail.mailing_list("team@acme.eu").await.ok().flatten()?;
            (cleo.aliases.contains(&"hello@acme.eu".to_owned())
                && list.recipients == vec!["cleo@acme.eu".to_owned()]
                && list.display_name.as_deref() == Some("Team"))
            .then_some(())
        }
    })
    .await;
    tenant_command(
        &ledger,
        &acme,
        TenantAction::RemoveAlias {
            member_id: "cleo".into(),
            alias: "hello@acme.eu".into(),
        },
    )
    .await;
    wait_for("the alias removed", || {
        let mail = stalwart(&fake.base_url);
        async move {
            use dezky_commands::ports::mail::MailServer;
            let cleo = mail.account("cleo@acme.eu").await.ok().flatten()?;
            cleo.aliases.is_empty().then_some(())
        }
    })
    .await;

    // Purge: acme.eu with every mailbox on it and the service domain go; the apex and the
    // other workspaces' service domains stay.
    tenant_command(&ledger, &acme, TenantAction::SoftDelete).await;
    tenant_command(&ledger, &acme, TenantAction::Purge).await;
    wait_for("acme's domains torn down", || {
        let names = domain_names(&fake);
        async move {
            (!names.contains(&"acme.eu".to_owned()) && !names.contains(&format!("seed-3.{APEX}")))
                .then_some(())
        }
    })
    .await;
    let names = domain_names(&fake);
    assert!(names.contains(&APEX.to_owned()), "{names:?}");
    assert!(names.contains(&format!("seed-4.{APEX}")), "{names:?}");
    assert!(fake.accounts().is_empty(), "{:?}", fake.accounts());
    assert!(
        fake.mailing_lists().is_empty(),
        "{:?}",
        fake.mailing_lists()
    );

    // The platform tenant letting the apex go never deletes it from the mail server.
    framework::<Domain>(&ledger)
        .execute(
            APEX,
            DomainCommand::Remove {
                ctx: operator_ctx(&staff),
                usage: Default::default(),
            },
        )
        .await
        .expect("apex removed from the platform tenant");
    let removed = effects_of(&ledger, "domain-removal").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(domain_names(&fake).contains(&APEX.to_owned()));
    assert!(
        !removed.iter().any(|(_, e)| e
            .intent
            .as_ref()
            .is_some_and(|i| i.request.to_string().contains(&format!("\"{APEX}\"")))),
        "no effect ever intends to destroy the apex"
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_needing_attention_is_rechecked_on_schedule_until_verified() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let empty = DnsServer::builder().zone("acme.eu").start();
    let port = empty.addr().port();
    let config = dezky_commands::saga::SagaConfig {
        recheck_verified: Duration::from_secs(3_600),
        recheck_unverified: Duration::from_secs(2),
        ..dezky_commands::saga::SagaConfig::new(APEX)
    };
    let platform = Platform::start_with(&ledger, stalwart(&fake.base_url), empty.addr(), &config)
        .await
        .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 6, 0)
        .await
        .expect("tenant");
    add_domain(&ledger, &tenant_id, "acme.eu", false).await;
    let domain = wait_for("the first DNS check", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            (d.status == Some(DomainStatus::NeedsAttention)).then_some(d)
        }
    })
    .await;
    // The customer publishes the records; nobody asks for a recheck.
    drop(empty);
    let _published = publish(
        DnsServer::builder().zone("acme.eu").port(port),
        &domain.expected,
    )
    .start();
    wait_for("the scheduled recheck verifies it", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            (d.status == Some(DomainStatus::Verified)).then_some(())
        }
    })
    .await;
    let rechecks = effects_of(&ledger, "domain-provisioning")
        .await
        .into_iter()
        .filter(|(_, e)| e.intent.as_ref().is_some_and(|i| i.step == "recheck-dns"))
        .count();
    assert!(rechecks >= 1, "the recheck came from the schedule");
    // Verified: the next scheduled recheck is an hour away, so no new rechecks pile up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = effects_of(&ledger, "domain-provisioning")
        .await
        .into_iter()
        .filter(|(_, e)| e.intent.as_ref().is_some_and(|i| i.step == "recheck-dns"))
        .count();
    assert_eq!(
        after, rechecks,
        "a verified domain waits for its own interval"
    );
    platform.stop().await;
}

/// The promise end to end: a workspace admin adds a domain through GraphQL; the saga
/// provisions it in Stalwart; GraphQL shows the records to publish with what DNS answered; once
/// they are published a recheck (also through GraphQL) verifies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_added_in_graphql_is_provisioned_shown_and_verified() {
    use dezky_tests::graphql_rig::GraphqlApi;
    use serde_json::{json, Value};
    let api = GraphqlApi::start(Backend::Sqlite).await;
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let empty = DnsServer::builder().zone("acme.eu").start();
    let port = empty.addr().port();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let dns = dezky_adapters::dns::DnsVerifier::new(Some(empty.addr())).expect("resolver");
    let sagas = dezky_api::sagas::start(
        &api.ledger,
        stalwart(&fake.base_url),
        dns,
        &dezky_commands::saga::SagaConfig::new(dezky_tests::graphql_rig::APEX),
        "test".into(),
        &shutdown,
    )
    .await
    .expect("sagas");

    let operator = api.operator();
    let created = api
        .post_as(
            &operator,
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }",
            json!({"input": {"organization": "Acme GmbH", "slug": "acme", "plan": "standard",
                "seats": 5, "firstAdmin": {"email": "ada@outside.example", "displayName": "Ada"}}}),
        )
        .await;
    let tenant = created["data"]["createTenant"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let admin = api.user("ada@outside.example");
    let added = api
        .post_as(
            &admin,
            "mutation($t: ID!) { addDomain(tenantId: $t, name: \"acme.eu\") { name status } }",
            json!({"t": tenant}),
        )
        .await;
    // The worker runs meanwhile: by the time the mutation reads its answer back, the saga
    // may already have provisioned the domain and found its records missing.
    assert_eq!(added["data"]["addDomain"]["name"], "acme.eu", "{added}");
    assert!(
        ["PROVISIONING", "NEEDS_ATTENTION"].contains(
            &added["data"]["addDomain"]["status"]
                .as_str()
                .unwrap_or_default()
        ),
        "{added}"
    );
    let query = "query($t: ID!) { tenant(id: $t) { domainsNeedingAttention domains { name status \
                 records { purpose name type value optional outcome found } } } }";
    let mut shown;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        shown = api.post_as(&admin, query, json!({"t": tenant})).await;
        if shown["data"]["tenant"]["domains"][0]["status"] == "NEEDS_ATTENTION"
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let domain = &shown["data"]["tenant"]["domains"][0];
    assert_eq!(domain["status"], "NEEDS_ATTENTION", "{shown}");
    assert_eq!(shown["data"]["tenant"]["domainsNeedingAttention"], 1);
    let records = domain["records"].as_array().expect("records");
    for purpose in ["MX", "SPF", "DKIM", "DMARC", "OWNERSHIP"] {
        let record = records
            .iter()
            .find(|r| r["purpose"] == purpose)
            .unwrap_or_else(|| panic!("no {purpose} record in {shown}"));
        assert_eq!(record["outcome"], "MISSING", "{record}");
    }
    // The service domain's creation may still be retrying under load; it lands too.
    wait_for("both domains on the mail server", || {
        let names = domain_names(&fake);
        async move { (names == ["acme.dezky.eu".to_owned(), "acme.eu".to_owned()]).then_some(()) }
    })
    .await;

    // The admin publishes what the portal shows, and asks for a recheck.
    let expected = domain_state(&api.ledger, "acme.eu").await.expected;
    drop(empty);
    let _published = publish(DnsServer::builder().zone("acme.eu").port(port), &expected).start();
    let recheck = api
        .post_as(
            &admin,
            "mutation($t: ID!) { recheckDomain(tenantId: $t, name: \"acme.eu\") { name } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(recheck["errors"], Value::Null, "{recheck}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        shown = api.post_as(&admin, query, json!({"t": tenant})).await;
        if shown["data"]["tenant"]["domains"][0]["status"] == "VERIFIED"
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let domain = &shown["data"]["tenant"]["domains"][0];
    assert_eq!(domain["status"], "VERIFIED", "{shown}");
    assert_eq!(shown["data"]["tenant"]["domainsNeedingAttention"], 0);
    assert!(
        domain["records"]
            .as_array()
            .expect("records")
            .iter()
            .all(|r| r["outcome"] == "OK"),
        "{shown}"
    );
    let _ = stop.send(true);
    for handle in sagas.handles {
        let _ = handle.await;
    }
}

/// Without a mail server configured, provisioning is recorded as "not configured" and the
/// workspace stays pending — never reported as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unconfigured_mail_server_is_reported_as_such_never_as_done() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let dns = DnsServer::builder().zone("acme.eu").start();
    let platform = Platform::start(
        &ledger,
        dezky_adapters::stalwart::StalwartMail::unconfigured(),
        dns.addr(),
        8,
    )
    .await
    .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 7, 0)
        .await
        .expect("tenant");
    let (_, effect) = wait_for("the effect is recorded as not configured", || {
        let ledger = ledger.clone();
        async move {
            effects_of(&ledger, "tenant-provisioning")
                .await
                .into_iter()
                .find(|(_, e)| e.status == Some(EffectStatus::NotConfigured))
        }
    })
    .await;
    assert_eq!(effect.attempts, 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tenant = load::<Tenant>(&ledger, &tenant_id).await;
    assert_eq!(tenant.status, Some(TenantStatus::PendingProvisioning));
    let again = effects_of(&ledger, "tenant-provisioning").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.status, Some(EffectStatus::NotConfigured));
    assert_eq!(again[0].1.attempts, 1, "not retried on its own");
    platform.stop().await;
}

/// A workspace choosing a stricter DMARC policy is asked to publish it, and the next check
/// holds the published record to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dmarc_policy_change_updates_the_expected_record_and_checks_again() {
    let db = TestDb::create(Backend::Sqlite).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let dns = DnsServer::builder().zone("acme.eu").start();
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), dns.addr(), 8)
        .await
        .expect("platform");
    let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 8, 0)
        .await
        .expect("tenant");
    add_domain(&ledger, &tenant_id, "acme.eu", false).await;
    let dmarc = |d: &Domain| {
        d.expected
            .iter()
            .find(|r| r.purpose == RecordPurpose::Dmarc)
            .map(|r| r.value.clone())
    };
    let first = wait_for("the first check", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            (d.status == Some(DomainStatus::NeedsAttention)).then_some(d)
        }
    })
    .await;
    let before = dmarc(&first).expect("a DMARC record");
    assert!(before.contains("p=none"), "{before}");
    framework::<Domain>(&ledger)
        .execute(
            "acme.eu",
            DomainCommand::SetDmarcPolicy {
                ctx: operator_ctx(&tenant_id),
                policy: dezky_domain::domains::DmarcPolicy::Reject,
            },
        )
        .await
        .expect("policy set");
    let after = wait_for("the DMARC record follows the policy and is checked", || {
        let ledger = ledger.clone();
        async move {
            let d = domain_state(&ledger, "acme.eu").await;
            let checked = d.last_checks.iter().any(|c| {
                c.expected.purpose == RecordPurpose::Dmarc && c.expected.value.contains("p=reject")
            });
            checked.then_some(d)
        }
    })
    .await;
    let value = dmarc(&after).expect("a DMARC record");
    assert!(
        value.contains("p=reject") && !value.contains("p=none"),
        "{value}"
    );
    assert!(value.starts_with("v=DMARC1"), "{value}");
    platform.stop().await;
}
