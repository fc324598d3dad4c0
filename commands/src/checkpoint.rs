//! Signed checkpoints: ed25519 signatures over the log size, the Merkle root, the chain head
//! and the time, in the C2SP tlog-checkpoint / signed-note text format.
//!
//! ```text
//! dezky.example/ledger            <- origin (the log's name)
//! 1042                            <- tree size (number of events)
//! 3q2+7w...=                      <- RFC 6962 Merkle root, base64
//! head 9f86d0...=                 <- extension: hash of the event at position `size`, base64
//! time 2026-11-28T12:00:00.000000Z <- extension: when the checkpoint was signed
//!
//! — dezky.example/ledger AbCd...  <- signature line(s): key name, base64(key id || sig)
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use signed_note::{Note, NoteError};
use tlog_tiles::{Checkpoint, Hash};

use crate::encoding::Hash32;
use crate::keys::{SigningKey, TrustedKeys};

/// A checkpoint whose text parsed; its signatures are checked by [`SignedCheckpoint::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The full signed-note text, exactly as stored and exported.
    pub note: String,
    /// The log's origin line.
    pub origin: String,
    /// Number of events covered.
    pub tree_size: u64,
    /// RFC 6962 Merkle root of the first `tree_size` event hashes.
    pub root: Hash32,
    /// Hash of the event at position `tree_size` (all zeros for an empty log).
    pub head: Hash32,
    /// When it was signed (RFC 3339).
    pub time: String,
    /// `name+keyid` of every signature line, for reports.
    pub signers: Vec<String>,
}

/// Why a checkpoint text is not even a checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointFormatError {
    /// Not a signed note.
    #[error("not a signed note")]
    NotANote,
    /// Not a tlog checkpoint body.
    #[error("not a tlog checkpoint")]
    NotACheckpoint,
    /// A required `head` or `time` extension line is missing or malformed.
    #[error("missing or malformed extension line {0:?}")]
    Extension(&'static str),
}

/// Why a checkpoint's signature is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointSignatureError {
    /// A trusted key signed it but the signature does not match the text.
    #[error("signature by {key} does not match the checkpoint text")]
    Invalid {
        /// `name+keyid` of the key.
        key: String,
    },
    /// No trusted key signed it.
    #[error("signed only by keys that are not trusted: {keys:?}")]
    UnknownKey {
        /// `name+keyid` of each signature found.
        keys: Vec<String>,
    },
}

fn key_label(name: &str, id: u32) -> String {
    format!("{name}+{id:08x}")
}

/// `name+keyid` of each signature line of a note that already parsed.
fn signature_labels(text: &str) -> Vec<String> {
    let block = text.rsplit_once("\n\n").map_or("", |(_, sigs)| sigs);
    block
        .lines()
        .filter_map(|line| signed_note::Signature::from_bytes(line.as_bytes()).ok())
        .map(|sig| key_label(sig.name(), sig.id()))
        .collect()
}

impl SignedCheckpoint {
    /// Builds and signs a checkpoint.
    pub fn sign(
        origin: &str,
        tree_size: u64,
        root: &Hash32,
        head: &Hash32,
        time: &str,
        key: &SigningKey,
    ) -> Result<Self, CheckpointFormatError> {
        let extension = format!("head {}\ntime {}\n", BASE64.encode(head), time);
        let body = Checkpoint::new(origin, tree_size, Hash(*root), &extension)
            .map_err(|_| CheckpointFormatError::NotACheckpoint)?;
        let mut note =
            Note::new(&body.to_bytes(), &[]).map_err(|_| CheckpointFormatError::NotANote)?;
        note.add_sigs(&[key.signer()])
            .map_err(|_| CheckpointFormatError::NotANote)?;
        let text =
            String::from_utf8(note.to_bytes()).map_err(|_| CheckpointFormatError::NotANote)?;
        Self::parse(&text)
    }

    /// Parses a signed checkpoint text (does not check signatures).
    pub fn parse(text: &str) -> Result<Self, CheckpointFormatError> {
        let note =
            Note::from_bytes(text.as_bytes()).map_err(|_| CheckpointFormatError::NotANote)?;
        let body = Checkpoint::from_bytes(note.text())
            .map_err(|_| CheckpointFormatError::NotACheckpoint)?;
        let mut head = None;
        let mut time = None;
        for line in body.extension().lines() {
            if let Some(value) = line.strip_prefix("head ") {
                let bytes = BASE64
                    .decode(value)
                    .map_err(|_| CheckpointFormatError::Extension("head"))?;
                head = Some(
                    <Hash32>::try_from(bytes.as_slice())
                        .map_err(|_| CheckpointFormatError::Extension("head"))?,
                );
            } else if let Some(value) = line.strip_prefix("time ") {
                time = Some(value.to_owned());
            }
        }
        Ok(Self {
            note: text.to_owned(),
            origin: body.origin().to_owned(),
            tree_size: body.size(),
            root: body.hash().0,
            head: head.ok_or(CheckpointFormatError::Extension("head"))?,
            time: time.ok_or(CheckpointFormatError::Extension("time"))?,
            signers: signature_labels(text),
        })
    }

    /// Checks that at least one trusted key signed the checkpoint and that every signature by
    /// a trusted key is valid.
    pub fn verify(&self, keys: &TrustedKeys) -> Result<(), CheckpointSignatureError> {
        let note = Note::from_bytes(self.note.as_bytes()).map_err(|_| {
            CheckpointSignatureError::Invalid {
                key: self.signers.join(","),
            }
        })?;
        match note.verify(&keys.verifier_list()) {
            Ok(_) => Ok(()),
            Err(NoteError::InvalidSignature { name, id }) => {
                Err(CheckpointSignatureError::Invalid {
                    key: key_label(&name, id),
                })
            }
            Err(NoteError::UnverifiedNote) => Err(CheckpointSignatureError::UnknownKey {
                keys: self.signers.clone(),
            }),
            Err(_) => Err(CheckpointSignatureError::Invalid {
                key: self.signers.join(","),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn key(name: &str) -> SigningKey {
        let generated = generate(name).expect("generate");
        SigningKey::from_private_line(&generated.private_line, std::path::Path::new("test"))
            .expect("key")
    }

    #[test]
    fn a_signed_checkpoint_parses_back_and_verifies_with_its_public_key() {
        let key = key("dezky.test/ledger");
        let cp = SignedCheckpoint::sign(
            "dezky.test/ledger",
            42,
            &[7; 32],
            &[9; 32],
            "2026-11-28T12:00:00.000000Z",
            &key,
        )
        .expect("sign");
        assert_eq!(cp.tree_size, 42);
        assert_eq!(cp.root, [7; 32]);
        assert_eq!(cp.head, [9; 32]);
        assert!(cp.note.starts_with("dezky.test/ledger\n42\n"));
        let trusted = TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("keys");
        assert_eq!(cp.verify(&trusted), Ok(()));
    }

    #[test]
    fn an_altered_size_breaks_the_signature() {
        let key = key("dezky.test/ledger");
        let cp = SignedCheckpoint::sign("dezky.test/ledger", 42, &[7; 32], &[9; 32], "t", &key)
            .expect("sign");
        let forged = SignedCheckpoint::parse(&cp.note.replacen("\n42\n", "\n43\n", 1))
            .expect("still parses");
        let trusted = TrustedKeys::from_lines(vec![key.public_line().to_owned()]).expect("keys");
        assert!(matches!(
            forged.verify(&trusted),
            Err(CheckpointSignatureError::Invalid { .. })
        ));
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_reported_as_unknown_key() {
        let signer = key("dezky.test/ledger");
        let other = key("dezky.test/ledger");
        let cp = SignedCheckpoint::sign("dezky.test/ledger", 1, &[1; 32], &[1; 32], "t", &signer)
            .expect("sign");
        let trusted = TrustedKeys::from_lines(vec![other.public_line().to_owned()]).expect("keys");
        assert!(matches!(
            cp.verify(&trusted),
            Err(CheckpointSignatureError::UnknownKey { .. })
        ));
    }
}
