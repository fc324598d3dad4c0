//! Shared fixtures for the workspace suites: throw-away databases on both backends, signing
//! keys, and a probe command runner that goes through the real cqrs-es path.

pub mod calendar_fake;
pub mod dns_server;
pub mod graphql_rig;
pub mod mailer_fake;
pub mod peer_process;
pub mod radicale;
pub mod saga_rig;
pub mod server_rig;
pub mod smtp_server;
pub mod stalwart;

use std::path::Path;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use dezky_commands::keys::{generate, SigningKey, TrustedKeys};
use dezky_commands::{Ledger, LedgerOptions, LedgerRepository};
use dezky_domain::probe::{Probe, ProbeCommand, Reading};
use dezky_domain::{Actor, EventMetadata};
use sqlx::Connection;

/// The server the PostgreSQL suites create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("DEZKY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The two stores every ledger suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    /// URL to give the ledger.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh, empty database on `backend`.
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
                Ok(Self {
                    url,
                    backend,
                    name: String::new(),
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let name = format!("dezky_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    backend,
                    name,
                    _dir: None,
                })
            }
        }
    }

    /// The SQLite file, for suites that reopen or copy it.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.url.strip_prefix("sqlite:").map(Path::new)
    }

    /// Opens the ledger on this database.
    pub async fn open(&self) -> anyhow::Result<Ledger> {
        Ok(Ledger::open(&LedgerOptions::new(self.url.clone())).await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        // Drop runs outside any runtime guarantee; a short-lived thread with its own runtime
        // removes the database even when the test failed.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh signing key and the trusted-keys set holding its public half.
pub fn test_key(name: &str) -> (SigningKey, TrustedKeys) {
    let generated = generate(name).expect("key generation");
    let key = SigningKey::from_private_line(&generated.private_line, Path::new("test"))
        .expect("generated key parses");
    let trusted = TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("public key");
    (key, trusted)
}

/// The cqrs-es framework for probes over the ledger, as the product wires it.
pub type ProbeCqrs = CqrsFramework<Probe, PersistedEventStore<LedgerRepository, Probe>>;

/// Builds the probe framework on a ledger.
pub fn probe_cqrs(ledger: &Ledger) -> ProbeCqrs {
    dezky_api::demo::probe_framework(ledger)
}

/// Metadata for test commands, with a tenant.
pub fn metadata_for(tenant: &str) -> EventMetadata {
    EventMetadata {
        actor: Some(Actor {
            subject: "test-actor".into(),
            email: Some("auditor@example.eu".into()),
        }),
        tenant_id: Some(tenant.to_owned()),
        ..EventMetadata::default()
    }
}

/// A probe command recording `events` readings.
pub fn record(events: usize, label: &str) -> ProbeCommand {
    ProbeCommand::Record {
        label: label.to_owned(),
        readings: (0..events)
            .map(|i| Reading {
                value_milli: i as i64,
                unit: "ms".into(),
            })
            .collect(),
    }
}

/// Runs `commands` commands of one event each, spread over `aggregates` probes and two
/// tenants (`tenant-a`, `tenant-b`).
pub async fn fill(ledger: &Ledger, commands: usize, aggregates: usize) -> anyhow::Result<()> {
    let cqrs = probe_cqrs(ledger);
    for n in 0..commands {
        let tenant = if n % 2 == 0 { "tenant-a" } else { "tenant-b" };
        cqrs.execute_with_metadata(
            &format!("probe-{}", n % aggregates.max(1)),
            record(1, &format!("command {n}")),
            metadata_for(tenant).to_map(),
        )
        .await?;
    }
    Ok(())
}

/// The cqrs-es framework for tenants over the ledger.
pub type TenantCqrs = dezky_commands::app::registry::Cqrs<dezky_domain::tenant::Tenant>;

/// Builds the tenant framework on a ledger, through the registry as production does.
pub fn tenant_cqrs(ledger: &Ledger) -> TenantCqrs {
    dezky_commands::app::registry::framework(ledger)
}

/// An operator's command context at a fixed time.
pub fn operator_context() -> dezky_domain::tenant::CommandContext {
    dezky_domain::tenant::CommandContext {
        principal: dezky_domain::tenant::Principal {
            subject: "op".into(),
            issuer: None,
            email: Some("op@dezky.eu".into()),
            platform_admin: true,
            partner_id: None,
        },
        now: "2026-11-28T10:00:00Z".into(),
    }
}

/// Creates tenant `tenant-{n}` (slug `seed-{n}`) with `members` members besides its first
/// admin, through the real commands: `2 + members` events (slugs are not claimed: the read
/// models do not look at claims).
pub async fn seed_tenant(cqrs: &TenantCqrs, n: usize, members: usize) -> anyhow::Result<String> {
    use dezky_domain::tenant::{CreateTenant, NewMember, Role, TenantAction, TenantCommand};
    let tenant_id = format!("tenant-{n}");
    let create = TenantAction::Create(CreateTenant {
        tenant_id: tenant_id.clone(),
        organization_name: format!("Seed {n} GmbH"),
        slug: format!("seed-{n}"),
        plan: if n.is_multiple_of(2) {
            "standard"
        } else {
            "pro"
        }
        .into(),
        seats: 10,
        first_admin: NewMember {
            member_id: format!("{tenant_id}-admin"),
            email: format!("admin@seed-{n}.eu"),
            display_name: "Admin".into(),
        },
        partner_id: None,
    });
    let metadata = |tenant: &str| metadata_for(tenant).to_map();
    cqrs.execute_with_metadata(
        &tenant_id,
        TenantCommand::new(operator_context(), create),
        metadata(&tenant_id),
    )
    .await?;
    for m in 0..members {
        let add = TenantAction::AddMember {
            member: NewMember {
                member_id: format!("{tenant_id}-m{m}"),
                email: format!("m{m}@seed-{n}.eu"),
                display_name: format!("Member {m}"),
            },
            role: Role::Member,
            placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
        };
        cqrs.execute_with_metadata(
            &tenant_id,
            TenantCommand::new(operator_context(), add),
            metadata(&tenant_id),
        )
        .await?;
    }
    Ok(tenant_id)
}
