//! Text helpers for strings as WeChat Web sends them: emoji spans and HTML
//! entities in names, and the `skey` secret inside avatar URLs.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// `<span class="emoji emoji1f600"></span>`; the closing `>` is sometimes
/// missing on the wire, so it is optional here.
static EMOJI_SPAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<span\s+class="emoji\s+emoji([0-9A-Fa-f]+)"\s*>\s*</span>?"#)
        .expect("emoji span regex is valid")
});

/// Codes the server sends for the wrong emoji, and the right one (ItChat
/// `utils.py emoji_formatter`).
const WRONG_CODES: [(&str, &str); 9] = [
    ("1f63c", "1f601"),
    ("1f639", "1f602"),
    ("1f63a", "1f603"),
    ("1f4ab", "1f616"),
    ("1f64d", "1f614"),
    ("1f63b", "1f60d"),
    ("1f63d", "1f618"),
    ("1f64e", "1f621"),
    ("1f63f", "1f622"),
];

/// Decodes a name or signature as received into plain Unicode: emoji spans
/// first, then HTML entities (one pass, so `&amp;lt;` becomes `&lt;`).
///
/// A span whose code is not a valid code point, or has a length the protocol
/// does not use, is left untouched.
pub fn decode_text(s: &str) -> String {
    let spans_done = EMOJI_SPAN.replace_all(s, |caps: &Captures<'_>| {
        emoji_for_code(&caps[1]).unwrap_or_else(|| caps[0].to_owned())
    });
    html_escape::decode_html_entities(&spans_done).into_owned()
}

/// The text for one emoji code, or `None` when the code cannot be decoded.
fn emoji_for_code(code: &str) -> Option<String> {
    let code = code.to_ascii_lowercase();
    let code = WRONG_CODES
        .iter()
        .find(|(wrong, _)| *wrong == code)
        .map_or(code.as_str(), |(_, right)| right);
    let parts: Vec<&str> = match code.len() {
        4 | 5 => vec![code],
        // Keycaps: a 2-digit ASCII base plus a 4-digit combining mark.
        6 => vec![&code[..2], &code[2..]],
        8 => vec![&code[..4], &code[4..]],
        10 => vec![&code[..5], &code[5..]],
        _ => return None,
    };
    parts
        .into_iter()
        .map(|part| u32::from_str_radix(part, 16).ok().and_then(char::from_u32))
        .collect()
}

/// Removes the `skey` query parameter from a URL (absolute or relative),
/// keeping everything else byte for byte. A URL without one comes back
/// unchanged.
pub fn strip_skey(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(q);
    let rest = &rest[1..];
    let (query, fragment) = match rest.find('#') {
        Some(h) => rest.split_at(h),
        None => (rest, ""),
    };
    let kept: Vec<&str> = query.split('&').filter(|p| !is_skey_param(p)).collect();
    let query = kept.join("&");
    if query.is_empty() {
        format!("{head}{fragment}")
    } else {
        format!("{head}?{query}{fragment}")
    }
}

/// True for `skey=…` (also `skey` alone and the HTML-escaped `amp;skey=…`
/// piece that `&amp;skey=` leaves after splitting on `&`).
fn is_skey_param(piece: &str) -> bool {
    let name = piece.split('=').next().unwrap_or_default();
    let name = name.strip_prefix("amp;").unwrap_or(name);
    name.eq_ignore_ascii_case("skey")
}

pub(crate) fn has_skey_param(s: &str) -> bool {
    s.split_once('?').is_some_and(|(_, q)| {
        q.split(['&', '#'])
            .any(|p| p.contains('=') && is_skey_param(p))
    })
}

/// Applies [`strip_skey`] to every string in a JSON value that looks like a
/// URL carrying a `skey` parameter, at any depth.
pub fn strip_skey_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if has_skey_param(s) => *s = strip_skey(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_skey_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(strip_skey_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(code: &str) -> String {
        format!(r#"<span class="emoji emoji{code}"></span>"#)
    }

    #[test]
    fn plain_text_is_unchanged() {
        for s in [
            "",
            "Alice",
            "张三 (work)",
            "a < b",
            "emoji1f600",
            "100% & more",
        ] {
            assert_eq!(decode_text(s), s);
        }
    }

    #[test]
    fn four_and_five_digit_codes_are_one_code_point() {
        assert_eq!(decode_text(&span("2600")), "\u{2600}");
        assert_eq!(
            decode_text(&format!("hi{}!", span("1f600"))),
            "hi\u{1F600}!"
        );
        assert_eq!(decode_text(&span("1F600")), "\u{1F600}");
    }

    #[test]
    fn six_digit_codes_are_keycaps_split_two_and_four() {
        assert_eq!(decode_text(&span("3120e3")), "1\u{20E3}");
        assert_eq!(decode_text(&span("2320e3")), "#\u{20E3}");
    }

    #[test]
    fn eight_digit_codes_split_four_and_four() {
        assert_eq!(decode_text(&span("00a900ae")), "\u{A9}\u{AE}");
    }

    #[test]
    fn ten_digit_codes_split_five_and_five() {
        // Regional indicators C + N: the flag of China.
        assert_eq!(decode_text(&span("1f1e81f1f3")), "\u{1F1E8}\u{1F1F3}");
    }

    #[test]
    fn every_wrong_code_is_corrected() {
        let cases = [
            ("1f63c", '\u{1F601}'),
            ("1f639", '\u{1F602}'),
            ("1f63a", '\u{1F603}'),
            ("1f4ab", '\u{1F616}'),
            ("1f64d", '\u{1F614}'),
            ("1f63b", '\u{1F60D}'),
            ("1f63d", '\u{1F618}'),
            ("1f64e", '\u{1F621}'),
            ("1f63f", '\u{1F622}'),
        ];
        for (code, want) in cases {
            assert_eq!(decode_text(&span(code)), want.to_string(), "code {code}");
        }
    }

    #[test]
    fn a_span_missing_its_closing_bracket_is_decoded() {
        let s = r#"A<span class="emoji emoji1f600"></spanB"#;
        assert_eq!(decode_text(s), "A\u{1F600}B");
    }

    #[test]
    fn invalid_code_points_and_lengths_are_left_as_is() {
        // Surrogates (alone or as a 4+4 pair) are not code points.
        for code in ["d83d", "d83dde00", "123", "1234567", "123456789012"] {
            let s = span(code);
            assert_eq!(decode_text(&s), s, "code {code}");
        }
    }

    #[test]
    fn entities_are_decoded_after_spans_in_one_pass() {
        assert_eq!(decode_text("&amp;lt;"), "&lt;");
        assert_eq!(decode_text("Tom &amp; Jerry &lt;3"), "Tom & Jerry <3");
        assert_eq!(
            decode_text(&format!("{}&amp;{}", span("1f600"), span("2600"))),
            "\u{1F600}&\u{2600}"
        );
        // An escaped span is text the user typed, not an emoji.
        let typed = r#"&lt;span class="emoji emoji1f600"&gt;&lt;/span&gt;"#;
        assert_eq!(
            decode_text(typed),
            r#"<span class="emoji emoji1f600"></span>"#
        );
    }

    #[test]
    fn strip_skey_removes_only_the_skey_parameter() {
        assert_eq!(
            strip_skey("/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1&username=@ab&skey=@crypt_1_x"),
            "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=1&username=@ab"
        );
        assert_eq!(
            strip_skey("https://wx.qq.com/x?skey=%40crypt&a=%2B1&b"),
            "https://wx.qq.com/x?a=%2B1&b"
        );
        assert_eq!(strip_skey("/x?skey=abc"), "/x");
        assert_eq!(strip_skey("/x?skey=abc#top"), "/x#top");
        assert_eq!(strip_skey("/x?a=1&skey=&b=2"), "/x?a=1&b=2");
        assert_eq!(strip_skey("/x?a=1&amp;skey=s&amp;b=2"), "/x?a=1&amp;b=2");
        assert_eq!(strip_skey("/x?skeyx=1&a=2"), "/x?skeyx=1&a=2");
        assert_eq!(strip_skey("/x"), "/x");
        assert_eq!(strip_skey("no url at all"), "no url at all");
    }

    #[test]
    fn strip_skey_json_cleans_urls_at_any_depth() {
        let mut v = json!({
            "HeadImgUrl": "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=5&username=@a&skey=@crypt_z",
            "NickName": "skey=not a url",
            "Note": "what?skey",
            "Uin": 0,
            "MemberList": [{"HeadImgUrl": "/h?skey=1&u=2"}],
            "Nested": {"Deep": ["/d?u=1&skey=2"]}
        });
        strip_skey_json(&mut v);
        assert_eq!(
            v,
            json!({
                "HeadImgUrl": "/cgi-bin/mmwebwx-bin/webwxgeticon?seq=5&username=@a",
                "NickName": "skey=not a url",
                "Note": "what?skey",
                "Uin": 0,
                "MemberList": [{"HeadImgUrl": "/h?u=2"}],
                "Nested": {"Deep": ["/d?u=1"]}
            })
        );
        assert!(!v.to_string().contains("crypt"));
    }
}
