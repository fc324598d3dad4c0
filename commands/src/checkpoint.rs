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

/// Why a checkpoint text is not a dezky checkpoint (docs/ledger-format.md §5).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointFormatError {
    /// Not a signed note: no blank line before the signatures, a control character, no
    /// signature line, or a signature line that does not parse.
    #[error("not a signed note")]
    NotANote,
    /// A signed note whose body is not the five lines of a dezky checkpoint.
    #[error("not a dezky checkpoint: {0}")]
    NotACheckpoint(&'static str),
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

/// The longest note text accepted. A dezky checkpoint with one signature is about 300 bytes;
/// this leaves room for many co-signatures and bounds the work an export can ask for.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// Decodes standard base64 with padding, accepting only the one canonical spelling of the
/// bytes (so no two note texts carry the same value).
fn canonical_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
}

/// A 32-byte hash in canonical base64 (44 characters).
fn base64_hash(text: &str) -> Option<Hash32> {
    canonical_base64(text)?.try_into().ok()
}

/// A tree size: decimal digits, no sign, no leading zero (except `0` itself), within u64.
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// A ledger timestamp as the checkpointer writes it: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a real
/// instant.
fn is_timestamp(text: &str) -> bool {
    let shape = text.len() == 27
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            26 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    shape && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

/// `name+keyid` of one signature line, `— <name> <base64(key id || signature)>`.
fn signature_label(line: &str) -> Option<String> {
    let (name, encoded) = line.strip_prefix("— ")?.split_once(' ')?;
    let bytes = canonical_base64(encoded)?;
    if !signed_note::is_key_name_valid(name) || bytes.len() < 5 {
        return None;
    }
    let id = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    Some(key_label(name, id))
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
            .map_err(|_| CheckpointFormatError::NotACheckpoint("the origin cannot be written"))?;
        let mut note =
            Note::new(&body.to_bytes(), &[]).map_err(|_| CheckpointFormatError::NotANote)?;
        note.add_sigs(&[key.signer()])
            .map_err(|_| CheckpointFormatError::NotANote)?;
        let text =
            String::from_utf8(note.to_bytes()).map_err(|_| CheckpointFormatError::NotANote)?;
        Self::parse(&text)
    }

    /// Parses a checkpoint note exactly as docs/ledger-format.md §5 specifies it (signatures
    /// are checked by [`SignedCheckpoint::verify`]):
    ///
    /// ```text
    /// <origin>\n<size>\n<base64 root>\nhead <base64 hash>\ntime <timestamp>\n
    /// \n
    /// — <key name> <base64(key id || signature)>\n        (one or more)
    /// ```
    ///
    /// The body is exactly those five lines: no other extension line is accepted, so what a
    /// checkpoint says is never more than what this parser reads.
    pub fn parse(text: &str) -> Result<Self, CheckpointFormatError> {
        let not_a_note = CheckpointFormatError::NotANote;
        if text.len() > MAX_NOTE_BYTES || text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(not_a_note);
        }
        // Body lines are never empty, so the first blank line is the one before the
        // signatures (C2SP signed-note takes the last; with these rules they are the same).
        let (body, signatures) = text.split_once("\n\n").ok_or(not_a_note)?;
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or(CheckpointFormatError::NotANote)?;
        let signers = signatures
            .split('\n')
            .map(signature_label)
            .collect::<Option<Vec<_>>>()
            .ok_or(CheckpointFormatError::NotANote)?;
        let bad = CheckpointFormatError::NotACheckpoint;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, head, time] = lines[..] else {
            return Err(bad("the body is not five lines"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin line"));
        }
        let tree_size = decimal(size).ok_or(bad("malformed size line"))?;
        let root = base64_hash(root).ok_or(bad("malformed root line"))?;
        let head = head
            .strip_prefix("head ")
            .and_then(base64_hash)
            .ok_or(bad("malformed head line"))?;
        let time = time
            .strip_prefix("time ")
            .filter(|t| is_timestamp(t))
            .ok_or(bad("malformed time line"))?;
        Ok(Self {
            note: text.to_owned(),
            origin: origin.to_owned(),
            tree_size,
            root,
            head,
            time: time.to_owned(),
            signers,
        })
    }

    /// Checks that at least one trusted key signed the checkpoint and that every signature by
    /// a trusted key is valid; returns `name+keyid` of each trusted key that signed.
    pub fn verify(&self, keys: &TrustedKeys) -> Result<Vec<String>, CheckpointSignatureError> {
        let note = Note::from_bytes(self.note.as_bytes()).map_err(|_| {
            CheckpointSignatureError::Invalid {
                key: self.signers.join(","),
            }
        })?;
        match note.verify(&keys.verifier_list()) {
            Ok((verified, _)) => Ok(verified
                .iter()
                .map(|sig| key_label(sig.name(), sig.id()))
                .collect()),
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

    const TIME: &str = "2026-11-28T12:00:00.000000Z";

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
        assert_eq!(
            cp.verify(&trusted),
            Ok(vec![format!("dezky.test/ledger+{:08x}", key.key_id())])
        );
    }

    #[test]
    fn an_altered_size_breaks_the_signature() {
        let key = key("dezky.test/ledger");
        let cp = SignedCheckpoint::sign("dezky.test/ledger", 42, &[7; 32], &[9; 32], TIME, &key)
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
        let cp = SignedCheckpoint::sign("dezky.test/ledger", 1, &[1; 32], &[1; 32], TIME, &signer)
            .expect("sign");
        let trusted = TrustedKeys::from_lines(vec![other.public_line().to_owned()]).expect("keys");
        assert!(matches!(
            cp.verify(&trusted),
            Err(CheckpointSignatureError::UnknownKey { .. })
        ));
    }

    fn signed(key: &SigningKey) -> SignedCheckpoint {
        SignedCheckpoint::sign("dezky.test/ledger", 42, &[7; 32], &[9; 32], TIME, key)
            .expect("sign")
    }

    #[test]
    fn a_note_with_an_extension_line_after_time_is_not_a_dezky_checkpoint() {
        let cp = signed(&key("dezky.test/ledger"));
        let extended = cp.note.replacen("Z\n\n", "Z\nwitness yes\n\n", 1);
        assert_ne!(extended, cp.note);
        assert_eq!(
            SignedCheckpoint::parse(&extended),
            Err(CheckpointFormatError::NotACheckpoint(
                "the body is not five lines"
            ))
        );
    }

    #[test]
    fn a_size_line_with_a_leading_zero_is_refused_although_it_means_the_same_number() {
        let cp = signed(&key("dezky.test/ledger"));
        let padded = cp.note.replacen("\n42\n", "\n042\n", 1);
        assert_eq!(
            SignedCheckpoint::parse(&padded),
            Err(CheckpointFormatError::NotACheckpoint("malformed size line"))
        );
    }

    #[test]
    fn a_time_line_that_is_not_a_ledger_timestamp_is_refused() {
        let cp = signed(&key("dezky.test/ledger"));
        let vague = cp.note.replacen(TIME, "2026-11-28T12:00:00Z", 1);
        assert_eq!(
            SignedCheckpoint::parse(&vague),
            Err(CheckpointFormatError::NotACheckpoint("malformed time line"))
        );
    }

    #[test]
    fn a_note_without_its_final_newline_is_not_a_signed_note() {
        let cp = signed(&key("dezky.test/ledger"));
        let cut = cp.note.trim_end_matches('\n');
        assert_eq!(
            SignedCheckpoint::parse(cut),
            Err(CheckpointFormatError::NotANote)
        );
    }
}
