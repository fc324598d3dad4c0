//! `dezky serve`: the long-running process. Start-up reads like a table of contents:
//! telemetry (in `main`) → settings → stores → processors → server, then graceful shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use dezky_commands::audit::{run_checkpointer, CheckpointSchedule};
use dezky_commands::Ledger;
use tokio::sync::watch;

use crate::dev::{DevKey, DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_PATH};
use crate::graphql::booking::BookingService;
use crate::graphql::{build_schema_with_booking, routes, ApiContext, TokenCheck};
use crate::metrics::Metrics;
use crate::settings::Settings;
use dezky_adapters::oidc::{OidcConfig, OidcVerifier};

/// Path where the ledger's trusted public keys are published for auditors.
pub const LEDGER_KEYS_PATH: &str = "/.well-known/dezky/ledger-keys";
/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE_SECS: u64 = 20;

/// Options of `dezky serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DEZKY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Sign a checkpoint at least this often while the log grows.
    #[arg(long, env = "DEZKY_CHECKPOINT_INTERVAL_SECS", default_value_t = 60)]
    pub checkpoint_interval_secs: u64,
    /// Sign a checkpoint after this many new events.
    #[arg(long, env = "DEZKY_CHECKPOINT_EVERY_EVENTS", default_value_t = 10_000)]
    pub checkpoint_every_events: u64,
    /// Development mode: accept tokens from `dezky dev token` (a local key); refused together
    /// with a configured OIDC issuer.
    #[arg(long)]
    pub dev: bool,
    /// The OIDC provider's issuer (Authentik: `https://auth.example.eu/application/o/<app>/`).
    #[arg(long, env = "DEZKY_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The audience access tokens must carry (the API's client id at the provider).
    #[arg(long, env = "DEZKY_OIDC_AUDIENCE", default_value = "dezky")]
    pub oidc_audience: String,
    /// The provider's JWKS URL, when discovery should not be used.
    #[arg(long, env = "DEZKY_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// The group claim value that makes a user a platform admin.
    #[arg(
        long,
        env = "DEZKY_PLATFORM_ADMIN_GROUP",
        default_value = "dezky-platform-admins"
    )]
    pub platform_admin_group: String,
    /// The claim naming the partner a partner-staff user works for.
    #[arg(long, env = "DEZKY_PARTNER_CLAIM", default_value = "dezky_partner_id")]
    pub partner_claim: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed, as comma-separated addresses or
    /// CIDR ranges (`10.0.0.0/8,fd00::/8`). Empty: the TCP peer is the client.
    #[arg(long, env = "DEZKY_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::client::TrustedProxies,
    /// Limits and policies of the HTTP edge.
    #[command(flatten)]
    pub edge: crate::edge::EdgeArgs,
}

/// Read models more than this many events behind the ledger make the instance not ready.
pub const READY_MAX_LAG_EVENTS: u64 = 1_000;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The ledger.
    pub ledger: Ledger,
    /// The trusted public keys, one per line (what `dezky keys public` prints).
    pub ledger_keys: Arc<str>,
    /// Prometheus registry and gauges.
    pub metrics: Metrics,
    /// Positions of the read models this instance serves, by name.
    pub read_models: Vec<(&'static str, watch::Receiver<u64>)>,
}

/// The HTTP routes (GraphQL joins them when it is wired).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(LEDGER_KEYS_PATH, get(ledger_keys))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store answers and the read models have caught up with the ledger.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.ledger.head().await {
        Ok(head) => {
            let lags: serde_json::Map<String, serde_json::Value> = state
                .read_models
                .iter()
                .map(|(name, position)| {
                    let lag = head.position.saturating_sub(*position.borrow());
                    ((*name).to_owned(), lag.into())
                })
                .collect();
            let ready = lags
                .values()
                .all(|lag| lag.as_u64().is_some_and(|l| l < READY_MAX_LAG_EVENTS));
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                axum::Json(serde_json::json!({
                    "ready": ready,
                    "ledger_position": head.position,
                    "read_model_lag": lags,
                })),
            )
                .into_response()
        }
        Err(error) => {
            // The cause goes to the log; the probe only needs to know it is not ready.
            tracing::warn!(%error, "readiness: the ledger store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"ready": false, "reason": "store unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(head) = state.ledger.head().await {
        state.metrics.set_ledger_position(head.position);
        for (name, position) in &state.read_models {
            state
                .metrics
                .set_read_model_lag(name, head.position.saturating_sub(*position.borrow()));
        }
    }
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn ledger_keys(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.ledger_keys.to_string(),
    )
        .into_response()
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// A server whose stores and processors are running and whose port is bound, not yet
/// answering: what `dezky serve` serves and `dezky bench graphql` drives in-process.
pub struct Bound {
    /// The address it listens on (the real port when `--listen` asked for port 0).
    pub address: SocketAddr,
    /// Whether it accepts development tokens.
    pub dev: bool,
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    ledger: Ledger,
    stop: watch::Sender<bool>,
    processors: Vec<tokio::task::JoinHandle<()>>,
}

/// Settings → stores → processors → router, bound to `args.listen`. In development mode
/// (`args.dev`) the server accepts tokens signed by the key at `dev_key_path` (created on first
/// use).
pub async fn bind(
    settings: &Settings,
    args: &ServeArgs,
    dev_key_path: &std::path::Path,
) -> anyhow::Result<Bound> {
    // Settings.
    match (&args.oidc_issuer, args.dev) {
        (Some(_), true) => anyhow::bail!(
            "--dev cannot be combined with a configured OIDC issuer (DEZKY_OIDC_ISSUER)"
        ),
        (None, false) => anyhow::bail!(
            "no identity provider configured: set DEZKY_OIDC_ISSUER (and DEZKY_OIDC_AUDIENCE), or try it locally with --dev"
        ),
        _ => {}
    }
    let key = settings.signing_key()?;
    let client_setup = settings.client_setup()?;
    let health = Arc::new(settings.health.checker()?);
    let trusted = settings.trusted_keys()?;
    let dev_key = if args.dev {
        Some(DevKey::load_or_create(dev_key_path)?)
    } else {
        None
    };
    // Stores.
    let ledger = Ledger::open(&settings.ledger_options()).await?;
    // Processors.
    let (stop, shutdown) = watch::channel(false);
    let started = crate::processors::start(&ledger, &shutdown).await?;
    let positions = started.positions();
    let read_models = started.read_models;
    let mut processors = started.handles;
    let sagas = crate::sagas::start(
        &ledger,
        settings.mail_server()?,
        settings.dns_verifier()?,
        &dezky_commands::saga::SagaConfig::new(settings.platform_domain.clone()),
        dezky_projections::host::holder_id(),
        &shutdown,
    )
    .await?;
    processors.extend(sagas.handles);
    let booking = BookingService::configured(
        ledger.clone(),
        settings.calendar_server()?,
        Arc::new(settings.booking_mailer()?),
        settings.booking_settings(),
        settings.booking_link_key()?,
        settings.booking_manage_url.clone(),
    );
    processors.push(tokio::spawn(crate::booking::run(
        booking.flow(),
        dezky_projections::host::holder_id(),
        shutdown.clone(),
    )));
    processors.extend([tokio::spawn(run_checkpointer(
        ledger.clone(),
        key,
        settings.origin.clone(),
        CheckpointSchedule {
            interval: Duration::from_secs(args.checkpoint_interval_secs.max(1)),
            every_events: args.checkpoint_every_events.max(1),
        },
        shutdown.clone(),
    ))]);
    // Server.
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let oidc = match (&args.oidc_issuer, &dev_key) {
        (Some(issuer), _) => {
            let mut config = OidcConfig::new(issuer.clone(), args.oidc_audience.clone());
            config.jwks_url = args.oidc_jwks_url.clone();
            config
        }
        (None, _) => {
            let mut config = OidcConfig::new(DEV_ISSUER, DEV_AUDIENCE);
            config.jwks_url = Some(format!("http://{address}{DEV_JWKS_PATH}"));
            config
        }
    };
    let verifier = OidcVerifier::new(oidc, reqwest::Client::new())?;
    let tokens = TokenCheck::new(
        verifier,
        args.platform_admin_group.clone(),
        args.partner_claim.clone(),
    );
    let mut context = ApiContext::new(ledger.clone(), positions);
    context.platform_domain = settings.platform_domain.clone();
    context.trusted_proxies = args.trusted_proxies.clone();
    context.client_setup = client_setup;
    context.health = health;
    let setup = crate::client_setup::routes(context.clone(), tokens.clone());
    let schema = build_schema_with_booking(context, booking);
    let state = AppState {
        ledger: ledger.clone(),
        ledger_keys: Arc::from(trusted.lines().join("\n") + "\n"),
        metrics: Metrics::new()?,
        read_models,
    };
    let dev = dev_key.is_some();
    let endpoint = args.edge.graphql_endpoint(dev);
    let mut app = router(state)
        .merge(routes(schema, tokens, endpoint))
        .merge(setup);
    if let Some(dev_key) = dev_key {
        let jwks = dev_key.jwks();
        app = app.route(DEV_JWKS_PATH, get(move || async move { axum::Json(jwks) }));
    }
    Ok(Bound {
        address,
        dev,
        listener,
        app,
        header_read_timeout: args.edge.header_read_timeout(),
        ledger,
        stop,
        processors,
    })
}

impl Bound {
    /// Answers requests until `until` completes, then shuts down gracefully: in-flight
    /// requests finish, the processors finish their current step (bounded), the pool closes.
    pub async fn serve(
        self,
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = self.stop;
        crate::edge::serve(
            self.listener,
            self.app,
            self.header_read_timeout,
            async move {
                until.await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            },
        )
        .await;
        // Let the processors finish their current step, but never hang the shutdown.
        let processors = self.processors;
        let _ = tokio::time::timeout(Duration::from_secs(SHUTDOWN_GRACE_SECS), async {
            for processor in processors {
                let _ = processor.await;
            }
        })
        .await;
        self.ledger.close().await;
        Ok(())
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let bound = bind(settings, &args, &DevKey::path(&settings.data_dir())).await?;
    let address = bound.address;
    if bound.dev {
        println!("development mode: get a token with `dezky dev token --role platform-admin`");
    }
    tracing::info!(%address, "dezky serving");
    println!("dezky listening on http://{address} (GraphQL explorer at http://{address}/graphql)");
    bound.serve(shutdown_signal()).await?;
    println!("dezky stopped");
    Ok(ExitCode::SUCCESS)
}
