//! Offline verification of an export: the file read in blocks cut at line ends, each block
//! parsed and hashed on a worker thread, and the lines fed to the chain verifier in order.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use crate::keys::TrustedKeys;
use crate::verify::{BreakKind, ChainVerifier, Report, Rules, Start};

use super::parse::*;
use super::*;

// ---------------------------------------------------------------------------------------
// Offline verification.
//
// The file is read in large blocks cut at line ends on the calling thread (which also owns
// `input` and `progress`, neither of which need be `Send`), parsed and hashed by one worker
// per core, and fed to the chain verifier in order as the blocks come back. Reading, parsing
// and the ordered walk thus overlap; no line is copied into a `String` of its own. No line is
// read beyond the maximum length, so memory stays bounded whatever the file holds.
// ---------------------------------------------------------------------------------------

/// The longest line the offline verifier reads unless told otherwise (16 MiB): far above any
/// event the ledger writes, far below what would exhaust an auditor's machine.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes read per block handed to a worker (a longer line makes its block longer).
const VERIFY_BLOCK_BYTES: usize = 1 << 20;
/// Blocks in flight per worker: enough that a worker never waits for the reader, few enough
/// to bound memory to a handful of blocks.
const VERIFY_BLOCKS_PER_WORKER: usize = 3;

/// How strictly an export is verified beyond the format's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept events after the last checkpoint, reporting them as unsigned, instead of
    /// reporting an `unsigned_tail` break.
    pub allow_unsigned_tail: bool,
    /// Lines longer than this many bytes (not counting the `\n`) are a `line_too_long` break.
    pub max_line_bytes: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            allow_unsigned_tail: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Parses every line of a block, in order. Lines end at `\n` (which is not part of them); a
/// line longer than `max_line` bytes, or one that is not UTF-8, is the last one parsed.
fn parse_block(block: &[u8], tenant: Option<&str>, max_line: usize) -> Vec<Parsed> {
    let (valid, bad_line_len) = match std::str::from_utf8(block) {
        Ok(text) => (text, None),
        Err(error) => {
            // Lines before the one holding the bad byte are read; that line ends the block.
            let bad = error.valid_up_to();
            let start = block[..bad]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = block[bad..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(block.len(), |p| bad + p);
            (
                std::str::from_utf8(&block[..start]).unwrap_or_default(),
                Some(end - start),
            )
        }
    };
    let mut parsed = Vec::with_capacity(valid.len() / 256 + 1);
    let mut rest = valid;
    while !rest.is_empty() {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        if line.len() > max_line {
            parsed.push(Parsed::TooLong);
            return parsed;
        }
        parsed.push(parse_line(line, tenant));
        rest = after;
    }
    if let Some(len) = bad_line_len {
        parsed.push(if len > max_line {
            Parsed::TooLong
        } else {
            Parsed::Bad("the line is not valid UTF-8".into())
        });
    }
    parsed
}

/// Whole lines read from the input: `buffer[..len]`. Buffers are reused from block to
/// block, so bytes past `len` are stale.
struct Block {
    buffer: Vec<u8>,
    len: usize,
    /// The block is one line that outgrew the maximum line length; reading stops here.
    overlong: bool,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        self.buffer.get(..self.len).unwrap_or_default()
    }
}

/// Reads the next block: whole lines of about [`VERIFY_BLOCK_BYTES`], or the rest of the
/// input at its end, into `buffer`. `carry` holds the start of a line cut off by the
/// previous block; `None` means the input is exhausted. A line is read no further than
/// `max_line + 1` bytes: such a block is marked `overlong`.
fn read_block(
    input: &mut impl BufRead,
    carry: &mut Vec<u8>,
    mut buffer: Vec<u8>,
    max_line: usize,
) -> std::io::Result<Option<Block>> {
    let mut len = carry.len();
    // Room for the carried line start plus a full block: a read at least as large as the
    // caller's `BufReader` goes straight from the file into the block, with no second copy.
    let mut target = len + VERIFY_BLOCK_BYTES;
    if buffer.len() < target {
        // Zeroes only the part that is new; a reused buffer is simply overwritten.
        buffer.resize(target, 0);
    }
    buffer[..len].copy_from_slice(carry);
    carry.clear();
    loop {
        // `carry` and any earlier round of this loop hold no newline.
        let searched = len;
        let mut at_end = false;
        while len < target {
            match input.read(&mut buffer[len..target]) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => len += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if at_end {
            return Ok((len > 0).then_some(Block {
                buffer,
                len,
                overlong: false,
            }));
        }
        if let Some(last) = buffer[searched..len].iter().rposition(|&b| b == b'\n') {
            let cut = searched + last + 1;
            carry.extend_from_slice(&buffer[cut..len]);
            return Ok(Some(Block {
                buffer,
                len: cut,
                overlong: false,
            }));
        }
        // The whole buffer is one unfinished line.
        if len > max_line {
            return Ok(Some(Block {
                buffer,
                len,
                overlong: true,
            }));
        }
        // Keep reading until it ends, but never past the maximum.
        target = (target * 2).min(max_line.saturating_add(1)).max(len + 1);
        if buffer.len() < target {
            buffer.resize(target, 0);
        }
    }
}

/// The first line of an export.
enum FirstLine {
    Empty,
    TooLong,
    Line(Vec<u8>),
}

/// Reads the header line, no further than `max_line + 1` bytes.
fn read_first_line(input: &mut impl BufRead, max_line: usize) -> std::io::Result<FirstLine> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max_line).map_or(u64::MAX, |max| max.saturating_add(1));
    input.by_ref().take(limit).read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Ok(FirstLine::Empty);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    } else if bytes.len() > max_line {
        return Ok(FirstLine::TooLong);
    }
    Ok(FirstLine::Line(bytes))
}

struct Job {
    seq: u64,
    block: Block,
}

struct Done {
    seq: u64,
    /// `None` if parsing the block panicked (a bug; reported as an error, never ignored).
    parsed: Option<Vec<Parsed>>,
    block: Block,
}

fn worker(jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>, tenant: Option<&str>, max_line: usize) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(Job { seq, block }) = job else {
            return;
        };
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parse_block(block.bytes(), tenant, max_line)
        }))
        .ok();
        if done.send(Done { seq, parsed, block }).is_err() {
            return;
        }
    }
}

/// The report for an export whose header line is not a header: a break at position 0,
/// line 1.
fn header_break(keys: TrustedKeys, kind: BreakKind, detail: String) -> Report {
    let mut verifier = ChainVerifier::new(keys, Start::genesis(), Rules::default());
    verifier.set_line(1);
    verifier.fail(kind, 0, detail);
    verifier.finish(None)
}

/// Verifies an export offline with nothing but the trusted public keys. Blocks of lines are
/// parsed and hashed in parallel; linkage is then checked in order. `progress` gets the
/// position reached and the header's final position.
///
/// Whatever the file holds, the answer is a [`Report`]; an error means the input could not
/// be read.
pub fn verify_export(
    mut input: impl BufRead,
    keys: TrustedKeys,
    options: &VerifyOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, ExportError> {
    let max_line = options.max_line_bytes;
    let line = match read_first_line(&mut input, max_line)? {
        FirstLine::Empty => {
            return Ok(header_break(
                keys,
                BreakKind::Malformed,
                "the file is empty".into(),
            ))
        }
        FirstLine::TooLong => {
            return Ok(header_break(
                keys,
                BreakKind::LineTooLong,
                format!("line 1 is longer than {max_line} bytes"),
            ))
        }
        FirstLine::Line(bytes) => bytes,
    };
    let header = match std::str::from_utf8(&line) {
        Ok(text) => parse_header(text),
        Err(_) => Err("line 1 is not valid UTF-8".into()),
    };
    let header = match header {
        Ok(header) => header,
        Err(reason) => return Ok(header_break(keys, BreakKind::Malformed, reason)),
    };
    let up_to = header.up_to;
    let tenant = header.tenant.as_deref();
    let rules = Rules {
        elided_allowed: tenant.is_some(),
        up_to: Some(up_to),
        allow_unsigned_tail: options.allow_unsigned_tail,
    };
    let mut verifier = ChainVerifier::new(keys, header.start, rules);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, done) = (&job_rx, done_tx.clone());
            scope.spawn(move || worker(jobs, &done, tenant, max_line));
        }
        drop(done_tx);
        // Dropping `job_tx` on the way out, success or error, lets the workers finish.
        walk(
            &mut input,
            job_tx,
            &done_rx,
            workers * VERIFY_BLOCKS_PER_WORKER,
            &mut verifier,
            max_line,
            |position| progress(position, up_to),
        )
    })?;
    let mut report = verifier.finish(None);
    report.tenant = header.tenant;
    Ok(report)
}

/// The calling thread's part: reads blocks ahead, and feeds parsed lines to the verifier in
/// file order as their blocks come back. Stops at the first break.
fn walk(
    input: &mut impl BufRead,
    jobs: Sender<Job>,
    done: &Receiver<Done>,
    in_flight_limit: usize,
    verifier: &mut ChainVerifier,
    max_line: usize,
    mut progress: impl FnMut(u64),
) -> Result<(), ExportError> {
    let worker_failed = || {
        ExportError::Io(std::io::Error::other(
            "an export verification worker failed",
        ))
    };
    let mut carry = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let (mut sent, mut fed) = (0u64, 0u64);
    let mut at_end = false;
    // The header was line 1.
    let mut line_no: u64 = 1;
    loop {
        while !at_end && sent - fed < in_flight_limit as u64 {
            match read_block(input, &mut carry, spare.pop().unwrap_or_default(), max_line)? {
                Some(block) => {
                    // An overlong line is the last thing read: its block reports it.
                    at_end = block.overlong;
                    jobs.send(Job { seq: sent, block })
                        .map_err(|_| worker_failed())?;
                    sent += 1;
                }
                None => at_end = true,
            }
        }
        if fed == sent {
            return Ok(());
        }
        let next = loop {
            if let Some(next) = waiting.remove(&fed) {
                break next;
            }
            let arrived = done.recv().map_err(|_| worker_failed())?;
            waiting.insert(arrived.seq, arrived);
        };
        fed += 1;
        spare.push(next.block.buffer);
        for parsed in next.parsed.ok_or_else(worker_failed)? {
            line_no += 1;
            verifier.set_line(line_no);
            match parsed {
                Parsed::Event(link) | Parsed::Elided(link) => verifier.push(link),
                Parsed::Checkpoint(note) => verifier.push_checkpoint(&note),
                Parsed::Header => verifier.fail_line(BreakKind::Malformed, "a second header"),
                Parsed::Bad(reason) => verifier.fail_line(BreakKind::Malformed, reason),
                Parsed::TooLong => verifier.fail_line(
                    BreakKind::LineTooLong,
                    format!("the line is longer than {max_line} bytes"),
                ),
            }
            if verifier.has_break() {
                break;
            }
        }
        progress(verifier.position());
        if verifier.has_break() {
            return Ok(());
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn event_json(metadata: &str, payload: &str) -> String {
        format!(
            "{{\"type\":\"event\",\"position\":7,\"recorded_at\":\"2026-01-01T00:00:00.000001Z\",\
             \"aggregate_type\":\"probe\",\"aggregate_id\":\"p-1\",\"aggregate_version\":3,\
             \"event_type\":\"ReadingRecorded\",\"event_version\":\"2.0\",\"metadata\":{metadata},\
             \"payload\":{payload},\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
        )
    }

    /// What the serde path alone makes of a line, for comparing with the fast parser.
    fn slow(line: &str) -> String {
        format!("{:?}", parse_line_serde(line, Some("t-1")))
    }

    fn is_bad(parsed: &Parsed, containing: &str) -> bool {
        matches!(parsed, Parsed::Bad(reason) if reason.contains(containing))
    }

    #[test]
    fn the_fast_parser_reads_what_export_writes_as_serde_does() {
        let record = EventRecord {
            position: 1,
            recorded_at: "2026-01-01T00:00:00.000001Z".into(),
            aggregate_type: "probe".into(),
            aggregate_id: "p-\u{e9}".into(),
            aggregate_version: 1,
            event_type: "ReadingRecorded".into(),
            event_version: "2.0".into(),
            metadata:
                r#"{"a":[1,-2,true,false,null,{}],"b":"x\"y\\u00e9\u00e9","tenant_id":"t-1"}"#
                    .into(),
            payload: r#"{"ReadingRecorded":{"label":"l","reading_no":1}}"#.into(),
            prev_hash: GENESIS_PREV_HASH,
            hash: [0; 32],
        };
        let mut record = record;
        record.hash = record.computed_hash();
        let mut out = Vec::new();
        write_event(&mut out, &record).expect("write");
        let line = std::str::from_utf8(&out).expect("utf-8").trim_end();
        let fast = fast::parse(line, Some("t-1")).expect("the fast parser reads export lines");
        assert!(
            matches!(fast, Parsed::Event(link) if link.content_ok && !link.foreign && link.hash == record.hash),
            "{fast:?}"
        );
        assert_eq!(format!("{fast:?}"), slow(line));
        // The same event in another tenant's export is foreign.
        assert!(matches!(fast::parse(line, Some("t-2")), Some(Parsed::Event(l)) if l.foreign));
    }

    #[test]
    fn the_fast_parser_declines_what_it_cannot_read_exactly_as_serde() {
        let declined = [
            // Fractions, exponents, leading zeros, whitespace, unknown escapes, deep nesting.
            event_json("{\"a\":1.5}", "{}"),
            event_json("{\"a\":1e3}", "{}"),
            event_json("{\"a\":01}", "{}"),
            event_json("{\"a\": 1}", "{}"),
            event_json("{\"a\":\"\\x\"}", "{}"),
            event_json(&format!("{}1{}", "[".repeat(70), "]".repeat(70)), "{}"),
            // A control character inside a string.
            event_json("{\"a\":\"\u{1}\"}", "{}"),
            // Trailing bytes, and a top-level string serde would unescape.
            format!("{} ", event_json("{}", "{}")),
            event_json("{}", "{}").replace("\"p-1\"", "\"p-\\u0031\""),
        ];
        for line in &declined {
            assert!(fast::parse(line, None).is_none(), "accepted {line}");
        }
        // Declined lines still parse (or are refused) on the serde path.
        assert!(matches!(parse_line(&declined[0], None), Parsed::Event(_)));
        assert!(is_bad(&parse_line(&declined[6], None), "not a JSON object"));
        assert!(matches!(parse_line(&declined[7], None), Parsed::Event(_)));
    }

    #[test]
    fn accepted_lines_mean_the_same_to_both_parsers() {
        for metadata in [
            // `null` is four stored bytes like any other value, not an absent member.
            "null",
            "{}",
            "[]",
            "\"s\"",
            "-0",
            "12",
            "true",
            "{\"k\":[{},[],\"\\u00e9\"]}",
        ] {
            let line = event_json(metadata, "{\"p\":[1,2]}");
            let fast = fast::parse(&line, Some("t-1")).expect("accepted");
            assert_eq!(format!("{fast:?}"), slow(&line), "{line}");
        }
        let elided = format!(
            "{{\"type\":\"elided\",\"position\":9,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
        );
        assert!(
            matches!(fast::parse(&elided, None), Some(Parsed::Elided(l)) if l.position == 9 && l.elided)
        );
        // A malformed hash is judged by the shared code, the same on both paths.
        let short = elided.replacen(HASH_A, "00", 1);
        assert!(matches!(fast::parse(&short, None), Some(Parsed::Bad(_))));
        assert!(matches!(parse_line_serde(&short, None), Parsed::Bad(_)));
    }

    #[test]
    fn an_unknown_member_makes_a_line_malformed_on_either_path() {
        let extra = event_json("{}", "{}").replacen(
            "\"type\":\"event\",",
            "\"type\":\"event\",\"approved_by\":\"CFO\",",
            1,
        );
        assert!(fast::parse(&extra, None).is_none());
        assert!(is_bad(
            &parse_line(&extra, None),
            "unknown member \"approved_by\""
        ));
        let checkpoint = r#"{"type":"checkpoint","note":"x","signed":true}"#;
        assert!(is_bad(
            &parse_line(checkpoint, None),
            "unknown member \"signed\""
        ));
        let elided = format!(
            "{{\"type\":\"elided\",\"position\":9,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\",\"tenant\":null}}"
        );
        assert!(is_bad(
            &parse_line(&elided, None),
            "unknown member \"tenant\""
        ));
    }

    #[test]
    fn a_repeated_member_makes_a_line_malformed() {
        let twice =
            event_json("{}", "{}").replacen("\"position\":7,", "\"position\":7,\"position\":8,", 1);
        assert!(is_bad(&parse_line(&twice, None), "appears twice"));
    }

    #[test]
    fn metadata_given_both_embedded_and_as_text_is_malformed() {
        let both = event_json("{}", "{}").replacen(
            "\"metadata\":{},",
            "\"metadata\":{},\"metadata_text\":\"{}\",",
            1,
        );
        assert!(is_bad(&parse_line(&both, None), "exactly one of"));
    }

    #[test]
    fn a_signed_zero_is_not_an_integer_although_json_reads_it_as_zero() {
        let header = r#"{"type":"header","format":"dezky-ledger-export","version":1,"after_position":-0,"anchor_hash":"0000000000000000000000000000000000000000000000000000000000000000","frontier":"0000000000000000","up_to":0,"tenant":null}"#;
        assert_eq!(
            parse_header(header).map(|h| h.up_to),
            Err("member \"after_position\" is not an integer from 0 to 2^64-1".into())
        );
        assert_eq!(
            parse_header(&header.replace("-0", "0")).map(|h| h.up_to),
            Ok(0)
        );
    }

    #[test]
    fn an_uppercase_hash_is_malformed_although_it_names_the_same_bytes() {
        let upper = event_json("{}", "{}").replace(HASH_A, &HASH_A.to_uppercase());
        assert!(matches!(parse_line(&upper, None), Parsed::Bad(_)));
    }

    /// Mutates a valid line byte by byte (xorshift-driven, so the run is reproducible) and
    /// checks that whenever the fast parser accepts a mutant, serde reads it the same way.
    #[test]
    fn the_fast_parser_never_disagrees_with_serde_on_mutated_lines() {
        let seeds = [
            event_json(
                "{\"actor_subject\":\"u-1\",\"n\":[-1,0,10,{\"x\":\"a\\\"b\\u00e9\"}],\"tenant_id\":\"t-1\"}",
                "{\"ReadingRecorded\":{\"label\":\"l\",\"ok\":true,\"v\":null}}",
            ),
            format!(
                "{{\"type\":\"elided\",\"position\":12,\"prev_hash\":\"{HASH_A}\",\"hash\":\"{HASH_A}\"}}"
            ),
        ];
        let alphabet = b"\"\\{}[],: 0129-.eEnulftraAF/\x01\x7f";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for seed in &seeds {
            for _ in 0..20_000 {
                let mut bytes = seed.clone().into_bytes();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % bytes.len() as u64) as usize;
                    let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ => {
                            bytes.remove(at);
                        }
                    }
                }
                let Ok(line) = String::from_utf8(bytes) else {
                    continue;
                };
                if let Some(fast) = fast::parse(&line, Some("t-1")) {
                    accepted += 1;
                    assert_eq!(
                        format!("{fast:?}"),
                        slow(&line),
                        "the parsers disagree on {line}"
                    );
                }
            }
        }
        // Some mutants (in label text, say) stay valid: the comparison did happen.
        assert!(accepted > 1_000, "only {accepted} mutants accepted");
    }

    #[test]
    fn blocks_split_lines_at_newlines_and_stop_at_a_line_that_is_not_utf8() {
        let parsed = parse_block(b"{}\r\n\n{\"type\":\"header\"}\r", None, 100);
        assert_eq!(parsed.len(), 3);
        assert!(is_bad(&parsed[0], "type"));
        assert!(is_bad(&parsed[1], "not a JSON object"));
        // A `\r` stays in the line, where JSON reads it as whitespace.
        assert!(matches!(parsed[2], Parsed::Header));
        let bad = parse_block(b"{\"type\":\"header\"}\nab\xff\ncd\n", None, 100);
        assert!(matches!(bad[..], [Parsed::Header, Parsed::Bad(ref r)] if r.contains("UTF-8")));
    }

    #[test]
    fn a_line_longer_than_the_maximum_ends_the_block_with_too_long() {
        let parsed = parse_block(b"{}\n0123456789\n{}\n", None, 9);
        assert!(matches!(parsed[..], [Parsed::Bad(_), Parsed::TooLong]));
        let exact = parse_block(b"012345678\n", None, 9);
        assert!(matches!(exact[..], [Parsed::Bad(_)]));
        // Too long wins over invalid UTF-8 in the same line.
        let both = parse_block(b"0123456789\xff\n", None, 9);
        assert!(matches!(both[..], [Parsed::TooLong]));
    }

    #[test]
    fn blocks_are_cut_after_whole_lines_and_long_lines_grow_them() {
        let long = "x".repeat(VERIFY_BLOCK_BYTES * 2 + 3);
        let text = format!("a\n{long}\nb");
        let mut input = text.as_bytes();
        let mut carry = Vec::new();
        let mut seen = Vec::new();
        while let Some(block) =
            read_block(&mut input, &mut carry, Vec::new(), DEFAULT_MAX_LINE_BYTES).expect("read")
        {
            assert!(!block.overlong);
            seen.extend_from_slice(block.bytes());
            assert!(block.bytes().ends_with(b"\n") || carry.is_empty());
        }
        assert_eq!(seen, text.as_bytes());
    }

    #[test]
    fn a_line_without_end_stops_growing_its_block_past_the_maximum() {
        let max = VERIFY_BLOCK_BYTES + 10;
        let mut endless = std::io::repeat(b'x');
        let mut input = std::io::BufReader::new(&mut endless);
        let mut carry = Vec::new();
        let block = read_block(&mut input, &mut carry, Vec::new(), max)
            .expect("read")
            .expect("a block");
        assert!(block.overlong);
        assert!(block.len > max && block.len <= VERIFY_BLOCK_BYTES * 2);
        assert!(matches!(
            parse_block(block.bytes(), None, max)[..],
            [Parsed::TooLong]
        ));
    }

    #[test]
    fn the_first_line_is_read_no_further_than_the_maximum() {
        let mut endless = std::io::BufReader::new(std::io::repeat(0));
        assert!(matches!(
            read_first_line(&mut endless, 1_000).expect("read"),
            FirstLine::TooLong
        ));
        let mut short: &[u8] = b"abc\nrest";
        assert!(matches!(
            read_first_line(&mut short, 3).expect("read"),
            FirstLine::Line(ref line) if line == b"abc"
        ));
    }

    #[test]
    fn tenancy_is_the_metadata_string_member_tenant_id_and_nothing_else() {
        assert_eq!(
            tenant_of(r#"{"tenant_id":"acme"}"#).as_deref(),
            Some("acme")
        );
        assert_eq!(tenant_of(r#"{"actor":"x"}"#), None);
        assert_eq!(tenant_of(r#"{"tenant_id":7}"#), None);
        assert_eq!(tenant_of(r#"{"tenant_id":"a","tenant_id":"b"}"#), None);
        assert_eq!(tenant_of("null"), None);
        // The member is the one the domain writes.
        assert_eq!(dezky_domain::metadata::KEY_TENANT_ID, "tenant_id");
    }
}
