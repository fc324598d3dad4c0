//! The API explorer at `GET /graphql`: GraphiQL, with every file it needs compiled into the
//! binary and served by this server, so that opening it fetches nothing from another origin
//! (it works offline, and an admin's visit tells no third party about it; ADR 0004).
//!
//! The page and its assets live in `api/assets/explorer/` (vendored by
//! `ops/refresh-explorer-assets`). Assets are served under a path that carries their content
//! digest, `explorer/<digest>/<file>`, so browsers may cache them for good and a new build is
//! picked up at once. The page itself carries the security headers of [`SECURITY_HEADERS`].

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page's Content-Security-Policy: nothing but this origin, with two exceptions that are
/// not origins: GraphiQL's stylesheet carries its fonts and icons as `data:` URLs, and the page
/// names an empty `data:` icon so that browsers do not ask for `/favicon.ico`. No inline script
/// or style is allowed (the page has none), nor any frame, plugin, form target or `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// Headers on every HTML answer: the policy above, no MIME sniffing, no `Referer` sent to
/// the links the page shows (GraphiQL links to its documentation), never framed (the older
/// header too, for browsers without `frame-ancestors`), and revalidated on every visit.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
];

/// Where the assets are served, below the API's root.
pub const ASSET_PREFIX: &str = "/explorer";

/// How long browsers keep an asset: a year, and never revalidated, since its path changes
/// with its content.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The page's template; `{file}` placeholders become asset paths.
const PAGE_TEMPLATE: &str = include_str!("../assets/explorer/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One file the explorer serves.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/explorer/", $name)),
        }
    };
}

/// Every asset: the page's scripts and stylesheets, and the vendored packages' licences
/// (served so that the notices travel with the code, as their MIT licences ask).
static ASSETS: [Asset; 9] = [
    asset!("react.production.min.js", JS),
    asset!("react-dom.production.min.js", JS),
    asset!("graphiql.min.js", JS),
    asset!("graphiql.min.css", CSS),
    asset!("explorer.css", CSS),
    asset!("init.js", JS),
    asset!("LICENSE.graphiql", TEXT),
    asset!("LICENSE.react", TEXT),
    asset!("LICENSE.react-dom", TEXT),
];

/// Each asset's digest (the first 16 hex digits of its SHA-256), in [`ASSETS`] order,
/// computed once.
static DIGESTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = ring::digest::digest(&ring::digest::SHA256, asset.bytes);
            hex::encode(&digest.as_ref()[..8])
        })
        .collect()
});

/// The rendered page, computed once: the template with each placeholder replaced by its
/// asset's path relative to `/graphql` (so a proxy may mount the API under a prefix).
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut page = PAGE_TEMPLATE.to_owned();
    for (asset, digest) in ASSETS.iter().zip(DIGESTS.iter()) {
        let relative = format!("{}/{digest}/{}", &ASSET_PREFIX[1..], asset.name);
        page = page.replace(&format!("{{{}}}", asset.name), &relative);
    }
    page
});

/// The path (from the server's root) of every asset the explorer serves, page-linked or not.
pub fn asset_paths() -> Vec<String> {
    ASSETS
        .iter()
        .zip(DIGESTS.iter())
        .map(|(asset, digest)| format!("{ASSET_PREFIX}/{digest}/{}", asset.name))
        .collect()
}

/// GET /graphql: the explorer's page, with the security headers.
pub async fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE.as_str(),
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// GET /explorer/{digest}/{file}: an asset, if `digest` is its current content's (an old
/// digest is a page from before an upgrade; its browser reloads the page and gets new paths).
pub async fn asset(Path((digest, name)): Path<(String, String)>) -> Response {
    let found = ASSETS
        .iter()
        .zip(DIGESTS.iter())
        .find(|(asset, current)| asset.name == name && **current == digest);
    let Some((asset, digest)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type.to_owned()),
            (header::CACHE_CONTROL, ASSET_CACHE_CONTROL.to_owned()),
            (header::ETAG, format!("\"{digest}\"")),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The explorer's routes: the page at `GET /graphql` and its assets. Merged beside the
/// `POST /graphql` of [`crate::graphql::routes`].
pub fn routes() -> Router {
    Router::new()
        .route("/graphql", get(page))
        .route(&format!("{ASSET_PREFIX}/{{digest}}/{{file}}"), get(asset))
}
