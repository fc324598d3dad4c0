//! The mail server port's contract, and the Stalwart adapter held to it against the Stalwart
//! fake.
//!
//! [`port_contract`] and [`fault_contract`] are generic over [`MailServer`] (and over
//! [`Faults`], the two failures a test peer can inject), so an in-memory fake of the port
//! runs the same cases. The Stalwart-only cases below them check what only a JMAP server
//! has: what is stored, DKIM keys that arrive late, credentials, configuration.

use dezky_adapters::stalwart::{StalwartConfig, StalwartMail};
use dezky_commands::ports::mail::{
    AddressBook, MailError, MailServer, NewAccount, NewMailingList, RejectionKind,
    DEFAULT_ADDRESS_BOOK_NAME,
};
use dezky_commands::ports::Secret;
use dezky_domain::domains::{RecordPurpose, RecordType};
use dezky_tests::stalwart::StalwartFake;

/// How often a test reads a domain before it gives up waiting for its DKIM keys; a count of
/// reads, not a time, so the test means the same on a slow machine.
const DKIM_POLLS: usize = 50;

/// The failures a test peer can inject into the calls a port makes.
trait Faults {
    /// The next call to the server fails with HTTP `status`, changing nothing.
    fn fail_next_call(&self, status: u16);
    /// The next call to the server is applied, and its answer lost.
    fn lose_next_answer(&self);
}

impl Faults for StalwartFake {
    fn fail_next_call(&self, status: u16) {
        self.fail_next(1, status);
    }

    fn lose_next_answer(&self) {
        self.drop_after_apply_next(1);
    }
}

fn account(address: &str, aliases: &[&str]) -> NewAccount {
    NewAccount {
        address: address.into(),
        password: Secret::new("Corr3ct-Horse-Battery"),
        display_name: Some("Ann Example".into()),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// Reads the domain until its DKIM keys exist.
async fn wait_for_dkim<M: MailServer>(
    mail: &M,
    name: &str,
) -> dezky_commands::ports::mail::MailDomain {
    for _ in 0..DKIM_POLLS {
        let domain = mail
            .domain(name)
            .await
            .expect("read")
            .expect("domain exists");
        if domain.dkim_ready() {
            return domain;
        }
        tokio::task::yield_now().await;
    }
    panic!("no DKIM keys for {name} after {DKIM_POLLS} reads");
}

/// Everything the product relies on, without faults.
async fn port_contract<M: MailServer>(mail: &M) {
    // Domains: ensure is idempotent; DKIM arrives (possibly later); the zone file gives the
    // records the product checks.
    assert_eq!(mail.domain("acme.test").await.expect("read"), None);
    let first = mail.ensure_domain("acme.test").await.expect("created");
    assert_eq!(first.name, "acme.test");
    let again = mail.ensure_domain("ACME.test").await.expect("found");
    assert_eq!(again.name, "acme.test");
    let domain = wait_for_dkim(mail, "acme.test").await;
    let of = |purpose: RecordPurpose| {
        domain
            .records
            .iter()
            .filter(|r| r.purpose == purpose)
            .collect::<Vec<_>>()
    };
    let mx = of(RecordPurpose::Mx);
    assert!(
        !mx.is_empty()
            && mx
                .iter()
                .all(|r| r.name == "acme.test" && r.record_type == RecordType::Mx),
        "{:?}",
        domain.records
    );
    let spf = of(RecordPurpose::Spf);
    assert!(spf
        .iter()
        .any(|r| r.name == "acme.test" && r.value.starts_with("v=spf1")));
    let dkim = of(RecordPurpose::Dkim);
    assert_eq!(
        dkim.len(),
        domain.dkim_selectors.len(),
        "one DKIM record per selector"
    );
    for selector in &domain.dkim_selectors {
        assert!(
            dkim.iter()
                .any(|r| r.name == format!("{selector}._domainkey.acme.test")
                    && r.value.starts_with("v=DKIM1")
                    && r.value.contains("p=")),
            "no record for selector {selector}: {dkim:?}"
        );
    }
    let dmarc = of(RecordPurpose::Dmarc);
    assert!(
        dmarc.len() == 1
            && dmarc[0].name == "_dmarc.acme.test"
            && dmarc[0].value.starts_with("v=DMARC1")
    );
    let mut autodiscovery: Vec<(&str, RecordType)> = of(RecordPurpose::Autodiscovery)
        .iter()
        .map(|r| (r.name.as_str(), r.record_type))
        .collect();
    autodiscovery.sort();
    assert_eq!(
        autodiscovery,
        vec![
            ("_caldavs._tcp.acme.test", RecordType::Srv),
            ("_carddavs._tcp.acme.test", RecordType::Srv),
            ("_imaps._tcp.acme.test", RecordType::Srv),
            ("_pop3s._tcp.acme.test", RecordType::Srv),
            ("_submissions._tcp.acme.test", RecordType::Srv),
            ("autoconfig.acme.test", RecordType::Cname),
            ("autodiscover.acme.test", RecordType::Cname),
        ]
    );
    assert!(
        !domain
            .records
            .iter()
            .any(|r| r.name.starts_with("_jmap.") || r.name.starts_with("_smtp._tls.")),
        "records the product does not check are not expected"
    );
    mail.ensure_domain("other.test").await.expect("created");

    // Accounts: ensure is idempotent and does not reset the password of an existing one.
    assert_eq!(mail.account("ann@acme.test").await.expect("read"), None);
    let ann = mail
        .ensure_account(&account("Ann@acme.test", &["sales@acme.test"]))
        .await
        .expect("created");
    assert_eq!(ann.address, "ann@acme.test");
    assert_eq!(ann.display_name.as_deref(), Some("Ann Example"));
    assert_eq!(ann.aliases, vec!["sales@acme.test".to_owned()]);
    assert!(!ann.frozen);
    let again = mail
        .ensure_account(&account("ann@acme.test", &["sales@acme.test"]))
        .await
        .expect("found");
    assert_eq!(again, ann);

    // The default address book: ensured twice, one book, the default; none for a mailbox
    // that does not exist.
    assert_eq!(
        mail.default_address_book("ann@acme.test")
            .await
            .expect("read"),
        None
    );
    let book = mail
        .ensure_default_address_book("Ann@acme.test")
        .await
        .expect("created");
    assert_eq!(
        book,
        AddressBook {
            name: DEFAULT_ADDRESS_BOOK_NAME.into(),
            is_default: true
        }
    );
    assert_eq!(
        mail.ensure_default_address_book("ann@acme.test")
            .await
            .expect("found"),
        book
    );
    assert_eq!(
        mail.default_address_book("ann@acme.test")
            .await
            .expect("read"),
        Some(book)
    );
    let missing = mail.ensure_default_address_book("nobody@acme.test").await;
    assert!(
        matches!(
            missing,
            Err(MailError::Rejected {
                kind: RejectionKind::NotFound,
                ..
            })
        ),
        "{missing:?}"
    );
    assert_eq!(
        mail.default_address_book("nobody@acme.test")
            .await
            .expect("read"),
        None
    );

    // Aliases: add and remove are idempotent; an alias on an unknown domain is refused; an
    // address someone else holds is a conflict.
    let with = mail
        .add_alias("ann@acme.test", "Hello@other.test")
        .await
        .expect("added");
    assert_eq!(
        with.aliases,
        vec!["hello@other.test".to_owned(), "sales@acme.test".to_owned()]
    );
    assert_eq!(
        mail.add_alias("ann@acme.test", "hello@other.test")
            .await
            .expect("again"),
        with
    );
    let refused = mail.add_alias("ann@acme.test", "x@nowhere.test").await;
    assert!(
        matches!(
            refused,
            Err(MailError::Rejected {
                kind: RejectionKind::UnknownReference,
                ..
            })
        ),
        "{refused:?}"
    );
    let refused = mail
        .ensure_account(&account("bob@acme.test", &["bob@nowhere.test"]))
        .await;
    assert!(
        matches!(
            refused,
            Err(MailError::Rejected {
                kind: RejectionKind::UnknownReference,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        mail.account("bob@acme.test").await.expect("read"),
        None,
        "nothing half-created"
    );
    mail.ensure_account(&account("bob@acme.test", &[]))
        .await
        .expect("created");
    let taken = mail.add_alias("bob@acme.test", "sales@acme.test").await;
    assert!(matches!(taken, Err(MailError::Conflict(_))), "{taken:?}");
    let taken = mail.ensure_account(&account("sales@acme.test", &[])).await;
    assert!(
        matches!(taken, Err(MailError::Conflict(_))),
        "an alias's address: {taken:?}"
    );
    let without = mail
        .remove_alias("ann@acme.test", "hello@other.test")
        .await
        .expect("removed");
    assert_eq!(without.aliases, vec!["sales@acme.test".to_owned()]);
    assert_eq!(
        mail.remove_alias("ann@acme.test", "hello@other.test")
            .await
            .expect("again"),
        without
    );
    let unknown = mail.add_alias("nobody@acme.test", "x@acme.test").await;
    assert!(
        matches!(
            unknown,
            Err(MailError::Rejected {
                kind: RejectionKind::NotFound,
                ..
            })
        ),
        "{unknown:?}"
    );

    // Freeze and unfreeze, each idempotent; a password change.
    mail.freeze_account("ann@acme.test").await.expect("frozen");
    mail.freeze_account("ann@acme.test")
        .await
        .expect("still frozen");
    assert!(
        mail.account("ann@acme.test")
            .await
            .expect("read")
            .expect("there")
            .frozen
    );
    mail.unfreeze_account("ann@acme.test")
        .await
        .expect("unfrozen");
    mail.unfreeze_account("ann@acme.test")
        .await
        .expect("still unfrozen");
    assert!(
        !mail
            .account("ann@acme.test")
            .await
            .expect("read")
            .expect("there")
            .frozen
    );
    mail.set_password("ann@acme.test", &Secret::new("N3w-Passw0rd-Here"))
        .await
        .expect("set");
    let unknown = mail.freeze_account("nobody@acme.test").await;
    assert!(
        matches!(
            unknown,
            Err(MailError::Rejected {
                kind: RejectionKind::NotFound,
                ..
            })
        ),
        "{unknown:?}"
    );

    // Mailing lists: ensure creates, then brings recipients up to date.
    let list = NewMailingList {
        address: "team@acme.test".into(),
        display_name: Some("Team".into()),
        recipients: vec!["ann@acme.test".into(), "ext@else.test".into()],
    };
    let created = mail.ensure_mailing_list(&list).await.expect("created");
    assert_eq!(created.address, "team@acme.test");
    assert_eq!(
        created.recipients,
        vec!["ann@acme.test".to_owned(), "ext@else.test".to_owned()]
    );
    assert_eq!(
        mail.ensure_mailing_list(&list).await.expect("found"),
        created
    );
    let changed = mail
        .ensure_mailing_list(&NewMailingList {
            recipients: vec!["bob@acme.test".into()],
            ..list.clone()
        })
        .await
        .expect("updated");
    assert_eq!(changed.recipients, vec!["bob@acme.test".to_owned()]);
    assert_eq!(
        mail.mailing_list("team@acme.test").await.expect("read"),
        Some(changed)
    );
    let taken = mail
        .ensure_mailing_list(&NewMailingList {
            address: "sales@acme.test".into(),
            ..list.clone()
        })
        .await;
    assert!(matches!(taken, Err(MailError::Conflict(_))), "{taken:?}");

    // A domain in use stays, and keeps its DKIM keys.
    let in_use = mail.destroy_domain("acme.test").await;
    assert!(matches!(in_use, Err(MailError::InUse(_))), "{in_use:?}");
    let kept = mail
        .domain("acme.test")
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(
        kept.dkim_selectors, domain.dkim_selectors,
        "DKIM kept while in use"
    );
    // Held only by an alias elsewhere: still in use.
    mail.ensure_domain("third.test").await.expect("created");
    mail.add_alias("ann@acme.test", "ann@third.test")
        .await
        .expect("added");
    let in_use = mail.destroy_domain("third.test").await;
    assert!(matches!(in_use, Err(MailError::InUse(_))), "{in_use:?}");
    mail.remove_alias("ann@acme.test", "ann@third.test")
        .await
        .expect("removed");

    // Teardown: deletes are idempotent; then the domain (with its DKIM keys) goes.
    mail.delete_mailing_list("team@acme.test")
        .await
        .expect("deleted");
    mail.delete_mailing_list("team@acme.test")
        .await
        .expect("already gone");
    assert_eq!(
        mail.mailing_list("team@acme.test").await.expect("read"),
        None
    );
    for address in ["ann@acme.test", "bob@acme.test"] {
        mail.delete_account(address).await.expect("deleted");
        mail.delete_account(address).await.expect("already gone");
        assert_eq!(mail.account(address).await.expect("read"), None);
    }
    mail.destroy_domain("acme.test").await.expect("destroyed");
    mail.destroy_domain("acme.test")
        .await
        .expect("already gone");
    assert_eq!(mail.domain("acme.test").await.expect("read"), None);
    mail.destroy_domain("third.test").await.expect("destroyed");
    // A destroyed name can be set up again.
    mail.ensure_domain("acme.test")
        .await
        .expect("created again");
}

/// Failures: an unavailable server changed nothing and says so; a lost answer is
/// `OutcomeUnknown`, and the matching read tells what happened.
async fn fault_contract<M: MailServer, F: Faults>(mail: &M, faults: &F) {
    faults.fail_next_call(503);
    let down = mail.ensure_domain("down.test").await;
    assert!(matches!(down, Err(MailError::Unavailable(_))), "{down:?}");
    assert!(down.as_ref().is_err_and(MailError::is_retryable));
    assert_eq!(
        mail.domain("down.test").await.expect("read"),
        None,
        "nothing applied"
    );
    mail.ensure_domain("down.test")
        .await
        .expect("the retry works");

    mail.ensure_account(&account("cy@down.test", &[]))
        .await
        .expect("created");
    faults.fail_next_call(500);
    let down = mail.freeze_account("cy@down.test").await;
    assert!(matches!(down, Err(MailError::Unavailable(_))), "{down:?}");
    assert!(
        !mail
            .account("cy@down.test")
            .await
            .expect("read")
            .expect("there")
            .frozen
    );

    // The freeze is applied but its answer lost: the caller cannot tell, the read can.
    faults.lose_next_answer();
    let lost = mail.freeze_account("cy@down.test").await;
    assert!(
        matches!(lost, Err(MailError::OutcomeUnknown(_))),
        "{lost:?}"
    );
    assert!(!lost.as_ref().is_err_and(MailError::is_retryable));
    assert!(
        mail.account("cy@down.test")
            .await
            .expect("read")
            .expect("there")
            .frozen,
        "it was applied"
    );
    // Retrying an idempotent step after reconciling is harmless.
    mail.freeze_account("cy@down.test").await.expect("frozen");

    // A lost answer on a read is only a failed read.
    faults.lose_next_answer();
    let lost = mail.account("cy@down.test").await;
    assert!(matches!(lost, Err(MailError::Unavailable(_))), "{lost:?}");
}

fn adapter(fake: &StalwartFake) -> StalwartMail {
    let config = StalwartConfig::new(&fake.base_url, &fake.user, Secret::new(fake.secret.clone()));
    StalwartMail::new(config, reqwest::Client::new()).expect("valid configuration")
}

#[tokio::test]
async fn the_stalwart_adapter_keeps_the_mail_server_contract() {
    let fake = StalwartFake::start().await.expect("fake starts");
    port_contract(&adapter(&fake)).await;
}

#[tokio::test]
async fn the_stalwart_adapter_reports_faults_as_the_contract_says() {
    let fake = StalwartFake::start().await.expect("fake starts");
    fault_contract(&adapter(&fake), &fake).await;
}

#[tokio::test]
async fn ensuring_twice_stores_one_object_each() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let mail = adapter(&fake);
    for _ in 0..2 {
        mail.ensure_domain("once.test").await.expect("ensured");
        mail.ensure_account(&account("ann@once.test", &[]))
            .await
            .expect("ensured");
        mail.ensure_mailing_list(&NewMailingList {
            address: "all@once.test".into(),
            display_name: None,
            recipients: vec!["ann@once.test".into()],
        })
        .await
        .expect("ensured");
    }
    assert_eq!(fake.domains().len(), 1);
    assert_eq!(fake.accounts().len(), 1);
    assert_eq!(fake.mailing_lists().len(), 1);
}

#[tokio::test]
async fn an_address_book_made_without_a_default_becomes_the_default_not_a_second_book() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let mail = adapter(&fake);
    mail.ensure_domain("book.test").await.expect("domain");
    mail.ensure_account(&account("ann@book.test", &[]))
        .await
        .expect("account");
    let ann = fake.accounts()[0].id.clone();
    // A client made one (or a create's answer was lost before the default was set).
    let response = reqwest::Client::new()
        .post(fake.api_url())
        .basic_auth(&fake.user, Some(&fake.secret))
        .json(&serde_json::json!({
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:contacts"],
            "methodCalls": [["AddressBook/set",
                {"accountId": ann, "create": {"b": {"name": "Personal"}}}, "c"]],
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let book = mail
        .ensure_default_address_book("ann@book.test")
        .await
        .expect("ensured");
    assert_eq!(book.name, "Personal");
    assert!(book.is_default);
    assert_eq!(fake.address_books("ann@book.test").len(), 1);
}

#[tokio::test]
async fn dkim_keys_arrive_after_the_domain_and_the_records_follow() {
    let fake = StalwartFake::builder()
        .dkim_after_polls(None)
        .start()
        .await
        .expect("fake starts");
    let mail = adapter(&fake);
    let domain = mail.ensure_domain("late.test").await.expect("created");
    assert!(!domain.dkim_ready(), "the key task has not run");
    assert!(!domain
        .records
        .iter()
        .any(|r| r.purpose == RecordPurpose::Dkim));
    assert!(domain
        .records
        .iter()
        .any(|r| r.purpose == RecordPurpose::Mx));
    fake.complete_pending_tasks();
    let domain = wait_for_dkim(&mail, "late.test").await;
    // Upstream's defaults: one Ed25519 and one RSA key; the RSA one is the multi-line TXT.
    assert_eq!(domain.dkim_selectors.len(), 2, "{domain:?}");
    let dkim: Vec<_> = domain
        .records
        .iter()
        .filter(|r| r.purpose == RecordPurpose::Dkim)
        .collect();
    assert!(
        dkim.iter()
            .any(|r| r.value.contains("k=rsa") && r.value.len() > 255),
        "{dkim:?}"
    );
    assert!(
        dkim.iter().any(|r| r.value.contains("k=ed25519")),
        "{dkim:?}"
    );
    // And the teardown removes them before the domain.
    mail.destroy_domain("late.test").await.expect("destroyed");
    assert!(fake.dkim_signatures().is_empty());
    assert!(fake.domains().is_empty());
}

#[tokio::test]
async fn a_mailbox_keeps_its_password_and_freezing_is_a_permission_change() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let mail = adapter(&fake);
    mail.ensure_domain("pw.test").await.expect("created");
    mail.ensure_account(&account("ann@pw.test", &[]))
        .await
        .expect("created");
    let secret =
        |fake: &StalwartFake| fake.accounts()[0].value["credentials"]["0"]["secret"].clone();
    assert_eq!(secret(&fake), "Corr3ct-Horse-Battery");
    let mut other = account("ann@pw.test", &[]);
    other.password = Secret::new("Another-Passw0rd");
    mail.ensure_account(&other).await.expect("found");
    assert_eq!(
        secret(&fake),
        "Corr3ct-Horse-Battery",
        "a retried create resets nothing"
    );
    mail.freeze_account("ann@pw.test").await.expect("frozen");
    let stored = fake.accounts()[0].value.clone();
    assert_eq!(stored["permissions"]["@type"], "Merge");
    for permission in ["authenticate", "emailSend", "emailReceive"] {
        assert_eq!(
            stored["permissions"]["disabledPermissions"][permission],
            true
        );
    }
    assert_eq!(
        secret(&fake),
        "Corr3ct-Horse-Battery",
        "freezing keeps the password"
    );
    mail.unfreeze_account("ann@pw.test")
        .await
        .expect("unfrozen");
    assert_eq!(fake.accounts()[0].value["permissions"]["@type"], "Inherit");
    mail.set_password("ann@pw.test", &Secret::new("N3w-Passw0rd-Here"))
        .await
        .expect("set");
    assert_eq!(secret(&fake), "N3w-Passw0rd-Here");
    // An account deleted and created again behind the adapter's back gets a new id; the
    // adapter's remembered one is found stale and looked up again.
    mail.delete_account("ann@pw.test").await.expect("deleted");
    mail.ensure_account(&account("ann@pw.test", &[]))
        .await
        .expect("created again");
    mail.freeze_account("ann@pw.test").await.expect("frozen");
    assert!(
        mail.account("ann@pw.test")
            .await
            .expect("read")
            .expect("there")
            .frozen
    );
}

#[tokio::test]
async fn an_unconfigured_adapter_does_nothing_and_says_so() {
    let mail = StalwartMail::unconfigured();
    assert!(!mail.is_configured());
    let list = NewMailingList {
        address: "l@a.test".into(),
        display_name: None,
        recipients: vec![],
    };
    let secret = Secret::new("x");
    let results = [
        mail.ensure_domain("a.test").await.err(),
        mail.domain("a.test").await.err(),
        mail.destroy_domain("a.test").await.err(),
        mail.ensure_account(&account("a@a.test", &[])).await.err(),
        mail.account("a@a.test").await.err(),
        mail.set_password("a@a.test", &secret).await.err(),
        mail.add_alias("a@a.test", "b@a.test").await.err(),
        mail.remove_alias("a@a.test", "b@a.test").await.err(),
        mail.freeze_account("a@a.test").await.err(),
        mail.unfreeze_account("a@a.test").await.err(),
        mail.delete_account("a@a.test").await.err(),
        mail.ensure_mailing_list(&list).await.err(),
        mail.mailing_list("l@a.test").await.err(),
        mail.delete_mailing_list("l@a.test").await.err(),
    ];
    for (index, result) in results.into_iter().enumerate() {
        assert_eq!(result, Some(MailError::NotConfigured), "operation {index}");
    }
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_and_change_nothing() {
    let fake = StalwartFake::start().await.expect("fake starts");
    let config = StalwartConfig::new(&fake.base_url, &fake.user, Secret::new("wrong-secret"));
    let mail = StalwartMail::new(config, reqwest::Client::new()).expect("valid configuration");
    assert_eq!(
        mail.ensure_domain("a.test").await,
        Err(MailError::Unauthorized)
    );
    assert_eq!(mail.domain("a.test").await, Err(MailError::Unauthorized));
    assert!(fake.domains().is_empty());
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_unavailable() {
    // Bind a port, then free it, so nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let config = StalwartConfig::new(format!("http://{address}"), "admin", Secret::new("s"));
    let mail = StalwartMail::new(config, reqwest::Client::new()).expect("valid configuration");
    let result = mail.ensure_domain("a.test").await;
    assert!(
        matches!(result, Err(MailError::Unavailable(_))),
        "{result:?}"
    );
}
