//! Masking of sensitive values at ingest, before an event is hashed and stored.
//!
//! Policy version [`MASK_POLICY_VERSION`]: a JSON member whose key is on the denylist
//! (password, secret, token, cookie, api_key, card, ...; compared after lowercasing and
//! dropping separators, so snake_case, camelCase and kebab-case all match) is replaced whole.
//! Every other string (and object key) is scanned by value detectors: Luhn-valid card numbers
//! with a known IIN, JWTs, bearer tokens, well-known secret-key prefixes, PEM private keys,
//! `key=value` / `key: value` pairs with a sensitive key, and passwords in URL userinfo; only
//! the detected substring is replaced. Replacements are keyed HMAC pseudonyms
//! `[masked:<kind>:<12 hex>]`, so equal secrets still correlate but cannot be recovered.
//! Used by the ingest path (`ingest.rs`) and by anything that logs or echoes client input.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Bump whenever the masking rules change, so stored events can say which policy masked them.
pub use crate::event::MASK_POLICY_VERSION;

const PSEUDONYM_PREFIX: &[u8] = b"[masked:";

/// Normalized key names that are sensitive only as the whole key.
#[rustfmt::skip]
const EXACT_KEYS: &[&str] = &[
    "authheader", "card", "cardno", "ccnumber", "cvv", "cvv2", "cvc", "cvc2", "pan", "ssn",
    "socialsecuritynumber", "pin", "otp", "totp", "mfacode", "securitycode", "bearer", "jwt",
];
/// Words that make a key sensitive wherever they occur in it (`user_password`,
/// `passwordHash`, `X-Auth-Token`), unless only a benign qualifier follows them.
#[rustfmt::skip]
const STRONG_WORDS: &[&str] = &[
    "password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey",
    "authorization", "cookie", "credential", "cardnumber", "creditcard", "sessionid",
    "signingkey", "encryptionkey",
];
/// Qualifiers after a strong word that name metadata, not the secret (`token_type`,
/// `password_changed_at`, `secret_name`).
#[rustfmt::skip]
const BENIGN_TAILS: &[&str] = &[
    "id", "ids", "type", "count", "length", "len", "policy", "expiry", "expires", "expiresat",
    "expiresin", "expiration", "ttl", "changedat", "updatedat", "createdat", "rotatedat",
    "lastusedat", "attempts", "strength", "required", "enabled", "present", "valid", "name",
    "version",
];
/// Heads before a strong word that make the key a count (`max_tokens`, `num_secrets`).
const COUNT_HEADS: &[&str] = &["max", "min", "num", "total"];
/// Keys whose unquoted text value runs to the end of the line (HTTP header style).
const LINE_VALUE_KEYS: &[&str] = &["cookie", "setcookie", "authorization", "proxyauthorization"];
/// Well-known prefixes of secret keys (not publishable ones like Stripe's `pk_live_`).
#[rustfmt::skip]
const KEY_PREFIXES: &[&str] = &[
    "sk_live_", "sk_test_", "rk_live_", "rk_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-",
];

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
    /// Value to pseudonymize instead of the raw text (card digits without separators).
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

    /// True if a member named `key` must be masked whole, in any naming style.
    pub fn is_sensitive_key(key: &str) -> bool {
        let norm = normalize_key(key);
        if EXACT_KEYS.contains(&norm.as_str()) {
            return true;
        }
        STRONG_WORDS.iter().any(|word| {
            naive_find_iter(norm.as_bytes(), word.as_bytes()).any(|i| {
                let (head, tail) = (&norm[..i], &norm[i + word.len()..]);
                !BENIGN_TAILS.contains(&tail) && !COUNT_HEADS.iter().any(|h| head.ends_with(h))
            })
        })
    }

    /// Runs the value detectors over `s`; `Some(masked)` if anything was replaced.
    pub fn mask_str(&self, s: &str) -> Option<String> {
        let mut hits = Vec::new();
        find_pem(s, &mut hits);
        find_jwts(s, &mut hits);
        find_bearer(s, &mut hits);
        find_prefixed_keys(s, &mut hits);
        find_cards(s, &mut hits);
        find_pairs(s, &mut hits);
        find_url_passwords(s, &mut hits);
        if hits.is_empty() {
            return None;
        }
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
            out.push_str(&s[pos..a]);
            out.push_str(&self.pseudonym(h.kind, h.canon.as_deref().unwrap_or(&s[a..b])));
            pos = b;
        }
        out.push_str(&s[pos..]);
        Some(out)
    }

    /// Masks `v` in place (see the module doc); returns how many values were masked.
    pub fn mask_value(&self, v: &mut Value) -> usize {
        let mut count = 0;
        // An explicit stack: deeply nested input must not overflow the call stack.
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => {
                    if let Some(m) = self.mask_str(s) {
                        *s = m;
                        count += 1;
                    }
                }
                Value::Number(n) => {
                    if let Some(m) = self.mask_str(&n.to_string()) {
                        *v = Value::String(m);
                        count += 1;
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    let renames: Vec<(String, String)> =
                        map.keys().filter_map(|k| self.mask_str(k).map(|m| (k.clone(), m))).collect();
                    for (old, new) in renames {
                        if let Some(child) = map.remove(&old) {
                            map.insert(new, child);
                            count += 1;
                        }
                    }
                    for (k, child) in map.iter_mut() {
                        if Self::is_sensitive_key(k) {
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

    /// `[masked:<kind>:<first 12 hex of HMAC-SHA256(key, value)>]`.
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("[masked:{kind}:{}]", hex::encode(&tag[..6]))
    }

    /// Replaces a sensitive member's whole value; false if there was nothing to hide.
    fn mask_whole(&self, v: &mut Value) -> bool {
        let text = match v {
            Value::String(s) if pseudonym_len(s.as_bytes()) == Some(s.len()) => return false,
            Value::String(s) => std::mem::take(s),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => v.to_string(),
            Value::Bool(_) | Value::Null => return false,
        };
        *v = Value::String(self.pseudonym("field", &text));
        true
    }
}

fn normalize_key(key: &str) -> String {
    key.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
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

fn find_from(s: &str, from: usize, pat: &str) -> Option<usize> {
    let mut from = from.min(s.len());
    while !s.is_char_boundary(from) {
        from += 1;
    }
    find_bytes(&s.as_bytes()[from..], pat.as_bytes()).map(|i| i + from)
}

/// Every position of `needle` in `hay` by direct comparison: for the short strings masked
/// here (keys, field values) this beats building a searcher per call, which profiling
/// showed to dominate ingest CPU.
fn naive_find_iter<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let last = hay.len().checked_sub(needle.len());
    (0..last.map_or(0, |l| l + 1)).filter(move |&i| hay[i..].starts_with(needle))
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() < 256 { naive_find_iter(hay, needle).next() } else { memchr::memmem::find(hay, needle) }
}

/// `-----BEGIN <x> PRIVATE KEY-----` up to the matching END line, or to the end if truncated.
fn find_pem(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(start) = find_from(s, from, "-----BEGIN ") {
        let label = start + 11;
        let window = &b[label..(label + 64).min(b.len())];
        let private = find_bytes(window, b"-----").is_some_and(|e| window[..e].ends_with(b"PRIVATE KEY"));
        if !private {
            from = label;
            continue;
        }
        let end = match find_from(s, label, "-----END ") {
            Some(e) => {
                let tail = &b[e + 9..(e + 9 + 64).min(b.len())];
                find_bytes(tail, b"-----").map_or(b.len(), |k| e + 9 + k + 5)
            }
            None => b.len(),
        };
        hits.push(Hit::new(start, end, "private_key"));
        from = end;
    }
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Three (JWS) or more (JWE) dot-separated base64url segments, the first starting `eyJ`.
fn find_jwts(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = find_from(s, from, "eyJ") {
        if !boundary_before(b, i) {
            from = i + 3;
            continue;
        }
        let end = run_end(b, i, |c| is_b64url(c) || c == b'.');
        let segs: Vec<&[u8]> = b[i..end].split(|&c| c == b'.').collect();
        if segs.len() >= 3 && !segs[1].is_empty() {
            hits.push(Hit::new(i, end, "jwt"));
        }
        from = end;
    }
}

/// `Bearer <token>` (RFC 6750 token characters); masks the token, keeps the scheme.
fn find_bearer(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 6 < b.len() {
        if b[i..i + 6].eq_ignore_ascii_case(b"bearer") && boundary_before(b, i) {
            let t = run_end(b, i + 6, |c| c == b' ' || c == b'\t');
            let end = run_end(b, t, |c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
            let tok = &b[t..end];
            // Prose ("Bearer tokens expire") is short and all letters; tokens are not.
            let tokenish = tok.len() >= 24 || tok.iter().any(|c| !c.is_ascii_alphabetic());
            if t > i + 6 && tok.len() >= 8 && tokenish {
                hits.push(Hit::new(t, end, "bearer"));
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

/// Secret keys with well-known prefixes, and AWS access key ids (`AKIA`/`ASIA` + 16).
fn find_prefixed_keys(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if boundary_before(b, i) {
            let rest = &b[i..];
            if let Some(p) = KEY_PREFIXES.iter().find(|p| rest.starts_with(p.as_bytes())) {
                let end = run_end(b, i + p.len(), is_b64url);
                if end - i - p.len() >= 10 {
                    hits.push(Hit::new(i, end, "secret_key"));
                    i = end;
                    continue;
                }
            }
            if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") {
                let end = run_end(b, i + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
                if end - i == 20 && (end == b.len() || !b[end].is_ascii_alphanumeric()) {
                    hits.push(Hit::new(i, end, "secret_key"));
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// Card numbers: digit groups standing alone (no letter or digit glued on) and joined by
/// single spaces or dashes, 13-19 digits in all, with a known IIN and a valid Luhn sum.
fn find_cards(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut chain: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = run_end(b, i, |c| c.is_ascii_digit());
        let alone = boundary_before(b, i) && (end == b.len() || !b[end].is_ascii_alphanumeric());
        if alone && end - i <= 19 {
            let joined = chain.last().is_some_and(|&(_, e)| e + 1 == i && matches!(b[e], b' ' | b'-'));
            if !joined {
                card_chain(b, &chain, hits);
                chain.clear();
            }
            chain.push((i, end));
        } else {
            card_chain(b, &chain, hits);
            chain.clear();
        }
        i = end;
    }
    card_chain(b, &chain, hits);
}

/// Finds cards among consecutive groups of a chain, longest match from each start.
fn card_chain(b: &[u8], chain: &[(usize, usize)], hits: &mut Vec<Hit>) {
    let mut a = 0;
    while a < chain.len() {
        let mut digits = Vec::new();
        let mut best = None;
        for (k, &(gs, ge)) in chain[a..].iter().enumerate() {
            digits.extend_from_slice(&b[gs..ge]);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && is_card(&digits) {
                best = Some((a + k, digits.iter().map(|&c| char::from(c)).collect::<String>()));
            }
        }
        match best {
            Some((last, canon)) => {
                hits.push(Hit { start: chain[a].0, end: chain[last].1, kind: "card", canon: Some(canon) });
                a = last + 1;
            }
            None => a += 1,
        }
    }
}

/// `d`: 13-19 ASCII digits.
fn is_card(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
    let iin = d[0] == b'4'
        || (51..=55).contains(&n(2))
        || (2221..=2720).contains(&n(4))
        || matches!(n(2), 34 | 37 | 65 | 35 | 36 | 38 | 30)
        || n(4) == 6011
        || (644..=649).contains(&n(3));
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let x = u32::from(c - b'0') * if i % 2 == 1 { 2 } else { 1 };
            if x > 9 { x - 9 } else { x }
        })
        .sum();
    iin && sum.is_multiple_of(10)
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// `key=value`, `key: value`, `"key": "value"` with a sensitive key (query strings, log
/// text, JSON or headers inside a string); masks the value only.
fn find_pairs(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Skip our own pseudonyms (`[masked:card:..]` must not read as `card: ..`).
        if let Some(n) = pseudonym_len(&b[i..]) {
            i += n;
            continue;
        }
        if b[i] != b'=' && b[i] != b':' {
            i += 1;
            continue;
        }
        let sep = i;
        i += 1;
        let mut k_end = sep;
        while k_end > 0 && sep - k_end < 8 && b[k_end - 1] == b' ' {
            k_end -= 1;
        }
        if k_end > 0 && matches!(b[k_end - 1], b'"' | b'\'') {
            k_end -= 1;
        }
        let mut k_start = k_end;
        while k_start > 0 && k_end - k_start < 64 && is_key_char(b[k_start - 1]) {
            k_start -= 1;
        }
        let key = s.get(k_start..k_end).unwrap_or("");
        if key.is_empty() || !Masker::is_sensitive_key(key) {
            continue;
        }
        let v = run_end(b, sep + 1, |c| c == b' ' || c == b'\t');
        let (vs, ve) = if v < b.len() && matches!(b[v], b'"' | b'\'') {
            let mut j = v + 1;
            while j < b.len() && b[j] != b[v] {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (v + 1, j.min(b.len()))
        } else if LINE_VALUE_KEYS.contains(&normalize_key(key).as_str()) {
            (v, run_end(b, v, |c| c != b'\n' && c != b'\r'))
        } else {
            (v, run_end(b, v, |c| !c.is_ascii_whitespace() && !b"&\"'<>".contains(&c)))
        };
        if ve > vs && pseudonym_len(&b[vs..ve]) != Some(ve - vs) {
            hits.push(Hit::new(vs, ve, "field"));
        }
        i = i.max(ve);
    }
}

/// `scheme://user:password@host`: masks the password.
fn find_url_passwords(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = find_from(s, from, "://") {
        let auth = p + 3;
        let end = run_end(b, auth, |c| !matches!(c, b'/' | b'?' | b'#') && !c.is_ascii_whitespace());
        if let Some(at) = b[auth..end].iter().rposition(|&c| c == b'@')
            && let Some(colon) = b[auth..auth + at].iter().position(|&c| c == b':')
            && colon + 1 < at
        {
            hits.push(Hit::new(auth + colon + 1, auth + at, "password"));
        }
        from = end.max(auth);
    }
}

#[cfg(test)]
mod tests;
