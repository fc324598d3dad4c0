//! Configuration: one tree from defaults, command-line flags and `DEZKY_*` variables.

use std::path::{Path, PathBuf};

use clap::Args;
use dezky_commands::keys::{KeyError, SigningKey, TrustedKeys};

/// The embedded default: a single SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/dezky.db";
/// The default checkpoint origin (log name and key name).
pub const DEFAULT_ORIGIN: &str = "dezky.local/ledger";
/// File name of the signing key created beside the SQLite database on first use.
pub const DEFAULT_KEY_FILE_NAME: &str = "ledger.key";

/// A value that must never reach a log line or a panic message.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Event store: `sqlite:PATH` (embedded default) or `postgres://USER@HOST/DB`.
    #[arg(long, global = true, env = "DEZKY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: Secret,

    /// The private key that signs checkpoints (signed-note format). Without it, the embedded
    /// SQLite default creates `ledger.key` beside the database on first use; PostgreSQL
    /// deployments must configure one.
    #[arg(long, global = true, env = "DEZKY_SIGNING_KEY_FILE")]
    pub signing_key: Option<PathBuf>,

    /// Extra trusted public keys (one a line), e.g. keys rotated out that signed older
    /// checkpoints.
    #[arg(long, global = true, env = "DEZKY_TRUSTED_KEYS_FILE")]
    pub trusted_keys: Option<PathBuf>,

    /// The log's name, written as the origin line of every checkpoint.
    #[arg(long, global = true, env = "DEZKY_LEDGER_ORIGIN", default_value = DEFAULT_ORIGIN)]
    pub origin: String,

    /// Database connections per process.
    #[arg(
        long,
        global = true,
        env = "DEZKY_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub database_max_connections: u32,

    /// The platform's own mail domain (the apex): only the platform tenant may add it, every
    /// name under it is reserved, and each workspace gets `{slug}.{apex}` as its service domain.
    #[arg(
        long,
        global = true,
        env = "DEZKY_PLATFORM_DOMAIN",
        default_value = DEFAULT_PLATFORM_DOMAIN
    )]
    pub platform_domain: String,

    /// Stalwart's management listener (`http://stalwart:8080`). Unset: mail is "not
    /// configured", and every mail effect says so.
    #[arg(long, global = true, env = "DEZKY_STALWART_URL")]
    pub stalwart_url: Option<String>,

    /// Stalwart's admin user.
    #[arg(
        long,
        global = true,
        env = "DEZKY_STALWART_USER",
        default_value = "admin"
    )]
    pub stalwart_user: String,

    /// Stalwart's admin secret.
    #[arg(
        long,
        global = true,
        env = "DEZKY_STALWART_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub stalwart_secret: Secret,

    /// The mail host mail clients connect to (IMAP on 993, submission on 465, both implicit
    /// TLS): what the Apple profile, autoconfig and autodiscover name. Unset: client set-up
    /// answers "not configured".
    #[arg(long, global = true, env = "DEZKY_MAIL_HOST")]
    pub mail_host: Option<String>,

    /// The DAV base URL clients use for calendars and contacts (Stalwart:
    /// `https://mail.example.eu/dav`; homes are `cal/<address>/` and `card/<address>/` under
    /// it). Unset: profiles carry mail only, and `me.clientSetup` has no DAV URLs.
    #[arg(long, global = true, env = "DEZKY_DAV_URL")]
    pub dav_url: Option<String>,

    /// The nameserver domain verification asks (`IP:PORT`). Unset: the system's resolvers.
    #[arg(long, global = true, env = "DEZKY_DNS_NAMESERVER")]
    pub dns_nameserver: Option<std::net::SocketAddr>,

    /// The CalDAV URL hosts' booking calendars are relative to (Stalwart:
    /// `https://mail.example.eu/dav/cal/<account>/`). Unset: the calendar is "not configured",
    /// and no booking is confirmed (it stays pending, never confirmed without its event).
    #[arg(long, global = true, env = "DEZKY_CALDAV_URL")]
    pub caldav_url: Option<String>,

    /// The CalDAV user (HTTP Basic).
    #[arg(long, global = true, env = "DEZKY_CALDAV_USER", default_value = "")]
    pub caldav_user: String,

    /// The CalDAV password.
    #[arg(
        long,
        global = true,
        env = "DEZKY_CALDAV_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub caldav_password: Secret,

    /// How long after a failed calendar write a pending booking is tried again.
    #[arg(
        long,
        global = true,
        env = "DEZKY_BOOKING_RETRY_INTERVAL_MS",
        default_value_t = dezky_commands::booking::DEFAULT_RETRY_INTERVAL_MS
    )]
    pub booking_retry_interval_ms: u64,

    /// Calendar-write attempts before a booking becomes `calendar_failed` and frees its slot.
    #[arg(
        long,
        global = true,
        env = "DEZKY_BOOKING_MAX_ATTEMPTS",
        default_value_t = dezky_commands::booking::DEFAULT_MAX_ATTEMPTS
    )]
    pub booking_max_attempts: u32,

    /// The secret attendees' cancel/reschedule links are signed with (at least 32 characters).
    /// Unset: no links are issued, and cancelling or moving is left to the host.
    #[arg(
        long,
        global = true,
        env = "DEZKY_BOOKING_LINK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub booking_link_secret: Secret,

    /// The booking page's address for managing a booking (`https://book.dezky.eu/manage`):
    /// confirmations link there with the attendee's signed token. Unset: no link in the
    /// e-mail.
    #[arg(long, global = true, env = "DEZKY_BOOKING_MANAGE_URL")]
    pub booking_manage_url: Option<String>,

    /// The SMTP submission server booking confirmations go through (Stalwart's). Unset:
    /// outgoing mail is "not configured", recorded on each booking, and nothing is sent.
    #[arg(long, global = true, env = "DEZKY_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// Its port.
    #[arg(long, global = true, env = "DEZKY_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// Transport security: `starttls` (required STARTTLS), `tls` (implicit TLS) or `plain`
    /// (private networks only).
    #[arg(
        long,
        global = true,
        env = "DEZKY_SMTP_SECURITY",
        default_value = "starttls"
    )]
    pub smtp_security: String,

    /// The account to authenticate as (empty: no authentication).
    #[arg(long, global = true, env = "DEZKY_SMTP_USER", default_value = "")]
    pub smtp_user: String,

    /// Its password.
    #[arg(
        long,
        global = true,
        env = "DEZKY_SMTP_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub smtp_password: Secret,

    /// Infrastructure probe targets (`DEZKY_HEALTH_*`).
    #[command(flatten)]
    pub health: crate::health::HealthSettings,

    /// The sender of booking confirmations.
    #[arg(
        long,
        global = true,
        env = "DEZKY_SMTP_FROM",
        default_value = "Bookings <bookings@dezky.localhost>"
    )]
    pub smtp_from: String,
}

/// The shortest booking-link secret accepted: 256 bits of text, HMAC-SHA256's own size.
pub const MIN_BOOKING_LINK_SECRET_CHARS: usize = 32;

/// The platform domain when none is configured: a name that can never be a customer's.
pub const DEFAULT_PLATFORM_DOMAIN: &str = "dezky.localhost";

/// Why the settings cannot produce what a command needs.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key file problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// PostgreSQL without a configured key.
    #[error("no signing key configured: set DEZKY_SIGNING_KEY_FILE (create one with `dezky keys generate --out FILE`)")]
    NoSigningKey,
}

impl Settings {
    /// The mail server: Stalwart when its URL is configured, otherwise an adapter that
    /// answers every call with "not configured" (so effects say so, and never pretend).
    pub fn mail_server(&self) -> anyhow::Result<dezky_adapters::stalwart::StalwartMail> {
        use dezky_adapters::stalwart::{StalwartConfig, StalwartMail};
        let Some(url) = &self.stalwart_url else {
            return Ok(StalwartMail::unconfigured());
        };
        let config = StalwartConfig::new(
            url.clone(),
            self.stalwart_user.clone(),
            dezky_commands::ports::Secret::new(self.stalwart_secret.expose()),
        );
        Ok(StalwartMail::new(config, reqwest::Client::new())?)
    }

    /// The booking calendar: CalDAV when its URL is configured, otherwise an adapter that
    /// answers every call with "not configured".
    pub fn calendar_server(&self) -> anyhow::Result<dezky_adapters::caldav::CalDav> {
        use dezky_adapters::caldav::{CalDav, CalDavConfig};
        let Some(url) = &self.caldav_url else {
            return Ok(CalDav::unconfigured());
        };
        let config = CalDavConfig::new(
            url.clone(),
            self.caldav_user.clone(),
            dezky_commands::ports::Secret::new(self.caldav_password.expose()),
        );
        Ok(CalDav::new(config)?)
    }

    /// The key attendees' links are signed with: `None` when unset, an error when too short
    /// to be a key.
    pub fn booking_link_key(&self) -> anyhow::Result<Option<crate::graphql::booking::LinkKey>> {
        let secret = self.booking_link_secret.expose();
        if secret.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            secret.chars().count() >= MIN_BOOKING_LINK_SECRET_CHARS,
            "DEZKY_BOOKING_LINK_SECRET must be at least {MIN_BOOKING_LINK_SECRET_CHARS} characters"
        );
        Ok(Some(crate::graphql::booking::LinkKey::new(
            secret.as_bytes(),
        )))
    }

    /// The booking confirmations' mail server: SMTP when a host is configured, otherwise an
    /// adapter that answers "not configured".
    pub fn booking_mailer(&self) -> anyhow::Result<dezky_adapters::smtp::SmtpMailer> {
        use dezky_adapters::smtp::{
            SmtpConfig, SmtpMailer, SmtpSecurity, DEFAULT_SMTP_TIMEOUT_SECONDS,
        };
        let Some(host) = &self.smtp_host else {
            return Ok(SmtpMailer::unconfigured());
        };
        let security = match self.smtp_security.as_str() {
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            "plain" => SmtpSecurity::Plain,
            other => {
                anyhow::bail!("DEZKY_SMTP_SECURITY must be starttls, tls or plain, not {other:?}")
            }
        };
        Ok(SmtpMailer::new(SmtpConfig {
            host: host.clone(),
            port: self.smtp_port,
            security,
            user: (!self.smtp_user.is_empty()).then(|| self.smtp_user.clone()),
            password: dezky_commands::ports::Secret::new(self.smtp_password.expose()),
            from: self.smtp_from.clone(),
            timeout_seconds: DEFAULT_SMTP_TIMEOUT_SECONDS,
        })?)
    }

    /// Client set-up's mail host and DAV base, checked.
    pub fn client_setup(&self) -> anyhow::Result<crate::client_setup::ClientSetupSettings> {
        Ok(crate::client_setup::ClientSetupSettings::new(
            self.mail_host.as_deref(),
            self.dav_url.as_deref(),
        )?)
    }

    /// The booking flow's limits.
    pub fn booking_settings(&self) -> dezky_commands::booking::BookingSettings {
        dezky_commands::booking::BookingSettings {
            retry_interval_ms: self.booking_retry_interval_ms.max(1),
            max_attempts: self.booking_max_attempts.max(1),
        }
    }

    /// Domain verification's resolver: the configured nameserver, or the system's. A
    /// configured nameserver that cannot be used is an error; a machine without a readable
    /// resolver configuration (a minimal container) runs with DNS checks "not configured",
    /// which its effects then say, rather than refusing to start.
    pub fn dns_verifier(&self) -> anyhow::Result<DomainDns> {
        match dezky_adapters::dns::DnsVerifier::new(self.dns_nameserver) {
            Ok(verifier) => Ok(DomainDns::Resolver(Box::new(verifier))),
            Err(error) if self.dns_nameserver.is_none() => {
                tracing::warn!(%error, "no system resolver: DNS verification is not configured (set DEZKY_DNS_NAMESERVER)");
                Ok(DomainDns::NotConfigured)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Ledger connection options.
    pub fn ledger_options(&self) -> dezky_commands::LedgerOptions {
        dezky_commands::LedgerOptions {
            database_url: self.database_url.expose().to_owned(),
            max_connections: self.database_max_connections,
        }
    }

    /// The SQLite file, when the store is SQLite.
    fn sqlite_path(&self) -> Option<&Path> {
        self.database_url
            .expose()
            .strip_prefix("sqlite:")
            .map(|p| Path::new(p.trim_start_matches("//")))
    }

    /// The directory for local state (keys created on first use): beside the SQLite database,
    /// or `./data` otherwise.
    pub fn data_dir(&self) -> PathBuf {
        self.sqlite_path()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("data"), Path::to_path_buf)
    }

    /// The signing key: the configured file, or for the embedded default one created beside
    /// the database on first use (mode 0600).
    pub fn signing_key(&self) -> Result<SigningKey, SettingsError> {
        if let Some(path) = &self.signing_key {
            return Ok(SigningKey::load(path)?);
        }
        let Some(db) = self.sqlite_path() else {
            return Err(SettingsError::NoSigningKey);
        };
        let dir = db.parent().unwrap_or(Path::new("."));
        Ok(SigningKey::load_or_create(
            &dir.join(DEFAULT_KEY_FILE_NAME),
            &self.origin,
        )?)
    }

    /// The public keys this deployment trusts: the signing key's and any listed in
    /// `--trusted-keys`.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, SettingsError> {
        let mut lines = Vec::new();
        match self.signing_key() {
            Ok(key) => lines.push(key.public_line().to_owned()),
            // With only old keys configured, verification still works on them.
            Err(SettingsError::NoSigningKey) if self.trusted_keys.is_some() => {}
            Err(error) => return Err(error),
        }
        if let Some(path) = &self.trusted_keys {
            for line in TrustedKeys::load(path)?.lines() {
                if !lines.contains(line) {
                    lines.push(line.clone());
                }
            }
        }
        Ok(TrustedKeys::from_lines(lines)?)
    }
}

/// DNS for domain verification, or none.
#[derive(Debug, Clone)]
pub enum DomainDns {
    /// A working resolver.
    Resolver(Box<dezky_adapters::dns::DnsVerifier>),
    /// No resolver could be set up: every check says "not configured".
    NotConfigured,
}

impl dezky_commands::ports::dns::DnsCheck for DomainDns {
    async fn check(
        &self,
        expected: &[dezky_domain::domains::ExpectedRecord],
    ) -> Result<Vec<dezky_domain::domains::RecordCheck>, dezky_commands::ports::dns::DnsCheckError>
    {
        match self {
            DomainDns::Resolver(verifier) => {
                dezky_commands::ports::dns::DnsCheck::check(verifier.as_ref(), expected).await
            }
            DomainDns::NotConfigured => {
                Err(dezky_commands::ports::dns::DnsCheckError::NotConfigured)
            }
        }
    }
}
