//! Checkpoint signing keys and the trusted public keys an auditor verifies with.
//!
//! Both use the signed-note key encodings (c2sp.org/signed-note, via the `signed_note`
//! crate): a private key is one line `PRIVATE+KEY+<name>+<key id>+<base64>`, a public key one
//! line `<name>+<key id>+<base64>`. The key id (8 hex digits) is derived from the name and
//! public key, so rotating a key under the same name yields a new id; a trusted-keys file may
//! list several keys at once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use signed_note::{StandardSigner, StandardVerifier, Verifier, VerifierList};

/// Problems with key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The private key file does not hold a valid signed-note ed25519 private key.
    #[error("{path} does not hold a valid signing key (expected PRIVATE+KEY+<name>+<id>+<key>)")]
    MalformedPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A line of a trusted-keys file is not a valid public key.
    #[error("{source_name} line {line}: not a valid public key (expected <name>+<id>+<key>)")]
    MalformedPublicKey {
        /// Where the line came from.
        source_name: String,
        /// 1-based line number.
        line: usize,
    },
    /// A trusted-keys file without any key.
    #[error("{source_name} lists no public key")]
    NoPublicKeys {
        /// Where the keys came from.
        source_name: String,
    },
    /// A key name that signed notes cannot carry.
    #[error("key name {0:?} is not valid: it must be non-empty, without spaces or '+'")]
    InvalidName(String),
}

/// A checkpoint signing key together with its public half.
pub struct SigningKey {
    signer: StandardSigner,
    public_line: String,
}

impl std::fmt::Debug for SigningKey {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_line)
            .finish_non_exhaustive()
    }
}

/// A freshly generated key pair in its text encodings.
pub struct GeneratedKey {
    /// The private key line (keep secret).
    pub private_line: String,
    /// The public key line (publish).
    pub public_line: String,
}

/// Generates a new ed25519 key pair for the given key name.
pub fn generate(name: &str) -> Result<GeneratedKey, KeyError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    let (private_line, public_line) = signed_note::generate_key(&mut rand_core::OsRng, name);
    Ok(GeneratedKey {
        private_line,
        public_line,
    })
}

impl SigningKey {
    /// Parses a private key line.
    pub fn from_private_line(line: &str, path: &Path) -> Result<Self, KeyError> {
        let malformed = || KeyError::MalformedPrivateKey {
            path: path.to_owned(),
        };
        let line = line.trim();
        let signer = StandardSigner::new(line).map_err(|_| malformed())?;
        // The public line is derived from the private key, never read from beside it.
        // Base64 may itself contain '+': take everything after the fourth separator.
        let encoded = line.splitn(5, '+').nth(4).ok_or_else(malformed)?;
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
            .map_err(|_| malformed())?;
        let seed: [u8; 32] = raw
            .get(1..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(malformed)?;
        let verifying = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let public_line =
            signed_note::new_ed25519_verifier_key(signed_note::Signer::name(&signer), &verifying);
        Ok(Self {
            signer,
            public_line,
        })
    }

    /// The key whose ed25519 seed is `seed`. Production keys come from [`generate`]; this is
    /// for reproducible test vectors, which are published together with their keys.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        let verifying = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
        let public_line = signed_note::new_ed25519_verifier_key(name, &verifying);
        // `<name>+<key id>+<base64>`: the key id is the public line's second field.
        let id = public_line
            .split('+')
            .nth(1)
            .ok_or_else(|| KeyError::InvalidName(name.to_owned()))?;
        let mut raw = vec![0x01];
        raw.extend_from_slice(seed);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
        Self::from_private_line(
            &format!("PRIVATE+KEY+{name}+{id}+{encoded}"),
            Path::new("(seed)"),
        )
    }

    /// Loads the private key from `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_private_line(&text, path)
    }

    /// Loads the key at `path`, or creates one there (file mode 0600) when the file does not
    /// exist. This is the embedded default's behaviour, so that a first run just works.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Self, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let generated = generate(name)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        writeln!(file, "{}", generated.private_line).map_err(io)?;
        file.sync_all().map_err(io)?;
        Self::from_private_line(&generated.private_line, path)
    }

    /// The public key line (`<name>+<id>+<base64>`).
    pub fn public_line(&self) -> &str {
        &self.public_line
    }

    /// The key name.
    pub fn name(&self) -> &str {
        signed_note::Signer::name(&self.signer)
    }

    /// The key id (signed-note key hash).
    pub fn key_id(&self) -> u32 {
        signed_note::Signer::key_id(&self.signer)
    }

    pub(crate) fn signer(&self) -> &StandardSigner {
        &self.signer
    }
}

/// The public keys an auditor trusts.
pub struct TrustedKeys {
    lines: Vec<String>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.lines).finish()
    }
}

impl TrustedKeys {
    /// Parses a trusted-keys text: one public key a line; blank lines and `#` comments are
    /// ignored. `source_name` names the text in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, KeyError> {
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            StandardVerifier::new(line).map_err(|_| KeyError::MalformedPublicKey {
                source_name: source_name.to_owned(),
                line: index + 1,
            })?;
            lines.push(line.to_owned());
        }
        if lines.is_empty() {
            return Err(KeyError::NoPublicKeys {
                source_name: source_name.to_owned(),
            });
        }
        Ok(Self { lines })
    }

    /// Reads a trusted-keys file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Trusts exactly the given public key lines (already validated, e.g. from a signing key).
    pub fn from_lines(lines: Vec<String>) -> Result<Self, KeyError> {
        Self::parse(&lines.join("\n"), "configured keys")
    }

    /// The public key lines, in file order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub(crate) fn verifier_list(&self) -> VerifierList {
        VerifierList::new(
            self.lines
                .iter()
                .filter_map(|line| StandardVerifier::new(line).ok())
                .map(|v| Box::new(v) as Box<dyn Verifier>)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_file_is_private_and_loads_back_with_the_same_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/ledger.key");
        let created = SigningKey::load_or_create(&path, "dezky.test/ledger").expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = SigningKey::load_or_create(&path, "ignored").expect("load");
        assert_eq!(created.public_line(), loaded.public_line());
        assert_eq!(loaded.name(), "dezky.test/ledger");
        TrustedKeys::parse(loaded.public_line(), "test").expect("public line parses");
    }

    #[test]
    fn a_trusted_keys_file_with_a_bad_line_names_the_line() {
        let key = generate("dezky.test/ledger").expect("generate");
        let text = format!("# trusted\n{}\nnot-a-key\n", key.public_line);
        match TrustedKeys::parse(&text, "keys.txt") {
            Err(KeyError::MalformedPublicKey { line, .. }) => assert_eq!(line, 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_empty_trusted_keys_file_is_refused() {
        assert!(matches!(
            TrustedKeys::parse("# nothing\n", "keys.txt"),
            Err(KeyError::NoPublicKeys { .. })
        ));
    }

    #[test]
    fn a_key_name_with_a_plus_is_refused() {
        assert!(matches!(generate("a+b"), Err(KeyError::InvalidName(_))));
    }

    #[test]
    fn a_key_from_a_seed_is_the_same_key_every_time() {
        let seed = [7u8; 32];
        let first = SigningKey::from_seed("dezky.test/ledger", &seed).expect("key");
        let again = SigningKey::from_seed("dezky.test/ledger", &seed).expect("key");
        assert_eq!(first.public_line(), again.public_line());
        assert!(first
            .public_line()
            .starts_with(&format!("dezky.test/ledger+{:08x}+", first.key_id())));
        let other = SigningKey::from_seed("dezky.test/ledger", &[8u8; 32]).expect("key");
        assert_ne!(first.public_line(), other.public_line());
        TrustedKeys::parse(first.public_line(), "test").expect("public line parses");
    }

    #[test]
    fn a_public_key_whose_base64_holds_a_plus_is_read_whole() {
        // Seeds are tried until the public key's base64 contains '+', which the format's
        // own separator must not split.
        let key = (0u8..=255)
            .map(|n| SigningKey::from_seed("dezky.test/ledger", &[n; 32]).expect("key"))
            .find(|key| {
                key.public_line()
                    .splitn(3, '+')
                    .nth(2)
                    .is_some_and(|b| b.contains('+'))
            })
            .expect("some seed gives a '+' in the base64");
        let trusted = TrustedKeys::parse(key.public_line(), "keys.txt").expect("parses");
        assert_eq!(trusted.lines(), [key.public_line().to_owned()]);
    }
}
