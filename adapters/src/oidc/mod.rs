//! Verification of OpenID Connect bearer tokens (JWTs) against the provider's published keys.
//!
//! The API hands every `Authorization: Bearer …` token to [`OidcVerifier::verify`], which
//! checks, in this order: the token's shape; that its `alg` is on the allow-list (`none` and
//! HMAC never are); that the provider publishes the key its `kid` names (refetching the JWKS
//! once, rate-limited, when it does not); the signature; then `iss`, `aud`, `exp` and `nbf`
//! with a small leeway. Only then are claims returned. Every refusal is a typed [`AuthError`],
//! and no input makes it panic. Design and library choices: ADR 6.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dezky_adapters::oidc::{OidcConfig, OidcVerifier};
//!
//! let config = OidcConfig::new("https://auth.example.com/application/o/dezky/", "dezky-api");
//! let verifier = OidcVerifier::new(config, reqwest::Client::new())?;
//! let claims = verifier.verify("eyJhbGciOi…").await?;
//! println!("{} is in {:?}", claims.subject, claims.groups);
//! # Ok(())
//! # }
//! ```

mod keys;
mod ring_provider;

use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{AlgorithmFamily, Validation};
use serde::Deserialize;
use serde_json::Value;

use keys::{KeyStore, RefreshPolicy};

/// Default clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// The largest leeway a configuration may ask for: beyond a few minutes it stops being clock
/// skew and starts extending the life of stolen tokens.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Default minimum time between two JWKS fetches triggered by unknown `kid`s.
pub const DEFAULT_JWKS_REFRESH_MIN_INTERVAL_SECONDS: u64 = 30;
/// Default age after which cached keys are refetched on their next use.
pub const DEFAULT_JWKS_MAX_AGE_SECONDS: u64 = 600;
/// Default time limit on one request to the provider (discovery or JWKS).
pub const DEFAULT_JWKS_FETCH_TIMEOUT_SECONDS: u64 = 10;
/// The longest token considered. Real ones are a few kilobytes; the cap bounds the work an
/// anonymous caller can make the server do before any signature is checked.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Attacker-chosen strings (`alg`, `kid`) are cut to this many characters before they enter
/// an error, and so a log line.
const MAX_ECHOED_CHARS: usize = 64;

/// What the verifier trusts: one issuer, one audience, and how it may reach the issuer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The provider's issuer identifier, compared byte for byte with each token's `iss`
    /// (Authentik's ends in a slash: `https://auth.example.com/application/o/<slug>/`).
    pub issuer: String,
    /// This API's identifier; each token's `aud` must contain it (Authentik: the client ID).
    pub audience: String,
    /// Where the JWKS is; when `None`, the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery).
    pub jwks_url: Option<String>,
    /// Signature algorithms accepted. HMAC (`HS*`) ones are refused at construction, and `none`
    /// cannot be expressed: a public-key verifier has no business with either.
    pub allowed_algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u64,
    /// Minimum time between two JWKS fetches caused by tokens naming an unknown `kid`.
    pub jwks_refresh_min_interval_seconds: u64,
    /// Age after which the cached keys are refetched on their next use, so that a key the
    /// provider withdrew stops verifying even when no token names a new one. Should the
    /// provider be unreachable then, the cached keys go on serving.
    pub jwks_max_age_seconds: u64,
    /// Time limit on one request to the provider.
    pub jwks_fetch_timeout_seconds: u64,
}

impl OidcConfig {
    /// A configuration for `issuer` and `audience` with the defaults: RS256 (Authentik's
    /// default) and ES256 allowed, [`DEFAULT_LEEWAY_SECONDS`], discovery for the JWKS URL,
    /// [`DEFAULT_JWKS_REFRESH_MIN_INTERVAL_SECONDS`], [`DEFAULT_JWKS_MAX_AGE_SECONDS`] and
    /// [`DEFAULT_JWKS_FETCH_TIMEOUT_SECONDS`].
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            allowed_algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            jwks_refresh_min_interval_seconds: DEFAULT_JWKS_REFRESH_MIN_INTERVAL_SECONDS,
            jwks_max_age_seconds: DEFAULT_JWKS_MAX_AGE_SECONDS,
            jwks_fetch_timeout_seconds: DEFAULT_JWKS_FETCH_TIMEOUT_SECONDS,
        }
    }

    fn validate(&self) -> Result<(), OidcConfigError> {
        if self.issuer.is_empty() {
            return Err(OidcConfigError::MissingIssuer);
        }
        if self.audience.is_empty() {
            return Err(OidcConfigError::MissingAudience);
        }
        if self.allowed_algorithms.is_empty() {
            return Err(OidcConfigError::NoAlgorithms);
        }
        if let Some(hmac) = self
            .allowed_algorithms
            .iter()
            .find(|alg| alg.family() == AlgorithmFamily::Hmac)
        {
            return Err(OidcConfigError::SymmetricAlgorithm(*hmac));
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(OidcConfigError::LeewayTooLarge(self.leeway_seconds));
        }
        if self.jwks_fetch_timeout_seconds == 0 {
            return Err(OidcConfigError::ZeroFetchTimeout);
        }
        Ok(())
    }
}

/// Why an [`OidcConfig`] was refused by [`OidcVerifier::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcConfigError {
    /// `issuer` is empty.
    #[error("the OIDC issuer is empty")]
    MissingIssuer,
    /// `audience` is empty.
    #[error("the OIDC audience is empty")]
    MissingAudience,
    /// `allowed_algorithms` is empty, so no token could ever verify.
    #[error("no signature algorithm is allowed")]
    NoAlgorithms,
    /// An HMAC algorithm was allowed; with public keys that is the algorithm-confusion hole.
    #[error("{0:?} is an HMAC algorithm; only public-key algorithms may verify OIDC tokens")]
    SymmetricAlgorithm(Algorithm),
    /// `leeway_seconds` exceeds [`MAX_LEEWAY_SECONDS`].
    #[error("a leeway of {0} s exceeds the maximum of {MAX_LEEWAY_SECONDS} s")]
    LeewayTooLarge(u64),
    /// `jwks_fetch_timeout_seconds` is zero, so no fetch could ever succeed.
    #[error("the JWKS fetch timeout must be at least one second")]
    ZeroFetchTimeout,
}

/// Why a token was refused. The API answers every variant with `UNAUTHENTICATED`; only
/// [`AuthError::ProviderUnavailable`] is not the caller's fault and deserves an operator's eye.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a compact JWS, or its header or claims are not the JSON an OIDC token has (a
    /// required claim missing, a claim of the wrong type). The reason is for logs.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not on the allow-list; `none` and `HS*` never are.
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The provider publishes no usable key with this `kid`, even after a refetch.
    #[error("no signing key with kid {0:?} at the OIDC provider")]
    UnknownKey(String),
    /// The signature does not verify with the key the `kid` names (including a key whose type
    /// or declared `alg` does not match the token's algorithm).
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token is meant for another audience")]
    WrongAudience,
    /// The provider's discovery document or JWKS could not be fetched or understood.
    #[error("the OIDC provider's keys are unavailable: {0}")]
    ProviderUnavailable(String),
}

/// The identity a verified token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: the issuer, equal to the configured one (a string, never an array).
    pub issuer: String,
    /// `sub`: the provider's stable identifier of the user.
    pub subject: String,
    /// `email`, when the token has one. Whether it identifies anyone is the caller's decision,
    /// made with [`Claims::email_verified`].
    pub email: Option<String>,
    /// `email_verified`: true only when the claim is the JSON `true` (a string `"true"`, a
    /// missing claim or any other value mean not verified).
    pub email_verified: bool,
    /// `groups` (Authentik's group names), empty when absent.
    pub groups: Vec<String>,
    /// `name`, when the token has one.
    pub name: Option<String>,
    /// `exp`: the end of the token's validity.
    pub expires_at: DateTime<Utc>,
    /// Every claim as the token carried it, for claims the fields above do not cover.
    pub raw: Value,
}

/// The claims [`Claims`] names, typed strictly: a claim of the wrong type refuses the token
/// instead of being read as absent.
#[derive(Deserialize)]
struct NamedClaims {
    sub: String,
    // A JWT NumericDate may have a fraction (RFC 7519 §2).
    exp: f64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The two header fields needed before a key is chosen, read without `jsonwebtoken` so that
/// `alg: none`, which its `Algorithm` cannot represent, is reported as the algorithm it is.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Verifies bearer tokens issued by one OIDC provider. Cheap to share: put it in an `Arc`.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: KeyStore,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier for `config`, fetching keys with `http_client` (which carries the binary's
    /// TLS and proxy settings). Nothing is fetched until the first token arrives, so start-up
    /// does not depend on the provider being up.
    ///
    /// Also makes sure `jsonwebtoken` has a crypto provider, installing the `ring`-backed one
    /// (ADR 6) unless the binary installed another first.
    pub fn new(config: OidcConfig, http_client: reqwest::Client) -> Result<Self, OidcConfigError> {
        config.validate()?;
        ring_provider::ensure_installed();
        let keys = KeyStore::new(
            http_client,
            config.issuer.clone(),
            config.jwks_url.clone(),
            RefreshPolicy {
                fetch_timeout: Duration::from_secs(config.jwks_fetch_timeout_seconds),
                min_interval: Duration::from_secs(config.jwks_refresh_min_interval_seconds),
                max_age: Duration::from_secs(config.jwks_max_age_seconds),
            },
        );
        Ok(Self { config, keys })
    }

    /// The configuration this verifier enforces.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Checks `token` (the part after `Bearer `) and returns its claims.
    ///
    /// The signature is checked before any claim, so a forged token learns nothing about
    /// which of its claims would have passed.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(
                "longer than any token the provider issues",
            ));
        }
        let header = parse_header(token)?;
        let algorithm = self.accepted_algorithm(&header.alg)?;
        let kid = header
            .kid
            .ok_or(AuthError::Malformed("the header names no key (kid)"))?;
        let key = self.keys.key_for(&kid).await?;
        // RFC 7517 §4.4: a key that declares its algorithm is used with that one only.
        if key.algorithm.is_some_and(|declared| declared != algorithm) {
            return Err(AuthError::BadSignature);
        }

        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|error| map_jwt_error(error.kind(), &header.alg))?;
        // The JWT library also accepts an `iss` that is an array containing the issuer; OIDC
        // Core §2 makes it a single string, and it must be exactly the configured one.
        if data.claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        claims_from(data.claims)
    }

    fn accepted_algorithm(&self, name: &str) -> Result<Algorithm, AuthError> {
        Algorithm::from_str(name)
            .ok()
            // HMAC is refused here whatever the configuration says; `validate` also forbids it.
            .filter(|alg| alg.family() != AlgorithmFamily::Hmac)
            .filter(|alg| self.config.allowed_algorithms.contains(alg))
            .ok_or_else(|| AuthError::UnsupportedAlgorithm(shorten(name)))
    }
}

fn parse_header(token: &str) -> Result<JoseHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "not three dot-separated parts (a compact JWS)",
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("header is not a JSON object with a string alg"))
}

fn map_jwt_error(kind: &ErrorKind, alg: &str) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => AuthError::UnsupportedAlgorithm(shorten(alg)),
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => {
            AuthError::Malformed("a required claim (exp, iss, aud, sub) is missing")
        }
        ErrorKind::InvalidClaimFormat(_) => {
            AuthError::Malformed("a registered claim has the wrong type")
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a part is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => AuthError::Malformed("a part is not JSON"),
        // Unknown `crit` headers, `b64: false` and whatever later versions add.
        _ => AuthError::Malformed("refused by the JWT library"),
    }
}

fn claims_from(raw: Value) -> Result<Claims, AuthError> {
    let named = NamedClaims::deserialize(&raw)
        .map_err(|_| AuthError::Malformed("sub, exp, email, groups or name has the wrong type"))?;
    // Saturating float-to-int casts keep absurd values from panicking; they then fail the
    // range check of `from_timestamp`.
    let expires_at = Some(named.exp)
        .filter(|exp| exp.is_finite() && *exp >= 0.0)
        .and_then(|exp| DateTime::from_timestamp(exp.floor() as i64, 0))
        .ok_or(AuthError::Malformed("exp is not a representable time"))?;
    let issuer = raw
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(AuthError::WrongIssuer)?
        .to_owned();
    let email_verified = raw.get("email_verified") == Some(&Value::Bool(true));
    Ok(Claims {
        issuer,
        subject: named.sub,
        email: named.email,
        email_verified,
        groups: named.groups,
        name: named.name,
        expires_at,
        raw,
    })
}

/// Cuts an attacker-chosen string to a length fit for an error message and a log line.
fn shorten(text: &str) -> String {
    text.chars().take(MAX_ECHOED_CHARS).collect()
}
