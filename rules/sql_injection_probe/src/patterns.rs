//! SQL injection pattern matching over one text, used by the rule in `lib.rs`.
//!
//! The text is percent-decoded (twice, for double encoding), lowercased and cut into tokens
//! (words, quotes, `=`, `;`, comments...), `/* */` comments and `+` counting as spaces, so
//! `'%20OR/**/1=1` and `' or 1 = 1` look the same; patterns are token sequences, which keeps
//! words like "reunion selection" or "O'Reilly" from matching.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quote,
    Eq,
    Semi,
    /// `--` or `#`: the rest of the query is commented out.
    LineComment,
    /// An unterminated `/*`.
    BlockComment,
    Open,
    Close,
    Other,
}

fn is_word(t: Option<&Tok>, words: &[&str]) -> bool {
    matches!(t, Some(Tok::Word(w)) if words.contains(&w.as_str()))
}

fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        i += 1;
        match c {
            c if c.is_whitespace() || c == '+' => {}
            c if c.is_alphanumeric() || c == '_' => {
                let start = i - 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            '\'' | '"' | '`' => toks.push(Tok::Quote),
            '=' => toks.push(Tok::Eq),
            ';' => toks.push(Tok::Semi),
            '#' => toks.push(Tok::LineComment),
            '-' if next == Some('-') => {
                i += 1;
                toks.push(Tok::LineComment);
            }
            '/' if next == Some('*') => {
                let close = (i + 1..chars.len().saturating_sub(1)).find(|&j| chars[j] == '*' && chars[j + 1] == '/');
                match close {
                    Some(j) => i = j + 2, // an inline comment is just a space
                    None => {
                        toks.push(Tok::BlockComment);
                        i = chars.len();
                    }
                }
            }
            '(' => toks.push(Tok::Open),
            ')' => toks.push(Tok::Close),
            _ => toks.push(Tok::Other),
        }
    }
    toks
}

/// Whether `text` could match any pattern of [`find`]: one pass over the bytes, 16 at a time
/// (`crate::prefilter`). Every pattern needs, after percent-decoding, a quote, `=`, `;`,
/// `(`, or one of the words `union`, `waitfor`, `xp_cmdshell`, `information_schema`; a `%`
/// (something to decode) or any non-ASCII byte (Unicode lowercasing) sends the text to the
/// full scan too. So a text this says no to is a text [`find`] says no to, and most text
/// is never tokenized.
pub fn needs_scan(text: &str) -> bool {
    needs_scan_bytes(text.as_bytes(), false)
}

/// [`needs_scan`] over the raw JSON text of a value (`details`): true whenever any string
/// inside it needs the full scan. Structural quotes are skipped; an escaped quote (`\"`) or
/// any `\u` escape (which may hide a quote or a letter) counts as a hint.
pub fn needs_scan_json(raw: &str) -> bool {
    needs_scan_bytes(raw.as_bytes(), true)
}

fn needs_scan_bytes(b: &[u8], json: bool) -> bool {
    crate::prefilter::needs_scan_bytes(b, json)
}

/// The name of the first SQL injection pattern found in `text`, if any.
pub fn find(text: &str) -> Option<&'static str> {
    if !needs_scan(text) {
        return None;
    }
    scan(text)
}

/// The full scan behind [`find`]: percent-decoding, tokenizing, pattern matching.
fn scan(text: &str) -> Option<&'static str> {
    let mut decoded = text.to_owned();
    for _ in 0..2 {
        if !decoded.contains('%') {
            break;
        }
        decoded = percent_decode(&decoded);
    }
    let t = tokenize(&decoded);
    for i in 0..t.len() {
        let at = |k: usize| t.get(i + k);
        match &t[i] {
            // ' OR 1=1, ' or 'a'='a, " or ""="
            Tok::Quote if is_word(at(1), &["or"]) && (2..8).any(|k| at(k) == Some(&Tok::Eq)) => {
                return Some("quote_or_tautology");
            }
            // ... OR 1=1 (same operand on both sides)
            Tok::Word(w) if w == "or" && at(2) == Some(&Tok::Eq) && at(1).is_some() && at(1) == at(3) => {
                if matches!(at(1), Some(Tok::Word(_))) {
                    return Some("or_tautology");
                }
            }
            Tok::Word(w) if w == "union" => {
                let k = if is_word(at(1), &["all", "distinct"]) { 2 } else { 1 };
                if is_word(at(k), &["select"]) {
                    return Some("union_select");
                }
            }
            // ; DROP TABLE, ; DELETE FROM, ; SHUTDOWN ...
            Tok::Semi => {
                let stacked = (is_word(at(1), &["drop"]) && is_word(at(2), &["table", "database", "schema"]))
                    || (is_word(at(1), &["delete"]) && is_word(at(2), &["from"]))
                    || (is_word(at(1), &["insert"]) && is_word(at(2), &["into"]))
                    || is_word(at(1), &["truncate", "shutdown", "exec", "execute"]);
                if stacked {
                    return Some("stacked_query");
                }
            }
            // admin'--, ') #, '/*
            Tok::Quote => {
                let k = (1..4).find(|&k| !matches!(at(k), Some(Tok::Close | Tok::Semi))).unwrap_or(4);
                if matches!(at(k), Some(Tok::LineComment | Tok::BlockComment)) {
                    return Some("quote_comment");
                }
            }
            Tok::Word(w) if matches!(w.as_str(), "sleep" | "pg_sleep" | "benchmark") && at(1) == Some(&Tok::Open) => {
                return Some("time_delay");
            }
            Tok::Word(w) if w == "waitfor" && is_word(at(1), &["delay", "time"]) => return Some("time_delay"),
            Tok::Word(w) if matches!(w.as_str(), "xp_cmdshell" | "information_schema") => {
                return Some("schema_probe");
            }
            _ => {}
        }
    }
    None
}

/// Whether the raw JSON of `details` may hold a match (see [`needs_scan_json`]): one pass,
/// no allocation, so `details` is parsed only when a string inside it could match.
pub fn may_match(raw: &str) -> bool {
    needs_scan_json(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_probes_match() {
        let cases = [
            ("1' OR 1=1", "quote_or_tautology"),
            ("x' or 'a'='a", "quote_or_tautology"),
            ("\" or \"\"=\"", "quote_or_tautology"),
            ("/items?id=1%27%20OR%201%3D1", "quote_or_tautology"),
            ("/items?id=1%2527+OR+1%253D1", "quote_or_tautology"),
            ("id=5 or 1=1", "or_tautology"),
            ("1 UNION SELECT password FROM users", "union_select"),
            ("1 union/**/all/**/select null", "union_select"),
            ("1; DROP TABLE users", "stacked_query"),
            ("admin'--", "quote_comment"),
            ("admin') #", "quote_comment"),
            ("x' /* trailing", "quote_comment"),
            ("1 AND SLEEP(5)", "time_delay"),
            ("1; WAITFOR DELAY '0:0:5'", "time_delay"),
            ("select * from information_schema.tables", "schema_probe"),
        ];
        for (text, want) in cases {
            assert_eq!(find(text), Some(want), "{text}");
            assert!(may_match(text), "{text}");
        }
    }

    #[test]
    fn the_prefilter_never_hides_a_match() {
        // Everything the full scan finds, the prefilter lets through, including the
        // probes of the test above written in other cases and encodings.
        for text in [
            "1' OR 1=1",
            "x UNION SELECT password FROM users",
            "1; DROP TABLE users",
            "admin'--",
            "1 or 1=1",
            "%27%20OR%201%3D1",
            "WAITFOR DELAY '0:0:5'",
            "select * from Information_Schema.tables",
            "exec XP_CMDSHELL 'dir'",
            "1 AND SLEEP(5)",
            "\u{2019} or 1=1",
        ] {
            assert!(needs_scan(text), "{text}");
        }
        // Random texts over an alphabet rich in SQL pieces: whatever the full scan finds,
        // the prefilter lets through.
        let alphabet = [
            "'",
            "\"",
            "`",
            "=",
            ";",
            "(",
            ")",
            "%27",
            "%3D",
            " ",
            "+",
            "-",
            "--",
            "#",
            "/*",
            "*/",
            "or",
            "OR",
            "1",
            "union",
            "UNION",
            "select",
            "all",
            "drop",
            "table",
            "sleep",
            "waitfor",
            "delay",
            "xp_cmdshell",
            "information_schema",
            "a",
            "/api/",
            "é",
        ];
        // Up to 8 pieces of the alphabet, from a xorshift state.
        let random_text = |x: &mut u64| {
            let mut text = String::new();
            for _ in 0..(*x % 9) {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                text.push_str(alphabet[(*x % alphabet.len() as u64) as usize]);
            }
            *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            text
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut matched = 0;
        for _ in 0..20_000 {
            let text = random_text(&mut x);
            if scan(&text).is_some() {
                matched += 1;
                assert!(needs_scan(&text), "the prefilter hid a match in {text:?}");
            }
        }
        assert!(matched > 100, "the random texts exercise the patterns: {matched}");
        // The same through JSON: a details object holding any of these texts is flagged.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..5_000 {
            let text = random_text(&mut x);
            let raw = vigil_sdk::json::Value::Object(vec![("k".into(), vigil_sdk::json::Value::from(text.as_str()))])
                .to_json();
            if scan(&text).is_some() {
                assert!(needs_scan_json(&raw), "the JSON prefilter hid a match in {raw}");
            }
        }
        assert!(!needs_scan_json(r#"{"method":"password","mfa":true,"record_count":3,"required_role":"editor"}"#));
        // Plain paths and words are not tokenized at all.
        for text in ["/api/v1/accounts/42/profile", "/reports/quarterly/download", "Mozilla/5.0 unionized"] {
            assert_eq!(needs_scan(text), text.contains("union"), "{text}");
            assert_eq!(find(text), None);
        }
    }

    #[test]
    fn ordinary_text_does_not_match() {
        for text in [
            "/api/v1/users/42",
            "O'Reilly or someone else",
            "family reunion selection",
            "rock 'n' roll",
            "it's fine; dropping by later",
            "a - b = c",
            "color=red&size=m",
            "email me at a@b.c; thanks",
            "100% done",
        ] {
            assert_eq!(find(text), None, "{text}");
        }
    }
}
