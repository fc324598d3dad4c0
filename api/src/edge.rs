//! The HTTP edge: its settings (timeouts, the concurrency bound, introspection) and the accept
//! loop that serves the router.
//!
//! `axum::serve` cannot bound how long a client may take to send its request headers, so a
//! client sending a header byte every few seconds holds a connection (and its memory) for as
//! long as it likes. The loop here is `axum::serve`'s, on hyper's HTTP/1 connection builder
//! with a header read timeout: past it, the connection is closed. Like
//! `into_make_service_with_connect_info::<SocketAddr>()`, it gives every request the peer's
//! address as [`ConnectInfo`]; like `with_graceful_shutdown`, it stops accepting when told
//! to and waits for in-flight requests.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use clap::Args;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt as _;

use crate::graphql::http::{
    GraphqlEndpoint, Introspection, DEFAULT_BODY_READ_TIMEOUT_MS,
    DEFAULT_GRAPHQL_REQUEST_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_GRAPHQL_REQUESTS,
};

/// Default of [`EdgeArgs::http_header_read_timeout_ms`].
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// How long the accept loop waits after an error accepting (out of file descriptors, say)
/// before accepting again, so it does not spin.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 1_000;

/// Limits and policies of the HTTP edge (`dezky serve`).
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Who may introspect the GraphQL schema: `off` or `authenticated` callers. Unset:
    /// `authenticated` in development mode (`--dev`), `off` otherwise.
    #[arg(long, env = "DEZKY_GRAPHQL_INTROSPECTION", value_enum)]
    pub graphql_introspection: Option<Introspection>,
    /// Close a connection whose request headers have not all arrived after this long.
    #[arg(
        long,
        env = "DEZKY_HTTP_HEADER_READ_TIMEOUT_MS",
        default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS
    )]
    pub http_header_read_timeout_ms: u64,
    /// Refuse a GraphQL request (408) whose body has not all arrived after this long.
    #[arg(
        long,
        env = "DEZKY_HTTP_BODY_READ_TIMEOUT_MS",
        default_value_t = DEFAULT_BODY_READ_TIMEOUT_MS
    )]
    pub http_body_read_timeout_ms: u64,
    /// Stop a GraphQL request (503) still running after this long.
    #[arg(
        long,
        env = "DEZKY_GRAPHQL_REQUEST_TIMEOUT_MS",
        default_value_t = DEFAULT_GRAPHQL_REQUEST_TIMEOUT_MS
    )]
    pub graphql_request_timeout_ms: u64,
    /// GraphQL requests served at once; past it a request is refused at once (503 OVERLOADED)
    /// so that health checks and readiness keep answering.
    #[arg(
        long,
        env = "DEZKY_GRAPHQL_MAX_CONCURRENT_REQUESTS",
        default_value_t = DEFAULT_MAX_CONCURRENT_GRAPHQL_REQUESTS
    )]
    pub graphql_max_concurrent_requests: usize,
}

impl Default for EdgeArgs {
    fn default() -> Self {
        Self {
            graphql_introspection: None,
            http_header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            http_body_read_timeout_ms: DEFAULT_BODY_READ_TIMEOUT_MS,
            graphql_request_timeout_ms: DEFAULT_GRAPHQL_REQUEST_TIMEOUT_MS,
            graphql_max_concurrent_requests: DEFAULT_MAX_CONCURRENT_GRAPHQL_REQUESTS,
        }
    }
}

impl EdgeArgs {
    /// The `/graphql` endpoint's policy; `dev` decides introspection when it is not set.
    pub fn graphql_endpoint(&self, dev: bool) -> GraphqlEndpoint {
        let introspection = self.graphql_introspection.unwrap_or(if dev {
            Introspection::Authenticated
        } else {
            Introspection::Off
        });
        GraphqlEndpoint {
            introspection,
            max_concurrent_requests: self.graphql_max_concurrent_requests.max(1),
            body_read_timeout: Duration::from_millis(self.http_body_read_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(self.graphql_request_timeout_ms.max(1)),
        }
    }

    /// How long a client may take to send its request headers.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_read_timeout_ms.max(1))
    }
}

/// Whether an accept error concerns only the connection being accepted (the loop goes on at
/// once) rather than the listener or the process (the loop backs off first).
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` over HTTP/1 until `shutdown` completes, then stops accepting and
/// waits for the open connections' requests to finish. A connection whose request headers are
/// not complete `header_read_timeout` after it began reading them is closed (an idle
/// keep-alive connection likewise). Each request carries the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and clients that go away end here; neither is the server's fault.
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
