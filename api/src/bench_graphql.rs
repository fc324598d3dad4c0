//! `dezky bench graphql`: the GraphQL API under an open-loop load, on a scratch database.
//!
//! The real server (`serve::bind`, the router `dezky serve --dev` builds) runs in-process on a
//! loopback port over a scratch database; a load generator on its own thread and runtime
//! seeds tenants through `createTenant`/`addMember` and then sends requests at a fixed
//! arrival rate. Requests leave on schedule whether or not earlier ones have answered, and
//! each latency is measured from the request's *scheduled* send time, so a server that
//! stalls is charged for every request that should have been sent meanwhile (no coordinated
//! omission).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use dezky_commands::keys::SigningKey;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{oneshot, Semaphore};

use crate::dev::DevKey;
use crate::progress::thousands;
use crate::scratch::{machine_line, new_run_id, with_database, ScratchDir};
use crate::serve::{bind, ServeArgs};
use crate::settings::{Secret, Settings};

/// The target: p99 under this many milliseconds.
pub const TARGET_P99_MS: f64 = 10.0;
/// The group claim of platform admins that the bench's server is configured with.
const PLATFORM_ADMIN_GROUP: &str = "dezky-platform-admins";
/// Longest latency the histograms hold; a slower answer is recorded as this.
const HISTOGRAM_MAX_MICROS: u64 = 120_000_000;
/// A request unanswered after this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent seeding clients.
const SEED_CLIENTS: usize = 8;

/// Options of `dezky bench graphql`.
#[derive(Debug, Clone, Args)]
pub struct GraphqlArgs {
    /// Tenants seeded (through `createTenant`) before the load; queries pick among them.
    #[arg(long, default_value_t = 100)]
    pub tenants: u32,
    /// Members added (through `addMember`) to each seeded tenant besides its owner.
    #[arg(long, default_value_t = 4)]
    pub members: u32,
    /// Tenant-detail queries per second; several comma-separated rates are run in turn,
    /// stopping at the first whose p99 misses the target.
    #[arg(long = "rate", value_delimiter = ',', default_value = "1000")]
    pub rates: Vec<u32>,
    /// Seconds at each query rate.
    #[arg(long, default_value_t = 20)]
    pub seconds: u32,
    /// Seconds of unrecorded queries at the first `--rate` before the measured runs
    /// (connections, prepared statements and caches warm up).
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u32,
    /// `createTenant` rates to step through, per second, comma-separated; the steps stop at
    /// the first rate whose p99 misses the target. Given without a value, no mutations run.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10,25,50,100,200")]
    pub mutation_rates: Vec<u32>,
    /// Seconds at each `createTenant` rate.
    #[arg(long, default_value_t = 10)]
    pub mutation_seconds: u32,
    /// Most requests in flight at once (bounds sockets when the server falls behind); a
    /// request waiting for a slot is still timed from its scheduled send time.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
}

/// What one open-loop run measured.
pub struct Outcome {
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests answered without error.
    pub ok: u64,
    /// Requests that failed (transport, HTTP status, GraphQL errors, unexpected data).
    pub errors: u64,
    /// One failure message, to show why.
    pub error_sample: Option<String>,
    /// Latency from scheduled send to a complete answer, in microseconds, of every request
    /// (failures included: a fast error must not flatter the percentiles, a slow one must not
    /// hide).
    pub latency: Histogram<u64>,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// The latest any request left after its scheduled time (the generator's own lag).
    pub max_send_lag: Duration,
}

impl Outcome {
    /// Answers per second over the run.
    pub fn achieved_rate(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e3
    }

    /// The largest latency in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1e3
    }

    /// Whether the run met the target: no errors and p99 under it.
    pub fn met(&self) -> bool {
        self.errors == 0 && self.ok > 0 && self.ms(0.99) < TARGET_P99_MS
    }

    fn describe(&self, name: &str, rate: u32, seconds: u32) -> String {
        let sample = self
            .error_sample
            .as_ref()
            .map_or_else(String::new, |e| format!(" (first error: {e})"));
        format!(
            "{name} at {rate}/s for {seconds} s: {} sent, {} ok, {} errors{sample}; achieved {:.1}/s; \
             latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; generator lag max {:.2} ms; \
             p99 target < {TARGET_P99_MS} ms: {} ({:.2}× the target)",
            thousands(self.scheduled),
            thousands(self.ok),
            thousands(self.errors),
            self.achieved_rate(),
            self.ms(0.50),
            self.ms(0.90),
            self.ms(0.99),
            self.max_ms(),
            self.max_send_lag.as_secs_f64() * 1e3,
            if self.met() { "met" } else { "MISSED" },
            self.ms(0.99) / TARGET_P99_MS,
        )
    }
}

/// `dezky bench graphql`.
pub async fn run(settings: &Settings, args: GraphqlArgs) -> anyhow::Result<ExitCode> {
    if args.tenants == 0 || args.seconds == 0 || args.max_in_flight == 0 {
        bail!("--tenants, --seconds and --max-in-flight must be at least 1");
    }
    if args.rates.is_empty() || args.rates.contains(&0) {
        bail!("--rate needs one or more rates, each at least 1");
    }
    if args.mutation_rates.contains(&0) || args.mutation_seconds == 0 {
        bail!("--mutation-rates and --mutation-seconds must be at least 1");
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
            on_postgres(settings, &url, &args, interrupted).await?
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            on_sqlite(
                settings,
                Path::new(path.trim_start_matches("//")),
                &args,
                interrupted,
            )
            .await?
        } else {
            bail!("bench graphql needs a sqlite: or postgres:// database URL")
        };
    println!("{} (at end)", machine_line());
    println!("{}", report.summary(&backend_line));
    Ok(ExitCode::SUCCESS)
}

async fn on_postgres(
    settings: &Settings,
    url: &str,
    args: &GraphqlArgs,
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
    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&admin)
        .await?;
    let backend_line =
        format!("PostgreSQL {version}, fsync {fsync}, synchronous_commit {synchronous_commit}");
    println!("{backend_line}");
    let name = format!("dezky_bench_graphql_{}", new_run_id());
    let keys = ScratchDir::create(&std::env::temp_dir(), ".dezky-bench-graphql")?;
    let mut created = false;
    let outcome = async {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .with_context(|| format!("cannot create scratch database {name}"))?;
        created = true;
        println!("scratch database {name}");
        bench(settings, with_database(url, &name)?, &keys.0, args).await
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
    settings: &Settings,
    path: &Path,
    args: &GraphqlArgs,
    interrupted: impl Future<Output = ()>,
) -> anyhow::Result<(String, Report)> {
    // The scratch file goes beside the configured database: same disk, same fsync cost.
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = ScratchDir::create(parent, ".dezky-bench-graphql")?;
    let backend_line = "SQLite (WAL, synchronous FULL)".to_owned();
    println!("{backend_line}; scratch directory {}", dir.0.display());
    let url = format!("sqlite:{}", dir.0.join("ledger.db").display());
    let outcome = tokio::select! {
        outcome = bench(settings, url, &dir.0, args) => outcome,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    drop(dir);
    Ok((backend_line, outcome?))
}

/// Every figure of one bench run.
pub struct Report {
    /// Each measured tenant-detail query step: its rate and outcome.
    pub queries: Vec<(u32, Outcome)>,
    /// Each `createTenant` step: its rate and outcome.
    pub mutations: Vec<(u32, Outcome)>,
}

/// What a series of rate steps says about the target, in one clause.
fn steps_summary(name: &str, steps: &[(u32, Outcome)]) -> String {
    let best = steps.iter().take_while(|(_, outcome)| outcome.met()).last();
    let missed = steps.iter().find(|(_, outcome)| !outcome.met());
    let best = best.map(|(rate, outcome)| {
        format!(
            "{name} p99 < {TARGET_P99_MS} ms up to {rate}/s (p99 {:.2} ms)",
            outcome.ms(0.99)
        )
    });
    let missed = missed.map(|(rate, outcome)| {
        format!(
            "at {rate}/s p99 {:.2} ms, {} errors: MISSED",
            outcome.ms(0.99),
            outcome.errors
        )
    });
    match (best, missed) {
        (None, None) => format!("{name} not measured"),
        (Some(best), None) => format!("{best}: met at every rate tried"),
        (Some(best), Some(missed)) => format!("{best}; {missed}"),
        (None, Some(missed)) => format!("{name} {missed}"),
    }
}

impl Report {
    fn summary(&self, backend_line: &str) -> String {
        format!(
            "summary ({backend_line}, {} cores): {}; {}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            steps_summary("tenant query", &self.queries),
            steps_summary("createTenant", &self.mutations),
        )
    }
}

/// Starts the server on the scratch database, runs the load on its own thread, stops the
/// server.
async fn bench(
    settings: &Settings,
    url: String,
    scratch: &Path,
    args: &GraphqlArgs,
) -> anyhow::Result<Report> {
    // The scratch database gets its own checkpoint key and development key, so the bench
    // neither needs nor touches the deployment's.
    let key_path = scratch.join("ledger.key");
    SigningKey::load_or_create(&key_path, &settings.origin)?;
    let mut scratch_settings = settings.clone();
    scratch_settings.database_url = Secret::from_str(&url)?;
    scratch_settings.signing_key = Some(key_path);
    scratch_settings.trusted_keys = None;
    let serve_args = ServeArgs {
        listen: "127.0.0.1:0".parse()?,
        checkpoint_interval_secs: 60,
        checkpoint_every_events: 10_000,
        dev: true,
        oidc_issuer: None,
        oidc_audience: crate::dev::DEV_AUDIENCE.to_owned(),
        oidc_jwks_url: None,
        platform_admin_group: PLATFORM_ADMIN_GROUP.to_owned(),
        partner_claim: "dezky_partner_id".to_owned(),
        trusted_proxies: Default::default(),
        edge: crate::edge::EdgeArgs::default(),
    };
    let dev_key_path = DevKey::path(scratch);
    let bound = bind(&scratch_settings, &serve_args, &dev_key_path).await?;
    let endpoint = format!("http://{}/graphql", bound.address);
    println!("server on {endpoint}");
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "bench-platform-admin".into());
    claims.insert("email".into(), "operator@dezky.local".into());
    claims.insert("groups".into(), json!([PLATFORM_ADMIN_GROUP]));
    let token = DevKey::load_or_create(&dev_key_path)?.token(claims)?;

    // Dropping this future (Ctrl-C) stops the generator at its next request.
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let cancelled = cancel.0.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    // The generator gets its own thread and runtime: the server's tasks never delay its
    // schedule inside one scheduler, and the operating system shares the cores between the
    // two as it would between two processes.
    let load_args = args.clone();
    let generator = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the load generator's runtime")?
            .block_on(generate(endpoint, token, load_args, cancelled))
    });
    let report = tokio::task::spawn_blocking(move || generator.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the load generator panicked"));
    let _ = stop.send(());
    server.await??;
    drop(cancel);
    report?
}

/// Raises its flag when dropped, so work on another thread stops when its owner is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An HTTP client for the bench: bearer token, JSON, errors as text.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    endpoint: Arc<str>,
    token: Arc<str>,
}

impl Client {
    /// Posts one GraphQL request; returns `data` or why it failed.
    async fn post(&self, query: &'static str, variables: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&*self.endpoint)
            .bearer_auth(&*self.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("HTTP {status}, body: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        if let Some(errors) = body.get("errors") {
            return Err(format!("GraphQL errors: {errors}"));
        }
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }
}

const CREATE_TENANT: &str =
    "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id slug memberCount } }";
const ADD_MEMBER: &str =
    "mutation($input: AddMemberInput!) { addMember(input: $input) { id memberCount } }";
const TENANT_DETAIL: &str = "query($id: ID!) { tenant(id: $id) { id slug organization status plan seats \
    memberCount createdAt updatedAt members { id email displayName role isOwner status hasMailbox } } }";

fn create_input(slug: &str) -> Value {
    json!({"input": {
        "organization": format!("{slug} GmbH"),
        "slug": slug,
        "plan": "standard",
        "seats": 25,
        "firstAdmin": {"email": format!("owner@{slug}.example"), "displayName": "Owner"},
    }})
}

/// Creates a tenant and returns its id.
async fn create_tenant(client: &Client, slug: &str) -> Result<String, String> {
    let data = client.post(CREATE_TENANT, create_input(slug)).await?;
    data["createTenant"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("createTenant answered without an id: {data}"))
}

/// The client side: seed, warm up, measure queries, step through mutation rates.
async fn generate(
    endpoint: String,
    token: String,
    args: GraphqlArgs,
    cancelled: Arc<AtomicBool>,
) -> anyhow::Result<Report> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()?,
        endpoint: endpoint.into(),
        token: token.into(),
    };
    let run = new_run_id();

    // Seed through the API, a few clients at once.
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    let mut seeders = tokio::task::JoinSet::new();
    for _ in 0..SEED_CLIENTS {
        let (client, next, run, args) = (client.clone(), next.clone(), run.clone(), args.clone());
        let cancelled = cancelled.clone();
        seeders.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if cancelled.load(Ordering::Relaxed) {
                    return Err("interrupted".to_owned());
                }
                if n >= args.tenants {
                    return Ok::<_, String>(ids);
                }
                let slug = format!("seed-{run}-{n}");
                let id = create_tenant(&client, &slug).await?;
                for m in 0..args.members {
                    let data = client
                        .post(
                            ADD_MEMBER,
                            json!({"input": {"tenantId": id, "email": format!("member{m}@{slug}.example"),
                                "displayName": format!("Member {m}"), "role": if m == 0 { "ADMIN" } else { "MEMBER" }}}),
                        )
                        .await?;
                    if data["addMember"]["memberCount"].as_u64() != Some(u64::from(m) + 2) {
                        return Err(format!("addMember answered {data}"));
                    }
                }
                ids.push(id);
            }
        });
    }
    let mut tenant_ids = Vec::new();
    while let Some(joined) = seeders.join_next().await {
        tenant_ids.extend(joined?.map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?);
    }
    println!(
        "seeded {} tenants with {} members each ({} mutations) in {:.1} s",
        tenant_ids.len(),
        args.members + 1,
        thousands(u64::from(args.tenants) * u64::from(args.members + 1)),
        started.elapsed().as_secs_f64()
    );
    let tenant_ids: Arc<[String]> = tenant_ids.into();
    let expected_members = u64::from(args.members) + 1;
    let query = |i: u64| {
        let client = client.clone();
        let id = tenant_ids[(i % tenant_ids.len() as u64) as usize].clone();
        async move {
            let data = client.post(TENANT_DETAIL, json!({"id": id})).await?;
            let tenant = &data["tenant"];
            let members = tenant["members"].as_array().map_or(0, Vec::len) as u64;
            if tenant["id"].as_str() != Some(id.as_str()) || members != expected_members {
                return Err(format!("unexpected tenant detail: {data}"));
            }
            Ok(())
        }
    };

    if args.warmup_seconds > 0 {
        let rate = args.rates[0];
        let warm = open_loop(
            rate,
            args.warmup_seconds,
            args.max_in_flight,
            &cancelled,
            query,
        )
        .await?;
        println!(
            "{}",
            warm.describe("warm-up (not judged)", rate, args.warmup_seconds)
        );
    }
    let mut queries = Vec::new();
    for &rate in &args.rates {
        let outcome = open_loop(rate, args.seconds, args.max_in_flight, &cancelled, query).await?;
        println!("{}", outcome.describe("tenant query", rate, args.seconds));
        let met = outcome.met();
        queries.push((rate, outcome));
        if !met {
            // Higher rates only queue deeper behind a server that is already late.
            break;
        }
    }

    let mut mutations = Vec::new();
    for (step, &rate) in args.mutation_rates.iter().enumerate() {
        let create = |i: u64| {
            let client = client.clone();
            let slug = format!("load-{run}-{step}-{i}");
            async move { create_tenant(&client, &slug).await.map(drop) }
        };
        let outcome = open_loop(
            rate,
            args.mutation_seconds,
            args.max_in_flight,
            &cancelled,
            create,
        )
        .await?;
        println!(
            "{}",
            outcome.describe("createTenant", rate, args.mutation_seconds)
        );
        let met = outcome.met();
        mutations.push((rate, outcome));
        if !met {
            // Higher rates only queue deeper behind a server that is already late.
            break;
        }
    }
    Ok(Report { queries, mutations })
}

/// What the requests of one run share while it is under way.
struct Tally {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    error_sample: Option<String>,
    last_answer: Instant,
}

/// Sends `rate` requests a second for `seconds`, request `i` at `i / rate` seconds after the
/// start whatever happened to the earlier ones, and times each from that scheduled moment.
async fn open_loop<F, Fut>(
    rate: u32,
    seconds: u32,
    max_in_flight: usize,
    cancelled: &AtomicBool,
    request: F,
) -> anyhow::Result<Outcome>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let total = u64::from(rate) * u64::from(seconds);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now();
    let tally = Arc::new(Mutex::new(Tally {
        latency: Histogram::new_with_bounds(1, HISTOGRAM_MAX_MICROS, 3)?,
        ok: 0,
        errors: 0,
        error_sample: None,
        last_answer: start,
    }));
    let mut max_send_lag = Duration::ZERO;
    // The generator runs on a current-thread runtime: tasks stay on it (no Send needed).
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut in_flight = tokio::task::JoinSet::new();
            for i in 0..total {
                if cancelled.load(Ordering::Relaxed) {
                    bail!("interrupted");
                }
                let scheduled = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                // Waiting for a slot delays the send, never the clock the latency runs on.
                let slot = slots.clone().acquire_owned().await?;
                max_send_lag = max_send_lag.max(scheduled.elapsed());
                let future = request(i);
                let tally = tally.clone();
                in_flight.spawn_local(async move {
                    let result = future.await;
                    let now = Instant::now();
                    drop(slot);
                    let micros = u64::try_from(now.duration_since(scheduled).as_micros())
                        .unwrap_or(u64::MAX);
                    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                    tally.latency.saturating_record(micros.max(1));
                    tally.last_answer = tally.last_answer.max(now);
                    match result {
                        Ok(()) => tally.ok += 1,
                        Err(error) => {
                            tally.errors += 1;
                            tally.error_sample.get_or_insert(error);
                        }
                    }
                });
                // Reap finished requests as we go so the set does not grow with the run.
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("a request outlived its run"))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(Outcome {
        scheduled: total,
        ok: tally.ok,
        errors: tally.errors,
        error_sample: tally.error_sample,
        elapsed: tally.last_answer.duration_since(start),
        max_send_lag,
        latency: tally.latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server_keeps_credentials_and_parameters() {
        let url = "postgres://u:p@h:5433/app?sslmode=disable&dbname=x";
        assert_eq!(
            with_database(url, "scratch").ok().as_deref(),
            Some("postgres://u:p@h:5433/scratch?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "s").ok().as_deref(),
            Some("postgres://h/s")
        );
    }

    #[tokio::test]
    async fn the_open_loop_sends_every_request_and_times_failures_too() {
        let outcome = open_loop(200, 1, 8, &AtomicBool::new(false), |i| async move {
            if i % 10 == 0 {
                Err(format!("request {i} refused"))
            } else {
                Ok(())
            }
        })
        .await
        .expect("run");
        assert_eq!(outcome.scheduled, 200);
        assert_eq!(outcome.ok, 180);
        assert_eq!(outcome.errors, 20);
        assert_eq!(outcome.latency.len(), 200);
        assert_eq!(outcome.error_sample.as_deref(), Some("request 0 refused"));
        assert!(!outcome.met());
    }
}
