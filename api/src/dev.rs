//! Development mode: a local signing key for access tokens, its JWKS, and `dezky dev token`.
//!
//! `dezky serve --dev` checks tokens through the very same OIDC verifier as production, only
//! against this JWKS (served by the process itself at [`DEV_JWKS_PATH`]) instead of the
//! identity provider's. It is off unless asked for and refuses to run beside a configured
//! OIDC issuer, so a production deployment never accepts development tokens.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Issuer of development tokens.
pub const DEV_ISSUER: &str = "dezky-dev";
/// Audience of development tokens (and the API's audience in dev mode).
pub const DEV_AUDIENCE: &str = "dezky";
/// Where `serve --dev` publishes the development JWKS.
pub const DEV_JWKS_PATH: &str = "/dev/jwks.json";
/// Key id of the development key in the JWKS.
const DEV_KID: &str = "dezky-dev-1";
/// Lifetime of a development token.
const DEV_TOKEN_HOURS: i64 = 8;

/// The development signing key (ECDSA P-256), kept beside the embedded database.
pub struct DevKey {
    pair: EcdsaKeyPair,
}

impl DevKey {
    /// Where the key lives for a given data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dev-token.key")
    }

    /// Loads the key, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("cannot generate the development key"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            std::io::Write::write_all(&mut file, STANDARD.encode(pkcs8.as_ref()).as_bytes())?;
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let der = STANDARD
            .decode(text.trim())
            .with_context(|| format!("{} is not a development key", path.display()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| anyhow::anyhow!("{} is not a development key", path.display()))?;
        Ok(Self { pair })
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        serde_json::json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": DEV_KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    /// Signs a development access token with the given claims (plus iss, aud, iat, exp).
    pub fn token(
        &self,
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        claims.insert("iss".into(), DEV_ISSUER.into());
        claims.insert("aud".into(), DEV_AUDIENCE.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + DEV_TOKEN_HOURS * 3600).into());
        self.sign(
            &serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": DEV_KID}),
            &claims,
        )
    }

    /// Signs exactly the given header and claims (tests use it to forge tokens that must be
    /// refused).
    pub fn sign(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<String> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        // ring's FIXED signing format is r || s, exactly what JWS ES256 expects.
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign the development token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// `dezky dev token`: prints a development token for a role.
pub async fn print_token(
    settings: &crate::settings::Settings,
    role: crate::cli::DevRole,
    tenant: Option<&str>,
    partner: &str,
) -> anyhow::Result<std::process::ExitCode> {
    use crate::cli::DevRole;
    let key = DevKey::load_or_create(&DevKey::path(&settings.data_dir()))?;
    let mut claims = serde_json::Map::new();
    match role {
        DevRole::PlatformAdmin => {
            claims.insert("sub".into(), "dev-platform-admin".into());
            claims.insert("email".into(), "operator@dezky.local".into());
            claims.insert(
                "groups".into(),
                serde_json::json!(["dezky-platform-admins"]),
            );
        }
        DevRole::Partner => {
            claims.insert("sub".into(), format!("dev-partner-{partner}").into());
            claims.insert("email".into(), format!("staff@{partner}.local").into());
            claims.insert("dezky_partner_id".into(), partner.into());
        }
        DevRole::TenantAdmin | DevRole::Member => {
            let slug =
                tenant.ok_or_else(|| anyhow::anyhow!("--tenant is required for this role"))?;
            let member = tenant_member(settings, slug, role == DevRole::TenantAdmin).await?;
            claims.insert(
                "sub".into(),
                member
                    .subject
                    .unwrap_or_else(|| format!("dev-{}", member.member_id))
                    .into(),
            );
            claims.insert("email".into(), member.email.into());
        }
    }
    // The development identity provider vouches for the address, as Authentik does for the
    // addresses it manages.
    claims.insert("email_verified".into(), true.into());
    println!("{}", key.token(claims)?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// The owner (`admin`) or the first plain member of a tenant, from the read model.
async fn tenant_member(
    settings: &crate::settings::Settings,
    slug: &str,
    admin: bool,
) -> anyhow::Result<dezky_projections::tenants::MemberRow> {
    use dezky_projections::tenants::{tenant_by_slug, tenant_detail, TenantDirectory};
    let ledger = dezky_commands::Ledger::open(&settings.ledger_options()).await?;
    // Bring the directory up to date first; the state-row lock makes this safe beside a
    // running server.
    dezky_projections::ProjectionRunner::new(ledger.clone(), TenantDirectory::new())
        .await?
        .catch_up()
        .await?;
    let tenant = tenant_by_slug(ledger.db(), slug)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant with slug {slug:?}"))?;
    let detail = tenant_detail(ledger.db(), &tenant.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant with slug {slug:?}"))?;
    let found = detail.members.into_iter().find(|m| {
        if admin {
            m.is_owner
        } else {
            m.role == dezky_domain::tenant::Role::Member
        }
    });
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "tenant {slug:?} has no {}; add one first (addMember in the explorer)",
            if admin { "owner" } else { "plain member" }
        )
    })
}
