//! `/graphql` over HTTP: what a request must be before GraphQL sees it — a JSON body of bounded
//! size, read in bounded time, holding one operation — the concurrency bound and load shedding
//! in front of it, the introspection policy, and a typed JSON answer for everything refused
//! on the way (never a bare status or a library's Debug text).

use std::error::Error as _;
use std::time::Duration;

use async_graphql::{IntrospectionMode, Variables};
use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower::{BoxError, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::authz::Authentication;
use super::error::{ApiError, Code};

/// The longest request body `/graphql` reads: a query document (at most
/// [`super::guard::MAX_QUERY_DOCUMENT_BYTES`]) with room for its variables. A longer declared
/// `Content-Length` is refused before the body is read.
pub const MAX_GRAPHQL_BODY_BYTES: usize = 256 * 1024;
/// Default of [`GraphqlEndpoint::body_read_timeout`], in milliseconds.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// Default of [`GraphqlEndpoint::request_timeout`], in milliseconds.
pub const DEFAULT_GRAPHQL_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default of [`GraphqlEndpoint::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_GRAPHQL_REQUESTS: usize = 128;
/// The media type of GraphQL responses (GraphQL over HTTP).
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Who may ask the schema about itself (`__schema`, `__type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Introspection {
    /// Nobody: production's default, so the schema is not handed to every visitor.
    Off,
    /// Callers with a valid access token (development's default, for the explorer).
    Authenticated,
}

/// How `/graphql` treats requests beyond the schema's own limits.
#[derive(Debug, Clone)]
pub struct GraphqlEndpoint {
    /// Who may introspect.
    pub introspection: Introspection,
    /// Requests served at once; one more is refused at once with `503 OVERLOADED`, so a flood
    /// of GraphQL requests never queues behind itself and health checks keep answering.
    pub max_concurrent_requests: usize,
    /// How long the whole body may take to arrive (`408 REQUEST_TIMEOUT` after).
    pub body_read_timeout: Duration,
    /// How long a request may take in all (`503 UNAVAILABLE` after).
    pub request_timeout: Duration,
}

impl GraphqlEndpoint {
    /// The default limits with `introspection`.
    pub fn new(introspection: Introspection) -> Self {
        Self {
            introspection,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_GRAPHQL_REQUESTS,
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_GRAPHQL_REQUEST_TIMEOUT_MS),
        }
    }

    /// The introspection mode of a request by `authentication`.
    pub fn introspection_mode(&self, authentication: &Authentication) -> IntrospectionMode {
        match (self.introspection, authentication) {
            (Introspection::Authenticated, Authentication::Viewer(_)) => IntrospectionMode::Enabled,
            _ => IntrospectionMode::Disabled,
        }
    }

    /// `route` (the POST handler) behind the endpoint's limits, outermost first: a declared or
    /// actual body past [`MAX_GRAPHQL_BODY_BYTES`] is refused (413) without taking a slot;
    /// past [`GraphqlEndpoint::max_concurrent_requests`] in flight a request is shed at once
    /// (503); a request running past [`GraphqlEndpoint::request_timeout`] is dropped (503).
    pub fn bound<S>(&self, route: MethodRouter<S>) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        route.layer(
            ServiceBuilder::new()
                .map_response(type_bare_refusal)
                .layer(RequestBodyLimitLayer::new(MAX_GRAPHQL_BODY_BYTES))
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .concurrency_limit(self.max_concurrent_requests.max(1))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    self.request_timeout,
                )),
        )
    }
}

/// A request refused at the edge: answered with `status` and the error as a GraphQL response
/// body (errors only, no data).
#[derive(Debug)]
pub struct Refused {
    /// The HTTP status.
    pub status: StatusCode,
    /// The typed error.
    pub error: ApiError,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.error.into_json_body().to_string(),
        )
            .into_response()
    }
}

fn refusal(status: StatusCode, error: ApiError) -> Refused {
    Refused { status, error }
}

/// Load shedding's answer: the concurrency limit is reached.
async fn overloaded(error: BoxError) -> Refused {
    if error.is::<tower::load_shed::error::Overloaded>() {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::new(
                Code::Overloaded,
                "the server is serving as many GraphQL requests as it may; try again shortly",
            ),
        )
    } else {
        refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::internal(&error),
        )
    }
}

/// The limit layers answer with a bare status (413 from the body limit, 503 from the timeout);
/// this gives those answers their typed body. Answers that already carry JSON pass unchanged.
fn type_bare_refusal<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let typed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !typed => too_large().into_response(),
        StatusCode::SERVICE_UNAVAILABLE if !typed => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::new(
                Code::Unavailable,
                "the request took too long and was stopped; try again",
            ),
        )
        .into_response(),
        _ => response.map(Body::new),
    }
}

fn too_large() -> Refused {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the request body may be at most {MAX_GRAPHQL_BODY_BYTES} bytes long"),
        ),
    )
}

fn bad_request(message: impl Into<String>) -> Refused {
    refusal(
        StatusCode::BAD_REQUEST,
        ApiError::new(Code::BadRequest, message),
    )
}

/// Whether a `Content-Type` is JSON: `application/json` or
/// `application/graphql-response+json`, with no charset but UTF-8.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let json = essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON);
    json && parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

/// Whether reading a body failed because it passed its length limit.
pub(crate) fn past_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Reads a GraphQL request from a POST's headers and body, or the typed refusal: 415 for a
/// body that is not JSON, 413 past [`MAX_GRAPHQL_BODY_BYTES`], 408 when the body takes longer
/// than `timeout`, 400 for malformed JSON, a batch or a wrong shape.
pub async fn read_request(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> Result<async_graphql::Request, Refused> {
    if !is_json(headers.get(header::CONTENT_TYPE)) {
        return Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::new(
                Code::UnsupportedMediaType,
                "send the request as application/json (or application/graphql-response+json), UTF-8",
            ),
        ));
    }
    let bytes =
        match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_GRAPHQL_BODY_BYTES))
            .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(error)) if past_length_limit(&error) => return Err(too_large()),
            Ok(Err(_)) => return Err(bad_request("the request body could not be read")),
            Err(_) => {
                return Err(refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    ApiError::new(
                        Code::RequestTimeout,
                        format!(
                            "the request body did not arrive within {} ms",
                            timeout.as_millis()
                        ),
                    ),
                ))
            }
        };
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        bad_request(format!(
            "the request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    request_from_json(json)
}

/// A GraphQL request from its JSON: an object with a string `query`, optionally a string
/// `operationName` and an object `variables`. A batch (an array) is refused: one operation
/// per request keeps every limit per request.
fn request_from_json(json: serde_json::Value) -> Result<async_graphql::Request, Refused> {
    const SHAPE: &str = "the request body must be a JSON object with a string \"query\", and optionally a string \"operationName\" and an object \"variables\"";
    let mut object = match json {
        serde_json::Value::Object(object) => object,
        serde_json::Value::Array(_) => {
            return Err(bad_request(
                "batched requests are not accepted; send one operation per request",
            ))
        }
        _ => return Err(bad_request(SHAPE)),
    };
    let query = match object.remove("query") {
        Some(serde_json::Value::String(query)) => query,
        _ => return Err(bad_request(SHAPE)),
    };
    let mut request = async_graphql::Request::new(query);
    match object.remove("operationName") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(bad_request(SHAPE)),
    }
    match object.remove("variables") {
        None | Some(serde_json::Value::Null) => {}
        Some(variables @ serde_json::Value::Object(_)) => {
            request = request.variables(Variables::from_json(variables));
        }
        Some(_) => return Err(bad_request(SHAPE)),
    }
    Ok(request)
}

/// A GraphQL response as the endpoint sends it.
pub fn graphql_response(response: async_graphql::Response) -> Response {
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(error) => {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiError::internal(&error),
            )
            .into_response()
        }
    };
    let mut answer = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(GRAPHQL_RESPONSE_JSON),
        )],
        body,
    )
        .into_response();
    if response.is_ok() {
        if let Some(value) = response
            .cache_control
            .value()
            .and_then(|value| HeaderValue::from_str(&value).ok())
        {
            answer.headers_mut().insert(header::CACHE_CONTROL, value);
        }
    }
    answer.headers_mut().extend(response.http_headers);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_a_utf8_charset_only() {
        for accepted in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/graphql-response+json",
        ] {
            assert!(
                is_json(Some(&HeaderValue::from_static(accepted))),
                "{accepted}"
            );
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/jsonx",
        ] {
            assert!(
                !is_json(Some(&HeaderValue::from_static(refused))),
                "{refused}"
            );
        }
        assert!(!is_json(None));
    }
}
