//! The GraphQL API over HTTP with real signed JWTs: keys served as a JWKS by a local OIDC
//! provider, the full command → ledger → projection → query loop, typed error codes, the
//! isolation matrix across tenants and partners, refused tokens, and the committed SDL.

use std::net::SocketAddr;

use dezky_adapters::oidc::{OidcConfig, OidcVerifier};
use dezky_api::dev::DevKey;
use dezky_api::graphql::{build_schema, routes, sdl, ApiContext, TokenCheck};
use dezky_projections::audit::AuditTimeline;
use dezky_projections::tenants::TenantDirectory;
use dezky_projections::ProjectionRunner;
use dezky_tests::{Backend, TestDb};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

const ISSUER: &str = "https://idp.test/application/o/dezky/";
const AUDIENCE: &str = "dezky-api";
const ADMINS: &str = "dezky-platform-admins";

/// A running API on a loopback port, with its own identity provider's JWKS.
struct Api {
    url: String,
    key: DevKey,
    _stop: watch::Sender<bool>,
    _db: TestDb,
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

async fn start(backend: Backend) -> Api {
    let db = TestDb::create(backend).await.expect("db");
    let ledger = db.open().await.expect("ledger");
    let dir = tempfile::tempdir().expect("dir");
    let key = DevKey::load_or_create(&dir.path().join("idp.key")).expect("idp key");
    let idp = serve_jwks(key.jwks()).await;
    let mut config = OidcConfig::new(ISSUER, AUDIENCE);
    config.jwks_url = Some(format!("http://{idp}/jwks"));
    let verifier = OidcVerifier::new(config, reqwest::Client::new()).expect("verifier");
    let tokens = TokenCheck::new(verifier, ADMINS.into(), "dezky_partner_id".into());
    let (stop, shutdown) = watch::channel(false);
    let directory = ProjectionRunner::new(ledger.clone(), TenantDirectory::new())
        .await
        .expect("runner");
    let audit = ProjectionRunner::new(ledger.clone(), AuditTimeline::new())
        .await
        .expect("runner");
    let positions = vec![directory.position(), audit.position()];
    tokio::spawn(directory.run(shutdown.clone()));
    tokio::spawn(audit.run(shutdown));
    let schema = build_schema(ApiContext::new(ledger, positions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, routes(schema, tokens)).await });
    Api {
        url: format!("http://{address}/graphql"),
        key,
        _stop: stop,
        _db: db,
        _dir: dir,
    }
}

fn claims(subject: &str, email: &str) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = Map::new();
    claims.insert("iss".into(), ISSUER.into());
    claims.insert("aud".into(), AUDIENCE.into());
    claims.insert("sub".into(), subject.into());
    claims.insert("email".into(), email.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + 600).into());
    claims
}

fn header() -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": "dezky-dev-1"})
}

impl Api {
    fn token(&self, claims: &Map<String, Value>) -> String {
        self.key.sign(&header(), claims).expect("sign")
    }

    fn operator(&self) -> String {
        let mut c = claims("op-1", "operator@dezky.eu");
        c.insert("groups".into(), json!([ADMINS]));
        self.token(&c)
    }

    fn partner(&self, partner: &str) -> String {
        let mut c = claims(&format!("staff-{partner}"), &format!("staff@{partner}.eu"));
        c.insert("dezky_partner_id".into(), partner.into());
        self.token(&c)
    }

    fn user(&self, email: &str) -> String {
        self.token(&claims(&format!("sub-{email}"), email))
    }

    async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
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
}

fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

const CREATE: &str = "mutation($input: CreateTenantInput!) { createTenant(input: $input) { id slug status members { id email role isOwner } } }";

async fn create(api: &Api, token: &str, slug: &str, admin: &str, partner: Option<&str>) -> Value {
    let response = api
        .post(
            Some(token),
            CREATE,
            json!({"input": {"organization": format!("{slug} GmbH"), "slug": slug, "plan": "standard",
                "seats": 5, "firstAdmin": {"email": admin, "displayName": "Admin"}, "partnerId": partner}}),
        )
        .await;
    assert_eq!(response["errors"], Value::Null, "{response}");
    response["data"]["createTenant"].clone()
}

const ADD: &str =
    "mutation($input: AddMemberInput!) { addMember(input: $input) { members { id email role } } }";

async fn add_member(api: &Api, token: &str, tenant: &str, email: &str) -> Value {
    api.post(
        Some(token),
        ADD,
        json!({"input": {"tenantId": tenant, "email": email, "displayName": "M", "role": "MEMBER"}}),
    )
    .await
}

async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(backend: Backend) {
    let api = start(backend).await;
    let tenant = create(&api, &api.operator(), "acme", "ada@acme.eu", None).await;
    let id = tenant["id"].as_str().expect("id").to_owned();
    assert_eq!(tenant["status"], "PENDING_PROVISIONING");
    let admin = api.user("ada@acme.eu");
    let added = add_member(&api, &admin, &id, "bob@acme.eu").await;
    assert_eq!(added["errors"], Value::Null, "{added}");
    let bob = added["data"]["addMember"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["email"] == "bob@acme.eu")
        .expect("bob")["id"]
        .clone();
    // Read-your-writes: the mutation's answer already shows the change.
    let promoted = api
        .post(
            Some(&admin),
            "mutation($t: ID!, $m: ID!) { changeMemberRole(tenantId: $t, memberId: $m, role: ADMIN) { members { email role } } }",
            json!({"t": id, "m": bob}),
        )
        .await;
    assert!(promoted["data"]["changeMemberRole"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["email"] == "bob@acme.eu" && m["role"] == "ADMIN"));
    let timeline = api
        .post(
            Some(&admin),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 10, action: \"MemberRoleChanged\") { totalCount nodes { action actorEmail diff } } } }",
            json!({"t": id}),
        )
        .await;
    let nodes = &timeline["data"]["tenant"]["auditTimeline"]["nodes"];
    assert_eq!(nodes[0]["actorEmail"], "ada@acme.eu");
    assert_eq!(
        nodes[0]["diff"],
        json!({"role": {"from": "member", "to": "admin"}})
    );
}

#[tokio::test]
async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs_on_sqlite() {
    a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs_on_postgres() {
    a_tenant_admin_runs_the_whole_loop_and_reads_field_level_diffs(Backend::Postgres).await;
}

/// Every read and write aimed at tenant A by someone with no standing there.
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(backend: Backend) {
    let api = start(backend).await;
    let operator = api.operator();
    let a = create(&api, &operator, "alpha", "admin@alpha.eu", Some("p-alpha")).await;
    let b = create(&api, &operator, "bravo", "admin@bravo.eu", Some("p-bravo")).await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    let a_owner = a["members"][0]["id"].clone();
    let b_id = b["id"].as_str().expect("id").to_owned();
    let b_admin = api.user("admin@bravo.eu");
    assert_eq!(
        code(&add_member(&api, &b_admin, &b_id, "member@bravo.eu").await),
        None
    );
    let outsiders = [
        ("admin of another tenant", b_admin),
        ("member of another tenant", api.user("member@bravo.eu")),
        ("staff of another partner", api.partner("p-bravo")),
        ("a user of no tenant", api.user("stranger@example.eu")),
    ];
    let reads = [
        (
            "tenant by id",
            "query($t: ID!) { tenant(id: $t) { id slug } }",
        ),
        (
            "members",
            "query($t: ID!) { tenant(id: $t) { members { email } } }",
        ),
        (
            "audit",
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 5) { totalCount } } }",
        ),
    ];
    let writes = [
        ("addMember", "mutation($t: ID!) { addMember(input: {tenantId: $t, email: \"x@evil.eu\", displayName: \"X\", role: ADMIN}) { id } }"),
        ("changeMemberRole", "mutation($t: ID!, $m: ID!) { changeMemberRole(tenantId: $t, memberId: $m, role: MEMBER) { id } }"),
        ("transferOwnership", "mutation($t: ID!, $m: ID!) { transferOwnership(tenantId: $t, memberId: $m) { id } }"),
        ("suspendMember", "mutation($t: ID!, $m: ID!) { suspendMember(tenantId: $t, memberId: $m) { id } }"),
        ("resumeMember", "mutation($t: ID!, $m: ID!) { resumeMember(tenantId: $t, memberId: $m) { id } }"),
        ("removeMember", "mutation($t: ID!, $m: ID!) { removeMember(tenantId: $t, memberId: $m) { id } }"),
        ("suspendTenant", "mutation($t: ID!) { suspendTenant(tenantId: $t) { id } }"),
        ("resumeTenant", "mutation($t: ID!) { resumeTenant(tenantId: $t) { id } }"),
        ("softDeleteTenant", "mutation($t: ID!) { softDeleteTenant(tenantId: $t) { id } }"),
    ];
    for (who, token) in &outsiders {
        for (what, query) in reads.iter().chain(writes.iter()) {
            let response = api
                .post(Some(token), query, json!({"t": a_id, "m": a_owner}))
                .await;
            assert_eq!(
                code(&response),
                Some("FORBIDDEN"),
                "{who} / {what}: {response}"
            );
            let data = &response["data"];
            assert!(
                data.is_null()
                    || data
                        .as_object()
                        .is_some_and(|o| o.values().all(Value::is_null)),
                "{who} / {what} got data: {response}"
            );
        }
        let by_slug = api
            .post(Some(token), "{ tenant(slug: \"alpha\") { id } }", json!({}))
            .await;
        assert_eq!(code(&by_slug), Some("FORBIDDEN"), "{who}: {by_slug}");
    }
    // A partner's directory holds its own tenants only; a plain user has no directory.
    let mine = api
        .post(
            Some(&api.partner("p-bravo")),
            "{ tenants(first: 10) { totalCount nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["data"]["tenants"]["nodes"], json!([{"slug": "bravo"}]));
    let none = api
        .post(
            Some(&api.user("member@bravo.eu")),
            "{ tenants(first: 10) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&none), Some("FORBIDDEN"));
    // A tenant's plain member reads the tenant but not its audit timeline.
    let member = api.user("member@bravo.eu");
    let own = api
        .post(
            Some(&member),
            "query($t: ID!) { tenant(id: $t) { slug } }",
            json!({"t": b_id}),
        )
        .await;
    assert_eq!(own["data"]["tenant"]["slug"], "bravo");
    let audit = api
        .post(
            Some(&member),
            "query($t: ID!) { tenant(id: $t) { auditTimeline(first: 5) { totalCount } } }",
            json!({"t": b_id}),
        )
        .await;
    assert_eq!(code(&audit), Some("FORBIDDEN"));
    // The owning partner may act on its tenant.
    let deleted = api
        .post(
            Some(&api.partner("p-alpha")),
            "mutation($t: ID!) { softDeleteTenant(tenantId: $t) { status } }",
            json!({"t": a_id}),
        )
        .await;
    assert_eq!(
        deleted["data"]["softDeleteTenant"]["status"], "SOFT_DELETED",
        "{deleted}"
    );
}

#[tokio::test]
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant_on_sqlite() {
    nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(Backend::Sqlite).await;
}

#[tokio::test]
async fn nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant_on_postgres() {
    nobody_from_another_tenant_or_partner_reads_or_changes_a_tenant(Backend::Postgres).await;
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_unauthenticated() {
    let api = start(Backend::Sqlite).await;
    let query = "{ me { subject } }";
    let base = claims("u-1", "u@example.eu");
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c.insert(key.into(), value);
        c
    };
    let now = chrono::Utc::now().timestamp();
    let mut cases: Vec<(&str, String)> = vec![
        ("expired", api.token(&with("exp", (now - 3_600).into()))),
        (
            "wrong issuer",
            api.token(&with("iss", "https://evil.example/".into())),
        ),
        (
            "wrong audience",
            api.token(&with("aud", "someone-else".into())),
        ),
        (
            "unknown kid",
            api.key
                .sign(&json!({"alg": "ES256", "kid": "nope"}), &base)
                .expect("sign"),
        ),
    ];
    let valid = api.token(&base);
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_claims = with("sub", "admin".into());
    let forged_payload = base64_url(&serde_json::to_vec(&forged_claims).expect("json"));
    cases.push((
        "tampered signature",
        format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
    ));
    cases.push((
        "alg none",
        format!("{}.{}.", base64_url(br#"{"alg":"none"}"#), parts[1]),
    ));
    cases.push(("not a JWT", "garbage".into()));
    for (what, token) in cases {
        let response = api.post(Some(&token), query, json!({})).await;
        assert_eq!(
            code(&response),
            Some("UNAUTHENTICATED"),
            "{what}: {response}"
        );
        assert_eq!(response["data"], Value::Null, "{what}");
    }
    let ok = api.post(Some(&valid), query, json!({})).await;
    assert_eq!(ok["data"]["me"]["subject"], "u-1", "{ok}");
    let anonymous = api.post(None, query, json!({})).await;
    assert_eq!(code(&anonymous), Some("UNAUTHENTICATED"));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn bad_input_gets_typed_errors_never_internals() {
    let api = start(Backend::Sqlite).await;
    let operator = api.operator();
    let pages = [0, 101, -1];
    for first in pages {
        let response = api
            .post(
                Some(&operator),
                "query($f: Int) { tenants(first: $f) { totalCount } }",
                json!({"f": first}),
            )
            .await;
        assert_eq!(
            code(&response),
            Some("VALIDATION"),
            "first={first}: {response}"
        );
    }
    let cursor = api
        .post(
            Some(&operator),
            "{ tenants(first: 5, after: \"not-a-cursor\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&cursor), Some("VALIDATION"));
    create(&api, &operator, "taken", "a@taken.eu", None).await;
    let dup = api
        .post(Some(&operator), CREATE, json!({"input": {"organization": "X", "slug": "taken", "plan": "p", "seats": 1, "firstAdmin": {"email": "b@x.eu", "displayName": "B"}}}))
        .await;
    assert_eq!(code(&dup), Some("CONFLICT"));
    let bad_slug = api
        .post(Some(&operator), CREATE, json!({"input": {"organization": "X", "slug": "No Spaces", "plan": "p", "seats": 1, "firstAdmin": {"email": "b@x.eu", "displayName": "B"}}}))
        .await;
    assert_eq!(code(&bad_slug), Some("VALIDATION"));
    // Depth is bounded: a query nested past the limit is refused before it runs.
    let too_deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let refused = api.post(Some(&operator), too_deep, json!({})).await;
    assert!(
        refused["data"].is_null() && refused["errors"].is_array(),
        "{refused}"
    );
}

#[test]
fn the_committed_sdl_matches_the_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/schema.graphql");
    let current = sdl();
    if std::env::var_os("DEZKY_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).expect("write the SDL");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, current,
        "api/schema.graphql drifted from the schema; run DEZKY_UPDATE_SCHEMA=1 cargo test -p dezky-tests --test graphql_api and commit it"
    );
}
