//! What text typed by people may hold: no control characters, and no invisible characters
//! that reorder what a reader sees.
//!
//! Names and one-line fields travel into e-mail headers, iCalendar properties, CSV exports and
//! audit lines. A CR or LF there splits a header or a property (injection), a NUL truncates,
//! and a bidirectional override (U+202E and friends) makes `gpj.exe` read as `exe.jpg`. Such
//! characters are refused where the text enters, with a typed error naming the field, rather
//! than escaped at every exit.

/// How many lines a field may span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextShape {
    /// A name, a subject, an identifier: no line breaks at all.
    SingleLine,
    /// A body of text: line feeds, carriage returns and tabs allowed, other controls not.
    MultiLine,
}

/// Whether `c` is an invisible character that changes the display order of text (the
/// explicit bidirectional embeddings, overrides and isolates, and the directional marks).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The first character `value` may not hold in a field of `shape`, if any: controls (C0, DEL,
/// C1; in a multi-line field all but line feed, carriage return and tab), the Unicode line
/// and paragraph separators in a single-line field, and bidirectional controls anywhere.
pub fn first_disallowed_char(value: &str, shape: TextShape) -> Option<char> {
    value.chars().find(|&c| {
        let allowed_break = shape == TextShape::MultiLine && matches!(c, '\n' | '\r' | '\t');
        (c.is_control() && !allowed_break)
            || (shape == TextShape::SingleLine && matches!(c, '\u{2028}' | '\u{2029}'))
            || is_bidi_control(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_line_refuses_line_breaks_nul_and_direction_overrides() {
        for bad in [
            "Ada\r\nBcc: x",
            "Ada\n",
            "Ada\0",
            "Ada\u{7F}",
            "Ada\u{85}",
            "Ada\u{2028}",
            "Ada\u{202E}gpj.exe",
            "Ada\u{2066}",
            "Ada\u{200F}",
        ] {
            assert!(
                first_disallowed_char(bad, TextShape::SingleLine).is_some(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ordinary_names_in_any_script_pass() {
        for good in [
            "Ada Lovelace",
            "Zoë Ørsted-Müller",
            "محمد",
            "李小龍",
            "O'Brien (Sales)",
        ] {
            assert_eq!(
                first_disallowed_char(good, TextShape::SingleLine),
                None,
                "{good}"
            );
        }
    }

    #[test]
    fn a_body_keeps_its_lines_but_not_other_controls() {
        assert_eq!(
            first_disallowed_char("Hello\r\n\tworld\n", TextShape::MultiLine),
            None
        );
        assert_eq!(
            first_disallowed_char("Hello\u{1B}[31m", TextShape::MultiLine),
            Some('\u{1B}')
        );
        assert_eq!(
            first_disallowed_char("Hello \u{202E}", TextShape::MultiLine),
            Some('\u{202E}')
        );
    }
}
