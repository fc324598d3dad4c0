//! The provider's signing keys: discovery, JWKS fetching, and the rate-limited key cache.
//!
//! Keys are fetched on first use and kept by `kid`. A token naming a `kid` the cache does not
//! hold triggers one refetch, so a key the provider rotated in is picked up without a restart;
//! refetches are at least `jwks_refresh_min_interval_seconds` apart, so a stream of tokens
//! with made-up `kid`s cannot turn the verifier into a load generator against the provider.
//! Keys older than `jwks_max_age_seconds` are refetched on their next use, so a key the
//! provider withdraws stops verifying within that time even if no new `kid` ever shows up.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize as _;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell, RwLock};

use super::AuthError;

/// The largest discovery document or JWKS read from the provider. Authentik's JWKS holds a
/// handful of keys in a few kilobytes; the cap only stops a misbehaving endpoint from
/// streaming without end into memory.
const MAX_PROVIDER_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The path OpenID Connect Discovery 1.0 §4 appends to the issuer.
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// One verification key published by the provider.
pub(crate) struct ProviderKey {
    /// The key, ready for `jsonwebtoken::decode`.
    pub(crate) key: DecodingKey,
    /// The JWK's `alg`, when it names one: a token must then use exactly that algorithm.
    pub(crate) algorithm: Option<Algorithm>,
}

/// When the JWKS was last fetched, and why that fetch failed if it did.
struct LastFetch {
    at: Instant,
    failure: Option<String>,
}

/// The keys of the last successful fetch.
#[derive(Default)]
struct CachedKeys {
    by_kid: HashMap<String, Arc<ProviderKey>>,
    fetched_at: Option<Instant>,
}

/// How long keys are trusted without asking the provider again, and how often it may be asked.
pub(crate) struct RefreshPolicy {
    pub(crate) fetch_timeout: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) max_age: Duration,
}

/// Finds the provider's JWKS and caches its keys by `kid`.
pub(crate) struct KeyStore {
    http: reqwest::Client,
    issuer: String,
    configured_jwks_url: Option<String>,
    policy: RefreshPolicy,
    /// Set once discovery (or the configuration) has named the JWKS URL.
    jwks_url: OnceCell<String>,
    cache: RwLock<CachedKeys>,
    /// Held for the whole of a refetch, so concurrent requests for an unknown `kid` cause one
    /// fetch between them rather than one each.
    last_fetch: Mutex<Option<LastFetch>>,
}

impl KeyStore {
    pub(crate) fn new(
        http: reqwest::Client,
        issuer: String,
        configured_jwks_url: Option<String>,
        policy: RefreshPolicy,
    ) -> Self {
        Self {
            http,
            issuer,
            configured_jwks_url,
            policy,
            jwks_url: OnceCell::new(),
            cache: RwLock::new(CachedKeys::default()),
            last_fetch: Mutex::new(None),
        }
    }

    /// The key the provider publishes under `kid`, refetching the JWKS once if it is not cached
    /// or the cache is older than the maximum age.
    ///
    /// Fails with [`AuthError::UnknownKey`] when the (possibly refreshed) JWKS has no such key,
    /// and with [`AuthError::ProviderUnavailable`] when the JWKS could not be fetched and no
    /// earlier fetch had the key.
    pub(crate) async fn key_for(&self, kid: &str) -> Result<Arc<ProviderKey>, AuthError> {
        if let Some(key) = self.fresh_key(kid).await {
            return Ok(key);
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Whoever held the lock before us may just have fetched what we are missing.
        if let Some(key) = self.fresh_key(kid).await {
            return Ok(key);
        }
        // A stale key is still the provider's last word on `kid`: it serves when the provider
        // may not be asked again yet, or cannot be reached.
        let stale = self.cache.read().await.by_kid.get(kid).cloned();
        if let Some(previous) = last_fetch.as_ref() {
            if previous.at.elapsed() < self.policy.min_interval {
                return match (stale, &previous.failure) {
                    (Some(key), _) => Ok(key),
                    // The provider could not be asked, so the key may well exist.
                    (None, Some(reason)) => Err(AuthError::ProviderUnavailable(reason.clone())),
                    (None, None) => Err(AuthError::UnknownKey(super::shorten(kid))),
                };
            }
        }
        let fetched = self.fetch_keys().await;
        *last_fetch = Some(LastFetch {
            at: Instant::now(),
            failure: fetched.as_ref().err().cloned(),
        });
        match fetched {
            Ok(by_kid) => {
                // The new set replaces the old one whole, so a key the provider withdrew
                // (rotated out, or compromised) stops verifying at the first refetch.
                let mut cache = self.cache.write().await;
                *cache = CachedKeys {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                };
                cache
                    .by_kid
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| AuthError::UnknownKey(super::shorten(kid)))
            }
            // A failed fetch keeps the keys we had: they were valid a moment ago, and dropping
            // them would turn a provider hiccup into an outage for tokens that verify.
            Err(reason) => match stale {
                Some(key) => {
                    tracing::warn!(%reason, "could not refresh the OIDC provider's keys; using the cached ones");
                    Ok(key)
                }
                None => Err(AuthError::ProviderUnavailable(reason)),
            },
        }
    }

    /// The cached key for `kid`, unless the cache is older than the maximum age.
    async fn fresh_key(&self, kid: &str) -> Option<Arc<ProviderKey>> {
        let cache = self.cache.read().await;
        let fresh = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.policy.max_age);
        fresh.then(|| cache.by_kid.get(kid).cloned()).flatten()
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<ProviderKey>>, String> {
        let url = self
            .jwks_url
            .get_or_try_init(|| self.discover_jwks_url())
            .await?;
        let jwks = self.get_json(url).await?;
        let keys = parse_jwks(&jwks).map_err(|reason| format!("{url}: {reason}"))?;
        tracing::info!(jwks_url = %url, keys = keys.len(), "fetched the OIDC provider's signing keys");
        Ok(keys)
    }

    /// The configured JWKS URL, or the `jwks_uri` of the issuer's discovery document.
    async fn discover_jwks_url(&self) -> Result<String, String> {
        if let Some(url) = &self.configured_jwks_url {
            return Ok(url.clone());
        }
        let url = format!("{}{DISCOVERY_PATH}", self.issuer.trim_end_matches('/'));
        let document = self.get_json(&url).await?;
        // OpenID Connect Discovery 1.0 §4.3: the document must name the very issuer it was
        // fetched for, or a misrouted URL could make us trust another provider's keys.
        match document.get("issuer").and_then(Value::as_str) {
            Some(issuer) if issuer == self.issuer => {}
            Some(issuer) => {
                return Err(format!(
                    "{url}: the discovery document names issuer {issuer:?}, not {:?}",
                    self.issuer
                ))
            }
            None => return Err(format!("{url}: the discovery document names no issuer")),
        }
        document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{url}: the discovery document has no jwks_uri"))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.policy.fetch_timeout)
            .send()
            .await
            .map_err(|error| format!("GET {url}: {}", error_chain(&error)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("GET {url}: {}", error_chain(&error)))?
        {
            if body.len() + chunk.len() > MAX_PROVIDER_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: larger than {MAX_PROVIDER_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|error| format!("GET {url}: not JSON: {error}"))
    }
}

/// reqwest's own message names only the outermost failure ("error sending request"); the
/// cause an operator needs ("connection refused", "timed out") sits further down the chain.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The usable signing keys of a JWKS document, by `kid`.
///
/// Keys this verifier must not or cannot use are skipped rather than failing the whole set, so
/// that one exotic key at the provider does not lock everyone out: keys without a `kid`,
/// encryption keys, symmetric (`oct`) keys, HMAC keys, unknown key types and curves.
fn parse_jwks(document: &Value) -> Result<HashMap<String, Arc<ProviderKey>>, String> {
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "the JWKS has no \"keys\" array".to_owned())?;
    let mut keys = HashMap::new();
    for entry in entries {
        match usable_key(entry) {
            Ok((kid, key)) => {
                if keys.insert(kid.clone(), Arc::new(key)).is_some() {
                    tracing::warn!(kid = %kid, "the JWKS lists a kid twice; keeping the last");
                }
            }
            Err(reason) => tracing::debug!(reason, "skipping a JWKS key"),
        }
    }
    Ok(keys)
}

fn usable_key(entry: &Value) -> Result<(String, ProviderKey), &'static str> {
    let jwk: Jwk = Jwk::deserialize(entry).map_err(|_| "not a JWK this verifier understands")?;
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Err("not a signature key (use)");
    }
    if let Some(operations) = &jwk.common.key_operations {
        if !operations.contains(&KeyOperations::Verify) {
            return Err("not a verification key (key_ops)");
        }
    }
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(named) => match Algorithm::try_from(named) {
            Ok(algorithm) if algorithm.family() != AlgorithmFamily::Hmac => Some(algorithm),
            _ => return Err("an HMAC or non-signature alg"),
        },
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {}
        AlgorithmParameters::EllipticCurve(params)
            if matches!(params.curve, EllipticCurve::P256 | EllipticCurve::P384) => {}
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {}
        // A symmetric key in a public JWKS is a provider misconfiguration; using it would
        // let anyone who read the JWKS mint tokens.
        _ => return Err("a symmetric key, or an unsupported key type or curve"),
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key material that does not decode")?;
    Ok((kid, ProviderKey { key, algorithm }))
}
