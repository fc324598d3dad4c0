//! The chain verifier: walks events in position order and names the first break precisely.
//!
//! It is fed by the live store (`dezky audit verify`) or by an export file (offline, with
//! nothing but the export and the public keys), through the same state machine. Hashing is
//! done by the caller (in parallel for exports); the verifier checks linkage, positions,
//! the Merkle root and chain head at every signed checkpoint, and the checkpoint signatures.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::checkpoint::{CheckpointSignatureError, SignedCheckpoint};
use crate::encoding::{Hash32, GENESIS_PREV_HASH};
use crate::keys::TrustedKeys;
use crate::merkle::Frontier;
use crate::store::Head;

/// How many verified events are remembered to recognise an insertion.
const RECENT_EVENTS: usize = 64;
/// How many events are read past a suspected break to classify it.
const LOOKAHEAD_EVENTS: usize = 16;

/// The kinds of break the verifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// An event's stored fields (payload, metadata or any other hashed field) no longer hash
    /// to its stored hash, or an event was rewritten and re-hashed so that its successor no
    /// longer points at it.
    Modified,
    /// Events were inserted into or deleted from the chain.
    InsertedOrDeleted,
    /// Events appear out of order.
    Reordered,
    /// Positions skip a number although the hashes link (positions must be gapless).
    PositionGap,
    /// The log ends before a signed checkpoint's size (or the stored head's position).
    Truncated,
    /// The log at a signed checkpoint's size is not the log that was signed (rolled back and
    /// rewritten, or forked).
    RolledBack,
    /// A checkpoint's signature does not match its text (forged or altered checkpoint).
    BadCheckpointSignature,
    /// A checkpoint signed only by keys the verifier does not trust.
    UnknownKey,
    /// An unreadable line or row.
    Malformed,
}

impl BreakKind {
    /// A stable machine-readable name (used in CLI output and JSON reports).
    pub fn code(self) -> &'static str {
        match self {
            BreakKind::Modified => "modified",
            BreakKind::InsertedOrDeleted => "inserted_or_deleted",
            BreakKind::Reordered => "reordered",
            BreakKind::PositionGap => "position_gap",
            BreakKind::Truncated => "truncated",
            BreakKind::RolledBack => "rolled_back",
            BreakKind::BadCheckpointSignature => "bad_checkpoint_signature",
            BreakKind::UnknownKey => "unknown_key",
            BreakKind::Malformed => "malformed",
        }
    }
}

/// The first break found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// What kind of break.
    pub kind: BreakKind,
    /// The position where the chain stops being trustworthy.
    pub position: u64,
    /// A sentence for the person reading the report.
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at position {}: {}",
            self.kind.code(),
            self.position,
            self.detail
        )
    }
}

/// One event as the verifier sees it: its links, and whether its content hashed to its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Stored position.
    pub position: u64,
    /// Stored previous hash.
    pub prev_hash: Hash32,
    /// Stored hash.
    pub hash: Hash32,
    /// Whether the stored fields hash to `hash` (always true for elided events, whose
    /// content the export leaves out; the Merkle root still covers them).
    pub content_ok: bool,
}

/// Where verification starts: the beginning of the log, or after a known position.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Position before the first event to verify (0 for the whole log).
    pub after: u64,
    /// Hash of the event at `after` (zeros for the whole log). Taken as given; a signed
    /// checkpoint later in the walk confirms it.
    pub anchor: Hash32,
    /// Merkle frontier at `after`, when known; without it roots cannot be recomputed and
    /// checkpoints are checked on their head hash alone.
    pub frontier: Option<Frontier>,
}

impl Start {
    /// The whole log from position 1.
    pub fn genesis() -> Self {
        Self {
            after: 0,
            anchor: GENESIS_PREV_HASH,
            frontier: Some(Frontier::default()),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events walked (including elided ones).
    pub events: u64,
    /// Events whose content was elided from the export (verified by hash linkage only).
    pub elided: u64,
    /// Position of the last event accepted.
    pub last_position: u64,
    /// Hash of the last event accepted.
    pub last_hash: Hash32,
    /// Checkpoints whose signature, size, root and head all matched.
    pub checkpoints_verified: u64,
    /// Checkpoints with a valid signature that cover only positions before the walk began.
    pub checkpoints_before_start: u64,
    /// The first break, if any.
    pub first_break: Option<Break>,
}

impl Report {
    /// True when no break was found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The verifier state machine.
pub struct ChainVerifier {
    keys: TrustedKeys,
    after: u64,
    last: (u64, Hash32),
    frontier: Option<Frontier>,
    recent: VecDeque<(u64, Hash32)>,
    suspects: Vec<Link>,
    pending: BTreeMap<u64, Vec<SignedCheckpoint>>,
    found: Option<Break>,
    events: u64,
    elided: u64,
    checkpoints_verified: u64,
    checkpoints_before_start: u64,
}

impl ChainVerifier {
    /// A verifier trusting `keys`, starting at `start`.
    pub fn new(keys: TrustedKeys, start: Start) -> Self {
        Self {
            keys,
            after: start.after,
            last: (start.after, start.anchor),
            frontier: start.frontier,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            suspects: Vec::new(),
            pending: BTreeMap::new(),
            found: None,
            events: 0,
            elided: 0,
            checkpoints_verified: 0,
            checkpoints_before_start: 0,
        }
    }

    /// True once a break was found; further input is ignored.
    pub fn has_break(&self) -> bool {
        self.found.is_some()
    }

    /// Position of the last accepted event.
    pub fn position(&self) -> u64 {
        self.last.0
    }

    /// Records a break found outside the walk (e.g. an unreadable line), unless an earlier
    /// one is already known.
    ///
    /// While the verifier reads ahead past a suspect event to classify it, that suspect is
    /// the earlier break: it always becomes one once classified, so a break met during the
    /// look-ahead (a checkpoint with a bad or unknown signature, an unreadable line or row)
    /// is not the first and is not recorded.
    pub fn fail(&mut self, kind: BreakKind, position: u64, detail: impl Into<String>) {
        if self.found.is_none() && self.suspects.is_empty() {
            self.found = Some(Break {
                kind,
                position,
                detail: detail.into(),
            });
        }
    }

    /// Feeds the next event.
    pub fn push(&mut self, link: Link) {
        if self.found.is_some() {
            return;
        }
        if !self.suspects.is_empty() {
            self.suspects.push(link);
            if self.suspects.len() >= LOOKAHEAD_EVENTS {
                self.classify();
            }
            return;
        }
        let (position, hash) = self.last;
        if link.position == position + 1 && link.prev_hash == hash {
            if !link.content_ok {
                self.fail(
                    BreakKind::Modified,
                    link.position,
                    "the event's stored fields (payload, metadata or another hashed field) do not hash to its stored hash",
                );
                return;
            }
            self.accept(link);
        } else {
            self.suspects.push(link);
        }
    }

    /// Feeds an elided event (an export for one tenant leaves other tenants' content out).
    pub fn push_elided(&mut self, position: u64, prev_hash: Hash32, hash: Hash32) {
        self.elided += 1;
        self.push(Link {
            position,
            prev_hash,
            hash,
            content_ok: true,
        });
    }

    /// Feeds a checkpoint. It is checked when the walk reaches its size, so callers pass
    /// checkpoints no later than the event at their size.
    pub fn push_checkpoint(&mut self, note: &str) {
        if self.found.is_some() {
            return;
        }
        let at = self.last.0 + 1;
        let checkpoint = match SignedCheckpoint::parse(note) {
            Ok(cp) => cp,
            Err(error) => {
                // A checkpoint altered so far that it no longer parses is still a forgery.
                self.fail(
                    BreakKind::BadCheckpointSignature,
                    at,
                    format!("a checkpoint is unreadable ({error})"),
                );
                return;
            }
        };
        match checkpoint.verify(&self.keys) {
            Ok(()) => {}
            Err(CheckpointSignatureError::Invalid { key }) => {
                self.fail(
                    BreakKind::BadCheckpointSignature,
                    checkpoint.tree_size,
                    format!(
                        "the checkpoint for size {} carries a signature by {key} that does not match its text",
                        checkpoint.tree_size
                    ),
                );
                return;
            }
            Err(CheckpointSignatureError::UnknownKey { keys }) => {
                self.fail(
                    BreakKind::UnknownKey,
                    checkpoint.tree_size,
                    format!(
                        "the checkpoint for size {} is signed only by untrusted keys {}",
                        checkpoint.tree_size,
                        keys.join(", ")
                    ),
                );
                return;
            }
        }
        if checkpoint.tree_size == self.last.0 && self.suspects.is_empty() {
            self.check_at_head(&checkpoint);
        } else if checkpoint.tree_size < self.after {
            self.checkpoints_before_start += 1;
        } else if checkpoint.tree_size > self.last.0 {
            self.pending
                .entry(checkpoint.tree_size)
                .or_default()
                .push(checkpoint);
        } else {
            self.fail(
                BreakKind::Reordered,
                checkpoint.tree_size,
                format!(
                    "the checkpoint for size {} appears after position {}",
                    checkpoint.tree_size, self.last.0
                ),
            );
        }
    }

    /// Ends the walk. `stored_head` is what the store's head row claims, when verifying a
    /// live store.
    pub fn finish(mut self, stored_head: Option<&Head>) -> Report {
        if !self.suspects.is_empty() && self.found.is_none() {
            self.classify();
        }
        if self.found.is_none() {
            if let Some((&size, _)) = self.pending.iter().next() {
                let last = self.last.0;
                self.fail(
                    BreakKind::Truncated,
                    last + 1,
                    format!(
                        "the log ends at position {last} but a signed checkpoint covers {size} events"
                    ),
                );
            }
        }
        if self.found.is_none() {
            if let Some(stored) = stored_head {
                let head = stored.position;
                let last = self.last.0;
                if head == last && stored.hash != self.last.1 {
                    // The last event was rewritten and re-hashed after the head recorded it;
                    // no successor and no checkpoint can reveal that, the head row does.
                    self.fail(
                        BreakKind::Modified,
                        last,
                        format!(
                            "event {last} does not have the hash the stored head recorded for it"
                        ),
                    );
                } else if head == last
                    && self
                        .frontier
                        .as_ref()
                        .is_some_and(|f| f.root() != stored.frontier.root())
                {
                    self.fail(
                        BreakKind::Malformed,
                        last,
                        "the stored head's Merkle frontier does not match the events: later checkpoints would be signed over a wrong root",
                    );
                } else if head > last {
                    self.fail(
                        BreakKind::Truncated,
                        last + 1,
                        format!("the log ends at position {last} but the stored head is at {head}"),
                    );
                } else if head < last {
                    self.fail(
                        BreakKind::InsertedOrDeleted,
                        head + 1,
                        format!("events after the stored head ({head}) were appended outside the ledger"),
                    );
                }
            }
        }
        Report {
            events: self.events,
            elided: self.elided,
            last_position: self.last.0,
            last_hash: self.last.1,
            checkpoints_verified: self.checkpoints_verified,
            checkpoints_before_start: self.checkpoints_before_start,
            first_break: self.found,
        }
    }

    fn accept(&mut self, link: Link) {
        self.events += 1;
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(self.last);
        self.last = (link.position, link.hash);
        if let Some(frontier) = &mut self.frontier {
            frontier.push(&link.hash);
        }
        if let Some(checkpoints) = self.pending.remove(&link.position) {
            for checkpoint in checkpoints {
                self.check_at_head(&checkpoint);
            }
        }
    }

    fn check_at_head(&mut self, checkpoint: &SignedCheckpoint) {
        let head_ok = checkpoint.head == self.last.1;
        let root_ok = self
            .frontier
            .as_ref()
            .is_none_or(|f| f.root() == checkpoint.root);
        if head_ok && root_ok {
            self.checkpoints_verified += 1;
        } else {
            self.fail(
                BreakKind::RolledBack,
                checkpoint.tree_size,
                format!(
                    "the first {} events are not the ones signed at {}: the log was rolled back and rewritten",
                    checkpoint.tree_size, checkpoint.time
                ),
            );
        }
    }

    /// Names a break from the suspect event and what follows it.
    fn classify(&mut self) {
        let suspects = std::mem::take(&mut self.suspects);
        let first = suspects[0];
        let (last_position, last_hash) = self.last;
        let expected = last_position + 1;
        let later = &suspects[1..];
        let (kind, position, detail) = if first.position < expected
            || later.iter().any(|l| l.position == expected)
            || later.iter().any(|l| l.hash == first.prev_hash)
        {
            (
                BreakKind::Reordered,
                expected,
                format!("the event at position {expected} is not the one that follows position {last_position}; it appears later in the log"),
            )
        } else if first.position > expected {
            if first.prev_hash == last_hash {
                (
                    BreakKind::PositionGap,
                    expected,
                    format!(
                        "position {} follows {last_position}: positions {expected}..{} are missing although the hashes link",
                        first.position,
                        first.position - 1
                    ),
                )
            } else {
                (
                    BreakKind::InsertedOrDeleted,
                    expected,
                    format!(
                        "events {expected}..{} were deleted: event {} does not point at event {last_position}",
                        first.position - 1,
                        first.position
                    ),
                )
            }
        } else if let Some((inserted_after, _)) =
            self.recent.iter().find(|(_, h)| *h == first.prev_hash)
        {
            (
                BreakKind::InsertedOrDeleted,
                inserted_after + 1,
                format!(
                    "events {}..{last_position} were inserted: event {} points at event {inserted_after}",
                    inserted_after + 1,
                    first.position
                ),
            )
        } else if first.content_ok {
            (
                BreakKind::Modified,
                last_position,
                format!(
                    "event {last_position} was rewritten and re-hashed: event {} still points at its original hash",
                    first.position
                ),
            )
        } else {
            (
                BreakKind::InsertedOrDeleted,
                expected,
                format!(
                    "event {expected} does not point at event {last_position} and its fields do not hash to its hash: events were deleted or inserted and the rest renumbered"
                ),
            )
        };
        self.fail(kind, position, detail);
    }
}
