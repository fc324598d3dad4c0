//! The default address book at mailbox creation, against the faithful Stalwart fake: a new
//! mailbox gets exactly one address book, the default, as one more effect of the mailbox saga;
//! and when the platform is killed (SIGKILL) between the mailbox and its address book, or
//! just after the address book was made but before that was on the ledger, a restart
//! finishes the job without a second address book. On SQLite and PostgreSQL.

use std::process::Stdio;
use std::time::Duration;

use dezky_commands::saga::Effects;
use dezky_commands::Ledger;
use dezky_domain::effects::{EffectEvent, EffectStatus};
use dezky_domain::tenant::{AddressPlacement, NewMember, Role, TenantAction, TenantCommand};
use dezky_tests::dns_server::DnsServer;
use dezky_tests::saga_rig::{stalwart, Platform, APEX};
use dezky_tests::stalwart::StalwartFake;
use dezky_tests::{operator_context, seed_tenant, tenant_cqrs, Backend, TestDb};
use tokio::process::{Child, Command};

/// A generous bound on waits for something that must happen (a failure, not a measurement).
const PATIENCE: Duration = Duration::from_secs(90);

/// Adds a member on the workspace's service domain (so with a mailbox); returns the address.
async fn add_member(ledger: &Ledger, tenant_id: &str, n: usize) -> String {
    let address = format!("ann@seed-{n}.{APEX}");
    tenant_cqrs(ledger)
        .execute(
            tenant_id,
            TenantCommand::new(
                operator_context(),
                TenantAction::AddMember {
                    member: NewMember {
                        member_id: format!("{tenant_id}-ann"),
                        email: address.clone(),
                        display_name: "Ann".into(),
                    },
                    role: Role::Member,
                    placement: AddressPlacement::OwnDomain,
                },
            ),
        )
        .await
        .expect("member added");
    address
}

/// The address-book effects (for every mailbox, or only `address`'s), with their status and
/// how often each settled as done.
async fn address_book_effects(
    ledger: &Ledger,
    address: Option<&str>,
) -> Vec<(String, Option<EffectStatus>, usize)> {
    let events = ledger.events_of_type("effect").await.expect("effects");
    let mut keys: Vec<String> = events
        .iter()
        .filter(|e| e.aggregate_id.contains("create-address-book"))
        .map(|e| e.aggregate_id.clone())
        .collect();
    keys.sort();
    keys.dedup();
    let effects = Effects::new(ledger);
    let mut out = Vec::new();
    for key in keys {
        let effect = effects.load(&key).await.expect("effect");
        let for_address = effect
            .intent
            .as_ref()
            .and_then(|i| i.request.get("address"))
            .and_then(|a| a.as_str())
            .map(str::to_owned);
        if address.is_some_and(|a| for_address.as_deref() != Some(a)) {
            continue;
        }
        let status = effect.status;
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
        out.push((key, status, settled));
    }
    out
}

/// Whether `address` has its one default address book and the effect that made it settled.
async fn done(ledger: &Ledger, fake: &StalwartFake, address: &str) -> bool {
    let books = fake.address_books(address);
    let effects = address_book_effects(ledger, Some(address)).await;
    books.len() == 1
        && books[0].value["isDefault"] == true
        && effects
            .iter()
            .any(|(_, status, _)| *status == Some(EffectStatus::Succeeded))
}

async fn a_new_mailbox_gets_one_default_address_book(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let dns = DnsServer::builder().start();
    let platform = Platform::start(&ledger, stalwart(&fake.base_url), dns.addr(), 8)
        .await
        .expect("platform");
    let tenant = seed_tenant(&tenant_cqrs(&ledger), 1, 0)
        .await
        .expect("tenant");
    let address = add_member(&ledger, &tenant, 1).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done(&ledger, &fake, &address).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no default address book for {address}: {:?}",
            fake.address_books(&address)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let books = fake.address_books(&address);
    assert_eq!(books[0].value["name"], "Contacts");
    let effects = address_book_effects(&ledger, None).await;
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert_eq!(effects[0].2, 1, "settled once: {effects:?}");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_mailbox_gets_one_default_address_book_on_sqlite() {
    a_new_mailbox_gets_one_default_address_book(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_mailbox_gets_one_default_address_book_on_postgres() {
    a_new_mailbox_gets_one_default_address_book(Backend::Postgres).await;
}

fn spawn(db: &TestDb, fake: &StalwartFake, dns: &DnsServer, crash: Option<&str>) -> Child {
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

/// Waits until `address` is done or the child dies; true when done.
async fn run_until(child: &mut Child, ledger: &Ledger, fake: &StalwartFake, address: &str) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if done(ledger, fake, address).await {
            return true;
        }
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither done nor dead for {address}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn killed_around_the_address_book_a_restart_makes_exactly_one(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let fake = StalwartFake::builder()
        .dkim_after_polls(Some(0))
        .start()
        .await
        .expect("fake");
    let dns = DnsServer::builder().start();
    // Between the mailbox and its address book (the mailbox effect settled, the address book
    // call never left), and after the address book was made (its outcome not on the ledger).
    for (i, point) in ["before:address-book", "after:address-book"]
        .into_iter()
        .enumerate()
    {
        let n = 10 + i;
        let tenant = seed_tenant(&tenant_cqrs(&ledger), n, 0)
            .await
            .expect("tenant");
        let address = add_member(&ledger, &tenant, n).await;
        let mut child = spawn(&db, &fake, &dns, Some(point));
        assert!(
            !run_until(&mut child, &ledger, &fake, &address).await,
            "{point}: the process should have been killed"
        );
        assert!(
            fake.accounts()
                .iter()
                .any(|a| a.value["name"] == "ann" && a.value["description"] == "Ann"),
            "{point}: the mailbox was made before the crash"
        );
        let mut child = spawn(&db, &fake, &dns, None);
        assert!(
            run_until(&mut child, &ledger, &fake, &address).await,
            "{point}: the restarted process died"
        );
        let _ = child.kill().await;
        assert_eq!(fake.address_books(&address).len(), 1, "{point}");
    }
    // Every address-book effect settled exactly once.
    let effects = address_book_effects(&ledger, None).await;
    assert_eq!(effects.len(), 2, "{effects:?}");
    for (key, status, settled) in effects {
        assert_eq!(status, Some(EffectStatus::Succeeded), "{key}");
        assert_eq!(settled, 1, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_around_the_address_book_a_restart_makes_exactly_one_on_sqlite() {
    killed_around_the_address_book_a_restart_makes_exactly_one(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_around_the_address_book_a_restart_makes_exactly_one_on_postgres() {
    killed_around_the_address_book_a_restart_makes_exactly_one(Backend::Postgres).await;
}

#[tokio::test]
async fn an_address_book_for_a_mailbox_already_gone_is_done_with_nothing_to_do() {
    use dezky_commands::saga::request::{MailRequest, Outcome, ReadBack, Request, Systems};
    let fake = StalwartFake::start().await.expect("fake");
    let systems = Systems {
        mail: stalwart(&fake.base_url),
        dns: dezky_api::settings::DomainDns::NotConfigured,
    };
    // The member was removed (and the mailbox deleted) before the step ran.
    let request = Request::Mail(MailRequest::EnsureDefaultAddressBook {
        address: "gone@nowhere.test".into(),
    });
    match systems.perform(&request).await {
        Outcome::Done(result) => assert_eq!(result["mailbox"], "gone", "{result}"),
        other => panic!("expected done with nothing to do, got {other:?}"),
    }
    // And reading back never claims an address book that is not there.
    assert_eq!(
        systems.read_back(&request).await,
        Ok(ReadBack::NotApplied(serde_json::Value::Null))
    );
}
