//! The platform's sagas wired to test peers — the faithful Stalwart fake and a real DNS server
//! (dnsmasq) — for the saga suites and the crash worker, plus what they share: publishing a
//! domain's expected records in DNS, and a mail server that kills its own process at a chosen
//! call (the crash suites' step boundaries).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dezky_adapters::dns::DnsVerifier;
use dezky_adapters::stalwart::{StalwartConfig, StalwartMail};
use dezky_commands::ports::mail::{
    AddressBook, MailAccount, MailDomain, MailError, MailServer, MailingList, NewAccount,
    NewMailingList,
};
use dezky_commands::ports::Secret;
use dezky_commands::saga::SagaConfig;
use dezky_commands::Ledger;
use dezky_domain::domains::{ExpectedRecord, RecordType};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dns_server::DnsServerBuilder;

/// The platform domain in the saga suites.
pub const APEX: &str = "dezky.test";

/// The Stalwart adapter pointed at a fake's `base_url` with the fake's default credentials.
pub fn stalwart(api_url: &str) -> StalwartMail {
    let config = StalwartConfig::new(api_url, "admin", Secret::new("fake-admin-secret"));
    StalwartMail::new(config, reqwest::Client::new()).expect("a valid Stalwart configuration")
}

/// A running platform: read models, process managers, sagas and the effect worker.
pub struct Platform {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Platform {
    /// Starts everything `dezky serve` runs in the background over `ledger`, with `mail` and
    /// DNS at `nameserver`; effects get `max_attempts`.
    pub async fn start<M: MailServer + 'static>(
        ledger: &Ledger,
        mail: M,
        nameserver: SocketAddr,
        max_attempts: u32,
    ) -> anyhow::Result<Self> {
        let config = SagaConfig {
            max_attempts,
            ..SagaConfig::new(APEX)
        };
        Self::start_with(ledger, mail, nameserver, &config).await
    }

    /// Like [`Platform::start`], with every saga setting given.
    pub async fn start_with<M: MailServer + 'static>(
        ledger: &Ledger,
        mail: M,
        nameserver: SocketAddr,
        config: &SagaConfig,
    ) -> anyhow::Result<Self> {
        let (stop, shutdown) = watch::channel(false);
        let processors = dezky_api::processors::start(ledger, &shutdown).await?;
        let dns = DnsVerifier::new(Some(nameserver))?;
        let sagas = dezky_api::sagas::start(
            ledger,
            mail,
            dns,
            config,
            dezky_projections::host::holder_id(),
            &shutdown,
        )
        .await?;
        let mut handles = processors.handles;
        handles.extend(sagas.handles);
        Ok(Self { stop, handles })
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Adds `records` to a DNS server's configuration, reading each value as the zone-file parser
/// wrote it (MX `pref host`, SRV `prio weight port target`, TXT as one string split into
/// 255-byte character-strings, CNAME target).
pub fn publish(mut dns: DnsServerBuilder, records: &[ExpectedRecord]) -> DnsServerBuilder {
    for record in records {
        let fields: Vec<&str> = record.value.split_whitespace().collect();
        dns = match record.record_type {
            RecordType::Mx => dns.mx(
                &record.name,
                fields[0].parse().expect("MX preference"),
                fields[1],
            ),
            RecordType::Srv => dns.srv(
                &record.name,
                fields[0].parse().expect("SRV priority"),
                fields[1].parse().expect("SRV weight"),
                fields[2].parse().expect("SRV port"),
                fields[3],
            ),
            RecordType::Cname => dns.cname(&record.name, fields[0]),
            RecordType::Txt => {
                let bytes = record.value.as_bytes();
                let chunks: Vec<&str> = bytes
                    .chunks(255)
                    .map(|c| std::str::from_utf8(c).expect("ASCII TXT value"))
                    .collect();
                dns.txt(&record.name, &chunks)
            }
        };
    }
    dns
}

/// The name [`CrashPoint::BeforeNamed`] and [`CrashPoint::AfterNamed`] give the call that
/// creates a mailbox's default address book.
pub const ADDRESS_BOOK_CALL: &str = "address-book";

/// Where a [`Crashing`] mail server kills its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Just before the n-th call (from 1) reaches the server: the attempt is on the ledger,
    /// the call never left.
    BeforeCall(u32),
    /// Just after the n-th call returned: the server applied it, the outcome is not on the
    /// ledger.
    AfterCall(u32),
    /// Just before the first call of this name ([`ADDRESS_BOOK_CALL`]) reaches the server.
    BeforeNamed(&'static str),
    /// Just after the first call of this name returned.
    AfterNamed(&'static str),
}

impl CrashPoint {
    /// Reads `before:N` / `after:N`, or `before:address-book` / `after:address-book`.
    pub fn parse(text: &str) -> Option<Self> {
        let (when, n) = text.split_once(':')?;
        if n == ADDRESS_BOOK_CALL {
            return match when {
                "before" => Some(Self::BeforeNamed(ADDRESS_BOOK_CALL)),
                "after" => Some(Self::AfterNamed(ADDRESS_BOOK_CALL)),
                _ => None,
            };
        }
        let n = n.parse().ok()?;
        match when {
            "before" => Some(Self::BeforeCall(n)),
            "after" => Some(Self::AfterCall(n)),
            _ => None,
        }
    }
}

/// A mail server that SIGKILLs its own process at one call boundary.
#[derive(Clone)]
pub struct Crashing<M> {
    inner: M,
    at: Option<CrashPoint>,
    calls: Arc<AtomicU32>,
}

fn kill_self() -> ! {
    // SIGKILL, as an operator's `kill -9` or the OOM killer: no destructor, no flush.
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::park();
    }
}

impl<M: MailServer> Crashing<M> {
    /// `inner`, killing the process at `at` (never when `None`).
    pub fn new(inner: M, at: Option<CrashPoint>) -> Self {
        Self {
            inner,
            at,
            calls: Arc::new(AtomicU32::new(0)),
        }
    }

    async fn call<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.at == Some(CrashPoint::BeforeCall(n)) {
            kill_self();
        }
        let result = call.await;
        if self.at == Some(CrashPoint::AfterCall(n)) {
            kill_self();
        }
        result
    }

    /// A call that a crash point can also name.
    async fn named<T>(&self, name: &'static str, call: impl std::future::Future<Output = T>) -> T {
        if self.at == Some(CrashPoint::BeforeNamed(name)) {
            kill_self();
        }
        let result = self.call(call).await;
        if self.at == Some(CrashPoint::AfterNamed(name)) {
            kill_self();
        }
        result
    }
}

impl<M: MailServer> MailServer for Crashing<M> {
    async fn ensure_domain(&self, name: &str) -> Result<MailDomain, MailError> {
        self.call(self.inner.ensure_domain(name)).await
    }
    async fn domain(&self, name: &str) -> Result<Option<MailDomain>, MailError> {
        self.call(self.inner.domain(name)).await
    }
    async fn destroy_domain(&self, name: &str) -> Result<(), MailError> {
        self.call(self.inner.destroy_domain(name)).await
    }
    async fn ensure_account(&self, account: &NewAccount) -> Result<MailAccount, MailError> {
        self.call(self.inner.ensure_account(account)).await
    }
    async fn account(&self, address: &str) -> Result<Option<MailAccount>, MailError> {
        self.call(self.inner.account(address)).await
    }
    async fn set_password(&self, address: &str, password: &Secret) -> Result<(), MailError> {
        self.call(self.inner.set_password(address, password)).await
    }
    async fn add_alias(&self, address: &str, alias: &str) -> Result<MailAccount, MailError> {
        self.call(self.inner.add_alias(address, alias)).await
    }
    async fn remove_alias(&self, address: &str, alias: &str) -> Result<MailAccount, MailError> {
        self.call(self.inner.remove_alias(address, alias)).await
    }
    async fn freeze_account(&self, address: &str) -> Result<(), MailError> {
        self.call(self.inner.freeze_account(address)).await
    }
    async fn unfreeze_account(&self, address: &str) -> Result<(), MailError> {
        self.call(self.inner.unfreeze_account(address)).await
    }
    async fn delete_account(&self, address: &str) -> Result<(), MailError> {
        self.call(self.inner.delete_account(address)).await
    }
    async fn ensure_mailing_list(&self, list: &NewMailingList) -> Result<MailingList, MailError> {
        self.call(self.inner.ensure_mailing_list(list)).await
    }
    async fn mailing_list(&self, address: &str) -> Result<Option<MailingList>, MailError> {
        self.call(self.inner.mailing_list(address)).await
    }
    async fn delete_mailing_list(&self, address: &str) -> Result<(), MailError> {
        self.call(self.inner.delete_mailing_list(address)).await
    }
    async fn ensure_default_address_book(&self, address: &str) -> Result<AddressBook, MailError> {
        self.named(
            ADDRESS_BOOK_CALL,
            self.inner.ensure_default_address_book(address),
        )
        .await
    }
    async fn default_address_book(&self, address: &str) -> Result<Option<AddressBook>, MailError> {
        self.call(self.inner.default_address_book(address)).await
    }
}
