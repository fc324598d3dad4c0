//! Infrastructure health against real sockets: a peer that answers, a closed port, a peer
//! that accepts and never answers, and a disabled service — up, down with its error, a
//! timeout within the probe limit, and left out; a flood of operator queries probes each
//! service at most once per cache period; only operators see it; `dezky health`'s table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dezky_adapters::health::{HealthChecker, Service, Target};
use dezky_tests::graphql_rig::{code, GraphqlApi};
use dezky_tests::Backend;
use serde_json::{json, Value};

/// The probe limit of these tests.
const PROBE_TIMEOUT_MS: u64 = 400;

struct Peers {
    up: String,
    up_hits: Arc<AtomicUsize>,
    closed: String,
    hanging: String,
    hanging_accepts: Arc<AtomicUsize>,
}

/// An HTTP peer that counts its requests, a closed port, and a peer that accepts and holds
/// connections without ever answering.
async fn peers() -> Peers {
    let up_hits = Arc::new(AtomicUsize::new(0));
    let hits = up_hits.clone();
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = format!("http://{}/healthz", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").to_string()
        // Dropped here: the port is closed.
    };

    let hanging_accepts = Arc::new(AtomicUsize::new(0));
    let accepts = hanging_accepts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hanging = format!("http://{}/", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            accepts.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    Peers {
        up,
        up_hits,
        closed,
        hanging,
        hanging_accepts,
    }
}

fn checker(peers: &Peers, cache: Duration) -> Arc<HealthChecker> {
    let target = |service, raw: &str| (service, Target::parse(service, Some(raw)).expect("target"));
    Arc::new(
        HealthChecker::new(
            vec![
                target(Service::Stalwart, &peers.up),
                target(Service::Postgresql, &peers.closed),
                target(Service::Authentik, &peers.hanging),
                target(Service::Ocis, "disabled"),
            ],
            Duration::from_millis(PROBE_TIMEOUT_MS),
            cache,
        )
        .expect("checker"),
    )
}

const QUERY: &str = "{ infrastructureHealth { checkedAt services { service target status latencyMs lastError lastErrorAt } } }";

fn by_service<'a>(response: &'a Value, name: &str) -> Option<&'a Value> {
    response["data"]["infrastructureHealth"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == name)
}

#[tokio::test]
async fn up_down_hanging_and_disabled_services_are_reported_as_they_are() {
    let peers = peers().await;
    let api =
        GraphqlApi::start_with_health(Backend::Sqlite, checker(&peers, Duration::from_secs(60)))
            .await;
    let started = Instant::now();
    let response = api.post_as(&api.operator(), QUERY, json!({})).await;
    let took = started.elapsed();
    assert_eq!(response["errors"], Value::Null, "{response}");

    let up = by_service(&response, "stalwart").expect("stalwart");
    assert_eq!(up["status"], "UP", "{response}");
    assert_eq!(up["target"], peers.up.as_str());
    assert!(up["latencyMs"].is_u64());
    assert_eq!(up["lastError"], Value::Null);

    let down = by_service(&response, "postgresql").expect("postgresql");
    assert_eq!(down["status"], "DOWN", "{response}");
    assert!(
        down["lastError"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("refused")),
        "{response}"
    );
    assert!(down["lastErrorAt"].is_string());

    let hanging = by_service(&response, "authentik").expect("authentik");
    assert_eq!(hanging["status"], "TIMEOUT", "{response}");
    let latency = hanging["latencyMs"].as_u64().expect("latency");
    assert!(
        (PROBE_TIMEOUT_MS..PROBE_TIMEOUT_MS + 1_000).contains(&latency),
        "{latency} ms"
    );
    // The probes ran concurrently: the whole answer took about one timeout, not the sum.
    assert!(
        took < Duration::from_millis(PROBE_TIMEOUT_MS * 4),
        "{took:?}"
    );

    assert!(
        by_service(&response, "ocis").is_none(),
        "disabled is left out"
    );
    let unset = by_service(&response, "s3").expect("s3");
    assert_eq!(unset["status"], "NOT_CONFIGURED");
    assert_eq!(unset["target"], Value::Null);
    assert_eq!(unset["latencyMs"], Value::Null);
    assert_eq!(
        response["data"]["infrastructureHealth"]["services"]
            .as_array()
            .map(Vec::len),
        Some(8)
    );
}

#[tokio::test]
async fn a_hundred_concurrent_queries_probe_each_service_at_most_once() {
    let peers = peers().await;
    let health = checker(&peers, Duration::from_secs(60));
    let api = GraphqlApi::start_with_health(Backend::Sqlite, health.clone()).await;
    let token = api.operator();
    let queries = (0..100).map(|_| api.post_as(&token, QUERY, json!({})));
    let answers = futures::future::join_all(queries).await;
    for answer in &answers {
        assert_eq!(
            by_service(answer, "stalwart").map(|s| s["status"].clone()),
            Some(json!("UP")),
            "{answer}"
        );
    }
    assert_eq!(health.rounds(), 1);
    assert_eq!(peers.up_hits.load(Ordering::SeqCst), 1);
    assert_eq!(peers.hanging_accepts.load(Ordering::SeqCst), 1);
    // Every answer is the one round's.
    let mut checked: Vec<&Value> = answers
        .iter()
        .map(|a| &a["data"]["infrastructureHealth"]["checkedAt"])
        .collect();
    checked.dedup();
    assert_eq!(checked.len(), 1);
}

#[tokio::test]
async fn a_report_past_its_cache_time_is_probed_again_and_remembers_the_last_error() {
    let peers = peers().await;
    let health = checker(&peers, Duration::ZERO);
    let first = health.report().await;
    let second = health.report().await;
    assert_eq!(health.rounds(), 2);
    assert_eq!(peers.up_hits.load(Ordering::SeqCst), 2);
    let down = |r: &dezky_adapters::health::HealthReport| {
        r.services
            .iter()
            .find(|s| s.service == Service::Postgresql)
            .and_then(|s| s.last_error_at.clone())
    };
    assert!(down(&first).is_some());
    assert_ne!(down(&first), down(&second), "each failure is dated");
}

#[tokio::test]
async fn only_operators_see_the_infrastructure() {
    let peers = peers().await;
    let api =
        GraphqlApi::start_with_health(Backend::Sqlite, checker(&peers, Duration::from_secs(60)))
            .await;
    let member = api
        .post_as(&api.user("ann@acme.eu"), QUERY, json!({}))
        .await;
    assert_eq!(code(&member), Some("FORBIDDEN"), "{member}");
    assert_eq!(member["data"], Value::Null);
    let partner = api.post_as(&api.partner("p-1"), QUERY, json!({})).await;
    assert_eq!(code(&partner), Some("FORBIDDEN"), "{partner}");
    let anonymous = api.post(None, QUERY, json!({})).await;
    assert_eq!(code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
}

#[tokio::test]
async fn the_cli_table_names_each_service_and_fails_when_one_is_down() {
    let peers = peers().await;
    let report = checker(&peers, Duration::from_secs(60)).report().await;
    let mut out = Vec::new();
    let healthy = dezky_api::health::print_report(&report, &mut out).expect("print");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(!healthy, "{text}");
    assert!(text.contains("stalwart"), "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(text.contains("not configured"), "{text}");
    assert!(!text.contains("ocis"), "{text}");
    assert!(
        text.contains("1 up, 2 down or timed out, 5 not configured"),
        "{text}"
    );

    let only_up = HealthChecker::new(
        vec![(
            Service::Stalwart,
            Target::parse(Service::Stalwart, Some(&peers.up)).expect("target"),
        )],
        Duration::from_millis(PROBE_TIMEOUT_MS),
        Duration::ZERO,
    )
    .expect("checker")
    .report()
    .await;
    assert!(dezky_api::health::print_report(&only_up, &mut Vec::new()).expect("print"));
}

#[tokio::test]
async fn a_target_that_is_not_one_stops_the_settings() {
    let settings = dezky_api::health::HealthSettings {
        health_stalwart: Some("stalwart".into()),
        ..Default::default()
    };
    let error = settings.checker().err().expect("refused");
    assert!(error.to_string().contains("stalwart"), "{error}");
}
