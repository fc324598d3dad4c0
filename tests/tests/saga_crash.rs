//! Killing the platform (SIGKILL) at every step boundary of tenant provisioning and domain
//! provisioning — just before each call to the mail server leaves, and just after each one
//! returned but before its outcome is on the ledger — then starting it again: every Stalwart
//! object exists exactly once, and both sagas complete. On SQLite and PostgreSQL.

use std::process::Stdio;
use std::time::Duration;

use dezky_commands::saga::{framework, Effects};
use dezky_commands::Ledger;
use dezky_domain::domains::{Domain, DomainCommand, DomainContext, DomainStatus};
use dezky_domain::effects::{EffectEvent, EffectStatus};
use dezky_domain::tenant::{Principal, Tenant, TenantStatus};
use dezky_tests::dns_server::DnsServer;
use dezky_tests::saga_rig::APEX;
use dezky_tests::stalwart::StalwartFake;
use dezky_tests::{seed_tenant, tenant_cqrs, Backend, TestDb};
use tokio::process::{Child, Command};

/// A generous bound on a saga completing (a failure, not a measurement).
const PATIENCE: Duration = Duration::from_secs(90);
/// Mail-server calls in one scenario: the service domain, the customer domain, its records.
const CALLS: u32 = 3;

fn spawn(db: &TestDb, fake: &StalwartFake, dns: &DnsServer, crash: Option<String>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_saga-worker"));
    command
        .arg(&db.url)
        .arg(&fake.base_url)
        .arg(dns.addr().to_string())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(crash) = crash {
        command.arg(crash);
    }
    command.spawn().expect("saga-worker starts")
}

async fn complete(ledger: &Ledger, tenant_id: &str, domain: &str) -> bool {
    let tenant = dezky_commands::saga::load::<Tenant>(ledger, tenant_id)
        .await
        .expect("tenant");
    let domain = dezky_commands::saga::load::<Domain>(ledger, domain)
        .await
        .expect("domain");
    tenant.status == Some(TenantStatus::Active)
        && domain.status == Some(DomainStatus::NeedsAttention)
}

/// Waits until the scenario completes or the child dies; true when it completed.
async fn run_until(child: &mut Child, ledger: &Ledger, tenant_id: &str, domain: &str) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if complete(ledger, tenant_id, domain).await {
            return true;
        }
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sagas did not complete for {tenant_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(fake: &StalwartFake, name: &str) -> usize {
    fake.domains()
        .iter()
        .filter(|d| d.value.get("name").and_then(|v| v.as_str()) == Some(name))
        .count()
}

async fn killed_at_every_boundary_nothing_is_lost_or_done_twice(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let mut points: Vec<String> = Vec::new();
    for n in 1..=CALLS {
        points.push(format!("before:{n}"));
        points.push(format!("after:{n}"));
    }
    let zones: Vec<String> = (0..points.len()).map(|i| format!("crash-{i}.eu")).collect();
    let dns = zones
        .iter()
        .fold(DnsServer::builder(), |b, z| b.zone(z))
        .start();
    for (i, point) in points.iter().enumerate() {
        let tenant_id = seed_tenant(&tenant_cqrs(&ledger), 100 + i, 0)
            .await
            .expect("tenant");
        let domain = &zones[i];
        framework::<Domain>(&ledger)
            .execute(
                domain,
                DomainCommand::Add {
                    ctx: DomainContext {
                        principal: Principal::platform_admin("op", "op@dezky.eu"),
                        tenant_id: tenant_id.clone(),
                        now: "2026-11-29T10:00:00Z".into(),
                    },
                    name: domain.clone(),
                    platform_apex: APEX.into(),
                    is_platform_tenant: false,
                },
            )
            .await
            .expect("domain added");

        // Run with the crash point: it must die there (each scenario makes CALLS calls).
        let mut child = spawn(&db, &fake, &dns, Some(point.clone()));
        let finished = run_until(&mut child, &ledger, &tenant_id, domain).await;
        assert!(!finished, "{point}: the process should have been killed");
        // Start again, with no crash: the sagas complete.
        let mut child = spawn(&db, &fake, &dns, None);
        assert!(
            run_until(&mut child, &ledger, &tenant_id, domain).await,
            "{point}: the restarted process died"
        );
        let _ = child.kill().await;

        // Every object exactly once.
        let service = format!("seed-{}.{APEX}", 100 + i);
        assert_eq!(count(&fake, &service), 1, "{point}: {service}");
        assert_eq!(count(&fake, domain), 1, "{point}: {domain}");
        // Every effect of the scenario succeeded once, each on the ledger.
        let effects = Effects::new(&ledger);
        let events = ledger.events_of_type("effect").await.expect("effects");
        let mut keys: Vec<&str> = events
            .iter()
            .filter(|e| effects_tenant(&e.metadata).as_deref() == Some(tenant_id.as_str()))
            .map(|e| e.aggregate_id.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert!(keys.len() >= 4, "{point}: {keys:?}");
        for key in keys {
            let effect = effects.load(key).await.expect("effect");
            assert_eq!(
                effect.status,
                Some(EffectStatus::Succeeded),
                "{point}: {key}"
            );
            let settled = events
                .iter()
                .filter(|e| e.aggregate_id == key)
                .filter(|e| {
                    matches!(
                        serde_json::from_str::<EffectEvent>(&e.payload),
                        Ok(EffectEvent::EffectSucceeded { .. }
                            | EffectEvent::EffectReconciled { applied: true, .. })
                    )
                })
                .count();
            assert_eq!(settled, 1, "{point}: {key} settled once");
        }
    }
}

fn effects_tenant(metadata: &str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = serde_json::from_str(metadata).ok()?;
    dezky_domain::EventMetadata::from_map(&map).ok()?.tenant_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_boundary_nothing_is_lost_or_done_twice_on_sqlite() {
    killed_at_every_boundary_nothing_is_lost_or_done_twice(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_every_boundary_nothing_is_lost_or_done_twice_on_postgres() {
    killed_at_every_boundary_nothing_is_lost_or_done_twice(Backend::Postgres).await;
}
