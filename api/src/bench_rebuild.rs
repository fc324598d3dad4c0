//! `dezky bench rebuild`: how fast the tenant directory and the audit timeline are rebuilt
//! from the ledger, on a scratch database.
//!
//! Setup (not timed) writes N events of realistic tenant traffic through the real append path:
//! tenants are created with members, members are added, change roles, are suspended and
//! resumed, removed, linked to SSO and get mailboxes, settings are updated, tenants are
//! suspended, deleted and purged. Every command is decided by the Tenant aggregate's own
//! `decide` on its folded state, serialized as cqrs-es serializes it, and appended with
//! [`Ledger::append`] in large groups (the writer hashes and chains every event as usual).
//!
//! Then, per projection: the live build is built first (timed and reported, but it is the
//! first build, not the figure the issue asks for), then a rebuild is requested and a
//! [`ProjectionHost`] runs until the new build is live at the ledger's head, exactly as
//! `dezky projections rebuild` does; that end-to-end time is the measured rate. Reading alone
//! ([`Ledger::read_batch`] in runner-sized batches) is timed too, for reference.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use cqrs_es::{Aggregate, DomainEvent};
use dezky_commands::encoding::canonical_json;
use dezky_commands::store::{AppendBatch, NewEvent, MAX_GROUP_COMMIT_EVENTS};
use dezky_commands::{Ledger, LedgerOptions};
use dezky_domain::tenant::{
    decide, BillingInfoPatch, BrandingPatch, CommandContext, CreateTenant, NewMember, Principal,
    Role, SecurityPolicyPatch, Tenant, TenantAction, TenantCommand, TENANT_AGGREGATE_TYPE,
};
use dezky_domain::{Actor, EventMetadata};
use dezky_projections::audit::AuditTimeline;
use dezky_projections::builds::{builds_of, request_rebuild, BuildStatus};
use dezky_projections::host::{holder_id, ProjectionHost};
use dezky_projections::runner::{APPLY_BATCH_EVENTS, REBUILD_BATCH_EVENTS};
use dezky_projections::tenants::TenantDirectory;
use dezky_projections::{Projection, ProjectionRunner};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{mpsc, watch};

use crate::progress::{events_bar, thousands, update};
use crate::scratch::{machine_line, new_run_id, with_database, ScratchDir};
use crate::settings::Settings;

/// The target for a rebuild, end to end.
pub const TARGET_EVENTS_PER_SEC: f64 = 100_000.0;
/// How often a rebuild's progress is read back.
const PROGRESS_POLL_MS: u64 = 100;
/// Tenants receiving traffic at any moment; older ones go quiet as new ones are created, so a
/// batch of the ledger touches many tenants, as production traffic would.
const ACTIVE_TENANTS: usize = 2_000;
/// Most members a tenant is created with: a creation's events must fit one append group.
const MAX_MEMBERS_AT_CREATION: u32 = 1_000;

/// Options of `dezky bench rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Events written to the scratch ledger before the rebuilds.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Members each tenant is created with besides its first admin.
    #[arg(long, default_value_t = 5)]
    pub members: u32,
}

/// `dezky bench rebuild`.
pub async fn run(settings: &Settings, args: RebuildArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    if args.members > MAX_MEMBERS_AT_CREATION {
        bail!("--members must be at most {MAX_MEMBERS_AT_CREATION}");
    }
    println!("{} (at start)", machine_line());
    // Ctrl-C must not leave a scratch database or directory behind: the interrupt becomes an
    // error that unwinds through the same clean-up as any other failure.
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let url = settings.database_url.expose().to_owned();
    let (backend_line, report) =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            on_postgres(&url, &args, interrupted).await?
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            on_sqlite(Path::new(path.trim_start_matches("//")), &args, interrupted).await?
        } else {
            bail!("bench rebuild needs a sqlite: or postgres:// database URL")
        };
    println!("{} (at end)", machine_line());
    for line in report.summary(&backend_line) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn on_postgres(
    url: &str,
    args: &RebuildArgs,
    interrupted: impl Future<Output = ()>,
) -> anyhow::Result<(String, Report)> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?)
        .await
        .context("cannot connect to PostgreSQL")?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&admin)
        .await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&admin).await?;
    let backend_line = format!("PostgreSQL {version}, fsync {fsync}");
    println!("{backend_line}");
    let name = format!("dezky_bench_rebuild_{}", new_run_id());
    let mut created = false;
    let outcome = async {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .with_context(|| format!("cannot create scratch database {name}"))?;
        created = true;
        println!("scratch database {name}");
        bench(with_database(url, &name)?, args).await
    };
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    // Dropped whatever happened; FORCE ends connections an aborted run left open.
    if created {
        if let Err(error) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await
        {
            eprintln!("warning: could not drop scratch database {name}: {error}");
        }
    }
    admin.close().await;
    Ok((backend_line, outcome?))
}

async fn on_sqlite(
    path: &Path,
    args: &RebuildArgs,
    interrupted: impl Future<Output = ()>,
) -> anyhow::Result<(String, Report)> {
    // The scratch file goes beside the configured database: same disk, same fsync cost.
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = ScratchDir::create(parent, ".dezky-bench-rebuild")?;
    let backend_line = "SQLite (WAL, synchronous FULL)".to_owned();
    println!("{backend_line}; scratch directory {}", dir.0.display());
    let url = format!("sqlite:{}", dir.0.join("ledger.db").display());
    let outcome = tokio::select! {
        outcome = bench(url, args) => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    drop(dir);
    Ok((backend_line, outcome?))
}

/// One timed pass over the ledger.
struct Timed {
    events: u64,
    elapsed: Duration,
}

impl Timed {
    fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let events = self.events as f64;
        events / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Every figure of one run.
struct Report {
    events: u64,
    reading: Timed,
    /// Per projection: the first build, then the rebuild beside it.
    projections: Vec<(&'static str, Timed, Timed)>,
}

impl Report {
    fn summary(&self, backend_line: &str) -> Vec<String> {
        let mut lines = vec![format!(
            "read only ({backend_line}): {} events in {:.1} s, {} events/s",
            thousands(self.reading.events),
            self.reading.elapsed.as_secs_f64(),
            thousands(self.reading.rate() as u64)
        )];
        for (name, first, rebuild) in &self.projections {
            let ratio = rebuild.rate() / TARGET_EVENTS_PER_SEC;
            lines.push(format!(
                "summary rebuild {name} ({backend_line}, {} events): {} events in {:.1} s, \
                 {} events/s end to end, {ratio:.2}× the target of {} events/s ({}); \
                 first build {} events/s",
                thousands(self.events),
                thousands(rebuild.events),
                rebuild.elapsed.as_secs_f64(),
                thousands(rebuild.rate() as u64),
                thousands(TARGET_EVENTS_PER_SEC as u64),
                if ratio >= 1.0 { "met" } else { "MISSED" },
                thousands(first.rate() as u64),
            ));
        }
        lines
    }
}

async fn bench(url: String, args: &RebuildArgs) -> anyhow::Result<Report> {
    let ledger = Ledger::open(&LedgerOptions::new(url)).await?;
    let outcome = measure(&ledger, args).await;
    ledger.close().await;
    outcome
}

async fn measure(ledger: &Ledger, args: &RebuildArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let counts = seed(ledger, args).await?;
    let head = ledger.head().await?.position;
    let mut mix: Vec<(String, u64)> = counts.into_iter().collect();
    mix.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mix: Vec<String> = mix
        .iter()
        .map(|(t, n)| format!("{t} {}", thousands(*n)))
        .collect();
    println!(
        "wrote {} events in {:.1} s (not measured): {}",
        thousands(head),
        started.elapsed().as_secs_f64(),
        mix.join(", ")
    );

    let reading = read_all(ledger, head).await?;
    println!(
        "read only: {} events/s ({} events per read_batch)",
        thousands(reading.rate() as u64),
        APPLY_BATCH_EVENTS
    );
    let mut projections = Vec::new();
    let (first, rebuild) = rebuild_projection(ledger, head, TenantDirectory::with_version).await?;
    projections.push((TenantDirectory::NAME, first, rebuild));
    let (first, rebuild) = rebuild_projection(ledger, head, AuditTimeline::with_version).await?;
    projections.push((AuditTimeline::NAME, first, rebuild));
    Ok(Report {
        events: head,
        reading,
        projections,
    })
}

/// Reads the whole ledger as a runner does, folding nothing.
async fn read_all(ledger: &Ledger, head: u64) -> anyhow::Result<Timed> {
    let bar = events_bar("reading");
    let started = Instant::now();
    let mut position = 0;
    let mut events = 0u64;
    loop {
        let batch = ledger
            .read_batch(position, u64::MAX, APPLY_BATCH_EVENTS)
            .await?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        events += batch.len() as u64;
        update(&bar, position, head);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok(Timed { events, elapsed })
}

/// Builds the projection's first build, then times a rebuild of it beside the live build
/// until the new build is live at `head`.
async fn rebuild_projection<P: Projection>(
    ledger: &Ledger,
    head: u64,
    make: fn(u32) -> P,
) -> anyhow::Result<(Timed, Timed)> {
    let probe = make(0);
    let name = probe.name();
    let schema_version = probe.schema_version();

    let bar = events_bar("first build");
    let started = Instant::now();
    // Folded like a rebuild (large batches): this build catches up from position 0 too.
    let runner = ProjectionRunner::new(ledger.clone(), make(1))
        .await?
        .with_batch_events(REBUILD_BATCH_EVENTS);
    loop {
        let folded = runner.step().await?;
        update(&bar, *runner.position().borrow(), head);
        if folded == 0 {
            break;
        }
    }
    let first = Timed {
        events: *runner.position().borrow(),
        elapsed: started.elapsed(),
    };
    bar.finish_and_clear();
    println!(
        "{name}: first build {} events/s",
        thousands(first.rate() as u64)
    );

    let bar = events_bar("rebuilding");
    let started = Instant::now();
    let requested = request_rebuild(ledger.db(), name, schema_version, false).await?;
    let (stop, shutdown) = watch::channel(false);
    let host = tokio::spawn(ProjectionHost::new(ledger.clone(), holder_id(), make).run(shutdown));
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(PROGRESS_POLL_MS)).await;
        let builds = builds_of(ledger.db(), name).await?;
        let Some(build) = builds.iter().find(|b| b.build == requested.build) else {
            break Err(anyhow::anyhow!(
                "build {} of {name} vanished",
                requested.build
            ));
        };
        update(&bar, build.position, head);
        match build.status {
            BuildStatus::Live if build.position >= head => break Ok(build.position),
            BuildStatus::Live | BuildStatus::Building => {}
            BuildStatus::Retired | BuildStatus::Dropped => {
                break Err(anyhow::anyhow!(
                    "build {} of {name} was abandoned",
                    requested.build
                ))
            }
        }
        if host.is_finished() {
            break Err(anyhow::anyhow!("the projection host stopped"));
        }
    };
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let _ = stop.send(true);
    let _ = host.await;
    let position = outcome?;
    let rebuild = Timed {
        events: position.saturating_sub(requested.position),
        elapsed,
    };
    println!(
        "{name}: rebuilt beside the live build at {} events/s",
        thousands(rebuild.rate() as u64)
    );
    Ok((first, rebuild))
}

// ---------------------------------------------------------------------------------------------
// Traffic.
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (SplitMix64): the same traffic on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// One tenant's folded state as the generator drives it.
struct SimTenant {
    id: String,
    state: Tenant,
    version: u64,
    /// Every member id ever added (removed ones too: commands about them are refused by
    /// `decide` and skipped, as a real client's stale request would be).
    members: Vec<String>,
}

fn context(now: &str) -> CommandContext {
    CommandContext {
        principal: Principal {
            subject: "bench-operator".into(),
            issuer: None,
            email: Some("operator@dezky.local".into()),
            platform_admin: true,
            partner_id: None,
        },
        now: now.to_owned(),
    }
}

fn new_member(tenant: &str, n: usize) -> NewMember {
    NewMember {
        member_id: format!("{tenant}-m{n}"),
        email: format!("user{n}@{tenant}.example.eu"),
        display_name: format!("User {n}"),
    }
}

/// A command picked by weight from a realistic mix; `decide` refuses what does not apply.
fn pick_action(rng: &mut Rng, tenant: &SimTenant) -> TenantAction {
    let picked = tenant.members[rng.below(tenant.members.len())].clone();
    let member = || picked.clone();
    let roll = rng.below(100);
    match roll {
        0..=21 => TenantAction::AddMember {
            member: new_member(&tenant.id, tenant.members.len()),
            role: if rng.below(5) == 0 {
                Role::Admin
            } else {
                Role::Member
            },
            placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
        },
        22..=33 => TenantAction::ChangeMemberRole {
            member_id: member(),
            role: if rng.below(2) == 0 {
                Role::Admin
            } else {
                Role::Member
            },
        },
        34..=41 => TenantAction::SuspendMember {
            member_id: member(),
        },
        42..=49 => TenantAction::ResumeMember {
            member_id: member(),
        },
        50..=55 => TenantAction::ForceLogout {
            member_id: member(),
        },
        56..=60 => TenantAction::ResetPassword {
            member_id: member(),
        },
        61..=66 => TenantAction::LinkMemberSubject {
            member_id: member(),
            subject: format!("sso-{}", rng.next() % 1_000_000_000),
            issuer: Some("https://idp.bench/".into()),
        },
        67..=71 => TenantAction::RecordMailboxCreated {
            member_id: member(),
        },
        72..=75 => TenantAction::RemoveMember {
            member_id: member(),
        },
        76..=80 => TenantAction::UpdateBillingInfo(BillingInfoPatch {
            company: Some(format!("Company {} GmbH", rng.below(1_000))),
            country: Some(["DE", "AT", "FR", "NL"][rng.below(4)].into()),
            ..BillingInfoPatch::default()
        }),
        81..=84 => TenantAction::UpdateBranding(BrandingPatch {
            product_name: Some(format!("Workspace {}", rng.below(1_000))),
            accent_colour: Some(format!("#{:06x}", rng.next() & 0xff_ffff)),
            email_templates: Default::default(),
        }),
        85..=88 => TenantAction::UpdateSecurityPolicy(SecurityPolicyPatch {
            session_idle_minutes: Some(15 + u32::try_from(rng.below(100)).unwrap_or(0)),
            ..SecurityPolicyPatch::default()
        }),
        89..=92 => TenantAction::Suspend,
        93..=96 => TenantAction::Resume,
        97 => TenantAction::TransferOwnership {
            member_id: member(),
        },
        98 => TenantAction::SoftDelete,
        _ => TenantAction::Purge,
    }
}

/// Decides `action` on `tenant`; on success folds the events into its state and returns them
/// as the ledger stores them.
fn run_command(
    tenant: &mut SimTenant,
    action: TenantAction,
    now: &str,
    counts: &mut HashMap<String, u64>,
) -> anyhow::Result<Vec<NewEvent>> {
    let events = match decide(&tenant.state, TenantCommand::new(context(now), action)) {
        Ok(events) => events,
        Err(_) => return Ok(Vec::new()),
    };
    let metadata = EventMetadata {
        actor: Some(Actor {
            subject: "bench-operator".into(),
            email: Some("operator@dezky.local".into()),
        }),
        tenant_id: Some(tenant.id.clone()),
        request_ip: Some("203.0.113.7".into()),
        correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        causation_id: None,
        occurred_at: Some(now.to_owned()),
    };
    let metadata = canonical_json(&serde_json::to_value(metadata.to_map())?)?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        tenant.version += 1;
        *counts.entry(event.event_type()).or_default() += 1;
        out.push(NewEvent {
            aggregate_type: TENANT_AGGREGATE_TYPE.to_owned(),
            aggregate_id: tenant.id.clone(),
            aggregate_version: tenant.version,
            event_type: event.event_type(),
            event_version: event.event_version(),
            tenant_id: Some(tenant.id.clone()),
            metadata: metadata.clone(),
            payload: canonical_json(&serde_json::to_value(&event)?)?,
        });
        tenant.state.apply(event);
    }
    Ok(out)
}

/// Writes at least `args.events` events of tenant traffic; returns how many of each type.
async fn seed(ledger: &Ledger, args: &RebuildArgs) -> anyhow::Result<HashMap<String, u64>> {
    // Appends run on their own task, in order, while the next group is generated.
    let (groups, mut receiver) = mpsc::channel::<AppendBatch>(4);
    let writer = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            while let Some(batch) = receiver.recv().await {
                ledger.append(batch).await?;
            }
            anyhow::Ok(())
        })
    };
    let bar = events_bar("writing");
    let now = "2026-11-28T10:00:00Z";
    let mut rng = Rng(42);
    let mut counts = HashMap::new();
    let mut active: Vec<SimTenant> = Vec::new();
    let mut created = 0usize;
    let mut written = 0u64;
    let mut pending: Vec<NewEvent> = Vec::new();
    let group = MAX_GROUP_COMMIT_EVENTS - 64;
    while written + (pending.len() as u64) < args.events {
        let create = active.len() < ACTIVE_TENANTS / 10 || rng.below(100) < 4;
        let events = if create {
            created += 1;
            let id = format!("bench-{created}");
            let mut tenant = SimTenant {
                id: id.clone(),
                state: Tenant::default(),
                version: 0,
                members: vec![format!("{id}-admin")],
            };
            let create = TenantAction::Create(CreateTenant {
                tenant_id: id.clone(),
                organization_name: format!("Bench {created} GmbH"),
                slug: format!("bench-{created}"),
                plan: ["standard", "pro", "enterprise"][rng.below(3)].into(),
                seats: 10 + u32::try_from(rng.below(90)).unwrap_or(0),
                first_admin: NewMember {
                    member_id: format!("{id}-admin"),
                    email: format!("admin@{id}.example.eu"),
                    display_name: "Admin".into(),
                },
                partner_id: (rng.below(3) == 0).then(|| format!("partner-{}", rng.below(20))),
            });
            let mut events = run_command(&mut tenant, create, now, &mut counts)?;
            events.extend(run_command(
                &mut tenant,
                TenantAction::Provision,
                now,
                &mut counts,
            )?);
            for _ in 0..args.members {
                let add = TenantAction::AddMember {
                    member: new_member(&id, tenant.members.len()),
                    role: Role::Member,
                    placement: dezky_domain::tenant::AddressPlacement::OwnDomain,
                };
                let added = run_command(&mut tenant, add, now, &mut counts)?;
                if !added.is_empty() {
                    tenant
                        .members
                        .push(format!("{id}-m{}", tenant.members.len()));
                }
                events.extend(added);
            }
            if active.len() >= ACTIVE_TENANTS {
                // The oldest tenant goes quiet.
                active.remove(0);
            }
            active.push(tenant);
            events
        } else {
            let index = rng.below(active.len());
            let tenant = &mut active[index];
            let action = pick_action(&mut rng, tenant);
            let adds = matches!(action, TenantAction::AddMember { .. });
            let events = run_command(tenant, action, now, &mut counts)?;
            if adds && !events.is_empty() {
                tenant
                    .members
                    .push(format!("{}-m{}", tenant.id, tenant.members.len()));
            }
            events
        };
        if pending.len() + events.len() > MAX_GROUP_COMMIT_EVENTS || pending.len() >= group {
            written += pending.len() as u64;
            update(&bar, written, args.events);
            let batch = AppendBatch {
                events: std::mem::take(&mut pending),
                snapshot: None,
            };
            if groups.send(batch).await.is_err() {
                break;
            }
        }
        pending.extend(events);
    }
    if !pending.is_empty() {
        let batch = AppendBatch {
            events: pending,
            snapshot: None,
        };
        let _ = groups.send(batch).await;
    }
    drop(groups);
    writer.await.context("the append task panicked")??;
    bar.finish_and_clear();
    Ok(counts)
}
