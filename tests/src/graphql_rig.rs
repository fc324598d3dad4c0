//! The GraphQL API on a loopback port for the API suites, with real signed JWTs: a local
//! identity provider serves its JWKS, the server checks tokens against it exactly as in
//! production, and the full command → ledger → projection → query loop runs behind it.

use std::net::SocketAddr;
use std::sync::Arc;

use dezky_adapters::health::HealthChecker;

use dezky_adapters::oidc::{OidcConfig, OidcVerifier};
use dezky_api::client_setup::ClientSetupSettings;
use dezky_api::dev::DevKey;
use dezky_api::graphql::http::{GraphqlEndpoint, Introspection};
use dezky_api::graphql::{build_schema, routes, ApiContext, DezkySchema, TokenCheck};
use dezky_commands::Ledger;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::{Backend, TestDb};

/// The issuer the server trusts.
pub const ISSUER: &str = "https://idp.test/application/o/dezky/";
/// The audience the server expects.
pub const AUDIENCE: &str = "dezky-api";
/// The group that makes a caller a platform admin.
pub const ADMINS: &str = "dezky-platform-admins";
/// The claim naming a partner's staff.
pub const PARTNER_CLAIM: &str = "dezky_partner_id";
/// The platform domain the suites' server is configured with.
pub const APEX: &str = "dezky.eu";

/// A running API on a loopback port, with its own identity provider's JWKS.
pub struct GraphqlApi {
    /// The GraphQL endpoint.
    pub url: String,
    /// The server's ledger (to set up what no mutation does, or to read it back).
    pub ledger: Ledger,
    /// The database, dropped with the API.
    pub db: TestDb,
    /// Where it listens (for the routes beside `/graphql`: client set-up).
    pub address: SocketAddr,
    key: DevKey,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn serve_jwks(jwks: Value) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Standard claims for `subject` with `email` (verified by the provider), valid for ten
/// minutes.
pub fn claims(subject: &str, email: &str) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = Map::new();
    claims.insert("iss".into(), ISSUER.into());
    claims.insert("aud".into(), AUDIENCE.into());
    claims.insert("sub".into(), subject.into());
    claims.insert("email".into(), email.into());
    claims.insert("email_verified".into(), true.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + 600).into());
    claims
}

/// The JWS header of the identity provider's tokens.
pub fn header() -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": "dezky-dev-1"})
}

/// A response's `extensions.code` of its first error.
pub fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// Sets what a suite configures on the API's context (client set-up, health probes).
type Configure<'a> = Box<dyn FnOnce(&mut ApiContext) + 'a>;

/// Builds the schema over the API's context and ledger.
type MakeSchema<'a> = Box<dyn FnOnce(ApiContext, &Ledger) -> DezkySchema + 'a>;

impl GraphqlApi {
    /// A fresh API on `backend` with the platform domain [`APEX`].
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Box::new(|context, _| build_schema(context)), "").await
    }

    /// A fresh API whose client set-up points at `client_setup` (what `DEZKY_MAIL_HOST` and
    /// `DEZKY_DAV_URL` configure in production).
    pub async fn start_with_client_setup(
        backend: Backend,
        client_setup: ClientSetupSettings,
    ) -> Self {
        Self::start_configured(
            backend,
            Box::new(|context, _| build_schema(context)),
            "",
            Box::new(move |context| context.client_setup = client_setup),
        )
        .await
    }

    /// A fresh API whose `infrastructureHealth` reports what `health` probes.
    pub async fn start_with_health(backend: Backend, health: Arc<HealthChecker>) -> Self {
        Self::start_configured(
            backend,
            Box::new(|context, _| build_schema(context)),
            "",
            Box::new(move |context| context.health = health),
        )
        .await
    }

    /// A fresh API that believes `X-Forwarded-For` from the proxies in `trusted_proxies`
    /// (the `DEZKY_TRUSTED_PROXIES` syntax).
    pub async fn start_behind_proxies(backend: Backend, trusted_proxies: &str) -> Self {
        Self::start_with(
            backend,
            Box::new(|context, _| build_schema(context)),
            trusted_proxies,
        )
        .await
    }

    /// A fresh API whose booking flow `booking` builds over the API's ledger (its calendar
    /// server and link key).
    pub async fn start_with_booking(
        backend: Backend,
        booking: impl FnOnce(&Ledger) -> dezky_api::graphql::booking::BookingService,
    ) -> Self {
        Self::start_with(
            backend,
            Box::new(|context, ledger| {
                dezky_api::graphql::build_schema_with_booking(context, booking(ledger))
            }),
            "",
        )
        .await
    }

    /// A fresh API serving the schema `schema` builds over the API's context and ledger (a
    /// suite's own extension added to [`dezky_api::graphql::schema_builder`], say).
    pub async fn start_with_schema(
        backend: Backend,
        schema: impl FnOnce(ApiContext, &Ledger) -> DezkySchema,
    ) -> Self {
        Self::start_with(backend, Box::new(schema), "").await
    }

    async fn start_with(
        backend: Backend,
        make_schema: MakeSchema<'_>,
        trusted_proxies: &str,
    ) -> Self {
        Self::start_configured(backend, make_schema, trusted_proxies, Box::new(|_| {})).await
    }

    async fn start_configured(
        backend: Backend,
        make_schema: MakeSchema<'_>,
        trusted_proxies: &str,
        configure: Configure<'_>,
    ) -> Self {
        let db = TestDb::create(backend).await.expect("db");
        let ledger = db.open().await.expect("ledger");
        let dir = tempfile::tempdir().expect("dir");
        let key = DevKey::load_or_create(&dir.path().join("idp.key")).expect("idp key");
        let idp = serve_jwks(key.jwks()).await;
        let mut config = OidcConfig::new(ISSUER, AUDIENCE);
        config.jwks_url = Some(format!("http://{idp}/jwks"));
        let verifier = OidcVerifier::new(config, reqwest::Client::new()).expect("verifier");
        let tokens = TokenCheck::new(verifier, ADMINS.into(), PARTNER_CLAIM.into());
        let (stop, shutdown) = watch::channel(false);
        let processors = dezky_api::processors::start(&ledger, &shutdown)
            .await
            .expect("processors");
        let mut context = ApiContext::new(ledger.clone(), processors.positions());
        context.platform_domain = APEX.into();
        context.trusted_proxies = trusted_proxies.parse().expect("trusted proxies");
        configure(&mut context);
        let setup = dezky_api::client_setup::routes(context.clone(), tokens.clone());
        let schema = make_schema(context, &ledger);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        // The server `dezky serve` runs (its accept loop and the endpoint's limits), with
        // introspection for callers with a token, as in development.
        let app = routes(
            schema,
            tokens,
            GraphqlEndpoint::new(Introspection::Authenticated),
        )
        .merge(setup);
        tokio::spawn(dezky_api::edge::serve(
            listener,
            app,
            std::time::Duration::from_millis(dezky_api::edge::DEFAULT_HEADER_READ_TIMEOUT_MS),
            std::future::pending(),
        ));
        Self {
            url: format!("http://{address}/graphql"),
            ledger,
            db,
            address,
            key,
            stop,
            _dir: dir,
        }
    }

    /// Stops the projection runners: from now on the read models lag behind the ledger, as
    /// they may in production for a moment, and the API keeps answering from them.
    pub fn stop_read_models(&self) {
        let _ = self.stop.send(true);
    }

    /// The URL of `path` on the server (beside `/graphql`).
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A token the identity provider signed over `claims`.
    pub fn token(&self, claims: &Map<String, Value>) -> String {
        self.sign(&header(), claims)
    }

    /// A token the identity provider's key signed with any `header` (a wrong `kid`, say).
    pub fn sign(&self, header: &Value, claims: &Map<String, Value>) -> String {
        self.key.sign(header, claims).expect("sign")
    }

    /// An operator's token (in the platform-admin group).
    pub fn operator(&self) -> String {
        let mut c = claims("op-1", "operator@dezky.eu");
        c.insert("groups".into(), json!([ADMINS]));
        self.token(&c)
    }

    /// A token of `partner`'s staff.
    pub fn partner(&self, partner: &str) -> String {
        let mut c = claims(&format!("staff-{partner}"), &format!("staff@{partner}.eu"));
        c.insert(PARTNER_CLAIM.into(), partner.into());
        self.token(&c)
    }

    /// A person's token, known by `email`.
    pub fn user(&self, email: &str) -> String {
        self.token(&claims(&format!("sub-{email}"), email))
    }

    /// Sends `query` with `variables`, with `token` as the bearer if any; the response body.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = reqwest::Client::new()
            .post(&self.url)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("http")
            .json()
            .await
            .expect("json")
    }

    /// [`GraphqlApi::post`] with a token.
    pub async fn post_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.post(Some(token), query, variables).await
    }
}
