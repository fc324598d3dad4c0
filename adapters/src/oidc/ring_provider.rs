//! A verify-only `jsonwebtoken` crypto provider backed by `ring`.
//!
//! `jsonwebtoken` 10 and later ship two backends, `aws_lc_rs` (a C build, and a second TLS-grade
//! crypto library next to the `ring` that rustls already links) and `rust_crypto` (some sixty
//! more crates, among them `rsa`, which carries an open timing advisory). Both would double the
//! crypto in the binary, so this module binds the JOSE algorithm names to `ring`'s verification
//! algorithms instead, through the extension point `jsonwebtoken` documents for this purpose.
//! The table below is the whole of it; parsing, padding and curve arithmetic are `ring`'s.
//!
//! Only public-key verification is provided. HMAC is refused here as well as by the verifier,
//! so no code path in this process can check an HMAC tag with a public key as its secret;
//! signing is refused because the control plane only ever checks tokens the provider issued.
//! See ADR 6.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as ring_sig, RsaParameters, VerificationAlgorithm};

/// The provider `OidcVerifier` installs as `jsonwebtoken`'s process default when none is.
pub(crate) static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: refuse_signing,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported("RSA key derivation")),
        rsa_pub_components_from_public_key: |_| Err(unsupported("RSA key derivation")),
        ec_pub_components_from_private_key: |_, _| Err(unsupported("EC key derivation")),
        ed_pub_components_from_private_key: ed_unsupported,
        compute_digest,
    },
};

/// Installs [`RING_PROVIDER`] unless the process already has a `jsonwebtoken` provider.
///
/// An already installed provider is kept: it was chosen on purpose by the binary, and any of
/// `jsonwebtoken`'s providers verifies the same algorithms. What matters is that one exists
/// before the first `decode`, which would otherwise panic.
pub(crate) fn ensure_installed() {
    if CryptoProvider::try_get_default().is_none() {
        // Losing a race against another installer is fine for the same reason as above.
        let _ = RING_PROVIDER.install_default();
    }
}

fn unsupported(what: &str) -> Error {
    ErrorKind::Provider(format!(
        "{what} is not supported by dezky's verify-only ring provider"
    ))
    .into()
}

// A named function rather than a closure: the reference parameter's lifetime needs spelling.
fn ed_unsupported(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>, Error> {
    Err(unsupported("Ed25519 key derivation"))
}

fn refuse_signing(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(unsupported("signing"))
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(unsupported("this thumbprint hash")),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

/// How `ring` checks one algorithm. RSA is separate because a JWK carries its key as the
/// components `n` and `e`, which `ring` verifies through its own entry point.
enum Scheme {
    Rsa(&'static RsaParameters),
    Other(&'static dyn VerificationAlgorithm),
}

fn scheme(algorithm: Algorithm) -> Option<(AlgorithmFamily, Scheme)> {
    use AlgorithmFamily::{Ec, Ed, Rsa};
    Some(match algorithm {
        Algorithm::RS256 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256)),
        Algorithm::RS384 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384)),
        Algorithm::RS512 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512)),
        Algorithm::PS256 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA256)),
        Algorithm::PS384 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA384)),
        Algorithm::PS512 => (Rsa, Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA512)),
        // JWS carries ECDSA signatures as fixed-width r‖s, not ASN.1 (RFC 7518 §3.4).
        Algorithm::ES256 => (Ec, Scheme::Other(&ring_sig::ECDSA_P256_SHA256_FIXED)),
        Algorithm::ES384 => (Ec, Scheme::Other(&ring_sig::ECDSA_P384_SHA384_FIXED)),
        Algorithm::EdDSA => (Ed, Scheme::Other(&ring_sig::ED25519)),
        // HS256/384/512 and any algorithm a later jsonwebtoken adds.
        _ => return None,
    })
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let Some((family, scheme)) = scheme(*algorithm) else {
        return Err(ErrorKind::UnsupportedAlgorithm.into());
    };
    // A key is only ever used with the family it was made for: an EC key never checks an RSA
    // signature, and no key checks an HMAC tag.
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        scheme,
        key: key.clone(),
    }))
}

struct RingVerifier {
    algorithm: Algorithm,
    scheme: Scheme,
    key: DecodingKey,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match (&self.scheme, self.key.kind()) {
            (Scheme::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(params, message, sig)
            }
            // A DER `RSAPublicKey`, as `DecodingKey::from_rsa_der` holds it.
            (Scheme::Rsa(params), DecodingKeyKind::SecretOrDer(der)) => {
                ring_sig::UnparsedPublicKey::new(*params, der).verify(message, sig)
            }
            // An uncompressed EC point (0x04‖x‖y) or a raw Ed25519 key, as built from a JWK.
            (Scheme::Other(alg), DecodingKeyKind::SecretOrDer(bytes)) => {
                ring_sig::UnparsedPublicKey::new(*alg, bytes).verify(message, sig)
            }
            (Scheme::Other(_), DecodingKeyKind::RsaModulusExponent { .. }) => {
                return Err(signature::Error::new());
            }
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}
