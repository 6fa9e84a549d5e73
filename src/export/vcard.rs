//! A vCard 4.0 writer (RFC 6350): text escaping (§3.4), line folding at 75
//! octets without splitting a character (§3.2), CRLF line ends.

use std::fmt::Write as _;

/// One card, built property by property.
pub struct Card {
    out: String,
}

impl Card {
    pub fn new() -> Card {
        let mut card = Card { out: String::new() };
        card.raw("BEGIN", "VCARD");
        card.raw("VERSION", "4.0");
        card
    }

    /// A property whose value is written as given (already a valid value:
    /// a URI, a token, a compound value escaped by its parts).
    pub fn raw(&mut self, name: &str, value: &str) {
        fold_into(&mut self.out, &format!("{name}:{value}"));
    }

    /// A single text value (FN, NOTE): escaped.
    pub fn text(&mut self, name: &str, value: &str) {
        self.raw(name, &escape(value));
    }

    /// A structured value (ADR, N): each component escaped, joined by `;`.
    pub fn compound(&mut self, name: &str, components: &[&str]) {
        let value: Vec<String> = components.iter().map(|c| escape(c)).collect();
        self.raw(name, &value.join(";"));
    }

    pub fn finish(mut self) -> String {
        self.raw("END", "VCARD");
        self.out
    }
}

/// Escapes a text value: backslash, comma, semicolon and line breaks
/// (CRLF, CR or LF become `\n`).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded: at most 75 octets per physical line, each
/// continuation starting with one space, never inside a UTF-8 sequence.
fn fold_into(out: &mut String, line: &str) {
    const WIDTH: usize = 75;
    let mut used = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if used + len > WIDTH {
            out.push_str("\r\n ");
            // The leading space counts toward the line's octets.
            used = 1;
        }
        out.push(c);
        used += len;
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a,b;c\\d\r\ne\nf\rg"), "a\\,b\\;c\\\\d\\ne\\nf\\ng");
        assert_eq!(escape("张三 🎉"), "张三 🎉");
    }

    #[test]
    fn a_card_has_crlf_lines_between_begin_and_end() {
        let mut c = Card::new();
        c.text("FN", "Alice, Bob");
        c.compound("ADR", &["", "", "", "Shenzhen", "Guangdong", "", ""]);
        assert_eq!(
            c.finish(),
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Alice\\, Bob\r\nADR:;;;Shenzhen;Guangdong;;\r\nEND:VCARD\r\n"
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let mut c = Card::new();
        let note = "签名".repeat(40);
        c.text("NOTE", &note);
        let card = c.finish();
        let mut unfolded = String::new();
        for line in card.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
            match line.strip_prefix(' ') {
                Some(rest) => unfolded.push_str(rest),
                None => {
                    if !unfolded.is_empty() {
                        unfolded.push('\n');
                    }
                    unfolded.push_str(line);
                }
            }
        }
        assert!(unfolded.contains(&format!("NOTE:{note}")), "{unfolded}");
        let ascii = "x".repeat(200);
        let mut c = Card::new();
        c.raw("PHOTO", &ascii);
        let card = c.finish();
        let photo: Vec<&str> = card
            .split("\r\n")
            .skip_while(|l| !l.starts_with("PHOTO:"))
            .take_while(|l| !l.starts_with("END"))
            .collect();
        assert_eq!(photo[0].len(), 75);
        assert!(
            photo[1..]
                .iter()
                .all(|l| l.starts_with(' ') && l.len() <= 75)
        );
        let joined: String = photo.iter().map(|l| l.trim_start()).collect();
        assert_eq!(joined, format!("PHOTO:{ascii}"));
    }
}
