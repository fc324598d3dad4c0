//! A stateful fake of Stalwart v0.16's JMAP management API, for testing the product's
//! Stalwart adapter and the sagas above it without a Stalwart server.
//!
//! What it speaks, and where each choice comes from:
//!
//! * **Session**: `GET /.well-known/jmap` (RFC 8620 §2). The management objects live under one
//!   account, [`ACCOUNT_ID`]; as on the real server, `urn:stalwart:jmap` is advertised only in
//!   that account's `accountCapabilities` (and in `primaryAccounts`), while the session's
//!   top-level `capabilities` hold `urn:ietf:params:jmap:core`.
//! * **API**: `POST /jmap` (also `/jmap/`), `{"using", "methodCalls"}` →
//!   `{"methodResponses", "sessionState"}`. Method names carry the `x:` prefix on the wire
//!   (`x:Domain/set`). A request without `urn:stalwart:jmap` in `using` gets `unknownMethod`
//!   for every `x:` call; a capability the fake does not know is a request-level
//!   `unknownCapability` (RFC 8620 §3.6.1). Back-references (`"#ids": {resultOf, name, path}`)
//!   and creation-id references (`"#d1"` as an object id) work across calls of one request.
//! * **Auth**: HTTP Basic with the admin user and secret, or `Bearer <secret>`; anything else
//!   is `401` with `WWW-Authenticate`.
//! * **Collections are JSON objects**, never arrays: a set is `{"value": true}`, an object
//!   list `{"0": {...}, "1": {...}}`; an array is refused, as upstream refuses it.
//! * **Errors follow upstream's registry code**, not a generic JMAP reading: an unknown
//!   property, a server-set property, a wrong type or a collection sent as an array is a
//!   SetError `invalidPatch` with `properties: [<json pointer>]`; a required field left empty
//!   is `validationFailed` with `validationErrors: [{"type": "Required", "property"}]`; a
//!   reference to a missing domain or group is `invalidForeignKey` with `objectId`; a second
//!   domain (or alias) with a taken name, or an address (local part + domain) already used by
//!   an account, list or alias, is `primaryKeyViolation` with `properties` and `objectId`;
//!   destroying an object others point to is `objectIsLinked` with `linkedObjects` (a domain is
//!   linked from its accounts, lists, aliases, **and its DKIM signatures**, so a teardown must
//!   destroy those first); changing an account's `@type` is `invalidProperties`; destroying the
//!   SystemSettings singleton is `singleton`. `objectId` is rendered `{"object", "id"}` with the
//!   object type without its `x:` prefix (upstream derives it with serde; the exact spelling
//!   of the type there was not verifiable here).
//! * **DKIM appears later**: creating a domain with automatic DKIM management (the default)
//!   schedules a task; its `x:DkimSignature` objects (one per algorithm: Ed25519 and RSA by
//!   default, selectors from `v{version}-{algorithm}-{date-%Y%m%d}`) and the DKIM TXT records
//!   in `dnsZoneFile` exist only once the task has run: after
//!   [`StalwartFakeBuilder::dkim_after_polls`] reads of `x:Domain` or `x:DkimSignature`
//!   (default 2), or when a test calls [`StalwartFake::complete_pending_tasks`].
//! * **`dnsZoneFile`** is computed on every read, as upstream does; see [`zone`].
//! * **Secrets**: passwords and DKIM private keys read back as `****`; writing `****` back keeps
//!   the stored secret, as upstream does.
//!
//! * **Address books** (JMAP for Contacts, RFC 9610) live in each user's own account and are
//!   reached by naming its id as `accountId` (the admin's `impersonate` permission); see
//!   [`contacts`].
//!
//! What it leaves out on purpose: `/changes` (answered `cannotCalculateChanges`), filter
//! operators (`AND`/`OR`), sorting, tenants and enterprise fields, app passwords and API
//! keys, ACME and automatic DNS management, TLSA/CAA/MTA-STS records, password strength
//! rules, key rotation. A property or variant outside the fake's tables ([`schema`]) is
//! refused as unknown rather than silently accepted, so the adapter cannot come to rely on
//! something the fake does not model.

pub mod contacts;
pub mod schema;
mod store;
pub mod validate;
pub mod zone;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

pub use store::{Stored, MASKED_PASSWORD};

/// The account the management objects live under.
pub const ACCOUNT_ID: &str = "a";
/// The capability of the management objects.
pub const STALWART_CAPABILITY: &str = "urn:stalwart:jmap";
/// JMAP core.
pub const CORE_CAPABILITY: &str = "urn:ietf:params:jmap:core";

#[derive(Debug, Default)]
struct Faults {
    /// HTTP statuses the next API calls answer with, without applying anything.
    fail_next: Vec<u16>,
    /// API calls still to apply and then answer with a dropped connection.
    drop_after_apply: u32,
    /// A method (`x:Domain/set`) whose next call is applied and then answered with a dropped
    /// connection; calls without it pass.
    drop_after_applying: Option<String>,
}

struct Shared {
    state: Mutex<store::State>,
    faults: Mutex<Faults>,
    user: String,
    secret: String,
    base_url: String,
}

/// Configures a fake before it starts.
pub struct StalwartFakeBuilder {
    user: String,
    secret: String,
    hostname: String,
    dkim_after_polls: Option<u32>,
}

impl StalwartFakeBuilder {
    /// The admin credentials the fake accepts (default `admin` / `fake-admin-secret`).
    pub fn admin(mut self, user: &str, secret: &str) -> Self {
        self.user = user.to_owned();
        self.secret = secret.to_owned();
        self
    }

    /// The server's `defaultHostname` (default `mail.dezky.test`): MX, SRV and CNAME targets.
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = hostname.to_owned();
        self
    }

    /// After how many reads of `x:Domain`/`x:DkimSignature` a domain's DKIM keys appear;
    /// `None` leaves them pending until [`StalwartFake::complete_pending_tasks`].
    pub fn dkim_after_polls(mut self, polls: Option<u32>) -> Self {
        self.dkim_after_polls = polls;
        self
    }

    /// Binds a loopback port and serves until the handle is dropped.
    pub async fn start(self) -> std::io::Result<StalwartFake> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            state: Mutex::new(store::State::new(&self.hostname, self.dkim_after_polls)),
            faults: Mutex::new(Faults::default()),
            user: self.user.clone(),
            secret: self.secret.clone(),
            base_url: base_url.clone(),
        });
        let app = Router::new()
            .route("/.well-known/jmap", get(session))
            .route("/jmap", post(api))
            .route("/jmap/", post(api))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(StalwartFake {
            base_url,
            user: self.user,
            secret: self.secret,
            shared,
            stop: Some(stop),
            server,
        })
    }
}

/// A running fake; stops when dropped.
pub struct StalwartFake {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// Admin user name for Basic auth.
    pub user: String,
    /// Admin secret (Basic password or Bearer token).
    pub secret: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StalwartFake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.abort();
    }
}

impl StalwartFake {
    /// A builder with the defaults.
    pub fn builder() -> StalwartFakeBuilder {
        StalwartFakeBuilder {
            user: "admin".into(),
            secret: "fake-admin-secret".into(),
            hostname: "mail.dezky.test".into(),
            dkim_after_polls: Some(2),
        }
    }

    /// Starts a fake with the defaults.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// The JMAP API URL (`{base_url}/jmap`).
    pub fn api_url(&self) -> String {
        format!("{}/jmap", self.base_url)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, store::State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.shared.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs every pending DKIM task now.
    pub fn complete_pending_tasks(&self) {
        self.state().complete_pending_tasks();
    }

    /// Domains whose DKIM task has not run yet.
    pub fn pending_tasks(&self) -> usize {
        self.state().pending_tasks()
    }

    /// The next `n` API calls answer HTTP `status` (e.g. 500, 503) and change nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.faults()
            .fail_next
            .extend(std::iter::repeat_n(status, n));
    }

    /// The next `n` API calls are applied, then the connection is cut before the answer's
    /// body: the client cannot know whether its request took effect.
    pub fn drop_after_apply_next(&self, n: u32) {
        self.faults().drop_after_apply += n;
    }

    /// The next API call that invokes `method` (`x:Domain/set`) is applied, then the
    /// connection is cut before the answer: a lost answer to a write, whatever reads precede
    /// it.
    pub fn drop_after_applying(&self, method: &str) {
        self.faults().drop_after_applying = Some(method.to_owned());
    }

    /// Domains as stored, in creation order.
    pub fn domains(&self) -> Vec<Stored> {
        self.state().list("x:Domain")
    }

    /// Accounts (users and groups) as stored; password secrets in clear.
    pub fn accounts(&self) -> Vec<Stored> {
        self.state().list("x:Account")
    }

    /// Mailing lists as stored.
    pub fn mailing_lists(&self) -> Vec<Stored> {
        self.state().list("x:MailingList")
    }

    /// DKIM signatures as stored.
    pub fn dkim_signatures(&self) -> Vec<Stored> {
        self.state().list("x:DkimSignature")
    }

    /// The SystemSettings singleton as stored.
    pub fn system_settings(&self) -> Map<String, Value> {
        self.state().settings()
    }

    /// The address books of the user account whose address is `address` (none when there is
    /// no such account).
    pub fn address_books(&self, address: &str) -> Vec<Stored> {
        let state = self.state();
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let domain_id = state
            .list("x:Domain")
            .into_iter()
            .find(|d| d.value.get("name").and_then(Value::as_str) == Some(domain))
            .map(|d| d.id);
        let account = state.list("x:Account").into_iter().find(|a| {
            a.value.get("name").and_then(Value::as_str) == Some(local)
                && a.value.get("domainId").and_then(Value::as_str) == domain_id.as_deref()
        });
        account.map_or_else(Vec::new, |a| state.address_books.of(&a.id))
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return token == shared.secret;
    }
    if let Some(encoded) = value.strip_prefix("Basic ") {
        let expected = format!("{}:{}", shared.user, shared.secret);
        return base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .is_ok_and(|decoded| decoded == expected.as_bytes());
    }
    false
}

fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": kind, "status": status.as_u16(), "detail": detail}).to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Stalwart Server\""),
        );
    }
    response
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "about:blank",
        "You have to authenticate first.",
    )
}

async fn session(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let state = shared
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .state_string();
    let base = &shared.base_url;
    axum::Json(json!({
        "capabilities": {
            CORE_CAPABILITY: {
                "maxSizeUpload": 50_000_000,
                "maxConcurrentUpload": 4,
                "maxSizeRequest": 10_000_000,
                "maxConcurrentRequests": 4,
                "maxCallsInRequest": 16,
                "maxObjectsInGet": 500,
                "maxObjectsInSet": 500,
                "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
            },
        },
        "accounts": {
            ACCOUNT_ID: {
                "name": shared.user,
                "isPersonal": true,
                "isReadOnly": false,
                "accountCapabilities": {CORE_CAPABILITY: {}, STALWART_CAPABILITY: {}},
            },
        },
        "primaryAccounts": {CORE_CAPABILITY: ACCOUNT_ID, STALWART_CAPABILITY: ACCOUNT_ID},
        "username": shared.user,
        "apiUrl": format!("{base}/jmap/"),
        "downloadUrl": format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"),
        "uploadUrl": format!("{base}/jmap/upload/{{accountId}}/"),
        "eventSourceUrl": format!("{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
        "state": state,
    }))
    .into_response()
}

async fn api(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let drop_connection = {
        let mut faults = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        if !faults.fail_next.is_empty() {
            let status = faults.fail_next.remove(0);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return problem(status, "about:blank", "Injected failure");
        }
        let targeted = faults.drop_after_applying.as_deref().is_some_and(|method| {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|request| request.get("methodCalls").cloned())
                .and_then(|calls| calls.as_array().cloned())
                .is_some_and(|calls| {
                    calls
                        .iter()
                        .any(|call| call.get(0).and_then(Value::as_str) == Some(method))
                })
        });
        if targeted {
            faults.drop_after_applying = None;
            true
        } else if faults.drop_after_apply > 0 {
            faults.drop_after_apply -= 1;
            true
        } else {
            false
        }
    };
    let response = match handle(&shared, &body) {
        Ok(value) => axum::Json(value).into_response(),
        Err(response) => *response,
    };
    if drop_connection {
        // The request is applied; the body then fails mid-stream, which makes the server
        // abort the connection: the client sees a transport error, not an answer.
        let failing = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other(
                "connection dropped by fault injection",
            ))
        });
        return (StatusCode::OK, Body::from_stream(failing)).into_response();
    }
    response
}

// The error is a whole HTTP answer; boxed because it is large and rare.
fn handle(shared: &Shared, body: &[u8]) -> Result<Value, Box<Response>> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "urn:ietf:params:jmap:error:notJSON",
            &e.to_string(),
        ))
    })?;
    let not_request = |detail: &str| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "urn:ietf:params:jmap:error:notRequest",
            detail,
        ))
    };
    let using: Vec<String> = request
        .get("using")
        .and_then(Value::as_array)
        .ok_or_else(|| not_request("Missing 'using'"))?
        .iter()
        .map(|u| u.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| not_request("'using' must list strings"))?;
    if let Some(unknown) = using.iter().find(|u| {
        *u != CORE_CAPABILITY && *u != STALWART_CAPABILITY && *u != contacts::CONTACTS_CAPABILITY
    }) {
        return Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "urn:ietf:params:jmap:error:unknownCapability",
            &format!("Unknown capability {unknown}"),
        )));
    }
    let calls = request
        .get("methodCalls")
        .and_then(Value::as_array)
        .ok_or_else(|| not_request("Missing 'methodCalls'"))?;

    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut created = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    for call in calls {
        let Some([name, args, call_id]) = call
            .as_array()
            .map(Vec::as_slice)
            .and_then(|c| <&[Value; 3]>::try_from(c).ok())
        else {
            return Err(not_request("Each method call is [name, arguments, callId]"));
        };
        let (Some(name), Some(call_id)) = (name.as_str(), call_id.as_str()) else {
            return Err(not_request("Method name and call id must be strings"));
        };
        let (response_name, response_args) = match resolve_references(args, &responses) {
            Ok(args) => state.call(name, &args, &using, &mut created),
            Err(error) => ("error".to_owned(), error),
        };
        responses.push(json!([response_name, response_args, call_id]));
    }
    Ok(json!({
        "methodResponses": responses,
        "sessionState": state.state_string(),
        "createdIds": created,
    }))
}

/// Replaces every `"#name": {resultOf, name, path}` argument with the value it points to in
/// an earlier response (RFC 8620 §3.7).
fn resolve_references(args: &Value, responses: &[Value]) -> Result<Value, Value> {
    let Some(object) = args.as_object() else {
        return Ok(args.clone());
    };
    let mut out = Map::new();
    for (key, value) in object {
        let Some(name) = key.strip_prefix('#') else {
            out.insert(key.clone(), value.clone());
            continue;
        };
        let invalid = || json!({"type": "invalidResultReference"});
        let result_of = value
            .get("resultOf")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let method = value
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let path = value
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let earlier = responses
            .iter()
            .find(|r| r[2] == result_of && r[0] == method)
            .ok_or_else(invalid)?;
        let resolved = evaluate_pointer(&earlier[1], path).ok_or_else(invalid)?;
        out.insert(name.to_owned(), resolved);
    }
    Ok(Value::Object(out))
}

/// JSON pointer evaluation with RFC 8620's `*` (map over an array, flattening arrays).
fn evaluate_pointer(value: &Value, path: &str) -> Option<Value> {
    let segments: Vec<String> = path
        .strip_prefix('/')?
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    walk(value, &segments)
}

fn walk(value: &Value, segments: &[String]) -> Option<Value> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(value.clone());
    };
    if first == "*" {
        let mut out = Vec::new();
        for item in value.as_array()? {
            match walk(item, rest)? {
                Value::Array(items) => out.extend(items),
                other => out.push(other),
            }
        }
        return Some(Value::Array(out));
    }
    let next = match value {
        Value::Object(map) => map.get(first)?,
        Value::Array(items) => items.get(first.parse::<usize>().ok()?)?,
        _ => return None,
    };
    walk(next, rest)
}
