//! Saga effects on the ledger and in their read model, on SQLite and PostgreSQL: every state an
//! effect can reach is listed with its attempts and last error, the default listing leaves out
//! what succeeded, a rebuilt read model equals the live one, and an operator's retry through
//! `dezky sagas retry` gives a dead-lettered effect a fresh round.

use clap::Parser;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_commands::{Ledger, LedgerRepository};
use dezky_domain::effects::{
    effect_upcasters, idempotency_key, Effect, EffectCommand, EffectIntent, EffectStatus,
};
use dezky_projections::effects::{due_effects, list_effects, EffectFilter, EffectRow, SagaEffects};
use dezky_projections::tenants::PageRequest;
use dezky_projections::ProjectionRunner;
use dezky_tests::{Backend, TestDb};
use serde_json::json;

type Effects = CqrsFramework<Effect, PersistedEventStore<LedgerRepository, Effect>>;

fn effects(ledger: &Ledger) -> Effects {
    let store = PersistedEventStore::new_event_store(LedgerRepository::new(ledger.clone()))
        .with_upcasters(effect_upcasters());
    CqrsFramework::new(store, vec![], ())
}

const AT: &str = "2026-11-28T10:00:00Z";
const LATER: &str = "2026-11-28T10:00:04Z";

async fn intend(effects: &Effects, step: &str, position: u64, max_attempts: u32) -> String {
    let key = idempotency_key("tenant-provisioning", step, position);
    let intent = EffectIntent {
        saga: "tenant-provisioning".into(),
        step: step.into(),
        system: "stalwart".into(),
        tenant_id: Some("tenant-acme".into()),
        trigger_position: position,
        request: json!({"domain": "acme.dezky.eu"}),
        max_attempts,
    };
    effects
        .execute(
            &key,
            EffectCommand::Intend {
                intent,
                at: AT.into(),
            },
        )
        .await
        .expect("intend");
    key
}

async fn run(effects: &Effects, key: &str, command: EffectCommand) {
    effects.execute(key, command).await.expect("command");
}

/// Every effect in the live build.
async fn all(ledger: &Ledger) -> Vec<EffectRow> {
    list_effects(
        ledger.db(),
        &EffectFilter::default(),
        &PageRequest {
            first: 100,
            after: None,
        },
    )
    .await
    .expect("list")
    .items
}

async fn every_effect_state_is_listed_and_an_operator_retry_reopens_a_dead_letter(
    backend: Backend,
) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let cqrs = effects(&ledger);
    let done = intend(&cqrs, "create-service-domain", 10, 3).await;
    run(&cqrs, &done, EffectCommand::BeginAttempt { at: AT.into() }).await;
    run(
        &cqrs,
        &done,
        EffectCommand::Succeed {
            attempt: 1,
            result: json!({"id": "d1"}),
            at: AT.into(),
        },
    )
    .await;
    let dead = intend(&cqrs, "create-dkim", 11, 1).await;
    run(&cqrs, &dead, EffectCommand::BeginAttempt { at: AT.into() }).await;
    run(
        &cqrs,
        &dead,
        EffectCommand::Fail {
            attempt: 1,
            error: "503 Service Unavailable".into(),
            retryable: true,
            retry_at: LATER.into(),
            at: AT.into(),
        },
    )
    .await;
    let unknown = intend(&cqrs, "create-account", 12, 3).await;
    run(
        &cqrs,
        &unknown,
        EffectCommand::BeginAttempt { at: AT.into() },
    )
    .await;
    run(
        &cqrs,
        &unknown,
        EffectCommand::OutcomeUnknown {
            attempt: 1,
            reason: "connection lost after sending".into(),
            at: AT.into(),
        },
    )
    .await;
    let unconfigured = intend(&cqrs, "create-group", 13, 3).await;
    run(
        &cqrs,
        &unconfigured,
        EffectCommand::NotConfigured { at: AT.into() },
    )
    .await;

    let runner = ProjectionRunner::new(ledger.clone(), SagaEffects::new())
        .await
        .expect("runner");
    runner.catch_up().await.expect("caught up");
    let rows = all(&ledger).await;
    let states: Vec<(&str, EffectStatus, u32, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.step.as_str(),
                r.status,
                r.attempts,
                r.last_error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (
                "create-account",
                EffectStatus::Unknown,
                1,
                Some("connection lost after sending")
            ),
            (
                "create-dkim",
                EffectStatus::DeadLettered,
                1,
                Some("503 Service Unavailable")
            ),
            (
                "create-group",
                EffectStatus::NotConfigured,
                0,
                Some("stalwart is not configured")
            ),
            ("create-service-domain", EffectStatus::Succeeded, 1, None),
        ]
    );
    // Operators look at what needs them: everything but the succeeded.
    let open = list_effects(
        ledger.db(),
        &EffectFilter {
            statuses: vec![
                EffectStatus::Unknown,
                EffectStatus::DeadLettered,
                EffectStatus::NotConfigured,
            ],
            ..EffectFilter::default()
        },
        &PageRequest {
            first: 2,
            after: None,
        },
    )
    .await
    .expect("open");
    assert_eq!(open.total_count, 3);
    assert!(open.has_next_page);

    // The operator's retry through the CLI.
    let cli = dezky_api::cli::Cli::parse_from([
        "dezky",
        "--database-url",
        &db.url,
        "sagas",
        "retry",
        &dead,
    ]);
    let dezky_api::cli::Command::Sagas(command) = cli.command else {
        panic!("parsed another command")
    };
    let code = dezky_api::sagas_cli::run(&cli.settings, command)
        .await
        .expect("retry ran");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    // A retry of something that is not dead-lettered is refused.
    let cli = dezky_api::cli::Cli::parse_from([
        "dezky",
        "--database-url",
        &db.url,
        "sagas",
        "retry",
        &done,
    ]);
    let dezky_api::cli::Command::Sagas(command) = cli.command else {
        panic!("parsed another command")
    };
    let code = dezky_api::sagas_cli::run(&cli.settings, command)
        .await
        .expect("retry ran");
    assert_eq!(code, std::process::ExitCode::from(3));

    runner.catch_up().await.expect("caught up");
    let retried = all(&ledger)
        .await
        .into_iter()
        .find(|r| r.key == dead)
        .expect("dead");
    assert_eq!(
        (retried.status, retried.attempt_budget),
        (EffectStatus::Retrying, 2)
    );

    // The read model is a pure fold: a rebuild equals it.
    let rebuild = SagaEffects::VERSION + 1;
    let rebuilt = ProjectionRunner::new(ledger.clone(), SagaEffects::with_version(rebuild))
        .await
        .expect("runner");
    rebuilt.catch_up().await.expect("rebuilt");
    let live = all(&ledger).await;
    // Serve the rebuilt build and read it through the same query.
    dezky_projections::builds::switch_live(ledger.db(), SagaEffects::NAME, rebuild)
        .await
        .expect("switch");
    assert_eq!(all(&ledger).await, live);
}

#[tokio::test]
async fn every_effect_state_is_listed_and_an_operator_retry_reopens_a_dead_letter_on_sqlite() {
    every_effect_state_is_listed_and_an_operator_retry_reopens_a_dead_letter(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_effect_state_is_listed_and_an_operator_retry_reopens_a_dead_letter_on_postgres() {
    every_effect_state_is_listed_and_an_operator_retry_reopens_a_dead_letter(Backend::Postgres)
        .await;
}

/// Effects on one external object run in trigger order: a newer one waits while an older one
/// on the same subject is still in progress (even when the older is only waiting for its
/// retry time), effects on other subjects do not wait, and an older one that gave up
/// (dead-lettered) no longer holds the subject.
async fn effects_on_one_subject_run_in_trigger_order(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let cqrs = effects(&ledger);
    let on = |step: &str, position: u64, address: &str| {
        let key = idempotency_key("mailbox", step, position);
        let intent = EffectIntent {
            saga: "mailbox".into(),
            step: step.into(),
            system: "stalwart".into(),
            tenant_id: Some("tenant-acme".into()),
            trigger_position: position,
            request: json!({"op": "ensure_list", "address": address, "recipients": []}),
            max_attempts: 2,
        };
        (key, intent)
    };
    let mut keys = Vec::new();
    for (step, position, address) in [
        ("create-list", 10, "team@acme.eu"),
        ("set-list-recipients", 20, "TEAM@acme.eu"),
        ("create-list", 15, "sales@acme.eu"),
    ] {
        let (key, intent) = on(step, position, address);
        run(
            &cqrs,
            &key,
            EffectCommand::Intend {
                intent,
                at: AT.into(),
            },
        )
        .await;
        keys.push(key);
    }
    // The first change of team@ failed and waits for its retry, far in the future.
    run(
        &cqrs,
        &keys[0],
        EffectCommand::BeginAttempt { at: AT.into() },
    )
    .await;
    run(
        &cqrs,
        &keys[0],
        EffectCommand::Fail {
            attempt: 1,
            error: "503".into(),
            retryable: true,
            retry_at: "2999-01-01T00:00:00Z".into(),
            at: AT.into(),
        },
    )
    .await;
    let runner = ProjectionRunner::new(ledger.clone(), SagaEffects::new())
        .await
        .expect("runner");
    runner.catch_up().await.expect("caught up");
    let due = due_effects(ledger.db(), LATER, 100).await.expect("due");
    assert_eq!(
        due,
        vec![keys[2].clone()],
        "team@'s newer change waits for the older"
    );

    // The older one gives up: the newer one, carrying the whole list, goes ahead.
    run(
        &cqrs,
        &keys[0],
        EffectCommand::BeginAttempt { at: AT.into() },
    )
    .await;
    run(
        &cqrs,
        &keys[0],
        EffectCommand::Fail {
            attempt: 2,
            error: "503".into(),
            retryable: true,
            retry_at: LATER.into(),
            at: AT.into(),
        },
    )
    .await;
    runner.catch_up().await.expect("caught up");
    let due = due_effects(ledger.db(), LATER, 100).await.expect("due");
    assert_eq!(due, vec![keys[2].clone(), keys[1].clone()]);
}

#[tokio::test]
async fn effects_on_one_subject_run_in_trigger_order_on_sqlite() {
    effects_on_one_subject_run_in_trigger_order(Backend::Sqlite).await;
}

#[tokio::test]
async fn effects_on_one_subject_run_in_trigger_order_on_postgres() {
    effects_on_one_subject_run_in_trigger_order(Backend::Postgres).await;
}
