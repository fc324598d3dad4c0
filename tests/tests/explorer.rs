//! The API explorer at `GET /graphql` loads nothing from another origin: the real server
//! (`serve::bind`, what `dezky serve --dev` runs) on a loopback port with a scratch SQLite,
//! its page and every asset scanned for loads from elsewhere, its security headers checked, and
//! the page driven in headless Chromium with every other origin blocked
//! (`tests/browser/explorer_check.py`, installed by `ops/ensure-browser`).
//!
//! The origin rule, precisely. An answer "references another origin" when it would make a
//! browser fetch from one. So:
//! - the HTML page holds no absolute URL at all, and every `src`/`href` in it is a same-origin
//!   relative path (or `data:`), each of which is fetched and scanned in turn;
//! - a stylesheet has no `@import`, and every `url(…)` in it is `data:` or relative;
//! - no script or stylesheet has a `sourceMappingURL`/`sourceURL` (browser tools fetch those);
//! - the project's own files (page, `init.js`, `explorer.css`) mention no other origin at all;
//! - the vendored GraphiQL and React builds may *mention* other origins, only those in
//!   [`MENTIONED_ONLY`] (documentation links in comments and developer warnings, links a user
//!   may click, XML namespace names), each checked by reading the bundle; a refresh that
//!   brings a new one fails here until a person has checked it too.
//!
//! What a static scan cannot prove about minified code, two other layers do: the page's
//! Content-Security-Policy (checked here to allow only `'self'`, plus `data:` for fonts and
//! images) makes the browser refuse any load from elsewhere, and the browser test watches
//! every request the page really makes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use dezky_api::dev::DevKey;
use dezky_api::serve::{bind, ServeArgs};
use dezky_api::settings::Settings;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Other origins the vendored bundles mention without loading anything from them (read in
/// `graphiql.min.js` and `react-dom.production.min.js`; the reason is where they appear).
const MENTIONED_ONLY: &[(&str, &str)] = &[
    (
        "http://",
        "markdown-it's linkify puts the scheme before a bare link it renders, then strips it",
    ),
    (
        "http://www.w3.org",
        "SVG, MathML, XHTML, XLink and XML namespace names (icons, React DOM)",
    ),
    (
        "https://github.com",
        "bundled packages' licence comments, the logo's link, a React-version error text",
    ),
    (
        "https://codemirror.net",
        "the short-keys dialog's link to CodeMirror's key-map manual",
    ),
    (
        "https://commonmark.org",
        "the built-in @deprecated directive's description",
    ),
    (
        "https://en.wikipedia.org",
        "the built-in Float scalar's description",
    ),
    (
        "https://radix-ui.com",
        "a developer warning of Radix's dialog",
    ),
    (
        "https://reactjs.org",
        "React DOM's error-decoder link in its error texts",
    ),
];

/// The project's own explorer files: these may mention no other origin at all.
const OWN_FILES: &[&str] = &["init.js", "explorer.css"];

/// Where `ops/ensure-browser` installs Playwright's Python; `DEZKY_PLAYWRIGHT_PYTHON` overrides.
const PLAYWRIGHT_PYTHON: &str = "/opt/playwright/bin/python";

/// The command-line settings and serve options, parsed as `dezky serve` parses them.
#[derive(Parser)]
struct ServeCommand {
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    serve: ServeArgs,
}

/// `dezky serve --dev` in-process on a loopback port, over a scratch SQLite.
struct DevServer {
    address: SocketAddr,
    key: DevKey,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl DevServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("scratch directory");
        let database = format!("sqlite:{}", dir.path().join("dezky.db").display());
        let command = ServeCommand::try_parse_from([
            "dezky",
            "--database-url",
            &database,
            "--dev",
            "--listen",
            "127.0.0.1:0",
        ])
        .expect("serve options");
        let key_path = DevKey::path(&command.settings.data_dir());
        let bound = bind(&command.settings, &command.serve, &key_path)
            .await
            .expect("the server binds");
        let address = bound.address;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            key: DevKey::load_or_create(&key_path).expect("development key"),
            _stop: stop,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// What `dezky dev token --role platform-admin` prints.
    fn operator_token(&self) -> String {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), "dev-platform-admin".into());
        claims.insert("email".into(), "operator@dezky.local".into());
        claims.insert("groups".into(), json!(["dezky-platform-admins"]));
        self.key.token(claims).expect("token")
    }
}

/// One answer of the server.
struct Answer {
    path: String,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(server: &DevServer, path: &str) -> Answer {
    let response = reqwest::get(server.url(path)).await.expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    let headers = response.headers().clone();
    Answer {
        path: path.to_owned(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        headers,
        body: response.text().await.expect("body"),
    }
}

/// The origins of the absolute URLs in `text`: `scheme://host[:port]` (host empty for a bare
/// `scheme://`), and protocol-relative `//host` where it stands at the start of a string or
/// attribute value (after a quote, `(` or `=`), which is where a browser would resolve it.
fn origins(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':';
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("//") {
        let slashes = at + offset;
        at = slashes + 2;
        let mut end = at;
        while end < bytes.len() && host_char(bytes[end]) {
            end += 1;
        }
        let host = text[at..end].trim_end_matches(':');
        if slashes > 0 && bytes[slashes - 1] == b':' {
            let mut start = slashes - 1;
            while start > 0 && bytes[start - 1].is_ascii_alphabetic() {
                start -= 1;
            }
            if start < slashes - 1 {
                let scheme = text[start..slashes - 1].to_ascii_lowercase();
                found.push(format!("{scheme}://{host}"));
            }
        } else if slashes > 0
            && matches!(bytes[slashes - 1], b'"' | b'\'' | b'`' | b'(' | b'=')
            && host.contains('.')
            && host
                .split('.')
                .next_back()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            found.push(format!("//{host}"));
        }
    }
    found
}

/// The values of `attribute="…"` in an HTML text.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect()
}

/// The arguments of the `url(…)` functions in a stylesheet, unquoted.
fn css_urls(css: &str) -> Vec<&str> {
    css.match_indices("url(")
        .map(|(i, _)| {
            let rest = &css[i + 4..];
            rest[..rest.find(')').expect("closing parenthesis")]
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
        })
        .collect()
}

/// Whether a URL stays on the page's origin: a path, never `//host` or `scheme:`.
fn is_relative(url: &str) -> bool {
    !url.starts_with("//")
        && !url
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .contains(':')
}

#[tokio::test]
async fn every_answer_the_explorer_sends_loads_nothing_from_another_origin() {
    let server = DevServer::start().await;
    let page = get(&server, "/graphql").await;
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert_eq!(
        origins(&page.body),
        Vec::<String>::new(),
        "the page names no origin"
    );
    for tag in [
        "<base",
        "<iframe",
        "<object",
        "<embed",
        "http-equiv",
        "<style",
        " style=",
    ] {
        assert!(!page.body.contains(tag), "the page has no {tag}");
    }

    // Every URL the page holds: relative (then fetched and scanned) or `data:`.
    let mut linked = Vec::new();
    for url in attribute_values(&page.body, "src")
        .into_iter()
        .chain(attribute_values(&page.body, "href"))
    {
        if url.starts_with("data:") {
            continue;
        }
        assert!(is_relative(url), "the page loads {url}");
        linked.push(format!("/{url}"));
    }
    let scripts = attribute_values(&page.body, "src").len();
    assert_eq!(
        page.body.matches("<script").count(),
        scripts,
        "every script is a file (no inline script)"
    );

    // The linked assets and those the page does not link (the licences).
    let mut paths = linked.clone();
    for path in dezky_api::explorer::asset_paths() {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    assert!(paths.len() >= 9, "{paths:?}");
    let mut mentioned = Vec::new();
    for path in &paths {
        let answer = get(&server, path).await;
        let name = path.rsplit('/').next().expect("file name");
        for comment in ["sourceMappingURL", "sourceURL="] {
            assert!(!answer.body.contains(comment), "{path} has a {comment}");
        }
        if answer.content_type.starts_with("text/css") {
            assert!(!answer.body.contains("@import"), "{path} imports");
            for url in css_urls(&answer.body) {
                assert!(
                    url.starts_with("data:") || is_relative(url),
                    "{path} loads {url}"
                );
            }
        }
        let found = origins(&answer.body);
        if OWN_FILES.contains(&name) || answer.content_type.starts_with("text/plain") {
            assert_eq!(found, Vec::<String>::new(), "{path} names no origin");
        }
        mentioned.extend(
            found
                .into_iter()
                .map(|origin| (origin, answer.path.clone())),
        );
    }
    let unexplained: Vec<_> = mentioned
        .iter()
        .filter(|(origin, _)| !MENTIONED_ONLY.iter().any(|(known, _)| known == origin))
        .collect();
    assert!(
        unexplained.is_empty(),
        "origins the vendored code mentions that nobody has checked: {unexplained:?}"
    );
}

#[tokio::test]
async fn the_explorer_page_allows_only_its_own_origin_and_carries_the_security_headers() {
    let server = DevServer::start().await;
    let page = get(&server, "/graphql").await;
    let header = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("the page has no {name}"))
            .to_owned()
    };
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");

    let policy = header("content-security-policy");
    let directives: Vec<(&str, Vec<&str>)> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut words = d.split_whitespace();
            (words.next().expect("directive name"), words.collect())
        })
        .collect();
    let sources = |name: &str| {
        directives
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("the policy has no {name}: {policy}"))
    };
    for name in [
        "default-src",
        "frame-ancestors",
        "base-uri",
        "object-src",
        "form-action",
    ] {
        assert_eq!(sources(name), ["'none'"], "{name} in {policy}");
    }
    for name in ["script-src", "style-src", "connect-src"] {
        assert_eq!(sources(name), ["'self'"], "{name} in {policy}");
    }
    // Fonts and icons come inlined in GraphiQL's stylesheet as data: URLs, which are not an
    // origin; nothing else but 'self' and 'none' may appear anywhere.
    for name in ["font-src", "img-src"] {
        assert_eq!(sources(name), ["'self'", "data:"], "{name} in {policy}");
    }
    for (name, sources) in &directives {
        for source in sources {
            assert!(
                ["'self'", "'none'", "data:"].contains(source),
                "{name} allows {source}: {policy}"
            );
        }
    }

    // The server's other GET answers are no pages, so no other answer needs these headers.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/dezky/ledger-keys",
    ] {
        let answer = get(&server, path).await;
        assert!(
            !answer.content_type.starts_with("text/html"),
            "{path} answers {}",
            answer.content_type
        );
    }
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_cached_for_good_under_their_digest() {
    let server = DevServer::start().await;
    for path in dezky_api::explorer::asset_paths() {
        let answer = get(&server, &path).await;
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        };
        assert_eq!(answer.content_type, expected, "{path}");
        assert_eq!(
            answer.headers["cache-control"], "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(
            answer.headers["x-content-type-options"], "nosniff",
            "{path}"
        );
        let digest = path.split('/').nth(2).expect("digest");
        assert_eq!(answer.headers["etag"], format!("\"{digest}\"").as_str());
    }
    // Another digest is an asset from another build: not served.
    let stale = reqwest::get(server.url("/explorer/0000000000000000/init.js"))
        .await
        .expect("GET");
    assert_eq!(stale.status(), 404);
}

#[tokio::test]
async fn the_explorer_runs_a_query_in_headless_chromium_with_every_other_origin_blocked() {
    let server = DevServer::start().await;
    let token = server.operator_token();
    // A tenant the query will list: only a caller whose header reached the server sees it.
    let created = reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "mutation { createTenant(input: {organization: \"Explorer GmbH\", slug: \"explorer-check\", plan: \"standard\", seats: 1, firstAdmin: {email: \"ada@explorer-check.eu\", displayName: \"Ada\"}}) { slug } }"}))
        .send()
        .await
        .expect("POST")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(created["errors"], Value::Null, "{created}");

    let python = std::env::var_os("DEZKY_PLAYWRIGHT_PYTHON")
        .map_or_else(|| PathBuf::from(PLAYWRIGHT_PYTHON), PathBuf::from);
    assert!(
        python.exists(),
        "{} is missing: the explorer's browser test needs Playwright and Chromium (run ops/ensure-browser)",
        python.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/explorer_check.py");
    let mut command = Command::new(python);
    command.args([
        script,
        &server.url("/graphql"),
        "--token",
        &token,
        "--query",
        "{\n  me { subject platformAdmin }\n  tenants { nodes { slug } }\n}\n",
        "--expect",
        "\"dev-platform-admin\"",
        "--expect",
        "\"explorer-check\"",
    ]);
    // A picture of the page after the query, for a person to look at.
    if let Some(png) = std::env::var_os("DEZKY_EXPLORER_SCREENSHOT") {
        command.arg("--screenshot").arg(png);
    }
    // The browser talks to this test's server, which runs on this runtime: wait off it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("the browser driver runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("no report from the driver:\n{stdout}\n{stderr}"));
    assert!(output.status.success(), "{report:#}\n{stderr}");

    assert_eq!(report["blocked"], json!([]), "{report:#}");
    // The schema reached GraphiQL: its docs name the root types.
    assert_eq!(
        report["docs_root_types"],
        json!(["query", "mutation"]),
        "{report:#}"
    );
    assert_eq!(report["csp_violations"], json!([]), "{report:#}");
    let own = format!("http://{}/", server.address);
    let requests = report["requests"].as_array().expect("requests");
    assert!(
        requests
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.starts_with(&own))),
        "{report:#}"
    );
    // The page, its stylesheets and scripts, and at least the query itself.
    assert!(requests.len() >= 8, "{report:#}");
    assert_eq!(
        report["result"]["data"]["me"]["subject"], "dev-platform-admin",
        "{report:#}"
    );
    assert_eq!(
        report["result"]["data"]["tenants"]["nodes"],
        json!([{"slug": "explorer-check"}]),
        "{report:#}"
    );
}
