//! Crash safety of the read side: a projection runner SIGKILLed mid-stream — inside a batch's
//! open transaction, right after a commit, before its first batch — and restarted loses
//! nothing and applies nothing twice, and the read models it ends with equal the ones a clean
//! run builds from scratch. On SQLite and PostgreSQL.
//!
//! The runner lives in `projection-worker`, a separate process that reports its progress on
//! stdout; every kill is decided by a line the worker printed, never by a clock.

use std::collections::HashMap;
use std::process::Stdio;

use dezky_commands::store::Db;
use dezky_commands::Ledger;
use dezky_domain::tenant::{
    CommandContext, CreateTenant, NewMember, Principal, Role, SlugClaim, SlugClaimCommand, Tenant,
    TenantAction, TenantCommand,
};
use dezky_domain::{Actor, EventMetadata};
use dezky_projections::audit::AuditTimeline;
use dezky_projections::runner::APPLY_BATCH_EVENTS;
use dezky_projections::tenants::TenantDirectory;
use dezky_tests::{metadata_for, probe_cqrs, record, Backend, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// The projections the worker drives, by the names it reports.
const PROJECTIONS: [&str; 3] = [TenantDirectory::NAME, AuditTimeline::NAME, "applied"];
/// Concurrent command tasks filling the ledger (group commits carry several commands).
const FILL_TASKS: usize = 8;
/// Tenants created before the first run: with their members, role changes and probe readings
/// about six batches of events, so kills land in the middle of a catch-up.
const TENANTS_BEFORE: usize = 800;
/// Tenants created while the worker is down between two rounds.
const TENANTS_BETWEEN: usize = 40;

use dezky_commands::app::registry::{framework, Cqrs};

fn tenant_metadata(tenant_id: &str, now: &str) -> HashMap<String, String> {
    EventMetadata {
        actor: Some(Actor {
            subject: "op-1".into(),
            email: Some("ops@dezky.eu".into()),
        }),
        tenant_id: Some(tenant_id.to_owned()),
        occurred_at: Some(now.to_owned()),
        ..EventMetadata::default()
    }
    .to_map()
}

/// Creates tenants `from..to` through the real command path, each with a slug claim, three
/// members, a role change and a probe reading, spread over several concurrent tasks.
async fn fill(ledger: &Ledger, from: usize, to: usize) {
    let mut tasks = Vec::new();
    for task in 0..FILL_TASKS {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let tenants: Cqrs<Tenant> = framework(&ledger);
            let slugs: Cqrs<SlugClaim> = framework(&ledger);
            let probes = probe_cqrs(&ledger);
            let operator = Principal::platform_admin("op-1", "ops@dezky.eu");
            for n in (from..to).filter(|n| n % FILL_TASKS == task) {
                let id = format!("tenant-{n:05}");
                let slug = format!("crash-{n:05}");
                let now = format!("2026-03-01T10:{:02}:{:02}Z", n / 60 % 60, n % 60);
                let metadata = tenant_metadata(&id, &now);
                let command = |action| {
                    TenantCommand::new(CommandContext::new(operator.clone(), now.clone()), action)
                };
                slugs
                    .execute_with_metadata(
                        &slug,
                        SlugClaimCommand::Claim {
                            tenant_id: id.clone(),
                        },
                        metadata.clone(),
                    )
                    .await
                    .expect("claim the slug");
                let create = TenantAction::Create(CreateTenant {
                    tenant_id: id.clone(),
                    organization_name: format!("Crash {n} GmbH"),
                    slug: slug.clone(),
                    plan: "standard".into(),
                    seats: 10,
                    first_admin: NewMember {
                        member_id: format!("{id}-owner"),
                        email: format!("owner@{slug}.example"),
                        display_name: "Owner".into(),
                    },
                    partner_id: None,
                });
                let mut actions = vec![create];
                for m in 0..3 {
                    actions.push(TenantAction::AddMember {
                        member: NewMember {
                            member_id: format!("{id}-m{m}"),
                            email: format!("member{m}@{slug}.example"),
                            display_name: format!("Member {m}"),
                        },
                        role: Role::Member,
                        placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
                    });
                }
                actions.push(TenantAction::ChangeMemberRole {
                    member_id: format!("{id}-m0"),
                    role: Role::Admin,
                });
                for action in actions {
                    tenants
                        .execute_with_metadata(&id, command(action), metadata.clone())
                        .await
                        .expect("a tenant command");
                }
                // Events no tenant read model folds: the runners must still step over them.
                probes
                    .execute_with_metadata(
                        &format!("probe-{task}"),
                        record(1, &id),
                        metadata_for(&id).to_map(),
                    )
                    .await
                    .expect("a probe command");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a fill task");
    }
}

/// A running worker and the lines it has printed.
struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn start(url: &str, version: u32, pause_at: Option<u64>) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_projection-worker"));
        command
            .args(["--database-url", url])
            .args(["--read-model-version", &version.to_string()]);
        if let Some(position) = pause_at {
            command.args(["--pause-at", &position.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A failed assertion must not leave a runner holding locks in the database.
            .kill_on_drop(true)
            .spawn()
            .expect("the worker starts");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads lines until one satisfies `wanted`, and returns it; the worker ending first fails
    /// the test.
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&[&str]) -> bool) -> String {
        while let Some(line) = self.lines.next_line().await.expect("worker stdout") {
            let words: Vec<&str> = line.split_whitespace().collect();
            if wanted(&words) {
                return line;
            }
        }
        let status = self.child.wait().await.expect("worker status");
        panic!("the worker ended ({status}) before {what}");
    }

    /// Reads lines until every projection has printed a `kind` line; returns their positions.
    async fn wait_for_each(&mut self, kind: &str) -> HashMap<String, u64> {
        let mut seen = HashMap::new();
        while seen.len() < PROJECTIONS.len() {
            let line = self.wait_for(kind, |w| w.len() == 3 && w[0] == kind).await;
            let name = line.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.insert(name, position_of(&line));
        }
        seen
    }

    /// SIGKILL: no destructor, no rollback, no flush runs in the worker.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill the worker");
        let status = self.child.wait().await.expect("reap the worker");
        assert_eq!(status.code(), None, "the worker was not killed");
    }

    /// Lets the worker catch up to the head and checks it exits cleanly.
    async fn finish(mut self) {
        self.wait_for("it caught up", |w| w == ["done"]).await;
        let status = self.child.wait().await.expect("worker status");
        assert!(status.success(), "the worker failed: {status}");
    }
}

fn position_of(line: &str) -> u64 {
    line.rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no position in {line:?}"))
}

async fn fetch<T>(db: &Db, sql: &str) -> Vec<T>
where
    T: Send + Unpin,
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The stored position of each projection at `version` (0 when it never started).
async fn positions(db: &Db, version: u32) -> HashMap<String, u64> {
    let rows: Vec<(String, i64)> = fetch(
        db,
        &format!("SELECT name, position FROM projection_state WHERE version = {version}"),
    )
    .await;
    rows.into_iter()
        .map(|(name, position)| (name, u64::try_from(position).expect("position")))
        .collect()
}

/// The positions `applied` holds rows for, in order.
async fn applied_positions(db: &Db, version: u32) -> Vec<u64> {
    let rows: Vec<(i64,)> = fetch(
        db,
        &format!("SELECT position FROM rm_applied_v{version} ORDER BY position"),
    )
    .await;
    rows.into_iter()
        .map(|(p,)| u64::try_from(p).expect("position"))
        .collect()
}

/// After any kill: each projection's rows are exactly what its stored position covers.
async fn assert_consistent(db: &Db, head: u64, round: &str) -> HashMap<String, u64> {
    let stored = positions(db, 1).await;
    for name in PROJECTIONS {
        let position = stored.get(name).copied().unwrap_or(0);
        assert!(
            position <= head,
            "{round}: {name} at {position} beyond the head {head}"
        );
    }
    // Every position up to the stored one exactly once, nothing of an uncommitted batch.
    let applied = stored.get("applied").copied().unwrap_or(0);
    if stored.contains_key("applied") {
        assert_eq!(
            applied_positions(db, 1).await,
            (1..=applied).collect::<Vec<_>>(),
            "{round}: applied rows against its stored position"
        );
    }
    // The audit timeline keeps one row per tenant event: none may lie past its position.
    if let Some(&audit) = stored.get(AuditTimeline::NAME) {
        let beyond: Vec<(i64,)> = fetch(
            db,
            &format!(
                "SELECT position FROM {} WHERE position > {audit}",
                AuditTimeline::with_version(1).table()
            ),
        )
        .await;
        assert!(beyond.is_empty(), "{round}: audit rows past its position");
    }
    stored
}

/// One row of the timeline table, every column.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct AuditRow {
    position: i64,
    tenant_id: String,
    recorded_at: String,
    occurred_at: Option<String>,
    actor_subject: Option<String>,
    actor_email: Option<String>,
    actor_email_key: Option<String>,
    request_ip: Option<String>,
    action: String,
    aggregate_type: String,
    aggregate_id: String,
    outcome: String,
    summary: String,
    diff: String,
    search_key: String,
}

/// Every row of the audit timeline's tables at `version`, in key order.
async fn audit_contents(
    db: &Db,
    version: u32,
) -> (
    Vec<AuditRow>,
    Vec<(String, String, String)>,
    Vec<(String, String, String)>,
) {
    let table = AuditTimeline::with_version(version).table();
    (
        fetch(
            db,
            &format!(
                "SELECT position, tenant_id, recorded_at, occurred_at, actor_subject, actor_email, \
                 actor_email_key, request_ip, action, aggregate_type, aggregate_id, outcome, \
                 summary, diff, search_key FROM {table} ORDER BY position"
            ),
        )
        .await,
        fetch(
            db,
            &format!("SELECT tenant_id, slug, status FROM {table}_tenants ORDER BY tenant_id"),
        )
        .await,
        fetch(
            db,
            &format!(
                "SELECT tenant_id, member_id, email FROM {table}_members ORDER BY tenant_id, member_id"
            ),
        )
        .await,
    )
}

async fn applied_contents(db: &Db, version: u32) -> Vec<(i64, String, String, i64)> {
    fetch(
        db,
        &format!(
            "SELECT position, aggregate_type, aggregate_id, aggregate_version \
             FROM rm_applied_v{version} ORDER BY position"
        ),
    )
    .await
}

async fn a_runner_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice(
    backend: Backend,
) {
    // Given a ledger holding several batches of tenant and probe events
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    fill(&ledger, 0, TENANTS_BEFORE).await;
    let batch = APPLY_BATCH_EVENTS as u64;
    let mut head = ledger.head().await.expect("head").position;
    assert!(head > 4 * batch, "only {head} events: too few batches");

    // When the worker is killed inside the transaction of its second batch (applied stops
    // there, the other two are wherever they are)
    let pause = batch + batch / 2;
    let mut worker = Worker::start(&db.url, 1, Some(pause));
    worker
        .wait_for("it paused", |w| w == ["paused", &pause.to_string()])
        .await;
    worker.kill().await;
    // Then the half-folded batch left nothing behind
    let stored = assert_consistent(ledger.db(), head, "killed mid-batch").await;
    assert!(stored["applied"] < pause, "the open batch was committed");

    // When it is killed right after the first batch it commits (the next ones under way)
    let mut worker = Worker::start(&db.url, 1, None);
    worker
        .wait_for("a batch committed", |w| w.first() == Some(&"committed"))
        .await;
    worker.kill().await;
    let stored = assert_consistent(ledger.db(), head, "killed after a commit").await;

    // When new events arrive while it is down, and it is killed inside a later batch
    fill(&ledger, TENANTS_BEFORE, TENANTS_BEFORE + TENANTS_BETWEEN).await;
    head = ledger.head().await.expect("head").position;
    let pause = (stored["applied"] + batch - 1).min(head);
    let mut worker = Worker::start(&db.url, 1, Some(pause));
    worker
        .wait_for("it paused", |w| w == ["paused", &pause.to_string()])
        .await;
    worker.kill().await;
    let stored = assert_consistent(ledger.db(), head, "killed in a later batch").await;
    assert!(stored["applied"] < pause, "the open batch was committed");

    // When it is killed as soon as it has read where to resume, before or during its first
    // batch
    let mut worker = Worker::start(&db.url, 1, None);
    worker.wait_for_each("start").await;
    worker.kill().await;
    assert_consistent(ledger.db(), head, "killed at start").await;

    // Then a restarted worker catches up to the head, every position applied exactly once
    let mut worker = Worker::start(&db.url, 1, None);
    let caught_up = worker.wait_for_each("caught-up").await;
    for name in PROJECTIONS {
        assert_eq!(caught_up.get(name), Some(&head), "{name} reported");
    }
    worker.finish().await;
    let stored = assert_consistent(ledger.db(), head, "after the restart").await;
    for name in PROJECTIONS {
        assert_eq!(stored[name], head, "{name} caught up");
    }
    assert_eq!(
        applied_positions(ledger.db(), 1).await,
        (1..=head).collect::<Vec<_>>()
    );

    // And the read models equal the ones a clean run builds from scratch
    Worker::start(&db.url, 2, None).finish().await;
    assert_eq!(
        applied_contents(ledger.db(), 1).await,
        applied_contents(ledger.db(), 2).await,
        "applied"
    );
    let directory = TenantDirectory::with_version(1)
        .contents(ledger.db())
        .await
        .expect("directory");
    assert_eq!(
        directory,
        TenantDirectory::with_version(2)
            .contents(ledger.db())
            .await
            .expect("rebuilt directory"),
        "directory"
    );
    assert_eq!(
        directory.tenants.len(),
        TENANTS_BEFORE + TENANTS_BETWEEN,
        "every tenant in the directory"
    );
    assert_eq!(
        audit_contents(ledger.db(), 1).await,
        audit_contents(ledger.db(), 2).await,
        "audit timeline"
    );
    ledger.close().await;
}

#[tokio::test]
async fn a_runner_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice_on_sqlite(
) {
    a_runner_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn a_runner_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice_on_postgres(
) {
    a_runner_killed_mid_stream_and_restarted_loses_nothing_and_applies_nothing_twice(
        Backend::Postgres,
    )
    .await;
}
