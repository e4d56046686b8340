//! Value detectors that find a secret by the name written before it, called by
//! `Masker::mask_str`: `key=value`, `key: value`, `"key": "value"`, `key => value` (query
//! strings, logfmt, headers, connection strings, JSON or escaped JSON inside a string),
//! XML elements and `name`/`value` attribute pairs (`<password>..</password>`,
//! `<add key="ApiKey" value=".."/>`), command-line flags (`--password x`), and passwords in
//! URL userinfo (`scheme://u:pw@host`).
//! Key names are judged by `keys.rs`.
//!
//! An unquoted value runs to the end of its field: the end of the line, `;`, `&`, a quote or
//! `<`, or the next `word=` / `word:` pair, so multi-word passphrases are masked whole
//! (`passphrase: correct horse battery staple`) while `password=x user=bob` keeps `user`.
//! Header-style keys (`Cookie`, `Authorization`) run to the end of the line, `;` included.
//! Values that are already masked or only a redaction placeholder (`****`, `[REDACTED]`)
//! are left as they are.

use super::keys::{Verdict, verdict};
use super::{Hit, is_placeholder, pseudonym_len, run_end};

/// Keys whose unquoted text value runs to the end of the line (HTTP header style).
const LINE_VALUE_KEYS: &[&str] = &["cookie", "setcookie", "authorization", "proxyauthorization"];

/// Most words of a multi-word key (`Date of Birth: ..`, `API Key = ..`).
const MAX_KEY_WORDS: usize = 4;

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'[' | b']')
}

fn sensitive(key: &str) -> bool {
    verdict(key) != Verdict::Readable
}

/// The key written right before byte `sep` (a `=` or `:`), if it names a secret: plain
/// (`token`), quoted (`"API Key"`, `\"password\"`), or a few words (`Card Number`).
fn key_before(s: &str, sep: usize) -> Option<&str> {
    let b = s.as_bytes();
    let mut end = sep;
    while end > 0 && sep - end < 8 && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    if end > 0 && matches!(b[end - 1], b'"' | b'\'') {
        let quote = b[end - 1];
        end -= 1;
        let open = b[end.saturating_sub(64)..end].iter().rposition(|&c| c == quote).map(|p| end.saturating_sub(64) + p);
        let start = open.map_or(end, |o| o + 1);
        let key = s.get(start..end).unwrap_or("").trim_end_matches('\\');
        return (!key.is_empty() && sensitive(key)).then_some(key);
    }
    let mut start = end;
    while start > 0 && end - start < 64 && is_key_char(b[start - 1]) {
        start -= 1;
    }
    let key = s.get(start..end).unwrap_or("");
    if key.is_empty() {
        return None;
    }
    if sensitive(key) {
        return Some(key);
    }
    // Widen to the words before it, one at a time: `API Key`, `Date of Birth`.
    let mut from = start;
    for _ in 1..MAX_KEY_WORDS {
        if from < 2 || b[from - 1] != b' ' || !b[from - 2].is_ascii_alphabetic() {
            break;
        }
        let mut w = from - 1;
        while w > 0 && from - 1 - w < 24 && b[w - 1].is_ascii_alphabetic() {
            w -= 1;
        }
        from = w;
        let key = s.get(from..end).unwrap_or("");
        if sensitive(key) {
            return Some(key);
        }
    }
    None
}

/// `key=value`, `key: value`, `"key": "value"`, `key => value` with a sensitive key; masks
/// the value only.
pub(super) fn find_pairs(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Skip our own pseudonyms (`[masked:card:..]` must not read as `card: ..`).
        if b[i] == b'['
            && let Some(n) = pseudonym_len(&b[i..])
        {
            i += n;
            continue;
        }
        if b[i] != b'=' && b[i] != b':' {
            i += 1;
            continue;
        }
        let sep = i;
        i += 1;
        // `scheme://`, `a::b`, `==`: not pairs.
        let after = b.get(sep + 1).copied();
        if (b[sep] == b':' && matches!(after, Some(b':' | b'/')))
            || (sep > 0 && b[sep - 1] == b':')
            || after == Some(b'=')
        {
            continue;
        }
        let Some(key) = key_before(s, sep) else { continue };
        let mut v = sep + 1;
        if b[sep] == b'=' && after == Some(b'>') {
            v += 1;
        }
        let v = run_end(b, v, |c| c == b' ' || c == b'\t');
        let line_value = LINE_VALUE_KEYS.iter().any(|k| key.len() <= 24 && normalized_eq(key, k));
        let (vs, ve) = value_span(b, v, line_value);
        push_value(b, vs, ve, hits);
        i = i.max(ve);
    }
}

/// Records the value `vs..ve` unless it is empty, already masked (exactly a pseudonym;
/// forged ones followed by text are not) or a redaction placeholder.
fn push_value(b: &[u8], vs: usize, ve: usize, hits: &mut Vec<Hit>) {
    let v = &b[vs..ve];
    if !v.is_empty() && pseudonym_len(v) != Some(v.len()) && !is_placeholder(v) {
        hits.push(Hit::new(vs, ve, "field"));
    }
}

/// Command-line flags with a sensitive name and the value as the next argument:
/// `--password hunter2`, `-token 'a b'` (`--password=x` is a plain pair).
pub(super) fn find_cli_flags(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    for i in super::find_all(b, b"-") {
        if i > 0 && !matches!(b[i - 1], b' ' | b'\t' | b'"' | b'\'') {
            continue;
        }
        let k = if b.get(i + 1) == Some(&b'-') { i + 2 } else { i + 1 };
        let ke = run_end(b, k, |c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
        if ke - k < 3 || b.get(ke) != Some(&b' ') {
            continue;
        }
        let v = run_end(b, ke, |c| c == b' ');
        if v >= b.len() || b[v] == b'-' || !sensitive(s.get(k..ke).unwrap_or("")) {
            continue;
        }
        let (vs, ve) = if matches!(b[v], b'"' | b'\'') {
            let close = memchr::memchr(b[v], &b[v + 1..]).map_or(b.len(), |c| v + 1 + c);
            (v + 1, close)
        } else {
            (v, run_end(b, v, |c| !c.is_ascii_whitespace() && c != b'"' && c != b'\''))
        };
        push_value(b, vs, ve, hits);
    }
}

/// `key` lowercased without separators equals `norm`.
fn normalized_eq(key: &str, norm: &str) -> bool {
    let mut k = key.bytes().filter(u8::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase());
    norm.bytes().all(|c| k.next() == Some(c)) && k.next().is_none()
}

/// The value starting at `v`: quoted (`"..."`, `'...'`, `\"...\"`), to the end of the line,
/// or to the end of its field (see the module doc).
fn value_span(b: &[u8], v: usize, line_value: bool) -> (usize, usize) {
    if v >= b.len() {
        return (v, v);
    }
    if b[v] == b'\\' && matches!(b.get(v + 1), Some(b'"' | b'\'')) {
        // Escaped JSON inside a string: `\"password\":\"x\"`.
        let close = [b'\\', b[v + 1]];
        let end = super::find_bytes(&b[v + 2..], &close).map_or(b.len(), |k| v + 2 + k);
        return (v + 2, end);
    }
    if matches!(b[v], b'"' | b'\'' | b'`') {
        let mut j = v + 1;
        while j < b.len() && b[j] != b[v] {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        return (v + 1, j.min(b.len()));
    }
    if line_value {
        return (v, run_end(b, v, |c| !matches!(c, b'\n' | b'\r' | b'"' | b'\'')));
    }
    let mut j = v;
    while j < b.len() {
        match b[j] {
            b'\n' | b'\r' | b'&' | b';' | b'"' | b'\'' | b'<' | b'`' => break,
            b' ' | b'\t' if next_is_pair(b, j) => break,
            b'\\' if matches!(b.get(j + 1), Some(b'n' | b'r' | b'"')) => break,
            _ => j += 1,
        }
    }
    let trimmed = |c: u8| matches!(c, b' ' | b'\t' | b',' | b')' | b']' | b'}' | b'.');
    // A pseudonym keeps its own `]`.
    if let Some(n) = pseudonym_len(&b[v..j])
        && b[v + n..j].iter().all(|&c| trimmed(c))
    {
        return (v, v + n);
    }
    let mut end = j;
    while end > v && trimmed(b[end - 1]) {
        end -= 1;
    }
    (v, end)
}

/// Whether the whitespace at `j` is followed by another `word=` / `word:` pair or by a
/// command-line flag (`-jar`, `--force`).
fn next_is_pair(b: &[u8], j: usize) -> bool {
    let k = run_end(b, j, |c| c == b' ' || c == b'\t');
    let flag = run_end(b, k, |c| c == b'-');
    if (1..=2).contains(&(flag - k)) && b.get(flag).is_some_and(u8::is_ascii_alphabetic) {
        return true;
    }
    let e = run_end(b, k, is_key_char);
    if e == k || e - k > 64 {
        return false;
    }
    let e = run_end(b, e, |c| c == b' ');
    match b.get(e) {
        Some(b'=') => true,
        Some(b':') => !matches!(b.get(e + 1), Some(b'/' | b':')),
        _ => false,
    }
}

/// Attribute names that name the member an XML element describes (`<add key="ApiKey" ..>`).
const XML_NAME_ATTRS: &[&str] = &["name", "key", "id", "field", "param", "parameter", "property"];
/// Attribute names that hold that member's value.
const XML_VALUE_ATTRS: &[&str] = &["value", "content", "data", "val"];

/// `<password>x</password>`, `<ns:apiKey>x</ns:apiKey>`, CDATA contents, and `value`
/// attributes of elements whose `name`/`key` attribute is sensitive. (`password="x"`
/// attributes are plain pairs.)
pub(super) fn find_xml(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(lt) = memchr::memchr(b'<', &b[from..]).map(|k| from + k) {
        from = lt + 1;
        let name_end = run_end(b, lt + 1, |c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'));
        if name_end == lt + 1 || !b[lt + 1].is_ascii_alphabetic() || name_end - lt > 65 {
            continue;
        }
        let Some(gt) = tag_end(b, name_end) else { continue };
        let name = s.get(lt + 1..name_end).unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        let attrs = attributes(s, name_end, gt);
        let named = attrs.iter().any(|&(n, (vs, ve))| {
            XML_NAME_ATTRS.iter().any(|a| n.eq_ignore_ascii_case(a)) && s.get(vs..ve).is_some_and(sensitive)
        }) || sensitive(local);
        if named {
            for &(n, (vs, ve)) in &attrs {
                if XML_VALUE_ATTRS.iter().any(|a| n.eq_ignore_ascii_case(a)) {
                    push_value(b, vs, ve, hits);
                }
            }
        }
        let self_closing = b[gt - 1] == b'/';
        if self_closing || !named {
            continue;
        }
        let mut vs = gt + 1;
        let ve = if b[vs..].starts_with(b"<![CDATA[") {
            vs += 9;
            super::find_bytes(&b[vs..], b"]]>").map_or(b.len(), |k| vs + k)
        } else {
            memchr::memchr(b'<', &b[vs..]).map_or(b.len(), |k| vs + k)
        };
        let text = &b[vs..ve];
        let lead = text.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let trail = text.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
        let (vs, ve) = (vs + lead, (ve - trail).max(vs + lead));
        push_value(b, vs, ve, hits);
        from = ve.max(from);
    }
}

/// The `>` closing a start tag whose name ends at `from`, skipping quoted attribute values.
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    let limit = (from + 2048).min(b.len());
    while j < limit {
        match b[j] {
            b'>' => return Some(j),
            b'<' => return None,
            q @ (b'"' | b'\'') => j = memchr::memchr(q, &b[j + 1..limit]).map(|k| j + 2 + k)?,
            _ => j += 1,
        }
    }
    None
}

/// `name="value"` attributes of a start tag between `from` and `gt`: names and value spans.
fn attributes(s: &str, from: usize, gt: usize) -> Vec<(&str, (usize, usize))> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut j = from;
    while j < gt {
        if b[j] != b'=' {
            j += 1;
            continue;
        }
        let mut ns = j;
        while ns > from && (b[ns - 1].is_ascii_alphanumeric() || matches!(b[ns - 1], b'_' | b'-' | b':')) {
            ns -= 1;
        }
        let q = j + 1;
        if q < gt && matches!(b[q], b'"' | b'\'') {
            let close = memchr::memchr(b[q], &b[q + 1..gt]).map_or(gt, |k| q + 1 + k);
            if let Some(name) = s.get(ns..j) {
                out.push((name, (q + 1, close)));
            }
            j = close + 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `scheme://user:password@host`: masks the password.
pub(super) fn find_url_passwords(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    for p in super::find_all(b, b"://") {
        let auth = p + 3;
        let end = run_end(b, auth, |c| {
            !matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>') && !c.is_ascii_whitespace()
        });
        if let Some(at) = b[auth..end].iter().rposition(|&c| c == b'@')
            && let Some(colon) = b[auth..auth + at].iter().position(|&c| c == b':')
            && colon + 1 < at
            && pseudonym_len(&b[auth + colon + 1..auth + at]) != Some(at - colon - 1)
        {
            hits.push(Hit::new(auth + colon + 1, auth + at, "password"));
        }
    }
}
