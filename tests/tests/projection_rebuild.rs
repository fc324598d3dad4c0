//! Rebuilding projections with no downtime, on SQLite and PostgreSQL: queries during a rebuild
//! never fail nor see a half-built model; a rebuild killed (SIGKILL) mid-batch resumes where it
//! stopped and ends identical to a clean build; of two instances exactly one folds each
//! projection, and the other takes over when the holder dies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dezky_commands::Ledger;
use dezky_projections::audit::{audit_timeline, AuditFilter, AuditTimeline};
use dezky_projections::builds::{
    builds_of, leases, request_rebuild, Build, BuildStatus, LEASE_TTL_MS,
};
use dezky_projections::host::ProjectionHost;
use dezky_projections::tenants::{
    list_tenants, tenant_detail, PageRequest, TenantDirectory, TenantFilter, TenantSort,
    TenantSortField,
};
use dezky_projections::ProjectionRunner;
use dezky_tests::{probe_cqrs, record, seed_tenant, tenant_cqrs, Backend, TestDb};
use tokio::sync::watch;

/// A generous bound on waits for something that must happen (a failure, not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn live_build(ledger: &Ledger, name: &str) -> Option<Build> {
    builds_of(ledger.db(), name)
        .await
        .expect("builds")
        .into_iter()
        .find(|b| b.status == BuildStatus::Live)
}

/// Appends `events` probe events in commands of 64 (the probe's limit): events the tenant
/// read models read past without folding, so a rebuild has many batches to go through.
async fn bulk(ledger: &Ledger, aggregate: &str, events: usize) {
    let probes = probe_cqrs(ledger);
    for chunk in 0..events.div_ceil(64) {
        let n = (events - chunk * 64).min(64);
        probes
            .execute(aggregate, record(n, "bulk"))
            .await
            .expect("bulk events");
    }
}

fn page(first: u32) -> PageRequest {
    PageRequest { first, after: None }
}

fn by_slug() -> TenantSort {
    TenantSort {
        field: TenantSortField::Slug,
        descending: false,
    }
}

/// Every query a portal makes, checked for completeness: all tenants listed, every member
/// counted, every tenant's own history on its timeline.
async fn check_complete(ledger: &Ledger, tenants: usize, members_at_least: usize) {
    let db = ledger.db();
    let list = list_tenants(db, &TenantFilter::default(), by_slug(), &page(100))
        .await
        .expect("directory query");
    assert_eq!(list.total_count as usize, tenants, "a tenant missing");
    for row in list.items.iter().take(5) {
        let detail = tenant_detail(db, &row.id)
            .await
            .expect("detail query")
            .expect("tenant present");
        assert_eq!(detail.members.len() as u32, detail.tenant.member_count);
        assert!(detail.members.len() > members_at_least, "members missing");
        let timeline = audit_timeline(db, &row.id, &AuditFilter::default(), &page(5))
            .await
            .expect("timeline query");
        assert!(
            timeline.total_count as usize >= 2 + members_at_least,
            "history missing: {} entries for {}",
            timeline.total_count,
            row.id
        );
    }
}

async fn queries_during_a_rebuild_never_fail_or_see_a_half_built_model(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let tenants = tenant_cqrs(&ledger);
    const TENANTS: usize = 60;
    const MEMBERS: usize = 4;
    for n in 0..TENANTS {
        seed_tenant(&tenants, n, MEMBERS).await.expect("seed");
    }
    // Enough unrelated events that the rebuild takes many batches.
    bulk(&ledger, "probe-bulk", 4_000).await;
    let (stop, shutdown) = watch::channel(false);
    let processors = dezky_api::processors::start(&ledger, &shutdown)
        .await
        .expect("processors");
    let head = ledger.head().await.expect("head").position;
    for (_, position) in &processors.read_models {
        let mut position = position.clone();
        position.wait_for(|p| *p >= head).await.expect("caught up");
    }
    let old_directory = live_build(&ledger, TenantDirectory::NAME)
        .await
        .expect("live");
    let old_audit = live_build(&ledger, AuditTimeline::NAME)
        .await
        .expect("live");

    // Readers hammer every query while the rebuild runs and writers keep adding members.
    let done = Arc::new(AtomicBool::new(false));
    let during_build = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (ledger, done, during_build) = (ledger.clone(), done.clone(), during_build.clone());
        readers.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let building = builds_of(ledger.db(), TenantDirectory::NAME)
                    .await
                    .expect("builds")
                    .iter()
                    .any(|b| b.status == BuildStatus::Building);
                check_complete(&ledger, TENANTS, MEMBERS).await;
                if building {
                    during_build.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let writer = {
        let (ledger, done) = (ledger.clone(), done.clone());
        tokio::spawn(async move {
            let tenants = tenant_cqrs(&ledger);
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let tenant = format!("tenant-{}", n % TENANTS);
                let add = dezky_domain::tenant::TenantAction::AddMember {
                    member: dezky_domain::tenant::NewMember {
                        member_id: format!("late-{n}"),
                        email: format!("late-{n}@seed.eu"),
                        display_name: "Late".into(),
                    },
                    role: dezky_domain::tenant::Role::Member,
                    placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
                };
                tenants
                    .execute(
                        &tenant,
                        dezky_domain::tenant::TenantCommand::new(
                            dezky_tests::operator_context(),
                            add,
                        ),
                    )
                    .await
                    .expect("late member");
                n += 1;
            }
            n
        })
    };
    for (name, schema_version) in [
        (TenantDirectory::NAME, TenantDirectory::VERSION),
        (AuditTimeline::NAME, AuditTimeline::VERSION),
    ] {
        request_rebuild(ledger.db(), name, schema_version, false)
            .await
            .expect("rebuild requested");
    }
    for (name, old) in [
        (TenantDirectory::NAME, &old_directory),
        (AuditTimeline::NAME, &old_audit),
    ] {
        wait_until("the rebuilt build is live", || {
            let ledger = ledger.clone();
            async move {
                live_build(&ledger, name)
                    .await
                    .is_some_and(|b| b.build > old.build)
            }
        })
        .await;
    }
    done.store(true, Ordering::Relaxed);
    let late = writer.await.expect("writer");
    for reader in readers {
        reader
            .await
            .expect("a query failed or saw a half-built model");
    }
    assert!(
        during_build.load(Ordering::Relaxed) > 0,
        "no query ran while the shadow build was building"
    );

    // The switched build equals a clean build of the whole ledger.
    let head = ledger.head().await.expect("head").position;
    for (_, position) in &processors.read_models {
        let mut position = position.clone();
        position.wait_for(|p| *p >= head).await.expect("caught up");
    }
    let clean = ProjectionRunner::new(ledger.clone(), TenantDirectory::with_version(99))
        .await
        .expect("clean runner");
    clean.catch_up().await.expect("clean build");
    let live = live_build(&ledger, TenantDirectory::NAME)
        .await
        .expect("live");
    assert_eq!(
        TenantDirectory::with_version(live.build)
            .contents(ledger.db())
            .await
            .expect("live contents"),
        TenantDirectory::with_version(99)
            .contents(ledger.db())
            .await
            .expect("clean contents"),
        "after {late} concurrent member additions"
    );
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_during_a_rebuild_never_fail_or_see_a_half_built_model_on_sqlite() {
    queries_during_a_rebuild_never_fail_or_see_a_half_built_model(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_during_a_rebuild_never_fail_or_see_a_half_built_model_on_postgres() {
    queries_during_a_rebuild_never_fail_or_see_a_half_built_model(Backend::Postgres).await;
}

async fn a_rebuild_killed_mid_batch_resumes_and_ends_identical_to_a_clean_one(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let tenants = tenant_cqrs(&ledger);
    // Tenants before, between and after two bulk stretches, so the kill lands after a
    // committed batch with tenant rows in it and resuming has tenant events left to fold.
    for n in 0..20 {
        seed_tenant(&tenants, n, 2).await.expect("seed");
    }
    bulk(&ledger, "probe-a", 1_200).await;
    for n in 20..40 {
        seed_tenant(&tenants, n, 2).await.expect("seed");
    }
    bulk(&ledger, "probe-b", 1_200).await;
    for n in 40..60 {
        seed_tenant(&tenants, n, 2).await.expect("seed");
    }
    let head = ledger.head().await.expect("head").position;
    // Build 1 is live and caught up; build 2 is requested.
    let live = ProjectionRunner::new(ledger.clone(), TenantDirectory::with_version(1))
        .await
        .expect("live runner");
    live.catch_up().await.expect("live build");
    // Requested at the code's schema version, as an operator's `projections rebuild` does.
    let requested = request_rebuild(
        ledger.db(),
        TenantDirectory::NAME,
        TenantDirectory::VERSION,
        false,
    )
    .await
    .expect("rebuild requested");
    assert_eq!(requested.build, 2);
    let pause_at = head - 300;

    let mut worker = Command::new(env!("CARGO_BIN_EXE_rebuild-worker"))
        .args(["--database-url", &db.url, "--pause-build", "2"])
        .args(["--pause-at", &pause_at.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker starts");
    let stdout = worker.stdout.take().expect("stdout");
    let paused = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("paused "))
    })
    .await
    .expect("reader");
    assert!(paused, "the worker ended before reaching the pause point");
    worker.kill().expect("SIGKILL");
    let _ = worker.wait();

    let interrupted = builds_of(ledger.db(), TenantDirectory::NAME)
        .await
        .expect("builds")
        .into_iter()
        .find(|b| b.build == 2)
        .expect("build 2");
    assert_eq!(interrupted.status, BuildStatus::Building);
    assert!(
        interrupted.position > 0 && interrupted.position < pause_at,
        "the committed batches stay, the half-folded one is gone: {}",
        interrupted.position
    );

    // Another instance takes the lease once the dead worker's expires, resumes build 2 from
    // its stored position and switches.
    let host = ProjectionHost::new(
        ledger.clone(),
        "resumer".into(),
        TenantDirectory::with_version,
    );
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(host.run(shutdown));
    wait_until("build 2 is live", || {
        let ledger = ledger.clone();
        async move {
            live_build(&ledger, TenantDirectory::NAME)
                .await
                .is_some_and(|b| b.build == 2)
        }
    })
    .await;
    let _ = stop.send(true);
    task.await.expect("host");

    let clean = ProjectionRunner::new(ledger.clone(), TenantDirectory::with_version(99))
        .await
        .expect("clean runner");
    clean.catch_up().await.expect("clean build");
    let resumed = TenantDirectory::with_version(2)
        .contents(ledger.db())
        .await
        .expect("resumed");
    assert_eq!(resumed.tenants.len(), 60);
    assert_eq!(
        resumed,
        TenantDirectory::with_version(99)
            .contents(ledger.db())
            .await
            .expect("clean")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_mid_batch_resumes_and_ends_identical_to_a_clean_one_on_sqlite() {
    a_rebuild_killed_mid_batch_resumes_and_ends_identical_to_a_clean_one(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_mid_batch_resumes_and_ends_identical_to_a_clean_one_on_postgres() {
    a_rebuild_killed_mid_batch_resumes_and_ends_identical_to_a_clean_one(Backend::Postgres).await;
}

async fn one_instance_runs_each_projection_and_another_takes_over_when_it_dies(backend: Backend) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let tenants = tenant_cqrs(&ledger);
    seed_tenant(&tenants, 0, 1).await.expect("seed");
    let a = ProjectionHost::new(
        ledger.clone(),
        "instance-a".into(),
        TenantDirectory::with_version,
    );
    let b = ProjectionHost::new(
        ledger.clone(),
        "instance-b".into(),
        TenantDirectory::with_version,
    );
    let (state_a, state_b) = (a.state(), b.state());
    let (position_a, position_b) = (a.position(), b.position());
    let (stop, shutdown) = watch::channel(false);
    let task_a = tokio::spawn(a.run(shutdown.clone()));
    wait_until("instance a holds the lease", || {
        let state = state_a.clone();
        async move { state.borrow().holder }
    })
    .await;
    let task_b = tokio::spawn(b.run(shutdown.clone()));
    // Both serve the same position; only a folds.
    for n in 1..5 {
        seed_tenant(&tenants, n, 1).await.expect("seed");
        let head = ledger.head().await.expect("head").position;
        for position in [&position_a, &position_b] {
            let mut position = position.clone();
            tokio::time::timeout(PATIENCE, position.wait_for(|p| *p >= head))
                .await
                .expect("in time")
                .expect("position");
        }
        assert!(state_a.borrow().holder && !state_b.borrow().holder);
    }
    // a dies without giving its lease back; b takes over once the lease expires.
    task_a.abort();
    let _ = task_a.await;
    let lease = leases(ledger.db()).await.expect("leases");
    let (_, holder, expires_at) = lease
        .iter()
        .find(|(name, _, _)| name == TenantDirectory::NAME)
        .expect("a's lease is still there");
    assert_eq!(holder, "instance-a");
    wait_until("instance b holds the lease", || {
        let state = state_b.clone();
        async move { state.borrow().holder }
    })
    .await;
    assert!(
        chrono::Utc::now().timestamp_millis() >= *expires_at,
        "b took the lease before a's expired"
    );
    assert!(*expires_at - chrono::Utc::now().timestamp_millis() <= LEASE_TTL_MS as i64);
    seed_tenant(&tenants, 9, 1).await.expect("seed");
    let head = ledger.head().await.expect("head").position;
    let mut position = position_b.clone();
    tokio::time::timeout(PATIENCE, position.wait_for(|p| *p >= head))
        .await
        .expect("in time")
        .expect("position");
    let directory = TenantDirectory::new()
        .contents(ledger.db())
        .await
        .expect("contents");
    assert_eq!(directory.tenants.len(), 6);
    let _ = stop.send(true);
    task_b.await.expect("b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_runs_each_projection_and_another_takes_over_when_it_dies_on_sqlite() {
    one_instance_runs_each_projection_and_another_takes_over_when_it_dies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_runs_each_projection_and_another_takes_over_when_it_dies_on_postgres() {
    one_instance_runs_each_projection_and_another_takes_over_when_it_dies(Backend::Postgres).await;
}

/// The tenant directory as a later release would declare it: same fold, next schema version.
struct NextVersion(TenantDirectory);

impl dezky_projections::Projection for NextVersion {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn build(&self) -> u32 {
        self.0.build()
    }
    fn schema_version(&self) -> u32 {
        TenantDirectory::VERSION + 1
    }
    fn schema(&self, dialect: dezky_projections::runner::Dialect) -> Vec<String> {
        self.0.schema(dialect)
    }
    fn indexes(&self, dialect: dezky_projections::runner::Dialect) -> Vec<String> {
        self.0.indexes(dialect)
    }
    fn tables(&self) -> Vec<String> {
        dezky_projections::Projection::tables(&self.0)
    }
    async fn apply(
        &self,
        tx: &mut dezky_projections::ReadTx<'_>,
        events: &[dezky_commands::encoding::EventRecord],
    ) -> Result<(), dezky_projections::ProjectionError> {
        self.0.apply(tx, events).await
    }
}

async fn a_release_with_a_new_schema_version_rebuilds_beside_the_old_build_and_switches(
    backend: Backend,
) {
    use dezky_projections::Projection as _;
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let tenants = tenant_cqrs(&ledger);
    for n in 0..10 {
        seed_tenant(&tenants, n, 2).await.expect("seed");
    }
    // The running release: schema version 1, build 1, caught up.
    let old = ProjectionRunner::new(ledger.clone(), TenantDirectory::with_version(1))
        .await
        .expect("old runner");
    old.catch_up().await.expect("old build");
    // The new release starts: its host sees the live build's schema version differ from its
    // own and builds beside it while build 1 keeps answering.
    let host = ProjectionHost::new(ledger.clone(), "new-release".into(), |build| {
        NextVersion(TenantDirectory::with_version(build))
    });
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(host.run(shutdown));
    wait_until("the new schema version's build is live", || {
        let ledger = ledger.clone();
        async move {
            let answered =
                list_tenants(ledger.db(), &TenantFilter::default(), by_slug(), &page(50))
                    .await
                    .expect("queries keep answering");
            assert_eq!(answered.total_count, 10, "never a half-built directory");
            live_build(&ledger, TenantDirectory::NAME)
                .await
                .is_some_and(|b| b.schema_version == TenantDirectory::VERSION + 1)
        }
    })
    .await;
    let _ = stop.send(true);
    task.await.expect("host");
    let builds = builds_of(ledger.db(), TenantDirectory::NAME)
        .await
        .expect("builds");
    let summary: Vec<(u32, u32, BuildStatus)> = builds
        .iter()
        .map(|b| (b.build, b.schema_version, b.status))
        .collect();
    assert_eq!(
        summary,
        [
            (1, TenantDirectory::VERSION, BuildStatus::Retired),
            (2, TenantDirectory::VERSION + 1, BuildStatus::Live)
        ]
    );
    assert_eq!(
        TenantDirectory::with_version(2)
            .contents(ledger.db())
            .await
            .expect("new"),
        TenantDirectory::with_version(1)
            .contents(ledger.db())
            .await
            .expect("old"),
    );
    assert_eq!(
        NextVersion(TenantDirectory::new()).schema_version(),
        TenantDirectory::VERSION + 1
    );
    // The new build was folded without its secondary indexes and got them before it switched.
    assert_eq!(
        index_names(&ledger, "rm_tenants_v2").await,
        [
            "rm_tenants_v2_by_created",
            "rm_tenants_v2_by_organization",
            "rm_tenants_v2_by_partner",
            "rm_tenants_v2_by_seats",
            "rm_tenants_v2_by_slug",
        ]
    );
    assert_eq!(
        index_names(&ledger, "rm_tenants_v2_members").await,
        [
            "rm_tenants_v2_members_by_email",
            "rm_tenants_v2_members_by_subject"
        ]
    );
}

/// The secondary indexes of `table` (not those behind primary keys), by name.
async fn index_names(ledger: &Ledger, table: &str) -> Vec<String> {
    match ledger.db() {
        dezky_commands::store::Db::Sqlite(pool) => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
             AND sql IS NOT NULL ORDER BY name",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("indexes"),
        dezky_commands::store::Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = $1 \
             AND indexname NOT LIKE '%_pkey' ORDER BY indexname",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("indexes"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_a_new_schema_version_rebuilds_beside_the_old_build_and_switches_on_sqlite()
{
    a_release_with_a_new_schema_version_rebuilds_beside_the_old_build_and_switches(Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_a_new_schema_version_rebuilds_beside_the_old_build_and_switches_on_postgres(
) {
    a_release_with_a_new_schema_version_rebuilds_beside_the_old_build_and_switches(
        Backend::Postgres,
    )
    .await;
}

/// The directory's schema 2 added the members' `subject_issuer`. While a database upgraded
/// from schema 1 builds its schema-2 build, the schema-1 build keeps serving, and the new
/// code's queries must read it without the column it lacks.
async fn a_live_build_of_the_previous_schema_keeps_answering_while_its_successor_is_built(
    backend: Backend,
) {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let tenant = seed_tenant(&tenant_cqrs(&ledger), 1, 2)
        .await
        .expect("seed");
    let live = ProjectionRunner::new(ledger.clone(), TenantDirectory::new())
        .await
        .expect("runner");
    live.catch_up().await.expect("caught up");
    // Make build 1 what a schema-1 build was: no issuer column, schema version 1.
    let members = TenantDirectory::new().members_table();
    let statements = [
        format!("ALTER TABLE {members} DROP COLUMN subject_issuer"),
        "UPDATE projection_state SET schema_version = 1 WHERE name = 'tenants'".to_owned(),
    ];
    for statement in statements {
        match ledger.db() {
            dezky_commands::store::Db::Sqlite(pool) => {
                sqlx::query(&statement).execute(pool).await.expect("sql");
            }
            dezky_commands::store::Db::Postgres(pool) => {
                sqlx::query(&statement).execute(pool).await.expect("sql");
            }
        }
    }
    // A fresh pool, so no cached answer about the live build stands in for the database's.
    let reopened = db.open().await.expect("ledger again");
    let detail = dezky_projections::tenants::tenant_detail(reopened.db(), &tenant)
        .await
        .expect("the detail answers")
        .expect("the tenant");
    assert_eq!(detail.members.len(), 3);
    assert!(detail.members.iter().all(|m| m.subject_issuer.is_none()));
    let admin = dezky_domain::tenant::Principal::user("someone", "admin@seed-1.eu");
    assert_eq!(
        dezky_projections::tenants::member_role(reopened.db(), &tenant, &admin)
            .await
            .expect("the role answers"),
        Some(dezky_domain::tenant::Role::Admin)
    );
}

#[tokio::test]
async fn a_live_build_of_the_previous_schema_keeps_answering_while_its_successor_is_built_on_sqlite(
) {
    a_live_build_of_the_previous_schema_keeps_answering_while_its_successor_is_built(
        Backend::Sqlite,
    )
    .await;
}

#[tokio::test]
async fn a_live_build_of_the_previous_schema_keeps_answering_while_its_successor_is_built_on_postgres(
) {
    a_live_build_of_the_previous_schema_keeps_answering_while_its_successor_is_built(
        Backend::Postgres,
    )
    .await;
}
