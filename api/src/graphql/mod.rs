//! The GraphQL API at `/graphql`: schema, request context and the axum handlers.

pub mod authz;
pub mod booking;
pub mod client_setup;
pub mod domains;
pub mod error;
pub mod guard;
pub mod health;
pub mod http;
pub mod mail;
pub mod operations;
pub mod schema;
pub mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dezky_adapters::oidc::OidcVerifier;
use dezky_commands::app::registry::framework;
use dezky_commands::Ledger;
use dezky_domain::domains::Domain;
use dezky_domain::tenant::{PlatformFlag, SlugClaim, Tenant};
use dezky_domain::{Actor, EventMetadata};
use tokio::sync::watch;

use authz::{Authentication, Viewer};
use schema::{Mutation, Query};

/// The schema type.
pub type DezkySchema = Schema<Query, Mutation, EmptySubscription>;
/// cqrs-es over the ledger for one aggregate (the registry's, with its upcasters).
pub type Cqrs<A> = dezky_commands::app::registry::Cqrs<A>;

pub use guard::{MAX_QUERY_COMPLEXITY, MAX_QUERY_DEPTH};

/// The source of timestamps for command contexts (the domain has no clock).
#[derive(Clone, Default)]
pub struct Clock;

impl Clock {
    /// Now, as the ledger formats times.
    pub fn now(&self) -> String {
        dezky_commands::encoding::format_timestamp(chrono::Utc::now())
    }
}

/// The source of new aggregate and member ids.
#[derive(Clone, Default)]
pub struct Ids;

impl Ids {
    /// A new random id.
    pub fn next(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// What resolvers reach.
#[derive(Clone)]
pub struct ApiContext {
    /// The ledger (and through it the read-model database).
    pub ledger: Ledger,
    /// Tenant commands.
    pub tenants: Arc<Cqrs<Tenant>>,
    /// Slug claims.
    pub slugs: Arc<Cqrs<SlugClaim>>,
    /// The platform flag.
    pub platform_flag: Arc<Cqrs<PlatformFlag>>,
    /// Mail domains (one aggregate per canonical name).
    pub domains: Arc<Cqrs<Domain>>,
    /// Time for command contexts.
    pub clock: Clock,
    /// New ids.
    pub ids: Ids,
    /// Positions of the read models the API serves, for read-your-writes.
    pub read_models: Vec<watch::Receiver<u64>>,
    /// The platform's own mail domain (see [`crate::settings::Settings::platform_domain`]).
    pub platform_domain: String,
    /// The proxies whose `X-Forwarded-For` is believed (`DEZKY_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::client::TrustedProxies,
    /// The unauthenticated calls' per-client budgets (one set per server).
    pub public_limits: Arc<crate::client::PublicLimits>,
    /// Where mail clients are pointed (`DEZKY_MAIL_HOST`, `DEZKY_DAV_URL`).
    pub client_setup: crate::client_setup::ClientSetupSettings,
    /// The infrastructure probes (`DEZKY_HEALTH_*`), one checker per server so its cache is
    /// shared by every request.
    pub health: Arc<dezky_adapters::health::HealthChecker>,
}

impl ApiContext {
    /// Wires the command side over `ledger`; `read_models` are the runners' positions.
    pub fn new(ledger: Ledger, read_models: Vec<watch::Receiver<u64>>) -> Self {
        Self {
            tenants: Arc::new(framework(&ledger)),
            slugs: Arc::new(framework(&ledger)),
            platform_flag: Arc::new(framework(&ledger)),
            domains: Arc::new(framework(&ledger)),
            ledger,
            clock: Clock,
            ids: Ids,
            read_models,
            platform_domain: crate::settings::DEFAULT_PLATFORM_DOMAIN.to_owned(),
            trusted_proxies: crate::client::TrustedProxies::default(),
            public_limits: Arc::default(),
            client_setup: crate::client_setup::ClientSetupSettings::default(),
            health: Arc::new(dezky_adapters::health::HealthChecker::unconfigured()),
        }
    }

    /// Metadata for a command by `viewer` on `tenant_id`.
    pub fn metadata(&self, viewer: &Viewer, tenant_id: &str) -> HashMap<String, String> {
        EventMetadata {
            actor: Some(Actor {
                subject: viewer.subject.clone(),
                email: viewer.email.clone(),
            }),
            tenant_id: Some(tenant_id.to_owned()),
            correlation_id: Some(self.ids.next()),
            occurred_at: Some(self.clock.now()),
            ..EventMetadata::default()
        }
        .to_map()
    }

    /// Waits (bounded) until every read model has folded what the ledger holds now, so a
    /// mutation's answer and the next query show its effect.
    pub async fn read_your_writes(&self, timeout: Duration) {
        let target = *self.ledger.subscribe().borrow();
        let wait = async {
            for receiver in &self.read_models {
                let mut receiver = receiver.clone();
                let _ = receiver.wait_for(|position| *position >= target).await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            tracing::warn!(target, "read models lag behind a mutation's write");
        }
    }
}

/// The schema with its limits, not yet finished (so a test can add an extension of its own):
/// the query guard refuses costly documents before the library validates them, the library's
/// own limits stay behind it as a second line (its depth limit at introspection's, which the
/// guard keeps to introspection), and every error the library produces gets its code.
pub fn schema_builder(context: ApiContext) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(context)
        .extension(guard::QueryGuard::default())
        .extension(error::TypedErrors)
        .limit_depth(guard::MAX_INTROSPECTION_DEPTH)
        .limit_complexity(MAX_QUERY_COMPLEXITY)
        .limit_recursive_depth(guard::MAX_SELECTION_NESTING)
        .limit_directives(guard::MAX_QUERY_DIRECTIVES_PER_SELECTION)
}

/// Builds the schema with its limits.
pub fn build_schema(context: ApiContext) -> DezkySchema {
    schema_builder(context).finish()
}

/// Builds the schema with its limits and the booking flow (with its calendar server).
pub fn build_schema_with_booking(
    context: ApiContext,
    booking: booking::BookingService,
) -> DezkySchema {
    schema_builder(context).data(booking).finish()
}

/// The SDL, as committed in `api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}

/// How the API checks access tokens.
#[derive(Clone)]
pub struct TokenCheck {
    verifier: Arc<OidcVerifier>,
    platform_admin_group: String,
    partner_claim: String,
}

impl TokenCheck {
    /// Checks tokens with `verifier`; `platform_admin_group` is the group claim value of
    /// operators, `partner_claim` the claim naming a partner staff member's partner.
    pub fn new(
        verifier: OidcVerifier,
        platform_admin_group: String,
        partner_claim: String,
    ) -> Self {
        Self {
            verifier: Arc::new(verifier),
            platform_admin_group,
            partner_claim,
        }
    }

    /// Reads the request's bearer token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Authentication {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Authentication::Anonymous;
        };
        let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Authentication::Invalid(
                "the Authorization header is not a Bearer token".into(),
            );
        };
        match self.verifier.verify(token.trim()).await {
            Ok(claims) => Authentication::Viewer(Viewer {
                // An address the provider has not verified identifies nobody (ADR 6).
                email: claims.email.filter(|_| claims.email_verified),
                issuer: claims.issuer,
                platform_admin: claims.groups.contains(&self.platform_admin_group),
                partner_id: claims
                    .raw
                    .get(&self.partner_claim)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                subject: claims.subject,
            }),
            Err(error) => Authentication::Invalid(format!("invalid access token: {error}")),
        }
    }
}

/// What the `/graphql` handlers reach.
#[derive(Clone)]
pub struct GraphqlState {
    /// The schema.
    pub schema: DezkySchema,
    /// How access tokens are checked.
    pub tokens: TokenCheck,
    /// The endpoint's limits and introspection policy.
    pub endpoint: http::GraphqlEndpoint,
}

/// POST /graphql: reads the request (refusing what is not one, typed), authenticates it,
/// decides whether it may introspect, and executes it.
pub async fn graphql_handler(
    axum::extract::State(state): axum::extract::State<GraphqlState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = match http::read_request(&headers, body, state.endpoint.body_read_timeout).await {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let authentication = state.tokens.authenticate(&headers).await;
    let mut request = request.data(crate::client::RequestOrigin::of(&extensions, &headers));
    request.introspection_mode = state.endpoint.introspection_mode(&authentication);
    let response = state.schema.execute(request.data(authentication)).await;
    http::graphql_response(response)
}

/// The `/graphql` routes (POST queries behind the endpoint's limits; GET the explorer and its
/// assets) for a schema, token check and endpoint policy.
pub fn routes(
    schema: DezkySchema,
    tokens: TokenCheck,
    endpoint: http::GraphqlEndpoint,
) -> axum::Router {
    let queries = endpoint.bound(axum::routing::post(graphql_handler));
    axum::Router::new()
        .route("/graphql", queries)
        .with_state(GraphqlState {
            schema,
            tokens,
            endpoint,
        })
        .merge(crate::explorer::routes())
}
