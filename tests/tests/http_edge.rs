//! The HTTP edge of the real server (`dezky serve --dev` in-process, on a loopback port): body
//! limits (413, a declared huge body refused without being read), slow clients (headers cut
//! off, bodies answered 408), content types (415), malformed requests (400), every library
//! error typed with no internal name in its message, introspection by policy, load shedding
//! that keeps `/healthz` answering, and the accept loop's peer address and graceful shutdown.
//!
//! No assertion is on latency: "promptly" means within a generous bound that a server waiting
//! for the body (its timeouts set far beyond that bound) could not meet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use dezky_tests::graphql_rig::code;
use dezky_tests::server_rig::DevServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A generous bound on "answered at all" on a loaded machine.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);

/// Strings that would betray the implementation in a message.
const INTERNAL_NAMES: [&str; 9] = [
    "::",
    "serde",
    "Uuid",
    "invalid type",
    "Some(",
    "ParseRequestError",
    "Error {",
    "async_graphql",
    "dezky_",
];

/// A raw HTTP/1.1 answer.
struct Answer {
    status: u16,
    body: Value,
}

/// Reads one HTTP/1.1 response (headers, then `Content-Length` bytes) within
/// [`ANSWERED_WITHIN`].
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let read = async {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("status");
                    let body = serde_json::from_slice(&buffer[end + 4..end + 4 + length])
                        .unwrap_or(Value::Null);
                    return Answer { status, body };
                }
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a full answer: {buffer:?}");
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(ANSWERED_WITHIN, read)
        .await
        .expect("answered in time")
}

/// Opens a connection and sends `head` (request line and headers, ending with a blank line)
/// and `body`, without closing.
async fn send_raw(server: &DevServer, head: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    stream
}

fn post_head(length: usize) -> String {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: dezky\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// POSTs `body` to `/graphql` with `content_type` (none when `None`).
async fn post(server: &DevServer, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(server.url("/graphql"))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("http");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn assert_names_nothing_internal(body: &Value) {
    let text = body.to_string();
    for name in INTERNAL_NAMES {
        assert!(!text.contains(name), "{name:?} in {text}");
    }
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_with_413_and_a_typed_body() {
    let server = DevServer::start(&[]).await;
    let huge = json!({"query": format!("{{ __typename }}#{}", "x".repeat(300 * 1024))});
    let (status, body) = post(
        &server,
        Some("application/json"),
        serde_json::to_vec(&huge).expect("json"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), Some("PAYLOAD_TOO_LARGE"), "{body}");
    // Without a declared length (chunked), the body is cut off where it passes the limit.
    let chunk = vec![b' '; 16 * 1024];
    let mut stream = send_raw(
        &server,
        "POST /graphql HTTP/1.1\r\nHost: dezky\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"",
    )
    .await;
    for _ in 0..20 {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        // The server may answer and close before the last chunks: that is the point.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(code(&answer.body), Some("PAYLOAD_TOO_LARGE"));
}

#[tokio::test]
async fn a_declared_huge_body_is_refused_at_once_without_being_read() {
    // The server would wait two minutes for a body; only a refusal from the declared length
    // answers within the bound.
    let server = DevServer::start(&["--http-body-read-timeout-ms", "120000"]).await;
    let mut stream = send_raw(&server, &post_head(1_000_000_000), &[b' '; 1024]).await;
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(code(&answer.body), Some("PAYLOAD_TOO_LARGE"));
}

#[tokio::test]
async fn slow_request_headers_are_cut_off_after_the_header_read_timeout() {
    let server = DevServer::start(&["--http-header-read-timeout-ms", "300"]).await;
    let stream = send_raw(&server, "POST /graphql HTTP/1.1\r\nHost: dezky\r\n", b"").await;
    let (mut reader, mut writer) = stream.into_split();
    // A header byte every 50 ms, for longer than the bound: the drip must not keep it open.
    let drip = tokio::spawn(async move {
        for _ in 0..(ANSWERED_WITHIN.as_millis() / 50) {
            if writer.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let closed = tokio::time::timeout(ANSWERED_WITHIN, async {
        let mut buffer = [0u8; 1024];
        // Whatever the server says before closing, the connection ends.
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
    drip.abort();
    // A connection that sends nothing at all is closed alike.
    let mut silent = TcpStream::connect(server.address).await.expect("connect");
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(ANSWERED_WITHIN, silent.read(&mut buffer)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the silent connection stayed open"
    );
    // The server still serves complete requests.
    let (status, body) = server.graphql(None, "{ __typename }").await;
    assert_eq!(
        (status, &body["data"]["__typename"]),
        (200, &json!("Query"))
    );
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_refused_with_408() {
    let server = DevServer::start(&["--http-body-read-timeout-ms", "300"]).await;
    let mut stream = send_raw(&server, &post_head(100), b"{\"query\":").await;
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(code(&answer.body), Some("REQUEST_TIMEOUT"));
}

#[tokio::test]
async fn a_request_running_past_its_timeout_is_answered_503_typed() {
    // The body never completes and its own timeout is far away: the request timeout answers.
    let server = DevServer::start(&[
        "--graphql-request-timeout-ms",
        "300",
        "--http-body-read-timeout-ms",
        "120000",
    ])
    .await;
    let mut stream = send_raw(&server, &post_head(100), b"{\"query\":").await;
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(code(&answer.body), Some("UNAVAILABLE"));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_with_415() {
    let server = DevServer::start(&[]).await;
    let query = serde_json::to_vec(&json!({"query": "{ __typename }"})).expect("json");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/graphql"),
        Some("application/json; charset=iso-8859-1"),
    ] {
        let (status, body) = post(&server, content_type, query.clone()).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        assert_eq!(code(&body), Some("UNSUPPORTED_MEDIA_TYPE"), "{body}");
    }
    for content_type in [
        "application/json",
        "application/json; charset=UTF-8",
        "application/graphql-response+json",
    ] {
        let (status, body) = post(&server, Some(content_type), query.clone()).await;
        assert_eq!(status, 200, "{content_type}: {body}");
        assert_eq!(body["data"]["__typename"], "Query");
    }
    // The page at GET /graphql is not behind the POST's limits.
    let page = reqwest::get(server.url("/graphql")).await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html")));
}

#[tokio::test]
async fn malformed_json_batches_and_wrong_shapes_are_refused_with_400_typed() {
    let server = DevServer::start(&[]).await;
    for body in [
        &b"{\"query\": "[..],
        b"not json",
        b"\xff\xfe",
        b"[{\"query\": \"{ __typename }\"}]",
        b"\"{ __typename }\"",
        b"{}",
        b"{\"query\": 5}",
        b"{\"query\": \"{ __typename }\", \"variables\": [1]}",
        b"{\"query\": \"{ __typename }\", \"operationName\": {}}",
    ] {
        let (status, answer) = post(&server, Some("application/json"), body.to_vec()).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(status, 400, "{shown}: {answer}");
        assert_eq!(code(&answer), Some("BAD_REQUEST"), "{shown}: {answer}");
        assert_names_nothing_internal(&answer);
    }
}

#[tokio::test]
async fn every_error_of_the_graphql_library_is_typed_and_names_nothing_internal() {
    let server = DevServer::start(&[]).await;
    let token = server.operator();
    let cases = [
        (
            "{ tenants(first: 5) { totalCount ",
            json!({}),
            "GRAPHQL_PARSE_FAILED",
        ),
        ("{ nope }", json!({}), "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ tenants(first: 5) }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "query($x: Int) { __typename }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "subscription { __typename }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "{ tenants(first: \"five\") { totalCount } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "query($t: ID!) { tenant(id: $t) { slug } }",
            json!({"t": {"a": 1}}),
            "BAD_USER_INPUT",
        ),
        (
            "query($f: Int) { tenants(first: $f) { totalCount } }",
            json!({"f": 1e20}),
            "BAD_USER_INPUT",
        ),
        (
            "query($s: TenantStatus) { tenants(status: $s) { totalCount } }",
            json!({"s": "NOPE"}),
            "BAD_USER_INPUT",
        ),
        (
            "query($t: ID!) { tenant(id: $t) { slug } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "query A { __typename } query B { __typename }",
            json!({}),
            "BAD_REQUEST",
        ),
    ];
    for (query, variables, expected) in cases {
        let response = reqwest::Client::new()
            .post(server.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("http");
        let body: Value = response.json().await.expect("json");
        assert_eq!(code(&body), Some(expected), "{query}: {body}");
        let errors = body["errors"].as_array().expect("errors");
        assert!(
            errors.iter().all(|e| e["extensions"]["code"].is_string()),
            "{query}: {body}"
        );
        assert_names_nothing_internal(&body);
    }
}

#[tokio::test]
async fn introspection_follows_the_policy_and_is_never_open_to_anonymous_callers() {
    let query = "{ __schema { queryType { name } } }";
    // Development's default: callers with a token.
    let dev = DevServer::start(&[]).await;
    let (_, anonymous) = dev.graphql(None, query).await;
    assert_eq!(
        code(&anonymous),
        Some("INTROSPECTION_DISABLED"),
        "{anonymous}"
    );
    let (_, authenticated) = dev.graphql(Some(&dev.operator()), query).await;
    assert_eq!(
        authenticated["data"]["__schema"]["queryType"]["name"], "Query",
        "{authenticated}"
    );
    // Switched off (production's default): nobody.
    let off = DevServer::start(&["--graphql-introspection", "off"]).await;
    let (_, refused) = off.graphql(Some(&off.operator()), query).await;
    assert_eq!(code(&refused), Some("INTROSPECTION_DISABLED"), "{refused}");
}

#[test]
fn introspection_is_off_by_default_outside_development_mode() {
    use dezky_api::edge::EdgeArgs;
    use dezky_api::graphql::http::Introspection;
    let defaults = EdgeArgs::default();
    assert_eq!(
        defaults.graphql_endpoint(false).introspection,
        Introspection::Off
    );
    assert_eq!(
        defaults.graphql_endpoint(true).introspection,
        Introspection::Authenticated
    );
}

#[tokio::test]
async fn health_checks_answer_while_graphql_is_saturated_and_the_excess_is_shed() {
    let server = DevServer::start(&[
        "--graphql-max-concurrent-requests",
        "1",
        "--http-body-read-timeout-ms",
        "120000",
    ])
    .await;
    // A request whose body never completes holds the only slot.
    let held = send_raw(&server, &post_head(100), b"{\"query\":").await;
    let deadline = tokio::time::Instant::now() + ANSWERED_WITHIN;
    let shed = loop {
        let (status, body) = server.graphql(None, "{ __typename }").await;
        if status == 503 {
            break body;
        }
        // The held request may not have taken its slot yet.
        assert_eq!(status, 200, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "never shed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code(&shed), Some("OVERLOADED"), "{shed}");
    let health = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    let ready: Value = ready.json().await.expect("readiness answer");
    assert!(ready["ready"].is_boolean(), "{ready}");
    // Once the slot is free, GraphQL answers again.
    drop(held);
    let deadline = tokio::time::Instant::now() + ANSWERED_WITHIN;
    loop {
        let (status, body) = server.graphql(None, "{ __typename }").await;
        if status == 200 {
            assert_eq!(body["data"]["__typename"], "Query");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The accept loop alone, serving `app` on a loopback port until the returned sender fires.
async fn serve_app(
    app: axum::Router,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dezky_api::edge::serve(
        listener,
        app,
        Duration::from_secs(10),
        async move {
            let _ = stopped.await;
        },
    ));
    (address, stop, server)
}

#[tokio::test]
async fn every_request_carries_the_peer_address_as_connect_info() {
    let app = axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let (address, _stop, _server) = serve_app(app).await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let local = stream.local_addr().expect("local address");
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nHost: dezky\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    tokio::time::timeout(ANSWERED_WITHIN, stream.read_to_string(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&local.to_string()),
        "{answer} from {local}"
    );
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_accepts_no_more() {
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (in_handler, go_on) = (started.clone(), release.clone());
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let (in_handler, go_on) = (in_handler.clone(), go_on.clone());
            async move {
                in_handler.notify_one();
                go_on.notified().await;
                "done"
            }
        }),
    );
    let (address, stop, server) = serve_app(app).await;
    let request = tokio::spawn(async move {
        reqwest::get(format!("http://{address}/slow"))
            .await
            .expect("answered")
            .text()
            .await
            .expect("body")
    });
    tokio::time::timeout(ANSWERED_WITHIN, started.notified())
        .await
        .expect("the request reached its handler");
    stop.send(()).expect("stop");
    // The listener closes while the request is still in its handler.
    let refused = async {
        loop {
            if TcpStream::connect(address).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(ANSWERED_WITHIN, refused)
        .await
        .expect("new connections refused after shutdown");
    assert!(!server.is_finished(), "shut down with a request in flight");
    release.notify_one();
    assert_eq!(request.await.expect("request"), "done");
    tokio::time::timeout(ANSWERED_WITHIN, server)
        .await
        .expect("the server stopped")
        .expect("server task");
}
