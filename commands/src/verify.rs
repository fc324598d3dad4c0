//! The chain verifier: walks events in position order and names the first break precisely.
//!
//! It is fed by the live store (`dezky audit verify`) or by an export file (offline, with
//! nothing but the export and the public keys), through the same state machine. Hashing is
//! done by the caller (in parallel for exports); the verifier checks linkage, positions,
//! checkpoint signatures and placement, the Merkle root and chain head at every signed
//! checkpoint, and which positions a checkpoint signs. docs/ledger-format.md §7 specifies
//! every rule here, in the same order; a change to one is a change to the format.

use std::collections::VecDeque;
use std::fmt;

use crate::checkpoint::{CheckpointSignatureError, SignedCheckpoint};
use crate::encoding::{Hash32, GENESIS_PREV_HASH};
use crate::keys::TrustedKeys;
use crate::merkle::Frontier;
use crate::store::Head;

/// How many accepted events are remembered to recognise a line that forks off one of them
/// (an insertion or a duplicate). Part of the format's verdicts (§7).
pub const RECENT_EVENTS: usize = 64;
/// How many event or elided lines after the first one that cannot be accepted are read to
/// classify the break (the window of §7). Part of the format's verdicts.
pub const WINDOW_EVENTS: usize = 16;

/// The kinds of break the verifier names. docs/ledger-format.md §7 gives, for each, the
/// position it names and its precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// A line that is not what the format allows: not JSON, not UTF-8, a member the line's
    /// type does not have, a missing member, a value of the wrong type, a second header.
    Malformed,
    /// A line longer than the verifier's maximum line length.
    LineTooLong,
    /// An event's hashed fields do not hash to its hash, or an event was rewritten and
    /// re-hashed so that the next event no longer points at it.
    Modified,
    /// A line that does not belong to the chain: a forged event, or a copy of one.
    Inserted,
    /// Events are missing: the line after the hole points at an event that is not there.
    Deleted,
    /// Events appear out of order.
    Reordered,
    /// Positions skip a number although the hashes link (positions must be gapless).
    PositionGap,
    /// The log ends before a signed checkpoint's size, the header's `up_to`, or the stored
    /// head's position.
    Truncated,
    /// The log at a signed checkpoint's size is not the log that was signed (rolled back and
    /// rewritten, or forked).
    RolledBack,
    /// A checkpoint's signature does not match its text, or the note is not a checkpoint.
    BadCheckpointSignature,
    /// A checkpoint signed only by keys the verifier does not trust.
    UnknownKey,
    /// A checkpoint line that is not where the format puts it: repeated, out of order, or not
    /// right after the event at its size.
    CheckpointMisplaced,
    /// The last events are covered by no verified checkpoint (unless allowed).
    UnsignedTail,
    /// An event beyond the last position the export's header announces.
    HeaderMismatch,
    /// An elided line in an export of the whole log, which has no reason to withhold content.
    ElidedInWholeExport,
    /// A full event in a tenant export whose hashed metadata names another tenant (or none).
    ForeignEvent,
}

impl BreakKind {
    /// Every kind, in the order of docs/ledger-format.md §7's table.
    pub const ALL: [BreakKind; 16] = [
        BreakKind::Malformed,
        BreakKind::LineTooLong,
        BreakKind::Modified,
        BreakKind::Inserted,
        BreakKind::Deleted,
        BreakKind::Reordered,
        BreakKind::PositionGap,
        BreakKind::Truncated,
        BreakKind::RolledBack,
        BreakKind::BadCheckpointSignature,
        BreakKind::UnknownKey,
        BreakKind::CheckpointMisplaced,
        BreakKind::UnsignedTail,
        BreakKind::HeaderMismatch,
        BreakKind::ElidedInWholeExport,
        BreakKind::ForeignEvent,
    ];

    /// A stable machine-readable name (used in CLI output and JSON reports).
    pub fn code(self) -> &'static str {
        match self {
            BreakKind::Malformed => "malformed",
            BreakKind::LineTooLong => "line_too_long",
            BreakKind::Modified => "modified",
            BreakKind::Inserted => "inserted",
            BreakKind::Deleted => "deleted",
            BreakKind::Reordered => "reordered",
            BreakKind::PositionGap => "position_gap",
            BreakKind::Truncated => "truncated",
            BreakKind::RolledBack => "rolled_back",
            BreakKind::BadCheckpointSignature => "bad_checkpoint_signature",
            BreakKind::UnknownKey => "unknown_key",
            BreakKind::CheckpointMisplaced => "checkpoint_misplaced",
            BreakKind::UnsignedTail => "unsigned_tail",
            BreakKind::HeaderMismatch => "header_mismatch",
            BreakKind::ElidedInWholeExport => "elided_in_whole_export",
            BreakKind::ForeignEvent => "foreign_event",
        }
    }

    /// The kind a [`BreakKind::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// The first break found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// What kind of break.
    pub kind: BreakKind,
    /// The position the break names (docs/ledger-format.md §7 says which, per kind).
    pub position: u64,
    /// The 1-based line of the export the break names, when verifying an export and the
    /// break is on a line (end-of-file breaks and store breaks have none).
    pub line: Option<u64>,
    /// A sentence for the person reading the report.
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.kind.code(), self.position)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// One event as the verifier sees it: its links, and what the caller found on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Stored position.
    pub position: u64,
    /// Stored previous hash.
    pub prev_hash: Hash32,
    /// Stored hash.
    pub hash: Hash32,
    /// Whether the stored fields hash to `hash` (always true for elided lines, whose content
    /// the export leaves out; the Merkle root still covers them).
    pub content_ok: bool,
    /// An `elided` line of an export: position and hashes only.
    pub elided: bool,
    /// A full event whose hashed `metadata.tenant_id` is not the tenant of a tenant export
    /// (always false outside tenant exports).
    pub foreign: bool,
}

impl Link {
    /// A full event whose fields did (`content_ok`) or did not hash to `hash`.
    pub fn event(position: u64, prev_hash: Hash32, hash: Hash32, content_ok: bool) -> Self {
        Self {
            position,
            prev_hash,
            hash,
            content_ok,
            elided: false,
            foreign: false,
        }
    }

    /// An elided line.
    pub fn elided(position: u64, prev_hash: Hash32, hash: Hash32) -> Self {
        Self {
            position,
            prev_hash,
            hash,
            content_ok: true,
            elided: true,
            foreign: false,
        }
    }
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

/// What the walk holds its input to, beyond the chain itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// Elided lines may appear (tenant exports); elsewhere one is a break.
    pub elided_allowed: bool,
    /// The last position the export's header announces; an event beyond it is a break, and
    /// ending before it is truncation.
    pub up_to: Option<u64>,
    /// Events after the last verified checkpoint are reported as unsigned instead of being
    /// a break. The live store always has such events between two checkpoints (its head row
    /// is checked instead); an export must not, unless the auditor allows it.
    pub allow_unsigned_tail: bool,
}

/// A range of positions, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionRange {
    /// First position.
    pub from: u64,
    /// Last position.
    pub to: u64,
}

/// Positions a verified checkpoint signs, with the trusted keys that signed it. Each position
/// is attributed to the first checkpoint that covers it (a later checkpoint's root covers
/// everything before it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRange {
    /// First and last position of the range.
    pub positions: PositionRange,
    /// `name+keyid` of every trusted key whose signature verified.
    pub keys: Vec<String>,
}

/// Whether a tenant export shows that it holds every event of its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantCompleteness {
    /// No line was elided: every event of the range is present in full and the tenant's.
    Proven,
    /// Some lines were elided. Their content is withheld, so nothing shows that they belong
    /// to other tenants: one of the tenant's own events could hide among them (ADR 0005).
    NotProven {
        /// How many lines were elided.
        elided: u64,
    },
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events verified (including elided ones), not counting any the break withdrew.
    pub events: u64,
    /// Of those, elided events (verified by hash linkage and Merkle root only).
    pub elided: u64,
    /// Position of the last event verified.
    pub last_position: u64,
    /// Hash of the last event verified.
    pub last_hash: Hash32,
    /// Checkpoints whose signature, placement, size, root and head all matched.
    pub checkpoints_verified: u64,
    /// Checkpoints with a valid signature that cover only positions before the walk began.
    pub checkpoints_before_start: u64,
    /// The verified positions each checkpoint signs, in order.
    pub signed: Vec<SignedRange>,
    /// Verified positions no verified checkpoint covers.
    pub unsigned: Option<PositionRange>,
    /// The tenant of a tenant export.
    pub tenant: Option<String>,
    /// The first break, if any.
    pub first_break: Option<Break>,
}

impl Report {
    /// True when no break was found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }

    /// For a tenant export, whether it shows that it holds all of its tenant's events.
    pub fn tenant_completeness(&self) -> Option<TenantCompleteness> {
        self.tenant.as_ref().map(|_| match self.elided {
            0 => TenantCompleteness::Proven,
            elided => TenantCompleteness::NotProven { elided },
        })
    }
}

/// "position 7" or "positions 7..9", for details.
fn positions(from: u64, to: u64) -> String {
    if from == to {
        format!("position {from}")
    } else {
        format!("positions {from}..{to}")
    }
}

/// An event accepted into the chain, remembered to recognise forks and rewrites.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    position: u64,
    prev_hash: Hash32,
    hash: Hash32,
    line: Option<u64>,
    elided: bool,
}

/// A line read after the first one that could not be accepted.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    link: Link,
    line: Option<u64>,
}

/// A checkpoint whose size is beyond the last event read: evidence of truncation at the end
/// of the file, misplaced if another event follows it.
#[derive(Debug, Clone, Copy)]
struct Beyond {
    size: u64,
    stands_after: u64,
    line: Option<u64>,
}

/// The verifier state machine.
pub struct ChainVerifier {
    keys: TrustedKeys,
    rules: Rules,
    after: u64,
    last: (u64, Hash32),
    frontier: Option<Frontier>,
    recent: VecDeque<Accepted>,
    suspects: Vec<Suspect>,
    beyond: Vec<Beyond>,
    last_checkpoint: Option<(u64, String)>,
    line: Option<u64>,
    signed_to: u64,
    first_unsigned_line: Option<u64>,
    signed: Vec<SignedRange>,
    found: Option<Break>,
    events: u64,
    elided: u64,
    checkpoints_verified: u64,
    checkpoints_before_start: u64,
}

impl ChainVerifier {
    /// A verifier trusting `keys`, starting at `start`, holding the input to `rules`.
    pub fn new(keys: TrustedKeys, start: Start, rules: Rules) -> Self {
        Self {
            keys,
            rules,
            after: start.after,
            last: (start.after, start.anchor),
            frontier: start.frontier,
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            suspects: Vec::new(),
            beyond: Vec::new(),
            last_checkpoint: None,
            line: None,
            signed_to: start.after,
            first_unsigned_line: None,
            signed: Vec::new(),
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

    /// Sets the 1-based line number of the next line fed (exports), so breaks can name it.
    pub fn set_line(&mut self, line: u64) {
        self.line = Some(line);
    }

    /// Records a break found outside the chain walk (an unreadable line or row), unless an
    /// earlier one is already known.
    ///
    /// While the verifier reads ahead past a line it could not accept, that line is the
    /// earlier break: such a problem ends the look-ahead window, the line is classified on
    /// what was read, and this break is not recorded.
    pub fn fail(&mut self, kind: BreakKind, position: u64, detail: impl Into<String>) {
        if self.found.is_some() {
            return;
        }
        if !self.suspects.is_empty() {
            self.classify();
            return;
        }
        self.record(kind, position, self.line, detail);
    }

    /// Records a break on the current line, which stands where the next position is
    /// expected (a line that is not a readable event, elided or checkpoint line).
    pub fn fail_line(&mut self, kind: BreakKind, detail: impl Into<String>) {
        self.fail(kind, self.last.0 + 1, detail);
    }

    fn record(
        &mut self,
        kind: BreakKind,
        position: u64,
        line: Option<u64>,
        detail: impl Into<String>,
    ) {
        if self.found.is_none() {
            self.found = Some(Break {
                kind,
                position,
                line,
                detail: detail.into(),
            });
        }
    }

    /// Feeds the next event or elided line.
    pub fn push(&mut self, link: Link) {
        if self.found.is_some() {
            return;
        }
        if !self.suspects.is_empty() {
            self.suspects.push(Suspect {
                link,
                line: self.line,
            });
            if self.suspects.len() > WINDOW_EVENTS {
                self.classify();
            }
            return;
        }
        if let Some(beyond) = self.beyond.first().copied() {
            self.record(
                BreakKind::CheckpointMisplaced,
                beyond.stands_after,
                beyond.line,
                format!(
                    "the checkpoint of size {} stands after event {} and events follow it: it \
                     belongs right after the event at its size",
                    beyond.size, beyond.stands_after
                ),
            );
            return;
        }
        let (position, hash) = self.last;
        if link.position != position + 1 || link.prev_hash != hash || !link.content_ok {
            self.suspects.push(Suspect {
                link,
                line: self.line,
            });
            return;
        }
        // The line links; what the export's rules say about it comes next.
        if let Some(up_to) = self.rules.up_to.filter(|&up_to| link.position > up_to) {
            self.record(
                BreakKind::HeaderMismatch,
                link.position,
                self.line,
                format!(
                    "event {} is beyond the header's up_to ({up_to})",
                    link.position
                ),
            );
        } else if link.elided && !self.rules.elided_allowed {
            self.record(
                BreakKind::ElidedInWholeExport,
                link.position,
                self.line,
                format!(
                    "event {} is elided, but an export of the whole log withholds nothing",
                    link.position
                ),
            );
        } else if link.foreign {
            self.record(
                BreakKind::ForeignEvent,
                link.position,
                self.line,
                format!(
                    "event {}'s hashed metadata names another tenant than the export's",
                    link.position
                ),
            );
        } else {
            self.accept(link);
        }
    }

    /// Feeds a checkpoint line's note.
    pub fn push_checkpoint(&mut self, note: &str) {
        // Checkpoints read past a suspect line are not looked at: the suspect is the earlier
        // break, whatever they say.
        if self.found.is_some() || !self.suspects.is_empty() {
            return;
        }
        let stands_after = self.last.0;
        let checkpoint = match SignedCheckpoint::parse(note) {
            Ok(cp) => cp,
            Err(error) => {
                // A checkpoint altered so far that it no longer parses is still a forgery.
                self.record(
                    BreakKind::BadCheckpointSignature,
                    stands_after,
                    self.line,
                    format!("a checkpoint is unreadable ({error})"),
                );
                return;
            }
        };
        let size = checkpoint.tree_size;
        let signers = match checkpoint.verify(&self.keys) {
            Ok(signers) => signers,
            Err(CheckpointSignatureError::Invalid { key }) => {
                self.record(
                    BreakKind::BadCheckpointSignature,
                    size,
                    self.line,
                    format!(
                        "the checkpoint for size {size} carries a signature by {key} that does not match its text"
                    ),
                );
                return;
            }
            Err(CheckpointSignatureError::UnknownKey { keys }) => {
                self.record(
                    BreakKind::UnknownKey,
                    size,
                    self.line,
                    format!(
                        "the checkpoint for size {size} is signed only by untrusted keys {}",
                        keys.join(", ")
                    ),
                );
                return;
            }
        };
        let order = (size, checkpoint.note.as_str());
        if let Some((previous, note)) = &self.last_checkpoint {
            if order <= (*previous, note.as_str()) {
                let what = if order == (*previous, note.as_str()) {
                    "repeats the checkpoint before it".to_owned()
                } else {
                    format!("comes after the checkpoint of size {previous}: checkpoints appear in increasing order")
                };
                self.record(
                    BreakKind::CheckpointMisplaced,
                    stands_after,
                    self.line,
                    format!("the checkpoint of size {size} {what}"),
                );
                return;
            }
        }
        self.last_checkpoint = Some((size, checkpoint.note.clone()));
        if size < self.after && stands_after == self.after {
            self.checkpoints_before_start += 1;
        } else if size == stands_after {
            self.check_at_head(&checkpoint, signers);
        } else if size > stands_after && size > self.after {
            self.beyond.push(Beyond {
                size,
                stands_after,
                line: self.line,
            });
        } else {
            self.record(
                BreakKind::CheckpointMisplaced,
                stands_after,
                self.line,
                format!(
                    "the checkpoint of size {size} stands after event {stands_after}: it belongs right after the event at its size"
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
        let last = self.last.0;
        if let Some(beyond) = self.beyond.first().copied() {
            self.record(
                BreakKind::Truncated,
                last + 1,
                beyond.line,
                format!(
                    "the log ends at position {last} but a signed checkpoint covers {} events",
                    beyond.size
                ),
            );
        }
        if let Some(up_to) = self.rules.up_to.filter(|&up_to| up_to > last) {
            self.record(
                BreakKind::Truncated,
                last + 1,
                None,
                format!("the export's header announces events up to {up_to} but it ends at {last}"),
            );
        }
        if let Some(stored) = stored_head.filter(|_| self.found.is_none()) {
            self.check_stored_head(stored);
        }
        let unsigned = (last > self.signed_to).then_some(PositionRange {
            from: self.signed_to + 1,
            to: last,
        });
        if let Some(range) = unsigned.filter(|_| !self.rules.allow_unsigned_tail) {
            let detail = if self.signed.is_empty() {
                format!(
                    "no checkpoint covers {}: nothing in the export is signed",
                    positions(range.from, range.to)
                )
            } else {
                format!(
                    "no checkpoint covers {}, so nothing shows they are the ledger's",
                    positions(range.from, range.to)
                )
            };
            self.record(
                BreakKind::UnsignedTail,
                range.from,
                self.first_unsigned_line,
                detail,
            );
        }
        Report {
            events: self.events,
            elided: self.elided,
            last_position: self.last.0,
            last_hash: self.last.1,
            checkpoints_verified: self.checkpoints_verified,
            checkpoints_before_start: self.checkpoints_before_start,
            signed: self.signed,
            unsigned,
            tenant: None,
            first_break: self.found,
        }
    }

    fn check_stored_head(&mut self, stored: &Head) {
        let head = stored.position;
        let (last, last_hash) = self.last;
        if head == last && stored.hash != last_hash {
            // The last event was rewritten and re-hashed after the head recorded it; no
            // successor and no checkpoint can reveal that, the head row does.
            self.record(
                BreakKind::Modified,
                last,
                None,
                format!("event {last} does not have the hash the stored head recorded for it"),
            );
        } else if head == last
            && self
                .frontier
                .as_ref()
                .is_some_and(|f| f.root() != stored.frontier.root())
        {
            self.record(
                BreakKind::Malformed,
                last,
                None,
                "the stored head's Merkle frontier does not match the events: later checkpoints would be signed over a wrong root",
            );
        } else if head > last {
            self.record(
                BreakKind::Truncated,
                last + 1,
                None,
                format!("the log ends at position {last} but the stored head is at {head}"),
            );
        } else if head < last {
            self.record(
                BreakKind::Inserted,
                head + 1,
                None,
                format!("events after the stored head ({head}) were appended outside the ledger"),
            );
        }
    }

    fn accept(&mut self, link: Link) {
        self.events += 1;
        if link.elided {
            self.elided += 1;
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(Accepted {
            position: link.position,
            prev_hash: link.prev_hash,
            hash: link.hash,
            line: self.line,
            elided: link.elided,
        });
        if link.position == self.signed_to + 1 {
            self.first_unsigned_line = self.line;
        }
        self.last = (link.position, link.hash);
        if let Some(frontier) = &mut self.frontier {
            frontier.push(&link.hash);
        }
    }

    /// Takes back the accepted events from `recent[index]` on: the break shows they do not
    /// belong to the chain, so they were never verified.
    fn withdraw(&mut self, index: usize) {
        let first = self.recent[index];
        for taken in self.recent.drain(index..) {
            self.events -= 1;
            if taken.elided {
                self.elided -= 1;
            }
        }
        self.last = (first.position - 1, first.prev_hash);
    }

    fn check_at_head(&mut self, checkpoint: &SignedCheckpoint, signers: Vec<String>) {
        let head_ok = checkpoint.head == self.last.1;
        let root_ok = self
            .frontier
            .as_ref()
            .is_none_or(|f| f.root() == checkpoint.root);
        if !(head_ok && root_ok) {
            self.record(
                BreakKind::RolledBack,
                checkpoint.tree_size,
                self.line,
                format!(
                    "the first {} events are not the ones signed at {}: the log was rolled back and rewritten",
                    checkpoint.tree_size, checkpoint.time
                ),
            );
            return;
        }
        self.checkpoints_verified += 1;
        let size = checkpoint.tree_size;
        if size > self.signed_to {
            match self.signed.last_mut() {
                Some(range) if range.keys == signers => range.positions.to = size,
                _ => self.signed.push(SignedRange {
                    positions: PositionRange {
                        from: self.signed_to + 1,
                        to: size,
                    },
                    keys: signers,
                }),
            }
            self.signed_to = size;
            self.first_unsigned_line = None;
        }
    }

    /// Names the break from the first line that could not be accepted and the window of
    /// lines after it: the rules of docs/ledger-format.md §7, tried in order.
    fn classify(&mut self) {
        let suspects = std::mem::take(&mut self.suspects);
        let Some((first, window)) = suspects.split_first() else {
            return;
        };
        let (l, line) = (first.link, first.line);
        let (last_position, last_hash) = self.last;
        let expected = last_position + 1;

        // 1. A fork: the line follows the same event as an accepted one.
        if let Some(index) = self.recent.iter().rposition(|a| a.prev_hash == l.prev_hash) {
            let twin = self.recent[index];
            let continued = window.first().is_some_and(|n| n.link.prev_hash == l.hash);
            if twin.hash == l.hash && twin.position == l.position {
                self.record(
                    BreakKind::Inserted,
                    l.position,
                    line,
                    format!(
                        "the line for position {} appears a second time{}",
                        l.position,
                        twin.line
                            .map(|n| format!(" (first at line {n})"))
                            .unwrap_or_default()
                    ),
                );
            } else if continued && twin.position > self.signed_to {
                self.withdraw(index);
                self.record(
                    BreakKind::Inserted,
                    twin.position,
                    twin.line,
                    format!(
                        "the event at {} is not part of the chain: a later event {} also follows event {} and the chain continues from it",
                        positions(twin.position, last_position),
                        l.position,
                        twin.position - 1
                    ),
                );
            } else {
                self.record(
                    BreakKind::Inserted,
                    l.position,
                    line,
                    format!(
                        "event {} points at event {}, which the chain already continued with another event",
                        l.position,
                        twin.position - 1
                    ),
                );
            }
            return;
        }
        let successor_later = window.iter().any(|n| n.link.prev_hash == last_hash);
        let fits_later = window
            .iter()
            .any(|n| n.link.prev_hash == l.hash || n.link.hash == l.prev_hash);
        // 2. The expected event comes later and this one links among the later ones.
        if successor_later && fits_later {
            self.record(
                BreakKind::Reordered,
                l.position,
                line,
                format!(
                    "event {} stands where the event following position {last_position} belongs; that one appears later",
                    l.position
                ),
            );
        // 3. The line's own fields do not hash to its hash.
        } else if !l.content_ok {
            self.record(
                BreakKind::Modified,
                l.position,
                line,
                "the event's stored fields (payload, metadata or another hashed field) do not hash to its stored hash",
            );
        // 4. A position at or before one already verified.
        } else if l.position <= last_position {
            self.record(
                BreakKind::Inserted,
                l.position,
                line,
                format!(
                    "a line for position {} appears after position {last_position}",
                    l.position
                ),
            );
        // 5. The hashes link but a position is skipped.
        } else if l.position > expected && l.prev_hash == last_hash {
            self.record(
                BreakKind::PositionGap,
                l.position,
                line,
                format!(
                    "position {} follows {last_position}: {} missing although the hashes link",
                    l.position,
                    positions(expected, l.position - 1)
                ),
            );
        // 6. The expected event comes later; this one fits nowhere.
        } else if successor_later {
            self.record(
                BreakKind::Inserted,
                l.position,
                line,
                format!(
                    "event {} does not belong to the chain: the event following position {last_position} comes after it",
                    l.position
                ),
            );
        // 7. Right position, but it points at an event that is not the previous one.
        } else if l.position == expected {
            match self.recent.back().copied() {
                Some(previous) if previous.position > self.signed_to => {
                    self.withdraw(self.recent.len() - 1);
                    self.record(
                        BreakKind::Modified,
                        previous.position,
                        previous.line,
                        format!(
                            "event {} was rewritten and re-hashed: event {} still points at its original hash",
                            previous.position, l.position
                        ),
                    );
                }
                _ => self.record(
                    BreakKind::Modified,
                    l.position,
                    line,
                    format!(
                        "event {} does not point at event {last_position}, which is signed or the export's anchor: it is not the ledger's event {}",
                        l.position, l.position
                    ),
                ),
            }
        // 8. A hole: the line points at an event that is not there.
        } else {
            self.record(
                BreakKind::Deleted,
                l.position,
                line,
                format!(
                    "the event at {} is missing: event {} points at an event that is not in the log",
                    positions(expected, l.position - 1),
                    l.position
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    const ORIGIN: &str = "dezky.test/ledger";

    fn key() -> SigningKey {
        SigningKey::from_seed(ORIGIN, &[3; 32]).expect("key")
    }

    fn keys() -> TrustedKeys {
        TrustedKeys::parse(key().public_line(), "keys").expect("keys")
    }

    /// A chain of `n` links with distinct made-up hashes (the verifier never hashes).
    fn chain(n: u64) -> Vec<Link> {
        let mut prev = GENESIS_PREV_HASH;
        (1..=n)
            .map(|position| {
                let mut hash = [0u8; 32];
                hash[..8].copy_from_slice(&position.to_be_bytes());
                hash[31] = 0xee;
                let link = Link::event(position, prev, hash, true);
                prev = hash;
                link
            })
            .collect()
    }

    fn checkpoint(links: &[Link]) -> String {
        let mut frontier = Frontier::default();
        for link in links {
            frontier.push(&link.hash);
        }
        let head = links.last().map_or(GENESIS_PREV_HASH, |l| l.hash);
        SignedCheckpoint::sign(
            ORIGIN,
            links.len() as u64,
            &frontier.root(),
            &head,
            "2026-11-28T12:00:00.000000Z",
            &key(),
        )
        .expect("sign")
        .note
    }

    /// Feeds `links`, numbering lines from 2 (after a header), with a checkpoint of size
    /// `signed` right after that event, and returns the report.
    fn walk(links: &[Link], signed: &[Link], rules: Rules) -> Report {
        let mut verifier = ChainVerifier::new(keys(), Start::genesis(), rules);
        let note = checkpoint(signed);
        let mut line = 1;
        for link in links {
            line += 1;
            verifier.set_line(line);
            verifier.push(*link);
            if link.position == signed.len() as u64 && link.hash == signed[signed.len() - 1].hash {
                line += 1;
                verifier.set_line(line);
                verifier.push_checkpoint(&note);
            }
        }
        verifier.finish(None)
    }

    fn found(report: &Report) -> Option<(BreakKind, u64, Option<u64>)> {
        report
            .first_break
            .as_ref()
            .map(|b| (b.kind, b.position, b.line))
    }

    #[test]
    fn a_chain_signed_at_its_last_event_is_intact_with_one_signed_range() {
        let links = chain(10);
        let report = walk(&links, &links, Rules::default());
        assert_eq!(found(&report), None);
        assert_eq!(report.events, 10);
        assert_eq!(
            report.signed,
            [SignedRange {
                positions: PositionRange { from: 1, to: 10 },
                keys: vec![format!("{ORIGIN}+{:08x}", key().key_id())],
            }]
        );
        assert_eq!(report.unsigned, None);
    }

    #[test]
    fn events_after_the_last_checkpoint_are_an_unsigned_tail_unless_allowed() {
        let links = chain(10);
        let report = walk(&links, &links[..6], Rules::default());
        // Line 2 is event 1, line 8 the checkpoint, line 9 event 7.
        assert_eq!(found(&report), Some((BreakKind::UnsignedTail, 7, Some(9))));
        assert_eq!(report.events, 10);
        let allowed = walk(
            &links,
            &links[..6],
            Rules {
                allow_unsigned_tail: true,
                ..Rules::default()
            },
        );
        assert_eq!(found(&allowed), None);
        assert_eq!(allowed.unsigned, Some(PositionRange { from: 7, to: 10 }));
    }

    #[test]
    fn a_forged_event_inserted_before_the_genuine_one_is_inserted_at_its_position_and_not_counted()
    {
        let links = chain(10);
        let mut forged = links[4];
        forged.hash = [0x55; 32];
        let mut tampered = links.clone();
        tampered.insert(4, forged);
        let report = walk(&tampered, &links, Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Inserted, 5, Some(6))));
        assert_eq!(report.events, 4);
        assert_eq!(report.last_position, 4);
    }

    #[test]
    fn a_duplicated_line_is_inserted_at_its_position_and_the_original_stays_verified() {
        let links = chain(10);
        let mut tampered = links.clone();
        tampered.insert(5, links[4]);
        let report = walk(&tampered, &links, Rules::default());
        // The copy is followed by event 6, which points at it as at the original: the copy
        // and the original are the same event, and the copy's line is named.
        assert_eq!(found(&report), Some((BreakKind::Inserted, 5, Some(7))));
        assert_eq!(report.events, 5);
    }

    #[test]
    fn a_deleted_event_is_named_at_the_line_after_the_hole() {
        let links = chain(10);
        let mut tampered = links.clone();
        tampered.remove(4);
        let report = walk(&tampered, &links, Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Deleted, 6, Some(6))));
    }

    #[test]
    fn two_swapped_events_are_reordered_at_the_first_line_out_of_place() {
        let links = chain(10);
        let mut tampered = links.clone();
        tampered.swap(4, 5);
        let report = walk(&tampered, &links, Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Reordered, 6, Some(6))));
    }

    #[test]
    fn the_last_two_events_swapped_before_the_checkpoint_are_reordered() {
        let links = chain(10);
        let mut tampered = links.clone();
        tampered.swap(8, 9);
        let report = walk(&tampered, &links[..8], Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Reordered, 10, Some(11))));
    }

    #[test]
    fn an_event_rewritten_and_rehashed_is_modified_at_its_own_position_and_withdrawn() {
        let links = chain(10);
        let mut tampered = links.clone();
        tampered[4].hash = [0x66; 32];
        tampered[4].content_ok = true;
        let report = walk(&tampered, &links, Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Modified, 5, Some(6))));
        assert_eq!(report.events, 4);
    }

    #[test]
    fn an_event_rewritten_right_after_a_verified_checkpoint_is_modified_at_the_next_event() {
        let links = chain(10);
        let mut tampered = links.clone();
        // Event 5 is signed by the checkpoint after it, so event 6 is the one that departs.
        tampered[5].prev_hash = [0x77; 32];
        let report = walk(&tampered, &links[..5], Rules::default());
        assert_eq!(found(&report), Some((BreakKind::Modified, 6, Some(8))));
        assert_eq!(report.events, 5);
    }

    #[test]
    fn a_position_gap_with_linked_hashes_is_named_at_the_line_after_the_gap() {
        let links = chain(10);
        let mut tampered = links[..4].to_vec();
        let mut jumped = links[4];
        jumped.position = 7;
        tampered.push(jumped);
        let report = walk(&tampered, &links, Rules::default());
        assert_eq!(found(&report), Some((BreakKind::PositionGap, 7, Some(6))));
    }

    #[test]
    fn a_valid_checkpoint_repeated_later_is_misplaced_where_it_stands() {
        let links = chain(10);
        let note = checkpoint(&links[..4]);
        let mut verifier = ChainVerifier::new(keys(), Start::genesis(), Rules::default());
        for link in &links[..4] {
            verifier.push(*link);
        }
        verifier.push_checkpoint(&note);
        for link in &links[4..] {
            verifier.push(*link);
        }
        verifier.set_line(20);
        verifier.push_checkpoint(&note);
        let report = verifier.finish(None);
        assert_eq!(
            found(&report),
            Some((BreakKind::CheckpointMisplaced, 10, Some(20)))
        );
    }

    #[test]
    fn a_checkpoint_placed_before_its_event_is_misplaced_when_events_follow_it() {
        let links = chain(10);
        let mut verifier = ChainVerifier::new(keys(), Start::genesis(), Rules::default());
        for link in &links[..8] {
            verifier.push(*link);
        }
        verifier.set_line(10);
        verifier.push_checkpoint(&checkpoint(&links));
        verifier.set_line(11);
        verifier.push(links[8]);
        let report = verifier.finish(None);
        assert_eq!(
            found(&report),
            Some((BreakKind::CheckpointMisplaced, 8, Some(10)))
        );
    }

    #[test]
    fn a_checkpoint_beyond_the_last_event_at_the_end_is_truncation() {
        let links = chain(10);
        let mut verifier = ChainVerifier::new(keys(), Start::genesis(), Rules::default());
        for link in &links[..8] {
            verifier.push(*link);
        }
        verifier.push_checkpoint(&checkpoint(&links));
        let report = verifier.finish(None);
        assert_eq!(
            report.first_break.map(|b| (b.kind, b.position)),
            Some((BreakKind::Truncated, 9))
        );
    }

    #[test]
    fn an_elided_line_in_a_whole_export_is_a_break_and_in_a_tenant_export_is_not() {
        let mut links = chain(6);
        links[2].elided = true;
        let whole = walk(&links, &links, Rules::default());
        assert_eq!(
            found(&whole),
            Some((BreakKind::ElidedInWholeExport, 3, Some(4)))
        );
        let tenant = walk(
            &links,
            &links,
            Rules {
                elided_allowed: true,
                ..Rules::default()
            },
        );
        assert_eq!(found(&tenant), None);
        assert_eq!(tenant.elided, 1);
    }

    #[test]
    fn an_event_beyond_the_headers_up_to_is_a_header_mismatch() {
        let links = chain(6);
        let report = walk(
            &links,
            &links,
            Rules {
                up_to: Some(5),
                ..Rules::default()
            },
        );
        assert_eq!(
            found(&report),
            Some((BreakKind::HeaderMismatch, 6, Some(7)))
        );
    }

    #[test]
    fn every_break_kind_has_a_distinct_code_that_reads_back() {
        for kind in BreakKind::ALL {
            assert_eq!(BreakKind::from_code(kind.code()), Some(kind));
        }
        let codes: std::collections::HashSet<_> = BreakKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), BreakKind::ALL.len());
    }
}
