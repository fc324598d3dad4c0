//! Client set-up: what a mail client needs to configure itself against this deployment.
//!
//! * `GET /client-setup/apple.mobileconfig` — an Apple configuration profile (Mail, CalDAV and
//!   CardDAV in one install) for the signed-in member's own mailbox ([`profile`]);
//! * `GET /mail/config-v1.1.xml` and `GET /.well-known/autoconfig/mail/config-v1.1.xml` —
//!   Thunderbird's autoconfig (`clientConfig` 1.1, [`discovery`]);
//! * `POST /autodiscover/autodiscover.xml` — Outlook's POX autodiscover ([`discovery`]).
//!
//! Everything points at the configured mail host (`DEZKY_MAIL_HOST`: IMAP on 993 and
//! submission on 465, both implicit TLS) and DAV base (`DEZKY_DAV_URL`). An unset host is
//! answered `NOT_CONFIGURED`: a client is never pointed at a host this deployment made up.
//!
//! Discovery is anonymous (clients ask before anyone signs in), so it answers only for
//! addresses on a workspace's service domain (`{slug}.{platform domain}`) or on a domain the
//! workspace has *verified*; anything else is the same bare 404, which says nothing about
//! whether the domain is known, unverified or another workspace's. It never says whether a
//! mailbox exists either: the answer depends on the domain alone.
//!
//! The profile is personal: the caller must be recognised (issuer and subject, or a verified
//! address before linking — the same rule GraphQL's standing uses) as the active member who
//! owns the address, in a workspace that hosts it. Every other request — another member's
//! address, another workspace's, an address nobody has — gets the same `403 FORBIDDEN`.

pub mod discovery;
pub mod profile;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dezky_commands::saga::tenant_provisioning::service_domain;
use dezky_domain::domains::{DomainName, DomainStatus};
use dezky_domain::tenant::{recognises, MemberStatus};
use dezky_projections::tenants::{tenant_by_slug, tenant_detail, MemberRow, TenantRow};
use serde::Deserialize;

use crate::graphql::authz::{self, Viewer};
use crate::graphql::error::{ApiError, Code};
use crate::graphql::http::Refused;
use crate::graphql::{ApiContext, TokenCheck};

/// The profile's path.
pub const MOBILECONFIG_PATH: &str = "/client-setup/apple.mobileconfig";
/// Thunderbird's autoconfig path on the `autoconfig.<domain>` host.
pub const AUTOCONFIG_PATH: &str = "/mail/config-v1.1.xml";
/// Thunderbird's autoconfig path on the domain itself.
pub const WELL_KNOWN_AUTOCONFIG_PATH: &str = "/.well-known/autoconfig/mail/config-v1.1.xml";
/// Outlook's autodiscover path.
pub const AUTODISCOVER_PATH: &str = "/autodiscover/autodiscover.xml";
/// The spelling Outlook itself uses (paths are case-sensitive here, and in Outlook's logs).
pub const AUTODISCOVER_PATH_OUTLOOK: &str = "/Autodiscover/Autodiscover.xml";
/// IMAP with implicit TLS.
pub const IMAP_PORT: u16 = 993;
/// Message submission with implicit TLS (RFC 8314).
pub const SUBMISSION_PORT: u16 = 465;
/// How long an autodiscover body may take to arrive.
pub const AUTODISCOVER_BODY_READ_TIMEOUT_MS: u64 = 10_000;
/// Longest address read from a request (RFC 5321's path limit).
pub const MAX_ADDRESS_CHARS: usize = 254;

/// Where clients are pointed: the settings `DEZKY_MAIL_HOST` and `DEZKY_DAV_URL`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSetupSettings {
    /// The mail host (IMAP 993 and submission 465, implicit TLS); `None`: not configured.
    pub mail_host: Option<String>,
    /// The DAV base URL (`https://mail.example.eu/dav`); `None`: calendars and contacts are
    /// not configured, and profiles and answers leave them out.
    pub dav: Option<DavBase>,
}

/// The DAV server's base URL, with the parts Apple's payloads want separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavBase {
    url: reqwest::Url,
}

/// Why a client set-up setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientSetupSettingsError {
    /// `DEZKY_MAIL_HOST` is not a host name.
    #[error("DEZKY_MAIL_HOST must be a host name (mail.example.eu), not {0:?}")]
    MailHost(String),
    /// `DEZKY_DAV_URL` is not an absolute http(s) URL with a host.
    #[error(
        "DEZKY_DAV_URL must be an absolute https:// URL (https://mail.example.eu/dav), not {0:?}"
    )]
    DavUrl(String),
}

impl ClientSetupSettings {
    /// Checks the two settings; blank counts as unset.
    pub fn new(
        mail_host: Option<&str>,
        dav_url: Option<&str>,
    ) -> Result<Self, ClientSetupSettingsError> {
        let mail_host = match mail_host.map(str::trim).filter(|h| !h.is_empty()) {
            None => None,
            Some(host) => Some(
                DomainName::parse(host)
                    .map_err(|_| ClientSetupSettingsError::MailHost(host.to_owned()))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let dav = match dav_url.map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => {
                let url = reqwest::Url::parse(raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
                    .filter(|u| u.query().is_none() && u.fragment().is_none())
                    .ok_or_else(|| ClientSetupSettingsError::DavUrl(raw.to_owned()))?;
                Some(DavBase { url })
            }
        };
        Ok(Self { mail_host, dav })
    }
}

impl DavBase {
    /// The host name.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The port (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }

    /// Whether clients use TLS.
    pub fn tls(&self) -> bool {
        self.url.scheme() == "https"
    }

    fn under(&self, kind: &str, address: &str) -> String {
        let base = self.url.as_str().trim_end_matches('/');
        format!("{base}/{kind}/{address}/")
    }

    /// The calendar home of `address` (Stalwart's `/dav/cal/<account>/`).
    pub fn caldav_url(&self, address: &str) -> String {
        self.under("cal", address)
    }

    /// The address-book home of `address` (Stalwart's `/dav/card/<account>/`).
    pub fn carddav_url(&self, address: &str) -> String {
        self.under("card", address)
    }

    /// The path of a home, for the payloads' principal URL.
    fn path(url: &str) -> String {
        reqwest::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
    }
}

/// An address split into its local part and canonical domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The local part, lower case.
    pub local: String,
    /// The domain, canonical (ASCII, lower case).
    pub domain: String,
}

impl Address {
    /// Reads an address a client sent; `None` for anything that is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.chars().count() > MAX_ADDRESS_CHARS {
            return None;
        }
        let (local, domain) = raw.rsplit_once('@')?;
        let local_ok = !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '&' | '@' | '\\'));
        if !local_ok {
            return None;
        }
        let domain = DomainName::parse(domain).ok()?.as_str().to_owned();
        Some(Self {
            local: local.to_ascii_lowercase(),
            domain,
        })
    }

    /// `local@domain`.
    pub fn text(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// Whether discovery answers for `domain`: a live workspace's service domain, or a domain
/// that a live workspace has verified.
pub async fn discoverable(api: &ApiContext, domain: &str) -> Result<bool, ApiError> {
    Ok(hosting_tenant(api, domain, true).await?.is_some())
}

/// The live workspace whose mail `domain` is: its service domain, or one of its domains
/// (`verified_only`: only once verified).
async fn hosting_tenant(
    api: &ApiContext,
    domain: &str,
    verified_only: bool,
) -> Result<Option<TenantRow>, ApiError> {
    let db = api.ledger.db();
    let apex = service_domain("", &api.platform_domain);
    // `service_domain("", apex)` is ".apex": a single label in front of it is a slug.
    if let Some(slug) = domain.strip_suffix(apex.as_str()) {
        if slug.is_empty() || slug.contains('.') {
            return Ok(None);
        }
        let row = tenant_by_slug(db, slug).await?;
        return Ok(row.filter(|t| {
            !t.status.is_deleted() && service_domain(&t.slug, &api.platform_domain) == domain
        }));
    }
    let Some(row) = dezky_projections::domains::domain(db, domain).await? else {
        return Ok(None);
    };
    if verified_only && row.status != DomainStatus::Verified {
        return Ok(None);
    }
    let tenant = tenant_detail(db, &row.tenant_id).await?.map(|d| d.tenant);
    Ok(tenant.filter(|t| !t.status.is_deleted()))
}

/// The caller's own workspace mailbox at an address.
#[derive(Debug, Clone)]
pub struct OwnMailbox {
    /// The address, canonical.
    pub address: String,
    /// The workspace.
    pub tenant: TenantRow,
    /// The member who owns it (the caller).
    pub member: MemberRow,
}

/// The caller's mailbox at `address`, or `FORBIDDEN` — the same answer whether the address is
/// another member's, another workspace's or nobody's, so the refusal tells nothing. The
/// caller must have a standing in the workspace ([`authz::standing`]) *and* be recognised as
/// the active member the address belongs to: an operator's standing is not someone else's
/// mailbox.
pub async fn own_mailbox(
    api: &ApiContext,
    viewer: &Viewer,
    address: &str,
) -> Result<OwnMailbox, ApiError> {
    let address = Address::parse(address)
        .ok_or_else(|| ApiError::new(Code::Validation, "not an e-mail address"))?;
    let Some(tenant) = hosting_tenant(api, &address.domain, false).await? else {
        return Err(ApiError::forbidden());
    };
    let db = api.ledger.db();
    authz::standing(db, viewer, &tenant).await?;
    let detail = tenant_detail(db, &tenant.id)
        .await?
        .ok_or_else(ApiError::forbidden)?;
    let text = address.text();
    let principal = viewer.principal();
    let member = detail
        .members
        .into_iter()
        .find(|m| {
            Address::parse(&m.email).is_some_and(|a| a.text() == text)
                && m.status == MemberStatus::Active
                && recognises(
                    m.subject.as_deref(),
                    m.subject_issuer.as_deref(),
                    &m.email,
                    &principal,
                )
        })
        .ok_or_else(ApiError::forbidden)?;
    if !member.has_mailbox {
        return Err(ApiError::new(
            Code::NotFound,
            "this address has no workspace mailbox",
        ));
    }
    Ok(OwnMailbox {
        address: text,
        tenant: detail.tenant,
        member,
    })
}

/// What the client set-up handlers reach.
#[derive(Clone)]
pub struct ClientSetupState {
    /// The API's context (ledger, platform domain, client set-up settings).
    pub api: ApiContext,
    /// How bearer tokens are checked.
    pub tokens: TokenCheck,
}

/// The client set-up routes.
pub fn routes(api: ApiContext, tokens: TokenCheck) -> Router {
    Router::new()
        .route(MOBILECONFIG_PATH, get(mobileconfig))
        .route(AUTOCONFIG_PATH, get(autoconfig))
        .route(WELL_KNOWN_AUTOCONFIG_PATH, get(autoconfig))
        .route(AUTODISCOVER_PATH, post(autodiscover))
        .route(AUTODISCOVER_PATH_OUTLOOK, post(autodiscover))
        .with_state(ClientSetupState { api, tokens })
}

fn refused(status: StatusCode, code: Code, message: impl Into<String>) -> Response {
    Refused {
        status,
        error: ApiError::new(code, message),
    }
    .into_response()
}

fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::Validation | Code::BadRequest => StatusCode::BAD_REQUEST,
        Code::NotConfigured | Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(error: ApiError) -> Response {
    Refused {
        status: status_of(error.code),
        error,
    }
    .into_response()
}

fn not_configured() -> Response {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::NotConfigured,
        "client set-up is not configured on this server (DEZKY_MAIL_HOST)",
    )
}

/// The bare 404 of discovery: the same for an unknown domain, an unverified one and another
/// workspace's.
fn unknown_domain() -> Response {
    refused(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        "no configuration for this address",
    )
}

/// The query of the profile download.
#[derive(Debug, Deserialize)]
pub struct ProfileQuery {
    /// Which of the caller's addresses (default: the verified e-mail of their token).
    pub address: Option<String>,
}

async fn mobileconfig(
    State(state): State<ClientSetupState>,
    headers: HeaderMap,
    query: Result<Query<ProfileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return refused(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "the query string is malformed",
        );
    };
    let viewer = match state.tokens.authenticate(&headers).await.viewer() {
        Ok(viewer) => viewer.clone(),
        Err(error) => return error_response(error),
    };
    let Some(mail_host) = state.api.client_setup.mail_host.clone() else {
        return not_configured();
    };
    let Some(address) = query.address.or_else(|| viewer.email.clone()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            Code::Validation,
            "name the address (?address=) the profile is for",
        );
    };
    let mailbox = match own_mailbox(&state.api, &viewer, &address).await {
        Ok(mailbox) => mailbox,
        Err(error) => return error_response(error),
    };
    let document = profile::Profile {
        platform_domain: &state.api.platform_domain,
        organization: &mailbox.tenant.organization,
        tenant_id: &mailbox.tenant.id,
        member_id: &mailbox.member.member_id,
        address: &mailbox.address,
        display_name: &mailbox.member.display_name,
        mail_host: &mail_host,
        dav: state.api.client_setup.dav.as_ref(),
    }
    .render();
    let file = format!(
        "attachment; filename=\"{}.mobileconfig\"",
        profile::file_stem(&mailbox.address)
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(profile::CONTENT_TYPE),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&file)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        document,
    )
        .into_response()
}

/// The query of Thunderbird's autoconfig.
#[derive(Debug, Deserialize)]
pub struct AutoconfigQuery {
    /// The address being set up.
    pub emailaddress: Option<String>,
}

fn xml(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Counts an anonymous discovery request against the client's public read budget (the one
/// the booking page's reads spend, [`crate::client`]); `429 RATE_LIMITED` past it, so
/// discovery cannot be used to walk the domain list at speed.
fn over_budget(
    state: &ClientSetupState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<Response> {
    let client =
        crate::client::RequestOrigin::of(extensions, headers).client(&state.api.trusted_proxies);
    if state.api.public_limits.reads.allow(client) {
        return None;
    }
    let body = serde_json::json!({"errors": [{
        "message": "too many requests; try again in a minute",
        "extensions": {"code": "RATE_LIMITED"},
    }]});
    Some(
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body.to_string(),
        )
            .into_response(),
    )
}

async fn autoconfig(
    State(state): State<ClientSetupState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    query: Result<Query<AutoconfigQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return refused(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "the query string is malformed",
        );
    };
    let Some(address) = query.emailaddress.as_deref().and_then(Address::parse) else {
        return refused(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "give the address as ?emailaddress=",
        );
    };
    if let Some(refused) = over_budget(&state, &extensions, &headers) {
        return refused;
    }
    let Some(mail_host) = state.api.client_setup.mail_host.as_deref() else {
        return not_configured();
    };
    match discoverable(&state.api, &address.domain).await {
        Ok(true) => xml(discovery::autoconfig_xml(&address.domain, mail_host)),
        Ok(false) => unknown_domain(),
        Err(error) => error_response(error),
    }
}

async fn autodiscover(
    State(state): State<ClientSetupState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_budget(&state, &extensions, &headers) {
        return refused;
    }
    if !discovery::is_xml(headers.get(header::CONTENT_TYPE)) {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the autodiscover request as text/xml or application/xml",
        );
    }
    let timeout = Duration::from_millis(AUTODISCOVER_BODY_READ_TIMEOUT_MS);
    let bytes = match tokio::time::timeout(
        timeout,
        axum::body::to_bytes(body, discovery::MAX_AUTODISCOVER_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) if crate::graphql::http::past_length_limit(&error) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                format!(
                    "an autodiscover request may be at most {} bytes long",
                    discovery::MAX_AUTODISCOVER_BODY_BYTES
                ),
            )
        }
        Ok(Err(_)) => {
            return refused(
                StatusCode::BAD_REQUEST,
                Code::BadRequest,
                "the request body could not be read",
            )
        }
        Err(_) => {
            return refused(
                StatusCode::REQUEST_TIMEOUT,
                Code::RequestTimeout,
                "the request body did not arrive in time",
            )
        }
    };
    let address = match discovery::read_autodiscover_request(&bytes) {
        Ok(address) => address,
        Err(problem) => {
            return refused(
                StatusCode::BAD_REQUEST,
                Code::BadRequest,
                problem.to_string(),
            )
        }
    };
    let Some(mail_host) = state.api.client_setup.mail_host.as_deref() else {
        return not_configured();
    };
    match discoverable(&state.api, &address.domain).await {
        Ok(true) => xml(discovery::autodiscover_xml(&address.text(), mail_host)),
        Ok(false) => unknown_domain(),
        Err(error) => error_response(error),
    }
}
