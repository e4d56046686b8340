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

/// The name of the first SQL injection pattern found in `text`, if any.
pub fn find(text: &str) -> Option<&'static str> {
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

/// A cheap test of raw JSON text: can any string in it match? (Avoids parsing `details`.)
pub fn may_match(raw: &str) -> bool {
    const HINTS: &[&str] = &[
        "'",
        "\\\"",
        "`",
        "%2",
        " or ",
        "+or+",
        "union",
        ";",
        "--",
        "#",
        "/*",
        "sleep",
        "benchmark",
        "waitfor",
        "xp_cmdshell",
        "information_schema",
    ];
    let lower = raw.to_ascii_lowercase();
    HINTS.iter().any(|h| lower.contains(h))
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
