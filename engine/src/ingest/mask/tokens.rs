//! Value detectors for credentials recognisable by their shape, called by `Masker::mask_str`:
//! vendor tokens with a well-known prefix (grouped by vendor as gitleaks and trufflehog do,
//! but written as prefix + charset + length scanners rather than regexes), webhook URLs
//! whose path is the secret, Telegram bot tokens, AWS key ids and the secret key written
//! next to one, Azure AD client secrets, JWTs, `Bearer`/`Basic` credentials and PEM / PuTTY
//! private keys (whole, truncated, or with escaped `\n`).
//!
//! Every scanner anchors on a word start (no letter or digit before it), so `sk-` inside
//! `task-list` is not a key.

use base64::Engine as _;

use super::{Hit, boundary_before, find_all, find_bytes, run_end};

/// Bytes a token body may contain.
#[derive(Debug, Clone, Copy)]
enum Charset {
    /// `[A-Za-z0-9]`
    Alnum,
    /// `[A-Za-z0-9_]`
    Word,
    /// `[A-Za-z0-9_-]`
    B64Url,
    /// `[A-Za-z0-9_.-]`
    B64UrlDot,
    /// `[A-Za-z0-9+/=]`
    B64,
    /// `[0-9a-fA-F]`
    Hex,
    /// `[A-Z0-9]`
    Upper,
    /// `[A-Za-z0-9_/@.-]`: the path of a webhook URL.
    Path,
}

impl Charset {
    fn has(self, c: u8) -> bool {
        match self {
            Charset::Alnum => c.is_ascii_alphanumeric(),
            Charset::Word => c.is_ascii_alphanumeric() || c == b'_',
            Charset::B64Url => is_b64url(c),
            Charset::B64UrlDot => is_b64url(c) || c == b'.',
            Charset::B64 => c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='),
            Charset::Hex => c.is_ascii_hexdigit(),
            Charset::Upper => c.is_ascii_uppercase() || c.is_ascii_digit(),
            Charset::Path => is_b64url(c) || matches!(c, b'/' | b'@' | b'.'),
        }
    }
}

/// One family of prefixed tokens.
struct Prefix {
    text: &'static [u8],
    body: Charset,
    /// Body length bounds (after the prefix), inclusive.
    min: usize,
    max: usize,
    /// Generic prefixes (`sk-`, `hf_`) need a body that looks random: a digit and a letter,
    /// or both cases.
    randomish: bool,
    /// Keep the prefix readable and mask only the body (webhook URLs).
    keep_prefix: bool,
}

const ANY: usize = usize::MAX;

const fn p(text: &'static str, body: Charset, min: usize, max: usize) -> Prefix {
    Prefix { text: text.as_bytes(), body, min, max, randomish: false, keep_prefix: false }
}

const fn random(text: &'static str, body: Charset, min: usize) -> Prefix {
    Prefix { text: text.as_bytes(), body, min, max: ANY, randomish: true, keep_prefix: false }
}

const fn hook(text: &'static str) -> Prefix {
    Prefix { text: text.as_bytes(), body: Charset::Path, min: 10, max: ANY, randomish: false, keep_prefix: true }
}

/// Secret (not publishable) token prefixes. Longer prefixes first where one extends another.
#[rustfmt::skip]
const PREFIXES: &[Prefix] = &[
    // OpenAI, Anthropic, xAI.
    p("sk-proj-", Charset::B64Url, 20, ANY), p("sk-svcacct-", Charset::B64Url, 20, ANY),
    p("sk-admin-", Charset::B64Url, 20, ANY), p("sk-ant-", Charset::B64Url, 20, ANY),
    random("sk-", Charset::B64Url, 20), random("xai-", Charset::Alnum, 40),
    // Stripe (live and test secret and restricted keys, webhook signing secrets).
    p("sk_live_", Charset::Alnum, 10, ANY), p("sk_test_", Charset::Alnum, 10, ANY),
    p("rk_live_", Charset::Alnum, 10, ANY), p("rk_test_", Charset::Alnum, 10, ANY),
    p("whsec_", Charset::B64, 16, ANY),
    // GitHub, GitLab.
    p("ghp_", Charset::Alnum, 20, ANY), p("gho_", Charset::Alnum, 20, ANY),
    p("ghu_", Charset::Alnum, 20, ANY), p("ghs_", Charset::Alnum, 20, ANY),
    p("ghr_", Charset::Alnum, 20, ANY), p("github_pat_", Charset::Word, 20, ANY),
    p("glpat-", Charset::B64Url, 20, ANY), p("gldt-", Charset::B64Url, 20, ANY),
    p("glptt-", Charset::B64Url, 20, ANY), p("glrt-", Charset::B64Url, 20, ANY),
    p("glrtr-", Charset::B64Url, 20, ANY), p("glcbt-", Charset::B64Url, 20, ANY),
    p("glimt-", Charset::B64Url, 20, ANY), p("glagent-", Charset::B64Url, 20, ANY),
    p("gloas-", Charset::B64Url, 20, ANY), p("glsoat-", Charset::B64Url, 20, ANY),
    p("glffct-", Charset::B64Url, 20, ANY), p("glft-", Charset::B64Url, 20, ANY),
    // Slack.
    p("xoxb-", Charset::B64Url, 10, ANY), p("xoxp-", Charset::B64Url, 10, ANY),
    p("xoxa-", Charset::B64Url, 10, ANY), p("xoxr-", Charset::B64Url, 10, ANY),
    p("xoxs-", Charset::B64Url, 10, ANY), p("xoxo-", Charset::B64Url, 10, ANY),
    p("xoxe.", Charset::B64UrlDot, 10, ANY), p("xoxe-", Charset::B64Url, 10, ANY),
    p("xoxc-", Charset::B64Url, 10, ANY), p("xoxd-", Charset::B64Url, 10, ANY),
    p("xapp-", Charset::B64Url, 10, ANY),
    // Package registries.
    random("npm_", Charset::Alnum, 30), p("pypi-", Charset::B64Url, 50, ANY),
    p("rubygems_", Charset::Alnum, 32, ANY), p("dckr_pat_", Charset::B64Url, 20, ANY),
    // Google.
    p("AIza", Charset::B64Url, 35, 35), p("ya29.", Charset::B64UrlDot, 20, ANY),
    p("1//0", Charset::B64Url, 30, ANY), p("GOCSPX-", Charset::B64Url, 20, ANY),
    // AWS access key ids and STS session tokens.
    p("AKIA", Charset::Upper, 16, 16), p("ASIA", Charset::Upper, 16, 16),
    p("ABIA", Charset::Upper, 16, 16), p("ACCA", Charset::Upper, 16, 16),
    p("IQoJb3JpZ2lu", Charset::B64, 50, ANY), p("FwoGZXIvYXdz", Charset::B64, 50, ANY),
    // Messaging and mail.
    p("SG.", Charset::B64UrlDot, 50, ANY), p("SK", Charset::Hex, 32, 32),
    p("key-", Charset::Alnum, 32, 32),
    // Commerce, hosting, AI and developer platforms.
    p("shpat_", Charset::Alnum, 20, ANY), p("shpss_", Charset::Alnum, 20, ANY),
    p("shpca_", Charset::Alnum, 20, ANY), p("shppa_", Charset::Alnum, 20, ANY),
    random("hf_", Charset::Alnum, 30), random("api_org_", Charset::Alnum, 30),
    p("dop_v1_", Charset::Alnum, 32, ANY), p("doo_v1_", Charset::Alnum, 32, ANY),
    p("dor_v1_", Charset::Alnum, 32, ANY), p("HRKU-", Charset::B64Url, 20, ANY),
    p("hvs.", Charset::B64Url, 20, ANY), p("hvb.", Charset::B64Url, 20, ANY),
    p("lin_api_", Charset::Alnum, 30, ANY), p("glsa_", Charset::Word, 30, ANY),
    p("glc_", Charset::B64, 30, ANY), p("dapi", Charset::Hex, 32, 32),
    p("sq0atp-", Charset::B64Url, 20, ANY), p("sq0csp-", Charset::B64Url, 20, ANY),
    p("pscale_tkn_", Charset::B64Url, 30, ANY), p("pscale_pw_", Charset::B64Url, 30, ANY),
    p("ntn_", Charset::Alnum, 40, ANY), p("secret_", Charset::Alnum, 43, 43),
    p("sntrys_", Charset::B64, 50, ANY), p("sntryu_", Charset::Alnum, 32, ANY),
    p("figd_", Charset::B64Url, 30, ANY), p("ops_eyJ", Charset::B64, 100, ANY),
    p("ATATT3", Charset::B64UrlDot, 100, ANY), p("dp.st.", Charset::B64Url, 40, ANY),
    p("dp.ct.", Charset::B64Url, 40, ANY), p("dp.sa.", Charset::B64Url, 40, ANY),
    p("PMAK-", Charset::B64Url, 50, ANY), p("AGE-SECRET-KEY-1", Charset::Upper, 50, ANY),
    p("shippo_live_", Charset::Alnum, 32, ANY), p("FLWSECK-", Charset::B64Url, 20, ANY),
    // Webhook URLs: the path is the credential.
    hook("hooks.slack.com/services/"), hook("hooks.slack.com/workflows/"),
    hook("hooks.slack.com/triggers/"), hook("discord.com/api/webhooks/"),
    hook("discordapp.com/api/webhooks/"), hook("webhook.office.com/webhookb2/"),
];

/// Fewest bytes a string needs for [`find_word_start_tokens`] to find anything: a prefix
/// and its shortest body (`xoxb-` + 10), `Basic` + a blank + 8 credential bytes (14), a
/// Telegram token (5 digits, `:`, 35 characters), whichever is least.
pub(super) const MIN_WORD_START_HIT: usize = {
    let mut least = 5 + 1 + 8;
    let mut k = 0;
    while k < PREFIXES.len() {
        let n = PREFIXES[k].text.len() + PREFIXES[k].min;
        if n < least {
            least = n;
        }
        k += 1;
    }
    least
};

/// [`PREFIXES`] by first byte.
fn prefixes_by_first_byte() -> &'static [Vec<&'static Prefix>] {
    static TABLE: std::sync::LazyLock<Vec<Vec<&'static Prefix>>> = std::sync::LazyLock::new(|| {
        let mut table = vec![Vec::new(); 256];
        for prefix in PREFIXES {
            table[usize::from(prefix.text[0])].push(prefix);
        }
        table
    });
    &TABLE
}

/// Standard base64 with or without padding, as clients send `Basic` credentials.
const LENIENT_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(super) fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn randomish(body: &[u8]) -> bool {
    let digit = body.iter().any(u8::is_ascii_digit);
    let upper = body.iter().any(u8::is_ascii_uppercase);
    let lower = body.iter().any(u8::is_ascii_lowercase);
    (digit && (upper || lower)) || (upper && lower)
}

/// Everything anchored at word starts: prefixed tokens, webhooks, Telegram bot tokens and
/// `Bearer`/`Basic` credentials. One pass; most word starts cost one table lookup.
pub(super) fn find_word_start_tokens(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let table = prefixes_by_first_byte();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        if !boundary_before(b, i) {
            i = run_end(b, i, |c| c.is_ascii_alphanumeric());
            continue;
        }
        let next = if c.is_ascii_digit() {
            telegram(b, i, hits)
        } else if matches!(c, b'b' | b'B') {
            // `.../bot<token>/getMe` glues the Telegram token to `bot`.
            let bot = b.len() > i + 3 && b[i..i + 3].eq_ignore_ascii_case(b"bot") && b[i + 3].is_ascii_digit();
            auth_scheme(b, i, hits).or_else(|| if bot { telegram(b, i + 3, hits) } else { None })
        } else {
            None
        };
        let next = next.or_else(|| table[usize::from(c)].iter().find_map(|p| prefixed(b, i, p, hits)));
        i = match next {
            Some(end) => end.max(i + 1),
            None => run_end(b, i, |c| c.is_ascii_alphanumeric()),
        };
    }
}

/// A token of family `p` at `i`: records it and returns where it ends.
fn prefixed(b: &[u8], i: usize, p: &Prefix, hits: &mut Vec<Hit>) -> Option<usize> {
    // Too little text left for the prefix and its shortest body, or a second byte that
    // differs: no need to compare the rest.
    if b.len() - i < p.text.len() + p.min || b.get(i + 1) != p.text.get(1) || !b[i..].starts_with(p.text) {
        return None;
    }
    let body = i + p.text.len();
    let end = run_end(b, body, |c| p.body.has(c));
    let len = end - body;
    let after_ok = end == b.len() || !b[end].is_ascii_alphanumeric();
    if len < p.min || len > p.max || !after_ok || (p.randomish && !randomish(&b[body..end])) {
        return None;
    }
    // SendGrid keys are two dot-separated parts.
    if p.text == b"SG." && !b[body..end].contains(&b'.') {
        return None;
    }
    let (start, kind) = if p.keep_prefix { (body, "webhook") } else { (i, "secret_key") };
    hits.push(Hit::new(start, end, kind));
    if matches!(p.text, b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA") {
        aws_secret_nearby(b, i, end, hits);
    }
    Some(end)
}

/// `<5-16 digits>:<35 base64url>`: a Telegram bot token.
fn telegram(b: &[u8], i: usize, hits: &mut Vec<Hit>) -> Option<usize> {
    let colon = run_end(b, i, |c| c.is_ascii_digit());
    if !(5..=16).contains(&(colon - i)) || b.get(colon) != Some(&b':') {
        return None;
    }
    let end = run_end(b, colon + 1, is_b64url);
    (end - colon - 1 == 35).then(|| {
        hits.push(Hit::new(i, end, "secret_key"));
        end
    })
}

/// `Bearer <token>` (RFC 6750 token characters) and `Basic <base64 of user:password>`;
/// masks the credential, keeps the scheme.
fn auth_scheme(b: &[u8], i: usize, hits: &mut Vec<Hit>) -> Option<usize> {
    let (scheme, kind) = if b.len() >= i + 6 && b[i..i + 6].eq_ignore_ascii_case(b"bearer") {
        (6, "bearer")
    } else if b.len() >= i + 5 && b[i..i + 5].eq_ignore_ascii_case(b"basic") {
        (5, "basic_auth")
    } else {
        return None;
    };
    let t = run_end(b, i + scheme, |c| c == b' ' || c == b'\t');
    if t == i + scheme {
        return None;
    }
    // RFC 7235 token68: `[A-Za-z0-9-._~+/]+=*`; a `=` followed by more is a `key=value`.
    let body = run_end(b, t, |c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c));
    let end = run_end(b, body, |c| c == b'=');
    if end > body && end < b.len() && !b[end].is_ascii_whitespace() && !b"\"',;)]}".contains(&b[end]) {
        return None;
    }
    let tok = &b[t..end];
    let ok = if kind == "bearer" {
        // Prose ("Bearer tokens expire", "bearer password_length") has no digit and is
        // short; tokens are not.
        tok.len() >= 8 && (tok.len() >= 24 || tok.iter().any(u8::is_ascii_digit))
    } else {
        tok.len() >= 8
            && LENIENT_B64.decode(tok).is_ok_and(|d| d.contains(&b':') && d.iter().all(|&c| c >= 0x20 || c == b'\t'))
    };
    ok.then(|| {
        hits.push(Hit::new(t, end, kind));
        end
    })
}

/// An AWS secret access key (40 base64 characters, both cases) within 200 bytes of an
/// access key id at `id..id_end`.
fn aws_secret_nearby(b: &[u8], id: usize, id_end: usize, hits: &mut Vec<Hit>) {
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=');
    let lo = id.saturating_sub(200);
    let hi = (id_end + 200).min(b.len());
    let mut j = lo;
    while j < hi {
        if !is_b64(b[j]) || (j > 0 && is_b64(b[j - 1])) {
            j += 1;
            continue;
        }
        let end = run_end(b, j, is_b64);
        let run = &b[j..end];
        let upper = run.iter().any(u8::is_ascii_uppercase);
        let lower = run.iter().any(u8::is_ascii_lowercase);
        if run.len() == 40 && upper && lower && (j >= id_end || end <= id) {
            hits.push(Hit::new(j, end, "secret_key"));
        }
        j = end;
    }
}

/// Azure AD client secrets: `xxx` + digit + `Q~` + 31-34 characters of `[A-Za-z0-9_~.-]`.
pub(super) fn find_azure_client_secrets(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let is_c = |c: u8| is_b64url(c) || c == b'~' || c == b'.';
    for q in find_all(b, b"Q~") {
        if q < 4 || !b[q - 1].is_ascii_digit() || !b[q - 4..q - 1].iter().all(|&c| is_c(c)) {
            continue;
        }
        let start = q - 4;
        if start > 0 && is_c(b[start - 1]) {
            continue;
        }
        let end = run_end(b, q + 2, is_c);
        if (31..=34).contains(&(end - q - 2)) {
            hits.push(Hit::new(start, end, "secret_key"));
        }
    }
}

/// Three (JWS) or more (JWE) dot-separated base64url segments, the first starting `eyJ`.
pub(super) fn find_jwts(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    for i in find_all(b, b"eyJ") {
        if !boundary_before(b, i) || hits.last().is_some_and(|h| h.kind == "jwt" && i < h.end) {
            continue;
        }
        let end = run_end(b, i, |c| is_b64url(c) || c == b'.');
        let mut segs = b[i..end].split(|&c| c == b'.');
        let second = segs.nth(1);
        if second.is_some_and(|s| !s.is_empty()) && segs.next().is_some() {
            hits.push(Hit::new(i, end, "jwt"));
        }
    }
}

/// PEM private keys of every flavour (`PRIVATE KEY`, `RSA`, `EC`, `DSA`, `ENCRYPTED`,
/// `OPENSSH`, `PGP PRIVATE KEY BLOCK`) from the BEGIN line to the END line, or to the end
/// of the key body when the END line is missing; and PuTTY private key lines.
pub(super) fn find_private_keys(s: &str, hits: &mut Vec<Hit>) {
    let b = s.as_bytes();
    let mut masked_to = 0;
    if find_bytes(b, b"PRIVATE KEY").is_some() {
        for begin in find_all(b, b"BEGIN ") {
            let dashes = b[..begin].iter().rev().take_while(|&&c| c == b'-').count();
            if dashes < 3 || begin < masked_to {
                continue;
            }
            let label = begin + 6;
            let window = &b[label..(label + 64).min(b.len())];
            let Some(close) = window.iter().position(|&c| c == b'-') else { continue };
            if find_bytes(&window[..close], b"PRIVATE KEY").is_none() {
                continue;
            }
            let body = run_end(b, label + close, |c| c == b'-');
            let end = match find_bytes(&b[body..], b"END ") {
                Some(e) => {
                    let e = body + e + 4;
                    let tail = run_end(b, e, |c| c.is_ascii_uppercase() || c == b' ');
                    run_end(b, tail, |c| c == b'-')
                }
                None => key_body_end(b, body),
            };
            hits.push(Hit::new(begin - dashes, end, "private_key"));
            masked_to = end;
        }
    }
    for at in find_all(b, b"Private-Lines:") {
        let end = key_body_end(b, at + 14);
        hits.push(Hit::new(at, end, "private_key"));
    }
}

/// End of a key body: base64, whitespace, escaped line breaks, and header lines
/// (`Proc-Type: 4,ENCRYPTED`, `Private-MAC: ..`).
fn key_body_end(b: &[u8], from: usize) -> usize {
    run_end(b, from, |c| c.is_ascii_alphanumeric() || b"+/=\\ \t\r\n:,-".contains(&c))
}
