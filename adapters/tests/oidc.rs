//! Contract tests of the OIDC token verifier against a provider served over real HTTP.
//!
//! The provider is a tiny HTTP/1.1 server on a loopback port that serves a discovery document
//! and a JWKS the test controls and counts requests to. Tokens are signed here with `ring`
//! directly, not through the verifier's own crypto provider, so a mistake in the verifier's
//! algorithm table cannot cancel out against the same mistake in the signer. RSA keys are
//! committed test-only fixtures (`ring` cannot generate RSA keys); EC keys are generated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::DateTime;
use dezky_adapters::oidc::{
    Algorithm, AuthError, Claims, OidcConfig, OidcConfigError, OidcVerifier,
};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const AUDIENCE: &str = "dezky-api";
/// Authentik's issuer shape: per-application, with a trailing slash.
const ISSUER_PATH: &str = "/application/o/dezky/";
const DISCOVERY_PATH: &str = "/application/o/dezky/.well-known/openid-configuration";
const JWKS_PATH: &str = "/application/o/dezky/jwks/";

/// The refresh interval and cache age the timing tests configure. Two seconds rather than one
/// so that a loaded CI machine pausing between two calls does not cross it by accident.
const SHORT_INTERVAL_SECONDS: u64 = 2;

const RSA_A_PKCS8_PEM: &str = include_str!("fixtures/test-only-rsa-a.pkcs8.pem");
const RSA_A_PUBLIC_PEM: &str = include_str!("fixtures/test-only-rsa-a.public.pem");
const RSA_B_PKCS8_PEM: &str = include_str!("fixtures/test-only-rsa-b.pkcs8.pem");

// ---------------------------------------------------------------------------------------------
// Keys and tokens

fn pem_body(pem: &str) -> Vec<u8> {
    let base64: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(base64).expect("fixture PEM is base64")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key the test provider publishes (or, for negative cases, withholds).
enum TestKey {
    Rsa {
        kid: &'static str,
        pair: RsaKeyPair,
    },
    Ec {
        kid: &'static str,
        pair: EcdsaKeyPair,
    },
}

impl TestKey {
    fn rsa(kid: &'static str, pkcs8_pem: &str) -> Self {
        let pair = RsaKeyPair::from_pkcs8(&pem_body(pkcs8_pem)).expect("fixture is an RSA key");
        Self::Rsa { kid, pair }
    }

    fn ec(kid: &'static str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("parse the generated key");
        Self::Ec { kid, pair }
    }

    fn kid(&self) -> &'static str {
        match self {
            Self::Rsa { kid, .. } | Self::Ec { kid, .. } => kid,
        }
    }

    /// The JWK as Authentik publishes it: `kid`, `use: sig` and `alg`.
    fn jwk(&self) -> Value {
        match self {
            Self::Rsa { kid, pair } => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            Self::Ec { kid, pair } => {
                // An uncompressed P-256 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
        }
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::Ec { .. } => "ES256",
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa { pair, .. } => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .expect("RSA signing");
                signature
            }
            Self::Ec { pair, .. } => pair
                .sign(&rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
        }
    }

    /// A token with this key's `alg` and `kid` over `claims`.
    fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.algorithm(), "typ": "JWT", "kid": self.kid()});
        self.token_with_header(&header, claims)
    }

    fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = signing_input(header, claims);
        format!(
            "{signing_input}.{}",
            b64(&self.sign(signing_input.as_bytes()))
        )
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// The test provider: a hand-rolled HTTP/1.1 server on 127.0.0.1, port 0

#[derive(Default)]
struct Routes {
    responses: HashMap<String, (u16, String)>,
    hits: HashMap<String, usize>,
}

struct TestProvider {
    base_url: String,
    routes: Arc<Mutex<Routes>>,
}

impl TestProvider {
    /// A provider serving discovery and a JWKS of `keys`.
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let routes = Arc::new(Mutex::new(Routes::default()));
        tokio::spawn(serve(listener, Arc::clone(&routes)));
        let provider = Self { base_url, routes };
        provider.set(
            DISCOVERY_PATH,
            200,
            json!({
                "issuer": provider.issuer(),
                "jwks_uri": format!("{}{JWKS_PATH}", provider.base_url),
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }),
        );
        provider.publish(keys);
        provider
    }

    fn issuer(&self) -> String {
        format!("{}{ISSUER_PATH}", self.base_url)
    }

    fn set(&self, path: &str, status: u16, body: Value) {
        let mut routes = self.routes.lock().expect("routes lock");
        routes
            .responses
            .insert(path.to_owned(), (status, body.to_string()));
    }

    /// Replaces the JWKS, as a provider does when it rotates keys.
    fn publish(&self, keys: &[&TestKey]) {
        let jwks = json!({"keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>()});
        self.set(JWKS_PATH, 200, jwks);
    }

    fn hits(&self, path: &str) -> usize {
        self.routes
            .lock()
            .expect("routes lock")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn config(&self) -> OidcConfig {
        OidcConfig::new(self.issuer(), AUDIENCE)
    }

    fn verifier(&self, config: OidcConfig) -> OidcVerifier {
        OidcVerifier::new(config, reqwest::Client::new()).expect("a valid configuration")
    }

    /// Claims Authentik puts in an access token for this provider, valid for ten minutes.
    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer(),
            "aud": AUDIENCE,
            "sub": "5b9f2c1d-user",
            "exp": now() + 600,
            "iat": now(),
            "email": "ada@example.com",
            "email_verified": true,
            "name": "Ada Lovelace",
            "groups": ["dezky admins", "staff"],
        })
    }
}

async fn serve(listener: TcpListener, routes: Arc<Mutex<Routes>>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let routes = Arc::clone(&routes);
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
                if request.len() > 16 * 1024 {
                    return;
                }
            }
            let head = String::from_utf8_lossy(&request);
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let (status, body) = {
                let mut routes = routes.lock().expect("routes lock");
                *routes.hits.entry(path.clone()).or_default() += 1;
                routes
                    .responses
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, "{}".to_owned()))
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// An address nothing listens on: bound, then released.
/// Sleeps just past [`SHORT_INTERVAL_SECONDS`].
async fn wait_past_the_short_interval() {
    tokio::time::sleep(Duration::from_millis(SHORT_INTERVAL_SECONDS * 1000 + 100)).await;
}

async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{address}/jwks/")
}

// ---------------------------------------------------------------------------------------------
// Valid tokens

#[tokio::test]
async fn a_valid_rs256_token_yields_its_claims() {
    // Given a provider publishing an RSA key, and a token it signed
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let claims = provider.claims();

    // When the token is verified
    let verified = verifier.verify(&key.token(&claims)).await;

    // Then its claims come back, typed
    let exp = claims["exp"].as_u64().expect("exp") as i64;
    assert_eq!(
        verified,
        Ok(Claims {
            issuer: provider.issuer(),
            subject: "5b9f2c1d-user".to_owned(),
            email: Some("ada@example.com".to_owned()),
            email_verified: true,
            groups: vec!["dezky admins".to_owned(), "staff".to_owned()],
            name: Some("Ada Lovelace".to_owned()),
            expires_at: DateTime::from_timestamp(exp, 0).expect("a valid time"),
            raw: claims,
        })
    );
}

#[tokio::test]
async fn a_valid_es256_token_whose_audience_list_contains_ours_yields_its_claims() {
    // Given a provider publishing an EC key, and a token for two audiences, ours among them
    let key = TestKey::ec("ec-1");
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["aud"] = json!(["another-api", AUDIENCE]);
    claims.as_object_mut().expect("an object").remove("groups");

    // When it is verified
    let verified = verifier
        .verify(&key.token(&claims))
        .await
        .expect("a valid token");

    // Then it is accepted, with no groups
    assert_eq!(verified.subject, "5b9f2c1d-user");
    assert_eq!(verified.groups, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Time, issuer, audience

#[tokio::test]
async fn an_expired_token_is_refused_as_expired() {
    // Given a token that expired an hour ago
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["exp"] = json!(now() - 3600);

    // When it is verified, then it is refused as expired
    assert_eq!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_still_accepted() {
    // Given a token that expired five seconds ago, and the default 30 s leeway
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["exp"] = json!(now() - 5);

    // When it is verified, then clock skew is forgiven
    assert!(verifier.verify(&key.token(&claims)).await.is_ok());
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_refused_as_not_yet_valid() {
    // Given a token valid only from ten minutes from now
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["nbf"] = json!(now() + 600);
    claims["exp"] = json!(now() + 1200);

    // When it is verified, then it is refused as not yet valid
    assert_eq!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn an_nbf_of_the_wrong_type_is_refused_rather_than_ignored() {
    // Given a future nbf sent as a string (CVE-2026-25537: older jsonwebtoken skipped it)
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["nbf"] = json!((now() + 600).to_string());

    // When it is verified, then it is refused as malformed
    assert!(matches!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused_as_wrong_issuer() {
    // Given a token whose iss is another provider, signed with a key ours publishes
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["iss"] = json!(format!("{}/application/o/another-app/", provider.base_url));

    // When it is verified, then it is refused as from the wrong issuer
    assert_eq!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::WrongIssuer)
    );
}

#[tokio::test]
async fn an_issuer_given_as_an_array_is_refused_even_when_it_contains_ours() {
    // Given a token whose iss is an array holding the configured issuer
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["iss"] = json!([provider.issuer()]);

    // When it is verified, then it is refused: OIDC's iss is one string
    assert_eq!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::WrongIssuer)
    );
}

#[tokio::test]
async fn an_email_verified_claim_counts_only_as_the_json_true() {
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    for (value, verified) in [
        (json!(true), true),
        (json!(false), false),
        (json!("true"), false),
        (json!(1), false),
        (Value::Null, false),
    ] {
        let mut claims = provider.claims();
        claims["email_verified"] = value.clone();
        let result = verifier.verify(&key.token(&claims)).await.expect("valid");
        assert_eq!(result.email_verified, verified, "{value}");
    }
    let mut claims = provider.claims();
    claims
        .as_object_mut()
        .expect("object")
        .remove("email_verified");
    let result = verifier.verify(&key.token(&claims)).await.expect("valid");
    assert!(!result.email_verified);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_as_wrong_audience() {
    // Given a token issued to another application
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims["aud"] = json!("another-api");

    // When it is verified, then it is refused as meant for another audience
    assert_eq!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::WrongAudience)
    );
}

#[tokio::test]
async fn a_token_missing_its_subject_is_refused_as_malformed() {
    // Given an otherwise valid token without sub
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    claims.as_object_mut().expect("an object").remove("sub");

    // When it is verified, then it is refused as malformed
    assert!(matches!(
        verifier.verify(&key.token(&claims)).await,
        Err(AuthError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Algorithms and signatures

#[tokio::test]
async fn a_token_with_alg_none_is_refused_as_an_unsupported_algorithm() {
    // Given an unsigned token, crafted by hand: header {"alg":"none"}, empty signature
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let header = b64(br#"{"alg":"none"}"#);
    let claims = b64(provider.claims().to_string().as_bytes());

    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        // When it is verified
        let verified = verifier.verify(&token).await;

        // Then it is refused for its algorithm (the two-part form for its shape), and the
        // provider was never asked for keys
        let expected = if token.ends_with('.') {
            AuthError::UnsupportedAlgorithm("none".to_owned())
        } else {
            AuthError::Malformed("not three dot-separated parts (a compact JWS)")
        };
        assert_eq!(verified, Err(expected));
    }
    assert_eq!(provider.hits(JWKS_PATH), 0);
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused_as_an_unsupported_algorithm() {
    // Given the algorithm-confusion attack: HS256 tokens whose HMAC secret is the provider's
    // public RSA key, as PEM text, as DER, and as the bare modulus
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let TestKey::Rsa { pair, .. } = &key else {
        unreachable!("an RSA key")
    };
    let modulus = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public()).n;
    let secrets: [&[u8]; 3] = [
        RSA_A_PUBLIC_PEM.as_bytes(),
        pair.public().as_ref(),
        modulus.as_slice(),
    ];
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-a"});
    let input = signing_input(&header, &provider.claims());

    for secret in secrets {
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(tag.as_ref()));

        // When it is verified, then it is refused for its algorithm
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm("HS256".to_owned()))
        );
    }
}

#[tokio::test]
async fn a_configuration_allowing_an_hmac_algorithm_is_refused() {
    // Given a configuration that would let HS256 through
    let provider = TestProvider::start(&[]).await;
    let mut config = provider.config();
    config.allowed_algorithms = vec![Algorithm::RS256, Algorithm::HS256];

    // When a verifier is built, then it is refused
    let built = OidcVerifier::new(config, reqwest::Client::new());
    assert_eq!(
        built.err(),
        Some(OidcConfigError::SymmetricAlgorithm(Algorithm::HS256))
    );
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused_even_when_the_key_could_verify_it() {
    // Given a correctly signed RS512 token while only RS256 and ES256 are allowed
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let TestKey::Rsa { pair, .. } = &key else {
        unreachable!("an RSA key")
    };
    let input = signing_input(&json!({"alg": "RS512", "kid": "rsa-a"}), &provider.claims());
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA512,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("RSA signing");

    // When it is verified, then it is refused for its algorithm
    let token = format!("{input}.{}", b64(&signature));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::UnsupportedAlgorithm("RS512".to_owned()))
    );
}

#[tokio::test]
async fn a_tampered_payload_with_the_original_signature_is_refused_as_a_bad_signature() {
    // Given a valid token whose subject is then changed, keeping the signature
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let mut claims = provider.claims();
    let token = key.token(&claims);
    claims["sub"] = json!("someone-else");
    let tampered_payload = b64(claims.to_string().as_bytes());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{tampered_payload}.{}", parts[0], parts[2]);

    // When it is verified, then its signature does not verify
    assert!(
        verifier.verify(&token).await.is_ok(),
        "the untampered token verifies"
    );
    assert_eq!(
        verifier.verify(&tampered).await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_published_kid_is_refused_as_a_bad_signature() {
    // Given a provider publishing key A, and a token signed by key B that claims kid A
    let published = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let impostor = TestKey::rsa("rsa-a", RSA_B_PKCS8_PEM);
    let provider = TestProvider::start(&[&published]).await;
    let verifier = provider.verifier(provider.config());

    // When it is verified, then the signature does not verify
    let verified = verifier.verify(&impostor.token(&provider.claims())).await;
    assert_eq!(verified, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn an_es256_token_naming_an_rsa_key_is_refused_as_a_bad_signature() {
    // Given an ES256 token whose kid names the provider's RSA key
    let rsa = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let ec = TestKey::ec("ec-1");
    let provider = TestProvider::start(&[&rsa]).await;
    let verifier = provider.verifier(provider.config());
    let header = json!({"alg": "ES256", "kid": "rsa-a"});

    // When it is verified, then the key's type does not fit and it is refused
    let verified = verifier
        .verify(&ec.token_with_header(&header, &provider.claims()))
        .await;
    assert_eq!(verified, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn keys_the_jwks_marks_for_encryption_or_that_are_symmetric_are_never_used() {
    // Given a JWKS holding, besides the signing key, a shared secret (`oct`), key B marked for
    // encryption, a key of an unknown type and a key without kid
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let encryption_key = TestKey::rsa("enc-b", RSA_B_PKCS8_PEM);
    let provider = TestProvider::start(&[]).await;
    let mut encryption_jwk = encryption_key.jwk();
    encryption_jwk["use"] = json!("enc");
    let mut kidless_jwk = key.jwk();
    kidless_jwk
        .as_object_mut()
        .expect("an object")
        .remove("kid");
    provider.set(
        JWKS_PATH,
        200,
        json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": b64(b"a shared secret")},
            encryption_jwk,
            {"kty": "OKP", "crv": "X448", "kid": "exotic", "x": b64(&[7; 56])},
            kidless_jwk,
            key.jwk(),
        ]}),
    );
    let verifier = provider.verifier(provider.config());

    // When tokens naming each are verified
    let valid = verifier.verify(&key.token(&provider.claims())).await;
    let encrypted_with = verifier
        .verify(&encryption_key.token(&provider.claims()))
        .await;

    // Then only the signing key serves; the others are unknown
    assert!(valid.is_ok(), "{valid:?}");
    assert_eq!(
        encrypted_with,
        Err(AuthError::UnknownKey("enc-b".to_owned()))
    );
    for kid in ["shared", "exotic"] {
        let header = json!({"alg": "RS256", "kid": kid});
        let verified = verifier
            .verify(&key.token_with_header(&header, &provider.claims()))
            .await;
        assert_eq!(verified, Err(AuthError::UnknownKey(kid.to_owned())));
    }
}

#[tokio::test]
async fn malformed_tokens_of_every_shape_are_refused_as_malformed() {
    // Given tokens broken in every way we could think of, none of which should reach the
    // provider
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());
    let valid = key.token(&provider.claims());
    let no_kid = key.token_with_header(&json!({"alg": "RS256"}), &provider.claims());
    let oversized = format!("{valid}{}", "A".repeat(70 * 1024));
    let cases = [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        "not a token".to_owned(),
        format!("Bearer {valid}"),
        format!("{valid}.extra"),
        format!("!!!.{}", &valid[valid.find('.').unwrap_or(0) + 1..]),
        format!("{}.e30.sig", b64(b"not json")),
        format!("{}.e30.sig", b64(br#"{"alg": 256}"#)),
        format!("{}.e30.sig", b64(br#"["RS256"]"#)),
        format!(
            "{}.e30.sig",
            b64("{\"alg\":\"RS256\",\"kid\":\"\u{0}\"".as_bytes())
        ),
        no_kid,
        oversized,
    ];

    for token in cases {
        // When it is verified, then it is refused as malformed, without a panic
        let verified = verifier.verify(&token).await;
        assert!(
            matches!(verified, Err(AuthError::Malformed(_))),
            "{:?} gave {verified:?}",
            token.chars().take(80).collect::<String>()
        );
    }
    assert_eq!(provider.hits(JWKS_PATH), 0);
}

// ---------------------------------------------------------------------------------------------
// Keys: unknown kid, rotation, provider outages, discovery

#[tokio::test]
async fn an_unknown_kid_triggers_one_refetch_then_fails_as_unknown_key() {
    // Given a verifier that has fetched the JWKS and allows one refetch per short interval
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let stranger = TestKey::rsa("retired-key", RSA_B_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let mut config = provider.config();
    config.jwks_refresh_min_interval_seconds = SHORT_INTERVAL_SECONDS;
    let verifier = provider.verifier(config);
    verifier
        .verify(&key.token(&provider.claims()))
        .await
        .expect("a valid token");
    assert_eq!(provider.hits(JWKS_PATH), 1);
    wait_past_the_short_interval().await;

    // When a token names a kid the provider does not publish
    let verified = verifier.verify(&stranger.token(&provider.claims())).await;

    // Then the JWKS is fetched once more before the key is declared unknown
    assert_eq!(
        verified,
        Err(AuthError::UnknownKey("retired-key".to_owned()))
    );
    assert_eq!(provider.hits(JWKS_PATH), 2);

    // And a second such token within the interval does not fetch again
    let verified = verifier.verify(&stranger.token(&provider.claims())).await;
    assert_eq!(
        verified,
        Err(AuthError::UnknownKey("retired-key".to_owned()))
    );
    assert_eq!(provider.hits(JWKS_PATH), 2);
}

#[tokio::test]
async fn a_key_rotated_in_at_the_provider_verifies_after_the_automatic_refetch() {
    // Given a verifier that has cached key A
    let old = TestKey::rsa("2026-a", RSA_A_PKCS8_PEM);
    let new = TestKey::rsa("2026-b", RSA_B_PKCS8_PEM);
    let provider = TestProvider::start(&[&old]).await;
    let mut config = provider.config();
    config.jwks_refresh_min_interval_seconds = SHORT_INTERVAL_SECONDS;
    let verifier = provider.verifier(config);
    verifier
        .verify(&old.token(&provider.claims()))
        .await
        .expect("key A verifies");

    // When the provider rotates to key B and, later, a token signed with B arrives
    provider.publish(&[&new]);
    wait_past_the_short_interval().await;
    let verified = verifier.verify(&new.token(&provider.claims())).await;

    // Then the JWKS is refetched and the token verifies, without a restart
    assert_eq!(
        verified.map(|claims| claims.subject),
        Ok("5b9f2c1d-user".to_owned())
    );
    assert_eq!(provider.hits(JWKS_PATH), 2);
    // And the withdrawn key A no longer verifies anything
    let verified = verifier.verify(&old.token(&provider.claims())).await;
    assert_eq!(verified, Err(AuthError::UnknownKey("2026-a".to_owned())));
}

#[tokio::test]
async fn a_key_withdrawn_at_the_provider_stops_verifying_once_the_cache_outlives_its_max_age() {
    // Given a verifier that cached key A and trusts its cache for a short interval
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let mut config = provider.config();
    config.jwks_max_age_seconds = SHORT_INTERVAL_SECONDS;
    config.jwks_refresh_min_interval_seconds = SHORT_INTERVAL_SECONDS;
    let verifier = provider.verifier(config);
    let token = key.token(&provider.claims());
    verifier.verify(&token).await.expect("key A verifies");

    // When the provider withdraws key A and the cache grows older than its max age
    provider.publish(&[]);
    assert!(
        verifier.verify(&token).await.is_ok(),
        "within the max age the cache serves"
    );
    wait_past_the_short_interval().await;

    // Then the next token signed with A makes the verifier ask again, and A is refused
    let verified = verifier.verify(&token).await;
    assert_eq!(verified, Err(AuthError::UnknownKey("rsa-a".to_owned())));
    assert_eq!(provider.hits(JWKS_PATH), 2);
}

#[tokio::test]
async fn cached_keys_go_on_serving_when_the_provider_is_down_at_their_max_age() {
    // Given a verifier that cached key A, trusting its cache for a short interval
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let mut config = provider.config();
    config.jwks_max_age_seconds = SHORT_INTERVAL_SECONDS;
    config.jwks_refresh_min_interval_seconds = SHORT_INTERVAL_SECONDS;
    let verifier = provider.verifier(config);
    let token = key.token(&provider.claims());
    verifier.verify(&token).await.expect("key A verifies");

    // When the cache outlives its max age while the JWKS endpoint fails
    provider.set(JWKS_PATH, 503, json!({"detail": "maintenance"}));
    wait_past_the_short_interval().await;

    // Then the refetch is tried, and the token still verifies with the cached key
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(provider.hits(JWKS_PATH), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_endpoint_is_reported_as_provider_unavailable() {
    // Given a JWKS URL nothing listens on
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let mut config = provider.config();
    config.jwks_url = Some(dead_url().await);
    let verifier = provider.verifier(config);

    // When a valid token is verified, then the provider, not the caller, is blamed
    let verified = verifier.verify(&key.token(&provider.claims())).await;
    assert!(
        matches!(verified, Err(AuthError::ProviderUnavailable(_))),
        "{verified:?}"
    );
}

#[tokio::test]
async fn a_provider_that_failed_is_not_asked_again_within_the_interval_but_is_after_it() {
    // Given a provider whose JWKS endpoint answers 500
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    provider.set(JWKS_PATH, 500, json!({"detail": "internal error"}));
    let mut config = provider.config();
    config.jwks_refresh_min_interval_seconds = SHORT_INTERVAL_SECONDS;
    let verifier = provider.verifier(config);
    let token = key.token(&provider.claims());
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::ProviderUnavailable(_))
    ));

    // When it recovers, then within the interval the failure stands without a new request
    provider.publish(&[&key]);
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::ProviderUnavailable(_))
    ));
    assert_eq!(provider.hits(JWKS_PATH), 1);

    // And after the interval the token verifies
    wait_past_the_short_interval().await;
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(provider.hits(JWKS_PATH), 2);
}

#[tokio::test]
async fn the_jwks_url_is_discovered_from_the_issuers_openid_configuration() {
    // Given a configuration with an issuer and no JWKS URL
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    let verifier = provider.verifier(provider.config());

    // When two tokens are verified
    for _ in 0..2 {
        verifier
            .verify(&key.token(&provider.claims()))
            .await
            .expect("a valid token");
    }

    // Then discovery was read once, and the JWKS it names once
    assert_eq!(provider.hits(DISCOVERY_PATH), 1);
    assert_eq!(provider.hits(JWKS_PATH), 1);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused_as_provider_unavailable() {
    // Given a discovery document that claims to be another issuer's
    let key = TestKey::rsa("rsa-a", RSA_A_PKCS8_PEM);
    let provider = TestProvider::start(&[&key]).await;
    provider.set(
        DISCOVERY_PATH,
        200,
        json!({"issuer": "https://evil.example/", "jwks_uri": format!("{}{JWKS_PATH}", provider.base_url)}),
    );
    let verifier = provider.verifier(provider.config());

    // When a token is verified, then its keys are not trusted
    let verified = verifier.verify(&key.token(&provider.claims())).await;
    assert!(
        matches!(verified, Err(AuthError::ProviderUnavailable(_))),
        "{verified:?}"
    );
    assert_eq!(provider.hits(JWKS_PATH), 0);
}
