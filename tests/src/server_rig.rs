//! The real server in-process, as `dezky serve --dev` builds it (`serve::bind`: settings,
//! stores, processors, the router with `/healthz` and `/graphql`, the accept loop), on a
//! throw-away SQLite database in a temporary directory, with flags chosen per suite: for the
//! suites that drive the HTTP edge itself (timeouts, body limits, load shedding).

use std::net::SocketAddr;

use clap::Parser;
use dezky_api::dev::DevKey;
use dezky_api::serve::{bind, ServeArgs};
use dezky_api::settings::Settings;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

/// The group claim that makes a development token's holder a platform admin.
const PLATFORM_ADMINS: &str = "dezky-platform-admins";

/// The command line of `dezky serve`, as the binary reads it.
#[derive(Parser)]
struct ServeCommand {
    #[command(flatten)]
    settings: Settings,
    #[command(flatten)]
    serve: ServeArgs,
}

/// A running development server.
pub struct DevServer {
    /// Where it listens.
    pub address: SocketAddr,
    key: DevKey,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl DevServer {
    /// Starts `dezky serve --dev` on a loopback port with the extra command-line `flags`
    /// (`--http-header-read-timeout-ms 300`, say).
    pub async fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let database = format!("sqlite:{}", dir.path().join("dezky.db").display());
        let mut args = vec![
            "dezky",
            "--database-url",
            &database,
            "--listen",
            "127.0.0.1:0",
            "--dev",
        ];
        args.extend_from_slice(flags);
        let command = ServeCommand::try_parse_from(args).expect("serve flags");
        let key_path = DevKey::path(dir.path());
        let bound = bind(&command.settings, &command.serve, &key_path)
            .await
            .expect("bind");
        let address = bound.address;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            key: DevKey::load_or_create(&key_path).expect("development key"),
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A development token for `subject` in `groups`.
    pub fn token(&self, subject: &str, groups: &[&str]) -> String {
        let mut claims = Map::new();
        claims.insert("sub".into(), subject.into());
        claims.insert("email".into(), format!("{subject}@dezky.localhost").into());
        claims.insert("email_verified".into(), true.into());
        claims.insert("groups".into(), json!(groups));
        self.key.token(claims).expect("token")
    }

    /// A platform admin's development token.
    pub fn operator(&self) -> String {
        self.token("operator", &[PLATFORM_ADMINS])
    }

    /// POSTs `query` to `/graphql` as JSON, with `token` as the bearer if any: the status and
    /// the body as JSON.
    pub async fn graphql(&self, token: Option<&str>, query: &str) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(self.url("/graphql"))
            .json(&json!({"query": query}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
