//! The iCalendar (RFC 5545) a booking's event is written as, and the little reading of it the
//! adapter needs back: UID, start, end, summary and attendee of the first VEVENT.

use chrono::{DateTime, NaiveDateTime, Utc};
use dezky_commands::ports::calendar::CalendarEvent;

/// The PRODID the events carry, so an operator can tell where an event came from.
const PRODID: &str = "-//dezky//booking//EN";
/// RFC 5545 folds content lines longer than 75 octets.
const MAX_LINE_OCTETS: usize = 75;

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A parameter value: quoted, with the characters a quoted value cannot hold removed.
fn quote_param(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect();
    format!("\"{clean}\"")
}

/// Folds one content line at 75 octets without splitting a UTF-8 character.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The VCALENDAR holding `event`; `stamp` is DTSTAMP (when this version was written).
pub fn render(event: &CalendarEvent, stamp: DateTime<Utc>) -> String {
    let mut out = String::new();
    let attendee = format!(
        "ATTENDEE;CN={};ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:{}",
        quote_param(&event.attendee_name),
        event.attendee_email.trim()
    );
    for line in [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        format!("PRODID:{PRODID}"),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", event.uid),
        format!("DTSTAMP:{}", utc_stamp(stamp)),
        format!("DTSTART:{}", utc_stamp(event.start)),
        format!("DTEND:{}", utc_stamp(event.end)),
        format!("SUMMARY:{}", escape_text(&event.summary)),
        attendee,
        "STATUS:CONFIRMED".to_owned(),
        "TRANSP:OPAQUE".to_owned(),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ] {
        fold(&line, &mut out);
    }
    out
}

/// Content lines with folding undone.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
                continue;
            }
        }
        if !raw.is_empty() {
            lines.push(raw.to_owned());
        }
    }
    lines
}

/// Splits `NAME;PARAMS:value` into the upper-cased name, the parameters and the value.
fn split_line(line: &str) -> Option<(String, &str, &str)> {
    // The value starts at the first colon outside a quoted parameter value.
    let mut quoted = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let (name, params) = head.split_once(';').unwrap_or((head, ""));
    Some((name.to_ascii_uppercase(), params, value))
}

fn param<'a>(params: &'a str, key: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case(key).then(|| v.trim_matches('"'))
    })
}

/// A DATE-TIME value in UTC form (`20261201T090000Z`); a floating or zoned time is not
/// something this product writes, so it is not read either.
fn parse_utc(value: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(value.strip_suffix('Z')?, "%Y%m%dT%H%M%S").ok()?;
    Some(naive.and_utc())
}

/// The UID of every VEVENT in `text`.
pub fn uids(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_event = false;
    for line in unfold(text) {
        let Some((name, _, value)) = split_line(&line) else {
            continue;
        };
        match name.as_str() {
            "BEGIN" if value.eq_ignore_ascii_case("VEVENT") => in_event = true,
            "END" if value.eq_ignore_ascii_case("VEVENT") => in_event = false,
            "UID" if in_event => found.push(value.to_owned()),
            _ => {}
        }
    }
    found
}

/// The first VEVENT of `text`, or an explanation of what is missing.
pub fn parse(text: &str) -> Result<CalendarEvent, String> {
    let mut in_event = false;
    let (mut uid, mut start, mut end, mut summary) = (None, None, None, String::new());
    let (mut attendee_name, mut attendee_email) = (String::new(), String::new());
    for line in unfold(text) {
        let Some((name, params, value)) = split_line(&line) else {
            continue;
        };
        match name.as_str() {
            "BEGIN" if value.eq_ignore_ascii_case("VEVENT") => in_event = true,
            "END" if value.eq_ignore_ascii_case("VEVENT") => break,
            _ if !in_event => {}
            "UID" => uid = Some(value.to_owned()),
            "DTSTART" => start = parse_utc(value),
            "DTEND" => end = parse_utc(value),
            "SUMMARY" => summary = unescape_text(value),
            "ATTENDEE" if attendee_email.is_empty() => {
                attendee_name = param(params, "CN").unwrap_or_default().to_owned();
                attendee_email = value
                    .strip_prefix("mailto:")
                    .or_else(|| value.strip_prefix("MAILTO:"))
                    .unwrap_or(value)
                    .to_owned();
            }
            _ => {}
        }
    }
    Ok(CalendarEvent {
        uid: uid.ok_or("no UID")?,
        summary,
        start: start.ok_or("no UTC DTSTART")?,
        end: end.ok_or("no UTC DTEND")?,
        attendee_name,
        attendee_email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(summary: &str, name: &str) -> CalendarEvent {
        CalendarEvent {
            uid: "b-1".into(),
            summary: summary.into(),
            start: DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
                .expect("instant")
                .with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z")
                .expect("instant")
                .with_timezone(&Utc),
            attendee_name: name.into(),
            attendee_email: "bo@example.eu".into(),
        }
    }

    #[test]
    fn an_event_survives_rendering_and_parsing() {
        let original = event("Call; with, commas\nand a newline", "Bö Ünïcode");
        let text = render(&original, original.start);
        assert!(text.contains("DTSTART:20261201T090000Z\r\n"), "{text}");
        assert_eq!(parse(&text), Ok(original));
    }

    #[test]
    fn long_lines_are_folded_at_75_octets_and_unfolded_on_reading() {
        let original = event(&"ä".repeat(100), "Bo");
        let text = render(&original, original.start);
        assert!(text.split("\r\n").all(|l| l.len() <= MAX_LINE_OCTETS));
        assert_eq!(parse(&text).map(|e| e.summary), Ok("ä".repeat(100)));
    }

    #[test]
    fn a_quote_in_the_attendee_name_cannot_break_the_parameter() {
        let text = render(&event("x", "Bo \"The\" Builder"), Utc::now());
        assert_eq!(
            parse(&text).map(|e| e.attendee_name),
            Ok("Bo The Builder".into())
        );
    }

    #[test]
    fn every_vevent_uid_is_listed() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(uids(text), vec!["a".to_owned(), "b".to_owned()]);
    }
}
