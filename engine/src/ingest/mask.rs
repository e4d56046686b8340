//! Masking of secrets and PII at ingest, before an event is hashed and stored. Used by
//! `validate.rs` (every top-level string field and `details`) and by anything that logs or
//! echoes client input (problem messages).
//!
//! Policy version [`MASK_POLICY_VERSION`] (2):
//! - **Keys** (`keys.rs`): a JSON member whose name is on the denylist (passwords, secrets,
//!   tokens, cookies, API and private keys, PINs, OTPs, card data, SSN and other government
//!   ids, bank accounts, date of birth) is replaced whole. Names are split into words
//!   (snake, camel, kebab, dotted), so `user_pin` and `cardCvv` match but `pinned`,
//!   `author` and `tests_passed` do not; `token_type`, `password_changed_at`, `max_tokens`
//!   stay readable.
//! - **Structure**: the value of a name/value member pair (`{"name": "Authorization",
//!   "value": ..}`, also `key`/`header`/`k`/`label` with `value`/`v`, and form fields of
//!   `"type": "password"`), of a `[name, value]` array and of Node-style flat header lists is
//!   masked when the name is sensitive. A string holding JSON is parsed, masked as JSON and
//!   written back compactly; percent-encoded text (`%3D`, up to three levels) is scanned
//!   decoded and masked in place.
//! - **Values** (every other string, object key and long number): vendor tokens and
//!   webhook URLs (`tokens.rs`), PEM/PuTTY private keys, JWTs, `Bearer`/`Basic` credentials,
//!   card numbers, IBANs and SSNs (`numbers.rs`), `key=value` / `key: value` / XML /
//!   `--flag value` with a sensitive key (multi-word values to the end of the field) and
//!   URL userinfo passwords (`pairs.rs`). Only the detected part is replaced. Top-level
//!   fields get the value detectors only, so ids stay as sent.
//! - **Kept**: empty values, redaction placeholders (`****`, `[REDACTED]`) and pseudonyms;
//!   `event_id`, `category` and `action` (constrained identifiers the integration chooses).
//!   Emails, user names, IPs and phone numbers are PII that detection correlates on, so they
//!   stay readable.
//!
//! Replacements are keyed HMAC pseudonyms `[masked:<kind>:<12 hex>]`, so equal secrets
//! still correlate but cannot be recovered; masking masked output changes nothing.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use detect::detect;
use keys::Verdict;

mod detect;
mod keys;
mod numbers;
mod pairs;
mod tokens;

/// Bump whenever the masking rules change, so stored events can say which policy masked them.
pub use crate::event::MASK_POLICY_VERSION;

const PSEUDONYM_PREFIX: &[u8] = b"[masked:";
/// How deep JSON-in-a-string and percent-encoding are unwrapped.
const MAX_NESTING: usize = 3;
/// Most extra passes that make masking stable (see [`Masker::mask_text`]).
const MAX_PASSES: usize = 4;
/// Member names that name the member a `{name, value}` object describes.
const NAME_MEMBERS: &[&str] = &[
    "name",
    "key",
    "header",
    "headername",
    "k",
    "field",
    "fieldname",
    "param",
    "parameter",
    "paramname",
    "parametername",
    "parameterkey",
    "attribute",
    "attributename",
    "attr",
    "var",
    "variable",
    "variablename",
    "label",
    "id",
];
/// Member names that give a form field's input type (`{"type": "password", "value": ..}`).
const TYPE_MEMBERS: &[&str] = &["type", "inputtype", "fieldtype"];
/// Member names that hold that member's value.
const VALUE_MEMBERS: &[&str] = &[
    "value",
    "v",
    "val",
    "values",
    "data",
    "content",
    "headervalue",
    "fieldvalue",
    "paramvalue",
    "parametervalue",
    "attributevalue",
    "variablevalue",
];
/// Header names that mark a flat string array as a Node-style `rawHeaders` list.
const COMMON_HEADERS: &[&str] =
    &["host", "useragent", "accept", "contenttype", "contentlength", "connection", "cookie", "authorization"];

/// Replaces sensitive values with keyed pseudonyms; cheap to clone and share.
#[derive(Clone)]
pub struct Masker {
    /// HMAC state already keyed; cloned for every pseudonym.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").finish_non_exhaustive()
    }
}

/// One detected sensitive byte range of a string.
struct Hit {
    start: usize,
    end: usize,
    kind: &'static str,
    /// Value to pseudonymize instead of the raw text (card digits without separators,
    /// percent-decoded text).
    canon: Option<String>,
}

impl Hit {
    fn new(start: usize, end: usize, kind: &'static str) -> Self {
        Hit { start, end, kind, canon: None }
    }
}

impl Masker {
    /// Builds a masker whose pseudonyms are keyed by `key` (any length).
    pub fn new(key: &[u8]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
        Masker { mac }
    }

    /// True if a member named `key` must be masked whole, in any naming style (a `tokens`
    /// member is one too, though an integer in it is kept as a count).
    pub fn is_sensitive_key(key: &str) -> bool {
        keys::verdict(key) != Verdict::Readable
    }

    /// Runs the value detectors over `s` (and, when `s` is JSON, masks it as JSON);
    /// `Some(masked)` if anything was replaced.
    pub fn mask_str(&self, s: &str) -> Option<String> {
        self.mask_text(s, 0)
    }

    /// Masks `v` in place (see the module doc); returns how many values were masked.
    pub fn mask_value(&self, v: &mut Value) -> usize {
        self.mask_tree(v, 0)
    }

    /// `[masked:<kind>:<first 12 hex of HMAC-SHA256(key, value)>]`.
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("[masked:{kind}:{}]", hex::encode(&tag[..6]))
    }

    /// One masking pass, repeated until it changes nothing (at most [`MAX_PASSES`] more), so
    /// the result is stable: masking can shorten a key or a line enough to bring a name into
    /// a detector's reach (`"Authorization: <long JWT>": "pw"` has a 64-byte key window).
    fn mask_text(&self, s: &str, depth: usize) -> Option<String> {
        let mut out = self.mask_text_once(s, depth)?;
        for _ in 0..MAX_PASSES {
            match self.mask_text_once(&out, depth) {
                Some(next) => out = next,
                None => break,
            }
        }
        Some(out)
    }

    fn mask_text_once(&self, s: &str, depth: usize) -> Option<String> {
        if depth < MAX_NESTING
            && let Some(mut v) = embedded_json(s)
        {
            return (self.mask_tree(&mut v, depth + 1) > 0).then(|| v.to_string());
        }
        let mut hits = Vec::new();
        detect(s, &mut hits);
        if memchr::memchr(b'%', s.as_bytes()).is_some()
            && let Some((view, map)) = percent_view(s)
        {
            let mut decoded = Vec::new();
            detect(&view, &mut decoded);
            for h in decoded {
                let canon = h.canon.or_else(|| view.get(h.start..h.end).map(str::to_owned));
                let end = map.get(h.end).copied().unwrap_or(s.len());
                let start = map.get(h.start).copied().unwrap_or(s.len());
                hits.push(Hit { start, end, kind: h.kind, canon });
            }
        }
        if hits.is_empty() { None } else { Some(self.render(s, hits)) }
    }

    /// Replaces the (merged) hits of `s` by pseudonyms.
    fn render(&self, s: &str, mut hits: Vec<Hit>) -> String {
        hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut merged: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            match merged.last_mut() {
                Some(last) if h.start < last.end => {
                    if h.end > last.end {
                        last.end = h.end;
                        last.canon = None;
                    }
                    // A specific detector names the kind better than the generic key match.
                    if last.kind == "field" && h.kind != "field" {
                        last.kind = h.kind;
                        if (h.start, h.end) == (last.start, last.end) {
                            last.canon = h.canon;
                        }
                    }
                }
                _ => merged.push(h),
            }
        }
        let mut out = String::with_capacity(s.len());
        let mut pos = 0;
        for h in merged {
            // Detectors cut at ASCII bytes; widening to char boundaries is only a safety net.
            let mut a = h.start.min(s.len()).max(pos);
            while !s.is_char_boundary(a) {
                a -= 1;
            }
            let mut b = h.end.min(s.len()).max(a);
            while !s.is_char_boundary(b) {
                b += 1;
            }
            if a == b {
                continue;
            }
            out.push_str(&s[pos..a]);
            out.push_str(&self.pseudonym(h.kind, h.canon.as_deref().unwrap_or(&s[a..b])));
            pos = b;
        }
        out.push_str(&s[pos..]);
        out
    }

    /// Masks a JSON tree, pass after pass until one changes nothing (as [`Self::mask_text`]).
    fn mask_tree(&self, v: &mut Value, depth: usize) -> usize {
        let mut count = self.mask_tree_once(v, depth);
        if count > 0 {
            for _ in 0..MAX_PASSES {
                match self.mask_tree_once(v, depth) {
                    0 => break,
                    n => count += n,
                }
            }
        }
        count
    }

    /// Walks a JSON tree with an explicit stack (deeply nested input must not overflow the
    /// call stack); `depth` counts JSON-in-string levels.
    fn mask_tree_once(&self, v: &mut Value, depth: usize) -> usize {
        let mut count = 0;
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => {
                    if let Some(m) = self.mask_text(s, depth) {
                        *s = m;
                        count += 1;
                    }
                }
                Value::Number(n) => {
                    if number_may_hide(n)
                        && let Some(m) = self.mask_text(&n.to_string(), depth)
                    {
                        *v = Value::String(m);
                        count += 1;
                    }
                }
                Value::Array(items) => {
                    // Names are masked before they are judged, so a second pass judges the
                    // same text.
                    let pairs_shape = (items.len() == 2 && items[0].is_string())
                        || (items.len() >= 4 && items.len().is_multiple_of(2) && items.iter().all(Value::is_string));
                    if pairs_shape {
                        for name in items.iter_mut().step_by(2) {
                            if let Value::String(s) = name
                                && let Some(m) = self.mask_text(s, depth)
                            {
                                *s = m;
                                count += 1;
                            }
                        }
                    }
                    let whole = sensitive_pair_values(items);
                    for (i, item) in items.iter_mut().enumerate() {
                        if whole.contains(&i) {
                            count += usize::from(self.mask_whole(item));
                        } else {
                            stack.push(item);
                        }
                    }
                }
                Value::Object(map) => {
                    let renames: Vec<(String, String)> =
                        map.keys().filter_map(|k| self.mask_text(k, depth).map(|m| (k.clone(), m))).collect();
                    for (old, new) in renames {
                        if let Some(child) = map.remove(&old) {
                            map.insert(new, child);
                            count += 1;
                        }
                    }
                    for (k, v) in map.iter_mut() {
                        if let Value::String(s) = v
                            && normalized_in(k, NAME_MEMBERS)
                            && let Some(m) = self.mask_text(s, depth)
                        {
                            *s = m;
                            count += 1;
                        }
                    }
                    // Only string members can describe their neighbour; the member name is
                    // normalized only for them.
                    let described = map.iter().any(|(k, v)| {
                        v.as_str().is_some_and(|v| {
                            (normalized_in(k, NAME_MEMBERS) && Self::is_sensitive_key(v))
                                || (v.eq_ignore_ascii_case("password") && normalized_in(k, TYPE_MEMBERS))
                        })
                    });
                    for (k, child) in map.iter_mut() {
                        let whole = match keys::verdict(k) {
                            Verdict::Sensitive => true,
                            Verdict::SensitiveUnlessNumber => !child.is_number(),
                            Verdict::Readable => described && normalized_in(k, VALUE_MEMBERS),
                        };
                        if whole {
                            count += usize::from(self.mask_whole(child));
                        } else {
                            stack.push(child);
                        }
                    }
                }
                Value::Bool(_) | Value::Null => {}
            }
        }
        count
    }

    /// Replaces a sensitive member's whole value; false if there was nothing to hide.
    fn mask_whole(&self, v: &mut Value) -> bool {
        let text = match v {
            Value::String(s) if pseudonym_len(s.as_bytes()) == Some(s.len()) || is_placeholder(s.as_bytes()) => {
                return false;
            }
            Value::String(s) => std::mem::take(s),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => v.to_string(),
            Value::Bool(_) | Value::Null => return false,
        };
        *v = Value::String(self.pseudonym("field", &text));
        true
    }
}

/// `s` parsed, when it is a JSON object or array (a request body logged as a string).
fn embedded_json(s: &str) -> Option<Value> {
    let t = s.trim_ascii();
    let (first, last) = (t.as_bytes().first()?, t.as_bytes().last()?);
    if !matches!((first, last), (b'{', b'}') | (b'[', b']')) || pseudonym_len(t.as_bytes()).is_some() {
        return None;
    }
    serde_json::from_str::<Value>(t).ok().filter(|v| v.is_object() || v.is_array())
}

/// Whether a JSON number could be a card (integers of 12+ digits; large floats).
fn number_may_hide(n: &serde_json::Number) -> bool {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u >= 100_000_000_000,
        (None, Some(i)) => i.unsigned_abs() >= 100_000_000_000,
        (None, None) => n.as_f64().is_some_and(|f| f.abs() >= 1e11),
    }
}

/// Indices of array items to mask whole: the value of a `[name, value]` pair, and the
/// values after sensitive names in a flat `[name, value, name, value, ..]` header list.
fn sensitive_pair_values(items: &[Value]) -> Vec<usize> {
    if items.len() == 2 {
        let named = items[0].as_str().is_some_and(Masker::is_sensitive_key);
        return if named { vec![1] } else { Vec::new() };
    }
    if items.len() < 4 || !items.len().is_multiple_of(2) || !items.iter().all(Value::is_string) {
        return Vec::new();
    }
    let names = || items.iter().step_by(2).filter_map(Value::as_str);
    let header_like = |s: &str| {
        (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
    };
    if !names().all(header_like) || !names().any(|n| normalized_in(n, COMMON_HEADERS)) {
        return Vec::new();
    }
    (0..items.len())
        .step_by(2)
        .filter(|&i| items[i].as_str().is_some_and(Masker::is_sensitive_key))
        .map(|i| i + 1)
        .collect()
}

/// `key` lowercased without separators is one of `list`.
fn normalized_in(key: &str, list: &[&str]) -> bool {
    if key.len() > 32 {
        return false;
    }
    let mut buf = [0u8; 32];
    let mut n = 0;
    for c in key.bytes().filter(u8::is_ascii_alphanumeric) {
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    list.iter().any(|w| w.as_bytes() == &buf[..n])
}

/// `s` with `%XX` escapes decoded (up to [`MAX_NESTING`] levels) and, for each byte of the
/// decoded text, where it starts in `s`. Bytes that do not form UTF-8 become `?`, so
/// positions stay put. `None` if `s` has no escape.
fn percent_view(s: &str) -> Option<(String, Vec<usize>)> {
    let is_escape = |t: &[u8], i: usize| {
        t[i] == b'%'
            && t.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && t.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    };
    let mut text = s.as_bytes().to_vec();
    let mut map: Vec<usize> = (0..text.len()).collect();
    let mut changed = false;
    for _ in 0..MAX_NESTING {
        if !(0..text.len()).any(|i| is_escape(&text, i)) {
            break;
        }
        let mut next = Vec::with_capacity(text.len());
        let mut next_map = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            next_map.push(map[i]);
            if is_escape(&text, i) {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                next.push(hex(text[i + 1]) << 4 | hex(text[i + 2]));
                i += 3;
            } else {
                next.push(text[i]);
                i += 1;
            }
        }
        text = next;
        map = next_map;
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut from = 0;
    while let Err(e) = std::str::from_utf8(&text[from..]) {
        let bad = from + e.valid_up_to();
        let len = e.error_len().unwrap_or(text.len() - bad);
        text[bad..bad + len].fill(b'?');
        from = bad + len;
    }
    String::from_utf8(text).ok().map(|t| (t, map))
}

/// Whether a value only says that it was hidden (empty, `********`, `[REDACTED]`,
/// `<filtered>`): kept as sent, since there is nothing to hide and it tells a reader the
/// client already scrubbed it.
fn is_placeholder(v: &[u8]) -> bool {
    const WORDS: &[&str] = &["redacted", "filtered", "hidden", "removed", "masked", "omitted", "sanitized", "censored"];
    let Ok(text) = std::str::from_utf8(v) else { return false };
    if text.chars().all(|c| matches!(c, '*' | '\u{2022}' | '\u{25cf}')) {
        return true;
    }
    let core =
        text.trim_matches(|c: char| matches!(c, '*' | '[' | ']' | '<' | '>' | '(' | ')' | '{' | '}' | '_' | '-'));
    WORDS.iter().any(|w| core.eq_ignore_ascii_case(w))
}

/// Length of the pseudonym `[masked:<kind>:<12 hex>]` that `b` starts with, if any. Strict,
/// so text merely starting with `[masked:` is still scanned.
fn pseudonym_len(b: &[u8]) -> Option<usize> {
    let rest = b.strip_prefix(PSEUDONYM_PREFIX)?;
    let kind = rest.iter().take(17).position(|&c| c == b':')?;
    let valid_kind = kind > 0 && rest[..kind].iter().all(|&c| c.is_ascii_lowercase() || c == b'_');
    let hex = rest.get(kind + 1..kind + 13)?;
    let valid_hex = hex.iter().all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    (valid_kind && valid_hex && rest.get(kind + 13) == Some(&b']')).then_some(PSEUDONYM_PREFIX.len() + kind + 14)
}

/// True if no ASCII letter or digit sits right before byte `i`.
fn boundary_before(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

/// End of the run of bytes matching `pred` that starts at `i`.
fn run_end(b: &[u8], i: usize, pred: impl Fn(u8) -> bool) -> usize {
    let mut j = i.min(b.len());
    while j < b.len() && pred(b[j]) {
        j += 1;
    }
    j
}

/// Every position of `needle` in `hay`: candidates by `memchr` on the first byte, which
/// needs no searcher set-up (building a searcher per call dominated ingest CPU when
/// profiled, for the short strings masked here).
fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    memchr::memchr_iter(needle[0], hay).filter(move |&i| hay[i..].starts_with(needle))
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    find_all(hay, needle).next()
}

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;
